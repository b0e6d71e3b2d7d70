"""The qualitative figures of a VI-ReID paper: ranked retrieval lists and a t-SNE of test features.

    rank_figure(ws, dataset, run, compare=None, mode=None, trial=None, queries=None, pick=None, count=4,
                seed=0, top_k=10, out=None, device=None) -> Figures
        N queries x their top-k gallery images of one trial: each gallery image framed green (correct) or
        red (wrong) with its rank and distance, the query's modality and camera; ``compare`` puts a second
        model's list under each query.
    tsne_figure(ws, dataset, run, compare=None, mode=None, ids=10, seed=0, perplexity=30.0, per_identity=20,
                out=None, device=None) -> Figures
        a t-SNE of the test features of ``ids`` seeded identities, colour = identity, marker = modality;
        ``compare`` embeds a second model's features of the same images beside it.

``run`` is an evaluated run's name (or an ``evaluate --features`` record's), that is the record file's stem
before ``__`` under ``<work>/results/<dataset>/``, or a record ``.json`` itself. ``dataset`` names the
workspace store whose images are drawn (never decoded again from the dataset). Features come from the
record's features file where it names one, else from the trained run: extracted once, for the images a
figure needs, and cached in the run folder (``figure-features-<kind>.npz``, keyed by the checkpoint).
Each figure is written as PNG and PDF with a JSON sidecar of what it shows and how it was made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError, WriteError
from papg_bench.protocols.evaluate import record_features
from papg_bench.protocols.feature_files import normalize_path
from papg_bench.protocols.protocol import Protocol
from papg_bench.results.plots import save_figure
from papg_bench.results.records import list_records, read_record
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, sha256_file

PICKS = ("random", "hardest", "most-improved")
FEATURE_CACHE = "figure-features"
CORRECT_COLOR, WRONG_COLOR = "#1a9850", "#d73027"
MODALITY_NAMES = {"V": "visible", "I": "infrared"}
MARKERS = {"V": "o", "I": "^"}
TSNE_KEYS = ("perplexity", "early_exaggeration", "learning_rate", "max_iter", "n_iter", "init", "method", "angle",
             "metric", "random_state")


@dataclass(frozen=True)
class Evaluated:
    """One evaluation record: ``label`` is its run (or features) name, ``path`` the record file."""

    label: str
    path: Path
    record: dict[str, Any] = field(repr=False)


@dataclass
class Figures:
    """What a figure command wrote: PNG, PDF and the JSON sidecar (whose content is ``sidecar``)."""

    files: list[Path]
    sidecar: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# --- records and their per-query rows -----------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _label_of(path: Path) -> str:
    return path.name.split("__")[0]


def find_record(results: Path, run: str, protocol: Protocol, mode: str | None = None,
                option: str = "--run") -> Evaluated:
    """The record of ``run`` (a run or features name, or a record .json) in ``results``, of ``mode``.

    Without ``mode`` the protocol's first mode the run was evaluated in; among several records of one mode
    (re-ranked, multi-shot) the plain one.
    """
    if mode is not None:
        protocol.check_mode(mode)
    candidate = Path(run)
    if candidate.suffix == ".json" or candidate.is_file():
        if not candidate.is_file():
            raise UserError(f"{option} {run}: no such record file; give a run name or an existing record .json.")
        record = read_record(candidate)
        if mode is not None and record["mode"] != mode:
            raise UserError(f"{option} {run}: the record is of mode {record['mode']!r}, not --mode {mode}: drop "
                            "--mode or give that mode's record.")
        return Evaluated(_label_of(candidate), candidate, record)
    if not Path(results).is_dir() or not any(Path(results).glob("*.json")):
        raise UserError(f"{option} {run}: {results} holds no evaluation records: evaluate the run first "
                        "(`papg-bench evaluate --baseline ...` or `--features FILE.npz`).")
    records = list_records(Path(results))
    stem = _slug(run)
    mine = [r for r in records if _label_of(Path(r["_path"])) == stem or r.get("run") == run]
    if not mine:
        known = ", ".join(sorted({_label_of(Path(r["_path"])) for r in records}))
        raise UserError(f"{option} {run}: no record in {results} is of that run (runs there: {known}); give one "
                        "of them or a record .json.")
    modes = list(dict.fromkeys(r["mode"] for r in mine))
    if mode is None:
        mode = sorted(modes, key=lambda m: list(protocol.modes).index(m) if m in protocol.modes else len(modes))[0]
    chosen = [r for r in mine if r["mode"] == mode]
    if not chosen:
        raise UserError(f"--mode {mode}: {option} {run} was evaluated in mode {', '.join(modes)} only: choose one "
                        "of them, or evaluate that mode first.")
    chosen.sort(key=lambda r: (r.get("rerank") is not None, r.get("shots", 1) != 1, Path(r["_path"]).name))
    record = dict(chosen[0])
    path = Path(record.pop("_path"))
    return Evaluated(_label_of(path), path, record)


def query_rows_of(ev: Evaluated, trial: int) -> dict[str, dict[str, Any]]:
    """The per-query rows of ``trial`` in the record's JSONL, by query path, in protocol order."""
    name = ev.record.get("queries_file")
    if not name:
        raise UserError(f"{ev.path}: the record names no per-query file: evaluate again with --force (it writes "
                        "the per-query .queries.jsonl beside the record).")
    path = ev.path.parent / str(name)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path} (the per-query file of {ev.path.name}) does not exist: evaluate again with "
                        "--force.") from None
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc}): evaluate again with --force.") from None
        missing = [k for k in ("trial", "query", "valid", "first_correct_rank", "top", "top_correct")
                   if not isinstance(row, dict) or k not in row]
        if missing:
            raise UserError(f"{path}:{number}: a per-query row lacks {', '.join(missing)}: evaluate again with "
                            "--force.")
        if row["trial"] == trial:
            rows[normalize_path(row["query"])] = row
    if not rows:
        raise UserError(f"{path}: no per-query rows of trial {trial}: evaluate again with --force.")
    return rows


