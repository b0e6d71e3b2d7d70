"""Interchange with other code: a run's features saved and read back, the official feature files, released
checkpoints imported as runs and generators. Everything is made by the tests, at tiny sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reid_helpers import make_workspace, one_thread, train_tiny

from papg_bench.cli import main
from papg_bench.errors import UserError
from papg_bench.protocols.evaluate import ProtocolOptions, evaluate_features_file
from papg_bench.protocols.feature_files import feature_meta, load_features
from papg_bench.reid_baselines.run import evaluate_run
from papg_bench.results.records import read_record
from papg_bench.workspace import Workspace, sha256_file

single_thread = pytest.fixture(autouse=True)(one_thread)
TRIALS = "0-1"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("interchange"))


@pytest.fixture(scope="module")
def trained(ws: Workspace):  # noqa: ANN201
    return train_tiny(ws, epochs=1, milestones=())


def _metrics(record: dict) -> list[tuple]:
    return [(t["trial"], t["cmc"], t["mAP"], t["mINP"]) for t in record["trials"]]


def test_saved_features_are_read_back_by_evaluate_features(ws: Workspace, trained, tmp_path: Path) -> None:  # noqa: ANN001
    file = tmp_path / "feats.npz"
    outcome = evaluate_run(ws, "sysu", run="agw-none-s0", device="cpu", progress=False, trials=TRIALS,
                           save_features=file, out_dir=tmp_path / "results")
    sha = sha256_file(trained.run_dir / "checkpoint.pt")
    assert all(r["features"] == str(file.resolve()) for r in outcome.records)
    assert all(r["checkpoint_sha256"] == sha and r["imported"] is None for r in outcome.records)
    with np.load(file, allow_pickle=False) as data:
        assert set(data.keys()) >= {"features", "paths", "pids", "cams", "modality", "feature", "flip_test",
                                    "checkpoint_sha256", "run", "dataset"}
        n = len(data["paths"])
        assert data["features"].shape[0] == n and data["features"].dtype == np.float32
        assert len(data["pids"]) == len(data["cams"]) == len(data["modality"]) == n
        assert set(data["modality"].tolist()) == {"V", "I"} and set(data["pids"].tolist()) == {9, 10, 11}
        assert all(p.startswith(f"cam{c}/{pid:04d}/") for p, c, pid in
                   zip(data["paths"].tolist(), data["cams"].tolist(), data["pids"].tolist(), strict=True))
    assert feature_meta(file) == {"feature": "bn", "flip_test": False, "checkpoint_sha256": sha,
                                  "run": "agw-none-s0", "dataset": "sysu"}
    np.testing.assert_allclose(np.linalg.norm(load_features(file).features, axis=1), 1.0, atol=1e-5)

    root = Path(outcome.records[0]["root"])
    again = evaluate_features_file(file, root, "sysu", ProtocolOptions(trials=(0, 1)), tmp_path / "from-file",
                                   progress=False)
    by_mode = {r["mode"]: r for r in outcome.records}
    for saved in again:
        record = saved.record
        assert _metrics(record) == _metrics(by_mode[record["mode"]])
        assert (record["checkpoint_sha256"], record["feature"], record["flip_test"], record["features_run"]) == (
            sha, "bn", False, "agw-none-s0")

    before = file.stat().st_mtime_ns
    reused = evaluate_run(ws, "sysu", run="agw-none-s0", device="cpu", progress=False, trials=TRIALS,
                          save_features=file, out_dir=tmp_path / "results")
    assert reused.reused == [True, True] and file.stat().st_mtime_ns == before
    flipped = evaluate_run(ws, "sysu", run="agw-none-s0", device="cpu", progress=False, trials=TRIALS,
                           save_features=file, out_dir=tmp_path / "results", flip_test=True, modes=("all",))
    assert flipped.reused == [False] and feature_meta(file)["flip_test"] is True


def test_cli_save_features(ws: Workspace, trained, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    file = tmp_path / "cli.npz"
    args = ["--work", str(ws.root), "evaluate", "-d", "sysu", "--run", "agw-none-s0", "--device", "cpu",
            "--trials", TRIALS, "--mode", "all", "--out", str(tmp_path / "r")]
    assert main(args + ["--save-features", str(file)]) == 0
    assert f"features: {file.resolve()}" in capsys.readouterr().out
    record = read_record(next((tmp_path / "r").glob("*.json")))
    assert record["features"] == str(file.resolve())
    assert main(args + ["--save-features", str(tmp_path)]) == 2  # a folder, not a file
    assert "is a folder" in capsys.readouterr().err
    assert main(args + ["--format", "official"]) == 2
    assert "--format and --name say how to read --features" in capsys.readouterr().err
    root = record["root"]
    assert main(["--work", str(ws.root), "evaluate", "-d", "sysu", "--features", str(file), "--root", root,
                 "--save-features", str(tmp_path / "x.npz")]) == 2
    assert "--save-features" in capsys.readouterr().err
    assert main(["--work", str(ws.root), "evaluate", "-d", "sysu", "--features", str(file), "--root", root,
                 "--trials", TRIALS, "--mode", "all", "--out", str(tmp_path / "f")]) == 0


def test_save_features_rejects_mismatched_rows(tmp_path: Path) -> None:
    from papg_bench.protocols.feature_files import save_features

    with pytest.raises(UserError, match="2 feature rows but 1 paths"):
        save_features(tmp_path / "a.npz", np.ones((2, 3)), ["a.jpg"], [1], [1], ["V"], {})
    assert not (tmp_path / "a.npz").exists()


# --- the dataset authors' feature files (SYSU-MM01: NAME_cam<k>.mat) ---------------------------------------


def _root(ws: Workspace) -> Path:
    from papg_bench.data.store import open_store

    return Path(str(open_store(ws.dataset_dir("sysu")).meta["source_root"]))


def test_official_sysu_files_hold_the_cells_the_matlab_evaluation_reads(ws: Workspace, trained,  # noqa: ANN001
                                                                          tmp_path: Path) -> None:
    from scipy.io import loadmat

    from papg_bench.exports import export_features

    npz = tmp_path / "run.npz"
    assert export_features(ws, "sysu", "npz", npz, run="agw-none-s0", device="cpu", progress=False).rows > 0
    table = load_features(npz)
    made = export_features(ws, "sysu", "official", tmp_path / "mat", run="agw-none-s0", device="cpu",
                           progress=False)
    assert made.fmt == "sysu-mat" and made.rows == len(table.paths)
    assert [p.name for p in made.files] == [f"agw-none-s0_cam{k}.mat" for k in range(1, 7)]
    root = _root(ws)
    dim = table.features.shape[1]
    for cam, path in enumerate(made.files, 1):
        cells = loadmat(str(path))["feature"]
        ids = sorted(int(d.name) for d in (root / f"cam{cam}").iterdir())
        assert cells.dtype == object and cells.shape == (max(ids), 1)  # one cell per id up to the camera's highest
        for pid in range(1, max(ids) + 1):
            cell = cells[pid - 1, 0]
            images = sorted(p.name for p in (root / f"cam{cam}" / f"{pid:04d}").glob("*.jpg")) if pid in ids else []
            if pid in (9, 10, 11) and images:  # test identities: row i is the i-th image in file order
                assert cell.dtype == np.float64 and cell.shape == (len(images), dim)
                expected = [table.index[f"cam{cam}/{pid:04d}/{name}"] for name in images]
                np.testing.assert_array_equal(cell, table.features[expected].astype(np.float64))
            else:  # training identities, and identities the camera does not see: zero-row cells
                assert cell.shape == (0, dim)

    from_npz = evaluate_features_file(npz, root, "sysu", ProtocolOptions(trials=(0, 1)), tmp_path / "a",
                                      progress=False)
    from_mat = evaluate_features_file(tmp_path / "mat", root, "sysu", ProtocolOptions(trials=(0, 1)), tmp_path / "b",
                                      progress=False, fmt="sysu-mat")
    for a, b in zip(from_npz, from_mat, strict=True):
        assert _metrics(a.record) == _metrics(b.record)
        assert b.record["features_format"] == "sysu-mat" and b.record["features"] == str((tmp_path / "mat").resolve())
        assert b.record_path.name.startswith("mat__")
    from papg_bench.protocols.evaluate import record_features

    again = record_features(from_mat[0].record)
    assert sorted(again.paths) == sorted(table.paths)


def test_official_files_from_an_npz_through_the_cli_and_their_errors(ws: Workspace, trained,  # noqa: ANN001
                                                                      tmp_path: Path, capsys) -> None:
    from scipy.io import savemat

    from papg_bench.exports import export_features

    npz = tmp_path / "feats.npz"
    export_features(ws, "sysu", "npz", npz, run="agw-none-s0", device="cpu", progress=False)
    root = str(_root(ws))
    base = ["--work", str(ws.root), "export-features", "-d", "sysu", "--out", str(tmp_path / "out")]
    assert main(base + ["--format", "sysu-mat", "--features", str(npz), "--root", root, "--name", "mine"]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "out" / "mine_cam6.mat").is_file()
    evaluate = ["--work", str(ws.root), "evaluate", "-d", "sysu", "--features", str(tmp_path / "out"), "--root", root,
                "--trials", TRIALS, "--mode", "all", "--out", str(tmp_path / "r")]
    assert main(evaluate + ["--format", "official"]) == 0  # the folder's one set

    assert main(base + ["--format", "official", "--features", str(npz)]) == 2  # no --root
    assert main(base + ["--format", "matlab", "--run", "agw-none-s0"]) == 2
    assert main(base + ["--format", "official", "--run", "agw-none-s0", "--features", str(npz)]) == 2
    assert main(["--work", str(ws.root), "export-features", "-d", "regdb", "--format", "official", "--features",
                 str(npz), "--root", root, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--root is required" in err and "--format 'matlab'" in err and "one of them" in err
    assert "RegDB evaluation code reads no feature files" in err

    table = load_features(npz)
    keep = [i for i, p in enumerate(table.paths) if p != "cam3/0010/0002.jpg"]
    partial = tmp_path / "partial.npz"
    np.savez(partial, features=table.features[keep], paths=np.array([table.paths[i] for i in keep]))
    with pytest.raises(UserError, match=r"no feature for cam3/0010/0002.jpg \(1 of the 3 images of cam3 id 10\)"):
        export_features(ws, "sysu", "official", tmp_path / "p", features=partial, root=Path(root))
    assert not (tmp_path / "p").exists()  # nothing written

    bad = tmp_path / "bad"
    bad.mkdir()
    cells = np.empty((10, 1), dtype=object)
    for i in range(10):
        cells[i, 0] = np.zeros((0, 4))
    cells[9, 0] = np.ones((2, 4))  # cam3 id 10 holds 3 images
    with open(bad / "x_cam3.mat", "wb") as fh:
        savemat(fh, {"feature": cells})
    with pytest.raises(UserError, match=r"feature\{10\} has 2 rows but .*cam3/0010 holds 3 images"):
        evaluate_features_file(bad, Path(root), "sysu", ProtocolOptions(trials=(0,)), tmp_path / "r2",
                               progress=False, fmt="official")
    (bad / "y_cam1.mat").write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="sets x, y: choose one with --name"):
        evaluate_features_file(bad, Path(root), "sysu", ProtocolOptions(trials=(0,)), tmp_path / "r2",
                               progress=False, fmt="official")
    with pytest.raises(UserError, match="could not be read as a MATLAB file"):
        evaluate_features_file(bad, Path(root), "sysu", ProtocolOptions(trials=(0,)), tmp_path / "r2",
                               progress=False, fmt="official", name="y")


# --- released AGW checkpoints in -----------------------------------------------------------------------------

REFERENCE = Path(__file__).parent / "data" / "reference"
RELEASED_NAME = "sysu_agw_p4_n8_lr_0.1_seed_0_best.t"


class Options:
    """Stands for an object a training script might pickle next to its weights."""


def reference_keys(name: str) -> list[str]:
    return [line.split()[0] for line in (REFERENCE / name).read_text().splitlines() if line and line[0] != "#"]


def _analogue(key: str) -> str:
    """A released key the mapping leaves out -> a used key of the same shape (the networks are three alike
    ResNet-50s: the visible and thermal layers 1-4 are the base's, the base's stem a modality's)."""
    for unused in ("visible_module.visible.", "thermal_module.thermal."):
        if key.startswith(unused) and ".layer" in key:
            return key.replace(unused, "base_resnet.base.")
    return key.replace("base_resnet.base.", "visible_module.visible.")


def released_agw(width: int = 8, classes: int = 8, seed: int = 0):  # noqa: ANN201 - (state dict, model)
    """The released embed_net's state dict (every key of tests/data/reference/agw_embed_net_395.txt, in its
    order) at a small width, made from papg-bench's paper AGW with seeded weights and batch-norm statistics."""
    from papg_bench.config import make_config
    from papg_bench.reid_baselines import agw
    from papg_bench.reid_baselines.config import TrainConfig
    from papg_bench.reid_baselines.interchange import agw_state_from_reference

    torch = pytest.importorskip("torch")
    cfg = make_config(TrainConfig, "paper", overrides={"pretrained": "none", "width": width, "size": (64, 32)})
    torch.manual_seed(seed)
    model = agw.build(cfg, classes)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", "bias")) or "bn" in name or "bottleneck" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1 + (name.endswith("weight")))
    ours = model.state_dict()
    released = {}
    for key in reference_keys("agw_embed_net_395.txt"):
        mapped = agw_state_from_reference({key: torch.zeros(())}) or agw_state_from_reference(
            {_analogue(key): torch.zeros(())})
        source = next(iter(mapped))
        released[key] = ours[source].clone()
    return released, model


def _save_released(path: Path, net: dict, epoch: int = 40) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"net": net, "cmc": np.array([0.475, 0.8], dtype=np.float32), "mAP": np.float64(0.4765),
                "mINP": np.float64(0.353), "epoch": epoch}, path)
    return path


