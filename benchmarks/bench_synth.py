"""How long does rendering synthvi take? The issue asks for the `full` preset in at most 10 minutes on 2 cores.

    python benchmarks/bench_synth.py [--layout sysu regdb] [--preset full] [--workers 2] [--ids N]

Reports wall time and the CPU time of all rendering processes; on a machine shared with other work,
CPU time / workers is what the same run takes on that many dedicated cores.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from papg_bench.data.synthvi import synthesize


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", nargs="+", default=["sysu", "regdb"], choices=["sysu", "regdb"])
    parser.add_argument("--preset", default="full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ids", type=int, default=None)
    args = parser.parse_args()
    for layout in args.layout:
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), cpu_seconds()
            result = synthesize(Path(tmp) / layout, layout, preset=args.preset, ids=args.ids, workers=args.workers)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            files = sum(1 for p in Path(result.root).rglob("*.jpg"))
        print(f"synth {layout} preset={args.preset} workers={args.workers}: {result.images} images "
              f"({files} JPEG files written, counterparts included), wall {wall:.0f} s, CPU {cpu:.0f} s "
              f"(= {cpu / args.workers:.0f} s on {args.workers} dedicated cores), "
              f"{result.images / wall:.1f} img/s")


if __name__ == "__main__":
    main()
