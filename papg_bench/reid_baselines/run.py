"""Train and evaluate one run: what ``papg-bench train`` / ``evaluate --baseline`` and the demo call.

A run lives in ``<work>/runs/<dataset>/<baseline>-<augment>-s<seed>/`` (RegDB trials other than 1 add
``-t<trial>``): ``config.json`` (settings, their hash, provenance), ``checkpoint.pt`` (every epoch),
``best.pt`` (with ``--val-split``), ``log.jsonl``, ``tb/`` and, once finished, ``summary.json``. The hash
covers the settings, the baseline, augmentation, seed and the content of the input stores, so a finished
run with the same hash is reused instead of retrained, and evaluation records that already exist for the
same checkpoint and options are reused instead of recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from papg_bench.config import make_config
from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.generators.sets import set_reference
from papg_bench.reid_baselines.augment import augment_slug, canonical_augment, generated_set, uses_generated
from papg_bench.reid_baselines.backbone import resolve_pretrained
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.extraction import extract_features
from papg_bench.reid_baselines.registry import BASELINES, build_tested_model, get_baseline, with_epochs
from papg_bench.reid_baselines.trainer import CHECKPOINT_KIND, Trainer, modality_codes
from papg_bench.runtime import resolve_device
from papg_bench.stages import DONE, RESUMED, REUSED, STOPPED, Mark, is_done, read_json
from papg_bench.training import barrier, cleanup_distributed, init_distributed, load_checkpoint
from papg_bench.workspace import Workspace, atomic_write_json, config_hash, provenance, sha256_file


def run_name(baseline: str, augment: str, seed: int, trial: int | None = None) -> str:
    """``<baseline>-<augment>-s<seed>``, plus ``-t<trial>`` for a training trial other than 1 (datasets whose
    training identities change with the trial)."""
    name = f"{baseline}-{augment_slug(augment)}-s{seed}"
    return name if trial in (None, 1) else f"{name}-t{trial}"


def run_mark(run_dir: Path) -> Mark | None:
    """The stage mark of a training run: its config hash (settings, inputs, weights) and whether it finished."""
    summary = read_json(Path(run_dir) / "summary.json")
    return None if summary is None else Mark(summary.get("config_hash"), bool(summary.get("complete")), summary)


@dataclass
class TrainOutcome:
    run_dir: Path
    status: str  # a stage outcome: done, reused, resumed or stopped
    summary: dict[str, Any]


def _open_inputs(ws: Workspace, dataset: str, augment: str, cfg: TrainConfig) -> tuple[Store, Store | None]:
    store = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    generated = None
    if uses_generated(augment):
        path = ws.generated_dir(dataset, cfg.generated_run)
        if not (path / "meta.json").is_file():
            raise UserError(
                f"--augment {augment}: {path} holds no generated images: run `papg-bench generate --dataset "
                f"{dataset}` (or `import-generated`) first, or pick another set with --augment gen:NAME."
            )
        generated = open_store(path, "generated store")
    return store, generated


def _with_set(augment: str, cfg: TrainConfig, overrides: dict[str, Any] | None) -> TrainConfig:
    """``gen:NAME`` reads the set NAME: it sets ``generated_run``, which may not name another set."""
    name = generated_set(augment, cfg.generated_run)
    if name is None or name == cfg.generated_run:
        return cfg
    given = (overrides or {}).get("generated_run")
    if given is not None and given != name:
        raise UserError(f"--augment {augment} trains with the set {name!r}, --generated-run names {given!r}: give "
                        "one of them.")
    return dataclasses.replace(cfg, generated_run=name)


def set_of_run(ws: Workspace, dataset: str, run_config: dict[str, Any]) -> dict[str, Any] | None:
    """The generated set a run trained with (name, display, manifest sha256, origin kind), or None.

    Runs record it when trained; for older runs it is read from the workspace's set of that name."""
    recorded = run_config.get("generated_set")
    name = generated_set(str(run_config.get("augment") or "none"),
                         str((run_config.get("train") or {}).get("generated_run") or "papg"))
    if name is None:
        return None
    try:
        current = set_reference(ws, dataset, name)
    except UserError:
        current = None
    if recorded is None:
        return current or {"name": name, "display": name, "sha256": None, "kind": None}
    if current is not None and current.get("sha256") == recorded.get("sha256"):
        return {**recorded, "display": current["display"]}  # a display name given since training
    return dict(recorded)


