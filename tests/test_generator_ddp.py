"""Two gloo processes with batch 2 each train the same networks as one process with batch 4."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from generator_helpers import batchnorm_case, batchnorm_worker, ddp_worker, make_workspace, tiny_config

from papg_bench.generators.papg import CrossRankBatchNorm2d, GeneratorPair, build_networks, sync_batchnorm
from papg_bench.generators.trainer import CHECKPOINT, GENERATORS, train_generator
from papg_bench.pose.maps import render_pose_maps
from papg_bench.training import torch_threads


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
def test_two_process_ddp_matches_one_process_with_the_global_batch(tmp_path):
    ws = make_workspace(tmp_path)
    # live non-local branches from the start, so that the synchronised batch statistics matter
    overrides = {"batch_size": 2, "max_pairs": 8, "epochs": 2, "blocks": 1}
    mp.spawn(ddp_worker, args=(2, _free_port(), str(ws.root), overrides, "ddp"), nprocs=2, join=True)
    with torch_threads(1):
        train_generator(ws, "sysu", tiny_config(**{**overrides, "batch_size": 4}), run="single", device="cpu",
                        show_progress=False)
    ddp = torch.load(ws.generator_dir("sysu", "ddp") / CHECKPOINT, weights_only=False)
    single = torch.load(ws.generator_dir("sysu", "single") / CHECKPOINT, weights_only=False)
    assert ddp["world_size"] == 2 and len(ddp["pools"]) == 2
    assert ddp["sampler"] == single["sampler"]
    # The networks compute the same functions. (Raw weights are not compared one by one: a conv bias in front
    # of an instance norm has a zero gradient up to rounding, which Adam scales to +-lr steps of either sign.)
    cfg = tiny_config(**overrides)
    torch.manual_seed(0)
    images = torch.rand(3, 3, *cfg.size) * 2 - 1
    kp = torch.stack([torch.rand(3, 18) * (cfg.size[1] - 1), torch.rand(3, 18) * (cfg.size[0] - 1),
                      torch.ones(3, 18)], dim=-1)
    pose = render_pose_maps(kp, *cfg.size, kind=cfg.pose_map)
    outputs = []
    for state in (ddp["trainer"], single["trainer"]):
        gens, discs = build_networks(3, cfg.channels, cfg.disc_channels, cfg.blocks, True, "dot")
        for net, module in (("v2i", gens.v2i), ("i2v", gens.i2v), ("d_v", discs.d_v), ("d_i", discs.d_i)):
            module.load_state_dict(state[net])
        gens.eval()
        with torch.no_grad():
            outputs.append([gens.v2i(images, pose), gens.i2v(images, pose), discs.d_v(images), discs.d_i(images)])
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)
    # The non-local batch norm weights, trained on statistics of the global batch, agree to 1e-5 (with
    # per-rank statistics they differ by about 4e-5 here); the running means carry the +-lr noise of the
    # 1x1 conv bias in front of the norm, so they get a looser bound.
    for net in ("v2i", "i2v"):
        for key, atol in (("weight", 1e-5), ("bias", 1e-5), ("running_mean", 2e-4), ("running_var", 1e-5)):
            name = f"model.10.non_local.bn.{key}"
            a, b = ddp["trainer"][net][name], single["trainer"][net][name]
            assert a.abs().max() > 0
            torch.testing.assert_close(a, b, atol=atol, rtol=0)
    # the pools of both ranks together hold the fakes of the one process
    both = torch.cat([ddp["pools"][0]["i"]["images"], ddp["pools"][1]["i"]["images"]])
    assert both.shape == single["pools"][0]["i"]["images"].shape
    assert (ws.generator_dir("sysu", "ddp") / GENERATORS).is_file()
