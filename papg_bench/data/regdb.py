"""Reader for the RegDB layout used by VI-ReID code.

    <root>/Visible/<id>/*.bmp, <root>/Thermal/<id>/*.bmp
    <root>/idx/{train,test}_{visible,thermal}_<t>.txt   lines "relative/path label", trials t = 1..10

Modality comes from the top folder (Visible / Thermal) and identity from the folder below it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from papg_bench.data.dataset import Dataset
from papg_bench.data.listing import INFRARED, VISIBLE, DatasetListing, ImageRecord, read_path_label_list
from papg_bench.errors import UserError

if TYPE_CHECKING:
    from papg_bench.data.store import Store

MODALITY_FOLDERS = {"Visible": (VISIBLE, 1), "Thermal": (INFRARED, 2)}
LIST_KINDS = ("train_visible", "train_thermal", "test_visible", "test_thermal")
_LIST_RE = re.compile(r"^(train|test)_(visible|thermal)_(\d+)\.txt$")


def list_path(root: Path, kind: str, trial: int) -> Path:
    return Path(root) / "idx" / f"{kind}_{trial}.txt"


def read_list(path: Path) -> list[tuple[str, int]]:
    """Parse one RegDB list file: lines ``relative/path label``."""
    if not path.is_file():
        raise UserError(f"{path} is missing: RegDB needs idx/{{train,test}}_{{visible,thermal}}_<t>.txt.")
    return [(rel, label) for _number, rel, label in read_path_label_list(path)]


def available_trials(root: Path) -> list[int]:
    idx = Path(root) / "idx"
    if not idx.is_dir():
        raise UserError(
            f"{idx} is missing: a RegDB root holds Visible/, Thermal/ and idx/ with the trial lists "
            "train_visible_<t>.txt, train_thermal_<t>.txt, test_visible_<t>.txt, test_thermal_<t>.txt."
        )
    trials = sorted({int(m.group(3)) for p in idx.iterdir() if (m := _LIST_RE.match(p.name))})
    if not trials:
        raise UserError(f"{idx} holds no trial lists named like train_visible_1.txt.")
    return trials


def identity_of(root: Path, rel: str, list_file: Path) -> tuple[int, str, int]:
    """(pid, modality, cam) from a relative path ``Visible|Thermal/<id>/<file>``."""
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] not in MODALITY_FOLDERS:
        raise UserError(f"{list_file}: '{rel}' is not of the form Visible/<id>/<file> or Thermal/<id>/<file>.")
    if not parts[1].isdigit():
        raise UserError(f"{list_file}: '{rel}': identity folder '{parts[1]}' is not a number.")
    modality, cam = MODALITY_FOLDERS[parts[0]]
    return int(parts[1]), modality, cam


def read_regdb(root: Path) -> DatasetListing:
    """List every image named by any trial list, with its identity, modality and per-trial split."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the RegDB root (holding Visible/, Thermal/, idx/).")
    for folder in MODALITY_FOLDERS:
        if not (root / folder).is_dir():
            raise UserError(f"{root / folder} is missing: a RegDB root holds Visible/, Thermal/ and idx/.")
    trials = available_trials(root)
    roles: dict[str, list[str]] = {}
    labels: dict[str, dict[str, int]] = {}
    for trial in trials:
        for kind in LIST_KINDS:
            path = list_path(root, kind, trial)
            split = kind.split("_")[0]
            for rel, label in read_list(path):
                if rel not in roles:
                    if not (root / rel).is_file():
                        raise UserError(f"{path}: listed image {root / rel} does not exist.")
                    roles[rel] = []
                    labels[rel] = {}
                    identity_of(root, rel, path)
                roles[rel].append(f"{split}{trial}")
                labels[rel][str(trial)] = label
    records = []
    for rel in sorted(roles):
        pid, modality, cam = identity_of(root, rel, root / "idx")
        records.append(ImageRecord(path=rel, pid=pid, cam=cam, modality=modality, split=" ".join(roles[rel])))
    info = {"trials": trials}
    return DatasetListing(name="regdb", records=records, info=info)


def split_mask(splits: list[str], split: str, trial: int) -> list[bool]:
    """Which store rows are in ``split`` ('train' or 'test') of RegDB ``trial``."""
    token = f"{split}{trial}"
    return [token in s.split() for s in splits]


class RegdbDataset(Dataset):
    """RegDB (Nguyen et al., 2017): co-captured visible/thermal pairs, ten train/test trials."""

    name = "regdb"
    title = "RegDB"
    protocol_module = "papg_bench.protocols.regdb"
    visible_cameras = (MODALITY_FOLDERS["Visible"][1],)
    infrared_cameras = (MODALITY_FOLDERS["Thermal"][1],)
    trial_splits = True
    counterparts = "regdb co-captured pairs (Visible k <-> Thermal k of an identity)"

    def read(self, root: Path) -> DatasetListing:
        return read_regdb(root)

    def in_split(self, splits: np.ndarray, split: str, trial: int | None, meta: Mapping[str, Any]) -> np.ndarray:
        trial = trial if trial is not None else int(meta.get("trials", [1])[0])
        return np.array(split_mask(list(splits), split, trial), dtype=bool)

    def counterpart_partners(self, store: Store) -> dict[int, int]:
        """Visible image k of an identity <-> its thermal image k (file order), where both lists are equal."""
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for row in range(len(store)):
            groups[(int(store.pids[row]), str(store.modalities[row]))].append(row)
        partners: dict[int, int] = {}
        paths = store.paths
        for (pid, modality), rows in groups.items():
            if modality != VISIBLE or (pid, INFRARED) not in groups:
                continue
            visible = sorted(rows, key=lambda r: paths[r])
            thermal = sorted(groups[(pid, INFRARED)], key=lambda r: paths[r])
            if len(visible) != len(thermal):
                continue
            for v, t in zip(visible, thermal, strict=True):
                partners[v], partners[t] = t, v
        return partners


DATASET = RegdbDataset()
