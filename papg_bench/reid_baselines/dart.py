"""DART (Yang et al., "Learning with twin noisy labels for visible-infrared person re-identification",
CVPR 2022) on the AGW network, in two variants (``dart_variant``):

* ``twin`` (the ``paper`` preset): the released ``run.py`` of ``XLearning-SCU/2022-CVPR-DART``: two AGW
  networks, each trained on the clean probabilities the other one computes from its per-sample losses with
  scikit-learn's Gaussian mixture, the soft identity loss and the robust triplet loss; the test feature is
  the mean of both networks' (:mod:`~papg_bench.reid_baselines.dart_twin`,
  :mod:`~papg_bench.reid_baselines.dart_losses`). ``docs/presets.md`` lists what still differs.
* ``single``: papg-bench's earlier one-network weighting, after the paper's idea, kept as an option (below).

The single variant: after ``dart_warmup`` epochs of plain AGW training, every epoch starts with a pass over
the training pool (real and generated images, no augmentation, eval mode) that records each image's
identity cross-entropy. Per modality, the losses (min-max normalised) are fitted with a two-component 1-D
Gaussian mixture (:func:`fit_gmm_1d`, ``dart_gmm_iterations`` EM steps); an image's clean probability is the
posterior of the low-loss component. During the epoch, the identity loss of each image is weighted by its
clean probability, and the triplet loss weights every pair by the product of its two sides' clean
probabilities and every anchor by its own. The number of generated images whose clean probability ends
below ``dart_threshold`` is logged every epoch and stored in the run's summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from papg_bench.reid_baselines.agw import AGW
from papg_bench.reid_baselines.dart_losses import RobustCriterion
from papg_bench.reid_baselines.dart_twin import TwinProcedure, image_counts, min_max
from papg_bench.reid_baselines.losses import ReIDCriterion, identity_loss, weighted_regularized_triplet


@dataclass(frozen=True)
class GaussianMixture1D:
    means: np.ndarray  # (2,)
    variances: np.ndarray  # (2,)
    weights: np.ndarray  # (2,)

    def responsibilities(self, x: np.ndarray) -> np.ndarray:
        """N x 2 posterior probabilities of each component."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
        log_p = -0.5 * ((x - self.means) ** 2 / self.variances + np.log(2 * np.pi * self.variances))
        log_p = log_p + np.log(self.weights)
        log_p -= log_p.max(axis=1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(axis=1, keepdims=True)


def fit_gmm_1d(values: np.ndarray, iterations: int = 20, reg_var: float = 5e-4) -> GaussianMixture1D:
    """Two-component Gaussian mixture of 1-D ``values`` by EM, initialised at the 10th/90th percentiles."""
    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    lo, hi = np.percentile(x, [10, 90])
    if hi - lo < 1e-12:
        hi = lo + 1e-3
    means = np.array([lo, hi])
    variances = np.full(2, x.var() + reg_var)
    weights = np.array([0.5, 0.5])
    for _ in range(iterations):
        resp = GaussianMixture1D(means, variances, weights).responsibilities(x)
        nk = resp.sum(axis=0) + 1e-10
        weights = nk / nk.sum()
        means = (resp * x).sum(axis=0) / nk
        variances = (resp * (x - means) ** 2).sum(axis=0) / nk + reg_var
    return GaussianMixture1D(means, variances, weights)


def clean_probability(losses: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Posterior of the low-loss component for each loss (losses min-max normalised first)."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size < 2 or np.ptp(losses) < 1e-12:
        return np.ones_like(losses)
    normalised = min_max(losses)
    gmm = fit_gmm_1d(normalised, iterations)
    return gmm.responsibilities(normalised)[:, int(np.argmin(gmm.means))]


class DARTCriterion(ReIDCriterion):
    """AGW's losses weighted by per-image clean probabilities (after the warm-up epochs)."""

    def __init__(self, cfg: Any, pool: Any) -> None:
        super().__init__(cfg.label_smoothing, cfg.triplet_weight)
        self.warmup = cfg.dart_warmup
        self.iterations = cfg.dart_gmm_iterations
        self.threshold = cfg.dart_threshold
        self.pool = pool
        self.clean = np.ones(len(pool), dtype=np.float64)
        self.active = False
        self.last_stats: dict[str, Any] = {}

    def before_epoch(self, trainer: Any, epoch: int) -> dict[str, float]:
        if epoch < self.warmup:
            return {}
        losses = trainer.per_sample_losses()
        clean = np.ones(len(self.pool), dtype=np.float64)
        for modality in np.unique(self.pool.modalities):
            rows = np.flatnonzero(self.pool.modalities == modality)
            clean[rows] = clean_probability(losses[rows], self.iterations)
        self.clean, self.active = clean, True
        self.last_stats = {"epoch": epoch, "threshold": self.threshold,
                           **image_counts(clean, self.pool, self.threshold)}
        return {"dart_generated_low_clean": float(self.last_stats["generated_low_clean"]),
                "dart_real_low_clean": float(self.last_stats["real_low_clean"])}

    def __call__(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
                 rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.active:
            return super().__call__(outputs, labels, rows)
        clean = torch.as_tensor(self.clean[rows.cpu().numpy()], dtype=torch.float32, device=labels.device)
        loss_id = (clean * identity_loss(outputs["logits"], labels, self.label_smoothing, "none")).mean()
        pair = clean.view(-1, 1) * clean.view(1, -1)
        per_anchor = weighted_regularized_triplet(outputs["pooled"], labels, pair_weights=pair, reduction="none")
        loss_tri = (clean * per_anchor).mean()
        loss = loss_id + self.triplet_weight * loss_tri
        return loss, {"loss_id": float(loss_id.detach()), "loss_triplet": float(loss_tri.detach()),
                      "mean_clean": float(clean.mean())}

    def state_dict(self) -> dict:
        return {"clean": self.clean.copy(), "active": self.active, "last_stats": dict(self.last_stats)}

    def load_state_dict(self, state: dict) -> None:
        self.clean = np.asarray(state["clean"], dtype=np.float64)
        self.active = bool(state["active"])
        self.last_stats = dict(state.get("last_stats", {}))

    def summary(self) -> dict:
        return {"dart": self.last_stats} if self.last_stats else {"dart": {"note": "warm-up only: no fit yet"}}


def build(cfg: Any, num_classes: int) -> AGW:
    """One network (each of the twins is the ``paper`` AGW model)."""
    return AGW(cfg, num_classes)


def make_criterion(cfg: Any, pool: Any) -> ReIDCriterion:
    """The loss one network trains with: the twin's robust losses, or the single variant's weighting."""
    return DARTCriterion(cfg, pool) if cfg.dart_variant == "single" else RobustCriterion(cfg, pool)


def make_procedure(cfg: Any) -> TwinProcedure | None:
    return None if cfg.dart_variant == "single" else TwinProcedure(cfg)


REGISTRATION: dict[str, Any] = {
    "build_model": build, "make_criterion": make_criterion, "make_procedure": make_procedure,
    "epochs": 100,  # the released run.py trains epochs 0-99
    "legacy_settings": {"dart_variant": "single"},  # runs written before the twin were the single variant
    "description": "DART: twin AGW networks with co-selected clean probabilities (Yang et al., CVPR 2022)",
}
