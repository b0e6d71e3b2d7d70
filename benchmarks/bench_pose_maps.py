"""Benchmark: drawing pose maps for a batch vs one PAPG generator training step, on the same device.

The issue's budget: maps for a batch of 64 at 288x144 must cost less than 5% of one generator training
step. The step is ``papg_bench.generators.trainer.CycleTrainer.step`` with the ``paper`` settings (two
9-block generators with non-local attention, two discriminators, batch 1 as the released code trains);
if that module cannot be imported, a stand-in of the released model's cost is timed instead: forward +
backward of the paper-size ResNet generator (reflection-pad 7x7 conv 64, two stride-2 convs to 256, 9
residual blocks, two transposed convs, 7x7 to 3) on one image.

Keypoints: "people" are a standing template scaled to the image with per-joint jitter (limbs of real
length), "uniform" puts every joint anywhere in the image (the worst case: limbs across the image).
Run::

    .venv/bin/python benchmarks/bench_pose_maps.py --batch 64 --size 288x144 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from papg_bench.pose.keypoints import OPENPOSE18
from papg_bench.pose.maps import render_pose_maps
from papg_bench.runtime import resolve_device

TEMPLATE = {  # (x, y) in a 128 x 64 image
    "nose": (32, 20), "neck": (32, 34), "r_shoulder": (22, 36), "r_elbow": (18, 52), "r_wrist": (16, 66),
    "l_shoulder": (42, 36), "l_elbow": (46, 52), "l_wrist": (48, 66), "r_hip": (26, 70), "r_knee": (25, 92),
    "r_ankle": (24, 114), "l_hip": (38, 70), "l_knee": (39, 92), "l_ankle": (40, 114), "r_eye": (29, 16),
    "l_eye": (35, 16), "r_ear": (25, 19), "l_ear": (39, 19),
}


def people(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    base = torch.tensor([TEMPLATE[n] for n in OPENPOSE18], dtype=torch.float32)
    base = base * torch.tensor([width / 64, height / 128])
    kp = torch.ones(batch, 18, 3)
    kp[..., :2] = base + torch.randn(batch, 18, 2, generator=generator) * (height / 48)
    kp[..., 0].clamp_(0, width - 1)
    kp[..., 1].clamp_(0, height - 1)
    kp[torch.rand(batch, 18, generator=generator) < 0.1] = -1  # some joints unseen
    return kp


def uniform(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    kp = torch.rand(batch, 18, 3, generator=generator)
    return kp * torch.tensor([width - 1, height - 1, 1.0]) + torch.tensor([0, 0, 0.01])


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


# --- the stand-in: the released generator's cost ----------------------------------------------------------------

class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_generator(in_channels: int) -> nn.Module:
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, 64, 7), nn.InstanceNorm2d(64),
                               nn.ReLU(True)]
    for c in (64, 128):
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
    layers += [_Residual(256) for _ in range(9)]
    for c in (256, 128):
        layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(c // 2),
                   nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(64, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def generator_step(device: torch.device, height: int, width: int, kind: str) -> tuple[str, Callable[[], object]]:
    """(what is timed, one training step) - the real PAPG step when importable, else the stand-in."""
    gen = torch.Generator().manual_seed(0)
    try:
        from papg_bench.generators.config import GeneratorConfig
        from papg_bench.generators.trainer import Batch, CycleTrainer
    except ImportError:
        channels = 3 if kind == "skeleton" else 18
        model = resnet_generator(3 + channels).to(device)
        x = torch.rand(1, 3 + channels, height, width, generator=gen).to(device)

        def stand_in() -> None:
            model.zero_grad(set_to_none=True)
            model(x).mean().backward()

        return "stand-in ResNet generator, forward + backward, batch 1", stand_in
    cfg = GeneratorConfig(size=(height, width), pose_map=kind)
    trainer = CycleTrainer(cfg, device, total_steps=1000)
    b = cfg.batch_size

    def image() -> torch.Tensor:
        return (torch.rand(b, 3, height, width, generator=gen) * 2 - 1).to(device)

    kp = people(b, height, width, gen).to(device)
    batch = Batch(real_v=image(), real_i=image(), pose_v=render_pose_maps(kp, height, width, kind),
                  pose_i=render_pose_maps(kp, height, width, kind))
    return f"papg CycleTrainer.step, paper settings (batch {b})", lambda: trainer.step(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", default="288x144")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step-repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    device = resolve_device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    maps: dict[tuple[str, str], float] = {}
    for layout, make in (("people", people), ("uniform", uniform)):
        kp = make(args.batch, height, width, gen).to(device)
        for kind in ("skeleton", "heatmaps"):
            times = timed(lambda kp=kp, kind=kind: render_pose_maps(kp, height, width, kind), device, args.repeats)
            maps[(layout, kind)] = statistics.median(times)
    steps: dict[str, tuple[str, float]] = {}
    for kind in ("skeleton", "heatmaps"):
        what, step = generator_step(device, height, width, kind)
        steps[kind] = (what, statistics.median(timed(step, device, args.step_repeats)))
    print(f"\nmaps for a batch of {args.batch} at {height}x{width} vs one generator training step\n")
    print("| map | keypoints | maps (ms, median) | step (ms, median) | maps / step |")
    print("|---|---|---:|---:|---:|")
    for (layout, kind), seconds in maps.items():
        step_s = steps[kind][1]
        print(f"| {kind} | {layout} | {seconds * 1e3:.1f} | {step_s * 1e3:.0f} | {100 * seconds / step_s:.2f}% |")
    for kind, (what, _) in steps.items():
        print(f"\nstep ({kind} maps): {what}")


if __name__ == "__main__":
    main()
