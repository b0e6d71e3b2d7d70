"""The training pool (real + generated images) and the cross-modality identity sampler.

Every batch holds P identities x (K visible + K infrared) images, as the AGW reference sampler: the P
identities are drawn without replacement, each identity's K images per modality without replacement
when it has at least K, with replacement otherwise. ``synthetic_ratio`` r fixes how many of each
modality's K come from generated images (round(r K), when the identity has generated images of that
modality; the rest are real); ``None`` samples real and generated images alike from their union.

The batches of epoch e depend only on (seed, e), so the sampler resumes exactly from its state dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from papg_bench.errors import UserError

VISIBLE, INFRARED = 0, 1


@dataclass
class TrainingPool:
    """Every training image: which store it lives in, its row there, label and modality."""

    generated: np.ndarray  # bool: row of the generated store (else of the dataset store)
    store_rows: np.ndarray  # int64: row within its store
    labels: np.ndarray  # int64: 0 .. num_classes - 1
    modalities: np.ndarray  # int64: 0 visible, 1 infrared
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def count(self, modality: int, real_only: bool = False) -> int:
        mask = self.modalities == modality
        if real_only:
            mask &= ~self.generated
        return int(mask.sum())


class CrossModalitySampler:
    """Yields batches as P x 2K arrays of pool indices: per identity, K visible then K infrared."""

    def __init__(self, pool: TrainingPool, num_ids: int, num_instances: int, seed: int,
                 steps_per_epoch: int, synthetic_ratio: float | None = None) -> None:
        self.pool, self.num_ids, self.num_instances = pool, num_ids, num_instances
        self.seed, self.steps_per_epoch, self.synthetic_ratio = seed, steps_per_epoch, synthetic_ratio
        self.epoch, self.step = 0, 0
        self.real: dict[tuple[int, int], np.ndarray] = {}
        self.fake: dict[tuple[int, int], np.ndarray] = {}
        for label in range(pool.num_classes):
            for m in (VISIBLE, INFRARED):
                mask = (pool.labels == label) & (pool.modalities == m)
                self.real[(label, m)] = np.flatnonzero(mask & ~pool.generated)
                self.fake[(label, m)] = np.flatnonzero(mask & pool.generated)
        self.ids = np.array([c for c in range(pool.num_classes)
                             if all(len(self.real[(c, m)]) + len(self.fake[(c, m)]) for m in (VISIBLE, INFRARED))],
                            dtype=np.int64)
        if len(self.ids) < num_ids:
            raise UserError(
                f"--num-ids {num_ids}: only {len(self.ids)} training identities have images of both modalities; "
                "lower --num-ids."
            )

    @staticmethod
    def default_steps(pool: TrainingPool, num_ids: int, num_instances: int, real_only: bool) -> int:
        """Steps per epoch as the reference: max(visible, infrared) images / (P K), at least 1."""
        images = max(pool.count(VISIBLE, real_only), pool.count(INFRARED, real_only))
        return max(1, images // (num_ids * num_instances))

    def _draw(self, rng: np.random.Generator, rows: np.ndarray, count: int) -> np.ndarray:
        if count == 0:
            return np.empty(0, dtype=np.int64)
        return rng.choice(rows, size=count, replace=len(rows) < count)

    def _instances(self, rng: np.random.Generator, label: int, modality: int) -> np.ndarray:
        real, fake = self.real[(label, modality)], self.fake[(label, modality)]
        k = self.num_instances
        if self.synthetic_ratio is None:
            return self._draw(rng, np.concatenate([real, fake]), k)
        n_fake = int(round(self.synthetic_ratio * k)) if len(fake) else 0
        if not len(real):
            n_fake = k
        return np.concatenate([self._draw(rng, fake, n_fake), self._draw(rng, real, k - n_fake)])

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """All batches of ``epoch``: steps x P x 2K pool indices."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = np.empty((self.steps_per_epoch, self.num_ids, 2 * self.num_instances), dtype=np.int64)
        for s in range(self.steps_per_epoch):
            for i, label in enumerate(rng.choice(self.ids, size=self.num_ids, replace=False)):
                batches[s, i] = np.concatenate([self._instances(rng, int(label), m) for m in (VISIBLE, INFRARED)])
        return batches

    def __iter__(self) -> Iterator[np.ndarray]:
        """Remaining batches of the current epoch; the position advances as they are consumed."""
        batches = self.epoch_batches(self.epoch)
        while self.step < self.steps_per_epoch:
            batch = batches[self.step]
            self.step += 1
            yield batch
        self.epoch, self.step = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.step = epoch, 0

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "step": self.step, "steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["steps_per_epoch"] != self.steps_per_epoch:
            raise UserError("the checkpoint's sampler was made for another seed or budget: resume with the same "
                            "settings, or start the run again.")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
