"""Shared set-up of the re-identification tests: a tiny SYSU store and a hand-made generated store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.fixtures import make_sysu_tree
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import Store, open_store
from papg_bench.data.writer import StoreWriter
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.sets import Batch, Translator
from papg_bench.workspace import Workspace

SIZE = (64, 32)
# Small enough for seconds per run on two shared cores; every hyper-parameter still goes through the trainer.
TINY = {
    "size": SIZE, "width": 8, "epochs": 2, "num_ids": 4, "num_instances": 2, "parts": 4, "part_dim": 16,
    "warmup_epochs": 1, "milestones": (1,), "dart_warmup": 1, "eval_batch_size": 64, "graph_topk": 4,
    "backbone_lr": 0.01,  # few steps: a slower backbone keeps the batch-norm statistics representative
}


def make_workspace(base: Path) -> Workspace:
    """A workspace with store ``sysu`` (8 training ids, 3 test ids) and generated store ``papg`` of it."""
    root = make_sysu_tree(base / "SYSU", train_ids=[1, 2, 3, 4, 5, 6, 7], val_ids=[8], test_ids=[9, 10, 11],
                          images_per_camera=3, size=SIZE)
    ws = Workspace(base / "work")
    prepare_store(read_layout("sysu", root), root, ws.dataset_dir("sysu"), SIZE, workers=1)
    write_generated_store(ws, "sysu")
    return ws


def write_generated_store(ws: Workspace, dataset: str, run: str = "papg") -> Path:
    """Fake generator output for every training image: grey copies of visible images as infrared (V2I),
    tinted copies of infrared images as visible (I2V), in the generated-store format."""
    store = open_store(ws.dataset_dir(dataset))
    rows = np.flatnonzero(store.in_split("train"))
    with StoreWriter(ws.generated_dir(dataset, run), len(rows), *store.size) as writer:
        columns: dict[str, list] = {k: [] for k in ("path", "pid", "cam", "modality", "split", "source_row",
                                                     "direction")}
        for i, row in enumerate(rows):
            image = store.images[row].astype(np.float32)
            if store.modalities[row] == "V":
                writer.images[i] = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
                direction, target = "V2I", "I"
            else:
                writer.images[i] = np.clip(image * np.array([1.0, 0.8, 0.6]), 0, 255).astype(np.uint8)
                direction, target = "I2V", "V"
            for key, value in (("path", f"{direction}/{store.paths[row]}"), ("pid", store.pids[row]),
                               ("cam", store.cams[row]), ("modality", target), ("split", store.splits[row]),
                               ("source_row", row), ("direction", direction)):
                columns[key].append(value)
        return writer.finish(columns, {"dataset": store.meta["dataset"], "source_store": str(store.path)})


def one_thread():  # noqa: ANN201 - pytest fixture body
    """On a busy shared machine two OpenMP threads spin against each other; one is many times faster here."""
    from papg_bench.training import torch_threads

    with torch_threads(1):
        yield


class GreyTranslator(Translator):
    """A new 'generator' in a dozen lines: visible -> its grey image, infrared -> a tinted copy."""

    kind = "generator"
    columns = ("note",)

    def __init__(self, strength: float = 1.0, rows: np.ndarray | None = None) -> None:
        self.strength, self.rows = strength, rows

    def fingerprint(self, store: Store) -> str:
        return f"grey:{self.strength}"

    def origin(self) -> dict[str, Any]:
        return {"generator": "grey", "settings": {"strength": self.strength}}

    def plan(self, store: Store) -> dict[str, np.ndarray]:
        rows = training_rows(store) if self.rows is None else self.rows
        return {"V2I": rows[store.modalities[rows] == "V"], "I2V": rows[store.modalities[rows] == "I"]}

    def batches(self, store: Store, plan: dict[str, np.ndarray]) -> Iterator[Batch]:
        for direction, rows in plan.items():
            images = np.asarray(store.images[rows]).astype(np.float32)
            if direction == "V2I":
                images = np.repeat(images.mean(axis=3, keepdims=True), 3, axis=3) * self.strength
            else:
                images = images * np.array([1.0, 0.8, 0.6])
            yield Batch(rows, direction, np.clip(images, 0, 255).astype(np.uint8), {"note": [direction] * len(rows)})

    def default_display(self, name: str) -> str:
        return f"grey ({name})"


def train_tiny(ws: Workspace, baseline: str = "agw", augment: str = "none", **overrides: Any) -> Any:
    """A ``tiny``-preset run of ``baseline`` on the ``sysu`` store, one torch thread, seed 0."""
    from papg_bench.reid_baselines.run import train_run
    from papg_bench.training import torch_threads

    with torch_threads(1):
        return train_run(ws, "sysu", baseline, augment, seed=0, preset="tiny", device="cpu",
                         overrides={**TINY, **overrides})