def train_run(
    ws: Workspace,
    dataset: str,
    baseline: str = "agw",
    augment: str = "none",
    seed: int = 0,
    preset: str = "paper",
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    compile: bool = False,
    resume: bool = False,
    restart: bool = False,
    run: str | None = None,
    stop_after: int | None = None,
    replace_stale: bool = False,
) -> TrainOutcome:
    """Train (or resume, or reuse) the run of ``baseline`` + ``augment`` + ``seed`` on ``dataset``.

    ``stop_after`` ends the call after that many epochs in total (the run stays resumable), for time-sliced
    jobs. ``replace_stale`` (the demo's rule) reuses a complete run with the same settings and starts
    any other run in the folder again (finished with other settings, or unfinished), instead of asking
    for ``--restart`` / ``--resume``. Under ``torchrun`` every process calls this; rank 0 writes.
    """
    known = get_baseline(baseline)
    augment = canonical_augment(augment)
    cfg = _with_set(augment, make_config(TrainConfig, preset, config_file, overrides).validate(), overrides)
    cfg = with_epochs(known, cfg)
    if cfg.synthetic_ratio not in (None, 0.0) and not uses_generated(augment):
        raise UserError(f"--synthetic-ratio {cfg.synthetic_ratio} needs generated images: use --augment papg "
                        "or gen:NAME (or a combination with it).")
    store, generated = _open_inputs(ws, dataset, augment, cfg)
    run = run or run_name(baseline, augment, seed, store.dataset.split_trial(cfg.trial))
    run_dir = ws.run_dir(dataset, run)
    run_config = {
        "dataset": dataset, "baseline": baseline, "augment": augment, "seed": seed, "train": cfg.to_dict(),
        "inputs": {"store": store.checksum, "generated": generated.checksum if generated is not None else None},
    }
    weights = resolve_pretrained(cfg.arch, cfg.pretrained)
    if weights is not None:  # the start the backbone takes: variant, file and sha256, hashed with the settings
        run_config["weights"] = weights.record()
    digest = config_hash(run_config)
    if generated is not None:  # what the run trained with, by name: cited, not hashed (the store's content is)
        run_config["generated_set"] = set_reference(ws, dataset, cfg.generated_run)
    torch_device = resolve_device(device)
    initialised_here = not torch.distributed.is_initialized()
    dist_info = init_distributed(torch_device)
    try:
        mark = run_mark(run_dir)
        if mark is not None and not restart:
            summary = mark.record
            if is_done(mark, digest):
                return TrainOutcome(run_dir, REUSED, summary)
            if replace_stale:
                restart = True
            else:
                raise UserError(
                    f"{run_dir} holds a finished run with other settings (hash {summary.get('config_hash')}, "
                    f"now {digest}): pass --restart to replace it, or name another run with --run."
                )
        elif replace_stale and not restart and (run_dir / "checkpoint.pt").is_file():
            restart = True  # an unfinished run whose settings cannot be checked without its summary
        if restart and dist_info.is_main and run_dir.exists():
            shutil.rmtree(run_dir)
        barrier(dist_info)
        checkpoint = run_dir / "checkpoint.pt"
        if checkpoint.is_file() and not resume:
            raise UserError(f"{run_dir} holds an unfinished run: pass --resume to continue it or --restart to "
                            "start it again.")
        trainer = Trainer(store, generated, baseline, augment, seed, cfg, run_dir, run_config, digest,
                          torch_device, dist_info, compile=compile)
        status = DONE
        if checkpoint.is_file():
            trainer.load(checkpoint)
            status = RESUMED
        elif dist_info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(run_dir / "config.json", {"preset": preset, **provenance(run_config)})
        summary = trainer.run(stop_after=stop_after, run_name=run)
        if not summary["complete"]:
            status = STOPPED
        return TrainOutcome(run_dir, status, summary)
    finally:
        if initialised_here:
            cleanup_distributed()


