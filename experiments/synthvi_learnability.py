"""Is the synthvi modality gap real and learnable? Nearest-neighbour rank-1 on raw pixels vs a small model.

    python experiments/synthvi_learnability.py [--preset tiny] [--seed 0] [--steps 600]

Raw pixels (16-pixel-high thumbnails) should retrieve the same identity well above chance within a
modality (across cameras) and close to chance across modalities. A few conv layers trained briefly on
the CPU (a fixed number of steps) to turn visible images into their infrared counterparts, on the
training identities only, should then come much closer to the true infrared counterparts of unseen
identities than the visible image turned grey (``translated_l1`` against ``grey_l1``). Infrared queries
against the translated visible gallery, still compared as raw pixels, are reported too; whether they beat
raw pixels depends on the seed (docs/reproducibility.md), so that figure is not a verdict.
Deliberately self-contained (the real protocols live in papg_bench.protocols).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from papg_bench.data.sysu import read_sysu


@dataclass
class Images:
    pixels: np.ndarray  # N x H x W x 3 uint8
    pids: np.ndarray
    cams: np.ndarray
    infrared: np.ndarray  # bool
    train: np.ndarray  # bool: train + val identities
    twins: np.ndarray  # N x H x W x 3 uint8: each image's counterpart in the other modality


def read_rgb(path: Path) -> np.ndarray:
    """An image file's pixels as H x W x 3 uint8 RGB."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_sysu(root: Path) -> Images:
    listing = read_sysu(root)
    root = Path(root)
    return Images(
        pixels=np.stack([read_rgb(root / r.path) for r in listing.records]),
        twins=np.stack([read_rgb(root / "synthvi" / "counterparts" / r.path) for r in listing.records]),
        pids=np.array([r.pid for r in listing.records]),
        cams=np.array([r.cam for r in listing.records]),
        infrared=np.array([r.modality == "I" for r in listing.records]),
        train=np.array([r.split in ("train", "val") for r in listing.records]),
    )


def rank1(query: np.ndarray, gallery: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
          exclude: np.ndarray | None = None) -> float:
    """Share of queries whose nearest gallery feature (cosine) has the same identity.

    ``exclude`` (queries x gallery, bool) removes pairs from the ranking, e.g. the same camera.
    """
    # float64, so that BLAS's thread count cannot flip a near tie
    q = query.astype(np.float64) / np.linalg.norm(query.astype(np.float64), axis=1, keepdims=True)
    g = gallery.astype(np.float64) / np.linalg.norm(gallery.astype(np.float64), axis=1, keepdims=True)
    sim = q @ g.T
    if exclude is not None:
        sim = np.where(exclude, -np.inf, sim)
    best = sim.argmax(axis=1)
    return float(np.mean(g_pids[best] == q_pids))


def pool(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of N x H x W x C images."""
    n, h, w, c = pixels.shape
    x = pixels[:, : h // factor * factor, : w // factor * factor].astype(np.float32)
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def raw_features(pixels: np.ndarray) -> np.ndarray:
    """Raw pixels of a 16-pixel-high thumbnail (block averages), mean-centred per image."""
    x = pool(pixels, max(1, pixels.shape[1] // 16))
    x = x.reshape(len(x), -1)
    return x - x.mean(axis=1, keepdims=True)


def chance(g_pids: np.ndarray, q_pids: np.ndarray) -> float:
    """Expected rank-1 of a random gallery pick."""
    counts = {p: np.mean(g_pids == p) for p in np.unique(q_pids)}
    return float(np.mean([counts[p] for p in q_pids]))


def retrieval(feats: np.ndarray, data: Images) -> dict[str, float]:
    """Rank-1 on the test identities: within each modality across cameras, and IR -> visible."""
    test = ~data.train
    f, pids, cams, ir = feats[test], data.pids[test], data.cams[test], data.infrared[test]
    vis_idx, ir_idx = np.flatnonzero(~ir), np.flatnonzero(ir)
    result = {}
    for name, idx in (("visible_to_visible", vis_idx), ("infrared_to_infrared", ir_idx)):
        same_cam = cams[idx][:, None] == cams[idx][None, :]
        valid = np.array([np.any((pids[idx] == pids[i]) & ~same_cam[k]) for k, i in enumerate(idx)])
        q = idx[valid]
        result[name] = rank1(f[q], f[idx], pids[q], pids[idx], exclude=same_cam[valid])
    result["infrared_to_visible"] = rank1(f[ir_idx], f[vis_idx], pids[ir_idx], pids[vis_idx])
    result["chance_infrared_to_visible"] = chance(pids[vis_idx], pids[ir_idx])
    return result


def train_translator(data: Images, steps: int = 600, seed: int = 0, batch_size: int = 16) -> object:
    """A few conv layers mapping a visible image to its infrared counterpart (L1), on train + val ids."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    idx = np.flatnonzero(data.train)
    visible = np.where(data.infrared[idx, None, None, None], data.twins[idx], data.pixels[idx])
    infrared = np.where(data.infrared[idx, None, None, None], data.pixels[idx], data.twins[idx])[..., 0]
    x_all = torch.from_numpy(visible).permute(0, 3, 1, 2).float() / 255.0
    y_all = torch.from_numpy(infrared)[:, None].float() / 255.0
    model = nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(),
        nn.Conv2d(24, 1, 1), nn.Sigmoid(),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = torch.from_numpy(gen.choice(len(idx), size=min(batch_size, len(idx)), replace=False))
        loss = (model(x_all[batch]) - y_all[batch]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def translate(model: object, pixels: np.ndarray) -> np.ndarray:
    """Visible uint8 images -> predicted infrared, as 3 equal channels (like the infrared images)."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
        y = model(x)[:, 0].numpy()  # type: ignore[operator]
    return np.repeat((y * 255.0)[..., None], 3, axis=-1)


def learnability(root: Path, steps: int = 600, seed: int = 0) -> dict[str, float]:
    """Rank-1 figures on the test identities of a SYSU-layout synthvi root (see the module doc)."""
    data = load_sysu(root)
    result = retrieval(raw_features(data.pixels), data)
    start = time.perf_counter()
    model = train_translator(data, steps=steps, seed=seed)
    result["train_seconds"] = time.perf_counter() - start
    test = ~data.train
    ir = test & data.infrared
    vis = test & ~data.infrared
    predicted = translate(model, data.pixels[vis])
    # how far the translation is from the true counterparts, against the visible image turned grey
    truth = data.twins[vis][..., 0].astype(np.float64)
    result["translated_l1"] = float(np.abs(predicted[..., 0] - truth).mean() / 255.0)
    grey = data.pixels[vis].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    result["grey_l1"] = float(np.abs(grey - truth).mean() / 255.0)
    result["infrared_to_translated_visible"] = rank1(
        raw_features(data.pixels[ir]), raw_features(predicted), data.pids[ir], data.pids[vis])
    # the ceiling of a perfect translation: the true infrared counterparts of the visible gallery
    result["infrared_to_true_counterparts"] = rank1(
        raw_features(data.pixels[ir]), raw_features(data.twins[vis]), data.pids[ir], data.pids[vis])
    return result


def main() -> None:
    from papg_bench.data.synthvi import synthesize
    from papg_bench.data.synthvi_materials import DEFAULT_INFRARED, INFRARED_RESPONSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--infrared", default=DEFAULT_INFRARED, choices=sorted(INFRARED_RESPONSES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(Path(tmp) / "sysu", "sysu", preset=args.preset, seed=args.seed, infrared=args.infrared).root
        figures = learnability(root, steps=args.steps, seed=args.seed)
    print(" ".join(f"{k}={v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
