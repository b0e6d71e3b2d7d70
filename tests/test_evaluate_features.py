"""`papg-bench evaluate --features`: the .npz, the core function, the record, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from papg_bench.cli import main
from papg_bench.data.fixtures import make_regdb_tree, make_sysu_tree
from papg_bench.data.regdb import read_list
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError
from papg_bench.protocols.evaluate import ProtocolOptions, RerankOptions, evaluate_features, parse_trials
from papg_bench.protocols.feature_files import load_features
from papg_bench.results.records import read_record


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory) -> Path:
    return make_sysu_tree(tmp_path_factory.mktemp("sysu") / "SYSU-MM01", test_ids=[6, 7, 8, 9], size=(16, 8))


@pytest.fixture(scope="module")
def regdb_root(tmp_path_factory) -> Path:
    return make_regdb_tree(tmp_path_factory.mktemp("regdb") / "RegDB", ids=6, images_per_modality=2, trials=2,
                           size=(16, 8))


def _identity_features(paths: list[str], pids: list[int], dim: int = 16) -> np.ndarray:
    feats = np.zeros((len(paths), dim), dtype=np.float32)
    feats[np.arange(len(paths)), np.asarray(pids) % dim] = 1.0
    return feats


def _sysu_npz(root: Path, path: Path) -> Path:
    records = read_sysu(root).records
    paths = [r.path for r in records]
    np.savez(path, features=_identity_features(paths, [r.pid for r in records]), paths=np.array(paths))
    return path


def test_perfect_sysu_features_score_one_in_every_variant(sysu_root):
    records = read_sysu(sysu_root).records
    paths = [r.path for r in records]
    feats = _identity_features(paths, [r.pid for r in records])
    for options in (ProtocolOptions(mode="all", trials=(0, 1)), ProtocolOptions(mode="indoor", shots=10, trials=(3,)),
                    ProtocolOptions(mode="all", distance="euclidean", backend="faiss-cpu", trials=(0,))):
        ev = evaluate_features(feats, paths, sysu_root, "sysu", options, progress=False)
        for trial in ev.record["trials"]:
            assert trial["cmc"] == [1.0] * len(trial["cmc"]) and trial["mAP"] == trial["mINP"] == pytest.approx(1)
            assert trial["num_queries"] == trial["num_valid_queries"] == 4 * 2 * 3


def _regdb_golden(root: Path) -> tuple[np.ndarray, list[str]]:
    """Visible image of test id k -> e_k; thermal likewise, except the second thermal image of the third
    test id, which looks like the first test id."""
    entries = read_list(root / "idx" / "test_visible_1.txt") + read_list(root / "idx" / "test_thermal_1.txt")
    test_ids = sorted({int(p.split("/")[1]) for p, _ in entries})
    slot = {pid: k for k, pid in enumerate(test_ids)}
    paths, rows = [], []
    for p, _ in entries:
        pid = int(p.split("/")[1])
        k = slot[pid]
        if p.startswith("Thermal") and k == 2 and p.endswith(f"_00001_{pid}.bmp"):
            k = 0
        paths.append(p.replace("/", "\\"))  # Windows-style paths are accepted
        rows.append(np.eye(8, dtype=np.float32)[k])
    return np.stack(rows), paths


def test_regdb_golden_both_directions(regdb_root):
    feats, paths = _regdb_golden(regdb_root)
    v2t = evaluate_features(feats, paths, regdb_root, "regdb", ProtocolOptions(mode="v2t", trials=(1,)),
                            progress=False)
    t2v = evaluate_features(feats, paths, regdb_root, "regdb", ProtocolOptions(mode="t2v", trials=(1,)),
                            progress=False)
    # v2t: both visible images of the third id rank (c_t0, a_t0, a_t1, b_t0, b_t1, c_t1): AP 2/3, INP 1/3.
    (trial,) = v2t.record["trials"]
    assert v2t.record["protocol"] == "regdb/v2t/trial-1/v1"
    assert trial["cmc"] == pytest.approx([1.0] * 6)
    assert trial["mAP"] == pytest.approx(8 / 9) and trial["mINP"] == pytest.approx(7 / 9)
    # t2v: the odd thermal image ranks both first-id images first: matches at 5 and 6 -> AP 4/15, INP 1/3.
    (trial,) = t2v.record["trials"]
    assert trial["cmc"] == pytest.approx([5 / 6] * 4 + [1.0, 1.0])
    assert trial["mAP"] == pytest.approx(79 / 90) and trial["mINP"] == pytest.approx(8 / 9)
    odd = [q for q in t2v.queries if q["first_correct_rank"] == 5]
    assert len(odd) == 1 and odd[0]["AP"] == pytest.approx(4 / 15) and odd[0]["top_correct"][:5] == [False] * 4 + [True]


def test_rerank_is_labelled(regdb_root):
    feats, paths = _regdb_golden(regdb_root)
    options = ProtocolOptions(mode="v2t", trials=(1,), rerank=RerankOptions(k1=4, k2=2, lambda_value=0.3))
    ev = evaluate_features(feats, paths, regdb_root, "regdb", options, progress=False)
    assert ev.record["protocol"] == "regdb/v2t/trial-1/rerank/v1"
    assert ev.record["rerank"] == {"k1": 4, "k2": 2, "lambda": 0.3}
    assert [t["trial"] for t in ev.record["trials"]] == [1]
    assert 0 < ev.record["trials"][0]["mAP"] <= 1


def test_missing_features_name_the_first_paths(sysu_root, tmp_path):
    records = read_sysu(sysu_root).records
    keep = [r for r in records if not r.path.startswith("cam6/0007/")]
    paths = [r.path for r in keep]
    with pytest.raises(UserError, match=r"3 query image\(s\) of the protocol have no feature, first: "
                                        r"cam6/0007/0001.jpg, cam6/0007/0002.jpg, cam6/0007/0003.jpg"):
        evaluate_features(_identity_features(paths, [r.pid for r in keep]), paths, sysu_root, "sysu",
                          ProtocolOptions(trials=(0,)), progress=False)


def test_npz_errors(tmp_path, sysu_root):
    with pytest.raises(UserError, match="does not exist"):
        load_features(tmp_path / "none.npz")
    np.savez(tmp_path / "keys.npz", feats=np.zeros((1, 2)), paths=np.array(["a"]))
    with pytest.raises(UserError, match="lacks 'features' \\(it has: feats, paths\\)"):
        load_features(tmp_path / "keys.npz")
    np.savez(tmp_path / "obj.npz", features=np.zeros((1, 2)), paths=np.array(["a"], dtype=object))
    with pytest.raises(UserError, match="dtype=str"):
        load_features(tmp_path / "obj.npz")
    np.savez(tmp_path / "nan.npz", features=np.array([[1.0, np.nan]]), paths=np.array(["a"]))
    with pytest.raises(UserError, match="NaN"):
        load_features(tmp_path / "nan.npz")
    np.savez(tmp_path / "dup.npz", features=np.zeros((2, 2)), paths=np.array(["./a", "a"]))
    with pytest.raises(UserError, match="appears twice"):
        load_features(tmp_path / "dup.npz")
    np.savez(tmp_path / "count.npz", features=np.zeros((2, 2)), paths=np.array(["a"]))
    with pytest.raises(UserError, match="2 feature rows but 1 paths"):
        load_features(tmp_path / "count.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError, match="not a readable .npz|text.npz"):
        load_features(tmp_path / "text.npz")
    absolute = np.array([str(sysu_root.resolve() / "cam1/0006/0001.jpg")])
    np.savez(tmp_path / "abs.npz", features=np.ones((1, 2)), paths=absolute)
    assert load_features(tmp_path / "abs.npz", sysu_root).paths == ["cam1/0006/0001.jpg"]


def test_parse_trials():
    assert parse_trials("0-9", "sysu") == tuple(range(10))
    assert parse_trials("1,3, 5", "regdb") == (1, 3, 5)
    assert parse_trials(None, "sysu") is None
    for bad, dataset in (("0-10", "sysu"), ("x", "sysu"), ("0", "regdb"), ("5-2", "regdb")):
        with pytest.raises(UserError, match="--trials"):
            parse_trials(bad, dataset)


def test_cli_sysu_writes_records_and_queries(sysu_root, tmp_path, work, capsys):
    npz = _sysu_npz(sysu_root, tmp_path / "feats.npz")
    args = ["evaluate", "--features", str(npz), "--dataset", "sysu", "--root", str(sysu_root), "--trials", "0-2"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "sysu/all/single-shot/seed-trials/v1" in shown and "indoor (3 trials)" in shown
    assert "100.00 ± 0.00" in shown
    folder = work / "results" / "sysu"
    record_files = sorted(folder.glob("*.json"))
    assert [p.name for p in record_files] == ["feats__sysu-all-single-shot-seed-trials.json",
                                              "feats__sysu-indoor-single-shot-seed-trials.json"]
    record = read_record(record_files[0])
    assert record["sampling"] == "seed" and record["rerank"] is None and record["backend"] == "torch"
    assert record["features"] == str(npz.resolve()) and record["summary"]["rank1"]["mean"] == 1.0
    lines = (folder / record["queries_file"]).read_text().splitlines()
    assert len(lines) == 3 * 24
    row = json.loads(lines[0])
    assert row["trial"] == 0 and row["query"] == "cam3/0006/0001.jpg" and row["first_correct_rank"] == 1
    assert all(p.split("/")[1] == "0006" for p in row["top"][:1]) and row["AP"] == 1.0


def test_cli_same_command_same_numbers(regdb_root, tmp_path, work):
    feats, paths = _regdb_golden(regdb_root)
    np.savez(tmp_path / "r.npz", features=feats + np.float32(0.01), paths=np.array(paths))
    outs = []
    for name in ("a", "b"):
        args = ["evaluate", "-d", "regdb", "--features", str(tmp_path / "r.npz"), "--root", str(regdb_root),
                "--trials", "1", "--out", str(tmp_path / name), "--backend", "faiss"]
        assert main(args) == 0
        outs.append(sorted((tmp_path / name).glob("*.json")))
    assert [p.name for p in outs[0]] == ["r__regdb-t2v-trial-1.json", "r__regdb-v2t-trial-1.json"]
    for a, b in zip(*outs, strict=True):
        assert read_record(a)["trials"] == read_record(b)["trials"]


def test_cli_errors_exit_2(sysu_root, tmp_path, work, capsys):
    npz = _sysu_npz(sysu_root, tmp_path / "feats.npz")
    base = ["evaluate", "--features", str(npz), "--root", str(sysu_root)]
    assert main(base + ["--dataset", "market"]) == 2
    assert main(base + ["--dataset", "sysu", "--mode", "outdoor"]) == 2
    assert main(base + ["--dataset", "sysu", "--sampling", "official"]) == 2
    assert main(["evaluate", "--dataset", "sysu", "--root", str(sysu_root)]) == 2
    assert main(["evaluate", "--dataset", "sysu", "--features", str(npz)]) == 2
    err = capsys.readouterr().err
    assert "market" in err and "--mode 'outdoor'" in err and "rand_perm_cam.mat" in err and "--root is required" in err
    assert "Traceback" not in err
    assert not (work / "results").exists()


def test_cli_llcm_features_give_both_modes_over_ten_trials(tmp_path, work, capsys):
    from papg_bench.data.fixtures import make_llcm_tree
    from papg_bench.data.llcm import read_llcm

    root = make_llcm_tree(tmp_path / "LLCM", train_ids=[1, 2], test_ids=[3, 5, 7])
    test = [r for r in read_llcm(root).records if r.split == "test"]
    npz = tmp_path / "llcm.npz"
    np.savez(npz, features=_identity_features([r.path for r in test], [r.pid for r in test]),
             paths=np.array([r.path for r in test]))
    assert main(["evaluate", "--features", str(npz), "--dataset", "llcm", "--root", str(root)]) == 0
    shown = capsys.readouterr().out
    assert "llcm/ir2vis/seed-trials/v1" in shown and "ir2vis-drawn (10 trials)" in shown
    records = [read_record(p) for p in sorted((work / "results" / "llcm").glob("*.json"))]
    assert sorted(r["mode"] for r in records) == ["ir2vis", "ir2vis-drawn"]
    for record in records:
        assert [t["trial"] for t in record["trials"]] == list(range(10)) and record["sampling"] is None
        assert record["summary"]["rank1"]["mean"] == 1.0 and record["dataset_kind"] == "llcm"


def _official_split_file(root: Path, path: Path) -> Path:
    """A rand_perm_cam.mat for ``root``: every visible image of each test id, in reverse file order, each trial."""
    from scipy.io import savemat

    numbers: dict[tuple[int, int], list[int]] = {}
    for r in read_sysu(root).records:
        if r.split == "test" and r.modality == "V":
            numbers.setdefault((r.cam, r.pid), []).append(int(Path(r.path).stem))
    top = max(pid for _, pid in numbers)
    cams = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((1, top), dtype=object)
        for pid in range(1, top + 1):
            found = sorted(numbers.get((cam, pid), []), reverse=True)
            per_id[0, pid - 1] = np.tile(np.array(found, dtype=float), (10, 1)) if found else np.zeros((0, 0))
        cams[cam - 1, 0] = per_id
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"rand_perm_cam": cams})
    return path


def test_cli_official_sampling_reads_a_split_file_given_by_path(sysu_root, tmp_path, work, capsys):
    npz = _sysu_npz(sysu_root, tmp_path / "feats.npz")
    split = _official_split_file(sysu_root, tmp_path / "elsewhere" / "perm.mat")
    base = ["evaluate", "--features", str(npz), "--root", str(sysu_root), "--dataset", "sysu", "--mode", "all",
            "--trials", "0,1"]
    assert main(base + ["--sampling", "official", "--split-file", str(split)]) == 0
    record = read_record(next((work / "results" / "sysu").glob("*official*.json")))
    from papg_bench.workspace import sha256_file

    assert record["split_file"] == {"path": str(split.resolve()), "sha256": sha256_file(split)}
    assert record["protocol"] == "sysu/all/single-shot/official-perm/v1"
    assert record["summary"]["rank1"]["mean"] == 1.0
    capsys.readouterr()
    assert main(base + ["--sampling", "seed", "--split-file", str(split)]) == 2
    assert "is read by --sampling official" in capsys.readouterr().err
    assert main(base + ["--sampling", "official", "--split-file", str(tmp_path / "absent.mat")]) == 2
    assert "wuancong/SYSU-MM01, evaluation/data_split/rand_perm_cam.mat" in capsys.readouterr().err
    assert main(base + ["--sampling", "official"]) == 2  # not in <root>/exp/ and not given
    err = capsys.readouterr().err
    assert "--split-file PATH" in err and "wuancong/SYSU-MM01" in err and "Traceback" not in err
    seed_record = [r for r in map(read_record, (work / "results" / "sysu").glob("*.json")) if r["sampling"] == "seed"]
    assert seed_record == []  # the refused commands wrote nothing
