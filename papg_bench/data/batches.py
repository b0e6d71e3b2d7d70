"""Batches straight from the store's memory map, augmented on the training device.

Training reads uint8 rows from ``images.npy`` (no decoding, no per-sample Python transforms), moves
them to the device once, and does the pad-and-random-crop, horizontal flip and normalisation there
for the whole batch. :class:`Geometry` records what was done to each image, so that keypoints (and
the pose maps drawn from them) follow the image exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_rows(images: np.ndarray, rows: Sequence[int] | np.ndarray, device: torch.device | str = "cpu",
              pin: bool = False) -> torch.Tensor:
    """uint8 images of ``rows`` as a B x 3 x H x W tensor on ``device``.

    Rows are read in ascending order (sequential access in the memory map) and put back in the order
    asked for.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    batch = np.empty((len(rows), *images.shape[1:]), dtype=np.uint8)
    batch[order] = images[rows[order]]
    tensor = torch.from_numpy(batch).permute(0, 3, 1, 2)
    if pin and torch.cuda.is_available():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 or float batch to ``size`` (H, W) with antialiasing; no-op when equal."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    dtype = images.dtype
    out = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(dtype) if dtype == torch.uint8 else out


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              channels_last: bool = False) -> torch.Tensor:
    """uint8 [0, 255] -> float, ``(x/255 - mean) / std``. Use mean = std = 0.5 for [-1, 1]."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass
class Geometry:
    """Per-image crop offset (in the padded image) and flip, for a batch of ``height`` x ``width``."""

    pad: int
    dx: torch.Tensor  # (B,) int64, 0 .. 2*pad
    dy: torch.Tensor
    flip: torch.Tensor  # (B,) bool
    height: int
    width: int

    def apply_to_keypoints(self, keypoints: torch.Tensor, flip_permutation: Sequence[int]) -> torch.Tensor:
        """Move B x J x 3 keypoints (x, y, conf; missing = -1) the way the images moved.

        Joints that leave the image become missing; under a flip, left and right joints swap.
        """
        kp = keypoints.clone().float()
        missing = kp[..., 2] < 0
        shift_x = (self.pad - self.dx).to(kp.device, kp.dtype).view(-1, 1)
        shift_y = (self.pad - self.dy).to(kp.device, kp.dtype).view(-1, 1)
        kp[..., 0] += shift_x
        kp[..., 1] += shift_y
        flip = self.flip.to(kp.device).view(-1, 1)
        kp[..., 0] = torch.where(flip, (self.width - 1) - kp[..., 0], kp[..., 0])
        perm = torch.as_tensor(flip_permutation, device=kp.device)
        kp = torch.where(flip.view(-1, 1, 1), kp[:, perm], kp)
        missing = torch.where(flip, missing[:, perm], missing)
        outside = (kp[..., 0] < 0) | (kp[..., 0] > self.width - 1) | (kp[..., 1] < 0) | (kp[..., 1] > self.height - 1)
        kp[missing | outside] = -1.0
        return kp


def random_geometry(batch: int, height: int, width: int, pad: int, flip: bool,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Geometry:
    """Draw crop offsets and flips on the CPU generator (reproducible on any device)."""
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator) if pad else torch.zeros(batch, dtype=torch.long)
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator) if pad else torch.zeros(batch, dtype=torch.long)
    flips = torch.rand(batch, generator=generator) < 0.5 if flip else torch.zeros(batch, dtype=torch.bool)
    return Geometry(pad=pad, dx=dx.to(device), dy=dy.to(device), flip=flips.to(device), height=height, width=width)


def apply_geometry(images: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back to H x W at each image's offset, then flip where asked."""
    b, _, h, w = images.shape
    pad = geometry.pad
    if pad:
        padded = F.pad(images, (pad, pad, pad, pad))
        rows = torch.arange(h, device=images.device).view(1, h) + geometry.dy.view(b, 1)
        cols = torch.arange(w, device=images.device).view(1, w) + geometry.dx.view(b, 1)
        batch_idx = torch.arange(b, device=images.device).view(b, 1, 1)
        images = padded.permute(0, 2, 3, 1)[batch_idx, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)
    flip = geometry.flip.view(b, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images).contiguous()
