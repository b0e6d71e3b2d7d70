"""``papg-bench prepare``: decode and resize a dataset once, in parallel, into the image store.

Workers decode with Pillow (LANCZOS resampling, as the reference preprocessing) and write each image
straight into the store's ``images.npy`` at its row offset with ``os.pwrite``, so neither the workers
nor the main process ever hold more than a handful of images: memory does not grow with the dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from papg_bench.data.listing import DatasetListing
from papg_bench.data.store import checksum_files, store_mark
from papg_bench.data.writer import StoreWriter
from papg_bench.errors import UserError
from papg_bench.progress import track
from papg_bench.stages import DONE, REUSED, is_done
from papg_bench.workers import worker_results

RESAMPLE = Image.Resampling.LANCZOS

def load_resized(path: Path | str, height: int, width: int) -> np.ndarray:
    """Decode one image as RGB and resize it to ``height`` x ``width`` (the store's pixels)."""
    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), RESAMPLE)
    return np.asarray(rgb, dtype=np.uint8)


@dataclass(frozen=True)
class _Decoder:
    fd: int  # the store's images.npy, open for writing
    header: int
    height: int
    width: int


def _open_decoder(image_path: str, header: int, height: int, width: int) -> _Decoder:
    return _Decoder(os.open(image_path, os.O_WRONLY), header, height, width)


def _close_decoder(decoder: _Decoder) -> None:
    os.close(decoder.fd)


def _decode_into_store(decoder: _Decoder, task: tuple[int, str]) -> tuple[int, str | None]:
    row, path = task
    h, w = decoder.height, decoder.width
    try:
        pixels = load_resized(path, h, w)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file named
        return row, f"{type(exc).__name__}: {exc}"
    os.pwrite(decoder.fd, pixels.tobytes(), decoder.header + row * h * w * 3)
    return row, None


@dataclass
class PrepareResult:
    path: Path
    status: str  # a stage outcome: done or reused
    count: int
    skipped: list[dict] = field(default_factory=list)


def prepare_store(
    listing: DatasetListing,
    root: Path,
    out: Path,
    size: tuple[int, int] = (288, 144),
    workers: int | None = None,
    skip_bad: bool = False,
    force: bool = False,
) -> PrepareResult:
    """Build (or confirm unchanged) the store of ``listing`` at ``out``."""
    root = Path(root).resolve()
    height, width = size
    rel_paths = [r.path for r in listing.records]
    checksum = checksum_files(root, rel_paths, extra=f"{listing.name}:{height}x{width}:lanczos")
    mark = store_mark(out)
    if not force and is_done(mark, checksum):
        meta = mark.record
        return PrepareResult(path=Path(out), status=REUSED, count=int(meta["count"]), skipped=meta.get("skipped", []))
    workers = max(1, workers or os.cpu_count() or 1)
    count = len(rel_paths)
    skipped: list[dict] = []
    with StoreWriter(out, count, height, width) as writer:
        tasks = [(i, str(root / rel)) for i, rel in enumerate(rel_paths)]
        init_args = (str(writer.image_path), writer.header_bytes, height, width)
        with track(f"prepare {listing.name}", total=count, unit="img") as advance, \
                worker_results(_decode_into_store, tasks, workers, _open_decoder, init_args, teardown=_close_decoder,
                               chunksize=16) as results:
            _drain(results, rel_paths, skip_bad, skipped, advance)
        bad_rows = {s["row"] for s in skipped}
        keep = [i for i in range(count) if i not in bad_rows]
        if not keep:
            raise UserError(f"{root}: every image failed to decode; nothing to store.")
        if bad_rows:
            writer.compact(keep)
        records = [listing.records[i] for i in keep]
        columns = {
            "path": [r.path for r in records],
            "pid": [r.pid for r in records],
            "cam": [r.cam for r in records],
            "modality": [r.modality for r in records],
            "split": [r.split for r in records],
        }
        meta = {
            "dataset": listing.name,
            "source_root": str(root),
            "content_checksum": checksum,
            "resample": "lanczos",
            "skipped": [{"path": s["path"], "error": s["error"]} for s in skipped],
            **listing.info,
        }
        path = writer.finish(columns, meta)
    return PrepareResult(path=path, status=DONE, count=len(keep), skipped=meta["skipped"])


def _drain(results, rel_paths, skip_bad, skipped, advance) -> None:  # type: ignore[no-untyped-def]
    for row, error in results:
        if error is not None:
            if not skip_bad:
                raise UserError(
                    f"{rel_paths[row]} cannot be decoded ({error}): replace the file, or pass --skip-bad "
                    "to leave it out (skipped files are recorded in meta.json)."
                )
            skipped.append({"row": row, "path": rel_paths[row], "error": error})
        advance(1)
