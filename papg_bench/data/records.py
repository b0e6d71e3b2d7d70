"""The common description of one image of a dataset, whatever its layout."""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE = "V"
INFRARED = "I"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


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
