"""One way to run a function over many tasks in worker processes (``prepare``'s decoders, ``synth``'s renderers).

Each worker builds its state once (an open file, the render settings) with ``setup(*setup_args)`` and then
answers ``function(state, task)`` for its share of the tasks. Workers are spawned, not forked, so they
start without the parent's torch threads; with one worker everything runs in this process.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_worker: dict[str, Any] = {}  # this process's state while it serves a pool


def _start(setup: Callable[..., Any], setup_args: tuple, function: Callable[[Any, Any], Any]) -> None:
    _worker.update(state=setup(*setup_args), function=function)


def _serve(task: Any) -> Any:
    return _worker["function"](_worker["state"], task)


@contextmanager
def worker_results(
    function: Callable[[Any, Any], Any],
    tasks: Iterable[Any],
    workers: int,
    setup: Callable[..., Any],
    setup_args: tuple = (),
    teardown: Callable[[Any], None] | None = None,
    chunksize: int = 1,
) -> Iterator[Iterator[Any]]:
    """The results of ``function(state, task)`` for every task, in completion order (``workers`` processes).

    ``function`` and ``setup`` must be module-level functions (spawned workers import them by name).
    ``teardown(state)`` runs when the results are consumed in this process (one worker); a worker
    process releases its state when it exits.
    """
    if workers <= 1:
        state = setup(*setup_args)
        try:
            yield (function(state, task) for task in tasks)
        finally:
            if teardown is not None:
                teardown(state)
        return
    with mp.get_context("spawn").Pool(workers, initializer=_start, initargs=(setup, setup_args, function)) as pool:
        yield pool.imap_unordered(_serve, tasks, chunksize=chunksize)
