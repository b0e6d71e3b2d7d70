"""The whole demo pipeline at tiny scale: every stage runs, writes the table and plots, and a rerun reuses all."""

import json
from dataclasses import replace
from pathlib import Path

from papg_bench.demo import DemoSettings, run_demo
from papg_bench.results.records import list_records
from papg_bench.stages import DONE, REUSED
from papg_bench.workspace import Workspace


def test_demo_pipeline_tiny(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "work")
    settings = DemoSettings(
        synth_preset="tiny",
        generator_overrides={"epochs": 1, "max_pairs": 32},
        reid_overrides={"epochs": 4, "warmup_epochs": 2, "milestones": (3,)},
        out=tmp_path / "demo",
        device="cpu",
    )
    first = run_demo(ws, settings)
    names = [o.name for o in first]
    assert names[:5] == ["synth", "prepare", "pose", "train-generator", "generate"]
    assert names[-1] == "report"
    assert {o.status for o in first} == {DONE}

    records = list_records(ws.results_dir("synthvi"))
    combos = {(r["baseline"], r["augment"], r["mode"]) for r in records}
    assert combos == {(b, a, m) for b in ("agw", "cgrnet") for a in ("none", "papg") for m in ("all", "indoor")}
    assert all(len(r["trials"]) == 10 for r in records)

    table = (settings.out / "table.md").read_text()
    assert "| AGW |" in table and "| CGRNet |" in table and "+ PAPG (ours)" in table
    for stem in ("cmc_all", "cmc_indoor", "generator_samples", "distance_distributions", "ranks", "tsne"):
        assert (settings.out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (settings.out / f"{stem}.pdf").stat().st_size > 0
    assert (settings.out / "table.tex").read_text().count(r"\toprule") >= 1
    quality = next(o for o in first if o.name == "generate").details["quality"]
    assert quality is not None

    second = run_demo(ws, settings)
    assert {o.name: o.status for o in second} == {name: REUSED for name in names}
    summary = json.loads((settings.out / "demo.json").read_text())
    assert [s["name"] for s in summary["stages"]] == names
    assert (settings.out / "table.md").read_text() == table

    # other baseline settings: the demo trains that run again instead of stopping at the old folder
    changed = replace(settings, baselines=("agw",), augments=("none",),
                      reid_overrides={**settings.reid_overrides, "epochs": 3, "milestones": (2,)})
    third = {o.name: o.status for o in run_demo(ws, changed)}
    assert third["train agw none"] == DONE and third["train-generator"] == REUSED
    assert json.loads((ws.run_dir("synthvi", "agw-none-s0") / "summary.json").read_text())["epochs_done"] == 3


def test_demo_pipeline_on_the_llcm_layout(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "work")
    settings = DemoSettings(
        synth_preset="tiny", layout="llcm", baselines=("agw",),
        generator_overrides={"epochs": 1, "max_pairs": 16},
        reid_overrides={"epochs": 2, "warmup_epochs": 1, "milestones": (1,)},
        out=tmp_path / "demo", device="cpu",
    )
    outcomes = run_demo(ws, settings)
    assert outcomes[0].name == "synth" and outcomes[-1].name == "report"
    assert ws.dataset_dir("synthvi-llcm").is_dir() and not ws.dataset_dir("synthvi").exists()
    records = list_records(ws.results_dir("synthvi-llcm"))
    assert {(r["augment"], r["mode"]) for r in records} == {(a, m) for a in ("none", "papg")
                                                             for m in ("ir2vis", "ir2vis-drawn")}
    assert all(r["protocol"].startswith("llcm/") and len(r["trials"]) == 10 for r in records)
    table = (settings.out / "table.md").read_text()
    assert "### LLCM" in table and "IR→VIS R-1" in table and "IR(drawn)→VIS R-1" in table
