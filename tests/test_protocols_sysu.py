"""SYSU-MM01 query/gallery construction: order, seeded sampling, multi-shot, the official permutation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from papg_bench.errors import UserError
from papg_bench.protocols import sysu


def _tree(root: Path, folders: dict[tuple[int, int], int], test_ids: list[int]) -> Path:
    """Empty files are enough: the protocol lists folders, it never opens an image."""
    for (cam, pid), count in folders.items():
        folder = root / f"cam{cam}" / f"{pid:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(1, count + 1):
            (folder / f"{k:04d}.jpg").touch()
    (root / "exp").mkdir(parents=True, exist_ok=True)
    (root / "exp" / "train_id.txt").write_text("1,2\n")
    (root / "exp" / "val_id.txt").write_text("4\n")
    (root / "exp" / "test_id.txt").write_text(",".join(map(str, test_ids)) + "\n")
    return root


# Test ids 3 and 10 (listed out of order); id 3 lacks cam4, id 10 has an empty cam5 folder; train id 1 is ignored.
FOLDERS = {
    (3, 3): 2, (6, 3): 1, (3, 10): 1, (6, 10): 2,
    (1, 3): 4, (2, 3): 12, (5, 3): 3,
    (1, 10): 2, (2, 10): 3, (4, 10): 5, (5, 10): 0,
    (1, 1): 3, (3, 1): 2,
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _tree(tmp_path / "SYSU-MM01", FOLDERS, [10, 3])


def test_query_is_every_ir_image_by_id_then_camera(root):
    query, _ = sysu.query_gallery(root)
    assert query.paths == [
        "cam3/0003/0001.jpg", "cam3/0003/0002.jpg", "cam6/0003/0001.jpg",
        "cam3/0010/0001.jpg", "cam6/0010/0001.jpg", "cam6/0010/0002.jpg",
    ]
    assert query.pids.tolist() == [3, 3, 3, 10, 10, 10]
    assert query.cams.tolist() == [3, 3, 6, 3, 6, 6]


def _reference_gallery(mode: str, trial: int, shots: int) -> list[str]:
    """The widely used code, global ``random`` and all: ids ascending, then the mode's cameras."""
    random.seed(trial)
    files = []
    for pid in (3, 10):
        for cam in sysu.MODES[mode]:
            count = FOLDERS.get((cam, pid), 0)
            if not count:
                continue
            names = sorted(f"cam{cam}/{pid:04d}/{k:04d}.jpg" for k in range(1, count + 1))
            files += [random.choice(names)] if shots == 1 else random.sample(names, min(10, len(names)))
    return files


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("shots", [1, 10])
@pytest.mark.parametrize("trial", [0, 1, 7])
def test_seeded_gallery_reproduces_the_reference_draws(root, mode, shots, trial):
    _, gallery = sysu.query_gallery(root, mode=mode, trial=trial, shots=shots)
    assert gallery.paths == _reference_gallery(mode, trial, shots)
    assert gallery.cams.tolist() == [int(p[3]) for p in gallery.paths]
    assert gallery.pids.tolist() == [int(p.split("/")[1]) for p in gallery.paths]


def test_seeded_gallery_order_and_sizes(root):
    _, single = sysu.query_gallery(root, mode="all", trial=0)
    # id 3: cam1, cam2, cam5 (no cam4); id 10: cam1, cam2, cam4 (cam5 folder empty)
    assert [(p[:4], p[5:9]) for p in single.paths] == [
        ("cam1", "0003"), ("cam2", "0003"), ("cam5", "0003"), ("cam1", "0010"), ("cam2", "0010"), ("cam4", "0010"),
    ]
    _, indoor = sysu.query_gallery(root, mode="indoor", trial=0)
    assert {p[:4] for p in indoor.paths} == {"cam1", "cam2"} and len(indoor) == 4
    _, multi = sysu.query_gallery(root, mode="all", trial=0, shots=10)
    # cam2/0003 has 12 images -> 10 drawn; every other folder gives all of its images.
    assert len(multi) == 4 + 10 + 3 + 2 + 3 + 5
    assert len(set(multi.paths)) == len(multi)


