"""Winograd F(2x2, 3x3): the same convolution and gradients as ``F.conv2d``; the trunk switch changes only
how a training step computes, not what it computes, nor the state dict."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from papg_bench.config import make_config
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.papg import Generator
from papg_bench.generators.trainer import Batch, CycleTrainer
from papg_bench.generators.winograd import Conv3x3, use_winograd, winograd_applies, winograd_conv3x3


@pytest.mark.parametrize("shape", [(2, 5, 10, 8), (1, 3, 4, 4), (3, 16, 20, 12)])
def test_winograd_equals_direct_convolution_with_gradients(shape):
    torch.manual_seed(0)
    b, c_in, h, w = shape
    x = torch.randn(b, c_in, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, c_in, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(7, dtype=torch.float64, requires_grad=True)
    ours = winograd_conv3x3(x, weight, bias)
    direct = F.conv2d(x, weight, bias)
    torch.testing.assert_close(ours, direct, atol=1e-12, rtol=1e-12)
    seed = torch.randn_like(direct)
    grads = [torch.autograd.grad((out * seed).sum(), (x, weight, bias)) for out in (ours, direct)]
    for g_ours, g_direct in zip(*grads, strict=True):
        torch.testing.assert_close(g_ours, g_direct, atol=1e-10, rtol=1e-10)


def test_winograd_in_channels_last_bf16_stays_close():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 14, 10).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(32, 32, 3, 3) * 0.1
    exact = F.conv2d(x.double(), weight.double())
    with torch.autocast("cpu", torch.bfloat16):
        ours = winograd_conv3x3(x, weight).float()
    assert ours.shape == exact.shape
    assert ((ours - exact).norm() / exact.norm()).item() < 0.02


def test_only_stride_one_unpadded_even_outputs_take_winograd():
    weight = torch.zeros(4, 4, 3, 3)
    assert winograd_applies(torch.zeros(1, 4, 10, 8), weight, (1, 1), (0, 0), (1, 1), 1)
    assert not winograd_applies(torch.zeros(1, 4, 9, 8), weight, (1, 1), (0, 0), (1, 1), 1)  # odd output
    assert not winograd_applies(torch.zeros(1, 4, 10, 8), weight, (2, 2), (0, 0), (1, 1), 1)
    assert not winograd_applies(torch.zeros(1, 4, 10, 8), weight, (1, 1), (1, 1), (1, 1), 1)
    conv = Conv3x3(4, 4)
    conv.winograd = True
    odd = torch.randn(1, 4, 9, 7)
    torch.testing.assert_close(conv(odd), F.conv2d(odd, conv.weight, conv.bias))  # falls back


def test_switch_reaches_every_trunk_convolution_and_keeps_the_state_dict():
    gen = Generator(pose_channels=3, channels=8, blocks=3)
    keys = set(gen.state_dict())
    assert use_winograd(gen) == 6  # two per residual block
    assert all(m.winograd for m in gen.modules() if isinstance(m, Conv3x3))
    assert set(gen.state_dict()) == keys


def test_training_step_with_winograd_matches_direct():
    """Same losses and generator gradients in float64 (compared before Adam, whose first step is about sign(grad))."""
    cfg = make_config(GeneratorConfig, "tiny", overrides={
        "size": (48, 32), "channels": 8, "disc_channels": 8, "blocks": 2, "pool_size": 1, "pose": False,
        "precision": "fp32"})
    generator = torch.Generator().manual_seed(1)
    batch = Batch(real_v=torch.rand(2, 3, 48, 32, generator=generator, dtype=torch.float64) * 2 - 1,
                  real_i=torch.rand(2, 3, 48, 32, generator=generator, dtype=torch.float64) * 2 - 1,
                  pose_v=None, pose_i=None)
    losses, grads = {}, {}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for winograd in (False, True):
            trainer = CycleTrainer(cfg, torch.device("cpu"), total_steps=4, winograd=winograd)
            losses[winograd] = trainer.step(batch)
            grads[winograd] = {name: p.grad.clone() for name, p in trainer.gens.named_parameters()}
    finally:
        torch.set_default_dtype(previous)
    for key, value in losses[False].items():
        assert value.dtype == torch.float64
        assert losses[True][key].item() == pytest.approx(value.item(), rel=1e-10, abs=1e-12), key
    trunk = [name for name in grads[False] if ".conv_block." in name]
    assert trunk and all(grads[False][name].abs().sum() > 0 for name in trunk)
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[True][name], grad, atol=1e-10, rtol=1e-8, msg=name)
