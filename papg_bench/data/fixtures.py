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


def make_llcm_tree(
    root: Path,
    train_ids: list[int] | None = None,
    test_ids: list[int] | None = None,
    images_per_camera: int = 2,
    visible_cameras: tuple[int, ...] = (1, 2, 3, 4),
    infrared_cameras: tuple[int, ...] = (1, 2, 4),
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
) -> Path:
    """Write the LLCM layout: ``vis/``, ``nir/`` training folders listed in ``idx/train_{vis,nir}.txt``
    (label = position of the id among the training ids), ``test_vis/camK/NNNN/``, ``test_nir/camK/NNNN/`` and
    ``idx/test_id.txt``. File names follow the dataset's ``NNNN_cKK_sXXXXXX_fXXXX_{vis,nir}.jpg``; some ids
    miss one camera of a modality (never their only one)."""
    from papg_bench.data.llcm import INFRARED_CAMERAS, VISIBLE_CAMERAS

    root = Path(root)
    train_ids = train_ids if train_ids is not None else [1, 2, 4]
    test_ids = test_ids if test_ids is not None else [3, 5]
    if not set(visible_cameras) <= set(VISIBLE_CAMERAS) or not set(infrared_cameras) <= set(INFRARED_CAMERAS):
        raise ValueError("make_llcm_tree: cameras must be LLCM cameras (infrared has no camera 3)")
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    height, width = size

    def write(folder: Path, pid: int, cam: int, suffix: str, k: int) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{pid:04d}_c{cam:02d}_s{100000 + 37 * pid + cam:06d}_f{k:04d}_{suffix}.jpg"
        _image(rng, pid, suffix == "nir", height, width).save(folder / name, quality=90)
        return name

    def cameras_of(cams: tuple[int, ...]) -> list[int]:
        skip = pick.choice((None, *cams)) if len(cams) > 1 else None
        return [c for c in cams if c != skip]

    (root / "idx").mkdir(parents=True, exist_ok=True)
    labels = {pid: label for label, pid in enumerate(sorted(train_ids))}
    for suffix, cams in (("vis", visible_cameras), ("nir", infrared_cameras)):
        lines = []
        for pid in train_ids:
            for cam in cameras_of(cams):
                for k in range(1, images_per_camera + 1):
                    name = write(root / suffix / f"{pid:04d}", pid, cam, suffix, k)
                    lines.append(f"{suffix}/{pid:04d}/{name} {labels[pid]}")
        (root / "idx" / f"train_{suffix}.txt").write_text("\n".join(lines) + "\n")
    for suffix, cams in (("vis", visible_cameras), ("nir", infrared_cameras)):
        for pid in test_ids:
            for cam in cameras_of(cams):
                for k in range(1, images_per_camera + 1):
                    write(root / f"test_{suffix}" / f"cam{cam}" / f"{pid:04d}", pid, cam, suffix, k)
    (root / "idx" / "test_id.txt").write_text(",".join(str(i) for i in test_ids) + "\n")
    return root
