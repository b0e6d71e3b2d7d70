"""The losses each of DART's twin networks trains with (released ``run.py`` and ``loss.py``).

* Warm-up (before the first mixture fit): the mean identity cross-entropy over the batch, nothing else.
* Afterwards, with ``prob`` the clean probability of every image of the batch (computed by the *other*
  network): the soft identity loss ``sum(prob * CE) / n`` plus the robust triplet loss
  (``RobustTripletLoss_final``) on the pooled feature, margin ``dart_margin`` (0.3) and threshold
  ``dart_threshold`` (0.5).

The robust triplet, per anchor ``i`` whose probability reaches the threshold: a random positive ``p`` (same
label, not ``i``) and the nearest negative ``n``. When both are confident the pair is used as it is. When
``n`` is not confident and the network classifies it as ``i``'s identity (a probable false negative), the
positive distance becomes the mean of ``d(i, p)`` and ``d(i, n)`` and the negative is the nearest confident
negative among the next ten. When ``p`` is not confident (and ``n`` is, or is not a false negative), the
negative distance becomes that mean and the positive is redrawn until confident (at most five redraws).
When neither is confident and ``n`` is a false negative, the hinge is inverted. The loss is the mean hinge
``max(0, d_ap - d_an + margin)`` over the confident anchors (zero when there is none). The random choices
come from the ``rng`` given, so a run's draws are fixed by its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from papg_bench.reid_baselines.losses import ReIDCriterion, identity_loss, pairwise_distance

FALSE_NEGATIVE_SEARCH = 10  # further negatives tried for a confident one
POSITIVE_REDRAWS = 5  # further draws for a confident positive


@dataclass
class TripletChoice:
    """Per used anchor: the two indices averaged into its positive and negative distance, and the sign."""

    anchors: np.ndarray
    positive: np.ndarray  # (m, 2)
    negative: np.ndarray  # (m, 2)
    inverted: np.ndarray  # bool


def _first_or_last(candidates: np.ndarray, good: np.ndarray) -> int:
    """The first good candidate, else the last one (what a bounded search of the released code ends on)."""
    hit = np.flatnonzero(good)
    return int(candidates[hit[0]] if len(hit) else candidates[-1])


def choose_triplets(dist: np.ndarray, labels: np.ndarray, confident: np.ndarray, predicted: np.ndarray,
                    rng: np.random.Generator) -> TripletChoice:
    """The released robust triplet's choices for every confident anchor of a batch (see the module doc)."""
    anchors, positive, negative, inverted = [], [], [], []
    for i in np.flatnonzero(confident):
        same = labels == labels[i]
        others = np.flatnonzero(same & (np.arange(len(labels)) != i))
        negatives = np.flatnonzero(~same)
        if not len(others) or not len(negatives):
            continue  # no triplet for this anchor (never with DART's two views of each visible image)
        p = int(rng.choice(others))
        ranked = negatives[np.argsort(dist[i, negatives], kind="stable")]
        n = int(ranked[0])
        ap, an, flip = (p, p), (n, n), False
        false_negative = predicted[n] == labels[i]
        if confident[p] and not confident[n]:
            if false_negative and len(ranked) > 1:
                further = ranked[1:2 + FALSE_NEGATIVE_SEARCH]
                ap, an = (p, n), (_first_or_last(further, confident[further]),) * 2
        elif not confident[p]:
            if not confident[n] and false_negative:
                flip = True
            else:
                draws = rng.choice(np.flatnonzero(same), size=1 + POSITIVE_REDRAWS)
                ap, an = (_first_or_last(draws, (draws != i) & confident[draws]),) * 2, (p, n)
        anchors.append(i)
        positive.append(ap)
        negative.append(an)
        inverted.append(flip)
    shape = (len(anchors), 2)
    return TripletChoice(np.array(anchors, dtype=np.int64), np.array(positive, dtype=np.int64).reshape(shape),
                         np.array(negative, dtype=np.int64).reshape(shape), np.array(inverted, dtype=bool))


def robust_triplet(features: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, prob: torch.Tensor,
                   threshold: float, margin: float, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """The robust triplet loss of a batch and how many anchors it used."""
    dist = pairwise_distance(features)
    choice = choose_triplets(dist.detach().cpu().numpy(), labels.cpu().numpy(), (prob >= threshold).cpu().numpy(),
                             logits.detach().argmax(dim=1).cpu().numpy(), rng)
    if not len(choice.anchors):
        return dist.new_zeros(()), 0
    device = dist.device
    i = torch.as_tensor(choice.anchors, device=device)
    pos, neg = (torch.as_tensor(a, device=device) for a in (choice.positive, choice.negative))
    d_ap = (dist[i, pos[:, 0]] + dist[i, pos[:, 1]]) / 2
    d_an = (dist[i, neg[:, 0]] + dist[i, neg[:, 1]]) / 2
    hinge = torch.where(torch.as_tensor(choice.inverted, device=device), d_an - d_ap, d_ap - d_an)
    return (hinge + margin).clamp(min=0).mean(), len(choice.anchors)


class RobustCriterion(ReIDCriterion):
    """One twin network's loss: cross-entropy during the warm-up, then soft identity + robust triplet.

    ``clean`` holds, per training-pool row, the clean probability of each view (column 0 the first view,
    column 1 a visible image's channel-exchanged view; a 1-D array gives one probability per row).
    """

    def __init__(self, cfg: Any, pool: Any) -> None:
        super().__init__(cfg.label_smoothing, cfg.triplet_weight)
        self.threshold, self.margin = cfg.dart_threshold, cfg.dart_margin
        self.clean = np.ones((len(pool), 2), dtype=np.float64)
        self.active = False

    def __call__(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor, rows: torch.Tensor,
                 views: torch.Tensor | None = None,
                 rng: np.random.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        logits = outputs["logits"]
        if not self.active:
            loss_id = identity_loss(logits, labels, self.label_smoothing)
            return loss_id, {"loss_id": float(loss_id.detach()), "loss_triplet": 0.0}
        index = rows.cpu().numpy()
        if self.clean.ndim == 1:
            clean = self.clean[index]
        else:
            clean = self.clean[index, views.cpu().numpy() if views is not None else 0]
        prob = torch.as_tensor(clean, dtype=torch.float32, device=labels.device)
        loss_id = (prob * identity_loss(logits, labels, self.label_smoothing, "none")).sum() / len(prob)
        rng = rng if rng is not None else np.random.default_rng(0)
        loss_tri, used = robust_triplet(outputs["pooled"], logits, labels, prob, self.threshold, self.margin, rng)
        loss = loss_id + self.triplet_weight * loss_tri
        return loss, {"loss_id": float(loss_id.detach()), "loss_triplet": float(loss_tri.detach()),
                      "triplet_anchors": used / len(prob), "mean_clean": float(prob.mean())}

    def state_dict(self) -> dict:
        return {"clean": self.clean.copy(), "active": self.active}

    def load_state_dict(self, state: dict) -> None:
        self.clean = np.asarray(state["clean"], dtype=np.float64)
        self.active = bool(state["active"])
