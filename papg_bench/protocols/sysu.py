"""SYSU-MM01 query and gallery, exactly as the widely used VI-ReID evaluation builds them.

Query: every IR image of the test ids: ids ascending, then cam3, cam6, then sorted file names.

Gallery of trial ``t`` (``sampling="seed"``, what nearly all VI-ReID code reports): ``random.seed(t)``, then
for each test id ascending, for each RGB camera of the mode in order (all: cam1, cam2, cam4, cam5; indoor:
cam1, cam2) that has a non-empty folder for that id, ``random.choice`` of the sorted file names
(single-shot), or ``random.sample(files, min(10, len(files)))`` (multi-shot, ``shots=10``).

``sampling="official"``: the dataset authors' fixed permutation ``<root>/exp/rand_perm_cam.mat`` (or the file
``--split-file`` names; it is ``evaluation/data_split/rand_perm_cam.mat`` of ``wuancong/SYSU-MM01``). Its
variable ``rand_perm_cam`` holds, per camera (index cam-1) and identity (index id-1), one row per trial of
image numbers; trial ``t`` takes the first ``shots`` numbers of row ``t`` as ``camK/NNNN/NNNN.jpg``,
cameras in the mode's order on the outside and ids ascending inside.

Official feature files (``sysu-mat``): the dataset authors' MATLAB evaluation (``wuancong/SYSU-MM01``,
``evaluation/evaluation_SYSU_MM01.m`` and ``get_testing_set.m``) loads ``<name>_cam<k>.mat`` for k = 1..6,
each holding a cell ``feature`` with ``feature{id}(i,:)`` the feature of the i-th image of identity ``id``
(file order, so row i is ``i``'s image number in the released dataset), one cell per identity number up to
the camera's highest (identities are read as ``1:length(feature)`` and index ``rand_perm_cam``); an
identity the camera does not see, or whose features are not given (training identities), is a zero-row
cell. :func:`write_sysu_mat` writes them, :func:`read_sysu_mat` reads them back.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.listing import IMAGE_SUFFIXES
from papg_bench.data.sysu import ALL_CAMERAS, IR_CAMERAS, camera_folders, read_split_ids
from papg_bench.errors import UserError
from papg_bench.protocols.feature_files import FeatureTable, feature_table
from papg_bench.protocols.protocol import Protocol, SplitFile
from papg_bench.protocols.splits import Split

MODES = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
SAMPLINGS = ("seed", "official")
SHOTS = (1, 10)
TRIALS = tuple(range(10))
PERM_FILE = "rand_perm_cam.mat"
PERM_SOURCE = "the SYSU-MM01 evaluation code (wuancong/SYSU-MM01, evaluation/data_split/rand_perm_cam.mat)"
MAT_FORMAT = "sysu-mat"
MAT_VARIABLE = "feature"


def check_options(mode: str, shots: int, sampling: str) -> None:
    if mode not in MODES:
        raise UserError(f"--mode {mode!r}: SYSU-MM01 modes are 'all' and 'indoor'.")
    if shots not in SHOTS:
        raise UserError(f"--shots {shots}: SYSU-MM01 galleries are single-shot (1) or multi-shot (10).")
    if sampling not in SAMPLINGS:
        raise UserError(f"--sampling {sampling!r}: use 'seed' (random.seed(trial)) or 'official' (rand_perm_cam.mat).")


def protocol_id(mode: str, shots: int, sampling: str, rerank: bool = False) -> str:
    """E.g. ``sysu/all/single-shot/seed-trials/v1``; re-ranking adds a ``rerank`` segment before the version."""
    gallery = "single-shot" if shots == 1 else "multi-shot"
    draws = "seed-trials" if sampling == "seed" else "official-perm"
    return f"sysu/{mode}/{gallery}/{draws}{'/rerank' if rerank else ''}/v1"


def _id_folders(root: Path) -> dict[int, dict[int, Path]]:
    """camera -> id -> folder, for every numeric identity folder."""
    folders: dict[int, dict[int, Path]] = {}
    for cam, cam_dir in camera_folders(root).items():
        folders[cam] = {int(d.name): d for d in cam_dir.iterdir() if d.is_dir() and d.name.isdigit()}
    return folders


def _images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _rel(folder: Path, name: str) -> str:
    return f"{folder.parent.name}/{folder.name}/{name}"


def evaluation_ids(root: Path) -> list[int]:
    """The test ids (exp/test_id.txt), ascending."""
    return sorted(set(read_split_ids(Path(root))["test"]))


def query_split(root: Path, folders: dict[int, dict[int, Path]] | None = None) -> Split:
    """Every IR image of the test ids (ids ascending, cam3 then cam6, sorted file names)."""
    root = Path(root)
    ids = evaluation_ids(root)
    folders = folders if folders is not None else _id_folders(root)
    rows = []
    for pid in ids:
        for cam in IR_CAMERAS:
            folder = folders.get(cam, {}).get(pid)
            if folder is not None:
                rows.extend((_rel(folder, name), pid, cam) for name in _images(folder))
    if not rows:
        raise UserError(f"{root}: the test ids have no IR images under cam3/ or cam6/: the query set is empty.")
    return Split.from_rows(rows)


def seed_gallery(root: Path, mode: str, trial: int, shots: int,
                 folders: dict[int, dict[int, Path]] | None = None) -> Split:
    root = Path(root)
    folders = folders if folders is not None else _id_folders(root)
    rng = random.Random(trial)  # the same stream as random.seed(trial) + random.choice
    rows = []
    for pid in evaluation_ids(root):
        for cam in MODES[mode]:
            folder = folders.get(cam, {}).get(pid)
            files = _images(folder) if folder is not None else []
            if not files:
                continue
            if shots == 1:
                picked = [rng.choice(files)]
            else:
                picked = rng.sample(files, min(shots, len(files)))
            rows.extend((_rel(folder, name), pid, cam) for name in picked)
    if not rows:
        raise UserError(f"{root}: the test ids have no RGB images under the {mode} cameras: the gallery is empty.")
    return Split.from_rows(rows)


def _cell(value: Any) -> Any:
    """Unwrap MATLAB cells loaded by scipy (object arrays holding one element)."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.item()
    return value


