"""``papg-bench generate``: every training image's counterpart in the other modality, under its own pose.

Visible training images go through the visible->infrared generator (direction ``V2I``), infrared ones
through infrared->visible (``I2V``), in batches, in eval mode (deterministic for a checkpoint and batch
size). The output is the generated set (:mod:`.sets`) ``<work>/generated/<dataset>/<run>/`` whose index
carries, per row, ``source_row``, ``direction``, ``generator`` (sha256 of ``generators.pt``) and ``seed``;
modality is the target modality, pid/cam/split those of the source, path ``<direction>/<source path>``.
``--png DIR`` also writes the images as the released ``test.py`` did: ``A/`` fake visible from infrared,
``B/`` fake infrared from visible, each named after its source path (``.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from papg_bench.data.batches import resize
from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.sets import (
    DIRECTIONS,
    Batch,
    Translator,
    check_set_name,
    default_display,
    record_quality,
    write_set,
)
from papg_bench.generators.trainer import GENERATORS, BatchMaker, load_generators, load_store_poses
from papg_bench.progress import track
from papg_bench.runtime import resolve_device
from papg_bench.stages import DONE
from papg_bench.training import autocast
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, sha256_file

PNG_FOLDERS = {"I2V": "A", "V2I": "B"}  # the released code's names: A = fake visible, B = fake infrared


@dataclass
class GenerateResult:
    path: Path
    status: str  # a stage outcome: done or reused
    count: int
    generator_sha256: str
    seconds: float
    png_dir: Path | None = None
    quality: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None


def generate(
    ws: Workspace,
    dataset: str,
    run: str = "papg",
    batch_size: int = 16,
    device: str | torch.device | None = None,
    png_dir: Path | None = None,
    score: bool = False,
    force: bool = False,
    display: str | None = None,
) -> GenerateResult:
    """Write (or confirm up to date) the generated set of run ``run``; optionally PNGs and quality scores."""
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    check_set_name(run, "--run")
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    weights = ws.generator_dir(dataset, run) / GENERATORS
    if not weights.is_file():
        raise UserError(f"{weights} does not exist: train the generator first "
                        f"(papg-bench train-generator --dataset {dataset} --run {run}).")
    result = write_set(ws, dataset, run, PapgTranslator(weights, run, dataset, batch_size, device), display=display,
                       force=force)
    out = result.path
    generated = open_store(out, "generated store")
    written_png = write_pngs(generated, Path(png_dir)) if png_dir is not None else None
    quality, manifest = None, result.manifest
    if score:
        quality, manifest = score_set(ws, dataset, run, force=result.status == DONE or force)
    return GenerateResult(out, result.status, len(generated), result.fingerprint, result.seconds, written_png, quality,
                          manifest)


def score_set(ws: Workspace, dataset: str, name: str, force: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quality scores of a generated set (cached in its ``quality.json``), recorded in its manifest."""
    from papg_bench.generators.quality import score_generated

    store = open_store(ws.dataset_dir(dataset), "store")
    out = ws.generated_dir(dataset, name)
    quality = score_generated(store, open_store(out, "generated store"), out / "quality.json", force=force)
    return quality, record_quality(out, quality)


class PapgTranslator(Translator):
    """PAPG's two generators: every training image through V2I (visible) or I2V (infrared), in eval mode."""

    kind = "generator"

    def __init__(self, weights: Path, run: str, dataset: str, batch_size: int, device: torch.device) -> None:
        self.weights, self.run, self.dataset = Path(weights), run, dataset
        self.batch_size, self.device = batch_size, device
        self._digest: str | None = None
        self._state: dict[str, Any] = {}

    def fingerprint(self, store: Store) -> str:
        if self._digest is None:
            self._digest = sha256_file(self.weights)
        return self._digest

    def plan(self, store: Store) -> dict[str, np.ndarray]:
        self.cfg, self.gens, self._state = load_generators(self.weights, self.device)
        self.seed, self.trial = self.cfg.seed, self.cfg.trial
        rows = training_rows(store, self.cfg.trial)
        return {name: rows[store.modalities[rows] == source] for name, (source, _) in DIRECTIONS.items()}

    def origin(self) -> dict[str, Any]:
        return {"generator": "papg", "run": self.run, "checkpoint": str(self.weights),
                "checkpoint_sha256": self._digest, "settings": self._state.get("config"), "seed": self.cfg.seed,
                "trial": self.cfg.trial, "batch_size": self.batch_size}

    def meta(self) -> dict[str, Any]:
        return {"generator": str(self.weights), "generator_run": self.run, "generator_config": self._state["config"],
                "seed": self.cfg.seed, "trial": self.cfg.trial, "batch_size": self.batch_size,
                "device": str(self.device)}

    def default_display(self, name: str) -> str:
        return default_display(name, {"kind": "generator", "generator": "papg"})

    @torch.no_grad()
    def batches(self, store: Store, plan: dict[str, np.ndarray]) -> Iterator[Batch]:
        device, gens, cfg = self.device, self.gens, self.cfg
        channels_last = device.type == "cuda"
        if channels_last:
            gens.to(memory_format=torch.channels_last)
        maker = BatchMaker(store, load_store_poses(store, cfg, self.dataset), cfg, device, channels_last)
        height, width = store.size
        for name, source_rows in plan.items():
            generator = gens.v2i if name == "V2I" else gens.i2v
            for begin in range(0, len(source_rows), self.batch_size):
                chunk = source_rows[begin:begin + self.batch_size]
                with autocast(device):
                    fake = generator(maker.images(chunk, None), maker.pose_maps(chunk, None)).float()
                fake = resize(fake, (height, width))
                pixels = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                yield Batch(chunk, name, pixels)


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
