"""Paper tables from hand-made records: golden Markdown, CSV and LaTeX, missing combinations, bold-best."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from report_records import record, seed_gain_records, seed_means, trial

from papg_bench.results.aggregate import build_tables
from papg_bench.results.tables import CSV_COLUMNS, render_csv, render_latex, render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "statistics.md"


def two_baselines() -> list[dict]:
    """AGW with and without PAPG (no PAPG indoor record); CGRNet without any PAPG record; one seed."""
    return [
        record("agw", "none", "all", [trial(0, .40, .70, .80, .35), trial(1, .42, .72, .82, .37)]),
        record("agw", "papg", "all", [trial(0, .50, .75, .79, .40), trial(1, .52, .77, .79, .42)]),
        record("agw", "none", "indoor", [trial(0, .50, .80, .90, .45), trial(1, .50, .80, .90, .45)]),
        record("cgrnet", "none", "all", [trial(0, .45, .74, .86, .38)]),
        record("cgrnet", "none", "indoor", [trial(0, .48, .82, .88, .46)]),
    ]


def two_seeds() -> list[dict]:
    """AGW with and without PAPG on all-search, seeds 0 and 1, one trial each: constant differences."""
    values = {"none": (.40, .70, .80, .35, .20), "papg": (.50, .75, .79, .40, .25)}
    return [record("agw", augment, "all", [trial(0, *v)], seed=seed)
            for seed in (0, 1) for augment, v in values.items()]


GOLDEN_MD = """\
### SYSU-MM01, single-shot, seed sampling

| Method | All R-1 | All R-10 | All R-20 | All mAP | Indoor R-1 | Indoor R-10 | Indoor R-20 | Indoor mAP |
|:---|---:|---:|---:|---:|---:|---:|---:|---:|
| AGW | 41.00 | 71.00 | 81.00 | 36.00 | **50.00** | 80.00 | **90.00** | 45.00 |
| + PAPG (ours) | **51.00** | **76.00** | 79.00 | **41.00** | – | – | – | – |
|  | ↑ 10.00 | ↑ 5.00 | ↓ 2.00 | ↑ 5.00 | – | – | – | – |
| CGRNet | 45.00 | 74.00 | **86.00** | 38.00 | 48.00 | **82.00** | 88.00 | **46.00** |
| + PAPG (ours) | – | – | – | – | – | – | – | – |
|  | – | – | – | – | – | – | – | – |

Values in %, mean over 1–2 trials × 1 seed (std in table.csv across the trials of the one seed); ↑/↓: change \
against the baseline row above; –: no record.

No interval and no mark for the gains: a gain needs runs of at least two seeds, and one seed gives no \
seed-to-seed spread, so no minimum detectable effect either.
"""

GOLDEN_MD_SEEDS = """\
### SYSU-MM01, single-shot, seed sampling

| Method | All R-1 | All R-10 | All R-20 | All mAP | Indoor R-1 | Indoor R-10 | Indoor R-20 | Indoor mAP |
|:---|---:|---:|---:|---:|---:|---:|---:|---:|
| AGW | 40.00 | 70.00 | **80.00** | 35.00 | – | – | – | – |
| + PAPG (ours) | **50.00** | **75.00** | 79.00 | **40.00** | – | – | – | – |
|  | ↑ 10.00\\* | ↑ 5.00\\* | ↓ 1.00\\* | ↑ 5.00\\* | – | – | – | – |

