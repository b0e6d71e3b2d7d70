"""What a workspace holds, as a rich table (``papg-bench info``)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from papg_bench.workspace import Workspace


def _meta(path: Path) -> dict:
    try:
        return json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _subdirs(path: Path, unreadable: list[tuple[Path, str]]) -> list[Path]:
    if not path.is_dir():
        return []
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        unreadable.append((path, exc.strerror or type(exc).__name__))
        return []


def summarize(ws: Workspace) -> Table:
    table = Table(title=f"workspace {ws.root}")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("details")
    unreadable: list[tuple[Path, str]] = []
    for store in _subdirs(ws.root / "datasets", unreadable):
        meta = _meta(store)
        if not meta.get("complete"):
            table.add_row("dataset", store.name, "[yellow]incomplete[/]")
            continue
        h, w = meta.get("image_size", ["?", "?"])
        poses = "poses" if (store / "poses.npy").is_file() else "no poses"
        table.add_row("dataset", store.name, f"{meta.get('count')} images {h}x{w}, {poses}")
    for kind, sub in (("generator", "generators"), ("generated", "generated"), ("run", "runs")):
        for dataset in _subdirs(ws.root / sub, unreadable):
            for run in _subdirs(dataset, unreadable):
                table.add_row(kind, f"{dataset.name}/{run.name}", "")
    results = ws.root / "results"
    for dataset in _subdirs(results, unreadable):
        count = len(list(dataset.glob("*.json")))
        table.add_row("results", dataset.name, f"{count} records")
    for path, reason in unreadable:
        table.add_row("[yellow]unreadable[/]", str(path.relative_to(ws.root)), reason)
    if table.row_count == 0:
        table.add_row("(empty)", "", "run `papg-bench prepare` or `papg-bench demo`")
    return table
