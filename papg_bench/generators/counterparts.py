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

import time
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.store import Store, open_store
from papg_bench.data.writer import StoreWriter
from papg_bench.errors import UserError
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.quality import counterpart_source, true_counterparts
from papg_bench.generators.synthesis import (
    DIRECTIONS,
    GENERATED_COLUMNS,
    GenerateResult,
    add_generated_row,
    generated_meta,
    store_checksum,
    up_to_date,
)
from papg_bench.progress import track
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
                       force: bool = False, other_moment: bool = False, seed: int = 0) -> GenerateResult:
    """Write (or confirm up to date) ``<work>/generated/<dataset>/<run>/`` from the true counterparts."""
    store = open_store(ws.dataset_dir(dataset), "store")
    source = counterpart_source(store)
    if source is None:
        raise UserError(f"--counterparts: the store of {dataset} has no true counterparts (synthvi keeps them in "
                        "<root>/synthvi/counterparts/, RegDB pairs Visible k with Thermal k): prepare a synthvi or "
                        "RegDB dataset, or train a generator and run generate without --counterparts.")
    source_checksum = store_checksum(store)
    digest = f"{GENERATOR}:trial{trial}" + (f":other-moment:seed{seed}" if other_moment else "")
    out = ws.generated_dir(dataset, run)
    start = time.perf_counter()
    status = "unchanged"
    if force or not up_to_date(out, digest, source_checksum):
        _write(store, source, digest, source_checksum, out, dataset, trial, other_moment, seed)
        status = "generated"
    count = len(open_store(out, "generated store"))
    return GenerateResult(out, status, count, digest, time.perf_counter() - start)


def _write(store: Store, source: str, digest: str, source_checksum: str, out: Path, dataset: str,
           trial: int, other_moment: bool, seed: int) -> None:
    rows = training_rows(store, trial)
    partner_of = dict(zip(rows.tolist(), (other_moments(store, rows, seed) if other_moment else rows).tolist(),
                          strict=True))
    by_direction = {name: rows[store.modalities[rows] == modality] for name, (modality, _) in DIRECTIONS.items()}
    height, width = store.size
    columns: dict[str, list[Any]] = {k: [] for k in (*GENERATED_COLUMNS, "counterpart_of")}
    with StoreWriter(out, len(rows), height, width) as writer, \
            track(f"counterparts {dataset}", len(rows), "img") as advance:
        written = 0
        for name, source_rows in by_direction.items():
            for begin in range(0, len(source_rows), CHUNK):
                chunk = source_rows[begin:begin + CHUNK]
                found, images = true_counterparts(store, np.asarray([partner_of[int(r)] for r in chunk]))
                writer.images[written:written + len(images)] = images  # rows with a counterpart, in order
                written += len(images)
                for row in chunk[found]:
                    add_generated_row(columns, store, row, name, GENERATOR, seed if other_moment else 0)
                    columns["counterpart_of"].append(partner_of[int(row)])
                advance(len(chunk))
        if not written:
            raise UserError(f"--counterparts: none of the {len(rows)} training images of {dataset} has a true "
                            f"counterpart in {source}: was the dataset moved since prepare?")
        if written < len(rows):
            writer.compact(range(written))
        writer.finish(columns, {
            **generated_meta(store, digest, source_checksum),
            "generator": source,
            "generator_run": GENERATOR,
            "trial": trial,
            "other_moment": other_moment,
            "directions": {name: columns["direction"].count(name) for name in DIRECTIONS},
            "missing_counterparts": len(rows) - written,
        })
