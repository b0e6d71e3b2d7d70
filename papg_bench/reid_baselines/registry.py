"""Baseline name -> model builder and criterion. A new baseline is one module plus one line below.

A baseline that trains several networks also registers ``make_procedure``: given the
settings it returns a procedure (see :class:`~papg_bench.reid_baselines.trainer.Procedure`) or None for the
trainer's own one-network loop. :func:`network_count`, :func:`tested_model` and :func:`build_tested_model` are
how the trainer, ``evaluate`` and ``import-run`` build what a run tests, without knowing which baseline it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from papg_bench.errors import UserError
from papg_bench.reid_baselines import agw, cgrnet, dart
from papg_bench.reid_baselines.losses import ReIDCriterion


def _standard_criterion(cfg: Any, pool: Any) -> ReIDCriterion:
    return ReIDCriterion(cfg.label_smoothing, cfg.triplet_weight)


def _one_network(cfg: Any) -> None:
    return None


@dataclass(frozen=True)
class Baseline:
    name: str
    build_model: Callable[[Any, int], nn.Module]  # (config, number of training identities) -> one network
    make_criterion: Callable[[Any, Any], ReIDCriterion]  # (config, training pool) -> one network's loss
    description: str
    epochs: int = 81  # the released recipe's epochs: what --epochs means when not given
    make_procedure: Callable[[Any], Any] = _one_network  # config -> a several-network procedure, or None
    legacy_settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # for runs written before a field


BASELINES: dict[str, Baseline] = {
    "agw": Baseline("agw", agw.build, _standard_criterion, "AGW: non-local + GeM + WRT (Ye et al., TPAMI 2021)"),
    "cgrnet": Baseline("cgrnet", cgrnet.build, _standard_criterion,
                       "cross-modality graph reasoning over part nodes (after Feng et al., SPL 2021)"),
    "dart": Baseline("dart", **dart.REGISTRATION),
}


def get_baseline(name: str) -> Baseline:
    if name not in BASELINES:
        raise UserError(f"--baseline {name!r} is not known: choose one of {', '.join(BASELINES)}.")
    return BASELINES[name]


def with_epochs(baseline: Baseline, cfg: Any) -> Any:
    """``cfg`` with ``epochs`` set to the baseline's released count when it was not given."""
    return cfg if cfg.epochs is not None else dataclasses.replace(cfg, epochs=baseline.epochs)


def network_count(baseline: Baseline, cfg: Any) -> int:
    procedure = baseline.make_procedure(cfg)
    return 1 if procedure is None else int(procedure.networks)


def tested_model(baseline: Baseline, cfg: Any, networks: Sequence[nn.Module]) -> nn.Module:
    """What a run of ``baseline`` extracts test features with, made of its trained ``networks``."""
    procedure = baseline.make_procedure(cfg)
    if procedure is None:
        (network,) = networks
        return network
    return procedure.tested_model(list(networks))


def build_tested_model(baseline: Baseline, cfg: Any, num_classes: int) -> nn.Module:
    """A run's test model with fresh weights (for loading a checkpoint's ``model`` state into)."""
    networks = [baseline.build_model(cfg, num_classes) for _ in range(network_count(baseline, cfg))]
    return tested_model(baseline, cfg, networks)
