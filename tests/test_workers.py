"""The one worker-pool helper: each worker builds its state once, results come back whole, state is released."""

from __future__ import annotations

import os

import pytest

from papg_bench.workers import worker_results

released: list[dict] = []


def _setup(offset: int) -> dict:
    return {"offset": offset, "pid": os.getpid()}


def _add(state: dict, task: int) -> tuple[int, int]:
    return task + state["offset"], state["pid"]


def _release(state: dict) -> None:
    released.append(state)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_is_answered_with_the_workers_state(workers: int) -> None:
    released.clear()
    with worker_results(_add, range(20), workers, _setup, (100,), teardown=_release, chunksize=3) as results:
        answers = list(results)
    assert sorted(value for value, _ in answers) == list(range(100, 120))
    pids = {pid for _, pid in answers}
    if workers == 1:
        assert pids == {os.getpid()} and released == [{"offset": 100, "pid": os.getpid()}]
    else:
        assert os.getpid() not in pids and len(pids) <= 2 and released == []


def test_in_process_state_is_released_when_a_task_fails() -> None:
    released.clear()
    with pytest.raises(TypeError):
        with worker_results(_add, [1, "x"], 1, _setup, (0,), teardown=_release) as results:
            list(results)
    assert len(released) == 1
