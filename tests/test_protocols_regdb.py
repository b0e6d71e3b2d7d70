"""RegDB query/gallery: the test lists of one trial, both directions."""

from __future__ import annotations

from pathlib import Path

import pytest

from papg_bench.data.fixtures import make_regdb_tree
from papg_bench.errors import UserError
from papg_bench.protocols import regdb


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_regdb_tree(tmp_path_factory.mktemp("regdb") / "RegDB", ids=6, images_per_modality=2, trials=2)


def _listed(root: Path, name: str) -> list[str]:
    return [line.split()[0] for line in (root / "idx" / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("trial", [1, 2])
def test_directions_use_the_test_lists_of_the_trial(root, trial):
    q, g = regdb.query_gallery(root, trial=trial, direction="v2t")
    assert q.paths == _listed(root, f"test_visible_{trial}.txt")
    assert g.paths == _listed(root, f"test_thermal_{trial}.txt")
    assert set(q.cams.tolist()) == {1} and set(g.cams.tolist()) == {2}
    assert q.pids.tolist() == [int(p.split("/")[1]) for p in q.paths]
    q2, g2 = regdb.query_gallery(root, trial=trial, direction="t2v")
    assert q2.paths == g.paths and g2.paths == q.paths
    assert set(q2.cams.tolist()) == {2} and set(g2.cams.tolist()) == {1}


@pytest.mark.parametrize(("options", "fragment"), [
    ({"direction": "v2v"}, "direction"),
    ({"trial": 7}, "test_visible_7.txt is missing"),
])
def test_bad_options(root, options, fragment):
    with pytest.raises(UserError, match=fragment):
        regdb.query_gallery(root, **options)


def test_root_not_a_folder(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        regdb.query_gallery(tmp_path / "none")


def test_protocol_identifiers():
    assert regdb.protocol_id("v2t", [1]) == "regdb/v2t/trial-1/v1"
    assert regdb.protocol_id("t2v", list(range(1, 11))) == "regdb/t2v/trials-1-10/v1"
    assert regdb.protocol_id("t2v", [1, 3], rerank=True) == "regdb/t2v/trials-1+3/rerank/v1"