def config_from_run(run_config: dict[str, Any]) -> TrainConfig:
    """The run's settings, rebuilt to construct its model (weights come from the checkpoint)."""
    values = dict(run_config["train"])
    if values.get("amp") is False and "precision" not in values:  # runs written before --precision
        values["precision"] = "fp32"
    values.setdefault("gem_form", "clamped")  # runs written before --gem-form pooled with the clamped form
    baseline = BASELINES.get(str(run_config.get("baseline")))
    for key, value in (baseline.legacy_settings if baseline is not None else {}).items():
        values.setdefault(key, value)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for key, value in list(values.items()):
        if key not in fields:
            values.pop(key)
        elif isinstance(value, list):
            values[key] = tuple(value)
    values["pretrained"] = "none"
    return TrainConfig(**values)


def load_run_model(run_dir: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """Model of a finished run (its selected checkpoint) on ``device``, in eval mode."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        hint = ("it is unfinished: continue it with `papg-bench train ... --resume`"
                if (run_dir / "checkpoint.pt").is_file() else "train it first with `papg-bench train`")
        raise UserError(f"{run_dir} holds no finished training run: {hint}.")
    summary = json.loads(summary_path.read_text())
    path = run_dir / summary.get("checkpoint", "checkpoint.pt")
    state = load_checkpoint(path, CHECKPOINT_KIND)
    run_config = state["run_config"]
    cfg = config_from_run(run_config)
    model = build_tested_model(get_baseline(run_config["baseline"]), cfg, int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not match its own configuration ({str(exc).splitlines()[0]}): retrain.") from None
    model.to(device).eval()
    return model, state, path


@dataclass
class EvaluationOutcome:
    run: str
    records: list[dict[str, Any]]
    paths: list[Path]
    reused: list[bool]


def evaluate_run(
    ws: Workspace,
    dataset: str,
    baseline: str = "agw",
    augment: str = "none",
    seed: int = 0,
    run: str | None = None,
    modes: tuple[str, ...] | None = None,
    shots: int = 1,
    sampling: str = "seed",
    trials: tuple[int, ...] | str | None = None,
    flip_test: bool = False,
    split_file: Path | None = None,
    feature: str = "bn",
    distance: str = "cosine",
    backend: str = "auto",
    rerank: Any = None,
    device: str | None = None,
    force: bool = False,
    progress: bool = True,
    top_k: int = 10,
    out_dir: Path | None = None,
    save_features: Path | None = None,
) -> EvaluationOutcome:
    """Evaluate a finished run with the dataset's protocols and write one record per mode.

    SYSU: modes all and indoor, trials 0..9 (``shots`` 1 or 10); RegDB: both directions for the run's
    trial. ``trials`` may be given as text ("0-9", "1,3"). Records already written for the same checkpoint
    and options are reused unless ``force``. ``save_features`` writes the test features to that .npz
    (:meth:`RunFeatures.save`) and names it in the records' ``features``; a file there of the same
    checkpoint, feature and flip setting is read instead of extracting again.
    """
    from papg_bench.protocols.evaluate import (
        ProtocolOptions,
        default_modes,
        evaluate_features,
        parse_trials,
        protocol_identifier,
        save_evaluation,
        split_file_record,
    )
    from papg_bench.results.records import record_mark, record_name, validate_record

    started = time.perf_counter()
    store = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    kind = store.dataset
    family = kind.name
    per_trial = kind.protocol.trial_from_training
    torch_device = resolve_device(device)
    if run is None:
        state_trial = _run_trial(ws, dataset, baseline, augment, seed) if kind.trial_splits else None
        run = run_name(baseline, augment, seed, state_trial)
    run_dir = ws.run_dir(dataset, run)
    model, state, checkpoint = load_run_model(run_dir, torch_device)
    run_config = state["run_config"]
    cfg = config_from_run(run_config)
    checkpoint_sha = sha256_file(checkpoint)
    root = Path(str(store.meta.get("source_root", "")))
    if isinstance(trials, str):
        trials = parse_trials(trials, family)
    if per_trial:
        if trials is not None and tuple(trials) != (cfg.trial,):
            raise UserError(f"--trials: the run {run} was trained on {kind.title} trial {cfg.trial}; it is evaluated "
                            "on that trial only (train a run per trial with --trial).")
        trials = (cfg.trial,)
    modes = modes or default_modes(family)
    out_dir = Path(out_dir) if out_dir is not None else ws.results_dir(dataset)
    extra_base = {
        "dataset": dataset, "baseline": run_config["baseline"], "augment": run_config["augment"],
        "seed": run_config["seed"], "run": run, "config_hash": state["config_hash"],
        "checkpoint_sha256": checkpoint_sha, "feature": feature, "flip_test": flip_test,
        "config": run_config["train"], "selection": _selection(run_dir),
        "generated_set": set_of_run(ws, dataset, run_config),
        "imported": run_config.get("imported"),
    }
    saved = Path(save_features).resolve() if save_features is not None else None
    if saved is not None:
        extra_base["features"] = str(saved)

    expected_trials = list(trials) if trials is not None else list(kind.protocol.default_trials(root))
    fingerprint = {"checkpoint_sha256": checkpoint_sha, "feature": feature, "flip_test": flip_test,
                   "distance": distance, "rerank": rerank.as_record() if rerank is not None else None,
                   "trials": expected_trials,
                   "split_file": (split_file_record(family, root, sampling, split_file) or {}).get("sha256")}
    if saved is not None:
        fingerprint["features"] = str(saved)
    todo, records, paths, reused = [], [], [], []
    for mode in modes:
        options = ProtocolOptions(mode=mode, shots=shots, sampling=sampling, split_file=split_file, trials=trials,
                                  distance=distance, backend=backend, device=device, rerank=rerank, top_k=top_k)
        protocol = protocol_identifier(family, options, expected_trials)
        path = out_dir / f"{record_name(run, protocol)}.json"
        mark = record_mark(path, fingerprint)
        if not force and is_done(mark, fingerprint):
            records.append(validate_record(mark.record, str(path)))
            paths.append(path)
            reused.append(True)
            continue
        todo.append(options)
    from papg_bench.protocols.feature_files import feature_meta, load_features

    expected_meta = {"checkpoint_sha256": checkpoint_sha, "feature": feature, "flip_test": flip_test}
    saved_meta = feature_meta(saved) if saved is not None and saved.is_file() else None
    file_is_current = saved_meta is not None and is_done(
        Mark({k: saved_meta.get(k) for k in expected_meta}, True), expected_meta)
    extracted = None
    if saved is not None and not file_is_current:
        extracted = _test_features(store, model, cfg, run, (checkpoint, checkpoint_sha), torch_device, feature,
                                   flip_test, progress)
        extracted.save(saved)
    if todo:
        if not root.is_dir():
            raise _missing_root(store, root)
        if extracted is None and file_is_current and saved is not None:
            table = load_features(saved, root)
            features, paths_rel = table.features, table.paths
        else:
            extracted = extracted or _test_features(store, model, cfg, run, (checkpoint, checkpoint_sha),
                                                    torch_device, feature, flip_test, progress)
            features, paths_rel = extracted.features, extracted.paths
        feature_seconds = time.perf_counter() - started
        for options in todo:
            mode_started = time.perf_counter()
            evaluation = evaluate_features(features, paths_rel, root, family, options, progress=progress,
                                           extra={**extra_base, "device": str(torch_device)})
            evaluation.record["wall_time_s"] = round(feature_seconds + time.perf_counter() - mode_started, 3)
            record_path, _ = save_evaluation(evaluation, out_dir, run)
            records.append(evaluation.record)
            paths.append(record_path)
            reused.append(False)
    return EvaluationOutcome(run=run, records=records, paths=paths, reused=reused)


@dataclass
class RunFeatures:
    """Test features of a finished run: one row per test image of its store (of its trial where the test
    identities change with the trial), in store order, with where each image came from."""

    run: str
    dataset: str
    features: np.ndarray  # (N, D) float32, unit rows
    paths: list[str]  # relative to ``root``
    pids: np.ndarray
    cams: np.ndarray
    modalities: np.ndarray  # "V" / "I"
    root: Path
    checkpoint_sha256: str
    feature: str
    flip_test: bool

    def save(self, path: Path) -> Path:
        """An .npz that ``evaluate --features`` reads (:func:`~papg_bench.protocols.feature_files.save_features`)."""
        from papg_bench.protocols.feature_files import save_features

        return save_features(path, self.features, self.paths, self.pids, self.cams, self.modalities, {
            "feature": self.feature, "flip_test": self.flip_test, "checkpoint_sha256": self.checkpoint_sha256,
            "run": self.run, "dataset": self.dataset})


def _missing_root(store: Store, root: Path) -> UserError:
    return UserError(
        f"{store.path}/meta.json names the dataset root {root}, which is not a folder here: the protocols "
        "read the official lists from it; prepare the store again from the dataset's current location.")


def _test_features(store: Store, model: torch.nn.Module, cfg: TrainConfig, run: str, checkpoint: tuple[Path, str],
                   device: torch.device, feature: str, flip_test: bool, progress: bool) -> RunFeatures:
    """The test rows' features of ``model``; ``checkpoint`` is (its file, that file's sha256)."""
    test = np.flatnonzero(store.in_split("test", store.dataset.split_trial(cfg.trial)))
    features = extract_features(
        model, store.images, test, modality_codes(store.modalities[test]), cfg.size, device,
        cfg.eval_batch_size, flip=flip_test, kind=feature, precision=cfg.precision,
        channels_last=device.type == "cuda" and cfg.channels_last,
        description=f"features {run}" if progress else None)
    if not np.isfinite(features).all():
        raise UserError(
            f"{checkpoint[0]}: the model gives non-finite features (training diverged, or was too short for the "
            "batch-norm statistics to settle): train longer or with a lower --lr/--backbone-lr (--restart)."
        )
    return RunFeatures(
        run=run, dataset=str(store.meta.get("dataset")), features=features, paths=[store.paths[i] for i in test],
        pids=store.pids[test], cams=store.cams[test], modalities=store.modalities[test],
        root=Path(str(store.meta.get("source_root", ""))), checkpoint_sha256=checkpoint[1],
        feature=feature, flip_test=flip_test)


def run_features(ws: Workspace, dataset: str, run: str, feature: str = "bn", flip_test: bool = False,
                 device: str | None = None, progress: bool = True) -> RunFeatures:
    """The test features of the finished run ``run`` of the workspace store ``dataset`` (what ``evaluate``
    scores and ``export-features`` writes)."""
    store = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    torch_device = resolve_device(device)
    model, state, checkpoint = load_run_model(ws.run_dir(dataset, run), torch_device)
    cfg = config_from_run(state["run_config"])
    return _test_features(store, model, cfg, run, (checkpoint, sha256_file(checkpoint)), torch_device, feature,
                          flip_test, progress)


def _selection(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary.get("selection", {"by": "last epoch"})


def _run_trial(ws: Workspace, dataset: str, baseline: str, augment: str, seed: int) -> int | None:
    """Run folders of per-trial datasets carry the trial when it is not 1: the only one that exists, else 1."""
    base = run_name(baseline, augment, seed)
    folder = ws.run_dir(dataset, base).parent
    found = sorted(p.name for p in folder.glob(f"{base}-t*") if (p / "summary.json").is_file())
    if (folder / base / "summary.json").is_file() or not found:
        return None
    if len(found) > 1:
        raise UserError(f"several trials were trained for {base} ({', '.join(found)}): choose one with --run.")
    return int(found[0].rsplit("-t", 1)[1])
