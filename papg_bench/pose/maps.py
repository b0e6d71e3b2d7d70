"""Pose maps for the generator, drawn in torch on the training device for a whole batch.

Two kinds, both from B x 18 x 3 OpenPose-18 keypoints (x, y, confidence in pixels of the image the
map is for; a joint is drawn when its confidence is > 0, missing joints are -1):

``skeleton`` (3 channels)
    The picture the released PAPG code feeds its generator (``draw_pose_from_cords`` at 288x144:
    anti-aliased limb lines, then each joint a disc of radius 2 in its OpenPose colour, on black), with
    the limbs coloured as OpenPose draws them: each of the 17 drawn limbs a line of width
    ``thickness`` in ``keypoints.COLORS[k]`` for limb k (the released code draws them grey), each
    joint a disc of radius ``joint_radius`` in its joint colour on top. Edges are anti-aliased
    (coverage falls from 1 to 0 over one pixel). Values are in [-1, 1] like the images the generator
    sees: black (no pose) = -1, full colour channel = 1.
    Where limbs overlap, each channel keeps the brighter value.
``heatmaps`` (18 channels)
    One Gaussian per joint, ``exp(-d^2 / (2 sigma^2))`` in [0, 1], as the PATN family; all zero for a
    missing joint.

Pixel (row i, column j) has its centre at (x = j, y = i), the convention of
:meth:`papg_bench.data.batches.Geometry.apply_to_keypoints`, so the map of transformed keypoints is
the transformed map. Each limb and joint is rendered only on the pixels near it (a band walked along
the segment), then splatted into the canvas with one ``scatter_reduce``: the cost follows the
skeleton's size, not the image's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from papg_bench.pose.keypoints import COLORS, DRAWN_LIMBS, MISSING, NUM_JOINTS
from papg_bench.pose.keypoints import load_poses as _load_poses

KINDS = ("skeleton", "heatmaps")
DEFAULT_SIGMA = 6.0  # the released code's cords_to_map sigma
DEFAULT_THICKNESS = 2.0
DEFAULT_JOINT_RADIUS = 2.0  # the released code's joint radius


def pose_channels(kind: str) -> int:
    """Channels of a pose map: ``skeleton`` -> 3, ``heatmaps`` -> 18."""
    if kind == "skeleton":
        return 3
    if kind == "heatmaps":
        return NUM_JOINTS
    raise ValueError(f"unknown pose map kind {kind!r}; expected one of {', '.join(KINDS)}")


def render_pose_maps(
    keypoints: torch.Tensor,
    height: int,
    width: int,
    kind: str = "skeleton",
    sigma: float = DEFAULT_SIGMA,
    thickness: float = DEFAULT_THICKNESS,
    joint_radius: float = DEFAULT_JOINT_RADIUS,
) -> torch.Tensor:
    """Float32 B x C x ``height`` x ``width`` pose maps on the keypoints' device (see the module doc)."""
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"keypoints must be B x {NUM_JOINTS} x 3, got {tuple(keypoints.shape)}")
    kp = keypoints.detach().float()
    if kind == "heatmaps":
        return _heatmaps(kp, height, width, sigma)
    if kind == "skeleton":
        return _skeleton(kp, height, width, thickness, joint_radius)
    pose_channels(kind)  # raises the error naming the kinds
    raise AssertionError("unreachable")


def _present(kp: torch.Tensor) -> torch.Tensor:
    return (kp[..., 2] > 0) & torch.isfinite(kp[..., :2]).all(-1)


