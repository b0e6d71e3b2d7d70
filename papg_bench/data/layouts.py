"""Pick the reader for a dataset layout by name (a new dataset is one reader plus one line here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from papg_bench.data.records import DatasetListing
from papg_bench.data.regdb import read_regdb
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError

READERS: dict[str, Callable[[Path], DatasetListing]] = {"sysu": read_sysu, "regdb": read_regdb}


def read_layout(dataset: str, root: Path) -> DatasetListing:
    if dataset not in READERS:
        raise UserError(f"--dataset {dataset!r} is not a known layout: choose one of {', '.join(READERS)}.")
    return READERS[dataset](Path(root))
