"""The OpenPose-18 keypoint order, its symmetry, skeleton and colours, the COCO-17 mapping, and the
store file ``poses.npy`` (N x 18 x 3 float32: x, y, confidence in store pixels; missing joint = -1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.errors import UserError

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

# Skeleton of the released PAPG / PATN code (``LIMB_SEQ`` in ``make_pose/pose_utils.py``): the
# OpenPose limb pairs in OpenPose-18 indices. The last two (shoulder-ear) are part of OpenPose's
# pair list but OpenPose's renderer draws only the first 17, and so do the skeleton maps.
LIMB_SEQ = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9),
    (9, 10), (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16),
    (0, 15), (15, 17), (2, 16), (5, 17),
)
DRAWN_LIMBS = LIMB_SEQ[:17]

# OpenPose colours (RGB, 0..255), one per joint; limb k is drawn in COLORS[k] as OpenPose does.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# Joints below this confidence are stored as missing (OpenPose's and the released code's 0.1).
DEFAULT_THRESHOLD = 0.1

COCO17 = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
# COCO17_TO_OPENPOSE18[j] = COCO index of OpenPose joint j (None for the neck, which COCO lacks).
COCO17_TO_OPENPOSE18 = tuple(None if name == "neck" else COCO17.index(name) for name in OPENPOSE18)
NECK = OPENPOSE18.index("neck")


def coco_to_openpose(coco: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """``... x 17 x 3`` COCO keypoints (x, y, score) -> ``... x 18 x 3`` OpenPose-18 keypoints.

    Joints scoring below ``threshold`` become missing (-1 in x, y and confidence). The neck is the
    midpoint of the two shoulders, with the lower of their two scores, when both pass the threshold.
    """
    coco = np.asarray(coco, dtype=np.float32)
    if coco.shape[-2:] != (17, 3):
        raise ValueError(f"expected ... x 17 x 3 COCO keypoints, got shape {coco.shape}")
    out = np.full((*coco.shape[:-2], NUM_JOINTS, 3), MISSING, dtype=np.float32)
    for j, c in enumerate(COCO17_TO_OPENPOSE18):
        if c is not None:
            out[..., j, :] = coco[..., c, :]
    l_sh, r_sh = coco[..., COCO17.index("l_shoulder"), :], coco[..., COCO17.index("r_shoulder"), :]
    both = (l_sh[..., 2] >= threshold) & (r_sh[..., 2] >= threshold)
    neck = np.concatenate([(l_sh[..., :2] + r_sh[..., :2]) / 2, np.minimum(l_sh[..., 2:], r_sh[..., 2:])], axis=-1)
    out[..., NECK, :] = np.where(both[..., None], neck, MISSING)
    return mark_missing(out, threshold)


def mark_missing(keypoints: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Set joints with confidence below ``threshold`` (or non-finite values) to -1 in all three fields."""
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    bad = (kp[..., 2] < threshold) | ~np.isfinite(kp).all(axis=-1)
    kp[bad] = MISSING
    return kp


def openpose_to_coco(keypoints: np.ndarray) -> np.ndarray:
    """``... x 18 x 3`` OpenPose-18 -> ``... x 17 x 3`` COCO order (the neck is dropped)."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    return np.stack([keypoints[..., OPENPOSE18.index(name), :] for name in COCO17], axis=-2)


# --- the store file: <store>/poses.npy (N x 18 x 3 float32) + <store>/poses.json (meta) -----------

POSES_FILE = "poses.npy"
POSES_META = "poses.json"
POSES_FORMAT = 1


def poses_paths(store_path: Path | str) -> tuple[Path, Path]:
    store_path = Path(store_path)
    return store_path / POSES_FILE, store_path / POSES_META


def save_poses(store_path: Path | str, poses: np.ndarray, meta: dict[str, Any]) -> None:
    """Write ``poses.npy`` and ``poses.json`` beside a store, each under a temporary name + rename."""
    from papg_bench.workspace import atomic_path, atomic_write_json, provenance

    poses = np.ascontiguousarray(poses, dtype=np.float32)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"poses must be N x {NUM_JOINTS} x 3, got {poses.shape}")
    npy, meta_path = poses_paths(store_path)
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, poses)
    digest = hashlib.sha256(poses.tobytes()).hexdigest()
    full = {
        "format_version": POSES_FORMAT,
        "joints": list(OPENPOSE18),
        "count": int(poses.shape[0]),
        "poses_sha256": digest,
        **meta,
        "provenance": provenance(),
    }
    atomic_write_json(meta_path, full)


def read_poses_meta(store_path: Path | str) -> dict[str, Any] | None:
    _, meta_path = poses_paths(store_path)
    if not meta_path.is_file():
        return None
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None


def load_poses(store_path: Path | str) -> np.ndarray:
    """The store's keypoints, N x 18 x 3 float32 (x, y, confidence in store pixels; missing = -1)."""
    store_path = Path(store_path)
    npy, _ = poses_paths(store_path)
    if not npy.is_file():
        raise UserError(
            f"{store_path} has no keypoints ({POSES_FILE} is missing): run `papg-bench pose --dataset "
            f"{store_path.name}` first (with --from FILE to import keypoints, or --estimator to detect them)."
        )
    try:
        poses = np.load(npy)
    except (OSError, ValueError) as exc:
        raise UserError(f"{npy} cannot be read ({exc}): run `papg-bench pose` again.") from None
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3):
        raise UserError(f"{npy} has shape {poses.shape}, expected N x 18 x 3: run `papg-bench pose` again.")
    count = _store_count(store_path)
    if count is not None and poses.shape[0] != count:
        raise UserError(
            f"{npy} holds {poses.shape[0]} poses but the store has {count} images (the store was rebuilt): "
            "run `papg-bench pose` again."
        )
    return poses.astype(np.float32, copy=False)


def _store_count(store_path: Path) -> int | None:
    meta = store_path / "meta.json"
    if not meta.is_file():
        return None
    try:
        return int(json.loads(meta.read_text())["count"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
