"""Datasets and protocols as registered objects: the registry's contract, and no dataset named elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from papg_bench.catalog import dataset_names, get_dataset, get_protocol, mode_titles, protocols
from papg_bench.data.dataset import Dataset
from papg_bench.errors import UserError
from papg_bench.protocols.protocol import Protocol

PACKAGE = Path(__file__).resolve().parents[1] / "papg_bench"


def _own_files(name: str) -> set[str]:
    return {f"data/{name}.py", f"protocols/{name}.py"}


# Modules that may name datasets: each dataset's own reader and protocol, the registry, synthvi (which renders
# those layouts) and the fixtures that write tiny trees in them for the tests.
ALLOWED = {"catalog.py", "data/fixtures.py"} | {f for n in dataset_names() for f in _own_files(n)}


def _allowed(rel: str) -> bool:
    return rel in ALLOWED or rel.startswith("data/synthvi")


def test_no_module_outside_a_datasets_own_files_names_a_dataset() -> None:
    names = "|".join(re.escape(n) for n in dataset_names())
    literal = re.compile(rf"""(["'])({names})\1""")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _allowed(rel):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_the_grep_would_catch_a_branch_on_a_dataset_name() -> None:
    names = "|".join(re.escape(n) for n in dataset_names())
    literal = re.compile(rf"""(["'])({names})\1""")
    assert literal.search('    if store.meta.get("dataset") == "regdb":')
    assert literal.search("protocol = 'sysu'")
    assert not literal.search('"sysu-cam3-cam2"')


@pytest.mark.parametrize("name", dataset_names())
def test_every_registered_dataset_keeps_the_contract(name: str) -> None:
    dataset = get_dataset(name)
    assert isinstance(dataset, Dataset) and dataset.name == name and dataset.title
    assert dataset.visible_cameras and dataset.infrared_cameras
    assert len(dataset.default_size) == 2
    protocol = dataset.protocol
    assert isinstance(protocol, Protocol) and get_protocol(protocol.family) is protocol
    assert protocol.modes and set(protocol.mode_groups) == set(protocol.modes)
    assert protocol.removal in ("none", "sysu-cam3-cam2", "same-identity-same-camera")
    for mode in protocol.modes:
        protocol.check_options(mode, protocol.shots[0], protocol.default_sampling)
        with pytest.raises(UserError):
            protocol.check_options(mode + "-not", protocol.shots[0], protocol.default_sampling)


def test_mode_names_are_unique_across_protocols() -> None:
    modes = [mode for protocol in protocols() for mode in protocol.modes]
    assert len(modes) == len(set(modes)) == len(mode_titles()) == len(mode_titles(long=True))


def test_unknown_dataset_and_protocol_are_one_clear_error() -> None:
    with pytest.raises(UserError, match="--dataset 'market'.*sysu"):
        get_dataset("market")
    with pytest.raises(UserError, match="protocol 'market'"):
        get_protocol("market")


def test_store_follows_the_dataset_it_was_prepared_from(tmp_path: Path) -> None:
    from papg_bench.data.fixtures import make_llcm_tree, make_regdb_tree, make_sysu_tree
    from papg_bench.data.layouts import read_layout
    from papg_bench.data.prepare import prepare_store
    from papg_bench.data.store import open_store

    makers = {"sysu": make_sysu_tree, "regdb": make_regdb_tree, "llcm": make_llcm_tree}
    for name, make in makers.items():
        src = make(tmp_path / f"src-{name}")
        prepare_store(read_layout(name, src), src, tmp_path / name, (32, 16), workers=1)
        store = open_store(tmp_path / name)
        assert store.dataset is get_dataset(name)
        train, test = store.in_split("train", 1), store.in_split("test", 1)
        assert train.any() and test.any() and not (train & test).any()
        train_ids = set(np.unique(store.pids[train]).tolist())
        assert train_ids.isdisjoint(np.unique(store.pids[test]).tolist())
