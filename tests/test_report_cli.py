"""`papg-bench report`: files written where promised, the table on the terminal, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_records import record, save, seed_gain_records, trial

from papg_bench.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_records(folder: Path) -> None:
    for seed in (0, 1):
        save(folder, f"agw-none-s{seed}__all", record("agw", "none", "all", [trial(0, .40, .70, .80, .35)], seed=seed))
        save(folder, f"agw-papg-s{seed}__all", record("agw", "papg", "all", [trial(0, .50, .75, .85, .40)], seed=seed))
    save(folder, "agw-none-s0__rerank", record("agw", "none", "all", [trial(0, .55, .75, .85, .45)],
                                                rerank={"k1": 20, "k2": 6, "lambda": 0.3}))


def test_report_writes_tables_and_plots(work: Path, capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    assert main(["report", "--dataset", "sysu"]) == 0
    out_dir = work / "reports" / "sysu"
    names = {p.name for p in out_dir.iterdir()}
    assert {"table.md", "table.csv", "table.tex", "cmc_all.png", "cmc_all.pdf"} <= names
    assert "cmc_indoor.png" not in names  # no indoor records: nothing to draw
    assert "cmc_all__sysu_single-shot_seed_rerank-20-6-0.3.png" in names
    assert (out_dir / "cmc_all.png").read_bytes()[:8] == PNG_SIGNATURE
    md = (out_dir / "table.md").read_text()
    assert "| + PAPG (ours) | **50.00** | **75.00** | **85.00** | **40.00** | – | – | – | – |" in md
    assert "### SYSU-MM01, single-shot, seed sampling, re-ranking (k1=20, k2=6, λ=0.3)" in md
    text = capsys.readouterr().out
    assert "+ PAPG (ours)" in text and "↑ 10.00" in text
    assert f"wrote {out_dir / 'table.tex'}" in text


def test_report_format_out_and_results_options(tmp_path: Path, work: Path) -> None:
    make_records(tmp_path / "records")
    assert main(["report", "-d", "sysu", "--results", str(tmp_path / "records"), "--out", str(tmp_path / "out"),
                 "--format", "csv", "--no-plots"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "table.csv"]
    assert not (work / "reports").exists()


def test_report_is_reused_until_a_record_or_an_option_changes(tmp_path: Path, work: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    records, out_dir = tmp_path / "records", tmp_path / "out"
    make_records(records)
    args = ["report", "-d", "sysu", "--results", str(records), "--out", str(out_dir), "--format", "md", "--no-plots"]
    assert main(args) == 0
    table = out_dir / "table.md"
    first = table.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "reused (made from the same records)" in capsys.readouterr().out
    assert table.stat().st_mtime_ns == first
    assert main(args[:-2] + ["md,csv", "--no-plots"]) == 0  # another option: written again
    assert (out_dir / "table.csv").is_file() and "wrote" in capsys.readouterr().out
    victim = sorted(records.glob("*.json"))[0]
    victim.write_text(victim.read_text().replace('"seed": ', '"seed":  '))  # same record, other bytes
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out


def test_report_without_records_says_to_evaluate(work: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--dataset", "regdb"]) == 2
    err = capsys.readouterr().err
    assert "no result records for dataset 'regdb'" in err and "results/regdb" in err
    assert "papg-bench evaluate" in err
    assert not (work / "reports").exists()


def test_report_rejects_unknown_format(work: Path, capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    assert main(["report", "--dataset", "sysu", "--format", "html"]) == 2
    assert "--format 'html' is not one of md, csv, latex, all" in capsys.readouterr().err


def save_seed_dominated(folder: Path) -> None:
    for rec in seed_gain_records([-3.6, -1.2, 3.5]):
        save(folder, f"agw-{rec['augment']}-s{rec['seed']}__all", rec)


def test_report_of_three_seeds_names_the_method_and_does_not_mark_a_seed_dominated_gain(
    tmp_path: Path, work: Path, capsys: pytest.CaptureFixture
) -> None:
    save_seed_dominated(tmp_path / "records")
    out = tmp_path / "out"
    assert main(["report", "-d", "sysu", "--results", str(tmp_path / "records"), "--out", str(out), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "95% Student-t interval over seeds (3 seeds × 10 paired trials, 2 degrees of freedom)" in text
    md = (out / "table.md").read_text()
    assert md.splitlines()[6].startswith("|  | ↓ 0.45 | ")
    assert r"↓ 0.45\*" not in md
    csv_text = (out / "table.csv").read_text()
    assert ",t,0.95,3,10,3.6326,-9.4715,8.5764,false,11.8571,6.1101,3.6181," in csv_text
    assert "Student-t interval over seeds" in (out / "table.tex").read_text()

    assert main(["report", "-d", "sysu", "--results", str(tmp_path / "records"), "--out", str(out), "--no-plots",
                 "--format", "csv", "--ci", "cluster-bootstrap"]) == 0
    first = (out / "table.csv").read_text()
    assert ",cluster-bootstrap,0.95,3,10,3.6326," in first and ",false," in first
    assert main(["report", "-d", "sysu", "--results", str(tmp_path / "records"), "--out", str(out), "--no-plots",
                 "--format", "csv", "--ci", "cluster-bootstrap"]) == 0
    assert (out / "table.csv").read_text() == first  # the bootstrap is seeded


def test_report_rejects_unknown_ci(tmp_path: Path, work: Path, capsys: pytest.CaptureFixture) -> None:
    save_seed_dominated(tmp_path / "records")
    assert main(["report", "-d", "sysu", "--results", str(tmp_path / "records"), "--ci", "bootstrap"]) == 2
    assert "--ci 'bootstrap' is not one of t, cluster-bootstrap." in capsys.readouterr().err