Values in %, mean over 1 trial × 2 seeds (each seed's trials averaged first; std in table.csv across the seed \
means); ↑/↓: change against the baseline row above; –: no record.

\\* gain whose 95% Student-t interval over seeds (2 seeds × 1 paired trial, 1 degree of freedom) excludes zero; \
a seed's gain is the mean of its paired trial differences (augmented minus baseline), the seeds being the unit \
of inference. Each gain's interval, seed-level std and minimum detectable effects are in table.csv.

Minimum detectable rank-1 gain at 80% power (noncentral t, from the seed-level std of the gain): 0.0 points with \
the 2 seeds present, 0.0 with 5, 0.0 with 10.
"""

GOLDEN_CSV = """\
table,baseline,augment,mode,metric,mean,std,std_over,n_seeds,n_trials,gain,ci_method,ci_level,gain_n_seeds,\
gain_n_trials,gain_seed_std,ci_low,ci_high,significant,mde80,mde80_5_seeds,mde80_10_seeds,ci_note,generated_set,\
generated_set_sha256
sysu_single-shot_seed,agw,none,all,rank1,40.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,none,all,rank5,40.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,none,all,rank10,70.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,none,all,rank20,80.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,none,all,mAP,35.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,none,all,mINP,20.0000,0.0000,seeds,2,1,,,,,,,,,,,,,,,
sysu_single-shot_seed,agw,papg,all,rank1,50.0000,0.0000,seeds,2,1,10.0000,t,0.95,2,1,0.0000,10.0000,10.0000,true,\
0.0000,0.0000,0.0000,,papg,
sysu_single-shot_seed,agw,papg,all,rank5,50.0000,0.0000,seeds,2,1,10.0000,t,0.95,2,1,0.0000,10.0000,10.0000,true,\
0.0000,0.0000,0.0000,,papg,
sysu_single-shot_seed,agw,papg,all,rank10,75.0000,0.0000,seeds,2,1,5.0000,t,0.95,2,1,0.0000,5.0000,5.0000,true,\
0.0000,0.0000,0.0000,,papg,
sysu_single-shot_seed,agw,papg,all,rank20,79.0000,0.0000,seeds,2,1,-1.0000,t,0.95,2,1,0.0000,-1.0000,-1.0000,true,\
0.0000,0.0000,0.0000,,papg,
sysu_single-shot_seed,agw,papg,all,mAP,40.0000,0.0000,seeds,2,1,5.0000,t,0.95,2,1,0.0000,5.0000,5.0000,true,\
0.0000,0.0000,0.0000,,papg,
sysu_single-shot_seed,agw,papg,all,mINP,25.0000,0.0000,seeds,2,1,5.0000,t,0.95,2,1,0.0000,5.0000,5.0000,true,\
0.0000,0.0000,0.0000,,papg,
"""

GOLDEN_TEX = "\n".join([
    r"% papg-bench report for dataset sysu; needs \usepackage{booktabs}",
    r"\begin{table}[t]",
    r"\centering",
    r"\caption{SYSU-MM01, single-shot, seed sampling (sysu). Values in \%. Gains: 95\% Student-t interval over seeds "
    r"(2 seeds $\times$ 1 paired trial, 1 degree of freedom); rank-1 gain (mean of the seed gains) [interval], "
    r"seed-level std: AGW + PAPG (ours), All-search +10.00 [10.00, 10.00], std 0.00.}",
    r"\begin{tabular}{lcccccccc}",
    r"\toprule",
    r" & \multicolumn{4}{c}{All-search} & \multicolumn{4}{c}{Indoor-search} \\",
    r"\cmidrule(lr){2-5} \cmidrule(lr){6-9}",
    r"Method & Rank-1 & Rank-10 & Rank-20 & mAP & Rank-1 & Rank-10 & Rank-20 & mAP \\",
    r"\midrule",
    r"AGW & 40.00 & 70.00 & \textbf{80.00} & 35.00 & -- & -- & -- & -- \\",
    r"+ PAPG (ours) & \textbf{50.00} & \textbf{75.00} & 79.00 & \textbf{40.00} & -- & -- & -- & -- \\",
    r" & $\uparrow$ 10.00$^{*}$ & $\uparrow$ 5.00$^{*}$ & $\downarrow$ 1.00$^{*}$ & $\uparrow$ 5.00$^{*}$ "
    r"& -- & -- & -- & -- \\",
    r"\bottomrule",
    r"\end{tabular}",
    r"\par\smallskip",
    r"{\footnotesize Mean over 1 trial $\times$ 2 seeds (each seed's trials averaged first; std in table.csv across "
    r"the seed means); $\uparrow$/$\downarrow$: change against the baseline row above; --: no record. $^{*}$ gain "
    r"whose 95\% Student-t interval over seeds (2 seeds $\times$ 1 paired trial, 1 degree of freedom) excludes zero; "
    r"a seed's gain is the mean of its paired trial differences (augmented minus baseline), the seeds being the unit "
    r"of inference. Each gain's interval, seed-level std and minimum detectable effects are in table.csv. Minimum "
    r"detectable rank-1 gain at 80\% power (noncentral t, from the seed-level std of the gain): 0.0 points with the "
    r"2 seeds present, 0.0 with 5, 0.0 with 10.}",
    r"\end{table}",
    "",
])


def test_markdown_golden_with_missing_combinations_and_bold_best() -> None:
    tables, notes = build_tables(two_baselines())
    assert notes == []
    assert render_markdown(tables) == GOLDEN_MD


def test_markdown_csv_latex_golden_with_two_seeds() -> None:
    tables, _ = build_tables(two_seeds())
    assert render_markdown(tables) == GOLDEN_MD_SEEDS
    assert render_csv(tables) == GOLDEN_CSV
    assert render_latex(tables, "sysu") == GOLDEN_TEX


def test_latex_groups_baselines_with_midrule_and_escapes_names() -> None:
    records = two_baselines() + [record("agw", "my_aug&co", "all", [trial(0, .41, .70, .80, .36)])]
    text = render_latex(build_tables(records)[0], "sysu_v2")
    assert r"+ my\_aug\&co & 41.00" in text
    assert r"(sysu\_v2)" in text
    body = text.split(r"\midrule", 1)[1]
    assert body.count(r"\midrule") == 1  # one rule between AGW's rows and CGRNet's
    assert "CGRNet & 45.00" in body.split(r"\midrule")[1]


def test_regdb_columns_and_augment_row_names() -> None:
    records = [
        record("agw", "none", "v2t", [trial(1, .60, .80, .90, .55)]),
        record("agw", "channel", "v2t", [trial(1, .58, .80, .91, .54)]),
        record("agw", "none", "t2v", [trial(1, .61, .81, .92, .56)]),
    ]
    text = render_markdown(build_tables(records)[0])
    assert text.splitlines()[0] == "### RegDB, single-shot"
    assert "| Method | V→T R-1 | V→T R-10 | V→T R-20 | V→T mAP | T→V R-1 | T→V R-10 | T→V R-20 | T→V mAP |" in text
    assert "| + channel | 58.00 | **80.00** | **91.00** | 54.00 | – | – | – | – |" in text
    assert "|  | ↓ 2.00 | 0.00 | ↑ 1.00 | ↓ 1.00 | – | – | – | – |" in text
    latex = render_latex(build_tables(records)[0], "regdb")
    assert r"\multicolumn{4}{c}{Visible$\rightarrow$Thermal}" in latex


def test_protocol_variants_get_their_own_tables_main_first() -> None:
    main = two_seeds()
    rerank = record("agw", "none", "all", [trial(0, .60, .80, .90, .50)], rerank={"k1": 20, "k2": 6, "lambda": 0.3})
    multi = record("agw", "none", "all", [trial(0, .70, .85, .95, .60)], shots=10)
    official = record("agw", "papg", "all", [trial(0, .65, .85, .95, .60)], sampling="official")
    tables, _ = build_tables([rerank, multi, official, *main])
    titles = [t.variant.title for t in tables]
    assert titles[0] == "SYSU-MM01, single-shot, seed sampling"
    assert set(titles[1:]) == {
        "SYSU-MM01, single-shot, seed sampling, re-ranking (k1=20, k2=6, λ=0.3)",
        "SYSU-MM01, multi-shot (10), seed sampling",
        "SYSU-MM01, single-shot, official sampling",
    }
    # the main table holds only the main records: their best rank-1 is 50.00, not the variants' 60-70
    assert tables[0].best("all", "rank1") == 50.0
    official_table = next(t for t in tables if t.variant.sampling == "official")
    assert [r.label for r in official_table.rows] == ["AGW", "+ PAPG (ours)"]
    assert official_table.rows[0].cells == {}  # its baseline was not evaluated that way: shown missing


def test_sysu_record_without_sampling_joins_the_seed_sampling_table() -> None:
    records = [record("agw", "none", "all", [trial(0, .4, .7, .8, .3)], sampling=None),
               record("agw", "papg", "all", [trial(0, .5, .7, .8, .3)])]
    [table], _ = build_tables(records)
    assert table.variant.title == "SYSU-MM01, single-shot, seed sampling"
    assert table.rows[1].gains[("all", "rank1")].shown == 10.0


def test_newest_duplicate_wins_with_a_note() -> None:
    old = record("agw", "none", "all", [trial(0, .10, .20, .30, .10)], created="2024-01-01T00:00:00", _path="a.json")
    new = record("agw", "none", "all", [trial(0, .40, .70, .80, .35)], created="2024-02-01T00:00:00", _path="b.json")
    tables, notes = build_tables([new, old])
    assert tables[0].rows[0].stat("all", "rank1").mean == 40.0
    assert len(notes) == 1 and "b.json" in notes[0] and "a.json" in notes[0]


def test_ties_are_all_bold_and_user_features_get_their_own_row() -> None:
    records = [
        record("agw", "none", "all", [trial(0, .40, .70, .80, .35)]),
        record(None, None, "all", [trial(0, .40, .60, .70, .30)], features="runs/mine/features.npz"),
    ]
    text = render_markdown(build_tables(records)[0])
    assert "| AGW | **40.00** | **70.00** | **80.00** | **35.00** |" in text
    assert "| features | **40.00** | 60.00 | 70.00 | 30.00 |" in text


def csv_rows(tables: list) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_csv(tables))))


def test_seed_dominated_gain_is_shown_unmarked_with_its_interval_and_mde() -> None:
    records = seed_gain_records([-3.6, -1.2, 3.5])
    tables, _ = build_tables(records)
    text = render_markdown(tables)
    gain_row = text.splitlines()[6]
    assert gain_row.startswith("|  | ↓ 0.45 |") and r"\*" not in gain_row.split("|")[2]
    assert "95% Student-t interval over seeds (3 seeds × 10 paired trials, 2 degrees of freedom)" in text
    assert ("Minimum detectable rank-1 gain at 80% power (noncentral t, from the seed-level std of the gain): "
            "11.9 points with the 3 seeds present, 6.1 with 5, 3.6 with 10.") in text
    [row] = [r for r in csv_rows(tables) if r["augment"] == "papg" and r["metric"] == "rank1"]
    assert {k: row[k] for k in ("ci_method", "ci_level", "gain_n_seeds", "gain_n_trials", "significant", "ci_note")} \
        == {"ci_method": "t", "ci_level": "0.95", "gain_n_seeds": "3", "gain_n_trials": "10", "significant": "false",
            "ci_note": ""}
    assert float(row["gain_seed_std"]) == pytest.approx(3.6326, abs=1e-4)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((-9.4715, 8.5764), abs=1e-4)
    assert float(row["mde80"]) == pytest.approx(11.8571, abs=1e-4)
    assert float(row["mde80_5_seeds"]) == pytest.approx(6.1101, abs=1e-4)
    latex = render_latex(tables, "sysu")
    assert "AGW + PAPG (ours), All-search -0.45 [-9.47, 8.58], std 3.63." in latex


def test_consistent_gain_is_marked_and_the_cluster_bootstrap_is_named() -> None:
    records = seed_gain_records([5.0, 5.5, 4.8])
    text = render_markdown(build_tables(records)[0])
    assert text.splitlines()[6].startswith(r"|  | ↑ 5.09\* |")
    boot = build_tables(records, ci="cluster-bootstrap")[0]
    text = render_markdown(boot)
    assert ("\\* gain whose 95% cluster-bootstrap interval (3 seeds × 10 paired trials; 10,000 resamples of the seeds, "
            "then of the trials within each, generator seed 0) excludes zero") in text
    [row] = [r for r in csv_rows(boot) if r["augment"] == "papg" and r["metric"] == "rank1"]
    assert row["ci_method"] == "cluster-bootstrap" and row["significant"] == "true"
    assert 4.7 < float(row["ci_low"]) < 4.9 and 5.5 < float(row["ci_high"]) < 5.6  # the 3 seed gains' range
    assert "cluster-bootstrap interval" in render_latex(boot, "sysu").split(r"\caption{", 1)[1].split("}\n")[0]


def test_one_seed_gives_no_mark_even_for_a_large_tight_gain() -> None:
    records = seed_gain_records([10.0], trial_noise=0.1)
    [table], _ = build_tables(records)
    gain = table.rows[1].gains[("all", "rank1")]
    assert gain.ci is None and not gain.significant and gain.mde == {} and gain.shown == pytest.approx(10.0, abs=0.1)
    text = render_markdown([table])
    assert r"\*" not in text
    assert "No interval and no mark for the gains: a gain needs runs of at least two seeds" in text
    assert "(std in table.csv across the trials of the one seed)" in text
    [row] = [r for r in csv_rows([table]) if r["augment"] == "papg" and r["metric"] == "rank1"]
    assert row["std_over"] == "trials" and row["ci_low"] == "" and row["mde80"] == "" and row["ci_note"] == "one seed"
    assert "Gains: no interval (fewer than two seeds shared with the baseline)." in render_latex([table], "sysu")


def test_runs_without_shared_seeds_are_not_paired() -> None:
    base = [r for r in seed_gain_records([0, 0, 0]) if r["augment"] == "none"]
    aug = [r for r in seed_gain_records([3.0, 3.0, 3.0], seeds=[3, 4, 5]) if r["augment"] == "papg"]
    [table], _ = build_tables(base + aug)
    gain = table.rows[1].gains[("all", "rank1")]
    assert gain.ci is None and gain.n_seeds == 0 and gain.n_pairs == 0 and gain.unpaired_seeds == 6
    text = render_markdown([table])
    assert ("No interval for AGW + PAPG (ours) (All): the augmented and baseline runs share no seed, so they cannot "
            "be paired by seed.") in text
    assert r"\*" not in text
    [row] = [r for r in csv_rows([table]) if r["augment"] == "papg" and r["metric"] == "rank1"]
    assert row["ci_note"] == "no shared seed" and row["gain_n_seeds"] == "0" and row["significant"] == ""


def test_partly_shared_seeds_pair_only_the_shared_ones() -> None:
    records = seed_gain_records([2.0, 2.2, 1.9, 2.1])
    records = [r for r in records if not (r["augment"] == "papg" and r["seed"] == 3)]
    [table], _ = build_tables(records)
    gain = table.rows[1].gains[("all", "rank1")]
    base, aug = seed_means(records, "none"), seed_means(records, "papg")
    d = [aug[s] - base[s] for s in (0, 1, 2)]
    assert gain.n_seeds == 3 and gain.unpaired_seeds == 1
    assert gain.seed_mean == pytest.approx(np.mean(d))
    assert "The intervals of AGW + PAPG (ours) (All) use only the seeds that the augmented and baseline rows share." \
        in render_markdown([table])
    [row] = [r for r in csv_rows([table]) if r["augment"] == "papg" and r["metric"] == "rank1"]
    assert row["ci_note"] == "1 unpaired seed left out"


def test_std_is_across_seed_means_with_several_seeds() -> None:
    records = seed_gain_records([1.0, 2.0, 3.0])
    [table], _ = build_tables(records)
    stat = table.rows[0].stat("all", "rank1")
    means = list(seed_means(records, "none").values())
    assert stat.std_over == "seeds" and stat.n_seeds == 3 and stat.n_trials == 10
    assert stat.mean == pytest.approx(np.mean(means)) and stat.std == pytest.approx(np.std(means, ddof=1))
    all_runs = [t["cmc"][0] * 100 for r in records if r["augment"] == "none" for t in r["trials"]]
    assert stat.std != pytest.approx(np.std(all_runs))  # not the spread of the 30 seed x trial values


def test_csv_columns_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [c for c in CSV_COLUMNS if f"`{c}`" not in text]
    assert missing == []
