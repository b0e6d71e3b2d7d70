"""Result records (round trip, validation, newer format) and the seed-level intervals of the gains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from report_records import record, save, seed_gain_records, seed_means, trial
from scipy import stats

from papg_bench.errors import UserError
from papg_bench.results.aggregate import (
    build_tables,
    cluster_bootstrap_ci,
    minimum_detectable_effect,
    t_interval,
)
from papg_bench.results.records import RECORD_FORMAT, list_records, read_record, write_record


def test_round_trip_adds_format_and_summary(tmp_path: Path) -> None:
    rec = record("agw", "papg", "all", [trial(0, .40, .70, .80, .35), trial(1, .42, .72, .82, .37)], seed=3,
                 config_hash="abc", git_revision="deadbeef")
    path = save(tmp_path, "agw-papg__all", rec)
    back = read_record(path)
    assert back == {**rec, "format_version": RECORD_FORMAT, "summary": back["summary"]}
    assert back["summary"]["rank1"]["mean"] == pytest.approx(0.41)
    assert back["summary"]["rank1"]["std"] == pytest.approx(0.01)
    assert back["summary"]["mAP"]["mean"] == pytest.approx(0.36)
    [listed] = list_records(tmp_path)
    assert listed["_path"] == str(path) and listed["seed"] == 3


def test_numpy_values_are_accepted_when_writing(tmp_path: Path) -> None:
    rec = record("agw", "none", "all", [trial(0, .4, .7, .8, .3)])
    rec["trials"][0]["cmc"] = np.asarray(rec["trials"][0]["cmc"], dtype=np.float32)
    rec["trials"][0]["mAP"] = np.float32(0.3)
    back = read_record(write_record(tmp_path / "r.json", rec))
    assert len(back["trials"][0]["cmc"]) == 20


def test_newer_format_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({**record("agw", "none", "all", [trial(0, .4, .7, .8, .3)]),
                                "summary": {}, "format_version": RECORD_FORMAT + 1}))
    with pytest.raises(UserError, match=r"future\.json.*newer than this papg-bench reads.*upgrade papg-bench"):
        read_record(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("mode"), "lacks mode"),
        (lambda r: r.update(trials=[]), "has no trials"),
        (lambda r: r["trials"][0].pop("mAP"), "lacks 'mAP'"),
        (lambda r: r["trials"][0].update(cmc=[]), "'cmc' must be a non-empty list of numbers"),
        (lambda r: r["trials"][0].update(cmc=["x"]), "'cmc' must be a non-empty list of numbers"),
        (lambda r: r["trials"][0].update(mINP="high"), "'mAP' and 'mINP' must be numbers"),
        (lambda r: r.pop("format_version"), "not a papg-bench result record"),
    ],
)
def test_invalid_records_name_the_file(tmp_path: Path, change, message: str) -> None:
    rec = {**record("agw", "none", "all", [trial(0, .4, .7, .8, .3)]), "summary": {}, "format_version": 1}
    change(rec)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(UserError, match="bad.json") as info:
        read_record(path)
    assert message in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist.*papg-bench evaluate"):
        read_record(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(UserError, match="broken.json is not valid JSON"):
        read_record(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UserError, match="must be a JSON object"):
        read_record(tmp_path / "list.json")


def rank1_gain(records: list[dict], ci: str = "t"):
    tables, _ = build_tables(records, ci=ci)
    return tables[0].rows[1].gains[("all", "rank1")]


def test_t_interval_equals_scipy_on_the_seed_means_and_agrees_with_ttest_rel() -> None:
    records = seed_gain_records([1.0, 2.5, 1.5, 1.8], trial_noise=0.5)
    base, aug = seed_means(records, "none"), seed_means(records, "papg")
    d = np.array([aug[s] - base[s] for s in sorted(base)])
    expected = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
    gain = rank1_gain(records)
    assert gain.n_seeds == 4 and gain.n_trials == 10 and gain.n_pairs == 40
    assert gain.ci == pytest.approx(expected, abs=1e-9)
    assert gain.seed_mean == pytest.approx(d.mean()) and gain.seed_std == pytest.approx(d.std(ddof=1))
    assert gain.ci == pytest.approx((0.4645, 2.9049), abs=1e-4)  # the fixture's numbers, written out
    assert t_interval(d) == pytest.approx(expected, abs=1e-9)
    test = stats.ttest_rel([aug[s] for s in sorted(aug)], [base[s] for s in sorted(base)])
    assert test.pvalue == pytest.approx(0.0218, abs=1e-4)
    assert gain.significant and test.pvalue < 0.05
    # and on a case that is not significant: the same verdict from both
    noisy = seed_gain_records([1.0, -0.8, 2.0], trial_noise=0.5, rng_seed=1)
    gain = rank1_gain(noisy)
    base, aug = seed_means(noisy, "none"), seed_means(noisy, "papg")
    test = stats.ttest_rel([aug[s] for s in sorted(aug)], [base[s] for s in sorted(base)])
    assert test.pvalue > 0.05 and not gain.significant
    assert gain.ci[0] < 0 < gain.ci[1]


def test_t_interval_of_constant_differences_has_zero_width() -> None:
    assert t_interval([2.5, 2.5, 2.5]) == (2.5, 2.5)
    with pytest.raises(ValueError):
        t_interval([1.0])


def test_seed_dominated_gain_is_not_marked_though_its_trials_are_tight() -> None:
    # seed gains -3.6, -1.2, +3.5 with 0.2 points of trial noise: 30 tight pairs, but 3 seeds that disagree
    records = seed_gain_records([-3.6, -1.2, 3.5])
    gain = rank1_gain(records)
    assert gain.n_seeds == 3 and gain.n_pairs == 30
    assert gain.seed_mean == pytest.approx(-0.447, abs=1e-3)
    assert gain.seed_std == pytest.approx(3.633, abs=1e-3)
    low, high = gain.ci
    assert low == pytest.approx(-9.472, abs=1e-3) and high == pytest.approx(8.576, abs=1e-3)
    assert not gain.significant
    # the 30 trial-level differences alone would look very sure of themselves: their naive t interval is
    # narrower than three points, a sixth of the seed-level one
    trial_diffs = [a["cmc"][0] * 100 - b["cmc"][0] * 100
                   for rb, ra in zip(records[0::2], records[1::2], strict=True)
                   for b, a in zip(rb["trials"], ra["trials"], strict=True)]
    naive = stats.t.interval(0.95, 29, loc=np.mean(trial_diffs), scale=stats.sem(trial_diffs))
    assert naive[1] - naive[0] < 3.0 < (high - low) / 6
    # 80% power: 11.9 points with these 3 seeds, 6.1 with 5 and 3.6 with 10
    assert (gain.mde[3], gain.mde[5], gain.mde[10]) == pytest.approx((11.857, 6.110, 3.618), abs=1e-3)


def test_consistent_gain_is_marked() -> None:
    gain = rank1_gain(seed_gain_records([5.0, 5.5, 4.8]))
    assert gain.seed_mean == pytest.approx(5.086, abs=1e-3)
    assert gain.ci == pytest.approx((4.064, 6.107), abs=1e-3)
    assert gain.significant


def test_cluster_bootstrap_is_deterministic_and_close_to_t_with_many_seeds() -> None:
    rng = np.random.default_rng(11)
    records = seed_gain_records(list(rng.normal(2.0, 1.5, 40)), trial_noise=0.3)
    t_gain, boot = rank1_gain(records), rank1_gain(records, ci="cluster-bootstrap")
    assert boot.method == "cluster-bootstrap" and boot.n_seeds == 40
    assert rank1_gain(records, ci="cluster-bootstrap").ci == boot.ci  # fixed-seed generator
    width = t_gain.ci[1] - t_gain.ci[0]
    assert width == pytest.approx(0.95, abs=0.2)
    assert boot.ci == pytest.approx(t_gain.ci, abs=0.1 * width)
    # with three seeds the bootstrap has only a handful of distinct seed resamples: it is narrower than t
    few = seed_gain_records([-3.6, -1.2, 3.5])
    low, high = rank1_gain(few, ci="cluster-bootstrap").ci
    assert -3.8 < low < -3.3 and 3.3 < high < 3.8


def test_cluster_bootstrap_resamples_each_seed_with_its_own_trial_count() -> None:
    groups = [[1.0] * 3, [3.0] * 7]
    low, high = cluster_bootstrap_ci(groups, resamples=2_000, seed=5)
    assert (low, high) == pytest.approx((1.0, 3.0))
    assert cluster_bootstrap_ci(groups, resamples=2_000, seed=5) == (low, high)
    with pytest.raises(ValueError):
        cluster_bootstrap_ci([[1.0, 2.0]])


def test_minimum_detectable_effect_is_the_noncentral_t_power_point() -> None:
    # G*Power's one-sample t-test, two-sided alpha 0.05, power 0.8, n = 10: d = 0.996
    assert minimum_detectable_effect(1.0, 10) == pytest.approx(0.9960, abs=1e-4)
    assert minimum_detectable_effect(2.0, 10) == pytest.approx(2 * 0.9960, abs=2e-4)
    assert minimum_detectable_effect(1.0, 3) == pytest.approx(3.264, abs=1e-3)
    # many seeds: the normal approximation (z_0.975 + z_0.8) / sqrt(n)
    assert minimum_detectable_effect(1.0, 200) == pytest.approx(2.8016 / np.sqrt(200), rel=0.01)
    # a simulated t-test at that effect rejects in 80% of 20,000 experiments of 5 seeds
    effect = minimum_detectable_effect(1.0, 5)
    samples = np.random.default_rng(0).normal(effect, 1.0, size=(20_000, 5))
    rejected = stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.80, abs=0.01)
    with pytest.raises(ValueError):
        minimum_detectable_effect(1.0, 1)


def test_gain_pairs_runs_by_seed_and_trial() -> None:
    # the augmented model wins by exactly 1 point on every (seed, trial) pair although the trials differ
    # a lot from each other: the paired interval is tight and excludes zero
    base, aug = [], []
    for seed in (0, 1, 2):
        r1 = [0.30 + 0.05 * t + 0.01 * seed for t in range(4)]
        base.append(record("agw", "none", "all", [trial(t, r, .7, .8, .3) for t, r in enumerate(r1)], seed=seed))
        aug.append(record("agw", "papg", "all", [trial(t, r + .01, .7, .8, .3) for t, r in enumerate(r1)], seed=seed))
    tables, _ = build_tables(base + aug)
    gain = tables[0].rows[1].gains[("all", "rank1")]
    assert gain.n_pairs == 12 and gain.n_seeds == 3
    assert gain.ci == pytest.approx((1.0, 1.0))
    assert gain.significant and gain.shown == 1.0
    # a mAP gain of exactly zero: a zero-width interval at zero, which does not exclude zero
    zero = tables[0].rows[1].gains[("all", "mAP")]
    assert zero.ci == pytest.approx((0.0, 0.0)) and not zero.significant
