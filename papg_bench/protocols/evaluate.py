"""Run every trial of one protocol on a features matrix: the result record and the per-query rows.

The core, callable without the CLI (``papg-bench evaluate --features`` and the evaluation of trained runs
both use it)::

    evaluate_features(
        features: np.ndarray,           # (N, D) one row per image
        paths: Sequence[str],           # N image paths relative to ``root`` (forward or back slashes)
        root: Path | str,               # dataset root in the official layout
        dataset: str,                   # registered dataset (papg_bench.catalog) whose protocol runs
        options: ProtocolOptions,       # mode/direction, shots, sampling, trials, distance, backend, rerank, top_k
        extra: Mapping[str, Any] | None = None,  # record fields to add or override (baseline, augment, run, ...)
        progress: bool = True,          # rich progress bar over the trials
    ) -> Evaluation                     # .record (dict, results/records.py schema), .queries (list of dicts)

    save_evaluation(evaluation, out_dir, run) -> (record_path, queries_path)
        writes ``<out_dir>/<record_name(run, protocol)>.json`` and the per-query ``... .queries.jsonl``.

    evaluate_features_file(features_file, root, dataset, options, out_dir, modes=None, run=None)
        -> list[SavedEvaluation]: what ``papg-bench evaluate --features`` runs (every mode, each saved).

``features`` may also be a :class:`~papg_bench.protocols.feature_files.FeatureTable` (then ``paths`` is ignored).
Per-query rows: ``trial, query, pid, cam, valid, first_correct_rank, identity_rank, AP, INP, top, top_correct``
and ``top_distance`` (the distance of each listed gallery entry; absent in rows written before it existed).

``ProtocolOptions.mode`` is one of the protocol's modes (SYSU-MM01 ``all`` / ``indoor``, RegDB ``v2t`` /
``t2v``, LLCM ``ir2vis`` / ``ir2vis-drawn``); :func:`default_modes` gives all of them, as published tables
report them. Distances from the queries to every
gallery image of every trial are computed once per query set (on SYSU the query set is the same in all
trials), then each trial's gallery columns are taken from that matrix.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.catalog import get_dataset
from papg_bench.errors import UserError
from papg_bench.protocols.feature_files import FeatureTable, feature_table, rows_for
from papg_bench.protocols.metrics import Metrics, evaluate
from papg_bench.protocols.protocol import Protocol
from papg_bench.protocols.rerank import check_parameters, rerank
from papg_bench.protocols.retrieval import DISTANCES, distance_matrix, prepare_features, resolve_backend
from papg_bench.protocols.splits import Split


@dataclass(frozen=True)
class RerankOptions:
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def as_record(self) -> dict[str, float]:
        return {"k1": self.k1, "k2": self.k2, "lambda": self.lambda_value}


@dataclass(frozen=True)
class ProtocolOptions:
    mode: str = "all"  # one of the protocol's modes
    shots: int = 1  # gallery images per identity and camera, where the protocol offers a choice
    sampling: str = "seed"  # gallery sampling, where the protocol offers a choice; ignored elsewhere
    split_file: Path | None = None  # the dataset authors' split file a sampling reads, when not at its default place
    trials: tuple[int, ...] | None = None  # None: the protocol's default trials
    distance: str = "cosine"
    backend: str = "auto"
    device: str | None = None
    rerank: RerankOptions | None = None
    top_k: int = 10  # gallery entries listed per query in the per-query rows


@dataclass
class Evaluation:
    record: dict[str, Any]
    queries: list[dict[str, Any]] = field(repr=False)


def protocol_of(dataset: str) -> Protocol:
    """The protocol of the registered dataset ``dataset`` (its layout name, e.g. the store's ``dataset``)."""
    return get_dataset(dataset).protocol


def default_modes(dataset: str) -> tuple[str, ...]:
    return tuple(protocol_of(dataset).modes)


def check_dataset(dataset: str) -> None:
    protocol_of(dataset)


def default_trials(dataset: str, root: Path) -> tuple[int, ...]:
    return protocol_of(dataset).default_trials(Path(root))


def parse_trials(text: str | None, dataset: str) -> tuple[int, ...] | None:
    """``"0-9"``, ``"1,3,5"`` or ``"2"`` -> trial numbers; None -> the protocol's default."""
    if text is None or not text.strip():
        return None
    trials: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-"))
                if hi < lo:
                    raise ValueError
                trials.extend(range(lo, hi + 1))
            else:
                trials.append(int(part))
    except ValueError:
        raise UserError(f"--trials {text!r}: give a range such as 0-9 or a comma list such as 1,3,5.") from None
    protocol_of(dataset).check_trials(trials, text)
    return tuple(dict.fromkeys(trials))


def protocol_identifier(dataset: str, options: ProtocolOptions, trials: Sequence[int]) -> str:
    return protocol_of(dataset).identifier(options.mode, options.shots, options.sampling, trials,
                                           options.rerank is not None)


def _check_options(dataset: str, options: ProtocolOptions) -> None:
    protocol_of(dataset).check_options(options.mode, options.shots, options.sampling)
    protocol_of(dataset).check_split_file(options.sampling, options.split_file)
    if options.distance not in DISTANCES:
        raise UserError(f"--distance {options.distance!r} is not one of {', '.join(DISTANCES)}.")
    if options.rerank is not None:
        check_parameters(options.rerank.k1, options.rerank.k2, options.rerank.lambda_value)
    if options.top_k < 0:
        raise UserError(f"top-k {options.top_k} must be 0 or more.")


def trial_splits(dataset: str, root: Path, options: ProtocolOptions, trial: int) -> tuple[Split, Split]:
    return protocol_of(dataset).query_gallery(root, options.mode, trial, options.shots, options.sampling,
                                              options.split_file)


def split_file_record(dataset: str, root: Path, sampling: str, split_file: Path | None) -> dict[str, str] | None:
    """The split file ``sampling`` reads the galleries from, with its sha256 (None where it reads none, or where
    the file is missing: reading the galleries then fails with the message that says where to get it)."""
    from papg_bench.workspace import sha256_file

    path = protocol_of(dataset).split_file_path(Path(root), sampling, split_file)
    if path is None or not path.is_file():
        return None
    return {"path": str(path.resolve()), "sha256": sha256_file(path)}


def _device_name(backend: str, device: str | None) -> str:
    if backend == "faiss-gpu":
        return "cuda"
    if backend == "faiss-cpu":
        return "cpu"
    from papg_bench.runtime import resolve_device

    return str(resolve_device(device))


def evaluate_features(
    features: np.ndarray | FeatureTable,
    paths: Sequence[str],
    root: Path | str,
    dataset: str,
    options: ProtocolOptions,
    extra: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Evaluation:
    """Every trial of one protocol on ``features``; see the module docstring."""
    root = Path(root)
    _check_options(dataset, options)
    table = features if isinstance(features, FeatureTable) else feature_table(features, paths, root=root)
    trials = tuple(options.trials) if options.trials is not None else default_trials(dataset, root)
    if not trials:
        raise UserError("no trials to evaluate: give --trials.")
    backend = resolve_backend(options.backend)
    started = time.perf_counter()
    prepared = prepare_features(table.features, options.distance)

    splits = {t: trial_splits(dataset, root, options, t) for t in trials}
    rows = {t: (rows_for(table, q, "query"), rows_for(table, g, "gallery")) for t, (q, g) in splits.items()}
    cache = _DistanceCache(prepared, options, backend, rows)

    trial_records: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    with _progress(progress, f"evaluate {protocol_identifier(dataset, options, trials)}", len(trials)) as advance:
        for t in trials:
            query, gallery = splits[t]
            distmat = cache.query_gallery(t)
            if options.rerank is not None:
                r = options.rerank
                distmat = rerank(distmat, cache.query_query(t), cache.gallery_gallery(t), r.k1, r.k2, r.lambda_value)
            metrics = evaluate(distmat, query.pids, gallery.pids, query.cams, gallery.cams,
                               protocol=protocol_of(dataset), top_k=options.top_k)
            trial_records.append(_trial_record(t, metrics, len(gallery)))
            queries.extend(query_rows(t, query, gallery, metrics, distmat))
            advance()

    from papg_bench.results.records import summarize_trials
    from papg_bench.workspace import provenance

    prov = provenance()
    record: dict[str, Any] = {
        "protocol": protocol_identifier(dataset, options, trials),
        "dataset": dataset,
        "dataset_kind": dataset,  # the registered dataset whose protocol ran ("dataset" may name a store)
        "mode": options.mode,
        "shots": options.shots,
        "sampling": protocol_of(dataset).record_sampling(options.sampling),
        "split_file": split_file_record(dataset, root, options.sampling, options.split_file),
        "rerank": options.rerank.as_record() if options.rerank is not None else None,
        "distance": options.distance,
        "backend": backend,
        "device": _device_name(backend, options.device),
        "baseline": None,
        "augment": None,
        "seed": None,
        "run": None,
        "features": None,
        "root": str(root),
        "top_k": options.top_k,
        "trials": trial_records,
        "summary": summarize_trials(trial_records),
        "config_hash": None,
        "checkpoint_sha256": None,
        "git_revision": prov["git_revision"],
        "versions": prov["versions"],
        "created": prov["created"],
        "wall_time_s": round(time.perf_counter() - started, 3),
        "queries_file": None,
    }
    record.update(extra or {})
    return Evaluation(record=record, queries=queries)


def _trial_record(trial: int, m: Metrics, gallery_size: int) -> dict[str, Any]:
    return {
        "trial": trial,
        "cmc": [float(v) for v in m.cmc],
        "mAP": m.mAP,
        "mINP": m.mINP,
        "num_queries": m.num_queries,
        "num_valid_queries": m.num_valid,
        "gallery_size": gallery_size,
    }


def query_rows(trial: int, query: Split, gallery: Split, m: Metrics,
               distmat: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per query: its top-k gallery paths (and, given ``distmat``, their distances), first correct
    (filtered) rank, AP and INP."""
    g_paths = gallery.paths
    rows = []
    for i, path in enumerate(query.paths):
        top = [int(j) for j in m.top[i] if j >= 0]
        valid = bool(m.valid[i])
        rows.append({
            "trial": trial,
            "query": path,
            "pid": int(query.pids[i]),
            "cam": int(query.cams[i]),
            "valid": valid,
            "first_correct_rank": int(m.first_rank[i]) if valid else None,
            "identity_rank": int(m.id_rank[i]) if valid else None,
            "AP": float(m.ap[i]) if valid else None,
            "INP": float(m.inp[i]) if valid else None,
            "top": [g_paths[j] for j in top],
            "top_correct": [bool(gallery.pids[j] == query.pids[i]) for j in top],
        })
        if distmat is not None:
            rows[-1]["top_distance"] = [round(float(distmat[i, j]), 6) for j in top]
    return rows


class _DistanceCache:
    """Query x gallery distances, computed once per distinct query set over the union of its galleries."""

    def __init__(self, prepared: np.ndarray, options: ProtocolOptions, backend: str,
                 rows: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        self.prepared, self.options, self.backend, self.rows = prepared, options, backend, rows
        self._groups: dict[bytes, tuple[np.ndarray, np.ndarray | None]] = {}
        self._qq: dict[bytes, np.ndarray] = {}

    def _distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return distance_matrix(self.prepared[a], self.prepared[b], self.options.distance, self.backend,
                               self.options.device, normalized=True)

    def query_gallery(self, trial: int) -> np.ndarray:
        q_rows, g_rows = self.rows[trial]
        key = q_rows.tobytes()
        if key not in self._groups:
            union = np.unique(np.concatenate([g for q, g in self.rows.values() if q.tobytes() == key]))
            self._groups[key] = (union, None)
        union, dist = self._groups[key]
        if dist is None:
            dist = self._distances(q_rows, union)
            self._groups[key] = (union, dist)
        return dist[:, np.searchsorted(union, g_rows)]

    def query_query(self, trial: int) -> np.ndarray:
        q_rows = self.rows[trial][0]
        key = q_rows.tobytes()
        if key not in self._qq:
            self._qq[key] = self._distances(q_rows, q_rows)
        return self._qq[key]

    def gallery_gallery(self, trial: int) -> np.ndarray:
        g_rows = self.rows[trial][1]
        return self._distances(g_rows, g_rows)


@contextlib.contextmanager
def _progress(enabled: bool, description: str, total: int) -> Iterator[Callable[..., None]]:
    if not enabled:
        yield lambda *args, **fields: None
        return
    from papg_bench.progress import track

    with track(description, total, unit="trial") as advance:
        yield advance


def save_evaluation(evaluation: Evaluation, out_dir: Path | str, run: str) -> tuple[Path, Path]:
    """Write the per-query JSONL, then the record naming it; returns (record path, queries path)."""
    from papg_bench.results.records import record_name, write_queries, write_record

    out_dir = Path(out_dir)
    stem = record_name(run, evaluation.record["protocol"])
    queries_path = out_dir / f"{stem}.queries.jsonl"
    record_path = out_dir / f"{stem}.json"
    write_queries(queries_path, evaluation.queries)
    evaluation.record["queries_file"] = queries_path.name
    write_record(record_path, evaluation.record)
    return record_path, queries_path


def summary_table(records: Sequence[Mapping[str, Any]], title: str = "evaluation") -> Any:
    """A rich table: R1/R5/R10/R20/mAP/mINP rows, one column per record, mean ± std over trials in percent."""
    from rich.table import Table

    table = Table(title=title, caption="protocols: " + ", ".join(r["protocol"] for r in records))
    table.add_column("metric", no_wrap=True)
    for rec in records:
        table.add_column(f"{rec['mode']} ({len(rec['trials'])} trials)", justify="right", no_wrap=True)
    for key, label in (("rank1", "R1"), ("rank5", "R5"), ("rank10", "R10"), ("rank20", "R20"), ("mAP", "mAP"),
                       ("mINP", "mINP")):
        cells = [f"{100 * r['summary'][key]['mean']:.2f} ± {100 * r['summary'][key]['std']:.2f}" for r in records]
        table.add_row(label, *cells)
    return table


@dataclass
class SavedEvaluation:
    record: dict[str, Any]
    record_path: Path
    queries_path: Path


def evaluate_features_file(
    features_file: Path | str,
    root: Path | str,
    dataset: str,
    options: ProtocolOptions,
    out_dir: Path | str,
    modes: Sequence[str] | None = None,
    run: str | None = None,
    progress: bool = True,
    fmt: str = "npz",
    name: str | None = None,
) -> list[SavedEvaluation]:
    """``papg-bench evaluate --features``: every mode (default: both) of ``dataset`` on an .npz, each saved.

    ``fmt`` ``official`` (or the protocol's format name, e.g. ``sysu-mat``) reads the dataset authors' feature
    files from the folder ``features_file`` instead (the set ``name`` where it holds several). The record file
    is named after ``run`` (default: the features file's stem or the set's name, plus ``-euclidean`` for that
    distance) and the protocol identifier.
    """
    import dataclasses

    from papg_bench.protocols.feature_files import feature_meta, load_features

    check_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--root {root} is not a folder: give the {dataset} dataset root in the official layout.")
    modes = tuple(modes) if modes else default_modes(dataset)
    for mode in modes:
        _check_options(dataset, dataclasses.replace(options, mode=mode))
    extra: dict[str, Any] = {}
    if fmt == "npz":
        table = load_features(features_file, root)
        stem = Path(features_file).stem
        # a file of `evaluate --save-features` names the model it came from
        meta = feature_meta(features_file)
        extra.update({k: meta[k] for k in ("checkpoint_sha256", "feature", "flip_test") if k in meta})
        if "run" in meta:
            extra["features_run"] = meta["run"]
    else:
        protocol = protocol_of(dataset)
        extra["features_format"] = protocol.check_official_format(fmt)
        table = protocol.read_official_features(Path(features_file), root, name)
        extra["features_name"] = name
        stem = name or Path(features_file).name
    run = run or stem + ("-euclidean" if options.distance == "euclidean" else "")
    extra["features"] = str(Path(features_file).resolve())
    saved = []
    for mode in modes:
        evaluation = evaluate_features(table, table.paths, root, dataset, dataclasses.replace(options, mode=mode),
                                       extra=extra, progress=progress)
        record_path, queries_path = save_evaluation(evaluation, out_dir, run)
        saved.append(SavedEvaluation(evaluation.record, record_path, queries_path))
    return saved


def record_features(record: Mapping[str, Any]) -> FeatureTable:
    """The features a record of ``evaluate --features`` (or ``--save-features``) was computed from: its .npz, or
    its folder of the dataset authors' feature files (``features_format``)."""
    from papg_bench.protocols.feature_files import load_features

    path = Path(str(record["features"]))
    root = Path(str(record.get("root") or "."))
    fmt = record.get("features_format")
    if fmt:
        if not path.is_dir():
            raise UserError(f"the features folder {path} of the record does not exist: put it back, or evaluate "
                            "again.")
        dataset = str(record.get("dataset_kind") or record["dataset"])
        return protocol_of(dataset).read_official_features(path, root, record.get("features_name"))
    return load_features(path, root)
