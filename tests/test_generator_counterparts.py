"""``generate --counterparts``: the true counterparts as a generated store (synthvi's renders, RegDB's
co-captured pairs), which the baselines' ``--augment papg`` reads like a generator's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reid_helpers import TINY

from papg_bench.cli import main
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import load_resized, prepare_store
from papg_bench.data.store import open_store
from papg_bench.data.synthvi import synthesize
from papg_bench.errors import UserError
from papg_bench.generators.counterparts import write_counterparts
from papg_bench.generators.pairing import training_rows
from papg_bench.reid_baselines.run import train_run
from papg_bench.training import torch_threads
from papg_bench.workspace import Workspace

SIZE = (64, 32)


def _workspace(base: Path, layout: str) -> Workspace:
    root = synthesize(base / f"synthvi-{layout}", layout, preset="tiny", seed=0, workers=1).root
    ws = Workspace(base / "work")
    prepare_store(read_layout(layout, root), root, ws.dataset_dir(layout), SIZE, workers=1)
    return ws


@pytest.fixture(scope="module")
def sysu_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return _workspace(tmp_path_factory.mktemp("counterparts-sysu"), "sysu")


def test_sysu_counterparts_are_the_true_renders(sysu_ws: Workspace) -> None:
    result = write_counterparts(sysu_ws, "sysu")
    assert result.status == "done"
    store = open_store(sysu_ws.dataset_dir("sysu"))
    generated = open_store(result.path)
    rows = training_rows(store)
    assert len(generated) == len(rows)
    cols = generated.columns
    assert sorted(cols["source_row"].tolist()) == sorted(rows.tolist())
    source_modality = store.modalities[cols["source_row"]]
    assert ((cols["direction"] == "V2I") == (source_modality == "V")).all()
    assert (generated.modalities != source_modality).all()
    assert (generated.pids == store.pids[cols["source_row"]]).all()
    folder = Path(store.meta["source_root"]) / "synthvi" / "counterparts"
    for k in (0, len(generated) // 2, len(generated) - 1):
        source_path = store.paths[cols["source_row"][k]]
        assert np.array_equal(generated.images[k], load_resized(folder / source_path, *SIZE))
        assert not np.array_equal(generated.images[k], store.images[cols["source_row"][k]])
    assert write_counterparts(sysu_ws, "sysu").status == "reused"


def test_baseline_trains_on_counterparts_and_cli(sysu_ws: Workspace, capsys: pytest.CaptureFixture) -> None:
    work = str(sysu_ws.root)
    assert main(["--work", work, "generate", "--dataset", "sysu", "--counterparts"]) == 0
    assert "--generated-run counterparts" in capsys.readouterr().out
    assert main(["--work", work, "generate", "--dataset", "sysu", "--counterparts", "--score"]) == 2
    assert main(["--work", work, "generate", "--dataset", "sysu", "--trial", "1"]) == 2
    with torch_threads(1):
        outcome = train_run(sysu_ws, "sysu", "agw", "papg", seed=0, preset="tiny", device="cpu",
                            overrides={**TINY, "generated_run": "counterparts"})
    assert outcome.summary["complete"]


def test_regdb_counterparts_are_the_co_captured_images(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "regdb")
    result = write_counterparts(ws, "regdb", trial=1)
    store = open_store(ws.dataset_dir("regdb"))
    generated = open_store(result.path)
    assert len(generated) == len(training_rows(store, 1))
    paths = list(store.paths)
    for k in range(0, len(generated), 7):
        source = paths[generated.columns["source_row"][k]]
        other = source.replace("Visible/", "Thermal/").replace("/v_", "/t_") if source.startswith("Visible/") \
            else source.replace("Thermal/", "Visible/").replace("/t_", "/v_")
        assert other in paths, other
        assert np.array_equal(generated.images[k], store.images[paths.index(other)])


def test_store_without_counterparts_is_refused(tmp_path: Path) -> None:
    from generator_helpers import make_workspace

    ws = make_workspace(tmp_path)
    with pytest.raises(UserError, match="no true counterparts"):
        write_counterparts(ws, "sysu")
    assert not ws.generated_dir("sysu", "counterparts").exists()


def test_other_moment_counterparts_share_identity_not_camera(sysu_ws: Workspace) -> None:
    result = write_counterparts(sysu_ws, "sysu", run="other", other_moment=True, seed=3)
    store = open_store(sysu_ws.dataset_dir("sysu"))
    generated = open_store(result.path)
    source, partner = generated.columns["source_row"], generated.columns["counterpart_of"]
    assert len(generated) == len(training_rows(store))
    assert (store.pids[partner] == store.pids[source]).all()
    assert (store.modalities[partner] == store.modalities[source]).all()
    assert (generated.pids == store.pids[source]).all()
    assert (store.cams[partner] != store.cams[source]).mean() > 0.9
    folder = Path(store.meta["source_root"]) / "synthvi" / "counterparts"
    k = len(generated) // 3
    assert np.array_equal(generated.images[k], load_resized(folder / store.paths[partner[k]], *SIZE))
    again = write_counterparts(sysu_ws, "sysu", run="other-again", other_moment=True, seed=3)
    assert np.array_equal(open_store(again.path).columns["counterpart_of"], partner)  # seeded
