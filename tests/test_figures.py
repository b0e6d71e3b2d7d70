"""`papg-bench figures ranks|tsne`: picked queries, frames, distances, t-SNE sidecar, errors (all datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reid_helpers import TINY, one_thread

from papg_bench.catalog import dataset_names, get_dataset
from papg_bench.cli import main
from papg_bench.data import fixtures
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import Store, open_store
from papg_bench.protocols.evaluate import ProtocolOptions, evaluate_features_file
from papg_bench.results import figures
from papg_bench.results.figures import pick_queries, rank_figure, tsne_figure
from papg_bench.results.records import write_queries, write_record
from papg_bench.workspace import Workspace

single_thread = pytest.fixture(autouse=True)(one_thread)
SIZE = (32, 16)
TREES = {
    "sysu": lambda root: fixtures.make_sysu_tree(root, train_ids=[1, 2], val_ids=[3], test_ids=[6, 7, 8, 9, 10],
                                                 images_per_camera=2, size=SIZE),
    "regdb": lambda root: fixtures.make_regdb_tree(root, ids=6, images_per_modality=3, trials=2, size=SIZE),
    "llcm": lambda root: fixtures.make_llcm_tree(root, train_ids=[1, 2], test_ids=[3, 4, 5], size=SIZE),
}
NOISE = {"base": 0.8, "better": 0.3}


def _features(store: Store, noise: float, seed: int) -> np.ndarray:
    """One-hot identity features plus noise: the noisier, the more wrong matches."""
    rng = np.random.default_rng(seed)
    feats = np.eye(16, dtype=np.float32)[store.pids % 16]
    return feats + noise * rng.standard_normal(feats.shape).astype(np.float32)


def _build(base: Path, name: str) -> tuple[Workspace, Store, dict[str, Path]]:
    """A store of ``name``'s fixture tree and two features records (``base``, ``better``) of its first trial."""
    assert set(TREES) == set(dataset_names())  # a new dataset needs a tree here
    root = TREES[name](base / name)
    ws = Workspace(base / "work")
    prepare_store(read_layout(name, root), root, ws.dataset_dir(name), SIZE, workers=1)
    store = open_store(ws.dataset_dir(name))
    trial = get_dataset(name).protocol.default_trials(root)[0]
    npz = {}
    for seed, (run, noise) in enumerate(NOISE.items()):
        npz[run] = base / f"{run}.npz"
        np.savez(npz[run], features=_features(store, noise, seed), paths=np.array(store.paths))
        evaluate_features_file(npz[run], root, name, ProtocolOptions(trials=(trial,)), ws.results_dir(name),
                               progress=False)
    return ws, store, npz


@pytest.fixture(scope="module", params=dataset_names())
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    name = request.param
    return (name, *_build(tmp_path_factory.mktemp(f"fig-{name}"), name))


