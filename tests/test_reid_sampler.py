"""The cross-modality identity sampler: batch composition, synthetic ratio, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest

from papg_bench.errors import UserError
from papg_bench.reid_baselines.sampler import CrossModalitySampler, TrainingPool


def make_pool(ids: int = 6, real: int = 5, fake: int = 3) -> TrainingPool:
    generated, labels, modalities = [], [], []
    for label in range(ids):
        for modality in (0, 1):
            for is_fake, count in ((False, real + modality), (True, fake)):
                generated += [is_fake] * count
                labels += [label] * count
                modalities += [modality] * count
    n = len(labels)
    return TrainingPool(generated=np.array(generated), store_rows=np.arange(n), labels=np.array(labels),
                        modalities=np.array(modalities), num_classes=ids)


def test_batches_hold_p_identities_with_k_visible_and_k_infrared() -> None:
    pool = make_pool()
    sampler = CrossModalitySampler(pool, num_ids=4, num_instances=3, seed=1, steps_per_epoch=5)
    batches = sampler.epoch_batches(0)
    assert batches.shape == (5, 4, 6)
    for batch in batches:
        labels = pool.labels[batch]
        assert len(set(labels[:, 0])) == 4 and (labels == labels[:, :1]).all()
        assert (pool.modalities[batch[:, :3]] == 0).all() and (pool.modalities[batch[:, 3:]] == 1).all()
        for row in batch:  # without replacement when an identity has enough images
            assert len(set(row[:3])) == 3 and len(set(row[3:])) == 3


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 0), (0.5, 2), (0.75, 3), (1.0, 4)])
def test_synthetic_ratio_sets_generated_images_per_modality(ratio: float, expected: int) -> None:
    pool = make_pool(fake=6)
    sampler = CrossModalitySampler(pool, num_ids=3, num_instances=4, seed=0, steps_per_epoch=4,
                                   synthetic_ratio=ratio)
    fake = pool.generated[sampler.epoch_batches(0)]
    assert (fake[..., :4].sum(-1) == expected).all() and (fake[..., 4:].sum(-1) == expected).all()


def test_natural_ratio_mixes_real_and_generated_and_identities_without_generated_images() -> None:
    pool = make_pool(ids=6, real=4, fake=4)
    sampler = CrossModalitySampler(pool, num_ids=6, num_instances=4, seed=0, steps_per_epoch=50)
    share = pool.generated[sampler.epoch_batches(0)].mean()
    assert 0.35 < share < 0.6  # about the pool's share (4 of 8 or 9)
    real_only = make_pool(fake=0)
    sampler = CrossModalitySampler(real_only, num_ids=2, num_instances=2, seed=0, steps_per_epoch=3,
                                   synthetic_ratio=0.5)
    assert not real_only.generated[sampler.epoch_batches(0)].any()


def test_seeded_resumable_and_budget_steps() -> None:
    pool = make_pool()
    a = CrossModalitySampler(pool, 3, 2, seed=5, steps_per_epoch=4)
    b = CrossModalitySampler(pool, 3, 2, seed=5, steps_per_epoch=4)
    c = CrossModalitySampler(pool, 3, 2, seed=6, steps_per_epoch=4)
    assert np.array_equal(a.epoch_batches(2), b.epoch_batches(2))
    assert not np.array_equal(a.epoch_batches(2), c.epoch_batches(2))
    assert not np.array_equal(a.epoch_batches(0), a.epoch_batches(1))
    it = iter(a)
    first = [next(it), next(it)]
    state = a.state_dict()
    b.load_state_dict(state)
    rest_a, rest_b = list(it), list(b)
    assert len(first) + len(rest_a) == 4
    assert all(np.array_equal(x, y) for x, y in zip(rest_a, rest_b, strict=True))
    assert a.epoch == b.epoch == 1
    # steps per epoch: max(visible, infrared) / (P K); real images only for the equal-steps budget
    assert CrossModalitySampler.default_steps(pool, 3, 2, real_only=True) == (6 * 6) // 6
    assert CrossModalitySampler.default_steps(pool, 3, 2, real_only=False) == (6 * 9) // 6
    with pytest.raises(UserError, match="--num-ids"):
        CrossModalitySampler(pool, 7, 2, seed=0, steps_per_epoch=1)
    with pytest.raises(UserError, match="seed"):
        c.load_state_dict(state)
