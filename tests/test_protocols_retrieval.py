"""Retrieval backends agree; k-reciprocal re-ranking matches the authors' code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papg_bench.errors import UserError
from papg_bench.protocols.metrics import evaluate, rank_order
from papg_bench.protocols.rerank import rerank
from papg_bench.protocols.retrieval import distance_matrix, faiss_gpu_usable, prepare_features, resolve_backend

CPU_BACKENDS = ["torch", "faiss-cpu"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(1, 25), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_backends_agree_exactly_on_integer_features(nq, ng, dim, seed):
    # Small integers keep every Euclidean distance exact in float32, so ties are real ties everywhere.
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, (nq, dim)).astype(np.float32)
    g = rng.integers(-2, 3, (ng, dim)).astype(np.float32)
    dists = [distance_matrix(q, g, "euclidean", backend, device="cpu") for backend in CPU_BACKENDS]
    np.testing.assert_array_equal(dists[0], dists[1])
    np.testing.assert_array_equal(rank_order(dists[0]), rank_order(dists[1]))
    np.testing.assert_allclose(dists[0], np.sqrt(((q[:, None] - g[None]) ** 2).sum(-1)), rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_backends_agree_on_cosine_metrics(seed):
    rng = np.random.default_rng(seed)
    q, g = rng.standard_normal((30, 16)), rng.standard_normal((50, 16))
    q_pids, g_pids = rng.integers(0, 8, 30), rng.integers(0, 8, 50)
    q_cams, g_cams = rng.choice([3, 6], 30), rng.choice([1, 2, 4, 5], 50)
    results = []
    for backend in CPU_BACKENDS:
        d = distance_matrix(q, g, "cosine", backend, device="cpu")
        np.testing.assert_allclose(d, 1 - prepare_features(q) @ prepare_features(g).T, atol=1e-5)
        if not np.isin(q_pids, g_pids).any():
            return
        results.append(evaluate(d, q_pids, g_pids, q_cams, g_cams))
    assert results[0].cmc == pytest.approx(results[1].cmc)
    assert results[0].mAP == pytest.approx(results[1].mAP)


def test_cosine_ignores_scale_and_zero_vectors_are_safe():
    q = np.array([[3.0, 0.0], [0.0, 0.0]])
    g = np.array([[1.0, 0.0], [0.0, 5.0]])
    d = distance_matrix(q, g, "cosine", "torch", device="cpu")
    np.testing.assert_allclose(d, [[0.0, 1.0], [1.0, 1.0]], atol=1e-7)


def test_backend_and_distance_names():
    assert resolve_backend("auto") in ("torch", "faiss-gpu")
    assert resolve_backend("faiss") in ("faiss-cpu", "faiss-gpu")
    with pytest.raises(UserError, match="--backend 'annoy'"):
        resolve_backend("annoy")
    with pytest.raises(UserError, match="--distance 'manhattan'"):
        distance_matrix(np.ones((1, 2)), np.ones((1, 2)), "manhattan")
    if not faiss_gpu_usable():
        with pytest.raises(UserError, match="faiss-gpu"):
            resolve_backend("faiss-gpu")


@pytest.mark.gpu
def test_cuda_torch_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((64, 128)), rng.standard_normal((300, 128))
    cpu = distance_matrix(q, g, "cosine", "torch", device="cpu")
    np.testing.assert_allclose(distance_matrix(q, g, "cosine", "torch", device="cuda"), cpu, atol=1e-5)
    if faiss_gpu_usable():
        np.testing.assert_allclose(distance_matrix(q, g, "cosine", "faiss-gpu"), cpu, atol=1e-5)


def _reference_rerank(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """Zhong et al.'s re_ranking, transcribed (argsort made stable: ties by index)."""
    original_dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                                    np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    query_num = q_g_dist.shape[0]
    all_num = gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            half = int(np.around(k1 / 2.0)) + 1
            candidate_forward = initial_rank[candidate, :half]
            candidate_backward = initial_rank[candidate_forward, :half]
            candidate_k_reciprocal_index = candidate_forward[np.where(candidate_backward == candidate)[0]]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(gallery_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] += np.minimum(V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


@pytest.mark.parametrize(("nq", "ng", "k1", "k2", "lam"), [(12, 30, 20, 6, 0.3), (8, 15, 5, 3, 0.5),
                                                           (10, 20, 7, 1, 0.0), (4, 6, 20, 6, 0.3)])
def test_rerank_matches_the_authors_code(nq, ng, k1, k2, lam):
    rng = np.random.default_rng(nq * 100 + ng)
    q, g = rng.standard_normal((nq, 8)), rng.standard_normal((ng, 8))
    qg, qq, gg = (distance_matrix(a, b, "euclidean", "torch", device="cpu") for a, b in ((q, g), (q, q), (g, g)))
    expected = _reference_rerank(qg, qq, gg, k1, k2, lam)
    got = rerank(qg, qq, gg, k1, k2, lam)
    assert got.shape == (nq, ng)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(np.argsort(got, 1, kind="stable"), np.argsort(expected, 1, kind="stable"))


def test_rerank_rejects_bad_parameters():
    d = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(UserError, match="--k1 0"):
        rerank(d, d, d, k1=0)
    with pytest.raises(UserError, match="--lambda 1.5"):
        rerank(d, d, d, lambda_value=1.5)
