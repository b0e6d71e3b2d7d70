"""Identity cross-entropy and the weighted regularized triplet loss (AGW), per sample when asked.

Both losses take optional per-sample weights (DART's clean probabilities); the triplet also takes
per-pair weights, which scale each pair's share of the softmax weighting of positive and negative
distances. Without weights both reduce exactly to the AGW reference losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distance(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of ``x`` (as the AGW reference: sqrt of clamped squares)."""
    x = x.float()
    sq = x.pow(2).sum(dim=1, keepdim=True)
    dist = sq + sq.t() - 2.0 * (x @ x.t())
    return dist.clamp(min=1e-12).sqrt()


def _softmax_weights(dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    max_v = torch.max(dist * mask, dim=1, keepdim=True)[0]
    diff = dist - max_v
    z = torch.sum(torch.exp(diff) * mask, dim=1, keepdim=True) + 1e-6
    return torch.exp(diff) * mask / z


def weighted_regularized_triplet(features: torch.Tensor, labels: torch.Tensor,
                                 pair_weights: torch.Tensor | None = None,
                                 reduction: str = "mean") -> torch.Tensor:
    """WRT loss (Ye et al., TPAMI 2021): softmax-weighted positive/negative distances, soft margin.

    ``pair_weights`` (B x B, in [0, 1]) multiplies each pair's mask, so an unreliable pair counts less
    in both the positive and the negative weighting. ``reduction='none'`` gives one loss per anchor.
    """
    dist = pairwise_distance(features)
    same = labels.view(-1, 1).eq(labels.view(1, -1))
    is_pos, is_neg = same.float(), (~same).float()
    if pair_weights is not None:
        is_pos, is_neg = is_pos * pair_weights, is_neg * pair_weights
    dist_ap, dist_an = dist * is_pos, dist * is_neg
    furthest_positive = torch.sum(dist_ap * _softmax_weights(dist_ap, is_pos), dim=1)
    closest_negative = torch.sum(dist_an * _softmax_weights(-dist_an, is_neg), dim=1)
    per_anchor = F.softplus(furthest_positive - closest_negative)  # SoftMarginLoss with target 1
    if reduction == "none":
        return per_anchor
    return per_anchor.mean()


def identity_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing, reduction=reduction)


class ReIDCriterion:
    """AGW's loss: identity CE on the BNNeck logits + WRT triplet on the pooled feature.

    A criterion is called with the model's outputs, the labels and the batch's training rows; it returns
    the loss and the parts to log. ``before_epoch`` / ``state_dict`` let robust criteria (DART) keep state
    across epochs and checkpoints.
    """

    def __init__(self, label_smoothing: float = 0.0, triplet_weight: float = 1.0) -> None:
        self.label_smoothing = label_smoothing
        self.triplet_weight = triplet_weight

    def __call__(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
                 rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss_id = identity_loss(outputs["logits"], labels, self.label_smoothing)
        loss_tri = weighted_regularized_triplet(outputs["pooled"], labels)
        loss = loss_id + self.triplet_weight * loss_tri
        return loss, {"loss_id": float(loss_id.detach()), "loss_triplet": float(loss_tri.detach())}

    def before_epoch(self, trainer: object, epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def summary(self) -> dict:
        return {}
