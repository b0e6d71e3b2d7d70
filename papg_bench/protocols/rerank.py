"""k-reciprocal re-ranking (Zhong et al., CVPR 2017): an explicitly labelled variant, never on by default.

Same computation as the authors' ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``: the
three distance matrices are joined, squared and normalised per column; each image's k-reciprocal set
(with the authors' 2/3 expansion rule at round(k1/2)) is weighted by exp(-distance), averaged over its
k2 nearest neighbours (query expansion) and compared by Jaccard distance; the result is
``(1 - lambda) * jaccard + lambda * original``. Neighbour lists are ranked with ties broken by index.
The set construction is vectorised; memory is a few N x N float32 matrices, N = queries + gallery.
"""

from __future__ import annotations

import numpy as np

from papg_bench.errors import UserError
from papg_bench.protocols.metrics import rank_order

_ROW_CHUNK = 1024


def check_parameters(k1: int, k2: int, lambda_value: float) -> None:
    if k1 < 1 or k2 < 1:
        raise UserError(f"--k1 {k1} / --k2 {k2}: both must be at least 1 (the usual values are 20 and 6).")
    if not 0.0 <= lambda_value <= 1.0:
        raise UserError(f"--lambda {lambda_value}: must lie in [0, 1] (the usual value is 0.3).")


def rerank(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked (queries x gallery) float32 distances."""
    check_parameters(k1, k2, lambda_value)
    nq, ng = q_g_dist.shape
    original = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]).astype(np.float32)
    np.square(original, out=original)
    col_max = np.maximum(original.max(axis=0), np.finfo(np.float32).tiny)
    original = np.ascontiguousarray((original / col_max).T)
    width = max(k1 + 1, k2)
    initial_rank = rank_order(original)[:, :width]

    weights = _reciprocal_weights(original, initial_rank, k1)
    if k2 != 1:
        expanded = np.zeros_like(weights)
        for t in range(k2):
            expanded += weights[initial_rank[:, t]]
        weights = expanded / np.float32(k2)

    jaccard = np.empty((nq, ng), dtype=np.float32)
    gallery_weights = weights[nq:]
    for i in range(nq):  # one sparse row at a time: V is ~100 non-zeros per row
        support = np.flatnonzero(weights[i])
        common = np.minimum(weights[i, support][None, :], gallery_weights[:, support]).sum(axis=1)
        jaccard[i] = 1.0 - common / (2.0 - common)
    final = jaccard * np.float32(1 - lambda_value) + original[:nq, nq:] * np.float32(lambda_value)
    return final.astype(np.float32)


def _reciprocal_sets(initial_rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first ``k + 1`` neighbours and which of them have the row among their own first ``k + 1``."""
    forward = initial_rank[:, : k + 1]
    backward = forward[forward]  # (N, k+1, k+1)
    reciprocal = (backward == np.arange(len(forward))[:, None, None]).any(axis=2)
    return forward, reciprocal


def _reciprocal_weights(original: np.ndarray, initial_rank: np.ndarray, k1: int) -> np.ndarray:
    n = len(original)
    forward, reciprocal = _reciprocal_sets(initial_rank, k1)
    half_forward, half_reciprocal = _reciprocal_sets(initial_rank, int(np.around(k1 / 2.0)))
    members = np.zeros((n, n), dtype=bool)
    for start in range(0, n, _ROW_CHUNK):
        rows = slice(start, min(n, start + _ROW_CHUNK))
        fwd, rec = forward[rows], reciprocal[rows]
        r, c = np.nonzero(rec)
        members[start + r, fwd[r, c]] = True
        # Expansion: a reciprocal neighbour's half-size reciprocal set joins when more than 2/3 of it is
        # already in this row's reciprocal set.
        cand_sets = half_forward[fwd]  # (rows, k1+1, h+1)
        cand_mask = half_reciprocal[fwd]
        in_row_set = ((cand_sets[:, :, :, None] == fwd[:, None, None, :]) & rec[:, None, None, :]).any(axis=3)
        overlap = (in_row_set & cand_mask).sum(axis=2)
        accept = rec & (overlap > 2.0 / 3.0 * cand_mask.sum(axis=2))
        take = accept[:, :, None] & cand_mask
        r, c, m = np.nonzero(take)
        members[start + r, cand_sets[r, c, m]] = True
    weights = np.where(members, np.exp(-original), np.float32(0)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights
