"""Test features of store rows: L2-normalised BNNeck (or pooled) output, optionally flip-averaged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from papg_bench.data.batches import load_rows, normalize, resize
from papg_bench.errors import UserError
from papg_bench.progress import track
from papg_bench.training import autocast

FEATURE_KINDS = ("bn", "pooled")


@torch.no_grad()
def extract_features(model: nn.Module, images: np.ndarray, rows: Sequence[int] | np.ndarray,
                     modalities: Sequence[int] | np.ndarray, size: tuple[int, int], device: torch.device,
                     batch_size: int = 256, flip: bool = False, kind: str = "bn", precision: str = "auto",
                     channels_last: bool = False, description: str | None = None) -> np.ndarray:
    """Features (N x D float32, unit rows) of ``images[rows]``; ``modalities`` 0 visible / 1 infrared.

    ``kind`` is ``bn`` (after the BNNeck, the AGW test feature) or ``pooled`` (before it). With ``flip``
    the features of each image and its mirror image are averaged before normalising.
    """
    if kind not in FEATURE_KINDS:
        raise UserError(f"--feature {kind!r}: choose one of {', '.join(FEATURE_KINDS)}.")
    rows = np.asarray(rows, dtype=np.int64)
    modalities = np.asarray(modalities, dtype=np.int64)
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with track(description or "", total=len(rows), unit="img", enabled=bool(description)) as advance:
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                mods = torch.as_tensor(modalities[start:start + batch_size], device=device)
                x = normalize(resize(load_rows(images, chunk, device), size), channels_last=channels_last)
                with autocast(device, precision):
                    feature = model(x, mods)[kind].float()
                    if flip:
                        feature = feature + model(x.flip(-1), mods)[kind].float()
                out.append(F.normalize(feature, dim=1).cpu().numpy())
                advance(len(chunk))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)
