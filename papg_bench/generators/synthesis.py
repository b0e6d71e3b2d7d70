"""``papg-bench generate``: every training image's counterpart in the other modality, under its own pose.

Visible training images go through the visible->infrared generator (direction ``V2I``), infrared ones
through infrared->visible (``I2V``), in batches, in eval mode (deterministic for a checkpoint and batch
size). The output is a store (DESIGN.md) at ``<work>/generated/<dataset>/<run>/`` whose index carries, per
row, ``source_row``, ``direction``, ``generator`` (sha256 of ``generators.pt``) and ``seed``; modality is
the target modality, pid/cam/split those of the source, path ``<direction>/<source path>``.
``--png DIR`` also writes the images as the released ``test.py`` did: ``A/`` fake visible from infrared,
``B/`` fake infrared from visible, each named after its source path (``.png``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from papg_bench.data.batches import resize
from papg_bench.data.store import Store, is_complete, open_store
from papg_bench.data.writer import StoreWriter
from papg_bench.errors import UserError
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.trainer import GENERATORS, BatchMaker, load_generators, load_store_poses
from papg_bench.progress import track
from papg_bench.runtime import resolve_device
from papg_bench.training import autocast
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, sha256_file

DIRECTIONS = {"V2I": ("V", "I"), "I2V": ("I", "V")}
PNG_FOLDERS = {"I2V": "A", "V2I": "B"}  # the released code's names: A = fake visible, B = fake infrared


@dataclass
class GenerateResult:
    path: Path
    status: str  # "generated" or "unchanged"
    count: int
    generator_sha256: str
    seconds: float
    png_dir: Path | None = None
    quality: dict[str, Any] | None = None


def generate(
    ws: Workspace,
    dataset: str,
    run: str = "papg",
    batch_size: int = 16,
    device: str | torch.device | None = None,
    png_dir: Path | None = None,
    score: bool = False,
    force: bool = False,
) -> GenerateResult:
    """Write (or confirm up to date) the generated store of run ``run``; optionally PNGs and quality scores."""
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    weights = ws.generator_dir(dataset, run) / GENERATORS
    if not weights.is_file():
        raise UserError(f"{weights} does not exist: train the generator first "
                        f"(papg-bench train-generator --dataset {dataset} --run {run}).")
    digest = sha256_file(weights)
    store = open_store(ws.dataset_dir(dataset), "store")
    out = ws.generated_dir(dataset, run)
    source_checksum = store_checksum(store)
    start = time.perf_counter()
    status = "unchanged"
    if force or not up_to_date(out, digest, source_checksum):
        _write_generated(store, weights, digest, source_checksum, out, dataset, run, batch_size, device)
        status = "generated"
    generated = open_store(out, "generated store")
    seconds = time.perf_counter() - start
    written_png = write_pngs(generated, Path(png_dir)) if png_dir is not None else None
    quality = None
    if score:
        from papg_bench.generators.quality import score_generated

        quality = score_generated(store, generated, out / "quality.json", force=status == "generated" or force)
    return GenerateResult(out, status, len(generated), digest, seconds, written_png, quality)


GENERATED_COLUMNS = ("path", "pid", "cam", "modality", "split", "source_row", "direction", "generator", "seed")


def add_generated_row(columns: dict[str, list[Any]], store: Store, row: int, direction: str, generator: str,
                      seed: int) -> None:
    """The index entry of the image made from source ``row`` in ``direction`` (GENERATED_COLUMNS)."""
    values = (f"{direction}/{store.paths[row]}", int(store.pids[row]), int(store.cams[row]), DIRECTIONS[direction][1],
              store.splits[row], int(row), direction, generator, seed)
    for name, value in zip(GENERATED_COLUMNS, values, strict=True):
        columns[name].append(value)


def store_checksum(store: Store) -> str:
    """What a generated store records of its source store, to notice when that store is rebuilt."""
    return store.meta.get("content_checksum") or sha256_file(store.path / "index.csv")


def generated_meta(store: Store, digest: str, source_checksum: str) -> dict[str, Any]:
    """The provenance every generated store starts its meta.json with (generator-specific keys follow)."""
    return {
        "dataset": store.meta.get("dataset"),
        **({"trials": store.meta["trials"]} if "trials" in store.meta else {}),
        "kind": "generated",
        "source_store": str(store.path),
        "source_checksum": source_checksum,
        "content_checksum": f"{digest}:{source_checksum}",
        "generator_sha256": digest,
    }


def up_to_date(out: Path, digest: str, source_checksum: str) -> bool:
    """Whether ``out`` is a complete generated store of generator ``digest`` from the store ``source_checksum``."""
    if not is_complete(out):
        return False
    meta = json.loads((out / "meta.json").read_text())
    return meta.get("generator_sha256") == digest and meta.get("source_checksum") == source_checksum


@torch.no_grad()
def _write_generated(store: Store, weights: Path, digest: str, source_checksum: str, out: Path, dataset: str,
                     run: str, batch_size: int, device: torch.device) -> None:
    cfg, gens, state = load_generators(weights, device)
    channels_last = device.type == "cuda"
    if channels_last:
        gens.to(memory_format=torch.channels_last)
    poses = load_store_poses(store, cfg, dataset)
    maker = BatchMaker(store, poses, cfg, device, channels_last)
    rows = training_rows(store, cfg.trial)
    by_direction = {name: rows[store.modalities[rows] == source] for name, (source, _) in DIRECTIONS.items()}
    count = sum(len(r) for r in by_direction.values())
    height, width = store.size
    columns: dict[str, list[Any]] = {k: [] for k in GENERATED_COLUMNS}
    with StoreWriter(out, count, height, width) as writer, track(f"generate {dataset}/{run}", count, "img") as advance:
        offset = 0
        for name, source_rows in by_direction.items():
            generator = gens.v2i if name == "V2I" else gens.i2v
            for begin in range(0, len(source_rows), batch_size):
                chunk = source_rows[begin:begin + batch_size]
                with autocast(device):
                    fake = generator(maker.images(chunk, None), maker.pose_maps(chunk, None)).float()
                fake = resize(fake, (height, width))
                pixels = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                writer.images[offset:offset + len(chunk)] = pixels
                offset += len(chunk)
                advance(len(chunk))
            for row in source_rows:
                add_generated_row(columns, store, row, name, digest, cfg.seed)
        meta = {
            **generated_meta(store, digest, source_checksum),
            "generator": str(weights),
            "generator_run": run,
            "generator_config": state["config"],
            "seed": cfg.seed,
            "trial": cfg.trial,
            "directions": {name: int(len(r)) for name, r in by_direction.items()},
            "batch_size": batch_size,
            "device": str(device),
        }
        writer.finish(columns, meta)


def write_pngs(generated: Store, png_dir: Path) -> Path:
    """``A/`` (fake visible from infrared) and ``B/`` (fake infrared from visible), named after each source path."""
    png_dir = Path(png_dir)
    directions = generated.columns["direction"]
    for name, folder in PNG_FOLDERS.items():
        rows = np.flatnonzero(directions == name)
        with atomic_path(png_dir / folder) as tmp, track(f"png {folder}/", len(rows), "img") as advance:
            tmp.mkdir(parents=True)
            for row in rows:
                source_path = generated.paths[row].split("/", 1)[1]
                target = (tmp / source_path).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(generated.images[row])).save(target)
                advance(1)
    atomic_write_json(png_dir / "provenance.json", {
        "generated_store": str(generated.path), "generator_sha256": generated.meta.get("generator_sha256"),
        "A": "fake visible from infrared (I2V)", "B": "fake infrared from visible (V2I)",
    })
    return png_dir
