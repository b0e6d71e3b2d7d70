"""Re-identification models, losses, augmentations and the DART mixture: small, exact checks."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from reid_helpers import TINY, one_thread
from timm.models.resnet import BasicBlock, ResNet

from papg_bench.config import make_config
from papg_bench.errors import UserError
from papg_bench.reid_baselines.augment import BatchAugmenter, canonical_augment, channel_exchange, parse_augment
from papg_bench.reid_baselines.backbone import ModalityResNet, resolve_pretrained
from papg_bench.reid_baselines.cgrnet import part_adjacency
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.dart import clean_probability, fit_gmm_1d
from papg_bench.reid_baselines.losses import weighted_regularized_triplet
from papg_bench.reid_baselines.registry import BASELINES, get_baseline
from papg_bench.reid_baselines.sampler import TrainingPool
from papg_bench.workspace import sha256_file

single_thread = pytest.fixture(autouse=True)(one_thread)


def tiny_config(**changes) -> TrainConfig:
    return make_config(TrainConfig, "tiny", overrides={**TINY, **changes})


def tiny_batch(ids: int = 2, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    labels = torch.arange(ids).repeat_interleave(2 * k)
    modalities = torch.tensor(([0] * k + [1] * k) * ids)
    return torch.randn(len(labels), 3, 64, 32), modalities, labels


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_forward_backward_every_baseline(name: str) -> None:
    baseline = get_baseline(name)
    cfg = tiny_config()
    torch.manual_seed(0)
    model = baseline.build_model(cfg, num_classes=3)
    images, modalities, labels = tiny_batch()

    pool = TrainingPool(generated=np.array([False, True] * 4), store_rows=np.arange(8), labels=labels.numpy(),
                        modalities=modalities.numpy(), num_classes=3)
    criterion = baseline.make_criterion(cfg, pool)
    if name == "dart":  # after the warm-up: clean probabilities weight the losses
        criterion.load_state_dict({"clean": np.linspace(0.1, 1.0, 8), "active": True})
    outputs = model(images, modalities)
    assert outputs["logits"].shape == (8, 3)
    assert outputs["bn"].shape == outputs["pooled"].shape == (8, model.feature_dim)
    loss, parts = criterion(outputs, labels, torch.arange(8))
    assert torch.isfinite(loss) and loss.item() > 0 and "loss_triplet" in parts
    loss.backward()
    stems = model.backbone.resnet.stems
    for stem in stems:  # each modality's stem got gradient from its own images
        assert stem.conv1.weight.grad is not None and stem.conv1.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.bottleneck.bias.grad is None  # BNNeck: bias frozen at zero


def test_backbone_last_stride_and_modality_stems() -> None:
    torch.manual_seed(0)
    net = ModalityResNet("resnet18", width=8, last_stride=1).eval()
    x = torch.randn(4, 3, 64, 32)
    modalities = torch.tensor([1, 0, 0, 1])
    out = net(x, modalities)
    assert out.shape == (4, 64, 4, 2)  # stride 16, not 32
    with torch.no_grad():  # a mixed batch equals each image through its own stem alone
        net.stems[1].conv1.weight.add_(0.5)
        mixed = net(x, modalities)
        one = torch.cat([net(x[i:i + 1], modalities[i:i + 1]) for i in range(4)])
    assert torch.allclose(mixed, one, atol=1e-5)
    assert not torch.allclose(mixed[0], net(x[:1], torch.tensor([0]))[0])
    shared = ModalityResNet("resnet18", width=8, modality_stems=False)
    assert len(shared.stems) == 1 and shared(x, modalities).shape == (4, 64, 4, 2)


def test_pretrained_from_file_and_missing_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    reference = ResNet(block=BasicBlock, layers=(2, 2, 2, 2))
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    net = ModalityResNet("resnet18", width=64, pretrained=str(path))
    for stem in net.stems:
        assert torch.equal(stem.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub = tmp_path / "hub" / "checkpoints"
    with pytest.raises(UserError, match=f"place resnet18-f37072fd.pth .* in {re.escape(str(hub))}"):
        ModalityResNet("resnet18", width=64, pretrained="imagenet")
    with pytest.raises(UserError, match="--width 64"):
        ModalityResNet("resnet18", width=8, pretrained=str(path))
    hub.mkdir(parents=True)
    path.rename(hub / "resnet18-f37072fd.pth")  # the file placed where the message says
    net = ModalityResNet("resnet18", width=64, pretrained="imagenet")
    assert torch.equal(net.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)


def test_imagenet_names_one_weight_set_and_never_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"v2 weights")  # only the V2 file is there
    with pytest.raises(UserError, match=r"IMAGENET1K_V1 weights .*place resnet50-0676ba61\.pth") as missing:
        resolve_pretrained("resnet50", "imagenet")
    assert "11ad3fa6" not in str(missing.value)
    v2 = resolve_pretrained("resnet50", "imagenet-v2")
    assert v2 is not None and v2.path == hub / "resnet50-11ad3fa6.pth"
    assert v2.record() == {"variant": "imagenet-v2", "file": "resnet50-11ad3fa6.pth",
                           "sha256": hashlib.sha256(b"v2 weights").hexdigest(),
                           "torchvision_weights": "IMAGENET1K_V2", "sha256_matches_name": False}
    (hub / "resnet50-0676ba61.pth").write_bytes(b"v1 weights")
    v1 = resolve_pretrained("resnet50", "imagenet")
    assert v1 is not None and v1.record()["file"] == "resnet50-0676ba61.pth"
    assert v1.record()["torchvision_weights"] == "IMAGENET1K_V1"
    with pytest.raises(UserError, match="no IMAGENET1K_V2 weights for resnet18; choose imagenet"):
        resolve_pretrained("resnet18", "imagenet-v2")
    assert resolve_pretrained("resnet50", "none") is None
    with pytest.raises(UserError, match="no such file"):
        resolve_pretrained("resnet50", str(tmp_path / "missing.pth"))
    assert make_config(TrainConfig, "paper").pretrained == "imagenet"


def test_a_run_records_its_weight_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reid_helpers import make_workspace

    from papg_bench.reid_baselines.run import train_run

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(2)
    torch.save(ResNet(block=BasicBlock, layers=(2, 2, 2, 2)).state_dict(), hub / "resnet18-f37072fd.pth")
    ws = make_workspace(tmp_path)
    settings = {**TINY, "width": 64, "pretrained": "imagenet"}
    outcome = train_run(ws, "sysu", "agw", "none", seed=0, preset="tiny", overrides=settings, device="cpu",
                        stop_after=0)
    config = json.loads((outcome.run_dir / "config.json").read_text())
    assert config["config"]["weights"] == {"variant": "imagenet", "file": "resnet18-f37072fd.pth",
                                 "sha256": sha256_file(hub / "resnet18-f37072fd.pth"),
                                 "torchvision_weights": "IMAGENET1K_V1", "sha256_matches_name": False}
    assert config["config"]["train"]["pretrained"] == "imagenet"
    (hub / "resnet18-f37072fd.pth").unlink()
    with pytest.raises(UserError, match="place resnet18-f37072fd.pth"):
        train_run(ws, "sysu", "agw", "none", seed=1, preset="tiny", overrides=settings, device="cpu", stop_after=0)


def test_cgrnet_test_features_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    model = get_baseline("cgrnet").build_model(tiny_config(), num_classes=3).eval()
    images, modalities, _ = tiny_batch()
    with torch.no_grad():
        together = model(images, modalities)["bn"]
        alone = torch.cat([model(images[i:i + 1], modalities[i:i + 1])["bn"] for i in range(len(images))])
    assert torch.allclose(together, alone, atol=1e-5)


def test_part_adjacency_edges() -> None:
    torch.manual_seed(0)
    nodes = torch.randn(12, 5)  # 4 images x 3 parts
    image = torch.arange(4).repeat_interleave(3)
    modality = torch.tensor([0, 0, 1, 1]).repeat_interleave(3)
    train = part_adjacency(nodes, image, modality, cross_modality=True, topk=4, scale=10.0)
    assert torch.allclose(train.sum(1), torch.ones(12))
    assert ((train > 0).sum(1) == 4).all()
    other_image = image.view(-1, 1) != image.view(1, -1)
    same_modality_other_image = other_image & (modality.view(-1, 1) == modality.view(1, -1))
    assert train[same_modality_other_image].abs().sum() == 0  # no edges within a modality across images
    test = part_adjacency(nodes, image, modality, cross_modality=False, topk=4, scale=10.0)
    assert test[image.view(-1, 1) != image.view(1, -1)].abs().sum() == 0


def _wrt_reference(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    dist = torch.cdist(x, x)
    losses = []
    for i in range(len(x)):
        pos, neg = labels == labels[i], labels != labels[i]
        wp = torch.softmax(dist[i][pos], 0)
        wn = torch.softmax(-dist[i][neg], 0)
        gap = (wp * dist[i][pos]).sum() - (wn * dist[i][neg]).sum()
        losses.append(torch.log1p(torch.exp(gap)))
    return torch.stack(losses).mean()


def test_weighted_regularized_triplet_matches_its_definition() -> None:
    torch.manual_seed(0)
    x, labels = torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = weighted_regularized_triplet(x, labels)
    assert torch.allclose(loss, _wrt_reference(x, labels), atol=1e-4)
    ones = weighted_regularized_triplet(x, labels, pair_weights=torch.ones(8, 8))
    assert torch.allclose(loss, ones)
    per = weighted_regularized_triplet(x, labels, reduction="none")
    assert per.shape == (8,) and torch.allclose(per.mean(), loss)


def test_gmm_recovers_two_components_and_clean_probabilities() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.2, 0.05, 800), rng.normal(0.8, 0.08, 200)])
    gmm = fit_gmm_1d(values, iterations=30, reg_var=1e-6)
    order = np.argsort(gmm.means)
    low, high = values[:800], values[800:]  # well separated: EM must find each part's own statistics
    assert np.allclose(gmm.means[order], [low.mean(), high.mean()], atol=1e-3)
    assert np.allclose(np.sqrt(gmm.variances[order]), [low.std(), high.std()], atol=1e-3)
    assert np.allclose(gmm.weights[order], [0.8, 0.2], atol=0.02)
    clean = clean_probability(values)
    assert clean[:800].mean() > 0.95 and clean[800:].mean() < 0.05
    assert np.all(clean_probability(np.ones(5)) == 1.0)


def test_augment_names() -> None:
    assert parse_augment("none") == frozenset()
    assert canonical_augment("channel+papg") == "papg+channel"
    for bad in ("papg+papg", "mixup", "papg+"):
        with pytest.raises(UserError, match="--augment"):
            parse_augment(bad)


def test_precision_is_checked() -> None:
    assert tiny_config(precision="bf16").precision == "bf16"
    with pytest.raises(UserError, match="--precision 'half'"):
        tiny_config(precision="half").validate()
    from papg_bench.reid_baselines.run import config_from_run

    assert config_from_run({"train": {"amp": False, "width": 16}}).precision == "fp32"  # a run from before
    assert config_from_run({"train": {"amp": True}}).precision == "auto"


def test_channel_exchange_and_batch_augmenter() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 4), dtype=torch.uint8)
    out = channel_exchange(images, torch.tensor([True, True, False, False]), torch.tensor([0, 3, 1, 2]),
                           torch.tensor([False, False, True, False]))
    assert torch.equal(out[0], images[0, :1].expand(3, -1, -1))  # R everywhere
    gray = (images[1].float() * torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)).sum(0).round().to(torch.uint8)
    assert torch.equal(out[1, 2], gray) and torch.equal(out[2, 0], out[2, 1])
    assert torch.equal(out[3], images[3])
    augmenter = BatchAugmenter("channel", (8, 4), pad=0, flip=False, channel_prob=1.0, gray_prob=0.0)
    draws = augmenter.draw(4, torch.Generator().manual_seed(0))
    modalities = torch.tensor([0, 0, 1, 1])
    x = augmenter(images, modalities, draws, torch.arange(4))
    plain = BatchAugmenter("none", (8, 4), pad=0, flip=False, channel_prob=1.0, gray_prob=1.0)
    y = plain(images, modalities, draws, torch.arange(4))
    assert torch.equal(x[2:], y[2:])  # infrared images are never channel-exchanged
    assert not torch.equal(x[:2], y[:2])
