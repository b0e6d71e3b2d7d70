"""``papg-bench demo``: the whole pipeline on the built-in synthvi dataset, with one progress display.

synth (synthvi, in the SYSU-MM01 layout unless ``--layout`` names another) -> prepare -> pose (ground-truth
import) -> train-generator -> generate (--score) -> train AGW and CGRNet with --augment none and papg ->
evaluate (every mode of the layout's protocol, its trials) -> report (tables, CMC plots, generator samples,
cross-modality distance distributions). Another layout gets its own store, ``synthvi-<layout>``.

Every stage calls the same function as its command and each of those skips work whose outputs are
already complete for the same inputs, so a second demo reuses everything and takes seconds. The
tables and plots go to ``results/demo/`` (committed), every other artefact to the workspace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.config import make_config
from papg_bench.data.synthvi import LAYOUTS
from papg_bench.data.synthvi_materials import DEFAULT_INFRARED
from papg_bench.errors import UserError
from papg_bench.numerics import cpu_numerics, pinned_numerics
from papg_bench.progress import console, shared_progress
from papg_bench.stages import DONE, REUSED, is_done, output_mark, read_json, write_mark
from papg_bench.workspace import Workspace, atomic_write_json

DEMO_DATASET = "synthvi"
GENERATOR_RUN = "papg"
# The committed table was made with 2 threads: the thread count splits float reductions, so pinning it
# makes the demo reproducible to the last digit on machines with the same CPU kernels.
DEMO_THREADS = 2
DEFAULT_LAYOUT = LAYOUTS[0]
FIGURES_MARK = "figures.json"  # the stage mark of the demo's own figures
FIGURE_STEMS = ("generator_samples", "distance_distributions", "ranks", "tsne")


@dataclass(frozen=True)
class DemoSettings:
    synth_preset: str = "small"
    layout: str = DEFAULT_LAYOUT  # synthvi rendered in this dataset's layout, evaluated with its protocol
    seed: int = 0
    infrared: str = DEFAULT_INFRARED
    generator_preset: str = "tiny"
    generator_overrides: dict[str, Any] = field(default_factory=lambda: {"epochs": 2})
    reid_preset: str = "tiny"
    reid_overrides: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = ("agw", "cgrnet")
    augments: tuple[str, ...] = ("none", "papg")
    out: Path = Path("results/demo")
    device: str | None = None
    threads: int | None = None  # torch's CPU threads for the whole demo (None: leave them as they are)

    @property
    def dataset(self) -> str:
        """The workspace store: ``synthvi`` for the default layout, ``synthvi-<layout>`` for another."""
        return DEMO_DATASET if self.layout == DEFAULT_LAYOUT else f"{DEMO_DATASET}-{self.layout}"


@dataclass
class StageOutcome:
    name: str
    status: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def _source_dir(ws: Workspace, settings: DemoSettings) -> Path:
    suffix = "" if settings.infrared == DEFAULT_INFRARED else f"-{settings.infrared}"
    return ws.root / "sources" / f"synthvi-{settings.layout}-{settings.synth_preset}-s{settings.seed}{suffix}"


def _stage_synth(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.data.synthvi import synthesize

    result = synthesize(_source_dir(ws, s), s.layout, preset=s.synth_preset, seed=s.seed, infrared=s.infrared)
    return StageOutcome("synth", result.status, 0.0, {"images": result.images, "infrared": s.infrared})


def _stage_prepare(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.data.layouts import read_layout
    from papg_bench.data.prepare import prepare_store
    from papg_bench.data.synthvi import read_meta

    root = _source_dir(ws, s)
    size = tuple(read_meta(root)["params"]["size"])  # type: ignore[index]
    result = prepare_store(read_layout(s.layout, root), root, ws.dataset_dir(s.dataset),
                           size=size)  # type: ignore[arg-type]
    return StageOutcome("prepare", result.status, 0.0, {"images": result.count, "size": list(size)})


def _stage_pose(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.pose.run import run_pose

    keypoints = _source_dir(ws, s) / "synthvi" / "keypoints.csv"
    result = run_pose(ws.dataset_dir(s.dataset), source=keypoints)
    return StageOutcome("pose", result.status, 0.0, {"rows": result.count})


def _generator_config(s: DemoSettings) -> Any:
    from papg_bench.generators.config import GeneratorConfig

    return make_config(GeneratorConfig, s.generator_preset, overrides={**s.generator_overrides, "seed": s.seed})


def _stage_train_generator(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.generators.trainer import train_generator

    result = train_generator(ws, s.dataset, _generator_config(s), run=GENERATOR_RUN, device=s.device)
    return StageOutcome("train-generator", result.status, 0.0,
                        {"epochs": result.epochs_done, "pairs_per_second": round(result.pairs_per_second, 2)})


def _stage_generate(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.generators.synthesis import generate

    result = generate(ws, s.dataset, run=GENERATOR_RUN, device=s.device, score=True)
    return StageOutcome("generate", result.status, 0.0, {"images": result.count, "quality": result.quality})


def _stage_train(ws: Workspace, s: DemoSettings, baseline: str, augment: str) -> StageOutcome:
    from papg_bench.reid_baselines.run import train_run

    outcome = train_run(ws, s.dataset, baseline=baseline, augment=augment, seed=s.seed, preset=s.reid_preset,
                        overrides=s.reid_overrides or None, device=s.device, replace_stale=True)
    return StageOutcome(f"train {baseline} {augment}", outcome.status, 0.0)


def _stage_evaluate(ws: Workspace, s: DemoSettings, baseline: str, augment: str) -> StageOutcome:
    from papg_bench.reid_baselines.run import evaluate_run

    outcome = evaluate_run(ws, s.dataset, baseline=baseline, augment=augment, seed=s.seed, device=s.device,
                           progress=True)
    status = REUSED if all(outcome.reused) else DONE
    summary = {r["mode"]: {k: round(v["mean"] * 100, 2) for k, v in r["summary"].items()} for r in outcome.records}
    return StageOutcome(f"evaluate {baseline} {augment}", status, 0.0, summary)


def _stage_report(ws: Workspace, s: DemoSettings) -> StageOutcome:
    from papg_bench.results.report import make_report

    report = make_report(s.dataset, ws.results_dir(s.dataset), s.out, plots=True)
    generated = read_json(ws.generated_dir(s.dataset, GENERATOR_RUN) / "meta.json") or {}
    fingerprint = [report.fingerprint, generated.get("content_checksum"), s.seed, s.layout, s.baselines, s.augments]
    mark = output_mark(s.out / FIGURES_MARK)
    if report.status == REUSED and is_done(mark, fingerprint):
        return StageOutcome("report", REUSED, 0.0, {"files": [str(p) for p in report.files], **mark.record["details"]})
    figures = _demo_figures(ws, s)
    drawn = [p for stem in FIGURE_STEMS for p in (s.out / f"{stem}.png", s.out / f"{stem}.pdf") if p.is_file()]
    write_mark(s.out / FIGURES_MARK, fingerprint, drawn, details=figures)
    return StageOutcome("report", DONE, 0.0, {"files": [str(p) for p in report.files], **figures})


def _demo_figures(ws: Workspace, s: DemoSettings) -> dict[str, Any]:
    """The generator's sample grid and the cross-modality distance distributions (AGW without / with PAPG)."""
    from papg_bench.data.store import open_store
    from papg_bench.results.plots import distance_distributions, sample_grid

    store = open_store(ws.dataset_dir(s.dataset))
    generated = open_store(ws.generated_dir(s.dataset, GENERATOR_RUN), "generated store")
    sample_grid(_grid_rows(store, generated, rows=4, seed=s.seed), s.out / "generator_samples",
                title="synthvi: real V | generated I | real I | generated V")
    qualitative = _qualitative_figures(ws, s)
    models = {}
    for augment in s.augments:
        label = "AGW" if augment == "none" else f"AGW + {augment.upper()}"
        models[label] = _protocol_features(ws, s, "agw", augment, store)
    summaries = distance_distributions(models, s.out / "distance_distributions",
                                       title=f"cross-modality distances, {_first_mode_title(store)}, first trial")
    return {"distances": {k: {"mean_pos": round(v.mean_pos, 4), "mean_neg": round(v.mean_neg, 4),
                              "overlap": round(v.overlap, 4)} for k, v in summaries.items()}, **qualitative}


