"""``papg-bench synth --preview``: a labelled grid of the same identities across cameras and modalities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from papg_bench.data.synthvi import GT_DIR, read_keypoints, read_meta, regdb_names
from papg_bench.errors import UserError
from papg_bench.pose.keypoints import DRAWN_LIMBS
from papg_bench.workspace import atomic_path

CELL_HEIGHT = 160
LABEL = 14


def _cell(root: Path, name: str | None, points: np.ndarray | None, height: int, width: int) -> Image.Image:
    if name is None or not (root / name).is_file():
        cell = Image.new("RGB", (width, height), (40, 40, 40))
        ImageDraw.Draw(cell).line((0, 0, width, height), fill=(90, 90, 90))
        return cell
    with Image.open(root / name) as img:
        src_w, src_h = img.size
        cell = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    if points is not None:
        draw = ImageDraw.Draw(cell)
        sx, sy = width / src_w, height / src_h
        pts = [(float(x + 0.5) * sx, float(y + 0.5) * sy) if x >= 0 else None for x, y in points]
        for a, b in DRAWN_LIMBS:
            if pts[a] is not None and pts[b] is not None:
                draw.line((pts[a], pts[b]), fill=(255, 220, 0), width=1)
        for p in pts:
            if p is not None:
                draw.ellipse((p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5), fill=(255, 60, 60))
    return cell


def write_preview(root: Path, target: Path, identities: int = 4) -> Path:
    """Write a PNG grid of ``identities`` people: rows are identities, columns cameras / modalities."""
    root = Path(root)
    meta = read_meta(root)
    if meta is None:
        raise UserError(f"{root} holds no synthvi output ({GT_DIR}/meta.json): run `papg-bench synth` first.")
    if Path(target).suffix.lower() != ".png":
        raise UserError(f"--preview {target}: give a file name ending in .png.")
    points = read_keypoints(root / GT_DIR / "keypoints.csv")
    h, w = meta["image_size"]
    cw = max(1, round(CELL_HEIGHT * w / h))
    if meta["layout"] == "sysu":
        pids = (meta["split_ids"]["test"] + meta["split_ids"]["train"])[:identities]
        headers = ["cam1 RGB", "cam2 RGB", "cam3 IR", "cam4 RGB", "cam5 RGB", "cam6 IR", "twin of 1st"]
        rows = []
        for pid in pids:
            names = []
            for cam in range(1, 7):
                folder = root / f"cam{cam}" / f"{pid:04d}"
                files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
                names.append(f"cam{cam}/{pid:04d}/{files[0]}" if files else None)
            first = next((n for n in names if n is not None), None)
            twin = f"{GT_DIR}/counterparts/{first}" if first else None
            rows.append((pid, [(n, points.get(n or "")) for n in names] + [(twin, points.get(first or ""))]))
    elif meta["layout"] == "llcm":
        from papg_bench.data.synthvi_llcm import preview_rows

        headers, rows = preview_rows(root, meta, points, identities)
    else:
        pids = list(range(1, min(identities, meta["identities"]) + 1))
        headers = [f"{m} {k + 1}" for k in (0, 4, 8) for m in ("visible", "thermal")]
        rows = []
        for pid in pids:
            cells = []
            for k in (0, 4, 8):
                for name in regdb_names(pid, k):
                    cells.append((name, points.get(name)))
            rows.append((pid, cells))
    grid = Image.new("RGB", (60 + cw * len(headers), LABEL + 4 + CELL_HEIGHT * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(headers):
        draw.text((60 + c * cw + 2, 2), text, fill=(0, 0, 0))
    for r, (pid, cells) in enumerate(rows):
        top = LABEL + 4 + r * CELL_HEIGHT
        draw.text((4, top + CELL_HEIGHT // 2 - 6), f"id {pid}", fill=(0, 0, 0))
        for c, (name, pts) in enumerate(cells):
            rel = root / name if name else None
            grid.paste(_cell(root, name if rel else None, pts, CELL_HEIGHT, cw), (60 + c * cw, top))
    with atomic_path(Path(target)) as tmp:
        grid.quantize(colors=256).save(tmp, format="PNG", optimize=True)  # a palette keeps it small
    return Path(target)
