"""Plots: CMC curves, the generator's sample grid and the cross-modality distance distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from papg_bench.errors import UserError
from papg_bench.results.plots import CmcSeries, cmc_plot, distance_distributions, sample_grid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_written(paths: list[Path], stem: Path) -> None:
    assert paths == [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not [p for p in stem.parent.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_cmc_plot(tmp_path: Path) -> None:
    runs = np.linspace(40, 90, 20)[None, :] + np.random.default_rng(0).normal(0, 1, (10, 20))
    series = [CmcSeries("AGW", runs, group="agw", linestyle="--"), CmcSeries("AGW + PAPG (ours)", runs + 5, "agw")]
    assert_written(cmc_plot(series, tmp_path / "cmc_all", title="all-search"), tmp_path / "cmc_all")


def test_sample_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = lambda: rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)  # noqa: E731
    rows = [
        {"real_v": image(), "fake_i": image(), "real_i": image(), "fake_v": image(), "title": "id 3"},
        {"real_v": image(), "fake_i": rng.integers(0, 256, (32, 16), dtype=np.uint8), "real_i": None},
    ]
    assert_written(sample_grid(rows, tmp_path / "samples"), tmp_path / "samples")
    with pytest.raises(UserError, match="row 0 'real_v' must be a uint8 H x W x 3 array"):
        sample_grid([{"real_v": np.zeros((32, 16, 3), dtype=np.float32)}], tmp_path / "bad")
    with pytest.raises(UserError, match="no rows"):
        sample_grid([], tmp_path / "bad")


def test_distance_distributions_from_features_and_matrices(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    pids = np.repeat(np.arange(8), 4)

    def features(noise: float) -> np.ndarray:
        return centres[pids] + rng.normal(scale=noise, size=(pids.size, 16))

    models = {
        "AGW": (features(1.0), pids, features(1.0), pids),
        "AGW + PAPG": {"query_features": features(0.2), "query_pids": pids,
                       "gallery_features": features(0.2), "gallery_pids": pids},
    }
    summary = distance_distributions(models, tmp_path / "distances")
    assert_written([tmp_path / "distances.png", tmp_path / "distances.pdf"], tmp_path / "distances")
    for s in summary.values():
        assert s.mean_pos < s.mean_neg and 0.0 <= s.overlap <= 1.0
        assert (s.n_pos, s.n_neg) == (32 * 4, 32 * 28)
    assert summary["AGW + PAPG"].overlap < summary["AGW"].overlap  # tighter identities separate better

    matrix = np.array([[0.1, 0.9], [0.8, 0.2]])
    known = distance_distributions({"m": (matrix, [1, 2], [1, 2])}, tmp_path / "known", bins=10)["m"]
    assert known.mean_pos == pytest.approx(0.15) and known.mean_neg == pytest.approx(0.85)
    assert known.overlap == 0.0
    with pytest.raises(UserError, match="distances are \\(2, 2\\) but there are 3 query"):
        distance_distributions({"m": (matrix, [1, 2, 3], [1, 2])}, tmp_path / "bad")
