"""The PATN / PAPG keypoint annotation CSV, read and written here only.

First line exactly ``name:keypoints_y:keypoints_x``, then one line per image ``name: [18 ys]: [18 xs]``:
integer pixel coordinates in OpenPose-18 order (:data:`.keypoints.OPENPOSE18`), -1 for a missing joint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from papg_bench.errors import UserError
from papg_bench.pose.keypoints import MISSING, NUM_JOINTS

CSV_HEADER = "name:keypoints_y:keypoints_x"

Row = tuple[str, Sequence[int], Sequence[int]]  # name, 18 ys, 18 xs


def format_row(name: str, ys: Sequence[int], xs: Sequence[int]) -> str:
    return f"{name}: [{', '.join(map(str, ys))}]: [{', '.join(map(str, xs))}]"


def write_annotations(path: Path, rows: Iterable[Row]) -> int:
    """Write the header and one line per ``(name, ys, xs)`` row, through a temporary name; returns the row count."""
    from papg_bench.workspace import atomic_write_text

    lines = [CSV_HEADER] + [format_row(*row) for row in rows]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return len(lines) - 1


def read_annotations(path: Path) -> tuple[list[str], np.ndarray]:
    """The names as written and their K x 18 x 3 float32 keypoints (x, y, 1; a missing joint is -1 in all three).

    Raises one :class:`UserError` naming the line for a malformed file.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != CSV_HEADER:
        first = lines[0][:60] if lines else "(empty file)"
        raise UserError(f"{path}: first line must be exactly '{CSV_HEADER}' (PATN/PAPG annotation CSV), "
                        f"found {first!r}.")
    names: list[str] = []
    points: list[np.ndarray] = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise UserError(f"{path}:{number}: expected 'name: [18 ys]: [18 xs]', found {line[:80]!r}.")
        name, ys_text, xs_text = parts
        try:
            ys, xs = json.loads(ys_text), json.loads(xs_text)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{number}: the y and x lists must be [..] lists of numbers.") from None
        if not (isinstance(ys, list) and isinstance(xs, list)) or len(ys) != NUM_JOINTS or len(xs) != NUM_JOINTS:
            counts = f"{len(ys) if isinstance(ys, list) else '?'} ys and {len(xs) if isinstance(xs, list) else '?'} xs"
            raise UserError(f"{path}:{number}: {counts}; every row needs {NUM_JOINTS} of each (OpenPose-18 order, "
                            "-1 for a missing joint).")
        y, x = np.asarray(ys, dtype=np.float32), np.asarray(xs, dtype=np.float32)
        kp = np.stack([x, y, np.ones_like(x)], axis=1)
        kp[(x < 0) | (y < 0)] = MISSING
        names.append(name)
        points.append(kp)
    if not names:
        raise UserError(f"{path}: no keypoint rows after the header.")
    return names, np.stack(points)