@pytest.fixture(scope="module")
def sysu(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return _build(tmp_path_factory.mktemp("fig-sysu"), "sysu")


def _valid_files(files: list[Path]) -> None:
    png, pdf, sidecar = files
    assert png.suffix == ".png" and pdf.suffix == ".pdf" and sidecar.suffix == ".json"
    with Image.open(png) as image:
        image.verify()
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    assert json.loads(sidecar.read_text())


def _rows(ws: Workspace, dataset: str, run: str, mode: str | None = None) -> dict[str, dict]:
    (path,) = [p for p in ws.results_dir(dataset).glob(f"{run}__*.queries.jsonl") if mode is None or mode in p.name]
    return {r["query"]: r for r in map(json.loads, path.read_text().splitlines())}


def _by_path(store: Store) -> dict[str, int]:
    return {p: int(pid) for p, pid in zip(store.paths, store.pids, strict=True)}


def test_every_dataset_draws_both_figures(built, tmp_path: Path) -> None:  # noqa: ANN001
    name, ws, store, _ = built
    made = rank_figure(ws, name, "base", compare="better", count=2, seed=3)
    _valid_files(made.files)
    pid_of = _by_path(store)
    protocol = store.dataset.protocol
    assert made.sidecar["mode"] == next(iter(protocol.modes))
    for block in made.sidecar["queries"]:
        assert [entry["label"] for entry in block["lists"]] == ["base", "better"]
        assert block["modality"] in ("visible", "infrared")
        for entry in block["lists"]:
            # a frame is green exactly where the gallery image shows the query's identity
            assert entry["correct"] == [pid_of[g] == block["pid"] for g in entry["top"]]
            assert entry["distance"] == sorted(entry["distance"]) and len(entry["top"]) <= made.sidecar["top_k"]
    shown = tsne_figure(ws, name, "base", compare="better", ids=2, per_identity=3, out=tmp_path / "tsne.png")
    _valid_files(shown.files)
    assert shown.files[0] == tmp_path / "tsne.png"
    assert len(shown.sidecar["identities"]) == 2


def test_random_pick_is_seeded_and_hardest_is_hardest(sysu, tmp_path: Path) -> None:  # noqa: ANN001
    ws, _, _ = sysu
    first = rank_figure(ws, "sysu", "base", pick="random", count=3, seed=5, out=tmp_path / "a")
    again = rank_figure(ws, "sysu", "base", pick="random", count=3, seed=5, out=tmp_path / "b")
    picked = [b["query"] for b in first.sidecar["queries"]]
    assert picked == [b["query"] for b in again.sidecar["queries"]] and len(picked) == 3
    rows = {q: r for q, r in _rows(ws, "sysu", "base", "-all-").items() if r["trial"] == 0}
    valid = [q for q, r in rows.items() if r["valid"]]
    drawn = np.random.default_rng(5).choice(len(valid), size=3, replace=False)
    assert picked == [valid[i] for i in sorted(drawn)]
    others = {tuple(pick_queries(rows, "random", 3, seed)) for seed in range(6)}
    assert len(others) > 1  # the seed matters

    hardest = rank_figure(ws, "sysu", "base", pick="hardest", count=3, out=tmp_path / "c").sidecar["queries"]
    ranks = [b["lists"][0]["first_correct_rank"] for b in hardest]
    assert ranks == sorted((r["first_correct_rank"] for r in rows.values() if r["valid"]), reverse=True)[:3]


def test_frames_and_distances_follow_the_record_and_the_features(sysu, tmp_path: Path) -> None:  # noqa: ANN001
    ws, _, npz = sysu
    rows = _rows(ws, "sysu", "base", "-indoor-")
    query = next(q for q, r in rows.items() if r["valid"] and not all(r["top_correct"]))
    made = rank_figure(ws, "sysu", "base", mode="indoor", queries=[query.replace("/", "\\")], out=tmp_path / "q")
    (block,) = made.sidecar["queries"]
    (entry,) = block["lists"]
    assert block["query"] == query and entry["top"] == rows[query]["top"]
    assert entry["correct"] == rows[query]["top_correct"] and entry["distance"] == rows[query]["top_distance"]
    with np.load(npz["base"]) as data:
        feats = data["features"] / np.linalg.norm(data["features"], axis=1, keepdims=True)
        index = {str(p): i for i, p in enumerate(data["paths"])}
    expected = [1 - float(feats[index[query]] @ feats[index[g]]) for g in entry["top"]]
    assert entry["distance"] == pytest.approx(expected, abs=1e-5)

    # per-query rows without distances: they are computed from the record's features file
    record = next(ws.results_dir("sysu").glob("base__*indoor*.json"))
    old = tmp_path / "old"
    old.mkdir()
    text = json.loads(record.read_text())
    queries = (record.parent / text["queries_file"]).read_text().splitlines()
    (old / text["queries_file"]).write_text("".join(
        json.dumps({k: v for k, v in json.loads(line).items() if k != "top_distance"}) + "\n" for line in queries))
    (old / record.name).write_text(record.read_text())
    recomputed = rank_figure(ws, "sysu", str(old / record.name), queries=[query], out=tmp_path / "old-q")
    assert recomputed.sidecar["queries"][0]["lists"][0]["distance"] == pytest.approx(entry["distance"], abs=1e-5)


def _hand_made(ws: Workspace, store: Store, run: str, ranks: dict[str, int]) -> None:
    """A record whose per-query rows say each query's first correct rank, with a 3-entry list."""
    pid_of = _by_path(store)
    visible = [p for p, m, s in zip(store.paths, store.modalities, store.splits, strict=True)
               if m == "V" and s == "test"]
    rows = []
    for query, rank in ranks.items():
        wrong = [g for g in visible if pid_of[g] != pid_of[query]][:3]
        right = [g for g in visible if pid_of[g] == pid_of[query]][0]
        top = wrong[:rank - 1] + [right] + wrong[rank - 1:]
        rows.append({"trial": 0, "query": query, "pid": pid_of[query], "cam": 3, "valid": True,
                     "first_correct_rank": rank, "identity_rank": rank, "AP": 1 / rank, "INP": 1 / rank,
                     "top": top[:3], "top_correct": [g == right for g in top[:3]],
                     "top_distance": [0.1 * (k + 1) for k in range(3)]})
    folder = ws.results_dir("sysu")
    write_queries(folder / f"{run}__hand.queries.jsonl", rows)
    write_record(folder / f"{run}__hand.json", {
        "protocol": "sysu/all/single-shot/seed/v1", "dataset": "sysu", "dataset_kind": "sysu", "mode": "all",
        "trials": [{"trial": 0, "cmc": [0.5, 1.0], "mAP": 0.5, "mINP": 0.5}], "run": None, "features": None,
        "distance": "cosine", "rerank": None, "top_k": 3, "queries_file": f"{run}__hand.queries.jsonl"})


def test_most_improved_picks_the_largest_gains(tmp_path: Path) -> None:
    root = fixtures.make_sysu_tree(tmp_path / "SYSU", train_ids=[1], val_ids=[2], test_ids=[6, 7, 8, 9],
                                   images_per_camera=1, size=SIZE)
    ws = Workspace(tmp_path / "work")
    prepare_store(read_layout("sysu", root), root, ws.dataset_dir("sysu"), SIZE, workers=1)
    store = open_store(ws.dataset_dir("sysu"))
    q = {pid: f"cam3/{pid:04d}/0001.jpg" for pid in (6, 7, 8, 9)}
    _hand_made(ws, store, "before", {q[6]: 3, q[7]: 3, q[8]: 1, q[9]: 3})
    _hand_made(ws, store, "after", {q[6]: 2, q[7]: 1, q[8]: 1, q[9]: 3})
    made = rank_figure(ws, "sysu", "before", compare="after", pick="most-improved", count=3, out=tmp_path / "m")
    assert [b["query"] for b in made.sidecar["queries"]] == [q[7], q[6]]  # gains 2 and 1; no others improved
    assert [e["first_correct_rank"] for e in made.sidecar["queries"][0]["lists"]] == [3, 1]
    assert made.sidecar["queries"][0]["lists"][1]["correct"] == [True, False, False]
    hardest = rank_figure(ws, "sysu", "after", pick="hardest", count=1, out=tmp_path / "h").sidecar["queries"]
    assert [b["query"] for b in hardest] == [q[9]]


def test_tsne_sidecar_round_trip_and_same_identities(sysu, tmp_path: Path) -> None:  # noqa: ANN001
    ws, _, _ = sysu
    made = tsne_figure(ws, "sysu", "base", compare="better", ids=3, seed=1, perplexity=5, per_identity=4,
                       out=tmp_path / "t")
    sidecar = json.loads((tmp_path / "t.json").read_text())
    assert sidecar == json.loads(json.dumps(made.sidecar))
    assert sidecar["figure"] == "tsne" and sidecar["seed"] == 1 and sidecar["perplexity"] == 5
    assert sidecar["identities"] == sorted(sidecar["identities"]) and len(sidecar["identities"]) == 3
    assert {i["pid"] for i in sidecar["images"]} == set(sidecar["identities"])
    for pid in sidecar["identities"]:
        assert sorted({i["modality"] for i in sidecar["images"] if i["pid"] == pid}) == ["infrared", "visible"]
    assert len(sidecar["images"]) == 3 * 2 * 4
    assert [r["label"] for r in sidecar["runs"]] == ["base", "better"]
    for run in sidecar["runs"]:  # both models embed the same images with the same settings
        assert len(run["embedding"]) == len(sidecar["images"])
        settings = run["tsne"]
        assert settings["random_state"] == 1 and settings["perplexity"] == settings["perplexity_requested"] == 5
        assert run["tsne"]["implementation"].startswith("scikit-learn") and run["features"].endswith(".npz")
    again = tsne_figure(ws, "sysu", "base", compare="better", ids=3, seed=1, perplexity=5, per_identity=4,
                        out=tmp_path / "t2")
    assert again.sidecar["runs"] == made.sidecar["runs"] and again.sidecar["images"] == made.sidecar["images"]


def test_trained_run_features_are_extracted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from papg_bench.reid_baselines.run import evaluate_run, train_run

    root = fixtures.make_sysu_tree(tmp_path / "SYSU", train_ids=[1, 2, 3, 4], val_ids=[5], test_ids=[6, 7, 8],
                                   images_per_camera=2, size=(64, 32))
    ws = Workspace(tmp_path / "work")
    prepare_store(read_layout("sysu", root), root, ws.dataset_dir("sysu"), (64, 32), workers=1)
    train_run(ws, "sysu", "agw", "none", seed=0, preset="tiny", overrides={**TINY, "epochs": 1, "milestones": ()},
              device="cpu")
    evaluate_run(ws, "sysu", "agw", "none", seed=0, device="cpu", progress=False, modes=("all",), trials="0")
    first = tsne_figure(ws, "sysu", "agw-none-s0", ids=2, per_identity=3, device="cpu", out=tmp_path / "t1")
    cache = ws.run_dir("sysu", "agw-none-s0") / "figure-features-bn.npz"
    assert cache.is_file() and str(cache) in first.sidecar["runs"][0]["features"]

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(figures, "_extract", no_extraction)
    again = tsne_figure(ws, "sysu", "agw-none-s0", ids=2, per_identity=3, device="cpu", out=tmp_path / "t2")
    assert again.sidecar["runs"][0]["embedding"] == first.sidecar["runs"][0]["embedding"]
    made = rank_figure(ws, "sysu", "agw-none-s0", count=1, out=tmp_path / "r")
    assert made.sidecar["queries"][0]["lists"][0]["distance"] is not None


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


def test_errors_exit_2_with_one_message(sysu, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    ws, store, _ = sysu
    ranks = ["--work", str(ws.root), "figures", "ranks", "-d", "sysu", "--out", str(tmp_path / "x")]
    assert "--run nothing: no record" in _error(capsys, ranks + ["--run", "nothing"])
    assert "--queries cam3/0099/0001.jpg: not a query" in _error(
        capsys, ranks + ["--run", "base", "--queries", "cam3/0099/0001.jpg"])
    assert "--compare RUN2" in _error(capsys, ranks + ["--run", "base", "--pick", "most-improved"])
    assert "--queries or --pick" in _error(
        capsys, ranks + ["--run", "base", "--pick", "hardest", "--queries", "cam3/0006/0001.jpg"])
    assert "--trial 7" in _error(capsys, ranks + ["--run", "base", "--trial", "7"])
    assert "--pick 'best'" in _error(capsys, ranks + ["--run", "base", "--pick", "best"])
    assert "mode 'outdoor'" in _error(capsys, ranks + ["--run", "base", "--mode", "outdoor"])
    empty = Workspace(tmp_path / "empty")
    prepare_store(read_layout("sysu", Path(store.meta["source_root"])), Path(store.meta["source_root"]),
                  empty.dataset_dir("sysu"), SIZE, workers=1)
    capsys.readouterr()
    assert "holds no evaluation records" in _error(
        capsys, ["--work", str(empty.root), "figures", "tsne", "-d", "sysu", "--run", "base"])
    # a record whose images the store does not hold
    record = json.loads(next(ws.results_dir("sysu").glob("base__*-all-*.json")).read_text())
    rows = _rows(ws, "sysu", "base", "-all-")
    moved = tmp_path / "moved"
    moved.mkdir()
    write_queries(moved / "q.jsonl", [{**r, "query": "elsewhere/" + r["query"]} for r in rows.values()])
    write_record(moved / "moved__x.json", {**record, "queries_file": "q.jsonl"})
    assert "are not in the store" in _error(capsys, ranks + ["--run", str(moved / "moved__x.json")])
    assert main(["--work", str(ws.root), "figures", "tsne", "-d", "sysu", "--run", "base", "--ids", "1"]) == 2
