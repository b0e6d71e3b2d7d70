"""Figures written as PNG and PDF: CMC curves with the across-trial band, the generator's sample grid,
and the distributions of cross-modality distances for same- and different-identity pairs.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend state), and each
file is written under a temporary name and renamed, so a crash never leaves half a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from papg_bench.errors import UserError
from papg_bench.workspace import atomic_path

FORMATS = ("png", "pdf")
GRID_KEYS = ("real_v", "fake_i", "real_i", "fake_v")
GRID_TITLES = ("real V", "generated I", "real I", "generated V")


def save_figure(fig: Figure, out_stem: Path | str, dpi: int = 150) -> list[Path]:
    """Write ``<out_stem>.png`` and ``<out_stem>.pdf`` atomically; returns both paths."""
    FigureCanvasAgg(fig)
    paths = []
    for ext in FORMATS:
        path = Path(f"{out_stem}.{ext}")
        # no creation date in the PDF, so the same numbers give the same file (results/ is checked in)
        metadata = {"CreationDate": None} if ext == "pdf" else None
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


# --- CMC --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CmcSeries:
    """One line of a CMC plot: ``runs`` is (runs x ranks) matching rates in percent.

    Lines of the same ``group`` (a baseline) share a colour and differ by ``linestyle``.
    """

    label: str
    runs: np.ndarray
    group: str = ""
    linestyle: Any = "-"


def cmc_plot(series: Sequence[CmcSeries], out_stem: Path | str, *, title: str = "", max_rank: int = 20) -> list[Path]:
    """CMC curves (mean over runs) with a +-std band over runs; writes PNG and PDF."""
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(s.group for s in series))
    colors = [f"C{i % 10}" for i in range(len(groups))]
    for s in series:
        runs = np.atleast_2d(np.asarray(s.runs, dtype=float))[:, :max_rank]
        ranks = np.arange(1, runs.shape[1] + 1)
        mean, std = runs.mean(axis=0), runs.std(axis=0)
        color = colors[groups.index(s.group)]
        ax.plot(ranks, mean, color=color, linestyle=s.linestyle, marker="o", markersize=2.5,
                label=f"{s.label} (n={runs.shape[0]})")
        ax.fill_between(ranks, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_xlim(1, max_rank)
    ax.set_xticks([1, *range(5, max_rank + 1, 5)])
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if series:
        ax.legend(loc="lower right", fontsize=8, title="mean ± std over n runs", title_fontsize=8)
    return save_figure(fig, out_stem)


# --- generator sample grid ---------------------------------------------------------------------------


def _as_rgb(image: Any, where: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise UserError(f"sample_grid: {where} must be a uint8 H x W x 3 array, got {array.dtype} {array.shape}.")
    return array


def sample_grid(
    rows: Sequence[Mapping[str, Any]],
    out_stem: Path | str,
    *,
    column_titles: Sequence[str] = GRID_TITLES,
    title: str = "",
) -> list[Path]:
    """The generator's sample grid, one row per person: real V | generated I | real I | generated V.

    Each row maps ``real_v``, ``fake_i``, ``real_i``, ``fake_v`` to uint8 H x W x 3 arrays (H x W is
    taken as grey); a missing or None entry leaves its cell blank. An optional ``title`` per row is
    written left of it. Writes ``<out_stem>.png`` and ``.pdf`` and returns both paths.
    """
    if not rows:
        raise UserError("sample_grid: no rows to draw; pass at least one dict with real_v/fake_i/real_i/fake_v.")
    images = [[None if row.get(k) is None else _as_rgb(row[k], f"row {i} '{k}'") for k in GRID_KEYS]
              for i, row in enumerate(rows)]
    shapes = [img.shape for cells in images for img in cells if img is not None]
    if not shapes:
        raise UserError("sample_grid: every image is missing; pass uint8 arrays under real_v/fake_i/real_i/fake_v.")
    aspect = max(w / h for h, w, _ in shapes)
    cell_h = 1.8
    fig = Figure(figsize=(len(GRID_KEYS) * cell_h * aspect + 0.6, len(rows) * cell_h + 0.5))
    axes = fig.subplots(len(rows), len(GRID_KEYS), squeeze=False)
    for r, (row, cells) in enumerate(zip(rows, images, strict=True)):
        for c, image in enumerate(cells):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if image is not None:
                ax.imshow(image, interpolation="nearest")
            if r == 0:
                ax.set_title(column_titles[c], fontsize=9)
            if c == 0 and row.get("title"):
                ax.set_ylabel(str(row["title"]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    return save_figure(fig, out_stem)


# --- cross-modality distance distributions -----------------------------------------------------------


@dataclass(frozen=True)
class DistanceSummary:
    """Positive (same identity) and negative (different identity) pair distances of one model.

    ``overlap`` is the overlap coefficient of the two normalized histograms (0: separable, 1: identical).
    """

    mean_pos: float
    mean_neg: float
    overlap: float
    n_pos: int
    n_neg: int


def cross_distances(query: Any, gallery: Any, metric: str = "cosine") -> np.ndarray:
    """Query x gallery distances: ``cosine`` (1 - cosine similarity) or ``euclidean``."""
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise UserError(f"features must be 2-D with the same width; got query {q.shape} and gallery {g.shape}.")
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return 1.0 - q @ g.T
    if metric == "euclidean":
        sq = (q**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2.0 * q @ g.T
        return np.sqrt(np.maximum(sq, 0.0))
    raise UserError(f"distance metric {metric!r} is not one of cosine, euclidean.")


def _model_distances(label: str, item: Any, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(item, Mapping):
        if "distances" in item:
            item = (item["distances"], item["query_pids"], item["gallery_pids"])
        else:
            item = (item["query_features"], item["query_pids"], item["gallery_features"], item["gallery_pids"])
    item = tuple(item)
    if len(item) == 4:
        dist, q_pids, g_pids = cross_distances(item[0], item[2], metric), item[1], item[3]
    elif len(item) == 3:
        dist, q_pids, g_pids = np.asarray(item[0], dtype=np.float64), item[1], item[2]
    else:
        raise UserError(f"distance plot, model {label!r}: give (query features, query pids, gallery features, "
                        "gallery pids) or (distance matrix, query pids, gallery pids).")
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    if dist.shape != (q_pids.size, g_pids.size):
        raise UserError(f"distance plot, model {label!r}: distances are {dist.shape} but there are "
                        f"{q_pids.size} query and {g_pids.size} gallery pids.")
    return dist, q_pids, g_pids


def pair_distances(distances: Any, query_pids: Any, gallery_pids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a query x gallery distance matrix into same-identity and different-identity pair distances."""
    dist = np.asarray(distances, dtype=np.float64)
    same = np.asarray(query_pids).ravel()[:, None] == np.asarray(gallery_pids).ravel()[None, :]
    return dist[same], dist[~same]


