"""The ``--augment`` switch and the device-side batch augmentation of the trainer.

``--augment`` is ``none`` or a ``+``-joined combination of:

- ``papg``: each modality's training set is extended with the generated images of the other modality's
  sources (visible gets I2V images, infrared gets V2I), labelled with the source identity (the trainer
  reads them from the workspace's PAPG set, ``<work>/generated/<dataset>/<generated_run>/``, ``papg``
  unless ``--generated-run`` names another);
- ``gen:NAME``: the same with the generated set ``NAME`` (any set: a PAPG variant, the true counterparts,
  an imported generator's images; see :mod:`papg_bench.generators.sets`). ``gen:papg`` is ``papg``, and
  at most one generated set goes into a run;
- ``channel``: random channel exchange as in channel-augmented joint learning (Ye et al., ICCV 2021,
  ``ChannelExchange(gray=2)``): with probability ``channel_prob`` a visible image's three channels are
  all replaced by one of R, G, B or the grayscale image (0.2989 R + 0.587 G + 0.114 B), uniformly. Unlike
  CAJ it replaces the image in place instead of adding a second copy, so batches keep their size;
- ``gray``: with probability ``gray_prob`` a visible image becomes grayscale.

Every batch also gets the pad-``pad`` random crop and horizontal flip, then ImageNet normalisation. All
random draws come from one CPU generator for the whole (global) batch, so DDP ranks and micro-batches
slice the same draws and a resumed run repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from papg_bench.data.batches import Geometry, apply_geometry, normalize, random_geometry, resize
from papg_bench.errors import UserError

COMPONENTS = ("papg", "channel", "gray")
GENERATED = "papg"  # the component that trains with the workspace's PAPG set
SET_PREFIX = "gen:"
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def parse_augment(spec: str) -> frozenset[str]:
    """``none`` -> {}; ``papg+channel`` -> {papg, channel}; ``gen:NAME+gray`` -> {gen:NAME, gray}; unknown
    parts are a UserError. Component names are case-insensitive, set names are not."""
    from papg_bench.generators.sets import NAME_PATTERN

    spec = spec.strip()
    if spec.lower() in ("none", ""):
        return frozenset()
    parts = [_part(p.strip()) for p in spec.split("+")]
    unknown = [p for p in parts if p not in COMPONENTS and not (p.startswith(SET_PREFIX)
                                                                  and NAME_PATTERN.match(p[len(SET_PREFIX):]))]
    generated = [p for p in parts if p == GENERATED or p.startswith(SET_PREFIX)]
    if unknown or len(set(parts)) != len(parts) or len(generated) > 1:
        raise UserError(
            f"--augment {spec!r}: use none or a '+'-joined combination of {', '.join(COMPONENTS)} and gen:NAME "
            "(a generated set of the workspace; e.g. papg+channel, gen:counterparts+gray), each at most once and "
            "at most one generated set."
        )
    return frozenset(parts)


def _part(text: str) -> str:
    if text[:len(SET_PREFIX)].lower() == SET_PREFIX:
        name = text[len(SET_PREFIX):]
        return GENERATED if name == GENERATED else SET_PREFIX + name
    return text.lower()


def canonical_augment(spec: str) -> str:
    """The canonical form of ``spec``: components in a fixed order, the generated set first (``channel+papg`` ->
    ``papg+channel``, ``gray+gen:x`` -> ``gen:x+gray``)."""
    parts = parse_augment(spec)
    sets = sorted(p for p in parts if p.startswith(SET_PREFIX))
    return "+".join(sets + [p for p in COMPONENTS if p in parts]) or "none"


def uses_generated(spec: str) -> bool:
    """Whether ``spec`` trains with generated images (``papg`` or a ``gen:NAME``)."""
    return generated_set(spec, GENERATED) is not None


def generated_set(spec: str, default: str) -> str | None:
    """The generated set ``spec`` trains with: NAME for ``gen:NAME``, ``default`` (``--generated-run``) for
    ``papg``, None without generated images."""
    for part in parse_augment(spec):
        if part.startswith(SET_PREFIX):
            return part[len(SET_PREFIX):]
        if part == GENERATED:
            return default
    return None


def augment_slug(spec: str) -> str:
    """``spec`` in run-folder names: ``gen:NAME`` is written ``gen-NAME``."""
    return canonical_augment(spec).replace(SET_PREFIX, "gen-")


@dataclass
class BatchDraws:
    """Random choices for one global batch (all on the CPU)."""

    geometry_dx: torch.Tensor
    geometry_dy: torch.Tensor
    flip: torch.Tensor
    channel_apply: torch.Tensor  # bool
    channel_choice: torch.Tensor  # 0 R, 1 G, 2 B, 3 gray
    gray_apply: torch.Tensor  # bool


class BatchAugmenter:
    def __init__(self, augment: str, size: tuple[int, int], pad: int, flip: bool, channel_prob: float,
                 gray_prob: float, channels_last: bool = False) -> None:
        self.components = parse_augment(augment)
        self.size, self.pad, self.flip = tuple(size), pad, flip
        self.channel_prob = channel_prob if "channel" in self.components else 0.0
        self.gray_prob = gray_prob if "gray" in self.components else 0.0
        self.channels_last = channels_last

    def draw(self, batch: int, generator: torch.Generator) -> BatchDraws:
        h, w = self.size
        geo = random_geometry(batch, h, w, self.pad, self.flip, generator=generator)
        return BatchDraws(
            geometry_dx=geo.dx, geometry_dy=geo.dy, flip=geo.flip,
            channel_apply=torch.rand(batch, generator=generator) < self.channel_prob,
            channel_choice=torch.randint(0, 4, (batch,), generator=generator),
            gray_apply=torch.rand(batch, generator=generator) < self.gray_prob,
        )

    def __call__(self, images: torch.Tensor, modalities: torch.Tensor, draws: BatchDraws,
                 index: torch.Tensor) -> torch.Tensor:
        """Augment uint8 ``images`` (B x 3 x H x W on the device) with the draws at positions ``index``."""
        device = images.device
        images = resize(images, self.size)
        h, w = self.size
        geometry = Geometry(pad=self.pad, dx=draws.geometry_dx[index].to(device),
                            dy=draws.geometry_dy[index].to(device), flip=draws.flip[index].to(device),
                            height=h, width=w)
        images = apply_geometry(images, geometry)
        visible = (modalities == 0).cpu()
        exchange = draws.channel_apply[index] & visible & ("channel" in self.components)
        gray = draws.gray_apply[index] & visible & ("gray" in self.components)
        if exchange.any() or gray.any():
            images = channel_exchange(images, exchange.to(device), draws.channel_choice[index].to(device),
                                      gray.to(device))
        return normalize(images, channels_last=self.channels_last)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(GRAY_WEIGHTS, device=images.device).view(1, 3, 1, 1)
    return (images.float() * weights).sum(dim=1, keepdim=True)


def channel_exchange(images: torch.Tensor, exchange: torch.Tensor, choice: torch.Tensor,
                     gray: torch.Tensor) -> torch.Tensor:
    """Replace images where ``exchange`` by channel ``choice`` (3 = grayscale) everywhere, and images where
    ``gray`` by their grayscale; the result keeps the input dtype."""
    x = images.float()
    luminance = grayscale(x)
    picked = torch.cat([x, luminance], dim=1)[torch.arange(x.shape[0], device=x.device), choice.clamp(max=3)]
    picked = picked.unsqueeze(1)
    grayed = torch.where(gray.view(-1, 1, 1, 1), luminance.expand_as(x), x)
    out = torch.where(exchange.view(-1, 1, 1, 1), picked.expand_as(x), grayed)
    if images.dtype == torch.uint8:
        return out.round().clamp(0, 255).to(torch.uint8)
    return out
