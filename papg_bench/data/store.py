"""The image store: decoded, resized uint8 images in one memory-mapped ``.npy`` plus an index.

    <store>/images.npy   N x H x W x 3 uint8 (opened with mmap for reading)
    <store>/index.csv    row, path, pid, cam, modality, split [, extra columns such as source_row, direction]
    <store>/meta.json    format version, source root, image size, count, content checksum, provenance

A store folder is written under a temporary dot-name and renamed when complete, so a folder at the
store's path is always whole; :func:`open_store` also checks ``meta.json`` says ``complete``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from papg_bench.errors import UserError
from papg_bench.stages import DONE, Mark, read_json, state

if TYPE_CHECKING:
    from papg_bench.data.dataset import Dataset

STORE_FORMAT = 1
BASE_COLUMNS = ("row", "path", "pid", "cam", "modality", "split")
INT_COLUMNS = {"row", "pid", "cam", "source_row", "counterpart_of"}


def _column(name: str) -> property:
    return property(lambda self: self.columns[name], doc=f"The index's ``{name}`` column.")


@dataclass
class Store:
    """A read-only view of a complete store. ``images`` is a memory map; index columns are arrays."""

    path: Path
    images: np.ndarray
    meta: dict[str, Any]
    columns: dict[str, np.ndarray] = field(repr=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def paths(self) -> list[str]:
        return list(self.columns["path"])

    pids = _column("pid")
    cams = _column("cam")
    modalities = _column("modality")
    splits = _column("split")

    @cached_property
    def checksum(self) -> str:
        """What identifies the store's content: the checksum ``prepare`` / ``generate`` recorded, else the
        sha256 of its index (stores written without one)."""
        from papg_bench.workspace import sha256_file

        return str(self.meta.get("content_checksum") or sha256_file(self.path / "index.csv"))

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def in_split(self, split: str, trial: int | None = None) -> np.ndarray:
        """Boolean mask of rows in ``split``, as the store's dataset reads its split tokens.

        'train' means every training identity (train + val ids where the dataset has a val list, as every
        VI-ReID method trains); datasets with per-trial splits read ``trial`` (default: the store's first).
        """
        return self.dataset.in_split(self.splits, split, trial, self.meta)

    @property
    def dataset(self) -> Dataset:
        """The registered dataset this store was prepared from (its ``meta.json`` ``dataset``)."""
        from papg_bench.catalog import dataset_of

        return dataset_of(self.meta, self.path)

    def row_of_path(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.columns["path"])}


def read_index(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not set(BASE_COLUMNS) <= set(reader.fieldnames):
            raise UserError(f"{path}: not a store index (expected columns {', '.join(BASE_COLUMNS)}).")
        rows = list(reader)
        names = list(reader.fieldnames)
    columns: dict[str, np.ndarray] = {}
    for name in names:
        values = [r[name] for r in rows]
        if name in INT_COLUMNS:
            columns[name] = np.array([int(v) for v in values], dtype=np.int64)
        else:
            columns[name] = np.array(values, dtype=object)
    return columns


def index_csv(columns: dict[str, Sequence[Any]]) -> str:
    names = list(BASE_COLUMNS) + [c for c in columns if c not in BASE_COLUMNS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    count = len(columns["path"])
    for i in range(count):
        writer.writerow([columns[n][i] for n in names])
    return out.getvalue()


def store_mark(path: Path, fingerprint_key: str = "content_checksum") -> Mark | None:
    """The stage mark of the store at ``path``: its ``meta.json`` field ``fingerprint_key`` and completeness."""
    meta = read_json(Path(path) / "meta.json")
    if meta is None:
        return None
    return Mark(meta.get(fingerprint_key), bool(meta.get("complete")), meta)


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds a whole store (whatever it was made from)."""
    return state(store_mark(path)) == DONE


def open_store(path: Path, what: str = "store") -> Store:
    """Open a complete store for reading, or fail with a message saying how to make one."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise UserError(
            f"{path} holds no complete {what} (no meta.json): run `papg-bench prepare` (or the step that "
            "writes it) first."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}): rebuild with --force.") from None
    if int(meta.get("format_version", 0)) > STORE_FORMAT:
        raise UserError(
            f"{meta_path}: store format {meta.get('format_version')} is newer than this papg-bench "
            f"understands ({STORE_FORMAT}): upgrade papg-bench."
        )
    if not meta.get("complete"):
        raise UserError(f"{path} is an incomplete {what}: rebuild it with --force.")
    try:
        images = np.load(path / "images.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path / 'images.npy'} cannot be read ({exc}): rebuild with --force.") from None
    columns = read_index(path / "index.csv")
    count = len(columns["path"])
    if images.ndim != 4 or images.shape[0] != count or images.shape[3] != 3 or images.dtype != np.uint8:
        raise UserError(
            f"{path}: images.npy has shape {images.shape} {images.dtype}, index.csv has {count} rows: "
            "the store is damaged; rebuild with --force."
        )
    return Store(path=path, images=images, meta=meta, columns=columns)


def checksum_files(root: Path, rel_paths: Sequence[str], extra: str = "") -> str:
    """sha256 over every file's bytes in order (with its relative path) and ``extra`` parameters."""
    digest = hashlib.sha256(extra.encode())
    for rel in rel_paths:
        digest.update(rel.encode() + b"\0")
        with open(Path(root) / rel, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(final: Path) -> None:
    """Remove temporary siblings of ``final`` left by killed processes (their pid is gone)."""
    import shutil

    parent = Path(final).parent
    if not parent.is_dir():
        return
    prefix = f".{Path(final).name}.tmp-"
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
