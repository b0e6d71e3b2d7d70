"""Reader for the official LLCM layout (Zhang & Wang, CVPR 2023).

    <root>/idx/train_vis.txt, <root>/idx/train_nir.txt   lines "relative/path label",
                                                         e.g. "vis/0001/0001_c01_s185535_f7010_vis.jpg 0"
    <root>/idx/test_id.txt                               one line of comma-separated test ids
    <root>/test_vis/cam1..cam9/NNNN/*.jpg                visible test images
    <root>/test_nir/cam1,cam2,cam4..cam9/NNNN/*.jpg      near-infrared test images (no infrared camera 3)

Training records: modality from the list (train_vis -> visible, train_nir -> infrared), identity from the
folder holding the image (the lists' labels must name the same identities: one label per folder), camera
from a ``camK`` folder in the path or else the ``_cKK`` token of the file name. Test records: camera and
identity from the ``camK/NNNN`` folders, restricted to the ids of ``idx/test_id.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

from papg_bench.data.dataset import Dataset
from papg_bench.data.listing import (
    IMAGE_SUFFIXES,
    INFRARED,
    VISIBLE,
    DatasetListing,
    ImageRecord,
    read_path_label_list,
)
from papg_bench.errors import UserError

VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
INFRARED_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
CAMERAS = {VISIBLE: VISIBLE_CAMERAS, INFRARED: INFRARED_CAMERAS}
TRAIN_LISTS = {VISIBLE: "train_vis.txt", INFRARED: "train_nir.txt"}
TEST_FOLDERS = {VISIBLE: "test_vis", INFRARED: "test_nir"}
TEST_ID_FILE = "test_id.txt"
_CAM_FOLDER_RE = re.compile(r"^cam([1-9])$")
_TRAIN_CAM_FOLDER_RE = re.compile(r"^cam(\d+)$")
_CAM_TOKEN_RE = re.compile(r"(?:^|_)c(\d+)(?=[_.])")
_LAYOUT = "an LLCM root holds idx/ (train_vis.txt, train_nir.txt, test_id.txt), test_vis/ and test_nir/"


def _cameras_text(cams: tuple[int, ...]) -> str:
    return ", ".join(f"cam{c}" for c in cams)


def idx_file(root: Path, name: str) -> Path:
    return Path(root) / "idx" / name


def read_test_ids(root: Path) -> list[int]:
    """The ids of ``idx/test_id.txt`` in file order: one line of comma-separated integers."""
    path = idx_file(root, TEST_ID_FILE)
    if not path.is_file():
        raise UserError(
            f"{path} is missing: it must hold the LLCM test ids on one line, comma-separated (e.g. 3,5,12); {_LAYOUT}."
        )
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if not lines:
        raise UserError(f"{path} is empty: expected one line of comma-separated integer ids, e.g. 3,5,12.")
    if len(lines) > 1:
        raise UserError(f"{path} has {len(lines)} lines: the test ids must be on one line, comma-separated.")
    ids: list[int] = []
    for token in lines[0].split(","):
        token = token.strip()
        if not token.isdigit():
            raise UserError(
                f"{path}: '{token[:20]}' is not an integer id; expected one line of comma-separated integers, "
                "e.g. 3,5,12."
            )
        if int(token) in ids:
            raise UserError(f"{path}: id {int(token)} is listed twice; each test id must appear once.")
        ids.append(int(token))
    return ids


def ordered_ids(ids: list[int]) -> list[int]:
    """Ids in the order of their zero-padded folder names (``"%04d"``), the order the test sets are built in."""
    return sorted(ids, key=lambda pid: f"{pid:04d}")


def _train_camera(rel: str, path: Path, number: int) -> int:
    parts = rel.split("/")
    cams = [int(m.group(1)) for part in parts[:-1] if (m := _TRAIN_CAM_FOLDER_RE.match(part.lower()))]
    if not cams:
        token = _CAM_TOKEN_RE.search(parts[-1])
        if token is None:
            raise UserError(
                f"{path}:{number}: '{rel}' names no camera: expected a camK folder or a file name like "
                "0001_c01_s185535_f7010_vis.jpg."
            )
        cams = [int(token.group(1))]
    cam = cams[-1]
    if cam not in VISIBLE_CAMERAS:
        raise UserError(f"{path}:{number}: '{rel}' is from camera {cam}; LLCM cameras are 1..9.")
    return cam


def read_train_list(root: Path, modality: str) -> list[tuple[str, int, int, int, int]]:
    """``(path, pid, cam, label, line number)`` for each line of ``idx/train_vis.txt`` or ``idx/train_nir.txt``."""
    path = idx_file(root, TRAIN_LISTS[modality])
    if not path.is_file():
        raise UserError(
            f"{path} is missing: it must list the LLCM {'visible' if modality == VISIBLE else 'infrared'} "
            "training images, one 'relative/path label' per line (e.g. vis/0001/0001_c01_s185535_f7010_vis.jpg 0)."
        )
    entries = []
    for number, rel, label in read_path_label_list(path):
        folders = rel.split("/")
        if len(folders) < 2 or not folders[-2].isdigit():
            raise UserError(
                f"{path}:{number}: '{rel}' is not in an identity folder; expected <modality>/NNNN/<file> such as "
                "vis/0001/0001_c01_s185535_f7010_vis.jpg."
            )
        entries.append((rel, int(folders[-2]), _train_camera(rel, path, number), label, number))
    return entries


def _check_labels(root: Path, lists: dict[str, list[tuple[str, int, int, int, int]]]) -> None:
    """Each training label must name exactly one identity folder, in both lists together."""
    folder_of: dict[int, tuple[int, str]] = {}
    label_of: dict[int, tuple[int, str]] = {}
    for modality, entries in lists.items():
        name = TRAIN_LISTS[modality]
        for rel, pid, _cam, label, number in entries:
            where = f"{name}:{number}"
            seen_pid, seen_at = folder_of.setdefault(label, (pid, where))
            if seen_pid != pid:
                raise UserError(
                    f"{idx_file(root, name)}:{number}: label {label} is given to identity folder {pid:04d} ('{rel}') "
                    f"and to folder {seen_pid:04d} at {seen_at}; the lists must give one label per identity."
                )
            seen_label, seen_at = label_of.setdefault(pid, (label, where))
            if seen_label != label:
                raise UserError(
                    f"{idx_file(root, name)}:{number}: identity folder {pid:04d} ('{rel}') has label {label} here and "
                    f"label {seen_label} at {seen_at}; the lists must give one label per identity."
                )


def camera_folders(root: Path, modality: str) -> dict[int, dict[int, Path]]:
    """camera -> identity -> folder under ``test_vis/`` or ``test_nir/``, every camera folder checked."""
    top = Path(root) / TEST_FOLDERS[modality]
    if not top.is_dir():
        raise UserError(f"{top} is missing: {_LAYOUT}.")
    allowed = CAMERAS[modality]
    folders: dict[int, dict[int, Path]] = {}
    for entry in sorted(top.iterdir()):
        if not entry.is_dir() or not entry.name.lower().startswith("cam"):
            continue
        match = _CAM_FOLDER_RE.match(entry.name)
        if match is None or int(match.group(1)) not in allowed:
            raise UserError(
                f"{entry}: '{entry.name}' is not an LLCM {TEST_FOLDERS[modality]} camera folder (those are "
                f"{_cameras_text(allowed)}); rename or remove it."
            )
        cam = int(match.group(1))
        ids: dict[int, Path] = {}
        for id_dir in sorted(entry.iterdir()):
            if not id_dir.is_dir():
                continue
            if not id_dir.name.isdigit() or id_dir.name != f"{int(id_dir.name):04d}":
                raise UserError(
                    f"{id_dir}: identity folder name '{id_dir.name}' is not a zero-padded number; expected "
                    f"{TEST_FOLDERS[modality]}/cam{cam}/NNNN/ folders such as cam{cam}/0001/."
                )
            ids[int(id_dir.name)] = id_dir
        folders[cam] = ids
    return folders


def image_names(folder: Path) -> list[str]:
    """Image file names of one folder, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_llcm(root: Path) -> DatasetListing:
    """List the training images of both idx lists and every test image of the test ids."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the LLCM root ({_LAYOUT}).")
    if not (root / "idx").is_dir():
        raise UserError(f"{root / 'idx'} is missing: {_LAYOUT}. Check --root.")
    lists = {modality: read_train_list(root, modality) for modality in TRAIN_LISTS}
    test_ids = read_test_ids(root)
    _check_labels(root, lists)
    records: list[ImageRecord] = []
    listed: dict[str, str] = {}
    for modality, entries in lists.items():
        name = TRAIN_LISTS[modality]
        for rel, pid, cam, _label, number in entries:
            if rel in listed:
                raise UserError(f"{idx_file(root, name)}:{number}: '{rel}' is already listed at {listed[rel]}.")
            listed[rel] = f"{name}:{number}"
            if not (root / rel).is_file():
                raise UserError(f"{idx_file(root, name)}:{number}: listed image {root / rel} does not exist.")
            records.append(ImageRecord(path=rel, pid=pid, cam=cam, modality=modality, split="train"))
    train_ids = sorted({r.pid for r in records})
    wanted = set(test_ids)
    unlisted = 0
    for modality, top in TEST_FOLDERS.items():
        for cam, ids in camera_folders(root, modality).items():
            for pid, folder in ids.items():
                names = image_names(folder)
                if pid not in wanted:
                    unlisted += len(names)
                    continue
                records.extend(
                    ImageRecord(path=f"{top}/{folder.parent.name}/{folder.name}/{n}", pid=pid, cam=cam,
                                modality=modality, split="test")
                    for n in names
                )
    if not any(r.split == "test" for r in records):
        raise UserError(f"{root}: no images of the ids in idx/test_id.txt were found under test_vis/ or test_nir/.")
    info = {
        "split_ids": {"train": train_ids, "test": test_ids},
        "unlisted_images": unlisted,
        "train_ids_in_test": sorted(wanted.intersection(train_ids)),
        "cameras": {VISIBLE: list(VISIBLE_CAMERAS), INFRARED: list(INFRARED_CAMERAS)},
    }
    return DatasetListing(name="llcm", records=records, info=info)


class LlcmDataset(Dataset):
    """LLCM (Zhang & Wang, CVPR 2023): 9 cameras, each visible by day (often in low light) and infrared at night."""

    name = "llcm"
    title = "LLCM"
    protocol_module = "papg_bench.protocols.llcm"
    visible_cameras = VISIBLE_CAMERAS
    infrared_cameras = INFRARED_CAMERAS

    def read(self, root: Path) -> DatasetListing:
        return read_llcm(root)


DATASET = LlcmDataset()
