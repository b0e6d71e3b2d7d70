"""What a dataset is to papg-bench: its official layout, its splits and cameras, and its protocol.

A dataset is one object (``SysuDataset``, ``RegdbDataset``, ``LlcmDataset``), registered by name in
:mod:`papg_bench.catalog`. A store records the name of the dataset it was prepared from (``meta.json``
``dataset``), and every step downstream (pose, generator training, generation, training, evaluation,
report) finds the object from there instead of branching on a name.

A new dataset provides, in its reader module:

- ``name`` (the registry key and the ``--dataset`` of ``prepare``), ``title``;
- :meth:`read`: the official layout -> :class:`~papg_bench.data.listing.DatasetListing` (path, pid,
  camera, modality and split tokens of every image), with one clear error per malformed file;
- ``visible_cameras`` / ``infrared_cameras`` and ``default_size``;
- ``trial_splits`` when its training identities change with the trial (RegDB), with :meth:`in_split`
  reading the split tokens it wrote;
- :meth:`counterpart_partners` when it has true counterparts (co-captured pairs), else None;
- ``protocol_module``: the module whose ``PROTOCOL`` is its
  :class:`~papg_bench.protocols.protocol.Protocol` (:attr:`Dataset.protocol`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from papg_bench.data.listing import DatasetListing

if TYPE_CHECKING:
    from papg_bench.data.store import Store
    from papg_bench.protocols.protocol import Protocol


class Dataset(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    visible_cameras: ClassVar[tuple[int, ...]]
    infrared_cameras: ClassVar[tuple[int, ...]]
    default_size: ClassVar[tuple[int, int]] = (288, 144)
    trial_splits: ClassVar[bool] = False
    counterparts: ClassVar[str | None] = None  # where true counterparts come from, when the dataset has them
    protocol_module: ClassVar[str]  # the module holding its PROTOCOL, imported on first use

    @abstractmethod
    def read(self, root: Path) -> DatasetListing:
        """Every image of the official layout under ``root``."""

    @property
    def protocol(self) -> Protocol:
        """The evaluation protocol of this dataset: the ``PROTOCOL`` of :attr:`protocol_module`."""
        return importlib.import_module(self.protocol_module).PROTOCOL

    def split_trial(self, trial: int | None) -> int | None:
        """The trial whose split a row's membership depends on (None where splits have no trials)."""
        return trial if self.trial_splits else None

    def in_split(self, splits: np.ndarray, split: str, trial: int | None, meta: Mapping[str, Any]) -> np.ndarray:
        """Rows in ``split``: 'train' is every identity a method trains on (train + val where there is a val)."""
        if split == "train":
            return np.isin(splits, ("train", "val"))
        return splits == split

    def counterpart_partners(self, store: Store) -> dict[int, int] | None:
        """Row -> row of its true counterpart in the other modality, or None without such pairs."""
        return None
