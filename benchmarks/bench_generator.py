"""Benchmark one PAPG training step: the released code's setting against papg-bench's fastest settings.

Every candidate runs the same model (paper preset: 288x144, 64 channels, 9 residual + non-local blocks,
skeleton pose maps) and the same losses and updates (:class:`CycleTrainer.step`: LSGAN + cycle + identity
for both generators, both discriminators with history buffers, three Adam steps). What changes:

- ``released``: the released code's non-local block, ``(theta^T phi / N) g``, O(N^2 C), written below
  as the reference; batch 1, fp32, contiguous tensors (the released ``train.py``);
- ``assoc``: papg-bench's non-local block, ``theta (phi^T g) / N``, O(N C^2);
- ``+cl``: channels_last tensors and weights (oneDNN's preferred layout);
- ``+compile``: ``torch.compile`` of the four networks;
- ``+wino``: the residual trunk's 3x3 convolutions by Winograd F(2x2, 3x3) (``papg_bench.generators.winograd``);
- ``bN``: N pairs per step; pairs/s is what counts;
- ``tT``: T intra-op threads;
- ``--precision bf16``: bf16 autocast for papg-bench's candidates (fp32 weights, optimiser and losses); on
  the CPU the convolutions then run on oneDNN's bf16 kernels, which pay where the processor has
  AVX512-BF16 or AMX. ``released`` always runs fp32, as the released code does.

The step is timed on ready tensors (the data path, uint8 rows from the memmap and pose maps on the
device, is measured in the trainer's logs, not here).

    python benchmarks/bench_generator.py                         # CPU, 1 warm-up + 2 timed steps each
    python benchmarks/bench_generator.py --threads 1 2 --candidates released assoc+cl-b4
    python benchmarks/bench_generator.py --precision bf16 --candidates released assoc assoc+cl-b4
    python benchmarks/bench_generator.py --device cuda --candidates released assoc+cl-b8 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass

import torch

from papg_bench.config import make_config
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.papg import NonLocalBlock
from papg_bench.generators.trainer import Batch, CycleTrainer
from papg_bench.pose.maps import render_pose_maps

ASSOCIATIVE = NonLocalBlock.attend


def released_attend(self: NonLocalBlock, theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The released ``Non_local.forward``: f = theta phi^T (B x N x N), f / N, then f g. O(N^2 C)."""
    f = torch.matmul(theta, phi.transpose(1, 2))
    return torch.matmul(f / f.size(-1), g)


@dataclass(frozen=True)
class Candidate:
    name: str
    released: bool
    batch: int
    channels_last: bool
    compile: bool = False
    winograd: bool = False

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """``released`` | ``assoc[+cl][+compile][+wino][-bN]`` (``released-bN``: the released block at batch N)."""
        head, _, batch = text.partition("-b")
        parts = head.split("+")
        if parts[0] not in ("released", "assoc"):
            raise SystemExit(f"unknown candidate {text!r}: released[-bN] or assoc[+cl][+compile][+wino][-bN]")
        return cls(text, parts[0] == "released", int(batch or 1), "cl" in parts, "compile" in parts,
                   "wino" in parts)


def make_batch(batch: int, size: tuple[int, int], device: torch.device, channels_last: bool) -> Batch:
    torch.manual_seed(0)
    height, width = size
    kp = torch.stack([torch.rand(batch, 18) * (width - 1), torch.rand(batch, 18) * (height - 1),
                      torch.ones(batch, 18)], dim=-1).to(device)
    memory = torch.channels_last if channels_last else torch.contiguous_format

    def image() -> torch.Tensor:
        return (torch.rand(batch, 3, height, width, device=device) * 2 - 1).contiguous(memory_format=memory)

    def pose() -> torch.Tensor:
        return render_pose_maps(kp, height, width, kind="skeleton").contiguous(memory_format=memory)

    return Batch(real_v=image(), real_i=image(), pose_v=pose(), pose_i=pose())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_step(trainer: CycleTrainer, batch: Batch, device: torch.device) -> None:
    """One more step under torch.profiler: operators by self time, grouped by input shape."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        trainer.step(batch)
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=25), flush=True)


def run(candidate: Candidate, threads: int, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.set_num_threads(threads)
    NonLocalBlock.attend = released_attend if candidate.released else ASSOCIATIVE
    try:
        precision = "fp32" if candidate.released else args.precision
        cfg = make_config(GeneratorConfig, "paper", overrides={"batch_size": candidate.batch, "size": args.size,
                                                               "precision": precision})
        trainer = CycleTrainer(cfg, device, total_steps=10_000, compile=candidate.compile,
                               channels_last=candidate.channels_last, winograd=candidate.winograd)
        batch = make_batch(candidate.batch, args.size, device, candidate.channels_last)
        start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.step(batch)
        sync(device)
        warm = time.perf_counter() - start
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.step(batch)
            sync(device)
            times.append(time.perf_counter() - start)
        if args.profile:
            profile_step(trainer, batch, device)
    finally:
        NonLocalBlock.attend = ASSOCIATIVE
    step = sorted(times)[len(times) // 2]
    return {"candidate": candidate.name, "threads": threads, "batch": candidate.batch, "precision": precision,
            "warmup_s": warm,
            "step_s": times, "median_step_s": step, "pairs_per_s": candidate.batch / step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", nargs="+", default=["released", "assoc", "assoc+cl", "assoc+cl-b4"])
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(288, 144))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="of the papg-bench candidates (released is always fp32, as the released code)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--profile", action="store_true", help="print a profile of one more step per candidate")
    args = parser.parse_args()
    candidates = [Candidate.parse(c) for c in args.candidates]
    results = []
    for threads in args.threads:
        for candidate in candidates:
            result = run(candidate, threads, args)
            results.append(result)
            print(json.dumps(result), flush=True)
    baseline = {r["threads"]: r["pairs_per_s"] for r in results if r["candidate"] == "released"}
    slowest = min(baseline.values()) if baseline else None
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
          f"size {args.size[0]}x{args.size[1]}, {args.warmup} warm-up + {args.steps} timed steps (median)\n")
    print("| candidate | precision | threads | batch | s/step | pairs/s | vs released, same threads "
          "| vs slowest released |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        same = baseline.get(r["threads"])
        vs_same = f"{r['pairs_per_s'] / same:.2f}x" if same else "-"
        vs_slowest = f"{r['pairs_per_s'] / slowest:.2f}x" if slowest else "-"
        print(f"| {r['candidate']} | {r['precision']} | {r['threads']} | {r['batch']} | {r['median_step_s']:.2f} | "
              f"{r['pairs_per_s']:.3f} | {vs_same} | {vs_slowest} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