def _perm_entry(perm: Any, cam: int, pid: int, path: Path) -> np.ndarray:
    """The (trials x images) image-number matrix of one camera and identity; empty when it has none."""
    top = np.asarray(perm)
    if top.dtype == object and top.ndim == 2 and min(top.shape) > 1:  # one 2-D cell: cameras x ids
        entry = top[cam - 1, pid - 1] if cam - 1 < top.shape[0] and pid - 1 < top.shape[1] else None
    else:
        cams = top.ravel()
        if cam - 1 >= len(cams):
            raise UserError(f"{path}: rand_perm_cam has {len(cams)} cameras, camera {cam} is missing.")
        per_id = np.asarray(_cell(cams[cam - 1]))
        per_id = per_id.ravel() if per_id.dtype == object else per_id.reshape(-1)
        entry = per_id[pid - 1] if pid - 1 < len(per_id) else None
    entry = _cell(entry)
    if entry is None:
        return np.zeros((0, 0), dtype=np.int64)
    numbers = np.asarray(entry)
    if numbers.dtype == object or not np.issubdtype(numbers.dtype, np.number):
        raise UserError(f"{path}: rand_perm_cam entry of cam{cam} id {pid} is not a numeric matrix.")
    return np.atleast_2d(numbers) if numbers.size else np.zeros((0, 0), dtype=np.int64)


def permutation_file(root: Path, split_file: Path | None = None) -> Path:
    """The ``rand_perm_cam.mat`` that ``--sampling official`` reads: ``split_file``, else ``<root>/exp/``'s."""
    path = Path(split_file) if split_file is not None else Path(root) / "exp" / PERM_FILE
    if not path.is_file():
        where = "--split-file " if split_file is not None else ""
        raise UserError(
            f"{where}{path} is missing: --sampling official needs the dataset authors' {PERM_FILE}, from "
            f"{PERM_SOURCE}; place it in <root>/exp/ or give it with --split-file PATH (or use --sampling seed)."
        )
    return path


