"""The CUDA paths: bf16 autocast + channels_last training of the generator and a baseline, generation and
evaluation on the device. Skipped without a CUDA device (CI has none); run on a lent GPU with ``-m gpu``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from generator_helpers import make_workspace as make_generator_workspace
from generator_helpers import tiny_config
from reid_helpers import TINY
from reid_helpers import make_workspace as make_reid_workspace

from papg_bench.data.store import open_store
from papg_bench.generators.synthesis import generate
from papg_bench.generators.trainer import train_generator
from papg_bench.reid_baselines.run import evaluate_run, train_run
from papg_bench.results.records import read_record

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_generator_trains_in_bf16_and_generates_on_cuda(tmp_path) -> None:
    ws = make_generator_workspace(tmp_path)
    result = train_generator(ws, "sysu", tiny_config(epochs=2), run="cuda", device="cuda", show_progress=False)
    assert result.status == "done" and result.steps > 0
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    losses = [v for entry in log for k, v in entry.items() if k.startswith("loss")]
    assert losses and all(np.isfinite(losses))
    made = generate(ws, "sysu", run="cuda", batch_size=4, device="cuda")
    generated = open_store(made.path)
    assert len(generated) > 0 and generated.images.std() > 0  # not a constant image
    again = generate(ws, "sysu", run="cuda", batch_size=4, device="cuda", force=True)
    assert np.array_equal(open_store(again.path).images[:], generated.images[:])


def test_baselines_train_and_evaluate_on_cuda(tmp_path) -> None:
    ws = make_reid_workspace(tmp_path)
    for baseline in ("agw", "cgrnet", "dart"):
        run = train_run(ws, "sysu", baseline, "papg", seed=0, preset="tiny", overrides=TINY, device="cuda")
        assert run.status == "done"
        outcome = evaluate_run(ws, "sysu", baseline, "papg", seed=0, device="cuda", modes=("all",), progress=False)
        record = read_record(outcome.paths[0])
        assert record["device"].startswith("cuda") and 0.0 <= record["summary"]["rank1"]["mean"] <= 1.0
