"""``papg-bench generate --counterparts``: the generated store a perfect generator would write.

Every training image gets its true counterpart in the other modality instead of a generator's output:
synthvi's ``<root>/synthvi/counterparts/<path>`` (same person, pose and moment, rendered in the other
modality) or, for RegDB, the co-captured image of the other modality (Visible k <-> Thermal k). The store
has the layout and provenance columns of :mod:`.synthesis` (``generator`` is ``counterparts``), so
``papg-bench train --augment papg --generated-run counterparts`` trains a baseline with the augmentation's
upper bound: what no generator can beat.

With ``other_moment`` each training image instead gets the true counterpart of another image of its
identity, from another camera where there is one (drawn with ``seed``): the same person in the other
modality, but not the same pose, moment or background. The two stores tell apart what an augmentation
gains from identity-consistent images of the other modality and what it gains (or loses) from
pixel-aligned pairs, which a generator's output always is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.quality import counterpart_source, true_counterparts
from papg_bench.generators.sets import DIRECTIONS, Batch, Translator, default_display, write_set
from papg_bench.generators.synthesis import GenerateResult
from papg_bench.workspace import Workspace

GENERATOR = "counterparts"
CHUNK = 256


def other_moments(store: Store, rows: np.ndarray, seed: int) -> np.ndarray:
    """For each row, another row of the same identity and modality, from another camera where possible."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, str], list[int]] = {}
    for row in rows.tolist():
        groups.setdefault((int(store.pids[row]), str(store.modalities[row])), []).append(row)
    partners = rows.copy()
    for k, row in enumerate(rows.tolist()):
        same = np.asarray(groups[(int(store.pids[row]), str(store.modalities[row]))])
        elsewhere = same[store.cams[same] != store.cams[row]]
        pool = elsewhere if len(elsewhere) else same[same != row]
        if len(pool):
            partners[k] = int(rng.choice(pool))
    return partners


def write_counterparts(ws: Workspace, dataset: str, run: str = GENERATOR, trial: int = 0,
                       force: bool = False, other_moment: bool = False, seed: int = 0,
                       display: str | None = None) -> GenerateResult:
    """Write (or confirm up to date) ``<work>/generated/<dataset>/<run>/`` from the true counterparts."""
    store = open_store(ws.dataset_dir(dataset), "store")
    source = counterpart_source(store)
    if source is None:
        raise UserError(f"--counterparts: the store of {dataset} has no true counterparts (synthvi keeps them in "
                        "<root>/synthvi/counterparts/, RegDB pairs Visible k with Thermal k): prepare a synthvi or "
                        "RegDB dataset, or train a generator and run generate without --counterparts.")
    result = write_set(ws, dataset, run, CounterpartTranslator(source, dataset, trial, other_moment, seed),
                       display=display, force=force)
    return GenerateResult(result.path, result.status, result.count, result.fingerprint, result.seconds,
                          manifest=result.manifest)


class CounterpartTranslator(Translator):
    """The true counterpart of every training image (or of another image of its identity)."""

    kind = "counterparts"
    columns = ("counterpart_of",)

    def __init__(self, source: str, dataset: str, trial: int, other_moment: bool, seed: int) -> None:
        self.source, self.dataset, self.trial = source, dataset, trial
        self.other_moment, self.draw_seed = other_moment, seed
        self.seed = seed if other_moment else 0

    def fingerprint(self, store: Store) -> str:
        return f"{GENERATOR}:trial{self.trial}" + (f":other-moment:seed{self.draw_seed}" if self.other_moment else "")

    def plan(self, store: Store) -> dict[str, np.ndarray]:
        rows = training_rows(store, self.trial)
        self.partner_of = dict(zip(rows.tolist(), (other_moments(store, rows, self.draw_seed) if self.other_moment
                                                   else rows).tolist(), strict=True))
        self.planned = len(rows)
        return {name: rows[store.modalities[rows] == modality] for name, (modality, _) in DIRECTIONS.items()}

    def origin(self) -> dict[str, Any]:
        return {"source": self.source, "trial": self.trial, "other_moment": self.other_moment,
                **({"seed": self.draw_seed} if self.other_moment else {})}

    def meta(self) -> dict[str, Any]:
        return {"generator": self.source, "generator_run": GENERATOR, "trial": self.trial,
                "other_moment": self.other_moment, "missing_counterparts": self.planned - self.written}

    def generator(self, fingerprint: str) -> str:
        return GENERATOR

    def default_display(self, name: str) -> str:
        return default_display(name, {"kind": self.kind, "other_moment": self.other_moment})

    def batches(self, store: Store, plan: dict[str, np.ndarray]) -> Iterator[Batch]:
        self.written = 0
        for name, source_rows in plan.items():
            for begin in range(0, len(source_rows), CHUNK):
                chunk = source_rows[begin:begin + CHUNK]
                partners = [self.partner_of[int(r)] for r in chunk]
                found, images = true_counterparts(store, np.asarray(partners))
                self.written += len(images)
                if len(images):  # rows with a counterpart, in order
                    yield Batch(chunk[found], name, images,
                                {"counterpart_of": [p for p, ok in zip(partners, found, strict=True) if ok]})
        if not self.written:
            raise UserError(f"--counterparts: none of the {self.planned} training images of {self.dataset} has a "
                            f"true counterpart in {self.source}: was the dataset moved since prepare?")
