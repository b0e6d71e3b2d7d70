"""Small dataset trees in the official layouts, built on the fly (tests, and checks of the readers).

Images are coloured noise with a per-identity tint; they exercise the readers and the store, not
learning (synthvi does that).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from papg_bench.data.sysu import ALL_CAMERAS, IR_CAMERAS


def _image(rng: np.random.Generator, pid: int, infrared: bool, height: int, width: int) -> Image.Image:
    tint = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], dtype=np.float32)
    noise = rng.normal(0, 25, size=(height, width, 3))
    pixels = np.clip(tint + noise, 0, 255).astype(np.uint8)
    if infrared:
        pixels = np.repeat(pixels.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    return Image.fromarray(pixels)


def make_sysu_tree(
    root: Path,
    train_ids: list[int] | None = None,
    val_ids: list[int] | None = None,
    test_ids: list[int] | None = None,
    images_per_camera: int = 3,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
) -> Path:
    """Write ``cam1..cam6/NNNN/NNNN.jpg`` and ``exp/*_id.txt``. Some ids miss some cameras."""
    root = Path(root)
    train_ids = train_ids if train_ids is not None else [1, 2, 3, 5]
    val_ids = val_ids if val_ids is not None else [4]
    test_ids = test_ids if test_ids is not None else [6, 7, 8]
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    height, width = size
    for pid in train_ids + val_ids + test_ids:
        cams = list(ALL_CAMERAS)
        skip = pick.choice((None, 2, 5))  # not every id is seen by every camera; IR always present
        for cam in cams:
            if cam == skip:
                continue
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(1, images_per_camera + 1):
                _image(rng, pid, cam in IR_CAMERAS, height, width).save(folder / f"{k:04d}.jpg", quality=90)
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for name, ids in (("train", train_ids), ("val", val_ids), ("test", test_ids)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in ids) + "\n")
    return root


def make_regdb_tree(
    root: Path,
    ids: int = 6,
    images_per_modality: int = 3,
    trials: int = 2,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
) -> Path:
    """Write ``Visible/<id>/``, ``Thermal/<id>/`` and ``idx/`` lists with a half/half split per trial."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = size
    files: dict[tuple[str, int], list[str]] = {}
    for pid in range(1, ids + 1):
        for folder, prefix in (("Visible", "v"), ("Thermal", "t")):
            out = root / folder / str(pid)
            out.mkdir(parents=True, exist_ok=True)
            names = []
            for k in range(images_per_modality):
                name = f"person_{prefix}_{k:05d}_{pid}.bmp"
                _image(rng, pid, folder == "Thermal", height, width).save(out / name)
                names.append(f"{folder}/{pid}/{name}")
            files[(folder, pid)] = names
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for trial in range(1, trials + 1):
        order = list(range(1, ids + 1))
        random.Random(trial).shuffle(order)
        half = {"train": sorted(order[: ids // 2]), "test": sorted(order[ids // 2:])}
        for split, members in half.items():
            for folder, kind in (("Visible", "visible"), ("Thermal", "thermal")):
                lines = [f"{p} {label}" for label, pid in enumerate(members) for p in files[(folder, pid)]]
                (root / "idx" / f"{split}_{kind}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root
