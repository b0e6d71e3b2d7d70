"""Training runs end to end on a tiny store: budgets, reuse, exact resume, DDP, evaluation records."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from reid_helpers import TINY, make_workspace, one_thread, train_tiny

from papg_bench.cli import main
from papg_bench.errors import UserError
from papg_bench.reid_baselines.run import evaluate_run, train_run
from papg_bench.results.records import read_record
from papg_bench.training import torch_threads
from papg_bench.workspace import Workspace

single_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("reid"))


@pytest.fixture(scope="module")
def agw_run(ws: Workspace):  # noqa: ANN201
    return train_tiny(ws)


def test_run_folder_summary_and_reuse(ws: Workspace, agw_run) -> None:  # noqa: ANN001
    assert agw_run.status == "done"
    run_dir = ws.run_dir("sysu", "agw-none-s0")
    assert agw_run.run_dir == run_dir
    for name in ("config.json", "checkpoint.pt", "summary.json", "log.jsonl"):
        assert (run_dir / name).is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["epochs_done"] == 2 and summary["train_images"]["generated"] == 0
    assert summary["selection"] == {"by": "last epoch"}
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [0, 1] and all(e["loss"] > 0 for e in log)
    assert log[0]["lr"] == pytest.approx(0.1) and log[1]["lr"] == pytest.approx(0.01)  # milestone at epoch 1
    again = train_run(ws, "sysu", "agw", "none", seed=0, preset="tiny", overrides=TINY, device="cpu")
    assert again.status == "reused" and again.summary["checkpoint_sha256"] == summary["checkpoint_sha256"]
    with pytest.raises(UserError, match="--restart"):
        train_run(ws, "sysu", "agw", "none", seed=0, preset="tiny", overrides={**TINY, "lr": 0.05}, device="cpu")


def test_equal_steps_budget_and_papg_pool(ws: Workspace, agw_run) -> None:  # noqa: ANN001
    steps = train_run(ws, "sysu", "agw", "papg", seed=0, preset="tiny", run="papg-steps", device="cpu",
                      overrides={**TINY, "epochs": 1, "budget": "steps"}).summary
    epochs = train_run(ws, "sysu", "agw", "papg", seed=0, preset="tiny", run="papg-epochs", device="cpu",
                       overrides={**TINY, "epochs": 1, "budget": "epochs"}, stop_after=0).summary
    assert steps["train_images"]["generated"] > 0
    assert steps["steps_per_epoch"] == agw_run.summary["steps_per_epoch"]
    assert steps["steps"] == agw_run.summary["steps_per_epoch"]
    assert epochs["steps_per_epoch"] > agw_run.summary["steps_per_epoch"]
    assert not epochs["complete"] and epochs["steps"] == 0


def test_val_split_selects_the_epoch_on_held_out_training_identities(ws: Workspace) -> None:
    outcome = train_run(ws, "sysu", "cgrnet", "gray", seed=0, preset="tiny", device="cpu",
                        overrides={**TINY, "val_split": 0.25})
    summary = outcome.summary
    assert summary["selection"]["by"] == "val_mAP" and summary["checkpoint"] == "best.pt"
    assert summary["identities"] == 6  # 8 training identities, 2 held out
    assert 0.0 <= summary["selection"]["val_rank1"] <= 1.0 and (outcome.run_dir / "best.pt").is_file()
    best = torch.load(outcome.run_dir / "best.pt", weights_only=False)
    assert best["epoch"] == summary["selection"]["epoch"] + 1
    record = evaluate_run(ws, "sysu", "cgrnet", "gray", seed=0, device="cpu", progress=False, modes=("all",))
    assert record.records[0]["selection"]["by"] == "val_mAP"


def test_resume_is_exact(ws: Workspace) -> None:
    # DART's twins with papg images, stopped after the warm-up: the resumed epoch scores every image with both
    # checkpointed networks, refits both mixtures and trains each network on the other's probabilities.
    settings = {**TINY, "dart_warmup": 1}
    straight = train_run(ws, "sysu", "dart", "papg", seed=3, preset="tiny", overrides=settings, run="straight",
                         device="cpu")
    first = train_run(ws, "sysu", "dart", "papg", seed=3, preset="tiny", overrides=settings, run="split",
                      device="cpu", stop_after=1)
    assert first.status == "stopped"
    with pytest.raises(UserError, match="--resume"):
        train_run(ws, "sysu", "dart", "papg", seed=3, preset="tiny", overrides=settings, run="split", device="cpu")
    resumed = train_run(ws, "sysu", "dart", "papg", seed=3, preset="tiny", overrides=settings, run="split",
                        device="cpu", resume=True)
    assert resumed.status == "resumed"
    a = torch.load(straight.run_dir / "checkpoint.pt", weights_only=False)
    b = torch.load(resumed.run_dir / "checkpoint.pt", weights_only=False)
    assert a["model"].keys() == b["model"].keys() and {k.split(".")[1] for k in a["model"]} == {"0", "1"}
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert not torch.equal(a["model"]["networks.0.classifier.weight"], a["model"]["networks.1.classifier.weight"])
    assert len(a["optimizer"]) == len(b["optimizer"]) == 2  # one optimiser per network, as the released run.py
    for one, other in zip(a["optimizer"], b["optimizer"], strict=True):
        for index, state in one["state"].items():
            assert torch.equal(state["momentum_buffer"], other["state"][index]["momentum_buffer"])
    assert a["history"] == [{**h, "images_per_s": a["history"][i]["images_per_s"]} for i, h in enumerate(b["history"])]
    assert "noisy_infrared_net2" not in a["history"][0] and 0 <= a["history"][1]["noisy_infrared_net2"] <= 1
    dart = resumed.summary["dart"]
    assert dart == straight.summary["dart"]
    assert dart["generated_images"] > 0 and 0 <= dart["generated_low_clean"] <= dart["generated_images"]
    assert [e["epoch"] for e in dart["noisy_by_epoch"]] == [1] and set(dart["noisy"]) == {"net1", "net2"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process_with_two_micro_batches(ws: Workspace) -> None:
    settings = {**TINY, "epochs": 1}
    with torch_threads(1):  # as the workers: the same kernels on the same micro-batches
        single = train_run(ws, "sysu", "agw", "channel", seed=1, preset="tiny", run="single", device="cpu",
                           overrides={**settings, "micro_batches": 2})
    port = _free_port()
    mp.start_processes(ddp_worker, args=(str(ws.root), port, settings), nprocs=2, start_method="spawn")
    a = torch.load(single.run_dir / "checkpoint.pt", weights_only=False)
    b = torch.load(ws.run_dir("sysu", "ddp") / "checkpoint.pt", weights_only=False)
    summary = json.loads((ws.run_dir("sysu", "ddp") / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == single.summary["steps"]
    from papg_bench.reid_baselines.registry import get_baseline
    from papg_bench.reid_baselines.run import config_from_run

    model = get_baseline("agw").build_model(config_from_run(a["run_config"]), a["num_classes"])
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    moved = 0
    # The same kernels on the same micro-batches, and a sum of two halved gradients either way (halving is exact):
    # the parameters are equal to the bit. BN running statistics are rank 0's own in DDP.
    for name in names:
        assert torch.equal(a["model"][name], b["model"][name]), name
        moved += not torch.equal(a["model"][name], model.state_dict()[name])
    assert moved > len(names) // 2


def ddp_worker(rank: int, work: str, port: int, settings: dict) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    torch.set_num_threads(1)
    train_run(Workspace(Path(work)), "sysu", "agw", "channel", seed=1, preset="tiny", run="ddp", device="cpu",
              overrides={**settings, "micro_batches": 1})


def test_evaluate_run_writes_records_the_protocols_accept(ws: Workspace, agw_run) -> None:  # noqa: ANN001
    outcome = evaluate_run(ws, "sysu", "agw", "none", seed=0, device="cpu", progress=False)
    assert [r["mode"] for r in outcome.records] == ["all", "indoor"] and outcome.reused == [False, False]
    for path in outcome.paths:
        record = read_record(path)
        assert (record["baseline"], record["augment"], record["seed"], record["run"]) == ("agw", "none", 0,
                                                                                          "agw-none-s0")
        assert record["checkpoint_sha256"] == agw_run.summary["checkpoint_sha256"]
        assert record["config_hash"] == agw_run.summary["config_hash"] and record["device"] == "cpu"
        assert len(record["trials"]) == 10 and record["wall_time_s"] > 0
        assert 0.0 <= record["summary"]["rank1"]["mean"] <= 1.0
    assert evaluate_run(ws, "sysu", "agw", "none", seed=0, device="cpu", progress=False).reused == [True, True]
    flipped = evaluate_run(ws, "sysu", "agw", "none", seed=0, device="cpu", progress=False, flip_test=True,
                           modes=("indoor",))
    assert flipped.reused == [False] and flipped.records[0]["flip_test"] is True
    with pytest.raises(UserError, match="train it first"):
        evaluate_run(ws, "sysu", "cgrnet", "none", seed=0, device="cpu", progress=False)


def test_cli_train_reuses_and_rejects_bad_options(ws: Workspace, agw_run, capsys) -> None:  # noqa: ANN001
    args = ["--work", str(ws.root), "train", "-d", "sysu", "--preset", "tiny", "--size", "64x32", "--width", "8",
            "--epochs", "2", "--num-ids", "4", "--num-instances", "2", "--parts", "4", "--part-dim", "16",
            "--warmup-epochs", "1", "--milestones", "1", "--dart-warmup", "1", "--eval-batch-size", "64",
            "--graph-topk", "4", "--backbone-lr", "0.01", "--device", "cpu"]
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    assert main(args + ["--baseline", "nope"]) == 2
    assert main(args + ["--synthetic-ratio", "0.5"]) == 2
    assert main(args + ["--milestones", "a,b"]) == 2
    err = capsys.readouterr().err
    assert "--baseline" in err and "--synthetic-ratio" in err and "--milestones" in err
    evaluate = ["--work", str(ws.root), "evaluate", "-d", "sysu", "--baseline", "agw", "--device", "cpu"]
    assert main(evaluate + ["--mode", "all"]) == 0
    printed = capsys.readouterr().out
    assert "sysu/all/single-shot" in printed and "record:" in printed
    assert main(evaluate + ["--augment", "gray"]) == 2
    assert "train it first" in capsys.readouterr().err


def test_regdb_run_is_evaluated_on_its_trial_in_both_directions(tmp_path: Path) -> None:
    from papg_bench.data.fixtures import make_regdb_tree
    from papg_bench.data.layouts import read_layout
    from papg_bench.data.prepare import prepare_store

    root = make_regdb_tree(tmp_path / "RegDB", ids=8, images_per_modality=4, trials=2)
    ws = Workspace(tmp_path / "work")
    prepare_store(read_layout("regdb", root), root, ws.dataset_dir("regdb"), (64, 32), workers=1)
    outcome = train_run(ws, "regdb", "agw", "none", seed=0, preset="tiny", device="cpu",
                        overrides={**TINY, "trial": 2, "num_ids": 2})
    assert outcome.run_dir.name == "agw-none-s0-t2" and outcome.summary["identities"] == 4
    result = evaluate_run(ws, "regdb", "agw", "none", seed=0, device="cpu", progress=False)
    assert [r["mode"] for r in result.records] == ["v2t", "t2v"]
    assert all([t["trial"] for t in r["trials"]] == [2] for r in result.records)
    with pytest.raises(UserError, match="trial 2"):
        evaluate_run(ws, "regdb", "agw", "none", seed=0, device="cpu", progress=False, trials="1")


def test_llcm_run_is_evaluated_in_both_modes_over_ten_trials_and_reported(tmp_path: Path) -> None:
    from papg_bench.data.fixtures import make_llcm_tree
    from papg_bench.data.layouts import read_layout
    from papg_bench.data.prepare import prepare_store
    from papg_bench.results.report import make_report

    root = make_llcm_tree(tmp_path / "LLCM", train_ids=[1, 2, 3, 4], test_ids=[5, 6, 7], images_per_camera=2)
    ws = Workspace(tmp_path / "work")
    prepare_store(read_layout("llcm", root), root, ws.dataset_dir("llcm"), (64, 32), workers=1)
    train_run(ws, "llcm", "agw", "none", seed=0, preset="tiny", device="cpu", overrides={**TINY, "num_ids": 2})
    result = evaluate_run(ws, "llcm", "agw", "none", seed=0, device="cpu", progress=False)
    assert [r["mode"] for r in result.records] == ["ir2vis", "ir2vis-drawn"]
    assert [r["protocol"] for r in result.records] == ["llcm/ir2vis/seed-trials/v1", "llcm/ir2vis-drawn/seed-trials/v1"]
    assert all([t["trial"] for t in r["trials"]] == list(range(10)) for r in result.records)
    report = make_report("llcm", ws.results_dir("llcm"), tmp_path / "report", plots=False)
    assert "LLCM" in report.markdown and "IR→VIS R-1" in report.markdown and "IR(drawn)→VIS R-1" in report.markdown
