"""Training pairs for PAPG: each infrared image of a training identity with a visible image of the same one.

The pairing is redrawn every epoch from ``(seed, epoch)`` alone (the visible partner of each infrared
image, then the order), so it needs no state to resume and every rank computes the same list. Under DDP
each global batch of ``batch_size x world_size`` pairs is split across the ranks, which makes a run on
W processes see exactly the pairs of one process with the global batch.

Leakage guard: only rows of training identities ever enter; a row of a test identity is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from papg_bench.data.store import Store
from papg_bench.errors import UserError


def split_trial(store: Store, trial: int) -> int | None:
    return store.dataset.split_trial(trial) if trial else None


def held_out_identities(store: Store, trial: int = 0) -> set[int]:
    """Identities of the test split (of ``trial`` for RegDB)."""
    return {int(p) for p in np.unique(store.pids[store.in_split("test", split_trial(store, trial))])}


def guard_training_rows(store: Store, rows: Sequence[int] | np.ndarray, trial: int = 0) -> None:
    """Refuse any row that is not a training row or belongs to a test identity (no test data may leak)."""
    rows = np.asarray(rows, dtype=np.int64)
    train = store.in_split("train", split_trial(store, trial))
    test_ids = held_out_identities(store, trial)
    for row in rows:
        pid = int(store.pids[row])
        if not train[row] or pid in test_ids:
            raise UserError(
                f"{store.path}: row {int(row)} ({store.paths[row]}, identity {pid}) belongs to a test identity; "
                "the generator may only see training identities. Rebuild the store with `papg-bench prepare "
                "--force` if its split column is wrong."
            )


def training_rows(store: Store, trial: int = 0) -> np.ndarray:
    """Every training row of the store (both modalities), after the leakage guard."""
    rows = np.flatnonzero(store.in_split("train", split_trial(store, trial)))
    guard_training_rows(store, rows, trial)
    return rows


class PairSchedule:
    """The per-epoch list of (infrared row, visible row) pairs and how it is cut into batches."""

    def __init__(self, store: Store, seed: int, trial: int = 0, max_pairs: int = 0) -> None:
        self.seed = seed
        self.max_pairs = max_pairs
        candidates = training_rows(store, trial)
        modal = store.modalities
        infrared = candidates[modal[candidates] == "I"]
        visible = candidates[modal[candidates] == "V"]
        self.visible_by_pid = {int(p): visible[store.pids[visible] == p] for p in np.unique(store.pids[visible])}
        self.infrared = np.array([r for r in infrared if int(store.pids[r]) in self.visible_by_pid], dtype=np.int64)
        self.unpaired = len(infrared) - len(self.infrared)
        if len(self.infrared) == 0:
            raise UserError(
                f"{store.path}: no training identity has both infrared and visible images, so there is nothing "
                "to pair; check the store (papg-bench info) or the --dataset name."
            )
        self._pids = store.pids[self.infrared]

    @property
    def pairs_per_epoch(self) -> int:
        n = len(self.infrared)
        return min(n, self.max_pairs) if self.max_pairs else n

    @property
    def identities(self) -> int:
        return len(np.unique(self._pids))

    def epoch_pairs(self, epoch: int) -> np.ndarray:
        """P x 2 array of (infrared row, visible row) for ``epoch``, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        partner = np.empty(len(self.infrared), dtype=np.int64)
        draws = rng.random(len(self.infrared))
        for pid, rows in self.visible_by_pid.items():
            where = self._pids == pid
            partner[where] = rows[np.minimum((draws[where] * len(rows)).astype(np.int64), len(rows) - 1)]
        order = rng.permutation(len(self.infrared))
        pairs = np.stack([self.infrared[order], partner[order]], axis=1)
        return pairs[: self.pairs_per_epoch]

    def steps_per_epoch(self, global_batch: int) -> int:
        steps = self.pairs_per_epoch // global_batch
        if steps == 0:
            raise UserError(
                f"only {self.pairs_per_epoch} training pairs per epoch but a global batch of {global_batch}: "
                "lower --batch-size (or raise --max-pairs)."
            )
        return steps

    def batch(self, pairs: np.ndarray, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """This rank's ``batch_size`` pairs of global step ``step`` (global batch = batch_size x world_size)."""
        start = (step * world_size + rank) * batch_size
        return pairs[start:start + batch_size]
