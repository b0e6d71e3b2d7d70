"""The common description of one image of a dataset, whatever its layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from papg_bench.errors import UserError

VISIBLE = "V"
INFRARED = "I"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_path_label_list(path: Path) -> list[tuple[int, str, int]]:
    """``(line number, relative path, label)`` of a list file of lines ``relative/path label`` (as RegDB's and
    LLCM's ``idx/`` lists); blank lines are skipped, a malformed or empty list is one :class:`UserError`."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UserError(f"{path}:{number}: expected 'relative/path label', got '{line[:80]}'.")
        entries.append((number, parts[0].replace("\\", "/"), int(parts[1])))
    if not entries:
        raise UserError(f"{path} lists no images: expected lines 'relative/path label'.")
    return entries


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the dataset root, forward slashes
    pid: int  # identity as the layout names it (SYSU folder number, RegDB folder number)
    cam: int  # SYSU camera number; RegDB: 1 = visible, 2 = thermal
    modality: str  # "V" or "I"
    split: str  # SYSU: train | val | test. RegDB: one token per trial, e.g. "train1 test2 ..."


@dataclass(frozen=True)
class DatasetListing:
    name: str  # the registered dataset name (papg_bench.catalog)
    records: list[ImageRecord]
    info: dict  # layout facts recorded in the store's meta.json (id lists, trials, ...)