def _trial(trial: int | None, records: Sequence[Evaluated]) -> int:
    first = [t["trial"] for t in records[0].record["trials"]]
    chosen = first[0] if trial is None else trial
    for ev in records:
        have = [t["trial"] for t in ev.record["trials"]]
        if chosen not in have:
            raise UserError(f"--trial {chosen}: {ev.path.name} holds trial(s) {', '.join(map(str, have))}; choose "
                            "one of them.")
    return chosen


def _check_store(store: Store, ev: Evaluated) -> None:
    from papg_bench.catalog import dataset_names

    kind = ev.record.get("dataset_kind") or ev.record.get("dataset")
    if kind in dataset_names() and kind != store.dataset.name:
        raise UserError(f"{ev.path}: the record is of a {kind} evaluation but the store {store.path} holds "
                        f"{store.dataset.title}: give the --dataset store the record was evaluated on.")


def _records_on_store(ws: Workspace, dataset: str, run: str, compare: str | None, mode: str | None,
                      same_mode: bool) -> tuple[Store, Protocol, list[Evaluated]]:
    """The store ``dataset``, its protocol, and the records of ``run`` and ``compare`` checked against the store.

    ``compare``'s record is of ``run``'s record's mode where ``same_mode``, else of ``mode``.
    """
    store = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    protocol = store.dataset.protocol
    results = ws.results_dir(dataset)
    records = [find_record(results, run, protocol, mode)]
    if compare is not None:
        compare_mode = records[0].record["mode"] if same_mode else mode
        records.append(find_record(results, compare, protocol, compare_mode, option="--compare"))
    for ev in records:
        _check_store(store, ev)
    return store, protocol, records


