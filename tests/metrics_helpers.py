"""Hand-made retrieval cases for the metric tests: who is in the gallery and the ranking each query gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from papg_bench.protocols.metrics import Metrics, evaluate


@dataclass(frozen=True)
class RankedCase:
    """Gallery and query (pid, cam) and, per query, the wanted gallery ranking; distance = position in it."""

    g_pids: Sequence[int]
    g_cams: Sequence[int]
    q_pids: Sequence[int]
    q_cams: Sequence[int]
    rankings: Sequence[Sequence[int]]

    def distances(self) -> np.ndarray:
        dist = np.zeros((len(self.rankings), len(self.g_pids)), dtype=np.float32)
        for i, ranking in enumerate(self.rankings):
            dist[i, list(ranking)] = np.arange(len(self.g_pids))
        return dist

    def evaluate(self, **options: Any) -> Metrics:
        return evaluate(self.distances(), np.array(self.q_pids), np.array(self.g_pids), np.array(self.q_cams),
                        np.array(self.g_cams), **options)
