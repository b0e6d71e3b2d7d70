"""Generated sets as named things: the Translator contract and the manifest, ``--augment gen:NAME``, and reports
with several sets side by side (PAPG, its ablations, the true counterparts, an imported generator)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reid_helpers import TINY, GreyTranslator, make_workspace, one_thread, write_generated_store
from report_records import record, trial

from papg_bench.cli import main
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.sets import (
    manifest_sha256,
    read_manifest,
    record_quality,
    set_reference,
    write_set,
)
from papg_bench.reid_baselines.augment import canonical_augment, generated_set, parse_augment, uses_generated
from papg_bench.reid_baselines.run import evaluate_run, run_name, train_run
from papg_bench.results.aggregate import augment_key, build_tables
from papg_bench.results.report import make_report
from papg_bench.results.tables import render_csv, render_markdown
from papg_bench.workspace import Workspace, sha256_file

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("sets"))


def test_a_translator_writes_a_set_with_its_manifest(ws: Workspace) -> None:
    result = write_set(ws, "sysu", "grey", GreyTranslator())
    store, generated = open_store(ws.dataset_dir("sysu")), open_store(result.path)
    rows = training_rows(store)
    assert result.status == "done" and len(generated) == len(rows)
    assert sorted(generated.columns["source_row"].tolist()) == sorted(rows.tolist())
    assert list(generated.columns["note"]) == list(generated.columns["direction"])
    assert generated.meta["generator_sha256"] == "grey:1.0" and generated.meta["kind"] == "generated"
    manifest = read_manifest(result.path)
    assert manifest == result.manifest == json.loads((result.path / "manifest.json").read_text())
    assert manifest["origin"] == {"kind": "generator", "generator": "grey", "settings": {"strength": 1.0}}
    assert manifest["display"] == "grey (grey)" and manifest["fingerprint"] == "grey:1.0"
    assert manifest["rows"]["index_sha256"] == sha256_file(result.path / "index.csv")
    assert manifest["rows"]["identities"] == len(np.unique(store.pids[rows]))
    assert manifest["sha256"] == manifest_sha256(manifest)

    assert write_set(ws, "sysu", "grey", GreyTranslator()).status == "reused"
    renamed = write_set(ws, "sysu", "grey", GreyTranslator(), display="Grey (ours)")
    scored = record_quality(result.path, {"aligned": {}, "modality_gap": {}})
    assert renamed.manifest["display"] == scored["display"] == "Grey (ours)"
    assert renamed.manifest["sha256"] == scored["sha256"] == manifest["sha256"]  # neither changes what the set is
    other = write_set(ws, "sysu", "grey-dim", GreyTranslator(0.5))
    assert other.manifest["sha256"] != manifest["sha256"]


def test_a_plan_with_a_test_identity_writes_nothing(ws: Workspace) -> None:
    store = open_store(ws.dataset_dir("sysu"))
    test_rows = np.flatnonzero(store.in_split("test"))[:2]
    with pytest.raises(UserError, match="test identity.*Nothing was written"):
        write_set(ws, "sysu", "leaky", GreyTranslator(rows=np.concatenate([training_rows(store)[:3], test_rows])))
    assert not ws.generated_dir("sysu", "leaky").exists()


def test_a_set_from_before_manifests_gets_one_derived(ws: Workspace) -> None:
    path = write_generated_store(ws, "sysu", run="old")
    manifest = read_manifest(path)
    assert manifest["name"] == "old" and manifest["origin"] == {"kind": "unknown"} and manifest["display"] == "old"
    assert manifest["rows"]["count"] == len(open_store(path)) and not (path / "manifest.json").exists()
    assert set_reference(ws, "sysu", "old")["sha256"] == manifest["sha256"]


def test_augment_names_a_generated_set() -> None:
    assert canonical_augment("channel+gen:PAPG-noPose") == "gen:PAPG-noPose+channel"
    assert canonical_augment("gen:papg+gray") == "papg+gray"  # the workspace's PAPG set by either name
    assert parse_augment("GEN:x+Channel") == frozenset({"gen:x", "channel"})
    assert generated_set("gen:x+channel", "papg") == "x" and generated_set("papg", "counterparts") == "counterparts"
    assert generated_set("channel", "papg") is None and uses_generated("gen:x") and not uses_generated("gray")
    assert run_name("agw", "channel+gen:dive", 1) == "agw-gen-dive+channel-s1"
    for bad in ("gen:a+gen:b", "papg+gen:b", "gen:", "gen:a/b", "gen:x+gen:x"):
        with pytest.raises(UserError, match="--augment"):
            parse_augment(bad)


def test_training_with_a_set_and_channel_records_the_set(ws: Workspace) -> None:
    write_set(ws, "sysu", "grey", GreyTranslator())
    reference = set_reference(ws, "sysu", "grey")
    outcome = train_run(ws, "sysu", "agw", "channel+gen:grey", seed=0, preset="tiny", overrides=TINY, device="cpu")
    assert outcome.run_dir.name == "agw-gen-grey+channel-s0" and outcome.summary["train_images"]["generated"] > 0
    run_config = outcome.summary["run_config"]
    assert run_config["augment"] == "gen:grey+channel" and run_config["train"]["generated_run"] == "grey"
    assert run_config["generated_set"] == reference
    with pytest.raises(UserError, match="--generated-run"):
        train_run(ws, "sysu", "agw", "gen:grey", preset="tiny", overrides={**TINY, "generated_run": "papg"},
                  device="cpu")
    evaluation = evaluate_run(ws, "sysu", "agw", "gen:grey+channel", seed=0, device="cpu", progress=False,
                              modes=("all",))
    assert evaluation.records[0]["generated_set"] == reference
    assert augment_key(evaluation.records[0]) == "gen:grey+channel"


def _set(name: str, display: str, kind: str, sha: str = "") -> dict[str, Any]:
    return {"generated_set": {"name": name, "display": display, "kind": kind, "sha256": sha or name * 4}}


def ablation_records() -> list[dict[str, Any]]:
    """AGW and CGRNet without augmentation, with PAPG, PAPG without pose, and the true counterparts; two seeds."""
    sets = {
        "none": {},
        "papg": _set("papg", "PAPG (ours)", "generator"),
        "gen:papg-nopose": _set("papg-nopose", "PAPG w/o pose", "generator"),
        "gen:counterparts": _set("counterparts", "true counterparts (upper bound)", "counterparts"),
    }
    levels = {"none": .40, "papg": .46, "gen:papg-nopose": .43, "gen:counterparts": .50}
    out = []
    for baseline, offset in (("agw", 0.0), ("cgrnet", 0.02)):
        for augment, extra in sets.items():
            for seed in (0, 1):
                r1 = levels[augment] + offset + 0.01 * seed
                out.append(record(baseline, augment, "all", [trial(0, r1, .7, .8, r1 - .1)], seed=seed, **extra))
    return out


def test_several_sets_are_rows_of_one_table_with_gains() -> None:
    tables, notes = build_tables(ablation_records())
    assert notes == [] and len(tables) == 1
    table = tables[0]
    assert [(r.baseline, r.label) for r in table.rows] == [
        (b, label) for b in ("agw", "cgrnet") for label in (
            {"agw": "AGW", "cgrnet": "CGRNet"}[b], "+ PAPG (ours)", "+ PAPG w/o pose",
            "+ true counterparts (upper bound)")]
    gains = {(r.baseline, r.generated_set): r.gains[("all", "rank1")] for r in table.rows if r.is_augmented}
    assert gains[("agw", "papg")].shown == 6.0 and gains[("agw", "papg-nopose")].shown == 3.0
    assert gains[("cgrnet", "counterparts")].shown == 10.0 and gains[("cgrnet", "counterparts")].n_seeds == 2
    text = render_markdown(tables)
    assert "| + PAPG w/o pose | 43.50 |" in text and "| + true counterparts (upper bound) | 50.50 |" in text
    lines = list(csv.DictReader(io.StringIO(render_csv(tables))))
    nopose = [r for r in lines if r["augment"] == "gen:papg-nopose" and r["metric"] == "rank1"]
    assert [(r["baseline"], r["generated_set"], r["generated_set_sha256"]) for r in nopose] == [
        ("agw", "papg-nopose", "papg-nopose" * 4), ("cgrnet", "papg-nopose", "papg-nopose" * 4)]
    assert {r["generated_set"] for r in lines if r["augment"] == "none"} == {""}


def test_papg_with_another_generated_run_is_that_sets_row() -> None:
    legacy = record("agw", "papg", "all", [trial(0, .5, .7, .8, .4)], config={"generated_run": "counterparts"})
    named = record("agw", "gen:counterparts", "all", [trial(0, .6, .7, .8, .4)], created="2030-01-01",
                   **_set("counterparts", "true counterparts (upper bound)", "counterparts"))
    base = record("agw", "none", "all", [trial(0, .4, .7, .8, .3)])
    tables, notes = build_tables([base, legacy, named])
    assert [r.label for r in tables[0].rows] == ["AGW", "+ true counterparts (upper bound)"]
    assert len(notes) == 1 and "using the newest" in notes[0]  # the same set and seed evaluated twice
    assert tables[0].rows[1].stat("all", "rank1").mean == 60.0


def test_a_set_written_again_between_runs_is_noted() -> None:
    records = [record("agw", "gen:x", "all", [trial(0, .5, .7, .8, .4)], seed=s, **_set("x", "X", "import", sha))
               for s, sha in ((0, "a" * 64), (1, "b" * 64))]
    tables, notes = build_tables(records)
    assert any("2 versions of the generated set" in n for n in notes)
    assert tables[0].rows[1].set_sha256 == ("a" * 64, "b" * 64)
    assert [r.label for r in tables[0].rows] == ["AGW", "+ X"]


def test_an_import_in_the_released_layout_trains_and_is_reported_by_its_display_name(ws: Workspace, tmp_path: Path,
                                                                                    capsys: pytest.CaptureFixture
                                                                                    ) -> None:
    from test_import_generated import write_released_layout

    store = open_store(ws.dataset_dir("sysu"))
    write_released_layout(store, tmp_path / "output")
    work = str(ws.root)
    assert main(["--work", work, "import-generated", "--dataset", "sysu", "--from", str(tmp_path / "output"),
                 "--layout", "papg", "--name", "released", "--display", "PAPG (released code)"]) == 0
    for augment in ("none", "gen:released"):
        train_run(ws, "sysu", "agw", augment, seed=0, preset="tiny", overrides=TINY, device="cpu")
        evaluate_run(ws, "sysu", "agw", augment, seed=0, device="cpu", progress=False, modes=("all",))
    capsys.readouterr()
    assert main(["--work", work, "report", "--dataset", "sysu", "--no-plots", "--format", "md,csv"]) == 0
    out = capsys.readouterr().out
    assert "| + PAPG (released code) |" in out
    lines = list(csv.DictReader(io.StringIO((ws.reports_dir("sysu") / "table.csv").read_text())))
    sha = read_manifest(ws.generated_dir("sysu", "released"))["sha256"]
    assert {(r["generated_set"], r["generated_set_sha256"]) for r in lines if r["augment"] == "gen:released"} == {
        ("released", sha)}
    report = make_report("sysu", ws.results_dir("sysu"), tmp_path / "again", formats=("md",), plots=False)
    assert "+ PAPG (released code)" in report.markdown
