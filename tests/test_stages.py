"""The stage contract: one decision of "is this output done for these inputs?", one status vocabulary, and
``info`` reading it (a generated set or a run made from an older version of the store shows as stale)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reid_helpers import GreyTranslator, make_workspace

from papg_bench.cli import main
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import open_store
from papg_bench.data.sysu import read_sysu
from papg_bench.generators.sets import write_set
from papg_bench.stages import (
    DONE,
    MISSING,
    OUTCOMES,
    PARTIAL,
    REUSED,
    STALE,
    Mark,
    is_done,
    output_mark,
    state,
    write_mark,
)
from papg_bench.workspace import Workspace
from papg_bench.workspace_summary import workspace_rows


def test_state_of_a_mark() -> None:
    assert state(None, "x") == MISSING
    assert state(Mark("x", False), "x") == PARTIAL
    assert state(Mark("x", True), "y") == STALE
    assert state(Mark("x", True), "x") == DONE
    assert state(Mark("x", True)) == DONE  # completeness alone
    # a fingerprint read back from JSON equals the one a stage computes now: tuples vs lists, key order
    assert is_done(Mark({"b": [1, 2], "a": "s"}, True), {"a": "s", "b": (1, 2)})
    assert not is_done(Mark({"a": 1}, True), {"a": 1, "b": None})
    assert set(OUTCOMES) == {"done", "reused", "resumed", "stopped"}


def test_an_output_mark_is_incomplete_once_a_listed_file_is_gone(tmp_path: Path) -> None:
    files = [tmp_path / "table.md", tmp_path / "plots" / "cmc.png"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    write_mark(tmp_path / "mark.json", ["records", 3], files, details={"k": 1})
    assert json.loads((tmp_path / "mark.json").read_text())["files"] == ["table.md", "plots/cmc.png"]
    assert state(output_mark(tmp_path / "mark.json"), ["records", 3]) == DONE
    assert state(output_mark(tmp_path / "mark.json"), ["records", 4]) == STALE
    files[1].unlink()
    assert state(output_mark(tmp_path / "mark.json"), ["records", 3]) == PARTIAL
    assert output_mark(tmp_path / "absent.json") is None


def _info_states(capsys: pytest.CaptureFixture, ws: Workspace) -> dict[str, str]:
    """``info``'s stage state of each output (the rows it renders; the command itself must succeed too)."""
    assert main(["--work", str(ws.root), "info"]) == 0
    capsys.readouterr()
    return {f"{kind} {name}": now for kind, name, now, _ in workspace_rows(ws)}


def test_info_reads_the_stage_states_and_notices_a_store_prepared_again(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    ws = make_workspace(tmp_path)
    assert write_set(ws, "sysu", "grey", GreyTranslator()).status == DONE
    (ws.root / "runs" / "sysu" / "agw-none-s0").mkdir(parents=True)
    (ws.root / "runs" / "sysu" / "agw-none-s0" / "checkpoint.pt").write_bytes(b"")
    states = _info_states(capsys, ws)
    assert states["dataset sysu"] == DONE and states["generated sysu/grey"] == DONE
    assert states["run sysu/agw-none-s0"] == PARTIAL

    store = open_store(ws.dataset_dir("sysu"))
    root = Path(store.meta["source_root"])
    # the same images at another size: the store is rebuilt, and what was made from the old one is stale
    assert prepare_store(read_sysu(root), root, ws.dataset_dir("sysu"), (32, 16), workers=1).status == DONE
    states = _info_states(capsys, ws)
    assert states["dataset sysu"] == DONE and states["generated sysu/grey"] == STALE
    assert states["generated sysu/papg"] == DONE  # written without the source's checksum: it cannot tell
    assert prepare_store(read_sysu(root), root, ws.dataset_dir("sysu"), (32, 16), workers=1).status == REUSED