def _rows_in_store(store: Store, row_of: Mapping[str, int], paths: Sequence[str], ev: Evaluated) -> np.ndarray:
    missing = [p for p in paths if p not in row_of]
    if missing:
        root = ev.record.get("root") or "its dataset root"
        raise UserError(
            f"{ev.path}: {len(missing)} image(s) it lists are not in the store {store.path} (first: {missing[0]}); "
            f"the record was evaluated on {root}: prepare the --dataset store from that root "
            f"(`papg-bench prepare --dataset {store.dataset.name} --root {root}`).")
    return np.array([row_of[p] for p in paths], dtype=np.int64)


def _stem(out: Path | str | None, ws: Workspace, dataset: str, name: str) -> Path:
    if out is None:
        return ws.reports_dir(dataset) / "figures" / name
    out = Path(out)
    return out.with_suffix("") if out.suffix.lower() in (".png", ".pdf", ".json") else out


def _write(fig: Figure, stem: Path, sidecar: dict[str, Any], notes: list[str]) -> Figures:
    files = save_figure(fig, stem)
    sidecar["notes"] = notes
    json_path = Path(f"{stem}.json")
    atomic_write_json(json_path, sidecar)
    return Figures(files=[*files, json_path], sidecar=sidecar, notes=notes)


# --- features ------------------------------------------------------------------------------------------


def _features_file(ev: Evaluated) -> Path | None:
    """The features file ``ev``'s record was evaluated from (None for a trained run's record); it must exist."""
    source = ev.record.get("features")
    if not source:
        return None
    file = Path(str(source))
    if not file.exists():
        raise UserError(f"{ev.path}: its features file {file} does not exist: put it back, or evaluate again "
                        "with --features.")
    return file


def features_for(ws: Workspace, store: Store, ev: Evaluated, paths: Sequence[str], device: str | None = None,
                 notes: list[str] | None = None) -> tuple[np.ndarray, str]:
    """Features of ``paths`` (rows in that order) for the model of ``ev``, and where they came from.

    The record's features file where it names one; else the trained run's features, extracted once and
    cached in the run folder.
    """
    file = _features_file(ev)
    if file is not None:
        table = record_features(ev.record)
        missing = [p for p in paths if p not in table.index]
        if missing:
            raise UserError(f"{file}: no features for {len(missing)} image(s) the figure needs (first: {missing[0]}); "
                            "give a features file of every test image.")
        return table.features[[table.index[p] for p in paths]], str(file)
    if ev.record.get("run"):
        return _run_features(ws, store, ev, paths, device, notes if notes is not None else [])
    raise UserError(f"{ev.path}: the record names neither a features file nor a trained run: evaluate again.")


def _run_features(ws: Workspace, store: Store, ev: Evaluated, paths: Sequence[str], device: str | None,
                  notes: list[str]) -> tuple[np.ndarray, str]:
    from papg_bench.reid_baselines.run import load_run_model

    run_dir = ws.run_dir(str(ev.record["dataset"]), str(ev.record["run"]))
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        load_run_model(run_dir, _torch_device(device))  # raises the message saying how to finish the run
    summary = json.loads(summary_path.read_text())
    checkpoint_sha = sha256_file(run_dir / summary.get("checkpoint", "checkpoint.pt"))
    if ev.record.get("checkpoint_sha256") not in (None, checkpoint_sha):
        notes.append(f"{run_dir}: the checkpoint changed after {ev.path.name} was written; its features are of "
                     "the current checkpoint.")
    kind = str(ev.record.get("feature") or "bn")
    flip = bool(ev.record.get("flip_test"))
    cache = run_dir / f"{FEATURE_CACHE}-{kind}{'-flip' if flip else ''}.npz"
    cached_paths, cached = _read_cache(cache, checkpoint_sha)
    index = {p: i for i, p in enumerate(cached_paths)}
    missing = [p for p in dict.fromkeys(paths) if p not in index]
    if missing:
        new = _extract(run_dir, store, missing, kind, flip, device)
        cached_paths = cached_paths + missing
        cached = new if cached is None else np.concatenate([cached, new])
        index = {p: i for i, p in enumerate(cached_paths)}
        try:
            with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, features=cached, paths=np.array(cached_paths, dtype=str),
                         checkpoint_sha256=np.array(checkpoint_sha))
        except WriteError as exc:
            notes.append(f"features not cached: {exc}")
    assert cached is not None
    return cached[[index[p] for p in paths]], f"{cache} ({kind}{', flip' if flip else ''})"


