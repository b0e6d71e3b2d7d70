"""Read a dataset's official layout by the dataset's registered name (see :mod:`papg_bench.catalog`)."""

from __future__ import annotations

from pathlib import Path

from papg_bench.catalog import get_dataset
from papg_bench.data.listing import DatasetListing


def read_layout(dataset: str, root: Path) -> DatasetListing:
    return get_dataset(dataset).read(Path(root))
