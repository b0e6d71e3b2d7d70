"""The quality report of ``papg-bench pose``: detection rates, PCK against ground truth, a preview sheet.

Detection rate
    The share of the 18 joints that are confident (not missing), averaged over images, per modality
    and per camera; also the share of images with at least one joint.
PCK@0.5 (head-size normalised)
    The convention of the pose-transfer evaluations (Pose-Transfer's ``calPCKH``): an image's head
    size is the diagonal of the bounding box of its ground-truth head joints (nose, neck, eyes, ears;
    at least two needed, else the image is left out); a ground-truth joint counts as found when the
    prediction has it within ``0.5 x head size``. PCK = found / ground-truth joints, per modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.pose.keypoints import OPENPOSE18

HEAD_JOINTS = tuple(OPENPOSE18.index(n) for n in ("nose", "neck", "r_eye", "l_eye", "r_ear", "l_ear"))
PCK_ALPHA = 0.5
PREVIEW_IMAGES = 16


def present(poses: np.ndarray) -> np.ndarray:
    return poses[..., 2] > 0


def detection_rates(poses: np.ndarray, modalities: np.ndarray, cams: np.ndarray) -> dict[str, Any]:
    """{"all": {...}, "modality": {"V": {...}, "I": {...}}, "camera": {"1": {...}, ...}}.

    Each entry: images, joint_rate (share of confident joints), image_rate (images with any joint).
    """
    ok = present(poses)

    def stats(mask: np.ndarray) -> dict[str, float]:
        count = int(mask.sum())
        if count == 0:
            return {"images": 0, "joint_rate": 0.0, "image_rate": 0.0}
        return {"images": count, "joint_rate": float(ok[mask].mean()), "image_rate": float(ok[mask].any(1).mean())}

    return {
        "all": stats(np.ones(len(poses), dtype=bool)),
        "modality": {str(m): stats(modalities == m) for m in sorted(set(modalities.tolist()))},
        "camera": {str(c): stats(cams == c) for c in sorted(set(cams.tolist()))},
    }


def head_sizes(truth: np.ndarray) -> np.ndarray:
    """Per image: the diagonal of the bounding box of the present ground-truth head joints (NaN if < 2)."""
    head = truth[:, HEAD_JOINTS]
    ok = present(head)[..., None]
    low = np.where(ok, head[..., :2], np.inf).min(axis=1)
    high = np.where(ok, head[..., :2], -np.inf).max(axis=1)
    size = np.hypot(*(high - low).T)
    size[ok[..., 0].sum(1) < 2] = np.nan
    return size


def pck(poses: np.ndarray, truth: np.ndarray, modalities: np.ndarray, alpha: float = PCK_ALPHA) -> dict[str, Any]:
    """PCK@alpha per modality and overall, with the number of ground-truth joints each counts."""
    size = head_sizes(truth)
    judged = present(truth) & np.isfinite(size)[:, None]
    dist = np.hypot(*(poses[..., :2] - truth[..., :2]).transpose(2, 0, 1))
    found = judged & present(poses) & (dist <= alpha * np.nan_to_num(size, nan=0.0)[:, None])

    def stats(mask: np.ndarray) -> dict[str, float]:
        total = int(judged[mask].sum())
        return {"joints": total, "pck": float(found[mask].sum() / total) if total else float("nan"),
                "images": int(np.isfinite(size[mask]).sum())}

    return {
        "alpha": alpha,
        "all": stats(np.ones(len(poses), dtype=bool)),
        "modality": {str(m): stats(modalities == m) for m in sorted(set(modalities.tolist()))},
    }


def preview_rows(modalities: np.ndarray, count: int = PREVIEW_IMAGES) -> np.ndarray:
    """Up to ``count`` rows spread evenly over the store, half from each modality (deterministic)."""
    picks = []
    groups = [np.flatnonzero(modalities == m) for m in sorted(set(modalities.tolist()))]
    per_group = max(1, count // max(1, len(groups)))
    for rows in groups:
        take = min(per_group, len(rows))
        picks.extend(rows[np.linspace(0, len(rows) - 1, take).round().astype(int)] if take else [])
    return np.asarray(sorted(set(int(r) for r in picks)), dtype=np.int64)[:count]


def write_preview(path: Path, images: np.ndarray, poses: np.ndarray, columns: int = 8) -> Path:
    """A PNG contact sheet of ``images`` (B x H x W x 3 uint8) with their skeletons drawn over them."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from papg_bench.pose.maps import render_pose_maps, scale_keypoints
    from papg_bench.workspace import atomic_path

    batch, height, width = images.shape[:3]
    scale = max(1, round(288 / height))  # draw at about the released 288-pixel height, so lines stay thin
    big_h, big_w = height * scale, width * scale
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    pixels = F.interpolate(pixels, size=(big_h, big_w), mode="bilinear", align_corners=False) if scale > 1 else pixels
    kp = scale_keypoints(torch.from_numpy(np.ascontiguousarray(poses, dtype=np.float32)), (height, width),
                         (big_h, big_w))
    drawing = (render_pose_maps(kp, big_h, big_w, "skeleton") + 1) / 2  # colour x coverage, in [0, 1]
    alpha = drawing.amax(dim=1, keepdim=True)  # every colour has a full channel, so this is the coverage
    sheet = (pixels * (1 - alpha) + drawing).clamp(0, 1)
    rows = (batch + columns - 1) // columns
    canvas = torch.zeros(3, rows * big_h, min(batch, columns) * big_w)
    for i in range(batch):
        r, c = divmod(i, columns)
        canvas[:, r * big_h:(r + 1) * big_h, c * big_w:(c + 1) * big_w] = sheet[i]
    array = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def report_tables(detection: dict[str, Any], pck_result: dict[str, Any] | None = None) -> list[Any]:
    """Rich tables of the detection rates (and PCK when given) for the command line."""
    from rich.table import Table

    table = Table(title="pose detection rate (share of confident joints)")
    for col in ("group", "images", "joints found", "images with a pose"):
        table.add_column(col, justify="right" if col != "group" else "left")

    def add(label: str, s: dict[str, float]) -> None:
        table.add_row(label, str(s["images"]), f"{100 * s['joint_rate']:.1f}%", f"{100 * s['image_rate']:.1f}%")

    add("all", detection["all"])
    for m, s in detection["modality"].items():
        add({"V": "visible", "I": "infrared"}.get(m, m), s)
    for c, s in detection["camera"].items():
        add(f"camera {c}", s)
    tables = [table]
    if pck_result is not None:
        t = Table(title=f"PCK@{pck_result['alpha']} (head-size normalised) against ground truth")
        for col in ("group", "images", "joints", "PCK"):
            t.add_column(col, justify="right" if col != "group" else "left")
        for label, s in [("all", pck_result["all"])] + [
            ({"V": "visible", "I": "infrared"}.get(m, m), s) for m, s in pck_result["modality"].items()
        ]:
            t.add_row(label, str(s["images"]), str(s["joints"]), f"{100 * s['pck']:.1f}%" if s["joints"] else "-")
        tables.append(t)
    return tables
