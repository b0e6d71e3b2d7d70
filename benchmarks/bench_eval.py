"""Benchmark: the full SYSU-MM01 evaluation at real size, vectorised vs the reference per-query loop.

Synthetic but SYSU-shaped: 96 test ids, 3,803 IR queries (cam3/cam6), RGB folders on cam1/2/4/5 giving a
gallery of 301 (all) / 112 (indoor) single-shot, about 3,000 / 1,100 multi-shot per trial, 2,048-dim
features; both modes, 10 trials. The gallery of each trial is drawn like the protocol (``random.Random(t)``,
ids ascending, cameras in order, ``choice`` / ``sample``).

Candidates, run back to back in each repeat:

- reference: per trial, the distance matrix of that trial's gallery, then the per-query loop below,
  written like the widely used ``eval_sysu`` (argsort, boolean masks, cumsum per query);
- vectorised: what ``papg_bench.protocols.evaluate`` does: distances from the queries to the union of all
  trials' galleries once, then ``papg_bench.protocols.metrics.evaluate`` per trial.

Both use the same distance function (bit-identical columns), so the numbers must agree exactly; the
script checks them. Run::

    .venv/bin/python benchmarks/bench_eval.py --shots 1 10 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

TEST_IDS = 96
NUM_QUERIES = 3803
DIM = 2048
RGB_CAMS = (1, 2, 4, 5)
MODES = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
IMAGES_PER_FOLDER = 20


# --- the reference evaluation, one query at a time -----------------------------------------------------------

def _pad(cmc: np.ndarray, max_rank: int) -> np.ndarray:
    # (not in the original, which assumes at least max_rank distinct ids) repeat the last value
    if len(cmc) >= max_rank:
        return cmc
    return np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1] if len(cmc) else 0)])


def reference_eval_sysu(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
    """The widely used SYSU-MM01 evaluation (``eval_sysu``): identity-deduplicated CMC, mAP, mINP.

    Deviations: ``kind="stable"`` (ties broken by gallery index, as papg-bench defines them) and float64
    throughout (the original casts the CMC to float32).
    """
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1, kind="stable")
    pred_label = g_pids[indices]
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)

    new_all_cmc = []
    all_AP = []
    all_INP = []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid = q_pids[q_idx]
        q_camid = q_camids[q_idx]
        order = indices[q_idx]
        remove = (q_camid == 3) & (g_camids[order] == 2)
        keep = np.invert(remove)

        new_cmc = pred_label[q_idx][keep]
        new_index = np.unique(new_cmc, return_index=True)[1]
        new_cmc = [new_cmc[index] for index in sorted(new_index)]
        new_match = (np.asarray(new_cmc) == q_pid).astype(np.int32)
        new_cmc = new_match.cumsum()
        new_all_cmc.append(_pad(new_cmc[:max_rank], max_rank))

        orig_cmc = matches[q_idx][keep]
        if not np.any(orig_cmc):
            continue
        cmc = orig_cmc.cumsum()
        pos_idx = np.where(orig_cmc == 1)
        pos_max_idx = np.max(pos_idx)
        inp = cmc[pos_max_idx] / (pos_max_idx + 1.0)
        all_INP.append(inp)
        num_valid_q += 1.0

        num_rel = orig_cmc.sum()
        tmp_cmc = orig_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * orig_cmc
        AP = tmp_cmc.sum() / num_rel
        all_AP.append(AP)

    assert num_valid_q > 0, "Error: all query identities do not appear in gallery"
    new_all_cmc = np.asarray(new_all_cmc).sum(0) / num_valid_q
    return new_all_cmc, float(np.mean(all_AP)), float(np.mean(all_INP))


def reference_eval_regdb(distmat, q_pids, g_pids, max_rank=20):
    """The widely used RegDB evaluation (``eval_regdb``): standard CMC, mAP, mINP; nothing removed."""
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_AP, all_INP = [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        raw_cmc = matches[q_idx]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        pos_max_idx = np.max(np.where(raw_cmc == 1))
        all_INP.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_valid_q += 1.0
        num_rel = raw_cmc.sum()
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(raw_cmc.cumsum())]) * raw_cmc
        all_AP.append(tmp_cmc.sum() / num_rel)
    assert num_valid_q > 0, "Error: all query identities do not appear in gallery"
    return np.asarray(all_cmc).sum(0) / num_valid_q, float(np.mean(all_AP)), float(np.mean(all_INP))


# --- a synthetic SYSU-shaped test set -------------------------------------------------------------------------

@dataclass
class SyntheticSysu:
    q_feats: np.ndarray
    q_pids: np.ndarray
    q_cams: np.ndarray
    pool_feats: np.ndarray  # every RGB test image
    pool_pids: np.ndarray
    pool_cams: np.ndarray
    folders: dict[tuple[int, int], list[int]]  # (pid, cam) -> pool rows, in file order


def synthetic_sysu(seed: int = 0, dim: int = DIM) -> SyntheticSysu:
    rng = np.random.default_rng(seed)
    pids = np.arange(1, TEST_IDS + 1)
    # 112 (id, camera) folders on cam1/cam2 and 189 on cam4/cam5: 301 all-search, 112 indoor galleries.
    indoor = [(p, c) for p in pids for c in (1, 2)]
    outdoor = [(p, c) for p in pids for c in (4, 5)]
    pairs = [indoor[i] for i in np.sort(rng.choice(len(indoor), 112, replace=False))]
    pairs += [outdoor[i] for i in np.sort(rng.choice(len(outdoor), 189, replace=False))]
    centers = rng.standard_normal((TEST_IDS + 1, dim)).astype(np.float32)
    shift_v, shift_i = (rng.standard_normal((2, dim)) * 0.8).astype(np.float32)
    noise = 4.5

    folders: dict[tuple[int, int], list[int]] = {}
    p_pids, p_cams = [], []
    for pid, cam in sorted(pairs):
        n = int(rng.integers(IMAGES_PER_FOLDER // 2, IMAGES_PER_FOLDER + 1))
        folders[(pid, cam)] = list(range(len(p_pids), len(p_pids) + n))
        p_pids += [pid] * n
        p_cams += [cam] * n
    p_pids_arr = np.array(p_pids)
    pool = centers[p_pids_arr] + shift_v + noise * rng.standard_normal((len(p_pids), dim)).astype(np.float32)

    q_pids = np.sort(rng.choice(pids, NUM_QUERIES))
    q_cams = rng.choice((3, 6), NUM_QUERIES)
    order = np.lexsort((q_cams, q_pids))
    q_pids, q_cams = q_pids[order], q_cams[order]
    q_feats = centers[q_pids] + shift_i + noise * rng.standard_normal((NUM_QUERIES, dim)).astype(np.float32)
    return SyntheticSysu(q_feats, q_pids, q_cams, pool.astype(np.float32), p_pids_arr, np.array(p_cams), folders)


def sample_gallery(data: SyntheticSysu, mode: str, trial: int, shots: int) -> np.ndarray:
    """Pool rows of one trial's gallery, drawn in protocol order."""
    rng = random.Random(trial)
    rows: list[int] = []
    for pid in range(1, TEST_IDS + 1):
        for cam in MODES[mode]:
            files = data.folders.get((pid, cam))
            if not files:
                continue
            rows += [rng.choice(files)] if shots == 1 else rng.sample(files, min(shots, len(files)))
    return np.array(rows)