def test_trials_differ_and_repeat(root):
    draws = {t: sysu.query_gallery(root, trial=t, shots=10)[1].paths for t in range(10)}
    assert draws[3] == sysu.query_gallery(root, trial=3, shots=10)[1].paths
    assert len({tuple(d) for d in draws.values()}) > 1


def _write_perm(root: Path, rows: dict[tuple[int, int], np.ndarray], num_ids: int = 10) -> None:
    cams = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((1, num_ids), dtype=object)
        for pid in range(1, num_ids + 1):
            per_id[0, pid - 1] = rows.get((cam, pid), np.zeros((0, 0)))
        cams[cam - 1, 0] = per_id
    savemat(root / "exp" / "rand_perm_cam.mat", {"rand_perm_cam": cams})


def test_official_permutation_cameras_outside_ids_inside(root):
    perm = {
        (1, 3): np.array([[3, 1, 2], [2, 3, 1]] * 5, dtype=float),
        (2, 3): np.tile(np.arange(12, 0, -1, dtype=float), (10, 1)),
        (5, 3): np.tile([2.0, 1, 3], (10, 1)),
        (1, 10): np.tile([2.0, 1], (10, 1)),
        (2, 10): np.tile([1.0, 3, 2], (10, 1)),
        (4, 10): np.tile([5.0, 4, 3, 2, 1], (10, 1)),
    }
    _write_perm(root, perm)
    _, g0 = sysu.query_gallery(root, mode="all", trial=0, sampling="official")
    assert g0.paths == [
        "cam1/0003/0003.jpg", "cam1/0010/0002.jpg", "cam2/0003/0012.jpg", "cam2/0010/0001.jpg",
        "cam4/0010/0005.jpg", "cam5/0003/0002.jpg",
    ]
    _, g1 = sysu.query_gallery(root, mode="indoor", trial=1, sampling="official")
    assert g1.paths == ["cam1/0003/0002.jpg", "cam1/0010/0002.jpg", "cam2/0003/0012.jpg", "cam2/0010/0001.jpg"]
    _, multi = sysu.query_gallery(root, mode="indoor", trial=0, shots=10, sampling="official")
    assert multi.paths[:3] == ["cam1/0003/0003.jpg", "cam1/0003/0001.jpg", "cam1/0003/0002.jpg"]
    assert len(multi) == 3 + 2 + 10 + 3


def test_official_permutation_errors(root):
    with pytest.raises(UserError, match="rand_perm_cam.mat is missing"):
        sysu.query_gallery(root, sampling="official")
    _write_perm(root, {(1, 3): np.tile([9.0], (10, 1))})
    with pytest.raises(UserError, match="cam1/0003/0009.jpg, which does not exist"):
        sysu.query_gallery(root, sampling="official")
    savemat(root / "exp" / "rand_perm_cam.mat", {"something_else": np.zeros(3)})
    with pytest.raises(UserError, match="no variable rand_perm_cam"):
        sysu.query_gallery(root, sampling="official")


@pytest.mark.parametrize(("options", "fragment"), [
    ({"mode": "outdoor"}, "--mode 'outdoor'"),
    ({"shots": 5}, "--shots 5"),
    ({"sampling": "numpy"}, "--sampling"),
    ({"trial": 10}, "trials are 0..9"),
])
def test_bad_options(root, options, fragment):
    with pytest.raises(UserError, match=fragment):
        sysu.query_gallery(root, **options)


def test_bad_layouts(tmp_path):
    with pytest.raises(UserError, match="exp"):
        sysu.query_gallery(tmp_path / "nowhere")
    empty = _tree(tmp_path / "no-ir", {(1, 3): 1}, [3])
    with pytest.raises(UserError, match="no IR images"):
        sysu.query_gallery(empty)


def test_protocol_identifiers():
    assert sysu.protocol_id("all", 1, "seed") == "sysu/all/single-shot/seed-trials/v1"
    assert sysu.protocol_id("indoor", 10, "official", rerank=True) == "sysu/indoor/multi-shot/official-perm/rerank/v1"
