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
    result = read_json(run_dir / "result.json") or {}
    recorded = mark.fingerprint if isinstance(mark.fingerprint, dict) else {}
    expected = {**recorded, "store_checksum": store_checksum} if store_checksum and recorded else None
    return state(mark, expected), f"{result.get('epochs', '?')} epochs"


def set_state(set_dir: Path, store_checksum: str | None) -> tuple[str, str]:
    from papg_bench.generators.sets import set_mark

    mark = set_mark(set_dir)
    if mark is None:
        return PARTIAL, "no meta.json"
    meta = read_json(set_dir / "meta.json") or {}
    made_from = mark.fingerprint[1]
    expected = [mark.fingerprint[0], store_checksum if made_from and store_checksum else made_from]
    manifest = read_json(set_dir / "manifest.json") or {}
    return state(mark, expected), f"{meta.get('count', '?')} images, {manifest.get('display', set_dir.name)!r}"


def run_state(run_dir: Path, store_checksum: str | None) -> tuple[str, str]:
    summary = read_json(run_dir / "summary.json")
    if summary is None:
        has_checkpoint = (run_dir / "checkpoint.pt").is_file()
        return PARTIAL, "unfinished (resume with train --resume)" if has_checkpoint else "empty"
    recorded = ((summary.get("run_config") or {}).get("inputs") or {}).get("store")
    mark = Mark([summary.get("config_hash"), recorded], bool(summary.get("complete")))
    expected = [summary.get("config_hash"), store_checksum or recorded]
    return state(mark, expected), f"{summary.get('epochs_done', '?')} epochs"


def summarize(ws: Workspace) -> Table:
    table = Table(title=f"workspace {ws.root}")
    for column in ("kind", "name", "state", "details"):
        table.add_column(column)
    unreadable: list[tuple[Path, str]] = []

    def add(kind: str, name: str, now: str, details: str) -> None:
        table.add_row(kind, name, f"[{STATE_STYLE.get(now, 'white')}]{now}[/]", details)

    for store in _subdirs(ws.root / "datasets", unreadable):
        now = state(store_mark(store))
        meta = read_json(store / "meta.json") or {}
        h, w = meta.get("image_size", ["?", "?"])
        poses = "poses" if (store / "poses.npy").is_file() else "no poses"
        add("dataset", store.name, now, f"{meta.get('count')} images {h}x{w}, {poses}" if now == DONE else "")
    readers = (("generator", "generators", generator_state), ("generated", "generated", set_state),
               ("run", "runs", run_state))
    for kind, sub, read in readers:
        for dataset in _subdirs(ws.root / sub, unreadable):
            checksum = _store_checksum(ws, dataset.name)
            for output in _subdirs(dataset, unreadable):
                add(kind, f"{dataset.name}/{output.name}", *read(output, checksum))
    for dataset in _subdirs(ws.root / "results", unreadable):
        count = len(list(dataset.glob("*.json")))
        add("results", dataset.name, DONE, f"{count} records")
    for dataset in _subdirs(ws.root / "reports", unreadable):
        from papg_bench.results.report import MARK

        mark = output_mark(dataset / MARK)
        if mark is not None:
            add("report", dataset.name, state(mark), f"{len((read_json(dataset / MARK) or {}).get('files', []))} files")
    for path, reason in unreadable:
        table.add_row("[yellow]unreadable[/]", str(path.relative_to(ws.root)), "", reason)
    if table.row_count == 0:
        table.add_row("(empty)", "", "", "run `papg-bench prepare` or `papg-bench demo`")
    return table
