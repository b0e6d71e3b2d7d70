"""Shared checks of the synthvi layout tests."""

from __future__ import annotations

from pathlib import Path

from papg_bench.data.synthvi import synthesize


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def check_seed_determinism(tmp_path: Path, layout: str, seed: int) -> dict[str, bytes]:
    """Render ``layout`` (tiny, 4 ids) with ``seed`` on one and on two workers, and with ``seed + 1``: the first
    two must be byte-identical, the third's keypoints different. Returns the first rendering's files."""
    one = synthesize(tmp_path / "a", layout, preset="tiny", ids=4, seed=seed, workers=1).root
    two = synthesize(tmp_path / "b", layout, preset="tiny", ids=4, seed=seed, workers=2).root
    other = synthesize(tmp_path / "c", layout, preset="tiny", ids=4, seed=seed + 1, workers=1).root
    files = tree(one)
    assert files == tree(two)
    assert files["synthvi/keypoints.csv"] != tree(other)["synthvi/keypoints.csv"]
    return files
