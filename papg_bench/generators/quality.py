"""``papg-bench generate --score``: how close the generated images are to the truth, and to the target modality.

Aligned scores, where the true counterpart of a source image exists:

* synthvi in the SYSU layout renders every image in both modalities
  (``<root>/synthvi/counterparts/<same relative path>``), read with the store's own preprocessing;
* RegDB images are co-captured: ``Visible`` image k of an identity pairs with ``Thermal`` image k
  (k-th in sorted path order), both already in the store.

For each direction: SSIM (Gaussian window 11, sigma 1.5, per RGB channel, averaged), PSNR (dB, range 255)
and L1 (mean absolute difference in [0, 1]) between generated and true image, and the same for the trivial
baseline, the source image turned to grey (ITU-R 601 luma in all three channels).

Modality gap, for every dataset: per training identity, the mean distance between generated images and
the real images of that identity in the target modality, against the same mean for the source images;
averaged over identities. Also the floor, the mean distance between two different real target images of
the identity. Two fixed feature spaces, so that the numbers mean the same for every run:

* ``pixels``: RGB downsampled (area) to 32 x 16, in [0, 1]; distance = root mean square difference;
* ``random_cnn``: a 4-layer conv net (32-64-128-128 channels, stride 2, ReLU, global average pool) with
  weights drawn from seed 0 and never trained, L2-normalised 128-d output; Euclidean distance.
  Random convolutional features capture local texture and contrast statistics without any learning that
  could be biased towards one generator.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from papg_bench.data.batches import load_rows
from papg_bench.data.prepare import load_resized
from papg_bench.data.store import Store
from papg_bench.workspace import atomic_write_json

SCORE_BATCH = 64
PIXEL_SIZE = (32, 16)
LUMA = (0.299, 0.587, 0.114)


# --- image metrics --------------------------------------------------------------------------------------------


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).float()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of B x 3 x H x W images in [0, 1] (Wang et al. 2004, valid region)."""
    window = _gaussian_window().to(a.device)
    c1, c2 = 0.01**2, 0.03**2
    mu_a = F.conv2d(a, window, groups=3)
    mu_b = F.conv2d(b, window, groups=3)
    var_a = F.conv2d(a * a, window, groups=3) - mu_a**2
    var_b = F.conv2d(b * b, window, groups=3) - mu_b**2
    cov = F.conv2d(a * b, window, groups=3) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(dim=(1, 2, 3))


def to_grey(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand_as(images)


def _unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if tensor.shape[-1] == 3:
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.float() / 255.0


# --- aligned counterparts -------------------------------------------------------------------------------------


def counterpart_source(source: Store) -> str | None:
    """Where the true counterparts come from, or None when this dataset has none."""
    if source.dataset.counterparts is not None:
        return source.dataset.counterparts
    root = source.meta.get("source_root")
    if root and (Path(root) / "synthvi" / "counterparts").is_dir():
        return "synthvi counterparts (<root>/synthvi/counterparts/<path>)"
    return None


def true_counterparts(source: Store, source_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of rows with a true counterpart, their uint8 N' x H x W x 3 images in the store's preprocessing)."""
    height, width = source.size
    found = np.zeros(len(source_rows), dtype=bool)
    images: list[np.ndarray] = []
    partners = source.dataset.counterpart_partners(source)
    if partners is not None:
        picked = []
        for k, row in enumerate(source_rows):
            if int(row) in partners:
                found[k] = True
                picked.append(partners[int(row)])
        if picked:
            return found, np.asarray(source.images[np.asarray(picked)])
        return found, np.zeros((0, height, width, 3), np.uint8)
    root = source.meta.get("source_root")
    folder = Path(root) / "synthvi" / "counterparts" if root else None
    if folder is None or not folder.is_dir():
        return found, np.zeros((0, height, width, 3), np.uint8)
    for k, row in enumerate(source_rows):
        path = folder / source.paths[row]
        if path.is_file():
            found[k] = True
            images.append(load_resized(path, height, width))
    return found, np.stack(images) if images else np.zeros((0, height, width, 3), np.uint8)


def aligned_scores(source: Store, generated: Store, direction: str) -> dict[str, float] | None:
    rows = np.flatnonzero(generated.columns["direction"] == direction)
    source_rows = generated.columns["source_row"][rows]
    found, truth = true_counterparts(source, source_rows)
    if not found.any():
        return None
    rows, source_rows = rows[found], source_rows[found]
    totals: dict[str, float] = defaultdict(float)
    for start in range(0, len(rows), SCORE_BATCH):
        stop = start + SCORE_BATCH
        true = _unit(truth[start:stop])
        fake = _unit(load_rows(generated.images, rows[start:stop]))
        grey = to_grey(_unit(load_rows(source.images, source_rows[start:stop])))
        for name, image in (("", fake), ("grey_", grey)):
            totals[name + "ssim"] += float(ssim(image, true).sum())
            totals[name + "psnr"] += float(psnr(image, true).sum())
            totals[name + "l1"] += float(l1(image, true).sum())
    return {"count": int(len(rows)), **{k: v / len(rows) for k, v in totals.items()}}


# --- modality gap ---------------------------------------------------------------------------------------------


class RandomFeatures(nn.Module):
    """Fixed, untrained conv features (seed 0): 4 stride-2 3x3 convs with ReLU, global average pool."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        layers: list[nn.Module] = []
        widths = (3, 32, 64, 128, 128)
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
        self.body = nn.Sequential(*layers).eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.body(images * 2 - 1).mean(dim=(2, 3)), dim=1)


