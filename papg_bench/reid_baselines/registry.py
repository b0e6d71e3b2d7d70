"""Baseline name -> model builder and criterion. A new baseline is one module plus one line below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from papg_bench.errors import UserError
from papg_bench.reid_baselines import agw, cgrnet, dart
from papg_bench.reid_baselines.losses import ReIDCriterion


def _standard_criterion(cfg: Any, pool: Any) -> ReIDCriterion:
    return ReIDCriterion(cfg.label_smoothing, cfg.triplet_weight)


@dataclass(frozen=True)
class Baseline:
    name: str
    build_model: Callable[[Any, int], nn.Module]  # (config, number of training identities) -> model
    make_criterion: Callable[[Any, Any], ReIDCriterion]  # (config, training pool) -> criterion
    description: str


BASELINES: dict[str, Baseline] = {
    "agw": Baseline("agw", agw.build, _standard_criterion, "AGW: non-local + GeM + WRT (Ye et al., TPAMI 2021)"),
    "cgrnet": Baseline("cgrnet", cgrnet.build, _standard_criterion,
                       "cross-modality graph reasoning over part nodes (after Feng et al., SPL 2021)"),
    "dart": Baseline("dart", dart.build, dart.DARTCriterion,
                     "AGW with DART-style clean-probability weighting (after Yang et al., CVPR 2022)"),
}


def get_baseline(name: str) -> Baseline:
    if name not in BASELINES:
        raise UserError(f"--baseline {name!r} is not known: choose one of {', '.join(BASELINES)}.")
    return BASELINES[name]
