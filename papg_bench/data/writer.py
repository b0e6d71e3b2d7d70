"""Writing a store: a temporary folder that becomes the store only when it is complete."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.store import STORE_FORMAT, index_csv, remove_stale_temporaries
from papg_bench.workspace import atomic_write_json, atomic_write_text, provenance


class StoreWriter:
    """Create ``images.npy`` of ``count`` x H x W x 3 uint8 in a temporary folder beside ``final``.

    Fill it through :attr:`images` (a writable memmap) or :meth:`row_offset` with ``os.pwrite``,
    then :meth:`finish` writes the index and meta and renames the folder into place. Used as a
    context manager, an exception removes the temporary folder and leaves any old store untouched.
    """

    def __init__(self, final: Path, count: int, height: int, width: int) -> None:
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.final)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
        self.tmp.mkdir()
        self.count, self.height, self.width = count, height, width
        self.image_path = self.tmp / "images.npy"
        mm = np.lib.format.open_memmap(self.image_path, mode="w+", dtype=np.uint8,
                                       shape=(count, height, width, 3))
        del mm
        self.row_bytes = height * width * 3
        self.header_bytes = self.image_path.stat().st_size - count * self.row_bytes
        self._images: np.ndarray | None = None

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.image_path, mmap_mode="r+")
        return self._images

    def row_offset(self, row: int) -> int:
        return self.header_bytes + row * self.row_bytes

    def compact(self, keep: Sequence[int]) -> None:
        """Keep only rows ``keep`` (in order), copying in bounded chunks."""
        keep = np.asarray(keep, dtype=np.int64)
        src = np.load(self.image_path, mmap_mode="r")
        new_path = self.tmp / "images.compact.npy"
        dst = np.lib.format.open_memmap(new_path, mode="w+", dtype=np.uint8,
                                        shape=(len(keep), self.height, self.width, 3))
        for start in range(0, len(keep), 256):
            dst[start:start + 256] = src[keep[start:start + 256]]
        dst.flush()
        del dst, src
        self._images = None
        os.replace(new_path, self.image_path)
        self.count = len(keep)

    def finish(self, columns: dict[str, Sequence[Any]], meta: dict[str, Any]) -> Path:
        if self._images is not None:
            self._images.flush()
            self._images = None
        count = len(columns["path"])
        if count != self.count:
            raise ValueError(f"index has {count} rows but the store holds {self.count} images")
        columns = {"row": list(range(count)), **columns}
        atomic_write_text(self.tmp / "index.csv", index_csv(columns))
        full_meta = {
            "format_version": STORE_FORMAT,
            "count": count,
            "image_size": [self.height, self.width],
            **meta,
            "provenance": provenance(),
            "complete": True,
        }
        atomic_write_json(self.tmp / "meta.json", full_meta)
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}-old")
            os.replace(self.final, old)
            os.replace(self.tmp, self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self._images = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()