def load_permutation(path: Path) -> Any:
    """The ``rand_perm_cam`` variable of the MATLAB file at ``path``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a corrupt or non-MAT file
        raise UserError(f"{path} could not be read as a MATLAB file ({exc}).") from None
    if "rand_perm_cam" not in mat:
        names = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise UserError(f"{path} has no variable rand_perm_cam (it has: {names}).")
    return mat["rand_perm_cam"]


def official_gallery(root: Path, mode: str, trial: int, shots: int, split_file: Path | None = None) -> Split:
    root = Path(root)
    path = permutation_file(root, split_file)
    perm = load_permutation(path)
    ids = evaluation_ids(root)
    rows = []
    for cam in MODES[mode]:
        for pid in ids:
            numbers = _perm_entry(perm, cam, pid, path)
            if numbers.size == 0:
                continue
            if trial >= numbers.shape[0]:
                raise UserError(f"{path}: cam{cam} id {pid} has {numbers.shape[0]} trial rows, trial {trial} asked.")
            for number in numbers[trial, :shots]:
                rel = f"cam{cam}/{pid:04d}/{int(number):04d}.jpg"
                if not (root / rel).is_file():
                    raise UserError(f"{path} names {root / rel}, which does not exist: check --root.")
                rows.append((rel, pid, cam))
    if not rows:
        raise UserError(f"{path}: no gallery images for the test ids under the {mode} cameras.")
    return Split.from_rows(rows)


def query_gallery(
    root: Path | str,
    mode: str = "all",
    trial: int = 0,
    shots: int = 1,
    sampling: str = "seed",
    split_file: Path | None = None,
) -> tuple[Split, Split]:
    """The (query, gallery) of one SYSU-MM01 trial; paths relative to ``root`` (``split_file``: the official
    permutation file, when it is not ``<root>/exp/rand_perm_cam.mat``)."""
    root = Path(root)
    check_options(mode, shots, sampling)
    if trial not in TRIALS:
        raise UserError(f"SYSU-MM01 trial {trial}: trials are 0..9.")
    folders = _id_folders(root)
    query = query_split(root, folders)
    if sampling == "seed":
        gallery = seed_gallery(root, mode, trial, shots, folders)
    else:
        gallery = official_gallery(root, mode, trial, shots, split_file)
    return query, gallery


def mat_name(folder: Path, name: str, cam: int) -> Path:
    """``<folder>/<name>_cam<cam>.mat``, the file name the authors' evaluation loads."""
    return Path(folder) / f"{name}_cam{cam}.mat"


def _check_set_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"--name {name!r}: give a file-name prefix (the files are NAME_cam1.mat .. NAME_cam6.mat).")


def sysu_mat_cells(table: FeatureTable, root: Path) -> dict[int, np.ndarray]:
    """camera -> the (ids x 1) cell array of :func:`write_sysu_mat`; every test identity must have the feature
    of each of its images, and no identity may have only some of them (rows are found by position)."""
    root = Path(root)
    folders = _id_folders(root)
    test_ids = set(evaluation_ids(root))
    dim = table.features.shape[1]
    cells: dict[int, np.ndarray] = {}
    for cam in ALL_CAMERAS:
        ids = folders.get(cam, {})
        count = max(ids, default=0)
        per_id = np.empty((count, 1), dtype=object)
        for pid in range(1, count + 1):
            folder = ids.get(pid)
            rel = [_rel(folder, name) for name in _images(folder)] if folder is not None else []
            rows = [table.index.get(p, -1) for p in rel]
            missing = [p for p, row in zip(rel, rows, strict=True) if row < 0]
            if missing and (pid in test_ids or len(missing) < len(rel)):
                raise UserError(
                    f"{table.source}: no feature for {missing[0]} ({len(missing)} of the {len(rel)} images of cam{cam} "
                    f"id {pid}): the official evaluation finds an identity's images by their position, so give "
                    "the features of all its images (every test image at least).")
            per_id[pid - 1, 0] = (table.features[rows].astype(np.float64) if rel and not missing
                                  else np.zeros((0, dim), dtype=np.float64))
        cells[cam] = per_id
    return cells


def write_sysu_mat(table: FeatureTable, root: Path, out_dir: Path, name: str) -> list[Path]:
    """``<out_dir>/<name>_cam1.mat`` .. ``_cam6.mat`` as the authors' ``evaluation_SYSU_MM01.m`` loads them
    (see the module docstring); all six are renamed into place only once all six are written."""
    import contextlib

    from scipy.io import savemat

    from papg_bench.workspace import atomic_path

    _check_set_name(name)
    out_dir = Path(out_dir)
    if out_dir.is_file():
        raise UserError(f"--out {out_dir} is a file: give the folder the .mat files go into.")
    cells = sysu_mat_cells(table, root)
    files = [mat_name(out_dir, name, cam) for cam in cells]
    with contextlib.ExitStack() as stack:
        for path, per_id in zip(files, cells.values(), strict=True):
            tmp = stack.enter_context(atomic_path(path))
            with open(tmp, "wb") as fh:
                savemat(fh, {MAT_VARIABLE: per_id}, do_compression=True)
    return files


def _set_names(folder: Path) -> list[str]:
    return sorted({p.name[: -len("_cam1.mat")] for p in folder.glob("*_cam[1-6].mat")})


