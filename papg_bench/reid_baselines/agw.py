"""AGW (Ye et al., "Deep learning for person re-identification: a survey and outlook", TPAMI 2021).

Modality-stem ResNet (``backbone.py``) with non-local attention blocks after the last 2 blocks of
layer2 and the last 3 of layer3, generalized-mean pooling (p = 3), a BNNeck (batch norm whose bias is
frozen at zero) and a bias-free classifier. Training loss: identity CE on the BNNeck logits plus the
weighted regularized triplet on the pooled feature (``losses.ReIDCriterion``). Test feature: the
L2-normalised BNNeck output (``bn``), or the pooled feature (``pooled``).

Non-local inter-channels: ``nl_inter = "one"`` (the ``paper`` preset) is the released ``model.py`` the
AGW README's figures come from, whose ``reduc_ratio // reduc_ratio`` leaves a single inter-channel;
``"half"`` uses C/2 as the non-local paper describes. GeM: ``gem_form = "released"`` (the ``paper``
preset) is the released ``(mean(x^p) + 1e-12)^(1/p)``; ``"clamped"`` clamps the inputs at 1e-6 before
the power instead. ``docs/presets.md`` lists every difference from the released code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from papg_bench.errors import UserError
from papg_bench.reid_baselines.backbone import ModalityResNet
from papg_bench.reid_baselines.layers import GeM, bnneck, classifier

NON_LOCAL_BLOCKS = (0, 2, 3, 0)  # per stage: how many of its last blocks are followed by a non-local block


class NonLocal(nn.Module):
    """Embedded dot-product non-local block (normalised by the number of positions), zero-initialised."""

    def __init__(self, channels: int, inter: int) -> None:
        super().__init__()
        self.inter = inter
        self.g = nn.Conv2d(channels, inter, 1)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.W = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        g = self.g(x).flatten(2).transpose(1, 2)  # B x N x inter
        theta = self.theta(x).flatten(2).transpose(1, 2)
        phi = self.phi(x).flatten(2)  # B x inter x N
        attention = (theta @ phi) / phi.shape[-1]
        y = (attention @ g).transpose(1, 2).reshape(b, self.inter, h, w)
        return x + self.W(y)


class NonLocalBackbone(nn.Module):
    """The modality-stem ResNet with AGW's non-local blocks interleaved in layer2 and layer3."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.resnet = ModalityResNet(cfg.arch, cfg.width, cfg.last_stride, cfg.pretrained, cfg.modality_stems)
        if cfg.nl_inter not in ("half", "one"):
            raise UserError(f"--nl-inter {cfg.nl_inter!r}: choose one (the released code) or half (C/2).")
        self.non_local = nn.ModuleDict()
        self.after: list[set[int]] = []
        for s, stage in enumerate(self.resnet.stages()):
            count = min(NON_LOCAL_BLOCKS[s], len(stage)) if cfg.non_local else 0
            positions = set(range(len(stage) - count, len(stage)))
            self.after.append(positions)
            channels = _stage_channels(stage)
            for i in sorted(positions):
                inter = 1 if cfg.nl_inter == "one" else max(1, channels // 2)
                self.non_local[f"layer{s + 1}_{i}"] = NonLocal(channels, inter)
        self.out_channels = self.resnet.out_channels

    def forward(self, x: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        x = self.resnet.stem(x, modalities)
        for s, stage in enumerate(self.resnet.stages()):
            for i, block in enumerate(stage):
                x = block(x)
                if i in self.after[s]:
                    x = self.non_local[f"layer{s + 1}_{i}"](x)
        return x


def _stage_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    bn = last.bn3 if hasattr(last, "bn3") else last.bn2
    return int(bn.num_features)


class AGW(nn.Module):
    """``forward(images, modalities)`` -> ``{"pooled", "bn", "logits"}``."""

    def __init__(self, cfg: Any, num_classes: int) -> None:
        super().__init__()
        self.backbone = NonLocalBackbone(cfg)
        dim = self.backbone.out_channels
        self.pool = GeM(cfg.gem_p, form=cfg.gem_form)
        self.bottleneck = bnneck(dim)
        self.classifier = classifier(dim, num_classes)
        self.feature_dim = dim

    def head_modules(self) -> list[nn.Module]:
        """Modules trained at the head learning rate (everything else takes the backbone rate)."""
        return [self.bottleneck, self.classifier]

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap = self.backbone(images, modalities)
        pooled = self.pool(fmap)
        bn = self.bottleneck(pooled)
        return {"pooled": pooled, "bn": bn, "logits": self.classifier(bn)}


def build(cfg: Any, num_classes: int) -> AGW:
    return AGW(cfg, num_classes)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=1)