def test_a_released_agw_checkpoint_becomes_a_run_that_evaluate_and_report_use(ws: Workspace, tmp_path: Path,
                                                                              capsys) -> None:  # noqa: ANN001
    from papg_bench.data.store import open_store
    from papg_bench.reid_baselines.extraction import extract_features
    from papg_bench.reid_baselines.imported_runs import import_run
    from papg_bench.reid_baselines.trainer import modality_codes

    net, model = released_agw()
    assert len(net) == 1025
    file = _save_released(tmp_path / RELEASED_NAME, net)
    outcome = import_run(ws, "sysu", file, size=(64, 32))
    assert outcome.status == "done" and outcome.run_dir == ws.run_dir("sysu", "agw-imported")
    imported = outcome.summary["imported"]
    assert imported["sha256"] == sha256_file(file) and imported["from"] == str(file.resolve())
    assert (imported["epoch"], imported["mAP"], imported["rank1"]) == (40, pytest.approx(0.4765), pytest.approx(0.475))
    assert outcome.summary["identities"] == 8 and outcome.summary["run_config"]["train"]["nl_inter"] == "one"
    assert import_run(ws, "sysu", file, size=(64, 32)).status == "reused"

    results = tmp_path / "results"
    evaluated = evaluate_run(ws, "sysu", run="agw-imported", device="cpu", progress=False, trials=TRIALS,
                             out_dir=results, save_features=tmp_path / "imported.npz")
    for record in evaluated.records:
        assert record["imported"] == imported and (record["baseline"], record["augment"], record["seed"]) == (
            "agw", "none", 0)
        assert record["selection"]["by"] == "imported"
    # the run's features are the released network's: the same weights, extracted here directly
    store = open_store(ws.dataset_dir("sysu"))
    table = load_features(tmp_path / "imported.npz")
    rows = np.array([store.row_of_path()[p] for p in table.paths])
    direct = extract_features(model, store.images, rows, modality_codes(store.modalities[rows]), (64, 32),
                              pytest.importorskip("torch").device("cpu"))
    np.testing.assert_allclose(table.features, direct, atol=1e-5)

    assert main(["--work", str(ws.root), "report", "-d", "sysu", "--results", str(results), "--out",
                 str(tmp_path / "report"), "--no-plots", "--format", "md"]) == 0
    assert "AGW" in capsys.readouterr().out


