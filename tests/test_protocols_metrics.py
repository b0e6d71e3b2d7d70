"""CMC / mAP / mINP: golden cases computed by hand, the reference loop, and properties."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_helpers import RankedCase

from papg_bench.errors import UserError
from papg_bench.protocols.metrics import evaluate, rank_order


def _load_bench():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_eval.py"
    spec = importlib.util.spec_from_file_location("bench_eval", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

CASE = RankedCase(
    g_pids=[1, 2, 1, 2, 3, 1, 4], g_cams=[2, 1, 1, 4, 2, 4, 5], q_pids=[1, 2, 3, 9], q_cams=[3, 6, 3, 6],
    rankings=[
        [0, 1, 3, 2, 6, 5, 4],  # pid 1 from cam3: g0 and g4 (cam2) are removed
        [1, 0, 4, 3, 2, 5, 6],  # pid 2 from cam6: nothing removed
        [4, 0, 1, 2, 3, 5, 6],  # pid 3 from cam3: its only gallery image is on cam2 -> no valid match
        [0, 1, 2, 3, 4, 5, 6],  # pid 9: not in the gallery
    ],
)


def test_sysu_golden_cam3_cam2_rule_and_identity_cmc():
    m = CASE.evaluate(protocol="sysu", top_k=3)
    # q0 filtered ranking: g1(2) g3(2) g2(1) g6(4) g5(1): matches at 3 and 5; distinct ids 2, 1 -> id rank 2.
    # q1 ranking: g1(2) g0 g4 g3(2) ...: matches at 1 and 4. q2 and q3: no valid match.
    assert m.num_queries == 4 and m.num_valid == 2
    assert m.valid.tolist() == [True, True, False, False]
    assert m.first_rank.tolist() == [3, 1, 0, 0]
    assert m.id_rank.tolist() == [2, 1, 0, 0]
    assert m.ap[:2] == pytest.approx([(1 / 3 + 2 / 5) / 2, (1 + 2 / 4) / 2])
    assert np.isnan(m.ap[2:]).all() and np.isnan(m.inp[2:]).all()
    assert m.inp[:2] == pytest.approx([2 / 5, 2 / 4])
    assert len(m.cmc) == 7  # min(20, gallery size)
    assert m.cmc == pytest.approx([0.5, 1, 1, 1, 1, 1, 1])  # the standard CMC would give rank-1 0.5, rank-2 0.5
    assert m.mAP == pytest.approx((11 / 30 + 3 / 4) / 2)
    assert m.mINP == pytest.approx((2 / 5 + 1 / 2) / 2)
    assert m.top.tolist()[:2] == [[1, 3, 2], [1, 0, 4]]


def test_regdb_golden_removes_nothing_standard_cmc():
    m = CASE.evaluate(protocol="regdb")
    # q0: matches at 1, 4, 6; q1: 1, 4; q2: 1 (cam2 not removed); q3: none.
    assert m.num_valid == 3
    assert m.first_rank.tolist() == [1, 1, 1, 0]
    assert m.ap[:3] == pytest.approx([(1 + 2 / 4 + 3 / 6) / 3, 3 / 4, 1])
    assert m.cmc == pytest.approx([1] * 7)
    assert m.mAP == pytest.approx(29 / 36)
    assert m.mINP == pytest.approx(2 / 3)


def test_standard_cmc_counts_positions_identity_cmc_counts_identities():
    # Ranking: id 5, id 5, id 6, id 1 (correct). Standard first rank 4; distinct ids before it: 5, 6 -> 3.
    dist = np.array([[0, 1, 2, 3]], dtype=np.float32)
    g_pids, g_cams = np.array([5, 5, 6, 1]), np.array([1, 1, 1, 1])
    sysu = evaluate(dist, np.array([1]), g_pids, np.array([6]), g_cams, protocol="sysu")
    regdb = evaluate(dist, np.array([1]), g_pids, np.array([6]), g_cams, protocol="regdb")
    assert sysu.cmc.tolist() == [0, 0, 1, 1] and sysu.id_rank.tolist() == [3]
    assert regdb.cmc.tolist() == [0, 0, 0, 1] and regdb.first_rank.tolist() == [4]
    assert sysu.mAP == regdb.mAP == pytest.approx(1 / 4)


def test_ties_are_broken_by_gallery_index():
    m = evaluate(np.zeros((1, 3)), np.array([1]), np.array([2, 1, 1]), np.array([6]), np.array([1, 1, 1]))
    assert m.first_rank.tolist() == [2]
    assert m.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.top.tolist() == [[0, 1, 2, -1, -1, -1, -1, -1, -1, -1]]


def test_cmc_length_is_capped_at_twenty():
    rng = np.random.default_rng(0)
    g_pids = np.repeat(np.arange(30), 2)
    m = evaluate(rng.random((5, 60)), np.arange(5), g_pids, np.full(5, 6), np.ones(60, dtype=int))
    assert len(m.cmc) == 20 and np.all(np.diff(m.cmc) >= 0)


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match="does not match"):
        evaluate(np.zeros((2, 3)), np.array([1]), np.array([1, 2, 3]), np.array([3]), np.array([1, 1, 1]))
    with pytest.raises(UserError, match="NaN"):
        evaluate(np.full((1, 1), np.nan), np.array([1]), np.array([1]), np.array([3]), np.array([1]))
    with pytest.raises(UserError, match="no query has a correct match"):
        evaluate(np.zeros((1, 2)), np.array([1]), np.array([2, 3]), np.array([3]), np.array([1, 1]))
    with pytest.raises(UserError, match="protocol"):
        evaluate(np.zeros((1, 1)), np.array([1]), np.array([1]), np.array([3]), np.array([1]), protocol="market")


@st.composite
def _cases(draw, max_q: int = 12, max_g: int = 30):
    nq = draw(st.integers(1, max_q))
    ng = draw(st.integers(1, max_g))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([3, 1000]))  # few levels: many ties
    dist = rng.integers(0, levels, size=(nq, ng)).astype(np.float32)
    g_pids = rng.integers(0, 6, ng)
    q_pids = rng.integers(0, 6, nq)
    q_pids[0] = g_pids[0]  # at least one query could match
    q_cams = rng.choice([3, 6], nq)
    g_cams = rng.choice([1, 2, 4, 5], ng)
    g_cams[0] = 1  # ... and its match survives the cam3/cam2 rule
    return dist, q_pids, g_pids, q_cams, g_cams


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_matches_the_reference_loops(case):
    dist, q_pids, g_pids, q_cams, g_cams = case
    cmc, m_ap, m_inp = bench.reference_eval_sysu(dist, q_pids, g_pids, q_cams, g_cams)
    m = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol="sysu")
    assert m.cmc == pytest.approx(cmc, abs=1e-12)
    assert (m.mAP, m.mINP) == pytest.approx((m_ap, m_inp), abs=1e-12)
    cmc, m_ap, m_inp = bench.reference_eval_regdb(dist, q_pids, g_pids)
    m = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol="regdb")
    assert m.cmc == pytest.approx(cmc, abs=1e-12)
    assert (m.mAP, m.mINP) == pytest.approx((m_ap, m_inp), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(_cases(), st.integers(0, 2**32 - 1), st.sampled_from(["sysu", "regdb"]))
def test_permuting_the_gallery_changes_nothing(case, seed, protocol):
    _, q_pids, g_pids, q_cams, g_cams = case
    rng = np.random.default_rng(seed)
    nq, ng = len(q_pids), len(g_pids)
    dist = np.stack([rng.permutation(ng) for _ in range(nq)]).astype(np.float32)  # no ties
    perm = rng.permutation(ng)
    a = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    b = evaluate(dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm], protocol=protocol)
    assert b.cmc == pytest.approx(a.cmc, abs=1e-12)
    assert (b.mAP, b.mINP) == pytest.approx((a.mAP, a.mINP), abs=1e-12)
    np.testing.assert_array_equal(perm[b.top[b.top >= 0]], a.top[a.top >= 0])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 5), st.integers(0, 2**32 - 1), st.sampled_from(["sysu", "regdb"]))
def test_a_perfect_distance_matrix_scores_one(num_ids, per_id, seed, protocol):
    rng = np.random.default_rng(seed)
    g_pids = np.repeat(np.arange(num_ids), per_id)
    g_cams = rng.choice([1, 4, 5], len(g_pids))  # no cam2: every query keeps its matches
    q_pids = rng.integers(0, num_ids, 10)
    q_cams = rng.choice([3, 6], 10)
    dist = (q_pids[:, None] != g_pids[None, :]).astype(np.float32)
    m = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    assert m.num_valid == 10
    assert m.cmc.tolist() == [1.0] * min(20, len(g_pids))
    assert m.mAP == pytest.approx(1.0) and m.mINP == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, 1e-30, -1e-30, 3.0e38, -3.0e38, 0.5]), min_size=1,
                max_size=40))
def test_rank_order_is_a_stable_argsort(values):
    dist = np.array([values, values[::-1]], dtype=np.float32)
    np.testing.assert_array_equal(rank_order(dist), np.argsort(dist, axis=1, kind="stable"))
