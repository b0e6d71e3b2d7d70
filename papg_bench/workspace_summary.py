"""What a workspace holds, as a rich table (``papg-bench info``), with each output's stage state.

The state is the stage contract's (:mod:`papg_bench.stages`): ``done``, ``partial`` (begun, resumable
where the stage keeps checkpoints), or ``stale`` when an output was made from another version of its
dataset store than the one in the workspace now (the store was prepared again since).
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from papg_bench.data.store import store_mark
from papg_bench.stages import DONE, PARTIAL, STALE, Mark, output_mark, read_json, state
from papg_bench.workspace import Workspace

STATE_STYLE = {DONE: "green", STALE: "yellow", PARTIAL: "yellow"}


def _subdirs(path: Path, unreadable: list[tuple[Path, str]]) -> list[Path]:
    if not path.is_dir():
        return []
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        unreadable.append((path, exc.strerror or type(exc).__name__))
        return []


def _store_checksum(ws: Workspace, dataset: str) -> str | None:
    meta = read_json(ws.dataset_dir(dataset) / "meta.json") or {}
    return meta.get("content_checksum")


def generator_state(run_dir: Path, store_checksum: str | None) -> tuple[str, str]:
    from papg_bench.generators.trainer import CHECKPOINT, run_mark

    mark = run_mark(run_dir)
    if mark is None:
        return (PARTIAL, "checkpoint, not finished") if (run_dir / CHECKPOINT).is_file() else (PARTIAL, "empty")
    recorded = mark.fingerprint if isinstance(mark.fingerprint, dict) else {}
    expected = {**recorded, "store_checksum": store_checksum} if store_checksum and recorded else None
    return state(mark, expected), f"{mark.record.get('epochs', '?')} epochs"


def set_state(set_dir: Path, store_checksum: str | None) -> tuple[str, str]:
    from papg_bench.generators.sets import set_mark

    mark = set_mark(set_dir)
    if mark is None:
        return PARTIAL, "no meta.json"
    made_from = mark.fingerprint[1]
    expected = [mark.fingerprint[0], store_checksum if made_from and store_checksum else made_from]
    manifest = read_json(set_dir / "manifest.json") or {}
    return state(mark, expected), f"{mark.record.get('count', '?')} images, {manifest.get('display', set_dir.name)!r}"


def run_state(run_dir: Path, store_checksum: str | None) -> tuple[str, str]:
    from papg_bench.reid_baselines.run import run_mark

    mark = run_mark(run_dir)
    if mark is None:
        has_checkpoint = (run_dir / "checkpoint.pt").is_file()
        return PARTIAL, "unfinished (resume with train --resume)" if has_checkpoint else "empty"
    now = state(mark)
    recorded = ((mark.record.get("run_config") or {}).get("inputs") or {}).get("store")
    if now == DONE and recorded:  # the config hash covers the store it was trained on: compare with today's
        now = state(Mark(recorded, True), store_checksum or recorded)
    return now, f"{mark.record.get('epochs_done', '?')} epochs"


Row = tuple[str, str, str, str]  # kind, name, stage state, details


def workspace_rows(ws: Workspace) -> list[Row]:
    """What the workspace holds, one row per output, with its stage state; unreadable folders as their own rows."""
    rows: list[Row] = []
    unreadable: list[tuple[Path, str]] = []
    for store in _subdirs(ws.root / "datasets", unreadable):
        mark = store_mark(store)
        now = state(mark)
        meta = mark.record if mark is not None else {}
        h, w = meta.get("image_size", ["?", "?"])
        poses = "poses" if (store / "poses.npy").is_file() else "no poses"
        rows.append(("dataset", store.name, now, f"{meta.get('count')} images {h}x{w}, {poses}" if now == DONE else ""))
    readers = (("generator", "generators", generator_state), ("generated", "generated", set_state),
               ("run", "runs", run_state))
    for kind, sub, read in readers:
        for dataset in _subdirs(ws.root / sub, unreadable):
            checksum = _store_checksum(ws, dataset.name)
            for output in _subdirs(dataset, unreadable):
                rows.append((kind, f"{dataset.name}/{output.name}", *read(output, checksum)))
    for dataset in _subdirs(ws.root / "results", unreadable):
        rows.append(("results", dataset.name, DONE, f"{len(list(dataset.glob('*.json')))} records"))
    for dataset in _subdirs(ws.root / "reports", unreadable):
        from papg_bench.results.report import MARK

        mark = output_mark(dataset / MARK)
        if mark is not None:
            rows.append(("report", dataset.name, state(mark), f"{len(mark.record.get('files', []))} files"))
    rows += [("unreadable", str(path.relative_to(ws.root)), "", reason) for path, reason in unreadable]
    return rows


def summarize(ws: Workspace) -> Table:
    table = Table(title=f"workspace {ws.root}")
    for column in ("kind", "name", "state", "details"):
        table.add_column(column)
    for kind, name, now, details in workspace_rows(ws):
        style = "yellow" if kind == "unreadable" else STATE_STYLE.get(now, "white")
        table.add_row(f"[yellow]{kind}[/]" if kind == "unreadable" else kind, name,
                      f"[{style}]{now}[/]" if now else "", details)
    if table.row_count == 0:
        table.add_row("(empty)", "", "", "run `papg-bench prepare` or `papg-bench demo`")
    return table