def _features(images: np.ndarray, rows: np.ndarray, space: str, net: RandomFeatures) -> torch.Tensor:
    out = []
    for start in range(0, len(rows), SCORE_BATCH):
        batch = _unit(load_rows(images, rows[start:start + SCORE_BATCH]))
        if space == "pixels":
            small = F.adaptive_avg_pool2d(batch, PIXEL_SIZE).flatten(1)
            out.append(small / small.shape[1] ** 0.5)  # Euclidean distance of these = RMS pixel difference
        else:
            out.append(net(batch))
    return torch.cat(out) if out else torch.zeros(0, 1)


def modality_gap(source: Store, generated: Store, direction: str) -> dict[str, dict[str, float]] | None:
    rows = np.flatnonzero(generated.columns["direction"] == direction)
    if len(rows) == 0:
        return None
    source_rows = generated.columns["source_row"][rows]
    target = "I" if direction == "V2I" else "V"
    # the real target-modality images: the training images the other direction started from
    every_source = np.unique(generated.columns["source_row"])
    real_rows = every_source[source.modalities[every_source] == target]
    if len(real_rows) == 0:
        return None
    net = RandomFeatures()
    result: dict[str, dict[str, float]] = {}
    for space in ("pixels", "random_cnn"):
        gen_f = _features(generated.images, rows, space, net)
        src_f = _features(source.images, source_rows, space, net)
        real_f = _features(source.images, real_rows, space, net)
        gen_pids, real_pids = source.pids[source_rows], source.pids[real_rows]
        per_id: dict[str, list[float]] = defaultdict(list)
        for pid in np.unique(gen_pids):
            real = real_f[real_pids == pid]
            if len(real) == 0:
                continue
            mine = gen_pids == pid
            per_id["generated"].append(float(torch.cdist(gen_f[mine], real).mean()))
            per_id["source"].append(float(torch.cdist(src_f[mine], real).mean()))
            if len(real) > 1:
                d = torch.cdist(real, real)
                per_id["real_floor"].append(float(d.sum() / (len(real) * (len(real) - 1))))
        if not per_id:
            continue
        values = {k: float(np.mean(v)) for k, v in per_id.items()}
        values["identities"] = len(per_id["generated"])
        values["closed"] = 1.0 - values["generated"] / values["source"] if values["source"] > 0 else 0.0
        result[space] = values
    return result or None


# --- the report -----------------------------------------------------------------------------------------------


def score_generated(source: Store, generated: Store, out_json: Path, force: bool = False) -> dict[str, Any]:
    """Aligned scores and modality gap for both directions; cached in ``out_json`` for the generated store."""
    key = generated.meta.get("content_checksum")
    if not force and out_json.is_file():
        try:
            cached = json.loads(out_json.read_text())
        except json.JSONDecodeError:
            cached = {}
        if cached.get("generated_checksum") == key:
            return cached
    report: dict[str, Any] = {
        "generated_checksum": key,
        "aligned_source": counterpart_source(source),
        "aligned": {},
        "modality_gap": {},
        "feature_spaces": {
            "pixels": f"RGB area-downsampled to {PIXEL_SIZE[0]}x{PIXEL_SIZE[1]} in [0,1], RMS difference",
            "random_cnn": "untrained 4-layer conv net (seed 0), L2-normalised 128-d, Euclidean",
        },
    }
    for direction in ("V2I", "I2V"):
        aligned = aligned_scores(source, generated, direction)
        if aligned is not None:
            report["aligned"][direction] = aligned
        gap = modality_gap(source, generated, direction)
        if gap is not None:
            report["modality_gap"][direction] = gap
    atomic_write_json(out_json, report)
    return report


def quality_tables(report: dict[str, Any]) -> list[Any]:
    """Rich tables of a quality report: aligned scores (with the grey baseline) and the modality gap."""
    from rich.table import Table

    tables = []
    if report.get("aligned"):
        table = Table(title=f"generated vs true counterpart ({report.get('aligned_source')})")
        for column in ("direction", "images", "SSIM", "grey SSIM", "PSNR dB", "grey PSNR", "L1", "grey L1"):
            table.add_column(column, justify="right")
        for direction, s in report["aligned"].items():
            table.add_row(direction, str(s["count"]), f"{s['ssim']:.3f}", f"{s['grey_ssim']:.3f}", f"{s['psnr']:.2f}",
                          f"{s['grey_psnr']:.2f}", f"{s['l1']:.3f}", f"{s['grey_l1']:.3f}")
        tables.append(table)
    if report.get("modality_gap"):
        table = Table(title="modality gap: mean distance to real target-modality images of the same identity")
        for column in ("direction", "features", "source", "generated", "closed", "real floor", "ids"):
            table.add_column(column, justify="right")
        for direction, spaces in report["modality_gap"].items():
            for space, v in spaces.items():
                table.add_row(direction, space, f"{v['source']:.4f}", f"{v['generated']:.4f}", f"{v['closed']:+.1%}",
                              f"{v.get('real_floor', float('nan')):.4f}", str(v["identities"]))
        tables.append(table)
    return tables
