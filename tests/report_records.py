"""Hand-made result records for the report tests (not a test module itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.results.records import write_record


def cmc(r1: float, r10: float, r20: float) -> list[float]:
    """A 20-rank CMC whose rank-1..9 are r1, rank-10..19 are r10 and rank-20 is r20."""
    return [r1] * 9 + [r10] * 10 + [r20]


def trial(t: int, r1: float, r10: float, r20: float, m_ap: float, m_inp: float = 0.2) -> dict[str, Any]:
    return {"trial": t, "cmc": cmc(r1, r10, r20), "mAP": m_ap, "mINP": m_inp, "num_queries": 10,
            "num_valid_queries": 10}


def record(baseline: str | None, augment: str | None, mode: str, trials: list[dict[str, Any]], *, seed: int | None = 0,
           shots: int = 1, sampling: str | None = "seed", rerank: dict | None = None, **extra: Any) -> dict[str, Any]:
    family = "regdb" if mode in ("v2t", "t2v") else "sysu"
    return {
        "protocol": f"{family}/{mode}/v1", "dataset": family, "mode": mode, "shots": shots,
        "sampling": sampling if family == "sysu" else None, "rerank": rerank, "distance": "cosine",
        "baseline": baseline, "augment": augment, "seed": seed, "trials": trials, **extra,
    }


def save(folder: Path, name: str, rec: dict[str, Any]) -> Path:
    return write_record(folder / f"{name}.json", rec)


def seed_gain_records(gains: list[float], *, trial_noise: float = 0.2, trials: int = 10, seeds: list[int] | None = None,
                      rng_seed: int = 0) -> list[dict[str, Any]]:
    """AGW with and without PAPG on all-search, one record per seed and row, ``trials`` gallery trials each.

    Seed ``s`` has its own rank-1 level (a few points apart) and each trial its own gallery difficulty,
    shared by both rows; PAPG's rank-1 is the baseline's plus ``gains[s]`` points plus independent
    trial noise of std ``trial_noise`` points. mAP follows rank-1 ten points lower.
    """
    rng = np.random.default_rng(rng_seed)
    out = []
    for seed, gain in zip(seeds if seeds is not None else range(len(gains)), gains, strict=True):
        level = 30.0 + rng.normal(0.0, 3.0)
        base = level + rng.normal(0.0, 2.0, trials)
        aug = base + gain + rng.normal(0.0, trial_noise, trials)
        for augment, values in (("none", base), ("papg", aug)):
            runs = [trial(t, v / 100, .7, .9, (v - 10) / 100) for t, v in enumerate(values)]
            out.append(record("agw", augment, "all", runs, seed=seed))
    return out


def seed_means(records: list[dict[str, Any]], augment: str) -> dict[int, float]:
    """Each seed's rank-1 mean over its trials (percent), straight from the records."""
    return {r["seed"]: float(np.mean([t["cmc"][0] for t in r["trials"]])) * 100
            for r in records if r["augment"] == augment}