def _qualitative_figures(ws: Workspace, s: DemoSettings) -> dict[str, Any]:
    """AGW without augmentation above AGW with it: the most-improved queries' top-10, and a t-SNE of 10 ids."""
    from papg_bench.reid_baselines.run import run_name
    from papg_bench.results.figures import rank_figure, tsne_figure

    if "agw" not in s.baselines or len(s.augments) < 2:
        return {}
    base, other = (run_name("agw", a, s.seed) for a in s.augments[:2])
    def ranks_by(pick: str) -> Any:
        return rank_figure(ws, s.dataset, base, compare=other, pick=pick, count=4, seed=s.seed,
                           out=s.out / "ranks", device=s.device)

    try:
        ranks = ranks_by("most-improved")
    except UserError:  # no query improved (a tiny demo): show seeded random queries instead
        ranks = ranks_by("random")
    tsne = tsne_figure(ws, s.dataset, base, compare=other, ids=10, seed=s.seed, out=s.out / "tsne",
                       device=s.device)
    return {"ranks": [str(p) for p in ranks.files], "tsne": [str(p) for p in tsne.files]}


def _first_mode_title(store: Any) -> str:
    protocol = store.dataset.protocol
    return f"{protocol.title} {next(iter(protocol.mode_groups.values()))}"


