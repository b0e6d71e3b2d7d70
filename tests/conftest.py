import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A fresh workspace folder, also set as PAPG_WORK."""
    path = tmp_path / "work"
    monkeypatch.setenv("PAPG_WORK", str(path))
    return path
