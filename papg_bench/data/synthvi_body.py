"""synthvi people: identity attributes and an 18-keypoint articulated body posed from a walking cycle.

Body coordinates are in units of body height with the feet at y = 0: +x is the person's left, +y up,
+z the direction the person faces. A view angle turns the body about the vertical axis (0 = facing
the camera, pi = back to the camera) and the body is projected orthographically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from papg_bench.pose.keypoints import NUM_JOINTS, OPENPOSE18

# Joint indices in the OpenPose-18 order.
_JOINT = {name: index for index, name in enumerate(OPENPOSE18)}
NOSE, NECK = _JOINT["nose"], _JOINT["neck"]
RSH, REL, RWR = _JOINT["r_shoulder"], _JOINT["r_elbow"], _JOINT["r_wrist"]
LSH, LEL, LWR = _JOINT["l_shoulder"], _JOINT["l_elbow"], _JOINT["l_wrist"]
RHIP, RKNEE, RANK = _JOINT["r_hip"], _JOINT["r_knee"], _JOINT["r_ankle"]
LHIP, LKNEE, LANK = _JOINT["l_hip"], _JOINT["l_knee"], _JOINT["l_ankle"]
REYE, LEYE, REAR, LEAR = _JOINT["r_eye"], _JOINT["l_eye"], _JOINT["r_ear"], _JOINT["l_ear"]
FACE_POINTS = (NOSE, REYE, LEYE, REAR, LEAR)

# Palettes are deliberately small so that every colour, material and style is shared by many
# identities: only the combination (plus shape) identifies a person.
SKIN_TONES = ((241, 205, 180), (224, 172, 138), (198, 134, 96), (160, 102, 70), (110, 72, 50), (233, 190, 160))
HAIR_COLOURS = ((25, 20, 18), (70, 45, 30), (120, 85, 50), (200, 165, 100), (150, 150, 150), (110, 40, 25))
GARMENT_COLOURS = (
    (20, 20, 24), (235, 235, 230), (130, 130, 135), (180, 30, 35), (30, 60, 150), (35, 110, 60),
    (230, 200, 40), (240, 120, 30), (120, 60, 140), (90, 60, 40), (200, 120, 150), (60, 150, 170),
    (15, 35, 80), (180, 170, 140),
)
UPPER_MATERIALS = ("cotton", "synthetic", "wool", "denim", "leather")
LOWER_MATERIALS = ("cotton", "synthetic", "denim", "wool")
PATTERNS = ("solid", "solid", "stripes", "checks", "logo")
HAIR_STYLES = ("short", "short", "long", "bald", "bun")
SLEEVES = ("long", "short", "none")
LOWER_STYLES = ("trousers", "trousers", "shorts", "skirt")
ACCESSORIES = ("none", "none", "backpack", "shoulder_bag")


@dataclass(frozen=True)
class Identity:
    pid: int
    height: float  # relative, about 0.9 .. 1.08
    build: float  # width multiplier
    leg_ratio: float  # fraction of height below the hips
    head_size: float
    skin: tuple[int, int, int]
    hair_style: str
    hair_colour: tuple[int, int, int]
    upper_colour: tuple[int, int, int]
    upper_colour_b: tuple[int, int, int]  # second colour of a pattern or a logo
    upper_material: str
    pattern: str
    stripe_period: float  # in body heights
    sleeves: str
    lower_style: str
    lower_colour: tuple[int, int, int]
    lower_material: str
    shoe_colour: tuple[int, int, int]
    accessory: str
    accessory_colour: tuple[int, int, int]
    hat: bool
    hat_colour: tuple[int, int, int]
    gait_speed: float  # walking-cycle phase advance per frame


def _pick(rng: np.random.Generator, options: tuple) -> object:
    return options[int(rng.integers(len(options)))]


def sample_identity(seed: int, pid: int) -> Identity:
    """The attributes of identity ``pid``: a pure function of (seed, pid)."""
    rng = np.random.default_rng([seed, pid, 0x1D])
    upper = _pick(rng, GARMENT_COLOURS)
    upper_b = upper
    while upper_b == upper:
        upper_b = _pick(rng, GARMENT_COLOURS)
    shoe_options = ((20, 20, 20), (240, 240, 240), (90, 60, 40), (60, 60, 70), (180, 40, 40))
    return Identity(
        pid=pid,
        height=float(rng.uniform(0.9, 1.08)),
        build=float(rng.uniform(0.82, 1.25)),
        leg_ratio=float(rng.uniform(0.47, 0.55)),
        head_size=float(rng.uniform(0.9, 1.12)),
        skin=_pick(rng, SKIN_TONES),  # type: ignore[arg-type]
        hair_style=str(_pick(rng, HAIR_STYLES)),
        hair_colour=_pick(rng, HAIR_COLOURS),  # type: ignore[arg-type]
        upper_colour=upper,  # type: ignore[arg-type]
        upper_colour_b=upper_b,  # type: ignore[arg-type]
        upper_material=str(_pick(rng, UPPER_MATERIALS)),
        pattern=str(_pick(rng, PATTERNS)),
        stripe_period=float(rng.uniform(0.035, 0.07)),
        sleeves=str(_pick(rng, SLEEVES)),
        lower_style=str(_pick(rng, LOWER_STYLES)),
        lower_colour=_pick(rng, GARMENT_COLOURS),  # type: ignore[arg-type]
        lower_material=str(_pick(rng, LOWER_MATERIALS)),
        shoe_colour=_pick(rng, shoe_options),  # type: ignore[arg-type]
        accessory=str(_pick(rng, ACCESSORIES)),
        accessory_colour=_pick(rng, GARMENT_COLOURS),  # type: ignore[arg-type]
        hat=bool(rng.random() < 0.2),
        hat_colour=_pick(rng, GARMENT_COLOURS),  # type: ignore[arg-type]
        gait_speed=float(rng.uniform(0.45, 0.75)),
    )


@dataclass(frozen=True)
class Skeleton:
    joints: np.ndarray  # NUM_JOINTS x 3 body coordinates
    toes: np.ndarray  # 2 x 3 (right, left): shoe tips
    head: np.ndarray  # 3: head centre
    head_radius: float
    limb_radius: dict[str, float]
    torso_depth: float


def pose_skeleton(person: Identity, phase: float, rng: np.random.Generator, noise: float = 0.012) -> Skeleton:
    """3-D joints of ``person`` at walking-cycle ``phase`` (radians) with small random joint noise."""
    b = person.build
    hip_y = person.leg_ratio
    bob = 0.008 * math.cos(2 * phase)
    shoulder_y = 0.815 + bob
    neck_y = 0.85 + bob
    head_r = 0.062 * person.head_size
    sh_w, hip_w = 0.105 * b, 0.075 * b
    thigh = shin = (hip_y - 0.045) / 2
    upper_arm, forearm = 0.175, 0.16

    swing = 0.42 * math.sin(phase)
    joints = np.zeros((NUM_JOINTS, 3))
    joints[NECK] = (0, neck_y, 0)
    joints[RSH] = (-sh_w, shoulder_y, 0)
    joints[LSH] = (sh_w, shoulder_y, 0)
    joints[RHIP] = (-hip_w, hip_y + bob, 0)
    joints[LHIP] = (hip_w, hip_y + bob, 0)
    toes = np.zeros((2, 3))
    for side, (hip, knee, ankle) in enumerate(((RHIP, RKNEE, RANK), (LHIP, LKNEE, LANK))):
        a = swing if side == 0 else -swing
        leg_phase = phase if side == 0 else phase + math.pi
        bend = 0.55 * max(0.0, math.sin(leg_phase + 1.9)) + 0.05
        joints[knee] = joints[hip] + thigh * np.array((0, -math.cos(a), math.sin(a)))
        joints[ankle] = joints[knee] + shin * np.array((0, -math.cos(a - bend), math.sin(a - bend)))
        toes[side] = joints[ankle] + np.array((0, -0.02, 0.075))
    for side, (sh, el, wr) in enumerate(((RSH, REL, RWR), (LSH, LEL, LWR))):
        s = -0.8 * swing if side == 0 else 0.8 * swing
        sign = -1 if side == 0 else 1
        e = 0.25 + 0.25 * max(0.0, s)
        joints[el] = joints[sh] + upper_arm * np.array((sign * 0.12, -math.cos(s), math.sin(s)))
        joints[wr] = joints[el] + forearm * np.array((sign * 0.06, -math.cos(s + e), math.sin(s + e)))
    head = np.array((0, neck_y + 0.075 * person.head_size, 0.008))
    joints[NOSE] = head + (0, -0.1 * head_r, 0.98 * head_r)
    joints[REYE] = head + (-0.38 * head_r, 0.25 * head_r, 0.85 * head_r)
    joints[LEYE] = head + (0.38 * head_r, 0.25 * head_r, 0.85 * head_r)
    joints[REAR] = head + (-0.97 * head_r, 0.05 * head_r, 0)
    joints[LEAR] = head + (0.97 * head_r, 0.05 * head_r, 0)
    jitter = rng.normal(0, noise, size=joints.shape)
    jitter[list(FACE_POINTS)] = jitter[NECK] * 0.5 + jitter[NOSE] * 0.5  # the head moves rigidly
    head = head + jitter[NOSE]
    joints = joints + jitter
    radius = {
        "upper_arm": 0.03 * b, "forearm": 0.024 * b, "thigh": 0.045 * b, "shin": 0.033 * b,
        "neck": 0.028 * b, "shoe": 0.026,
    }
    return Skeleton(joints=joints, toes=toes, head=head, head_radius=head_r, limb_radius=radius,
                    torso_depth=0.11 * b)


@dataclass(frozen=True)
class View:
    angle: float  # radians about the vertical axis; 0 = facing the camera
    tilt: float  # how much depth shifts image rows (camera looking down)

    def rotate(self, points: np.ndarray) -> np.ndarray:
        """Body -> camera coordinates (u right, v down, d toward the camera), in body heights."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        u = x * c + z * s
        d = -x * s + z * c
        v = -y + self.tilt * d
        return np.stack((u, v, d), axis=-1)


def face_visibility(skel: Skeleton, view: View) -> np.ndarray:
    """Which of the joints are visible to the camera (face points hidden when turned away)."""
    visible = np.ones(NUM_JOINTS, dtype=bool)
    head_d = view.rotate(skel.head)[2]
    depth = view.rotate(skel.joints)[:, 2]
    for j in (NOSE, REYE, LEYE):
        visible[j] = depth[j] - head_d > 0.25 * skel.head_radius
    for j in (REAR, LEAR):
        visible[j] = depth[j] - head_d > -0.45 * skel.head_radius
    return visible
