"""PAPG networks: shapes and a training step for every switch combination; the non-local block's
associative form against the released O(N^2 C) form; the softmax form against explicit attention."""

from __future__ import annotations

import itertools

import pytest
import torch

from papg_bench.config import make_config
from papg_bench.errors import UserError
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.papg import Discriminator, Generator, NonLocalBlock
from papg_bench.generators.trainer import Batch, CycleTrainer, linear_decay_factor
from papg_bench.pose.maps import pose_channels, render_pose_maps
from papg_bench.training import torch_threads

SWITCHES = list(itertools.product((True, False), (True, False), ("skeleton", "heatmaps"), ("dot", "softmax")))


def released_non_local(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """The released ``Non_local.forward``: (theta^T phi) / N, then times g, O(N^2 C)."""
    b = x.shape[0]
    g_x = block.g(x).view(b, block.inter, -1).permute(0, 2, 1)
    theta_x = block.theta(x).view(b, block.inter, -1).permute(0, 2, 1)
    phi_x = block.phi(x).view(b, block.inter, -1)
    f = torch.matmul(theta_x, phi_x)
    y = torch.matmul(f / f.size(-1), g_x)
    y = y.permute(0, 2, 1).contiguous().view(b, block.inter, *x.size()[2:])
    return block.bn(block.out(y)) + x


def _block_with_live_branch(norm: str, channels: int = 16) -> NonLocalBlock:
    torch.manual_seed(0)
    block = NonLocalBlock(channels, norm)
    with torch.no_grad():  # the zero-initialised BN would hide the attention branch
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.5, 0.5)
    return block.eval()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_associative_non_local_equals_released_form(dtype, tol):
    block = _block_with_live_branch("dot").to(dtype)
    x = torch.randn(2, 16, 18, 9, dtype=dtype)
    with torch.no_grad():
        ours, released = block(x), released_non_local(block, x)
    assert ours.shape == x.shape
    assert (ours - x).abs().max() > 0.1  # the attention branch contributes
    torch.testing.assert_close(ours, released, atol=tol, rtol=tol)


def test_associative_form_has_the_same_gradients():
    block = _block_with_live_branch("dot").double().train()
    x = torch.randn(2, 16, 12, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for forward in (block, lambda t: released_non_local(block, t)):
        block.zero_grad()
        x.grad = None
        (forward(x) ** 2).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in block.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_softmax_norm_is_embedded_gaussian_attention():
    block = _block_with_live_branch("softmax")
    x = torch.randn(2, 16, 12, 6)
    with torch.no_grad():
        b = x.shape[0]
        theta = block.theta(x).flatten(2).transpose(1, 2)
        phi = block.phi(x).flatten(2).transpose(1, 2)
        g = block.g(x).flatten(2).transpose(1, 2)
        y = torch.softmax(theta @ phi.transpose(1, 2), dim=-1) @ g
        expected = x + block.bn(block.out(y.transpose(1, 2).reshape(b, block.inter, 12, 6)))
        torch.testing.assert_close(block(x), expected, atol=1e-4, rtol=1e-4)


def test_non_local_block_starts_as_identity():
    block = NonLocalBlock(8).train()
    x = torch.randn(2, 8, 6, 4)
    torch.testing.assert_close(block(x), x)


def test_paper_model_layout():
    gen = Generator(pose_channels=3)
    convs = [m for m in gen.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 6 and convs[0].kernel_size == (7, 7) and convs[0].out_channels == 64
    assert sum(isinstance(m, NonLocalBlock) for m in gen.modules()) == 9
    disc = Discriminator()
    widths = [m.out_channels for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    strides = [m.stride[0] for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1] and strides == [2, 2, 2, 1, 1]
    assert disc(torch.randn(2, 3, 64, 32)).shape == (2,)


@pytest.mark.parametrize("pose,attention,pose_map,norm", SWITCHES)
def test_every_switch_combination_trains(pose, attention, pose_map, norm):
    cfg = make_config(GeneratorConfig, "tiny", overrides={
        "size": (48, 32), "channels": 8, "disc_channels": 8, "blocks": 2, "pose": pose, "attention": attention,
        "pose_map": pose_map, "attention_norm": norm, "pool_size": 1})
    with torch_threads(1):
        trainer = CycleTrainer(cfg, torch.device("cpu"), total_steps=4)
        assert trainer.gens.v2i.pose_channels == (pose_channels(pose_map) if pose else 0)
        has_attention = any(isinstance(m, NonLocalBlock) for m in trainer.gens.modules())
        assert has_attention == attention
        torch.manual_seed(1)
        kp = torch.stack([torch.rand(3, 18) * 31, torch.rand(3, 18) * 47, torch.ones(3, 18)], dim=-1)
        maps = render_pose_maps(kp, 48, 32, kind=pose_map, sigma=cfg.heatmap_sigma) if pose else None
        batch = Batch(real_v=torch.rand(3, 3, 48, 32) * 2 - 1, real_i=torch.rand(3, 3, 48, 32) * 2 - 1,
                      pose_v=maps, pose_i=maps)
        before = [p.clone() for p in trainer.gens.parameters()]
        for _ in range(2):  # the second step goes through a full history buffer
            losses = trainer.step(batch)
        fake_i, fake_v = trainer.translate(batch)
    assert fake_i.shape == fake_v.shape == (3, 3, 48, 32)
    assert fake_i.abs().max() <= 1.0
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.gens.parameters(), strict=True))


def test_lr_constant_then_linear_to_zero():
    factors = [linear_decay_factor(s, 10, 0.5) for s in range(11)]
    assert factors[:5] == [1.0] * 5
    assert factors[5:] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])


def test_config_rejects_bad_switch_values():
    with pytest.raises(UserError, match="--pose-map"):
        make_config(GeneratorConfig, overrides={"pose_map": "stickman"})
    with pytest.raises(UserError, match="--attention-norm"):
        make_config(GeneratorConfig, overrides={"attention_norm": "cosine"})
    with pytest.raises(UserError, match="--size"):
        make_config(GeneratorConfig, overrides={"size": (30, 16)})
    with pytest.raises(UserError, match="--precision 'fp16'"):
        make_config(GeneratorConfig, overrides={"precision": "fp16"})


def test_bf16_on_the_cpu_follows_the_fp32_step():
    """--precision bf16 on the CPU: the same step, convolutions in bf16; losses stay close to fp32's."""
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = make_config(GeneratorConfig, "tiny", overrides={
            "size": (48, 32), "channels": 8, "disc_channels": 8, "blocks": 2, "pool_size": 1, "pose": False,
            "precision": precision})
        with torch_threads(1):
            trainer = CycleTrainer(cfg, torch.device("cpu"), total_steps=4)
            torch.manual_seed(1)
            batch = Batch(real_v=torch.rand(2, 3, 48, 32) * 2 - 1, real_i=torch.rand(2, 3, 48, 32) * 2 - 1,
                          pose_v=None, pose_i=None)
            losses[precision] = trainer.step(batch)
            fake_i, _ = trainer.translate(batch)
        assert fake_i.dtype == torch.float32
    assert losses["bf16"]["loss_G"] != losses["fp32"]["loss_G"]  # bf16 really ran
    for key, value in losses["fp32"].items():
        assert losses["bf16"][key] == pytest.approx(value.item(), rel=0.05), key
