"""The registry of datasets: a name -> the module holding its :class:`~papg_bench.data.dataset.Dataset`.

Adding a dataset is one reader module (its ``DATASET`` object), one protocol module (its ``PROTOCOL``)
and one line below. Modules are imported on first use, so a dataset costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from papg_bench.errors import UserError

if TYPE_CHECKING:
    from papg_bench.data.dataset import Dataset
    from papg_bench.protocols.protocol import Protocol

REGISTRY: dict[str, str] = {
    "sysu": "papg_bench.data.sysu",
    "regdb": "papg_bench.data.regdb",
    "llcm": "papg_bench.data.llcm",
}


def dataset_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_dataset(name: str, option: str = "--dataset") -> Dataset:
    """The registered dataset ``name``; an unknown name is one error naming ``option`` and the choices."""
    if name not in REGISTRY:
        raise UserError(f"{option} {name!r} is not a known dataset layout: choose one of {', '.join(REGISTRY)}.")
    dataset = importlib.import_module(REGISTRY[name]).DATASET
    if dataset.name != name:
        raise RuntimeError(f"{REGISTRY[name]}.DATASET is named {dataset.name!r}, registered as {name!r}")
    return dataset


def dataset_of(meta: Mapping[str, Any], where: object = "the store") -> Dataset:
    """The dataset a store (or generated store, run, record) was prepared from, by its ``dataset`` field."""
    name = meta.get("dataset")
    if not isinstance(name, str) or name not in REGISTRY:
        raise UserError(f"{where}: its meta.json names the dataset {name!r}, which is not one of "
                        f"{', '.join(REGISTRY)}: prepare the store again with `papg-bench prepare`.")
    return get_dataset(name)


def get_protocol(family: str) -> Protocol:
    """The protocol whose identifiers start with ``family`` (each dataset's protocol carries its own)."""
    for name in REGISTRY:
        protocol = get_dataset(name).protocol
        if protocol.family == family:
            return protocol
    families = ", ".join(get_dataset(n).protocol.family for n in REGISTRY)
    raise UserError(f"protocol {family!r} is not known: protocols exist for {families}.")


def protocols() -> tuple[Protocol, ...]:
    return tuple(get_dataset(name).protocol for name in REGISTRY)


def mode_titles(long: bool = False) -> dict[str, str]:
    """Every registered protocol's mode -> column title (``long``: the heading over the mode's columns)."""
    return {mode: title for p in protocols() for mode, title in (p.mode_groups if long else p.modes).items()}
