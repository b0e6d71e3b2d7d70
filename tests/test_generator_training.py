"""PAPG training and synthesis on a tiny store: pairing, leakage guard, exact resume, deterministic output."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from generator_helpers import make_workspace, tiny_config

from papg_bench.cli import main
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.generators.pairing import PairSchedule, guard_training_rows, held_out_identities
from papg_bench.generators.synthesis import generate
from papg_bench.generators.trainer import CHECKPOINT, GENERATORS, train_generator
from papg_bench.training import torch_threads


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("gen"))


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_pairs_are_same_identity_training_rows_reshuffled_each_epoch(ws):
    store = open_store(ws.dataset_dir("sysu"))
    schedule = PairSchedule(store, seed=3)
    test_ids = held_out_identities(store)
    first, second = schedule.epoch_pairs(0), schedule.epoch_pairs(1)
    infrared = np.flatnonzero(store.in_split("train") & (store.modalities == "I"))
    assert sorted(first[:, 0]) == sorted(infrared)  # every training infrared image, once
    assert (store.pids[first[:, 0]] == store.pids[first[:, 1]]).all()
    assert (store.modalities[first[:, 1]] == "V").all()
    assert not set(store.pids[first.ravel()]) & test_ids
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, PairSchedule(store, seed=3).epoch_pairs(0))
    # two ranks with batch 2 see exactly the global batch of 4 of one process
    parts = [schedule.batch(first, 1, 2, rank, 2) for rank in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(parts), schedule.batch(first, 1, 4))


def test_leakage_guard_refuses_test_identities(ws, tmp_path):
    store = open_store(ws.dataset_dir("sysu"))
    test_row = int(np.flatnonzero(store.splits == "test")[0])
    with pytest.raises(UserError, match="test identity"):
        guard_training_rows(store, [0, test_row])
    # a store whose index puts one image of a training identity in the test split must not train
    leaky = make_workspace(tmp_path / "leaky")
    index = leaky.dataset_dir("sysu") / "index.csv"
    rows = list(csv.DictReader(index.open()))
    victim = next(r for r in rows if r["split"] == "train" and r["modality"] == "V")
    victim["split"] = "test"
    with index.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError, match=f"identity {victim['pid']}"):
        train_generator(leaky, "sysu", tiny_config(), device="cpu", show_progress=False)


def _weights(path):
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state["trainer"] if "trainer" in state else state


def _assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_tensors(a[key], b[key])
    elif isinstance(a, list | tuple):
        for x, y in zip(a, b, strict=True):
            _assert_same_tensors(x, y)
    else:
        assert a == b


def test_interrupted_and_resumed_run_equals_uninterrupted_one(ws):
    cfg = tiny_config(pool_size=3, epochs=3)  # 12 fakes per buffer: the random swap path runs too
    full = train_generator(ws, "sysu", cfg, run="full", device="cpu", show_progress=False)
    assert full.status == "done"
    stopped = train_generator(ws, "sysu", cfg, run="cut", device="cpu", stop_after_epoch=1, show_progress=False)
    assert stopped.status == "stopped" and stopped.generators is None
    assert not (ws.generator_dir("sysu", "cut") / GENERATORS).exists()
    resumed = train_generator(ws, "sysu", cfg, run="cut", device="cpu", resume=True, show_progress=False)
    assert resumed.status == "resumed"
    a, b = (_weights(ws.generator_dir("sysu", run) / CHECKPOINT) for run in ("full", "cut"))
    _assert_same_tensors(a, b)  # generators, discriminators, optimisers, schedulers
    pools = [torch.load(ws.generator_dir("sysu", run) / CHECKPOINT, weights_only=False)["pools"]
             for run in ("full", "cut")]
    _assert_same_tensors(pools[0], pools[1])
    again = train_generator(ws, "sysu", cfg, run="full", device="cpu", show_progress=False)
    assert again.status == "reused"
    with pytest.raises(UserError, match="other settings"):
        other = tiny_config(pool_size=3, epochs=3, lr=1e-3)
        train_generator(ws, "sysu", other, run="cut", device="cpu", resume=True, show_progress=False)
    samples = sorted(p.name for p in (ws.generator_dir("sysu", "full") / "samples").glob("*.png"))
    assert samples == ["epoch-001.png", "epoch-002.png", "epoch-003.png"]


def test_generation_is_deterministic_with_provenance(ws, tmp_path):
    train_generator(ws, "sysu", tiny_config(epochs=1), run="gen", device="cpu", show_progress=False)
    first = generate(ws, "sysu", run="gen", batch_size=4, device="cpu", png_dir=tmp_path / "png")
    assert first.status == "done"
    images = np.array(open_store(first.path).images)
    again = generate(ws, "sysu", run="gen", batch_size=4, device="cpu")
    assert again.status == "reused"
    forced = generate(ws, "sysu", run="gen", batch_size=4, device="cpu", force=True)
    assert forced.status == "done"
    gen = open_store(forced.path)
    np.testing.assert_array_equal(images, np.asarray(gen.images))

    source = open_store(ws.dataset_dir("sysu"))
    train_rows = np.flatnonzero(source.in_split("train"))
    assert sorted(gen.columns["source_row"]) == sorted(train_rows)  # every training image, once
    src = gen.columns["source_row"]
    flip = {"V": "I", "I": "V"}
    assert all(gen.modalities[k] == flip[source.modalities[src[k]]] for k in range(len(gen)))
    assert all(gen.columns["direction"][k] == f"{source.modalities[src[k]]}2{gen.modalities[k]}"
               for k in range(len(gen)))
    np.testing.assert_array_equal(gen.pids, source.pids[src])
    assert all(p == f"{d}/{source.paths[s]}" for p, d, s in zip(gen.paths, gen.columns["direction"], src, strict=True))
    assert set(gen.columns["generator"]) == {forced.generator_sha256}
    assert gen.meta["generator_sha256"] == forced.generator_sha256 and gen.meta["seed"] == 0
    a_files = sorted((tmp_path / "png" / "A").rglob("*.png"))
    b_files = sorted((tmp_path / "png" / "B").rglob("*.png"))
    assert len(a_files) == int((gen.columns["direction"] == "I2V").sum()) and len(b_files) == len(gen) - len(a_files)
    first_i2v = int(np.flatnonzero(gen.columns["direction"] == "I2V")[0])
    stem = source.paths[src[first_i2v]].rsplit(".", 1)[0]
    assert (tmp_path / "png" / "A" / f"{stem}.png").is_file()


def test_scores_and_cli(ws, capsys):
    work = str(ws.root)
    code = main(["--work", work, "train-generator", "--dataset", "sysu", "--run", "cli", "--preset", "tiny",
                 "--size", "48x32", "--epochs", "1", "--batch-size", "2", "--max-pairs", "4", "--blocks", "1",
                 "--no-attention", "--pose-map", "heatmaps", "--device", "cpu", "--channels-last", "--winograd"])
    assert code == 0
    code = main(["--work", work, "generate", "--dataset", "sysu", "--run", "cli", "--device", "cpu", "--score"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "modality gap" in printed
    report = (ws.generated_dir("sysu", "cli") / "quality.json").read_text()
    assert '"random_cnn"' in report and '"pixels"' in report
    assert main(["--work", work, "generate", "--dataset", "sysu", "--run", "missing"]) == 2
    assert main(["--work", work, "train-generator", "--dataset", "sysu", "--pose-map", "stick"]) == 2
