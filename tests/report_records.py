"""Hand-made result records for the report tests (not a test module itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
