"""Reader for the official SYSU-MM01 layout.

    <root>/cam1..cam6/NNNN/*.jpg     RGB cameras cam1, cam2, cam4, cam5; IR cameras cam3, cam6
    <root>/exp/train_id.txt          one line of comma-separated ids (likewise val_id, test_id)

Camera, identity and modality come from folder names, never from string offsets.
"""

from __future__ import annotations

import re
from pathlib import Path

from papg_bench.data.dataset import Dataset
from papg_bench.data.listing import IMAGE_SUFFIXES, INFRARED, VISIBLE, DatasetListing, ImageRecord
from papg_bench.errors import UserError

RGB_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
ALL_CAMERAS = (1, 2, 3, 4, 5, 6)
ID_FILES = {"train": "train_id.txt", "val": "val_id.txt", "test": "test_id.txt"}
_CAM_RE = re.compile(r"^cam([1-6])$")


def modality_of_camera(cam: int) -> str:
    return INFRARED if cam in IR_CAMERAS else VISIBLE


def read_id_file(path: Path) -> list[int]:
    """Parse one SYSU id file: a single line of comma-separated integers."""
    if not path.is_file():
        raise UserError(
            f"{path} is missing: a SYSU-MM01 root needs exp/train_id.txt, exp/val_id.txt and "
            "exp/test_id.txt, each one line of comma-separated ids."
        )
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    if not tokens:
        raise UserError(f"{path} is empty: expected one line of comma-separated integer ids, e.g. 1,2,4,5.")
    ids = []
    for token in tokens:
        if not token.isdigit():
            raise UserError(
                f"{path}: '{token[:20]}' is not an integer id; expected one line of comma-separated "
                "integers, e.g. 1,2,4,5."
            )
        ids.append(int(token))
    return ids


def read_split_ids(root: Path) -> dict[str, list[int]]:
    exp = root / "exp"
    if not exp.is_dir():
        raise UserError(
            f"{exp} is missing: a SYSU-MM01 root holds cam1..cam6/ and exp/ with train_id.txt, "
            "val_id.txt and test_id.txt. Check --root."
        )
    splits = {name: read_id_file(exp / fname) for name, fname in ID_FILES.items()}
    seen: dict[int, str] = {}
    for name, ids in splits.items():
        for pid in ids:
            if pid in seen and seen[pid] != name:
                raise UserError(f"{exp}: id {pid} is listed in both {seen[pid]} and {name} id files.")
            seen[pid] = name
    return splits


def camera_folders(root: Path) -> dict[int, Path]:
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the SYSU-MM01 root (holding cam1..cam6 and exp/).")
    cams: dict[int, Path] = {}
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not entry.name.lower().startswith("cam"):
            continue
        match = _CAM_RE.match(entry.name)
        if match is None:
            raise UserError(
                f"{entry}: camera folder name '{entry.name}' is not camK with K in 1..6 "
                "(SYSU-MM01 has cam1 .. cam6). Rename or remove it."
            )
        cams[int(match.group(1))] = entry
    if not cams:
        raise UserError(f"{root} holds no camera folders: expected cam1 .. cam6 (each with NNNN/*.jpg).")
    return cams


def read_sysu(root: Path) -> DatasetListing:
    """List every image of the train, val and test ids with its id, camera, modality and split."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the SYSU-MM01 root (holding cam1..cam6 and exp/).")
    splits = read_split_ids(root)
    split_of = {pid: name for name, ids in splits.items() for pid in ids}
    records: list[ImageRecord] = []
    unlisted = 0
    for cam, folder in camera_folders(root).items():
        for id_dir in sorted(folder.iterdir()):
            if not id_dir.is_dir():
                continue
            if not id_dir.name.isdigit():
                raise UserError(
                    f"{id_dir}: identity folder name '{id_dir.name}' is not a number; "
                    f"expected cam{cam}/NNNN/ folders such as cam{cam}/0001/."
                )
            pid = int(id_dir.name)
            files = sorted(p.name for p in id_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if pid not in split_of:
                unlisted += len(files)
                continue
            for name in files:
                records.append(
                    ImageRecord(
                        path=f"{folder.name}/{id_dir.name}/{name}",
                        pid=pid,
                        cam=cam,
                        modality=modality_of_camera(cam),
                        split=split_of[pid],
                    )
                )
    if not records:
        raise UserError(f"{root}: no images of the listed ids were found under cam1..cam6/NNNN/*.jpg.")
    info = {"split_ids": splits, "unlisted_images": unlisted}
    return DatasetListing(name="sysu", records=records, info=info)


class SysuDataset(Dataset):
    """SYSU-MM01 (Wu et al., ICCV 2017): 4 visible and 2 near-infrared cameras, train/val/test id files."""

    name = "sysu"
    title = "SYSU-MM01"
    protocol_module = "papg_bench.protocols.sysu"
    visible_cameras = RGB_CAMERAS
    infrared_cameras = IR_CAMERAS

    def read(self, root: Path) -> DatasetListing:
        return read_sysu(root)


DATASET = SysuDataset()