def _heatmaps(kp: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    present = _present(kp)
    kp = torch.where(present.unsqueeze(-1), kp, torch.zeros_like(kp))  # NaN in an unused joint must not leak
    present = present.to(kp.dtype)
    xs = torch.arange(width, device=kp.device, dtype=kp.dtype)
    ys = torch.arange(height, device=kp.device, dtype=kp.dtype)
    scale = -0.5 / (sigma * sigma)
    # exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2): one outer product per joint.
    gx = torch.exp((xs.view(1, 1, -1) - kp[..., 0:1]).square() * scale) * present.unsqueeze(-1)  # B x J x W
    gy = torch.exp((ys.view(1, 1, -1) - kp[..., 1:2]).square() * scale)  # B x J x H
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


def _skeleton(kp: torch.Tensor, height: int, width: int, thickness: float, joint_radius: float) -> torch.Tensor:
    batch = kp.shape[0]
    device = kp.device
    colors = torch.tensor(COLORS, dtype=kp.dtype, device=device) / 255.0
    present = _present(kp)
    canvas = torch.zeros(batch, 3, height * width, dtype=kp.dtype, device=device)
    if batch == 0:
        return canvas.view(batch, 3, height, width)

    limbs = torch.tensor(DRAWN_LIMBS, device=device)
    start, end = kp[:, limbs[:, 0], :2], kp[:, limbs[:, 1], :2]  # B x L x 2
    limb_ok = present[:, limbs[:, 0]] & present[:, limbs[:, 1]]
    half = thickness / 2.0
    _splat_segments(canvas, start, end, limb_ok, half, colors[: len(DRAWN_LIMBS)], height, width)

    # Joints go on top: over-composite (alpha = coverage) their discs onto the limbs.
    joint_layer = torch.zeros_like(canvas)
    alpha = torch.zeros(batch, 1, height * width, dtype=kp.dtype, device=device)
    _splat_segments(joint_layer, kp[..., :2], kp[..., :2], present, joint_radius, colors[:NUM_JOINTS],
                    height, width, alpha=alpha)
    canvas = canvas * (1 - alpha) + joint_layer
    return (canvas * 2 - 1).view(batch, 3, height, width)


def _splat_segments(
    canvas: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    valid: torch.Tensor,
    half_width: float,
    colors: torch.Tensor,
    height: int,
    width: int,
    alpha: torch.Tensor | None = None,
) -> None:
    """Draw B x S segments (a point when start == end) of half-width ``half_width`` into ``canvas``.

    ``canvas`` is B x 3 x (H*W); each channel takes the max over segments of colour * coverage.
    When ``alpha`` (B x 1 x (H*W)) is given it takes the max coverage as well.
    """
    batch, segments = start.shape[:2]
    device, dtype = canvas.device, canvas.dtype
    reach = half_width + 0.5  # coverage is zero beyond this distance from the segment
    # Walk each segment along its major axis one pixel column (or row) at a time, from one cap to the
    # other, and take the few pixels across it that can be within reach: a slope of at most 1 puts
    # them within reach * sqrt(2) of the segment's centre line. Work grows with the segment's length,
    # not with its bounding box or the image.
    keep = valid.unsqueeze(-1)
    start = torch.where(keep, start, torch.zeros_like(start))  # no NaN or far-off values from unused joints
    end = torch.where(keep, end, torch.zeros_like(end))
    delta = end - start
    major_is_x = delta[..., 0].abs() >= delta[..., 1].abs()  # B x S
    a_major = torch.where(major_is_x, start[..., 0], start[..., 1])
    a_minor = torch.where(major_is_x, start[..., 1], start[..., 0])
    d_major = torch.where(major_is_x, delta[..., 0], delta[..., 1])
    d_minor = torch.where(major_is_x, delta[..., 1], delta[..., 0])
    # Start the walk no further out than just before the image and never walk further than across it:
    # joints far outside the image cost no more than joints inside it.
    lo_major = (torch.minimum(a_major, a_major + d_major) - reach).clamp(min=-reach - 1)
    span = torch.where(valid, d_major.abs(), torch.zeros_like(d_major))
    longest = span.max().item()  # one host sync for the whole batch
    steps = int(math.ceil(min(longest, max(height, width)) + 2 * reach)) + 3
    across = int(math.ceil(reach * math.sqrt(2.0))) + 1
    major = lo_major.floor()[..., None, None] + torch.arange(steps, device=device, dtype=dtype).view(1, 1, -1, 1)
    safe_d_major = torch.where(d_major == 0, torch.ones_like(d_major), d_major)
    t_line = ((major - a_major[..., None, None]) / safe_d_major[..., None, None]).clamp(0, 1)
    centre = (a_minor[..., None, None] + t_line * d_minor[..., None, None]).round()
    minor = centre + torch.arange(-across, across + 1, device=device, dtype=dtype).view(1, 1, 1, -1)

    # Exact distance from each candidate pixel to its segment (distances do not care which axis is
    # called major): project onto the segment, clamp to its ends.
    dm, dn = d_major[..., None, None], d_minor[..., None, None]
    pm, pn = major - a_major[..., None, None], minor - a_minor[..., None, None]
    inv_length2 = 1.0 / (dm.square() + dn.square()).clamp(min=1e-12)
    t = ((pm * dm + pn * dn) * inv_length2).clamp(0, 1)
    dist = torch.sqrt((pm - t * dm).square() + (pn - t * dn).square())
    mx = major_is_x[..., None, None]
    lim_major = torch.where(mx, width - 1, height - 1)
    lim_minor = torch.where(mx, height - 1, width - 1)
    inside = (major >= 0) & (major <= lim_major) & valid[..., None, None]
    inside = inside & (minor >= 0) & (minor <= lim_minor)
    coverage = (reach - dist).clamp(0, 1) * inside
    stride_major = torch.where(mx, 1, width)  # flat index = y * width + x
    stride_minor = torch.where(mx, width, 1)
    index = (major.clamp(min=0).long().minimum(lim_major) * stride_major
             + minor.clamp(min=0).long().minimum(lim_minor) * stride_minor)
    box_h, box_w = steps, 2 * across + 1
    index = index.expand(batch, segments, box_h, box_w).reshape(batch, 1, -1)
    flat = coverage.reshape(batch, 1, -1)
    values = flat * colors.t().reshape(1, 3, segments, 1).expand(batch, 3, segments, box_h * box_w).reshape(
        batch, 3, -1)
    canvas.scatter_reduce_(2, index.expand(batch, 3, -1), values, reduce="amax")
    if alpha is not None:
        alpha.scatter_reduce_(2, index, flat, reduce="amax")


def scale_keypoints(keypoints: torch.Tensor | np.ndarray, from_size: tuple[int, int],
                    to_size: tuple[int, int]) -> torch.Tensor | np.ndarray:
    """Rescale ... x 3 keypoints from an image of ``from_size`` (H, W) to one of ``to_size``.

    Uses the pixel-centre convention of image resizing (``x' = (x + 0.5) * W'/W - 0.5``), so a
    keypoint stays on the same content as the image is resized. Missing joints stay -1.
    """
    (fh, fw), (th, tw) = from_size, to_size
    sx, sy = tw / fw, th / fh
    is_numpy = isinstance(keypoints, np.ndarray)
    kp = torch.as_tensor(np.asarray(keypoints, dtype=np.float32)).clone() if is_numpy else keypoints.float().clone()
    missing = kp[..., 2] < 0
    kp[..., 0] = (kp[..., 0] + 0.5) * sx - 0.5
    kp[..., 1] = (kp[..., 1] + 0.5) * sy - 0.5
    kp[missing] = MISSING
    return kp.numpy() if is_numpy else kp


def load_poses(store_path: Path | str) -> np.ndarray:
    """The store's ``poses.npy``: N x 18 x 3 float32 (UserError saying to run ``papg-bench pose`` if absent)."""
    return _load_poses(store_path)