def test_import_run_names_the_first_tensor_that_does_not_fit(ws: Workspace, tmp_path: Path, capsys) -> None:
    from papg_bench.reid_baselines.imported_runs import import_run

    torch = pytest.importorskip("torch")
    net, _ = released_agw(seed=1)
    bad = dict(net)
    bad["base_resnet.base.layer3.2.conv2.weight"] = torch.zeros(32, 32, 1, 1)
    with pytest.raises(UserError, match=r"'base_resnet\.base\.layer3\.2\.conv2\.weight' has shape 32x32x1x1, the AGW "
                                        r"network \(ResNet-50 width 8, 8 classes, non-local inter-channels one\) needs "
                                        r"32x32x3x3"):
        import_run(ws, "sysu", _save_released(tmp_path / "bad.t", bad), run="bad", size=(64, 32))
    missing = {k: v for k, v in net.items() if not k.startswith("NL_3.2.")}
    with pytest.raises(UserError, match="tensor\\(s\\) of the AGW network .* are missing"):
        import_run(ws, "sysu", _save_released(tmp_path / "missing.t", missing), run="bad", size=(64, 32))
    with pytest.raises(UserError, match="'head.weight' is not a tensor of the released network"):
        import_run(ws, "sysu", _save_released(tmp_path / "other.t", {**net, "head.weight": torch.zeros(1)}),
                   run="bad", size=(64, 32))
    assert not ws.run_dir("sysu", "bad").exists()

    torch.save({"net": net, "args": Options()}, tmp_path / "pickled.t")  # an argparse-like object: code
    args = ["--work", str(ws.root), "import-run", "-d", "sysu", "--size", "64x32", "--run", "cli"]
    assert main(args + ["--from", str(tmp_path / "pickled.t")]) == 2
    assert "does not run code from a checkpoint" in capsys.readouterr().err
    assert main(args + ["--from", str(tmp_path / "none.t")]) == 2
    assert main(args + ["--from", str(tmp_path / "bad.t"), "--baseline", "cgrnet"]) == 2
    assert main(args + ["--from", str(_save_released(tmp_path / RELEASED_NAME, net))]) == 0
    assert "imported from" in capsys.readouterr().out
    other = _save_released(tmp_path / "other_best.t", net, epoch=60)
    assert main(args + ["--from", str(other)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--from", str(other), "--force"]) == 0


# --- released DART checkpoint pairs in -----------------------------------------------------------------------

DART_PAIR = ("release_sysu_dart_nr20_net1.t", "release_sysu_dart_nr20_net2.t")


def released_dart(seed: int):  # noqa: ANN201 - (state dict, model)
    """One network of the released DART pair: AGW's embed_net keys plus the unused ``bottleneck_2`` after
    ``bottleneck`` (DART's model.py), at a small width."""
    torch = pytest.importorskip("torch")
    net, model = released_agw(seed=seed)
    out = {}
    for key, value in net.items():
        out[key] = value
        if key == "bottleneck.num_batches_tracked":
            dim = net["bottleneck.weight"].shape
            out.update({"bottleneck_2.weight": torch.ones(dim), "bottleneck_2.bias": torch.zeros(dim),
                        "bottleneck_2.running_mean": torch.zeros(dim), "bottleneck_2.running_var": torch.ones(dim),
                        "bottleneck_2.num_batches_tracked": torch.tensor(0)})
    assert len(out) == len(net) + 5
    return out, model


def _save_dart(path: Path, net: dict, model, epoch: int = 99) -> Path:  # noqa: ANN001
    """As the released run.py saves each network: net, scores, epoch and the optimiser's state."""
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    torch.save({"net": net, "cmc": np.array([0.62, 0.9], dtype=np.float32), "mAP": np.float64(0.58),
                "mINP": np.float64(0.41), "epoch": epoch, "optimizer": optimizer.state_dict()}, path)
    return path


def test_a_released_dart_pair_becomes_one_run_that_evaluate_and_report_use(ws: Workspace, tmp_path: Path,
                                                                          capsys) -> None:  # noqa: ANN001
    torch = pytest.importorskip("torch")
    from papg_bench.data.store import open_store
    from papg_bench.reid_baselines.extraction import extract_features
    from papg_bench.reid_baselines.imported_runs import import_run
    from papg_bench.reid_baselines.trainer import modality_codes

    (net1, model1), (net2, model2) = released_dart(seed=2), released_dart(seed=3)
    first = _save_dart(tmp_path / DART_PAIR[0], net1, model1)
    second = _save_dart(tmp_path / DART_PAIR[1], net2, model2)
    outcome = import_run(ws, "sysu", first, baseline="dart", size=(64, 32))  # the partner found by its name
    assert outcome.status == "done" and outcome.run_dir == ws.run_dir("sysu", "dart-imported")
    imported = outcome.summary["imported"]
    assert imported["files"] == [{"from": str(first.resolve()), "sha256": sha256_file(first)},
                                 {"from": str(second.resolve()), "sha256": sha256_file(second)}]
    assert (imported["from"], imported["sha256"]) == (str(first.resolve()), sha256_file(first))
    assert (imported["epoch"], imported["mAP"], imported["rank1"]) == (99, pytest.approx(0.58), pytest.approx(0.62))
    train = outcome.summary["run_config"]["train"]
    assert (train["dart_variant"], train["epochs"], outcome.summary["identities"]) == ("twin", 100, 8)
    assert import_run(ws, "sysu", first, baseline="dart", size=(64, 32)).status == "reused"

    results = tmp_path / "results"
    evaluated = evaluate_run(ws, "sysu", run="dart-imported", device="cpu", progress=False, trials=TRIALS,
                             out_dir=results, save_features=tmp_path / "dart.npz")
    for record in evaluated.records:
        assert record["imported"] == imported and (record["baseline"], record["augment"]) == ("dart", "none")
    # the run tests with the mean of both released networks' unit features, as the released test.py
    store = open_store(ws.dataset_dir("sysu"))
    table = load_features(tmp_path / "dart.npz")
    rows = np.array([store.row_of_path()[p] for p in table.paths])
    each = [extract_features(m, store.images, rows, modality_codes(store.modalities[rows]), (64, 32),
                             torch.device("cpu")) for m in (model1, model2)]
    mean = (each[0] + each[1]) / 2
    np.testing.assert_allclose(table.features, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(table.features, each[0], atol=1e-3)

    assert main(["--work", str(ws.root), "report", "-d", "sysu", "--results", str(results), "--out",
                 str(tmp_path / "report"), "--no-plots", "--format", "md"]) == 0
    assert "DART" in capsys.readouterr().out


def test_import_run_names_the_first_tensor_of_a_dart_pair_that_does_not_fit(ws: Workspace, tmp_path: Path,
                                                                          capsys) -> None:  # noqa: ANN001
    torch = pytest.importorskip("torch")
    from papg_bench.reid_baselines.imported_runs import import_run

    (net1, model1), (net2, model2) = released_dart(seed=4), released_dart(seed=5)
    bad = dict(net2)
    bad["NL_3.1.W.0.weight"] = torch.zeros(128, 2, 1, 1)
    first = _save_dart(tmp_path / "x_net1.t", net1, model1)
    _save_dart(tmp_path / "x_net2.t", bad, model2)
    with pytest.raises(UserError, match=r"x_net2\.t: 'NL_3\.1\.W\.0\.weight' has shape 128x2x1x1, the AGW network "
                                        r"\(ResNet-50 width 8, 8 classes, non-local inter-channels one\) \(network 2 "
                                        r"of the pair\) needs 128x1x1x1"):
        import_run(ws, "sysu", first, baseline="dart", run="bad-dart", size=(64, 32))
    assert not ws.run_dir("sysu", "bad-dart").exists()

    args = ["--work", str(ws.root), "import-run", "-d", "sysu", "--baseline", "dart", "--size", "64x32", "--run",
            "cli-dart"]
    assert main(args + ["--from", str(first)]) == 2
    err = capsys.readouterr().err
    assert "'NL_3.1.W.0.weight'" in err and "x_net2.t" in err
    alone = _save_dart(tmp_path / "y_net1.t", net1, model1)
    assert main(args + ["--from", str(alone)]) == 2  # no y_net2.t next to it
    err = capsys.readouterr().err
    assert "--net2" in err and "y_net2.t: no such file" in err
    other = _save_dart(tmp_path / "second.t", net2, model2)
    assert main(args + ["--from", str(other)]) == 2  # not a _net1.t name and no --net2
    assert "_net1.t" in capsys.readouterr().err
    late = _save_dart(tmp_path / "late.t", net2, model2, epoch=80)
    assert main(args + ["--from", str(alone), "--net2", str(late)]) == 2
    assert "epoch 99" in capsys.readouterr().err
    assert main(["--work", str(ws.root), "import-run", "-d", "sysu", "--from", str(alone), "--net2", str(other),
                 "--size", "64x32"]) == 2  # --net2 is DART's
    assert "--net2" in capsys.readouterr().err
    assert main(args + ["--from", str(alone), "--net2", str(other)]) == 0
    out = capsys.readouterr().out
    assert str(alone.resolve()) in out and str(other.resolve()) in out


# --- released PAPG generators in ----------------------------------------------------------------------------

_RELEASED_NON_LOCAL = {"g": "g.0", "out": "W.0", "bn": "W.1", "theta": "theta", "phi": "phi"}


def released_generator_state(generator) -> dict:  # noqa: ANN001
    """A papg-bench Generator's state dict under the released models.py names (``non_local_att``, ``g.0``,
    ``W.0``, ``W.1``)."""
    import re

    out = {}
    for key, value in generator.state_dict().items():
        m = re.fullmatch(r"(model\.\d+)\.non_local\.(g|out|bn|theta|phi)\.(\w+)", key)
        out[f"{m[1]}.non_local_att.{_RELEASED_NON_LOCAL[m[2]]}.{m[3]}" if m else key] = value.clone()
    return out


@pytest.fixture(scope="module")
def gen_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from generator_helpers import make_workspace as make_generator_workspace

    return make_generator_workspace(tmp_path_factory.mktemp("released-generators"))


def _released_pair(folder: Path, channels: int = 8, seed: int = 0):  # noqa: ANN202 - (a2b, b2a, networks)
    torch = pytest.importorskip("torch")
    from papg_bench.generators.papg import build_networks

    torch.manual_seed(seed)
    gens, _ = build_networks(3, channels, 8, 2, True, "dot", "paper")
    folder.mkdir(parents=True, exist_ok=True)
    a2b, b2a = folder / "netG_A2B.pth", folder / "netG_B2A.pth"
    torch.save(released_generator_state(gens.v2i), a2b)  # as the released train.py: the state dict alone
    torch.save(released_generator_state(gens.i2v), b2a)
    return a2b, b2a, gens


def test_released_generators_become_a_run_that_generate_uses(gen_ws: Workspace, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from papg_bench.generators.released import import_generator
    from papg_bench.generators.synthesis import generate
    from papg_bench.generators.trainer import load_generators

    a2b, b2a, gens = _released_pair(tmp_path / "output")
    released = set(reference_keys("papg_generator.txt"))
    names = set(torch.load(a2b, weights_only=True))
    assert {k for k in names if k.startswith("model.10.")} <= released  # the released models.py's names
    made = import_generator(gen_ws, "sysu", a2b, b2a, "released", size=(48, 32))
    assert made.status == "done"
    assert made.imported["netG_A2B"] == {"from": str(a2b.resolve()), "sha256": sha256_file(a2b)}
    assert made.imported["netG_B2A"]["sha256"] == sha256_file(b2a)
    assert (made.config["config"]["channels"], made.config["config"]["blocks"]) == (8, 2)
    cfg, loaded, state = load_generators(made.run_dir / "generators.pt", torch.device("cpu"))
    assert state["imported"] == made.imported and cfg.pose and cfg.attention
    for ours, theirs in ((loaded.v2i, gens.v2i), (loaded.i2v, gens.i2v)):
        for key, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), key
    assert import_generator(gen_ws, "sysu", a2b, b2a, "released", size=(48, 32)).status == "reused"

    result = generate(gen_ws, "sysu", run="released", device="cpu", score=True, png_dir=tmp_path / "png")
    assert result.count > 0 and result.quality is not None
    assert result.generator_sha256 == sha256_file(made.run_dir / "generators.pt")
    assert any((tmp_path / "png" / "B").rglob("*.png")) and any((tmp_path / "png" / "A").rglob("*.png"))


def test_import_generator_names_the_first_tensor_that_does_not_fit(gen_ws: Workspace, tmp_path: Path,
                                                                   capsys) -> None:
    torch = pytest.importorskip("torch")
    from papg_bench.generators.released import import_generator

    a2b, b2a, _ = _released_pair(tmp_path / "good")
    _, wide, _ = _released_pair(tmp_path / "wide", channels=16)
    with pytest.raises(UserError, match=r"--b2a .*netG_B2A.pth: 'model.1.weight' has shape 16x6x7x7, the PAPG "
                                        r"generator \(width 8, 2 blocks, pose skeleton, attention\) needs 8x6x7x7"):
        import_generator(gen_ws, "sysu", a2b, wide, "bad", size=(48, 32))
    state = torch.load(a2b, weights_only=True)
    state["model.11.non_local_att.W.0.weight"] = torch.zeros(32, 4, 1, 1)
    torch.save(state, tmp_path / "bad_A2B.pth")
    with pytest.raises(UserError, match=r"'model.11.non_local_att.W.0.weight' has shape 32x4x1x1"):
        import_generator(gen_ws, "sysu", tmp_path / "bad_A2B.pth", b2a, "bad", size=(48, 32))
    with pytest.raises(UserError, match=r"takes 6 input channels .* --pose-map heatmaps gives 18"):
        import_generator(gen_ws, "sysu", a2b, b2a, "bad", size=(48, 32), pose_map="heatmaps")
    assert not gen_ws.generator_dir("sysu", "bad").exists()

    args = ["--work", str(gen_ws.root), "import-generator", "-d", "sysu", "--size", "48x32", "--name", "cli"]
    assert main(args + ["--a2b", str(a2b), "--b2a", str(b2a)]) == 0
    assert "imported" in capsys.readouterr().out
    assert main(args + ["--a2b", str(b2a), "--b2a", str(a2b)]) == 2  # other files, same name
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--a2b", str(tmp_path / "none.pth"), "--b2a", str(b2a), "--force"]) == 2
    assert main(["--work", str(gen_ws.root), "generate", "-d", "sysu", "--run", "cli", "--device", "cpu"]) == 0