def _kde(ax: Any, values: np.ndarray, grid: np.ndarray, color: str) -> None:
    from scipy.stats import gaussian_kde

    if values.size < 2 or np.ptp(values) == 0:
        return
    # a subsample keeps the KDE fast on a million negative pairs; the histogram uses every pair
    sample = np.random.default_rng(0).choice(values, size=min(values.size, 5000), replace=False)
    try:
        ax.plot(grid, gaussian_kde(sample)(grid), color=color, linewidth=1.2)
    except np.linalg.LinAlgError:
        return


def distance_distributions(
    models: Mapping[str, Any],
    out_stem: Path | str,
    *,
    metric: str = "cosine",
    bins: int = 60,
    title: str = "",
) -> dict[str, DistanceSummary]:
    """Overlaid histograms (+ KDE) of positive vs negative cross-modality pair distances, one panel per model.

    ``models`` maps a label (e.g. "AGW", "AGW + PAPG") to ``(query_features, query_pids,
    gallery_features, gallery_pids)`` or ``(distances, query_pids, gallery_pids)`` (or a dict with
    those names: query_features, query_pids, gallery_features, gallery_pids, distances). Panels share
    the bins, so they compare directly. Writes ``<out_stem>.png`` and ``.pdf``; returns per-label summaries.
    """
    if not models:
        raise UserError("distance plot: no models given.")
    pairs = {}
    for label, item in models.items():
        pos, neg = pair_distances(*_model_distances(label, item, metric))
        if pos.size == 0 or neg.size == 0:
            raise UserError(f"distance plot, model {label!r}: needs both same-identity and different-identity "
                            "pairs; check that query and gallery share identities.")
        pairs[label] = (pos, neg)
    low = min(min(p.min(), n.min()) for p, n in pairs.values())
    high = max(max(p.max(), n.max()) for p, n in pairs.values())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    grid = np.linspace(low, high, 200)
    width = edges[1] - edges[0]

    fig = Figure(figsize=(4.2 * len(pairs), 3.4))
    axes = fig.subplots(1, len(pairs), squeeze=False, sharey=True)[0]
    summaries = {}
    for ax, (label, (pos, neg)) in zip(axes, pairs.items(), strict=True):
        hist_pos, _ = np.histogram(pos, bins=edges, density=True)
        hist_neg, _ = np.histogram(neg, bins=edges, density=True)
        overlap = float(np.minimum(hist_pos, hist_neg).sum() * width)
        summary = DistanceSummary(float(pos.mean()), float(neg.mean()), overlap, int(pos.size), int(neg.size))
        summaries[label] = summary
        ax.hist(pos, bins=edges, density=True, alpha=0.45, color="C2", label=f"same identity ({pos.size:,})")
        ax.hist(neg, bins=edges, density=True, alpha=0.45, color="C3", label=f"different identity ({neg.size:,})")
        _kde(ax, pos, grid, "C2")
        _kde(ax, neg, grid, "C3")
        ax.axvline(summary.mean_pos, color="C2", linestyle=":", linewidth=1)
        ax.axvline(summary.mean_neg, color="C3", linestyle=":", linewidth=1)
        ax.set_title(label)
        ax.set_xlabel(f"cross-modality {metric} distance (query to gallery)")
        ax.text(0.02, 0.97, f"mean pos {summary.mean_pos:.3f}\nmean neg {summary.mean_neg:.3f}\n"
                f"overlap {summary.overlap:.3f}", transform=ax.transAxes, va="top", fontsize=8)
        ax.legend(loc="upper right", fontsize=7)
    axes[0].set_ylabel("density")
    if title:
        fig.suptitle(title)
    save_figure(fig, out_stem)
    return summaries
