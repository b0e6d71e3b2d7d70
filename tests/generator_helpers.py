"""Shared set-up for the generator tests: a tiny SYSU-layout store with poses, and the DDP worker."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from papg_bench.config import make_config
from papg_bench.data.fixtures import make_sysu_tree
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import open_store
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.trainer import Batch
from papg_bench.pose.keypoints import save_poses
from papg_bench.pose.maps import pose_channels
from papg_bench.training import DistInfo
from papg_bench.workspace import Workspace

SIZE = (48, 32)


def make_workspace(root: Path, dataset: str = "sysu") -> Workspace:
    """Noise images of 9 identities (5 train/val, 3 test) at 48x32, with random keypoints in store pixels."""
    src = make_sysu_tree(Path(root) / "src", size=SIZE, images_per_camera=2)
    ws = Workspace(Path(root) / "work")
    prepare_store(read_layout("sysu", src), src, ws.dataset_dir(dataset), SIZE, workers=1)
    store = open_store(ws.dataset_dir(dataset))
    rng = np.random.default_rng(0)
    n = len(store)
    kp = np.stack([rng.uniform(0, SIZE[1] - 1, (n, 18)), rng.uniform(0, SIZE[0] - 1, (n, 18)),
                   rng.uniform(0.2, 1.0, (n, 18))], axis=-1).astype(np.float32)
    kp[rng.random((n, 18)) < 0.1] = -1.0
    save_poses(store.path, kp, {"source": "test"})
    return ws


def tiny_config(**overrides) -> GeneratorConfig:
    base = {"size": SIZE, "channels": 8, "disc_channels": 8, "blocks": 1, "batch_size": 2, "max_pairs": 4,
            "epochs": 2, "samples": 2}
    base.update(overrides)
    return make_config(GeneratorConfig, "tiny", overrides=base)


def ddp_worker(rank: int, world_size: int, port: int, work: str, overrides: dict, run: str) -> None:
    """One rank of a gloo DDP run (torch.multiprocessing.spawn target)."""
    os.environ.update({"WORLD_SIZE": str(world_size), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from papg_bench.generators.trainer import train_generator
    from papg_bench.training import cleanup_distributed

    try:
        train_generator(Workspace(Path(work)), "sysu", tiny_config(**overrides), run=run, device="cpu",
                        show_progress=False)
    finally:
        cleanup_distributed()


def batchnorm_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """Each rank normalises its half of a batch (halves drawn from different distributions) with
    CrossRankBatchNorm2d, back-propagates a fixed loss, and saves output, input gradient and weight gradients."""
    import torch.distributed as dist

    from papg_bench.generators.papg import CrossRankBatchNorm2d

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        full, weights = batchnorm_case()
        x = full[rank * 2:(rank + 1) * 2].clone().requires_grad_()
        bn = CrossRankBatchNorm2d(4)
        with torch.no_grad():
            bn.weight.copy_(weights[0])
            bn.bias.copy_(weights[1])
        y = bn(x)
        (y * torch.arange(y.numel()).view_as(y).float().sin()).sum().backward()
        torch.save({"y": y.detach(), "grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
                    "running_mean": bn.running_mean, "running_var": bn.running_var}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def batchnorm_case() -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    full = torch.randn(4, 4, 5, 3, generator=generator)
    full[2:] = full[2:] * 3 + 2  # the second rank's half looks nothing like the first's
    return full, (torch.rand(4, generator=generator) + 0.5, torch.randn(4, generator=generator))


def global_step_batch() -> Batch:
    """A float64 batch of 4 pairs with pose maps, for one training step."""
    generator = torch.Generator().manual_seed(5)
    channels = pose_channels(tiny_config().pose_map)

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1

    return Batch(real_v=draw(4, 3, *SIZE), real_i=draw(4, 3, *SIZE), pose_v=draw(4, channels, *SIZE).clamp_min(0),
                 pose_i=draw(4, channels, *SIZE).clamp_min(0))


def one_step(batch: Batch, info: DistInfo) -> dict:
    """One float64 CycleTrainer step on this rank's part of ``batch``: losses, gradients, batch statistics."""
    from papg_bench.generators.trainer import CycleTrainer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        trainer = CycleTrainer(tiny_config(blocks=2, pool_size=4, precision="fp32"), torch.device("cpu"),
                               total_steps=4, info=info)
        with torch.no_grad():  # live non-local branches, so that the synchronised batch statistics matter
            for name, module in trainer.gens.named_modules():
                if name.endswith("non_local.bn"):
                    module.weight.fill_(0.5)
                    module.bias.fill_(0.1)
        half = batch.real_v.shape[0] // info.world_size
        part = Batch(*(t[info.rank * half:(info.rank + 1) * half] for t in
                       (batch.real_v, batch.real_i, batch.pose_v, batch.pose_i)))
        losses = trainer.step(part)
    finally:
        torch.set_default_dtype(previous)
    nets = {"gens": trainer.gens, "discs": trainer.discs}
    grads = {f"{k}.{n}": p.grad.clone() for k, net in nets.items() for n, p in net.named_parameters()
             if p.grad is not None}
    stats = {n: b.clone() for n, b in trainer.gens.named_buffers() if n.endswith(("running_mean", "running_var"))}
    return {"losses": losses, "grads": grads, "stats": stats}


def ddp_step_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One rank's float64 training step on its half of :func:`global_step_batch`."""
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = one_step(global_step_batch(), DistInfo(rank=rank, world_size=world_size, local_rank=rank))
        torch.save(result, f"{out}/step{rank}.pt")
    finally:
        dist.destroy_process_group()