def read_sysu_mat(folder: Path, root: Path, name: str | None = None) -> FeatureTable:
    """The features of ``<folder>/<name>_cam<k>.mat`` with paths relative to ``root``: row i of cell id of camera
    k is the i-th image (file order) of ``cam<k>/<id>/``. Cameras without a file are left out."""
    from scipy.io import loadmat

    folder, root = Path(folder), Path(root)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: --format {MAT_FORMAT} reads NAME_cam1.mat .. NAME_cam6.mat "
                        "from a folder.")
    if name is None:
        names = _set_names(folder)
        if len(names) != 1:
            found = f"sets {', '.join(names)}: choose one with --name" if names else "no NAME_cam<k>.mat files"
            raise UserError(f"{folder} holds {found}.")
        name = names[0]
    _check_set_name(name)
    folders = _id_folders(root)
    blocks: list[np.ndarray] = []
    paths: list[str] = []
    for cam in ALL_CAMERAS:
        path = mat_name(folder, name, cam)
        if not path.is_file():
            continue
        try:
            mat = loadmat(str(path))
        except Exception as exc:  # scipy raises several types for a corrupt or non-MAT file
            raise UserError(f"{path} could not be read as a MATLAB file ({exc}).") from None
        if MAT_VARIABLE not in mat:
            names = ", ".join(k for k in mat if not k.startswith("__")) or "none"
            raise UserError(f"{path} has no variable {MAT_VARIABLE} (it has: {names}).")
        per_id = np.asarray(mat[MAT_VARIABLE])
        if per_id.dtype != object:
            raise UserError(f"{path}: {MAT_VARIABLE} must be a cell array, one cell per identity; it is a "
                            f"{per_id.dtype} matrix of shape {per_id.shape}.")
        for pid, entry in enumerate(per_id.ravel(), 1):
            matrix = np.asarray(_cell(entry))
            if matrix.size == 0:
                continue
            if matrix.dtype == object or not np.issubdtype(matrix.dtype, np.number) or matrix.ndim != 2:
                raise UserError(f"{path}: {MAT_VARIABLE}{{{pid}}} must be a numeric matrix, one row per image.")
            id_folder = folders.get(cam, {}).get(pid)
            images = _images(id_folder) if id_folder is not None else []
            if matrix.shape[0] != len(images):
                raise UserError(f"{path}: {MAT_VARIABLE}{{{pid}}} has {matrix.shape[0]} rows but {root}/cam{cam}/"
                                f"{pid:04d} holds {len(images)} images: row i must be the i-th image in file order.")
            if blocks and matrix.shape[1] != blocks[0].shape[1]:
                raise UserError(f"{path}: {MAT_VARIABLE}{{{pid}}} has {matrix.shape[1]} columns, the features before "
                                f"it {blocks[0].shape[1]}.")
            blocks.append(matrix)
            paths.extend(_rel(id_folder, image) for image in images)
    if not blocks:
        raise UserError(f"{folder}: no features in {name}_cam1.mat .. {name}_cam6.mat (missing, or every cell "
                        "empty).")
    return feature_table(np.concatenate(blocks), paths, source=f"{folder}/{name}_cam*.mat")


class SysuProtocol(Protocol):
    """SYSU-MM01: infrared queries of cam3/cam6 against a visible gallery drawn per trial."""

    family = "sysu"
    title = "SYSU-MM01"
    modes = {"all": "All", "indoor": "Indoor"}
    mode_groups = {"all": "All-search", "indoor": "Indoor-search"}
    removal = "sysu-cam3-cam2"
    identity_cmc = True
    fixed_trials = TRIALS
    shots = SHOTS
    samplings = SAMPLINGS
    split_file = SplitFile(sampling="official", default=f"exp/{PERM_FILE}", source=PERM_SOURCE)
    official_format = MAT_FORMAT

    def check_options(self, mode: str, shots: int, sampling: str | None) -> None:
        check_options(mode, shots, str(sampling))

    def identifier(self, mode: str, shots: int, sampling: str | None, trials: Sequence[int],
                   rerank: bool = False) -> str:
        return protocol_id(mode, shots, str(sampling), rerank)

    def query_gallery(self, root: Path, mode: str, trial: int, shots: int = 1, sampling: str | None = None,
                      split_file: Path | None = None) -> tuple[Split, Split]:
        return query_gallery(root, mode, trial, shots, sampling or "seed", split_file)

    def write_official_features(self, table: FeatureTable, root: Path, out_dir: Path, name: str) -> list[Path]:
        return write_sysu_mat(table, root, out_dir, name)

    def read_official_features(self, folder: Path, root: Path, name: str | None = None) -> FeatureTable:
        return read_sysu_mat(folder, root, name)


PROTOCOL = SysuProtocol()
