"""Rich progress bars with rate and ETA, shared by every long step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

# When the demo drives several steps it installs one shared Progress here, so that every step adds
# its task to the same display instead of opening its own.
_shared: list[Progress] = []


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@contextlib.contextmanager
def shared_progress() -> Iterator[Progress]:
    """Make every :func:`track` inside this block draw into one display."""
    progress = make_progress()
    _shared.append(progress)
    try:
        with progress:
            yield progress
    finally:
        _shared.pop()


def _ignore(n: int = 1, **fields: object) -> None:
    pass


@contextlib.contextmanager
def track(description: str, total: int | None, unit: str = "it",
          enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A progress task; yields ``advance(n=1, **fields)``. Shows ``unit/s`` as the rate.

    With ``enabled=False`` (another DDP rank, a quiet caller) nothing is drawn and ``advance`` does nothing.
    """
    if not enabled:
        yield _ignore
        return
    own = not _shared
    progress = make_progress() if own else _shared[-1]
    ctx = progress if own else contextlib.nullcontext()
    with ctx:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1, **fields: object) -> None:
            progress.advance(task, n)
            speed = next((t.speed for t in progress.tasks if t.id == task), None)
            rate = f"{speed:,.1f} {unit}/s" if speed else ""
            progress.update(task, rate=rate, **fields)

        try:
            yield advance
        finally:
            if not own:
                progress.update(task, visible=False)