def _read_cache(cache: Path, checkpoint_sha: str) -> tuple[list[str], np.ndarray | None]:
    if not cache.is_file():
        return [], None
    try:
        with np.load(cache, allow_pickle=False) as data:
            if str(data["checkpoint_sha256"]) != checkpoint_sha:
                return [], None
            return [str(p) for p in data["paths"].tolist()], np.asarray(data["features"], dtype=np.float32)
    except (OSError, ValueError, KeyError):
        return [], None  # unreadable or of an older layout: extract again


def _torch_device(device: str | None) -> Any:
    from papg_bench.runtime import resolve_device

    return resolve_device(device)


def _extract(run_dir: Path, store: Store, paths: Sequence[str], kind: str, flip: bool,
             device: str | None) -> np.ndarray:
    from papg_bench.reid_baselines.extraction import extract_features
    from papg_bench.reid_baselines.run import config_from_run, load_run_model
    from papg_bench.reid_baselines.trainer import modality_codes

    torch_device = _torch_device(device)
    model, state, _ = load_run_model(run_dir, torch_device)
    cfg = config_from_run(state["run_config"])
    row_of = store.row_of_path()
    rows = np.array([row_of[p] for p in paths], dtype=np.int64)
    return extract_features(model, store.images, rows, modality_codes(store.modalities[rows]), cfg.size,
                            torch_device, cfg.eval_batch_size, flip=flip, kind=kind, precision=cfg.precision)


# --- ranked retrieval lists ----------------------------------------------------------------------------


