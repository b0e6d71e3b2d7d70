"""Writing a store: a temporary folder that becomes the store only when it is complete."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.store import STORE_FORMAT, index_csv, remove_stale_temporaries
from papg_bench.errors import WriteError
from papg_bench.workspace import (
    atomic_write_json,
    atomic_write_text,
    make_parent,
    provenance,
    replace_folder_or_file,
    write_failure,
)


class StoreWriter:
    """Create ``images.npy`` of ``count`` x H x W x 3 uint8 in a temporary folder beside ``final``.

    Fill it through :attr:`images` (a writable memmap) or :meth:`row_offset` with ``os.pwrite``,
    then :meth:`finish` writes the index and meta and renames the folder into place. Used as a
    context manager, an exception removes the temporary folder and leaves any old store untouched;
    a failure to write (no permission, a full disk) becomes a :class:`WriteError` naming the store.
    """

    def __init__(self, final: Path, count: int, height: int, width: int) -> None:
        self.final = Path(final)
        make_parent(self.final)
        remove_stale_temporaries(self.final)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
        self.count, self.height, self.width = count, height, width
        self.image_path = self.tmp / "images.npy"
        self.row_bytes = height * width * 3
        self._images: np.ndarray | None = None
        try:
            self.tmp.mkdir()
            _create_npy(self.image_path, (count, height, width, 3))
        except (OSError, WriteError) as exc:
            self.abort()
            raise self._as_write_error(exc) from exc
        self.header_bytes = self.image_path.stat().st_size - count * self.row_bytes

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
        _create_npy(new_path, (len(keep), self.height, self.width, 3))
        dst = np.load(new_path, mmap_mode="r+")
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
        replace_folder_or_file(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        self._images = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _as_write_error(self, exc: BaseException) -> BaseException:
        failure = write_failure(exc, self.tmp, self.final)
        if failure is None and isinstance(exc, OSError) and exc.filename is None:
            failure = WriteError(self.final, exc)  # os.pwrite and memory-map flushes name no file
        return exc if failure is None else failure

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()
        if exc is not None:
            failure = self._as_write_error(exc)
            if failure is not exc:
                raise failure from exc


def _create_npy(path: Path, shape: tuple[int, ...]) -> None:
    """Create a uint8 ``.npy`` of ``shape`` with every block allocated on disk.

    Writing through a memory map into a sparse file kills the process with SIGBUS when the disk
    fills up; allocating first turns a full disk into an ordinary ``OSError`` (ENOSPC) here.
    """
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    del mm
    size = path.stat().st_size
    if size == 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)