# --- the candidates -------------------------------------------------------------------------------------------

def run_reference(data: SyntheticSysu, galleries: dict, q: np.ndarray, pool: np.ndarray) -> list:
    from papg_bench.protocols.retrieval import distance_matrix

    out = []
    for (_mode, _trial), rows in galleries.items():
        distmat = distance_matrix(q, pool[rows], backend="torch", normalized=True)
        out.append(reference_eval_sysu(distmat, data.q_pids, data.pool_pids[rows], data.q_cams, data.pool_cams[rows]))
    return out


def run_vectorised(data: SyntheticSysu, galleries: dict, q: np.ndarray, pool: np.ndarray) -> list:
    from papg_bench.protocols.metrics import evaluate
    from papg_bench.protocols.retrieval import distance_matrix

    union = np.unique(np.concatenate(list(galleries.values())))
    full = distance_matrix(q, pool[union], backend="torch", normalized=True)
    out = []
    for rows in galleries.values():
        distmat = full[:, np.searchsorted(union, rows)]
        m = evaluate(distmat, data.q_pids, data.pool_pids[rows], data.q_cams, data.pool_cams[rows], protocol="sysu")
        out.append((m.cmc, m.mAP, m.mINP))
    return out


def max_difference(a: list, b: list) -> float:
    worst = 0.0
    for (cmc_a, map_a, minp_a), (cmc_b, map_b, minp_b) in zip(a, b, strict=True):
        worst = max(worst, float(np.abs(np.asarray(cmc_a) - np.asarray(cmc_b)).max()),
                    abs(map_a - map_b), abs(minp_a - minp_b))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from papg_bench.protocols.retrieval import prepare_features

    torch.set_num_threads(args.threads)
    data = synthetic_sysu()
    q = prepare_features(data.q_feats)
    pool = prepare_features(data.pool_feats)
    print(f"# {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, numpy {np.__version__}, "
          f"torch {torch.__version__}", flush=True)
    print("| gallery | trials x modes | gallery size (all / indoor) | reference loop (s) | vectorised (s) | speed-up "
          "| max abs difference |")
    print("|---|---|---|---|---|---|---|")
    for shots in args.shots:
        galleries = {(mode, t): sample_gallery(data, mode, t, shots) for mode in MODES for t in range(args.trials)}
        sizes = {mode: statistics.mean(len(g) for (m, _), g in galleries.items() if m == mode) for mode in MODES}
        ref_times, vec_times, diff = [], [], 0.0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = run_reference(data, galleries, q, pool)
            t1 = time.perf_counter()
            vec = run_vectorised(data, galleries, q, pool)
            t2 = time.perf_counter()
            ref_times.append(t1 - t0)
            vec_times.append(t2 - t1)
            diff = max(diff, max_difference(ref, vec))
        name = "single-shot" if shots == 1 else "multi-shot"
        r, v = statistics.median(ref_times), statistics.median(vec_times)
        print(f"| {name} | {args.trials} x 2 | {sizes['all']:.0f} / {sizes['indoor']:.0f} | {r:.2f} "
              f"(min {min(ref_times):.2f}) | {v:.2f} (min {min(vec_times):.2f}) | {r / v:.1f}x | {diff:.1e} |",
              flush=True)
        m_all = vec[0]
        print(f"#   {name} trial 0 all: R1 {100 * m_all[0][0]:.2f} mAP {100 * m_all[1]:.2f} mINP {100 * m_all[2]:.2f}",
              flush=True)
        if diff > 1e-9:
            print(f"numbers differ by {diff}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
