"""How far the synthvi learnability figures move with the seed and the thread count.

    python experiments/learnability_spread.py [--seeds 0 1 2] [--threads 1 2] [--preset tiny] [--steps 600]

For every (seed, thread count) it renders synthvi (that seed) and runs
:func:`experiments.synthvi_learnability.learnability` (that seed) in a fresh process, then prints one JSON
line per run and, per figure, the mean, the range over all runs and the largest change between thread
counts at one seed. The test suite asserts only what clears that spread several times over;
``docs/reproducibility.md`` gives the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FIGURES = ("visible_to_visible", "infrared_to_infrared", "infrared_to_visible", "infrared_to_translated_visible",
           "infrared_to_true_counterparts", "translated_l1", "grey_l1")


def one_run(preset: str, seed: int, threads: int, steps: int) -> dict[str, float]:
    import torch
    from synthvi_learnability import learnability  # this script's folder

    from papg_bench.data.synthvi import synthesize

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(Path(tmp) / "sysu", "sysu", preset=preset, seed=seed, workers=1).root
        return learnability(root, steps=steps, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--one", type=int, nargs=2, metavar=("SEED", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        seed, threads = args.one
        print(json.dumps(one_run(args.preset, seed, threads, args.steps)))
        return
    runs = []
    for seed in args.seeds:
        for threads in args.threads:  # a fresh process each: the thread count is fixed before torch starts work
            out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--steps", str(args.steps),
                                  "--one", str(seed), str(threads)], check=True, capture_output=True, text=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append({"seed": seed, "threads": threads, **figures})
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in runs[-1].items()}),
                  flush=True)
    for name in FIGURES:
        values = np.array([r[name] for r in runs])
        by_seed = [np.ptp([r[name] for r in runs if r["seed"] == s]) for s in args.seeds]
        print(f"{name}: mean {values.mean():.4f}, range {values.min():.4f}..{values.max():.4f}, "
              f"largest thread-count change at one seed {max(by_seed):.4f}")
    gains = np.array([r["infrared_to_translated_visible"] - r["infrared_to_visible"] for r in runs])
    print(f"rank-1 gain of the translation: {gains.min():.4f}..{gains.max():.4f}")
    ratios = np.array([r["translated_l1"] / r["grey_l1"] for r in runs])
    print(f"translated L1 / grey L1: {ratios.min():.3f}..{ratios.max():.3f}")


if __name__ == "__main__":
    main()
