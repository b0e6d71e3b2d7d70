"""Result records (round trip, validation, newer format) and the paired bootstrap interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from report_records import record, save, trial

from papg_bench.errors import UserError
from papg_bench.results.aggregate import build_tables, paired_bootstrap_ci
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


def test_bootstrap_constant_differences_give_a_zero_width_interval() -> None:
    low, high = paired_bootstrap_ci([2.5] * 20)
    assert low == pytest.approx(2.5) and high == pytest.approx(2.5)


def test_bootstrap_interval_on_known_sign_cases() -> None:
    positive = np.random.default_rng(7).uniform(1.0, 3.0, size=30)
    low, high = paired_bootstrap_ci(positive)
    assert 1.0 < low < positive.mean() < high < 3.0
    assert paired_bootstrap_ci(positive) == (low, high)  # fixed-seed generator: same input, same interval
    low, high = paired_bootstrap_ci(-positive)
    assert high < 0
    low, high = paired_bootstrap_ci([-1.0, 1.0] * 10)
    assert low < 0 < high
    with pytest.raises(ValueError):
        paired_bootstrap_ci([])


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
