"""The OpenPose-18 keypoint order used everywhere in papg-bench, and its left/right symmetry."""

from __future__ import annotations

OPENPOSE18 = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_JOINTS = len(OPENPOSE18)
MISSING = -1.0


def _mirror(name: str) -> str:
    if name.startswith("r_"):
        return "l_" + name[2:]
    if name.startswith("l_"):
        return "r_" + name[2:]
    return name


# FLIP_PERMUTATION[j] = the joint that joint j becomes after a horizontal flip.
FLIP_PERMUTATION = tuple(OPENPOSE18.index(_mirror(n)) for n in OPENPOSE18)