def pick_queries(rows: Mapping[str, Mapping[str, Any]], pick: str, count: int, seed: int = 0,
                 compare: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """``count`` query paths among the valid ones (valid in ``compare`` too where given).

    ``random``: a seeded draw, in protocol order; ``hardest``: the largest first correct rank of ``rows``
    (then the lower AP, then the path); ``most-improved``: the largest drop of the first correct rank from
    ``rows`` to ``compare`` (only queries that improved).
    """
    if pick not in PICKS:
        raise UserError(f"--pick {pick!r}: choose one of {', '.join(PICKS)}.")
    if count < 1:
        raise UserError(f"--count {count}: draw at least one query.")
    valid = [q for q, r in rows.items() if r.get("valid")]
    if compare is not None:
        valid = [q for q in valid if compare.get(q, {}).get("valid")]
    if not valid:
        raise UserError("no query of this trial has a correct match in the gallery of every model: nothing to pick.")
    if pick == "random":
        rng = np.random.default_rng(seed)
        drawn = rng.choice(len(valid), size=min(count, len(valid)), replace=False)
        return [valid[i] for i in sorted(int(i) for i in drawn)]
    if pick == "hardest":
        def hardness(q: str) -> tuple[int, float, str]:
            return -int(rows[q]["first_correct_rank"]), float(rows[q].get("AP") or 0.0), q

        return sorted(valid, key=hardness)[:count]
    if compare is None:
        raise UserError("--pick most-improved compares two models: give --compare RUN2 (the model whose gain over "
                        "--run is shown).")
    gain = {q: int(rows[q]["first_correct_rank"]) - int(compare[q]["first_correct_rank"]) for q in valid}

    def order(q: str) -> tuple[int, int, str]:
        return -gain[q], -int(rows[q]["first_correct_rank"]), q

    improved = sorted((q for q in valid if gain[q] > 0), key=order)
    if not improved:
        raise UserError("--pick most-improved: no query's first correct rank improves from --run to --compare in "
                        "this trial; swap them, or use --pick hardest.")
    return improved[:count]


def _given_queries(queries: Sequence[str], rows: Sequence[Mapping[str, Mapping[str, Any]]],
                   records: Sequence[Evaluated], trial: int) -> list[str]:
    chosen = []
    for text in queries:
        path = normalize_path(text)
        for ev, r in zip(records, rows, strict=True):
            if path not in r:
                example = next(iter(r))
                raise UserError(f"--queries {text}: not a query of {ev.path.name} in trial {trial} (queries look "
                                f"like {example!r}); give paths relative to the dataset root.")
        chosen.append(path)
    return list(dict.fromkeys(chosen))


def _distances(ws: Workspace, store: Store, ev: Evaluated, lists: Sequence[tuple[str, Sequence[str]]],
               device: str | None, notes: list[str]) -> list[list[float] | None]:
    """Query to gallery distances of each (query, top list), from the model's features."""
    from papg_bench.protocols.retrieval import distance_matrix, prepare_features

    if ev.record.get("rerank") is not None:
        notes.append(f"{ev.label}: distances not shown: the per-query rows predate them and re-ranked distances "
                     "cannot be recomputed from the features; evaluate again to list them.")
        return [None] * len(lists)
    paths = list(dict.fromkeys([q for q, _ in lists] + [g for _, top in lists for g in top]))
    try:
        feats, _ = features_for(ws, store, ev, paths, device, notes)
    except UserError as exc:
        notes.append(f"{ev.label}: distances not shown ({exc}).")
        return [None] * len(lists)
    distance = str(ev.record.get("distance") or "cosine")
    prepared = prepare_features(feats, distance)
    at = {p: i for i, p in enumerate(paths)}
    out: list[list[float] | None] = []
    for query, top in lists:
        d = distance_matrix(prepared[[at[query]]], prepared[[at[g] for g in top]], distance, "torch", "cpu",
                            normalized=True) if top else np.zeros((1, 0))
        out.append([round(float(v), 6) for v in d[0]])
    return out


def rank_figure(
    ws: Workspace,
    dataset: str,
    run: str,
    *,
    compare: str | None = None,
    mode: str | None = None,
    trial: int | None = None,
    queries: Sequence[str] | None = None,
    pick: str | None = None,
    count: int = 4,
    seed: int = 0,
    top_k: int = 10,
    out: Path | str | None = None,
    device: str | None = None,
) -> Figures:
    """Ranked retrieval lists of ``count`` queries (or the given ``queries``) of one trial; see the module."""
    if queries and pick is not None:
        raise UserError("give either --queries or --pick, not both.")
    if top_k < 1:
        raise UserError(f"--top-k {top_k}: show at least one gallery image.")
    store, protocol, records = _records_on_store(ws, dataset, run, compare, mode, same_mode=True)
    chosen_trial = _trial(trial, records)
    rows = [query_rows_of(ev, chosen_trial) for ev in records]
    if queries:
        picked, how = _given_queries(queries, rows, records, chosen_trial), "queries"
    else:
        how = pick or "random"
        picked = pick_queries(rows[0], how, count, seed, rows[1] if len(rows) > 1 else None)

    notes: list[str] = []
    shown = min(top_k, max(len(r[q]["top"]) for r in rows for q in picked))
    if shown == 0:
        raise UserError(f"{records[0].path}: its per-query rows list no gallery entries: evaluate again with "
                        "--top-k 10 --force.")
    listed = min(int(ev.record.get("top_k") or top_k) for ev in records)
    if shown < top_k and listed < top_k:
        notes.append(f"the per-query rows list {listed} gallery entries per query (evaluate --top-k {listed}), "
                     f"fewer than --top-k {top_k}.")
    row_of = store.row_of_path()
    lists = []
    for ev, r in zip(records, rows, strict=True):
        entries = [(q, [normalize_path(g) for g in r[q]["top"][:shown]]) for q in picked]
        _rows_in_store(store, row_of, list(dict.fromkeys(p for q, top in entries for p in (q, *top))), ev)
        distances: list[list[float] | None] = [
            [float(v) for v in r[q]["top_distance"][:shown]] if "top_distance" in r[q] else None for q in picked]
        if any(d is None for d in distances):
            distances = _distances(ws, store, ev, entries, device, notes)
        lists.append((entries, distances))

    blocks = []
    for i, q in enumerate(picked):
        q_row = row_of[q]
        block = {"query": q, "pid": int(rows[0][q].get("pid", store.pids[q_row])),
                 "cam": int(rows[0][q].get("cam", store.cams[q_row])),
                 "modality": MODALITY_NAMES.get(str(store.modalities[q_row]), str(store.modalities[q_row])),
                 "lists": []}
        for ev, r, (entries, distances) in zip(records, rows, lists, strict=True):
            top = entries[i][1]
            block["lists"].append({"label": ev.label, "record": str(ev.path),
                                   "first_correct_rank": r[q]["first_correct_rank"], "top": top,
                                   "correct": [bool(c) for c in r[q]["top_correct"][:len(top)]],
                                   "distance": distances[i]})
        blocks.append(block)

    first = records[0].record
    title = (f"{protocol.title} {protocol.modes.get(first['mode'], first['mode'])}, trial {chosen_trial}: top-{shown} "
             f"of " + " vs ".join(ev.label for ev in records) + "\nframe green: correct, red: wrong; under each "
             f"image: rank | {first.get('distance') or 'cosine'} distance")
    fig = _rank_grid(blocks, store, row_of, shown, title)
    name = "-vs-".join(_slug(ev.label) for ev in records)
    stem = _stem(out, ws, dataset, f"ranks-{name}-{_slug(first['mode'])}-t{chosen_trial}-{how}")
    sidecar = {
        "figure": "ranks", "dataset": dataset, "protocol": first["protocol"], "mode": first["mode"],
        "trial": chosen_trial, "pick": how, "seed": seed if how == "random" else None, "count": len(picked),
        "top_k": shown, "distance": first.get("distance"),
        "runs": [{"label": ev.label, "record": str(ev.path)} for ev in records],
        "queries": blocks,
    }
    return _write(fig, stem, sidecar, notes)


def _frame(ax: Any, color: str, width: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(width)


def _rank_grid(blocks: Sequence[Mapping[str, Any]], store: Store, row_of: Mapping[str, int], top_k: int,
               title: str) -> Figure:
    """One block of rows per query (one row per model), a thin gap between blocks."""
    height, width = store.size
    cell_w, cell_h, label_h, gap_h = 0.75, 0.75 * height / width, 0.22, 0.42
    rows = [len(b["lists"]) for b in blocks]
    ratios: list[float] = []
    for i, n in enumerate(rows):
        ratios += ([gap_h] if i else []) + [cell_h + label_h] * n
    widths = [cell_w, 0.45] + [cell_w] * top_k  # query, a gap for the model's label, the gallery
    fig_w, fig_h = sum(widths) + 0.3, sum(ratios) + 0.7
    fig = Figure(figsize=(fig_w, fig_h))
    grid = fig.add_gridspec(len(ratios), len(widths), height_ratios=ratios, width_ratios=widths, wspace=0.06,
                            hspace=0.0, left=0.15 / fig_w, right=1 - 0.15 / fig_w, top=1 - 0.6 / fig_h, bottom=0.0)
    r = 0
    for i, block in enumerate(blocks):
        r += 1 if i else 0
        for k, entry in enumerate(block["lists"]):
            def cell(column: int, row: int = r) -> Any:
                ax = fig.add_subplot(grid[row, column])
                ax.set_anchor("N")
                return ax

            if k == 0:
                query_ax = cell(0)
                query_ax.imshow(np.asarray(store.images[row_of[block["query"]]]), interpolation="nearest")
                _frame(query_ax, "#333333", 1.0)
                query_ax.set_xlabel(f"{block['modality']}, cam {block['cam']}\nid {block['pid']}", fontsize=6.5,
                                    labelpad=2)
                query_ax.set_title("query", fontsize=7, pad=2)
            rank = entry["first_correct_rank"]
            label_ax = cell(1)
            label_ax.axis("off")
            label_ax.text(0.5, 0.5, f"{entry['label']}\nfirst correct\nrank {rank if rank is not None else '-'}",
                          rotation=90, ha="center", va="center", fontsize=6.5, transform=label_ax.transAxes)
            for j, path in enumerate(entry["top"][:top_k]):
                ax = cell(2 + j)
                ax.imshow(np.asarray(store.images[row_of[path]]), interpolation="nearest")
                _frame(ax, CORRECT_COLOR if entry["correct"][j] else WRONG_COLOR, 2.5)
                distance = entry["distance"][j] if entry["distance"] is not None else None
                ax.set_xlabel(f"{j + 1}" + (f" | {distance:.3f}" if distance is not None else ""), fontsize=6.5,
                              labelpad=2)
            r += 1
    fig.suptitle(title, fontsize=8, y=1 - 0.12 / fig_h, va="top")
    return fig


# --- t-SNE ---------------------------------------------------------------------------------------------


def _split_trial(ev: Evaluated) -> int | None:
    config = ev.record.get("config")
    if isinstance(config, Mapping) and config.get("trial") is not None:
        return int(config["trial"])
    return int(ev.record["trials"][0]["trial"])


def _available(ws: Workspace, store: Store, ev: Evaluated) -> np.ndarray:
    """Store rows of test images whose features this record's model can give."""
    test = store.in_split("test", store.dataset.split_trial(_split_trial(ev)))
    if _features_file(ev) is not None:
        have = set(record_features(ev.record).paths)
        test &= np.array([p in have for p in store.paths], dtype=bool)
    rows = np.flatnonzero(test)
    if not len(rows):
        raise UserError(f"{ev.path}: none of its images is a test image of the store {store.path}: give the "
                        "--dataset store the record was evaluated on.")
    return rows


def _choose_images(store: Store, rows: np.ndarray, ids: int, per_identity: int, seed: int,
                   notes: list[str]) -> tuple[list[int], np.ndarray, int]:
    """(identities, store rows, size of the identity pool): ``ids`` seeded identities seen in both modalities,
    at most ``per_identity`` seeded images of each of their modalities."""
    pids, mods = store.pids[rows], store.modalities[rows]
    both = sorted(int(p) for p in np.unique(pids) if {"V", "I"} <= {str(m) for m in mods[pids == p]})
    if len(both) < 2:
        raise UserError(f"the store {store.path} has {len(both)} test identit{'y' if len(both) == 1 else 'ies'} "
                        "with images of both modalities and features: a t-SNE needs at least 2.")
    if ids > len(both):
        notes.append(f"--ids {ids}: only {len(both)} test identities have both modalities; all are drawn.")
    rng = np.random.default_rng(seed)
    chosen = sorted(int(p) for p in rng.choice(both, size=min(ids, len(both)), replace=False))
    picked = []
    for pid in chosen:
        for modality in ("V", "I"):
            mine = rows[(pids == pid) & (mods == modality)]
            if per_identity and len(mine) > per_identity:
                mine = np.sort(rng.choice(mine, size=per_identity, replace=False))
            picked.append(mine)
    return chosen, np.concatenate(picked), len(both)


def embed(features: np.ndarray, perplexity: float, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D t-SNE (scikit-learn) of ``features``; returns the points and the settings used.

    The perplexity is capped at (n - 1) / 3 so that few points still have enough neighbours.
    """
    import sklearn
    from sklearn.manifold import TSNE

    if perplexity <= 0:
        raise UserError(f"--perplexity {perplexity}: give a positive number (5 to 50 is usual).")
    n = len(features)
    used = float(min(perplexity, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=used, init="pca", learning_rate="auto", random_state=seed)
    points = tsne.fit_transform(np.asarray(features, dtype=np.float32))
    params = tsne.get_params()
    settings = {k: params[k] for k in TSNE_KEYS if k in params}
    settings.update({"implementation": f"scikit-learn {sklearn.__version__} sklearn.manifold.TSNE",
                     "perplexity_requested": float(perplexity), "points": n,
                     "kl_divergence": round(float(tsne.kl_divergence_), 6)})
    return points, settings


def tsne_figure(
    ws: Workspace,
    dataset: str,
    run: str,
    *,
    compare: str | None = None,
    mode: str | None = None,
    ids: int = 10,
    seed: int = 0,
    perplexity: float = 30.0,
    per_identity: int = 20,
    out: Path | str | None = None,
    device: str | None = None,
) -> Figures:
    """t-SNE of the test features of ``ids`` seeded identities, both modalities; see the module docstring."""
    if ids < 2:
        raise UserError(f"--ids {ids}: draw at least 2 identities.")
    if per_identity < 0:
        raise UserError(f"--per-identity {per_identity}: give 0 (every image) or a positive cap.")
    store, protocol, records = _records_on_store(ws, dataset, run, compare, mode, same_mode=False)
    notes: list[str] = []
    rows = _available(ws, store, records[0])
    for ev in records[1:]:
        rows = np.intersect1d(rows, _available(ws, store, ev))
    identities, picked, pool = _choose_images(store, rows, ids, per_identity, seed, notes)
    paths = [store.paths[i] for i in picked]
    pids, mods = store.pids[picked], np.array([str(m) for m in store.modalities[picked]])

    from papg_bench.protocols.retrieval import prepare_features

    panels, runs = [], []
    for ev in records:
        feats, source = features_for(ws, store, ev, paths, device, notes)
        distance = str(ev.record.get("distance") or "cosine")
        points, settings = embed(prepare_features(feats, distance), perplexity, seed)
        settings["features"] = f"L2-normalised ({distance} distance)" if distance == "cosine" else "as stored"
        panels.append((ev.label, points))
        runs.append({"label": ev.label, "record": str(ev.path), "features": source, "tsne": settings,
                     "embedding": [[round(float(x), 4), round(float(y), 4)] for x, y in points]})

    fig = _tsne_plot(panels, identities, pids, mods,
                     f"t-SNE of {protocol.title} test features: {len(identities)} identities, perplexity "
                     f"{runs[0]['tsne']['perplexity']:.3g}, seed {seed}")
    name = "-vs-".join(_slug(ev.label) for ev in records)
    stem = _stem(out, ws, dataset, f"tsne-{name}-k{len(identities)}-s{seed}")
    sidecar = {
        "figure": "tsne", "dataset": dataset, "seed": seed, "perplexity": float(perplexity),
        "identities": identities, "identity_pool": pool, "ids_requested": ids, "per_identity": per_identity,
        "split_trial": store.dataset.split_trial(_split_trial(records[0])),
        "images": [{"path": p, "pid": int(pid), "modality": MODALITY_NAMES.get(m, m)}
                   for p, pid, m in zip(paths, pids, mods, strict=True)],
        "runs": runs,
    }
    return _write(fig, stem, sidecar, notes)


def _identity_colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["hsv"](i / count) for i in range(count)]


def _tsne_plot(panels: Sequence[tuple[str, np.ndarray]], identities: Sequence[int], pids: np.ndarray,
               mods: np.ndarray, title: str) -> Figure:
    from matplotlib.lines import Line2D

    colors = _identity_colors(len(identities))
    fig = Figure(figsize=(4.6 * len(panels) + 1.4, 4.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, points) in zip(axes, panels, strict=True):
        for color, pid in zip(colors, identities, strict=True):
            for modality, marker in MARKERS.items():
                mask = (pids == pid) & (mods == modality)
                ax.scatter(points[mask, 0], points[mask, 1], color=color, marker=marker, s=22, alpha=0.85,
                           edgecolors="black" if modality == "I" else "none", linewidths=0.4)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], linestyle="none", marker=m, color="0.4", markeredgecolor="black" if k == "I" else "0.4",
                      label=MODALITY_NAMES[k]) for k, m in MARKERS.items()]
    handles += [Line2D([], [], linestyle="none", marker="s", color=c, label=f"id {pid}")
                for c, pid in zip(colors, identities, strict=True)]
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    return fig
