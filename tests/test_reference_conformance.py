"""The ``paper`` networks against the released code's state dicts, with nothing from outside.

``tests/data/reference/*.txt`` hold the released networks' state-dict keys and shapes in their modules'
order (facts of ``mangye16/Cross-Modal-Re-ID-baseline`` and ``qyhsxdx/PAPG``, see each file's header).
Each test fills a state dict of that layout with seeded values, maps it with the package's
``interchange`` functions and loads it strictly into papg-bench's network built from the ``paper``
preset: every tensor must land, with its shape, and nothing may be left over.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reid_helpers import one_thread

from papg_bench.config import make_config
from papg_bench.errors import UserError
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.papg import Discriminator, build_networks
from papg_bench.pose.maps import pose_channels
from papg_bench.reid_baselines import agw
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.extraction import extract_features
from papg_bench.reid_baselines.interchange import (
    agw_state_from_reference,
    papg_discriminator_from_reference,
    papg_generator_from_reference,
)

single_thread = pytest.fixture(autouse=True)(one_thread)

DATA = Path(__file__).parent / "data" / "reference"
SYSU_CLASSES = 395
AGW_RELEASED_PARAMETERS = 71_365_839  # the three ResNet-50s of embed_net, their unused parts included
AGW_USED_PARAMETERS = 24_359_311  # both stems, one trunk, 5 non-local blocks (28,687), BNNeck, classifier
AGW_NON_LOCAL_PARAMETERS = 28_687
AGW_HALF_PARAMETERS = 31_689_088  # the same model with C/2 non-local inter-channels (--nl-inter half)
PAPG_GENERATOR_PARAMETERS = 12_577_603
PAPG_DISCRIMINATOR_PARAMETERS = 2_764_737
# embed_net's tensors that its forward never reads: the visible and thermal networks' layers 1-4, the base's stem
AGW_UNUSED = re.compile(r"(visible_module\.visible|thermal_module\.thermal)\.layer|base_resnet\.base\.(conv1|bn1)\.")
BUFFER = re.compile(r"\.(running_mean|running_var|num_batches_tracked)$")


def reference_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            rows.append((key, () if shape == "-" else tuple(int(n) for n in shape.split("x"))))
    return rows


def parameter_count(layout: list[tuple[str, tuple[int, ...]]], skip: re.Pattern | None = None) -> int:
    return sum(int(np.prod(shape)) for key, shape in layout
               if not BUFFER.search(key) and not (skip and skip.search(key)))


def seeded_state(layout: list[tuple[str, tuple[int, ...]]], unused: re.Pattern | None = None,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct seeded values for every tensor a mapping must move (unused ones: free placeholders)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(len(state))
        elif unused is not None and unused.search(key):
            state[key] = torch.zeros(()).expand(shape)
        else:
            state[key] = torch.randn(shape, generator=generator)
    return state


def load_strictly(model: torch.nn.Module, mapped: dict[str, torch.Tensor]) -> None:
    result = model.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours = model.state_dict()
    for key, value in mapped.items():
        assert torch.equal(ours[key], value), key


def paper_agw(**changes: object) -> agw.AGW:
    cfg = make_config(TrainConfig, "paper", overrides={"pretrained": "none", **changes})
    torch.manual_seed(0)
    return agw.build(cfg, SYSU_CLASSES)


def test_agw_layout_facts() -> None:
    layout = reference_layout("agw_embed_net_395.txt")
    assert len(layout) == 1025 and len({k for k, _ in layout}) == 1025
    assert parameter_count(layout) == AGW_RELEASED_PARAMETERS
    assert parameter_count(layout, AGW_UNUSED) == AGW_USED_PARAMETERS
    non_local = [(k, s) for k, s in layout if k.startswith("NL_")]
    assert parameter_count(non_local) == AGW_NON_LOCAL_PARAMETERS
    assert {k.split(".")[0] + "." + k.split(".")[1] for k, _ in non_local} == {
        "NL_2.0", "NL_2.1", "NL_3.0", "NL_3.1", "NL_3.2"}
    assert dict(layout)["NL_3.2.theta.weight"] == (1, 1024, 1, 1)  # a single inter-channel


def test_agw_paper_preset_is_the_released_model_tensor_for_tensor() -> None:
    model = paper_agw()
    assert sum(p.numel() for p in model.parameters()) == AGW_USED_PARAMETERS
    layout = reference_layout("agw_embed_net_395.txt")
    reference = seeded_state(layout, AGW_UNUSED)
    mapped = agw_state_from_reference(reference)
    load_strictly(model, mapped)
    used = [(k, s) for k, s in layout if not AGW_UNUSED.search(k)]
    assert len(mapped) == len(used) == len(model.state_dict())
    # the used tensors, in the released order, keep their shapes in papg-bench's model
    ours = model.state_dict()
    assert [tuple(ours[k].shape) for k in mapped] == [s for _, s in used]
    # where the mapping puts them: visible stem 0, thermal stem 1, NL_s.j after the stage's last blocks
    for released, mine in [
        ("visible_module.visible.conv1.weight", "backbone.resnet.stems.0.conv1.weight"),
        ("thermal_module.thermal.bn1.running_var", "backbone.resnet.stems.1.bn1.running_var"),
        ("base_resnet.base.layer4.0.downsample.0.weight", "backbone.resnet.layer4.0.downsample.0.weight"),
        ("NL_2.0.g.0.weight", "backbone.non_local.layer2_2.g.weight"),
        ("NL_2.1.W.1.weight", "backbone.non_local.layer2_3.W.1.weight"),
        ("NL_3.0.theta.bias", "backbone.non_local.layer3_3.theta.bias"),
        ("NL_3.2.phi.weight", "backbone.non_local.layer3_5.phi.weight"),
        ("bottleneck.running_mean", "bottleneck.running_mean"),
        ("classifier.weight", "classifier.weight"),
    ]:
        assert torch.equal(ours[mine], reference[released]), released
    assert model.backbone.resnet.layer4[0].conv2.stride == (1, 1)  # last stride 1, as the released resnet50
    assert model.bottleneck.bias.requires_grad is False and model.classifier.bias is None


def test_a_dart_twin_network_loads_into_the_paper_dart_model() -> None:
    """DART's released embed_net: AGW's layout plus one unused BatchNorm1d, ``bottleneck_2``."""
    from papg_bench.reid_baselines.registry import get_baseline

    layout = reference_layout("agw_embed_net_395.txt")
    layout += [(f"bottleneck_2.{name}", () if name == "num_batches_tracked" else (2048,))
               for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    cfg = make_config(TrainConfig, "paper", overrides={"pretrained": "none"})
    torch.manual_seed(0)
    model = get_baseline("dart").build_model(cfg, SYSU_CLASSES)
    assert sum(p.numel() for p in model.parameters()) == AGW_USED_PARAMETERS
    load_strictly(model, agw_state_from_reference(seeded_state(layout, AGW_UNUSED, seed=3)))


def test_agw_half_non_local_is_a_named_option() -> None:
    model = paper_agw(nl_inter="half")
    assert sum(p.numel() for p in model.parameters()) == AGW_HALF_PARAMETERS
    assert model.backbone.non_local["layer3_5"].theta.weight.shape == (512, 1024, 1, 1)
    with pytest.raises(UserError, match="--nl-inter 'third'"):
        paper_agw(nl_inter="third")


def test_agw_mapping_unwraps_checkpoints_and_rejects_other_networks() -> None:
    layout = [(k, s) for k, s in reference_layout("agw_embed_net_395.txt") if k.startswith(("NL_2", "class"))]
    state = seeded_state(layout)
    wrapped = {"net": {f"module.{k}": v for k, v in state.items()}, "epoch": 80, "cmc": None}
    assert agw_state_from_reference(wrapped).keys() == agw_state_from_reference(state).keys()
    for bad in ("NL_2.2.g.0.weight", "NL_4.0.g.0.weight", "base_resnet.base.layer5.0.conv1.weight", "head.weight"):
        with pytest.raises(UserError, match=re.escape(repr(bad))):
            agw_state_from_reference({**state, bad: torch.zeros(1)})
    with pytest.raises(UserError, match="not a tensor"):
        agw_state_from_reference({"classifier.weight": [1.0]})


def test_agw_gem_is_the_released_formula() -> None:
    x = torch.rand(2, 5, 6, 3)
    x[0, 1] = 0.0  # a dead channel: where the released form and the clamped one part
    released = (x.flatten(2).pow(3.0).mean(-1) + 1e-12).pow(1 / 3.0)
    # the same formula; a tolerance of float32 rounding, since the two need not run the same pow kernel
    torch.testing.assert_close(agw.GeM(3.0, form="released")(x), released, rtol=1e-6, atol=1e-7)
    clamped = agw.GeM(3.0, form="clamped")(x)
    assert clamped[0, 1].item() == pytest.approx(1e-6) and released[0, 1].item() == pytest.approx(1e-4)
    assert make_config(TrainConfig, "paper").gem_form == "released"
    assert make_config(TrainConfig, "tiny").gem_form == "clamped"


def test_both_test_features_are_the_l2_normalised_outputs() -> None:
    cfg = make_config(TrainConfig, "tiny", overrides={"width": 8, "size": (64, 32)})
    torch.manual_seed(0)
    model = agw.build(cfg, 3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 64, 32, 3), dtype=np.uint8)
    rows, modalities = np.array([4, 0, 2]), np.array([1, 0, 1])
    pooled = extract_features(model, images, rows, modalities, (64, 32), torch.device("cpu"), kind="pooled")
    bn = extract_features(model, images, rows, modalities, (64, 32), torch.device("cpu"), kind="bn")
    from papg_bench.data.batches import load_rows, normalize

    model.eval()
    with torch.no_grad():
        out = model(normalize(load_rows(images, rows)), torch.as_tensor(modalities))
    np.testing.assert_allclose(pooled, F.normalize(out["pooled"], dim=1).numpy(), atol=1e-6)
    np.testing.assert_allclose(bn, F.normalize(out["bn"], dim=1).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(bn, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(pooled, bn, atol=1e-3)  # the BNNeck changes the feature
    with pytest.raises(UserError, match="--feature 'fc'"):
        extract_features(model, images, rows, modalities, (64, 32), torch.device("cpu"), kind="fc")


def paper_networks(init: str | None = None):  # noqa: ANN201 - (generators, discriminators)
    cfg = make_config(GeneratorConfig, "paper", overrides={"init": init})
    torch.manual_seed(0)
    return build_networks(pose_channels(cfg.pose_map) if cfg.pose else 0, cfg.channels, cfg.disc_channels,
                          cfg.blocks, cfg.attention, cfg.attention_norm, cfg.init)


def test_papg_generator_and_discriminator_are_the_released_networks() -> None:
    gens, discs = paper_networks()
    g_layout, d_layout = reference_layout("papg_generator.txt"), reference_layout("papg_discriminator.txt")
    assert parameter_count(g_layout) == PAPG_GENERATOR_PARAMETERS
    assert parameter_count(d_layout) == PAPG_DISCRIMINATOR_PARAMETERS
    for generator in (gens.v2i, gens.i2v):  # netG_A2B (visible -> infrared) and netG_B2A
        assert sum(p.numel() for p in generator.parameters()) == PAPG_GENERATOR_PARAMETERS
    for disc in (discs.d_v, discs.d_i):  # netD_A (visible) and netD_B
        assert sum(p.numel() for p in disc.parameters()) == PAPG_DISCRIMINATOR_PARAMETERS

    reference = seeded_state(g_layout, seed=1)
    mapped = papg_generator_from_reference(reference)
    load_strictly(gens.v2i, mapped)
    ours = gens.v2i.state_dict()
    assert [tuple(ours[k].shape) for k in mapped] == [s for _, s in g_layout]
    for released, mine in [("model.1.weight", "model.1.weight"),
                           ("model.14.conv_block.5.bias", "model.14.conv_block.5.bias"),
                           ("model.10.non_local_att.g.0.weight", "model.10.non_local.g.weight"),
                           ("model.18.non_local_att.W.0.weight", "model.18.non_local.out.weight"),
                           ("model.12.non_local_att.W.1.running_mean", "model.12.non_local.bn.running_mean"),
                           ("model.26.bias", "model.26.bias")]:
        assert torch.equal(ours[mine], reference[released]), released

    reference = seeded_state(d_layout, seed=2)
    mapped = papg_discriminator_from_reference(reference)
    load_strictly(discs.d_v, mapped)
    assert [tuple(discs.d_v.state_dict()[k].shape) for k in mapped] == [s for _, s in d_layout]
    assert isinstance(discs.d_v, Discriminator)
    with pytest.raises(UserError, match="'model.3.weight'"):
        papg_discriminator_from_reference({**reference, "model.3.weight": torch.zeros(1)})
    with pytest.raises(UserError, match="'model.10.attention.weight'"):
        papg_generator_from_reference({"model.10.attention.weight": torch.zeros(1)})


def _non_local_bn(gens) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    blocks = [m.non_local for g in (gens.v2i, gens.i2v) for m in g.model if hasattr(m, "non_local")]
    assert len(blocks) == 18
    return torch.cat([b.bn.weight.detach() for b in blocks]), torch.cat([b.bn.bias.detach() for b in blocks])


def test_papg_paper_init_is_weights_init_normal_and_zero_bn_stays_an_option() -> None:
    assert make_config(GeneratorConfig, "paper").init == "paper"
    assert make_config(GeneratorConfig, "tiny").init == "zero-bn"
    gens, discs = paper_networks()
    weight, bias = _non_local_bn(gens)  # 2 generators x 9 blocks x 256 channels at step 0
    assert weight.numel() == 4608
    assert abs(weight.mean().item() - 1.0) < 0.002 and 0.019 < weight.std().item() < 0.021
    assert torch.count_nonzero(bias) == 0
    convs = torch.cat([m.weight.detach().flatten() for m in gens.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(convs.mean().item()) < 1e-3 and 0.0199 < convs.std().item() < 0.0201
    block = gens.v2i.model[10].non_local.eval()
    x = torch.randn(1, 256, 8, 4)
    with torch.no_grad():
        assert (block(x) - x).abs().max() > 1e-3  # live from the first step

    zero, _ = paper_networks("zero-bn")
    weight, bias = _non_local_bn(zero)
    assert weight.mean().item() == 0.0 and weight.std().item() == 0.0 and torch.count_nonzero(bias) == 0
    block = zero.v2i.model[10].non_local.eval()
    with torch.no_grad():
        assert torch.equal(block(x), x)  # every block starts as the identity
    with pytest.raises(UserError, match="--init 'normal'"):
        make_config(GeneratorConfig, "paper", overrides={"init": "normal"})
