"""The re-identification head layers AGW, CGRNet and DART share: GeM pooling, the BNNeck and the classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from papg_bench.errors import UserError

GEM_FORMS = ("released", "clamped")


def gem_pool(x: torch.Tensor, p: float, eps: float = 1e-6, parts: int | None = None) -> torch.Tensor:
    """``mean(max(x, eps)^p)^(1/p)`` over each B x C map (-> B x C), or over each of ``parts`` horizontal
    stripes (-> B x C x parts x 1, stripe bounds as :func:`torch.nn.functional.adaptive_avg_pool2d`)."""
    x = x.float().clamp(min=eps).pow(p)
    if parts is None:
        return x.flatten(2).mean(-1).pow(1.0 / p)
    return F.adaptive_avg_pool2d(x, (parts, 1)).pow(1.0 / p)


class GeM(nn.Module):
    """Generalized-mean pooling with a fixed exponent (AGW: p = 3).

    ``form="released"``: ``(mean(x^p) + 1e-12)^(1/p)`` as the released AGW code (the inputs follow a
    ReLU); ``"clamped"``: ``mean(max(x, 1e-6)^p)^(1/p)``.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, form: str = "clamped") -> None:
        super().__init__()
        if form not in GEM_FORMS:
            raise UserError(f"--gem-form {form!r}: choose released (the AGW code) or clamped.")
        self.p, self.eps, self.form = p, eps, form

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "released":
            return (x.float().pow(self.p).flatten(2).mean(-1) + 1e-12).pow(1.0 / self.p)
        return gem_pool(x, self.p, self.eps)


def bnneck(dim: int) -> nn.BatchNorm1d:
    """The BNNeck: batch norm with weights N(1, 0.01) and a bias frozen at zero."""
    bn = nn.BatchNorm1d(dim)
    nn.init.normal_(bn.weight, 1.0, 0.01)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)
    return bn


def classifier(dim: int, num_classes: int) -> nn.Linear:
    """The bias-free identity classifier, weights N(0, 0.001)."""
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, 0.0, 0.001)
    return fc