def _grid_rows(store: Any, generated: Any, rows: int, seed: int) -> list[dict[str, Any]]:
    source_rows = generated.columns["source_row"]
    directions = generated.columns["direction"]
    fake_of = {(int(r), str(d)): i for i, (r, d) in enumerate(zip(source_rows, directions, strict=True))}
    rng = np.random.default_rng(seed)
    pids = sorted({int(store.pids[r]) for r, d in fake_of if d == "V2I"})
    out = []
    for pid in rng.permutation(pids)[:rows]:
        vis = [r for (r, d) in fake_of if d == "V2I" and store.pids[r] == pid]
        ir = [r for (r, d) in fake_of if d == "I2V" and store.pids[r] == pid]
        if not vis or not ir:
            continue
        v, i = vis[0], ir[0]
        out.append({"real_v": np.asarray(store.images[v]), "fake_i": np.asarray(generated.images[fake_of[(v, "V2I")]]),
                    "real_i": np.asarray(store.images[i]), "fake_v": np.asarray(generated.images[fake_of[(i, "I2V")]]),
                    "title": f"id {pid}"})
    return out


def _protocol_features(ws: Workspace, s: DemoSettings, baseline: str, augment: str, store: Any) -> tuple:
    """(query features, query pids, gallery features, gallery pids) of the protocol's first mode, trial 0."""
    from papg_bench.reid_baselines.extraction import extract_features
    from papg_bench.reid_baselines.run import config_from_run, load_run_model, run_name
    from papg_bench.reid_baselines.trainer import modality_codes
    from papg_bench.runtime import resolve_device

    device = resolve_device(s.device)
    model, state, _ = load_run_model(ws.run_dir(s.dataset, run_name(baseline, augment, s.seed)), device)
    cfg = config_from_run(state["run_config"])
    protocol = store.dataset.protocol
    query, gallery = protocol.query_gallery(Path(store.meta["source_root"]), next(iter(protocol.modes)),
                                            protocol.default_trials(Path(store.meta["source_root"]))[0])
    row_of = store.row_of_path()
    result = []
    for split in (query, gallery):
        rows = np.array([row_of[p] for p in split.paths])
        feats = extract_features(model, store.images, rows, modality_codes(store.modalities[rows]), cfg.size, device,
                                 cfg.eval_batch_size, precision=cfg.precision)
        result += [feats, np.asarray(split.pids)]
    return tuple(result)


def stages(s: DemoSettings) -> list[tuple[str, Callable[[Workspace, DemoSettings], StageOutcome]]]:
    plan: list[tuple[str, Callable[[Workspace, DemoSettings], StageOutcome]]] = [
        ("synth", _stage_synth), ("prepare", _stage_prepare), ("pose", _stage_pose),
        ("train-generator", _stage_train_generator), ("generate", _stage_generate),
    ]
    for baseline in s.baselines:
        for augment in s.augments:
            plan.append((f"train {baseline} {augment}",
                         lambda ws, st, b=baseline, a=augment: _stage_train(ws, st, b, a)))
    for baseline in s.baselines:
        for augment in s.augments:
            plan.append((f"evaluate {baseline} {augment}",
                         lambda ws, st, b=baseline, a=augment: _stage_evaluate(ws, st, b, a)))
    plan.append(("report", _stage_report))
    return plan


def run_demo(ws: Workspace, settings: DemoSettings | None = None) -> list[StageOutcome]:
    """Run (or reuse) every stage; write ``<out>/demo.json`` with what each stage did and how long it took."""
    settings = settings or DemoSettings()
    plan = stages(settings)
    outcomes: list[StageOutcome] = []
    started = time.perf_counter()
    with pinned_numerics(settings.threads), shared_progress() as progress:
        overall = progress.add_task("demo", total=len(plan), rate="")
        for name, stage in plan:
            progress.update(overall, description=f"demo: {name}")
            t0 = time.perf_counter()
            outcome = stage(ws, settings)
            outcome.seconds = round(time.perf_counter() - t0, 2)
            outcomes.append(outcome)
            progress.advance(overall)
            console.log(f"{name}: {outcome.status} ({outcome.seconds:.1f} s)")
        progress.update(overall, description="demo: done")
        numerics = cpu_numerics()
    total = round(time.perf_counter() - started, 1)
    atomic_write_json(settings.out / "demo.json", {
        "total_seconds": total,
        "numerics": numerics,
        "stages": [{"name": o.name, "status": o.status, "seconds": o.seconds, **o.details} for o in outcomes],
    })
    return outcomes


def stage_summary(outcomes: list[StageOutcome]) -> str:
    return json.dumps([{"stage": o.name, "status": o.status, "seconds": o.seconds} for o in outcomes], indent=1)
