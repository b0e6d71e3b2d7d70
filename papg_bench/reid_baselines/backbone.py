"""ResNet backbones with a modality-specific stem and shared residual stages.

The stem (conv1, bn1, relu, maxpool) exists twice, one copy for visible and one for infrared images;
layers 1-4 are shared. The last stage keeps stride 1 (``last_stride=1``), so a 288 x 144 image gives an
18 x 9 layer-4 map, as in the AGW reference. ResNet-50 is the ``paper`` preset, ResNet-18 the ``tiny``
one; ``width`` scales every stage (64 = the standard network; only width 64 can take ImageNet weights).

``pretrained`` is ``none``, a named ImageNet weight set (``imagenet``: torchvision's ``IMAGENET1K_V1``,
e.g. ``resnet50-0676ba61.pth``, the recipe the AGW code loads; ``imagenet-v2``: ``IMAGENET1K_V2``,
``resnet50-11ad3fa6.pth``), read from torch's hub cache and never downloaded, each exactly one file
(a missing file is an error naming it, never another variant), or the path of a local file holding a
torchvision/timm ResNet state dict. :func:`resolve_pretrained` names the file and
:meth:`PretrainedWeights.record` gives what a run records (variant, file, sha256).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from papg_bench.errors import UserError
from papg_bench.workspace import sha256_file

ARCHS: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
# --pretrained name -> torchvision's weight enum and, per arch, the file torch.hub caches it under.
IMAGENET_WEIGHTS: dict[str, tuple[str, dict[str, str]]] = {
    "imagenet": ("IMAGENET1K_V1", {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
                                   "resnet50": "resnet50-0676ba61.pth"}),
    "imagenet-v2": ("IMAGENET1K_V2", {"resnet50": "resnet50-11ad3fa6.pth"}),
}
TORCHVISION_URL = "https://download.pytorch.org/models/"
VISIBLE, INFRARED = 0, 1


def feature_channels(arch: str, width: int = 64) -> int:
    block, _ = ARCHS[arch]
    return width * 8 * (4 if block is Bottleneck else 1)


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_imagenet_weights(arch: str, variant: str = "imagenet") -> Path:
    """The one file of the named ImageNet weight set for ``arch`` in torch's hub cache, or a UserError
    naming the file to place and where."""
    enum, files = IMAGENET_WEIGHTS[variant]
    if arch not in files:
        have = ", ".join(name for name, (_, by_arch) in IMAGENET_WEIGHTS.items() if arch in by_arch)
        raise UserError(f"--pretrained {variant}: torchvision has no {enum} weights for {arch}; "
                        f"choose {have or 'none'} or give a weight file.")
    hub = _torch_hub_checkpoints()
    path = hub / files[arch]
    if not path.is_file():
        raise UserError(
            f"--pretrained {variant}: torchvision's {arch} {enum} weights are not in torch's hub cache: place "
            f"{files[arch]} ({TORCHVISION_URL}{files[arch]}) in {hub}, or give a weight file with "
            "--pretrained PATH, or train from scratch with --pretrained none; nothing is downloaded."
        )
    return path


@dataclass(frozen=True)
class PretrainedWeights:
    """The weight file a backbone starts from: a named torchvision set or a file given by path."""

    variant: str  # imagenet | imagenet-v2 | file
    path: Path

    def record(self) -> dict[str, Any]:
        """What a run records: the variant, the file's name and its sha256 (and, for a torchvision file,
        the weight enum and whether the sha256 starts with the 8 digits in the file's name)."""
        digest = sha256_file(self.path)
        out: dict[str, Any] = {"variant": self.variant, "file": self.path.name, "sha256": digest}
        if self.variant in IMAGENET_WEIGHTS:
            out["torchvision_weights"] = IMAGENET_WEIGHTS[self.variant][0]
            named = re.search(r"-([0-9a-f]{8})\.pth$", self.path.name)
            out["sha256_matches_name"] = named is not None and digest.startswith(named[1])
        return out


