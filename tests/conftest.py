import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

from papg_bench.numerics import pin_numerics  # noqa: E402

# Every test's torch work runs on the same thread count whatever the environment says, with
# deterministic algorithms; verdicts that could still move with the CPU's rounding compare in float64.
TEST_THREADS = 2
pin_numerics(TEST_THREADS)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A fresh workspace folder, also set as PAPG_WORK."""
    path = tmp_path / "work"
    monkeypatch.setenv("PAPG_WORK", str(path))
    return path
