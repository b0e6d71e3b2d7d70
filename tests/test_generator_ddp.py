"""Two gloo processes with batch 2 each train the same networks as one process with batch 4."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from generator_helpers import (
    batchnorm_case,
    batchnorm_worker,
    ddp_step_worker,
    ddp_worker,
    global_step_batch,
    make_workspace,
    one_step,
    tiny_config,
)

from papg_bench.data.store import open_store
from papg_bench.generators.papg import CrossRankBatchNorm2d, GeneratorPair, sync_batchnorm
from papg_bench.generators.trainer import CHECKPOINT, GENERATORS, BatchMaker, load_store_poses, train_generator
from papg_bench.training import DistInfo, torch_threads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sync_batchnorm_conversion_on_cpu():
    from papg_bench.generators.papg import Generator

    gens = GeneratorPair(Generator(3, 8, 1), Generator(3, 8, 1))
    sync_batchnorm(gens, torch.device("cpu"))
    norms = [m for m in gens.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(isinstance(m, CrossRankBatchNorm2d) for m in norms)


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_cross_rank_batchnorm_equals_batchnorm_on_the_global_batch(tmp_path):
    mp.spawn(batchnorm_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    full, (weight, bias) = batchnorm_case()
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    x = full.clone().requires_grad_()
    y = bn(x)
    # the per-rank losses of the workers, summed: what one process on the whole batch minimises
    halves = [y[:2], y[2:]]
    loss = sum((h * torch.arange(h.numel()).view_as(h).float().sin()).sum() for h in halves)
    loss.backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), x.grad, atol=1e-5, rtol=1e-5)
    for key, expected in (("weight_grad", bn.weight.grad), ("bias_grad", bn.bias.grad)):
        torch.testing.assert_close(ranks[0][key] + ranks[1][key], expected, atol=1e-5, rtol=1e-5)
    for r in ranks:
        torch.testing.assert_close(r["running_mean"], bn.running_mean)
        torch.testing.assert_close(r["running_var"], bn.running_var)


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_one_ddp_step_has_the_gradients_of_one_process_on_the_global_batch(tmp_path):
    """In float64, one step's losses, gradients and synchronised batch statistics of two ranks with half a batch
    each equal those of one process on the whole batch (compared before Adam, whose first step is about
    sign(grad) and would turn rounding into +-lr)."""
    mp.spawn(ddp_step_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"step{r}.pt") for r in (0, 1)]
    single = one_step(global_step_batch(), DistInfo())
    for key, value in single["losses"].items():  # each rank's loss is the mean over its half
        torch.testing.assert_close((ranks[0]["losses"][key] + ranks[1]["losses"][key]) / 2, value,
                                   atol=1e-10, rtol=1e-10, msg=key)
    assert set(single["grads"]) == set(ranks[0]["grads"]) and len(single["grads"]) > 20
    non_local = [name for name in single["grads"] if ".non_local." in name]
    assert non_local and all(single["grads"][name].abs().sum() > 0 for name in non_local)
    for r in ranks:  # DDP averages the gradients: every rank holds the global batch's
        for name, grad in single["grads"].items():
            torch.testing.assert_close(r["grads"][name], grad, atol=1e-10, rtol=1e-8, msg=name)
        for name, stat in single["stats"].items():
            torch.testing.assert_close(r["stats"][name], stat, atol=1e-10, rtol=1e-10, msg=name)


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_process_ddp_run_splits_the_global_batch_and_gathers_its_pools(tmp_path):
    ws = make_workspace(tmp_path)
    overrides = {"batch_size": 2, "max_pairs": 8, "epochs": 2, "blocks": 1}
    mp.spawn(ddp_worker, args=(2, _free_port(), str(ws.root), overrides, "ddp"), nprocs=2, join=True)
    with torch_threads(1):
        train_generator(ws, "sysu", tiny_config(**{**overrides, "batch_size": 4}), run="single", device="cpu",
                        show_progress=False)
    ddp = torch.load(ws.generator_dir("sysu", "ddp") / CHECKPOINT, weights_only=False)
    single = torch.load(ws.generator_dir("sysu", "single") / CHECKPOINT, weights_only=False)
    assert ddp["world_size"] == 2 and len(ddp["pools"]) == 2
    assert ddp["sampler"] == single["sampler"]
    assert set(ddp["trainer"]["v2i"]) == set(single["trainer"]["v2i"])
    # the pools of both ranks together hold the fakes of the one process
    both = torch.cat([ddp["pools"][0]["i"]["images"], ddp["pools"][1]["i"]["images"]])
    assert both.shape == single["pools"][0]["i"]["images"].shape
    assert (ws.generator_dir("sysu", "ddp") / GENERATORS).is_file()


def test_ranks_draw_their_slices_of_the_global_batch(tmp_path):
    ws = make_workspace(tmp_path)
    store = open_store(ws.dataset_dir("sysu"))
    cfg = tiny_config()
    maker = BatchMaker(store, load_store_poses(store, cfg, "sysu"), cfg, torch.device("cpu"))
    pairs = np.stack([np.flatnonzero(store.modalities == "I")[:4], np.flatnonzero(store.modalities == "V")[:4]], 1)
    whole = maker.training_batch(pairs, seed=3, epoch=1, step=2, rank=0, world_size=1)
    halves = [maker.training_batch(pairs[r * 2:(r + 1) * 2], seed=3, epoch=1, step=2, rank=r, world_size=2)
              for r in (0, 1)]
    for field in ("real_v", "real_i", "pose_v", "pose_i"):
        assert torch.equal(torch.cat([getattr(h, field) for h in halves]), getattr(whole, field)), field