def resolve_pretrained(arch: str, pretrained: str) -> PretrainedWeights | None:
    """The weight file ``--pretrained`` names for ``arch`` (None for ``none``); UserError when it is missing."""
    if pretrained in ("none", ""):
        return None
    if pretrained in IMAGENET_WEIGHTS:
        return PretrainedWeights(pretrained, find_imagenet_weights(arch, pretrained))
    path = Path(pretrained)
    if not path.is_file():
        raise UserError(f"--pretrained {path}: no such file; give a ResNet weight file, "
                        f"{', '.join(IMAGENET_WEIGHTS)} or none.")
    return PretrainedWeights("file", path)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--pretrained {path}: no such file; give a ResNet weight file, imagenet or none.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is not a weight file
        raise UserError(f"--pretrained {path}: not a readable weight file ({type(exc).__name__}).") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"--pretrained {path}: expected a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


class ModalityStem(nn.Module):
    def __init__(self, conv1: nn.Module, bn1: nn.Module, act: nn.Module, maxpool: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = conv1, bn1, act, maxpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


class ModalityResNet(nn.Module):
    """ResNet with one stem per modality and shared ``layer1`` .. ``layer4``.

    ``forward(x, modalities)`` takes a batch of either modality (``modalities``: B ints, 0 = visible,
    1 = infrared) and returns the layer-4 map. ``stages()`` exposes the shared stages so that heads can
    interleave blocks (AGW's non-local blocks).
    """

    def __init__(self, arch: str = "resnet50", width: int = 64, last_stride: int = 1,
                 pretrained: str = "none", modality_stems: bool = True) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise UserError(f"--arch {arch!r} is not known: choose one of {', '.join(ARCHS)}.")
        if width < 4:
            raise UserError(f"--width {width}: must be at least 4 channels.")
        block, layers = ARCHS[arch]
        net = ResNet(block=block, layers=layers, channels=(width, width * 2, width * 4, width * 8),
                     stem_width=width, num_classes=0)
        if pretrained not in ("none", ""):
            if width != 64:
                raise UserError(f"--pretrained {pretrained}: ImageNet weights need --width 64 (got {width}).")
            weights = resolve_pretrained(arch, pretrained)
            path = weights.path if weights is not None else Path(pretrained)
            state = {k: v for k, v in load_state_file(path).items() if not k.startswith("fc.")}
            own = net.state_dict()
            missing = [k for k in own if k not in state]
            wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
            if missing or wrong:
                raise UserError(
                    f"--pretrained {path}: not {arch} weights (missing {len(missing)} tensors, "
                    f"{len(wrong)} of another shape, e.g. {(missing + wrong)[0]})."
                )
            net.load_state_dict({k: state[k] for k in own}, strict=True)
        if last_stride != 2:
            first = net.layer4[0]
            conv = first.conv2 if isinstance(first, Bottleneck) else first.conv1
            conv.stride = (last_stride, last_stride)
            if first.downsample is not None:
                first.downsample[0].stride = (last_stride, last_stride)
        stem = ModalityStem(net.conv1, net.bn1, net.act1, net.maxpool)
        # visible, infrared; with modality_stems=False both modalities share one stem
        self.stems = nn.ModuleList([stem, copy.deepcopy(stem)] if modality_stems else [stem])
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.arch, self.width = arch, width
        self.out_channels = feature_channels(arch, width)

    def stem(self, x: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """Each image through its own modality's stem, outputs back in the batch order."""
        if len(self.stems) == 1:
            return self.stems[0](x)
        parts, index = [], []
        for m, stem in enumerate(self.stems):
            rows = (modalities == m).nonzero(as_tuple=True)[0]
            if rows.numel():
                parts.append(stem(x[rows]))
                index.append(rows)
        if len(parts) == 1:
            return parts[0]
        order = torch.cat(index)
        out = torch.cat(parts)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return out[inverse]

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        x = self.stem(x, modalities)
        for stage in self.stages():
            x = stage(x)
        return x
