"""The stage contract: how every step that can be skipped answers "is my output already done?".

A stage (``synth``, ``prepare``, ``pose``, ``train-generator``, ``generate``, the imports, ``train``,
``evaluate``, ``report``) has a *fingerprint*: a JSON value naming its inputs and the settings that
change its output (a store's content checksum, a config hash, a checkpoint's sha256, ...). When it
completes, it records that fingerprint in its output (``meta.json``, ``result.json``, ``summary.json``,
a record). Reading it back gives a :class:`Mark`; :func:`state` is the one place that compares a mark
with the fingerprint a stage would have now.

What a stage reports after it ran is one of :data:`OUTCOMES`; what ``info`` says of an output already on
disk is one of :data:`STATES`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# outcomes of running a stage
DONE = "done"  # the stage did its work; its output is complete
REUSED = "reused"  # the output was already complete for the same fingerprint; nothing was computed
RESUMED = "resumed"  # continued from a checkpoint of an interrupted run, then completed
STOPPED = "stopped"  # ended early on request (a time-limited job); a later run can resume it
OUTCOMES = (DONE, REUSED, RESUMED, STOPPED)

# states of an output on disk
STALE = "stale"  # complete, but made from other inputs or settings than the current ones
PARTIAL = "partial"  # begun and not complete (resumable where the stage keeps checkpoints)
MISSING = "missing"  # not there
STATES = (DONE, STALE, PARTIAL, MISSING)


@dataclass(frozen=True)
class Mark:
    """What an output records of itself: the fingerprint it was made for, and whether it is whole.

    ``record`` is the file the mark was read from (a store's ``meta.json``, a run's ``summary.json``, ...), so
    that a stage reusing its output need not read it again; it takes no part in comparisons."""

    fingerprint: Any
    complete: bool
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def state(mark: Mark | None, fingerprint: Any = None) -> str:
    """``done``, ``stale``, ``partial`` or ``missing``; without ``fingerprint`` only completeness counts."""
    if mark is None:
        return MISSING
    if not mark.complete:
        return PARTIAL
    if fingerprint is not None and _canonical(mark.fingerprint) != _canonical(fingerprint):
        return STALE
    return DONE


def is_done(mark: Mark | None, fingerprint: Any) -> bool:
    """Whether the output marked ``mark`` is complete for ``fingerprint`` (a stage may then skip its work)."""
    return state(mark, fingerprint) == DONE


def output_mark(path: Path) -> Mark | None:
    """The mark :func:`write_mark` left at ``path``: complete while every file it lists still exists."""
    mark = read_json(path)
    if mark is None:
        return None
    files = [Path(path).parent / name for name in mark.get("files", [])]
    return Mark(mark.get("fingerprint"), bool(mark.get("complete")) and all(f.is_file() for f in files), mark)


def write_mark(path: Path, fingerprint: Any, files: list[Path], **details: Any) -> None:
    """Record at ``path`` that ``files`` (beside it) are the complete output for ``fingerprint``."""
    from papg_bench.workspace import atomic_write_json

    names = [str(Path(f).relative_to(Path(path).parent)) for f in files]
    atomic_write_json(Path(path), {"fingerprint": fingerprint, "complete": True, "files": names, **details})


def fingerprint_files(paths: list[Path], *settings: Any) -> str:
    """sha256 over the bytes of ``paths`` (in the given order) and ``settings``: a fingerprint of inputs."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    digest.update(_canonical(list(settings)).encode())
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any] | None:
    """A stage's JSON file, or None when it is missing or unreadable (a partial write counts as missing)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _canonical(value: Any) -> str:
    # tuples and lists, and key order, must not make two equal fingerprints differ
    return json.dumps(value, sort_keys=True, default=str)
