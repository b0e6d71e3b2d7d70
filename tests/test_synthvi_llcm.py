"""synthvi in the LLCM layout: the folder and list structure the released LLCM code reads, the split and
counts of the presets, ground truth for every image, the low-light share, determinism and the reader."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthvi_helpers import check_seed_determinism, tree

from papg_bench.data import synthvi_llcm
from papg_bench.data.synthvi import GT_DIR, make_params, read_keypoints, read_meta, synthesize
from papg_bench.data.synthvi_llcm import (
    INFRARED_CAMERAS,
    LOW_LIGHT_FILE,
    LOW_LIGHT_SHARE,
    VISIBLE_CAMERAS,
    llcm_split,
    llcm_tasks,
    low_light_count,
)
from papg_bench.data.synthvi_preview import write_preview
from papg_bench.errors import UserError

NAME = re.compile(r"^(\d{4})_c(\d{2})_s(\d{6})_f(\d{4})_(vis|nir)\.jpg$")
HAS_READER = importlib.util.find_spec("papg_bench.data.llcm") is not None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synthvi") / "llcm", "llcm", preset="tiny", seed=0, workers=2).root


def _images(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for top in ("vis", "nir", "test_vis", "test_nir")
                  for p in (root / top).rglob("*.jpg"))


def _list(path: Path) -> list[tuple[str, int]]:
    return [(line.split(" ")[0], int(line.split(" ")[1])) for line in path.read_text().splitlines()]


def _grey(path: Path) -> bool:
    a = np.asarray(Image.open(path).convert("RGB"))
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))


def test_folders_and_lists_follow_the_llcm_layout(root: Path) -> None:
    meta = read_meta(root)
    assert meta is not None and meta["layout"] == "llcm" and meta["complete"]
    assert sorted(p.name for p in root.iterdir()) == ["idx", "nir", GT_DIR, "test_nir", "test_vis", "vis"]
    assert sorted(p.name for p in (root / "idx").iterdir()) == [
        "test_id.txt", "test_nir.txt", "test_vis.txt", "train_nir.txt", "train_vis.txt"]
    assert sorted(p.name for p in (root / "test_vis").iterdir()) == [f"cam{c}" for c in range(1, 10)]
    assert sorted(p.name for p in (root / "test_nir").iterdir()) == [f"cam{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)]
    splits = meta["split_ids"]
    lines = (root / "idx" / "test_id.txt").read_text().splitlines()
    assert len(lines) == 1 and [int(i) for i in lines[0].split(",")] == splits["test"]

    for suffix in ("vis", "nir"):
        train = _list(root / "idx" / f"train_{suffix}.txt")
        assert [p for p, _ in train] == sorted(p for p in _images(root) if p.startswith(f"{suffix}/"))
        for path, label in train:  # <suffix>/NNNN/NNNN_cKK_..._<suffix>.jpg, label 0.. among the training ids
            top, folder, name = path.split("/")
            pid, cam, _clock, _frame, kind = NAME.match(name).groups()  # type: ignore[union-attr]
            assert top == kind == suffix and folder == pid and label == splits["train"].index(int(pid))
            assert int(cam) in (VISIBLE_CAMERAS if suffix == "vis" else INFRARED_CAMERAS)
        assert {int(p.split("/")[1]) for p, _ in train} == set(splits["train"])
        test = _list(root / "idx" / f"test_{suffix}.txt")
        assert [p for p, _ in test] == sorted(p for p in _images(root) if p.startswith(f"test_{suffix}/"))
        for path, label in test:  # test_<suffix>/camK/NNNN/NNNN_cKK_..., as DEEN's data_manager parses it
            top, cam_dir, folder, name = path.split("/")
            pid, cam, *_ = NAME.match(name).groups()  # type: ignore[union-attr]
            assert top == f"test_{suffix}" and cam_dir == f"cam{int(cam)}" and folder == pid
            assert int(path.split("cam")[1][0]) == int(cam) and int(path.split("cam")[1][2:6]) == int(pid)
            assert label == splits["test"].index(int(pid))
        assert {int(p.split("/")[2]) for p, _ in test} == set(splits["test"])
    assert not any("_c03_" in p for p in _images(root) if p.endswith("_nir.jpg"))  # camera 3 has no infrared


def test_split_and_counts_are_the_presets(root: Path) -> None:
    meta = read_meta(root)
    splits = meta["split_ids"]
    train, test = synthvi_llcm.PRESETS["tiny"].split
    assert (len(splits["train"]), len(splits["test"])) == (train, test)
    assert not set(splits["train"]) & set(splits["test"])
    assert sorted(splits["train"] + splits["test"]) == list(range(1, train + test + 1))
    images = _images(root)
    assert meta["images"] == len(images) and meta["image_size"] == [64, 32]
    for suffix, cams in (("vis", VISIBLE_CAMERAS), ("nir", INFRARED_CAMERAS)):
        found = {f"cam{c}": sum(1 for p in images if p.endswith(f"_{suffix}.jpg") and f"_c{c:02d}_" in p)
                 for c in cams}
        assert meta["images_by_camera"][suffix] == found
    lo, hi = synthvi_llcm.PRESETS["tiny"].per_camera
    for pid in splits["train"] + splits["test"]:  # both modalities, lo..hi images per camera
        for suffix in ("vis", "nir"):
            per_cam = [sum(1 for p in images if f"/{pid:04d}_c{c:02d}_" in p and p.endswith(f"_{suffix}.jpg"))
                       for c in VISIBLE_CAMERAS]
            assert any(per_cam) and all(n == 0 or lo <= n <= hi for n in per_cam)


def test_full_preset_plans_llcm_counts() -> None:
    params = make_params("llcm", "full", seed=0)
    splits = llcm_split(params)
    tasks = llcm_tasks(params, splits)
    assert params.ids == 1064 and (len(splits["train"]), len(splits["test"])) == (713, 351)
    assert abs(sum(t[3] for t in tasks) - 46767) < 0.02 * 46767
    three = make_params("llcm", "tiny", ids=3)
    assert three.ids == 3 and [len(ids) for ids in llcm_split(three).values()] == [2, 1]
    with pytest.raises(UserError, match="--ids"):
        make_params("llcm", "tiny", ids=1)


def test_keypoints_and_counterparts_for_every_image(root: Path) -> None:
    images = _images(root)
    points = read_keypoints(root / GT_DIR / "keypoints.csv")
    assert sorted(points) == images
    for rel in images:
        assert (root / GT_DIR / "counterparts" / rel).is_file()
    for rel in images[::9]:
        img, twin = Image.open(root / rel), Image.open(root / GT_DIR / "counterparts" / rel)
        assert img.size == twin.size == (32, 64)
        infrared = rel.endswith("_nir.jpg")
        assert _grey(root / rel) == infrared and _grey(root / GT_DIR / "counterparts" / rel) != infrared
        kp = points[rel]
        inside = kp[:, 0] >= 0
        assert np.all((kp[inside, 0] < 32) & (kp[inside, 1] >= 0) & (kp[inside, 1] < 64))


def test_low_light_share_per_camera(root: Path) -> None:
    meta = read_meta(root)
    dark = (root / GT_DIR / LOW_LIGHT_FILE).read_text().splitlines()
    visible = [p for p in _images(root) if p.endswith("_vis.jpg")]
    assert set(dark) <= set(visible) and dark == sorted(set(dark))
    assert meta["low_light"]["share_by_camera"] == {f"cam{c}": LOW_LIGHT_SHARE[c] for c in VISIBLE_CAMERAS}
    for cam in VISIBLE_CAMERAS:
        mine = [p for p in visible if f"_c{cam:02d}_" in p]
        low = [p for p in dark if f"_c{cam:02d}_" in p]
        assert len(low) == low_light_count(LOW_LIGHT_SHARE[cam], len(mine)) == meta["low_light"]["images_by_camera"][
            f"cam{cam}"]
        day = [p for p in mine if p not in set(low)]
        if low and day:  # darker than the same camera's daylight images
            def mean(paths: list[str]) -> float:
                return float(np.mean([np.asarray(Image.open(root / p).convert("L"), dtype=np.float32).mean()
                                      for p in paths]))
            assert mean(low) < 0.7 * mean(day)
    assert 0.25 < len(dark) / len(visible) < 0.45


def test_same_seed_byte_identical_whatever_the_workers(tmp_path: Path) -> None:
    one = check_seed_determinism(tmp_path, "llcm", seed=5)
    material = synthesize(tmp_path / "d", "llcm", preset="tiny", ids=4, seed=5, workers=1, infrared="material-dye")
    changed = {k for k, v in tree(material.root).items() if one.get(k) != v}

    def near_infrared(k: str) -> bool:  # an infrared image, or the infrared twin of a visible one
        return k.endswith("_vis.jpg") == k.startswith(f"{GT_DIR}/counterparts/")

    assert changed and all(k.endswith("meta.json") or (k.endswith(".jpg") and near_infrared(k)) for k in changed)


def test_preview(root: Path, tmp_path: Path) -> None:
    with Image.open(write_preview(root, tmp_path / "p.png")) as img:
        assert img.width > 17 * 70 and img.height > 4 * 160


@pytest.mark.skipif(not HAS_READER, reason="papg_bench.data.llcm is not there")
def test_read_llcm_reads_the_tree(root: Path) -> None:
    from papg_bench.data.llcm import INFRARED_CAMERAS as READER_IR
    from papg_bench.data.llcm import VISIBLE_CAMERAS as READER_VIS
    from papg_bench.data.llcm import read_llcm

    assert (tuple(READER_VIS), tuple(READER_IR)) == (VISIBLE_CAMERAS, INFRARED_CAMERAS)
    meta = read_meta(root)
    listing = read_llcm(root)
    assert sorted(r.path for r in listing.records) == _images(root) and len(listing.records) == meta["images"]
    assert listing.info["split_ids"] == meta["split_ids"] and listing.info["unlisted_images"] == 0
    for r in listing.records:
        pid, cam, *_rest, suffix = NAME.match(r.path.split("/")[-1]).groups()  # type: ignore[union-attr]
        assert (r.pid, r.cam, r.modality) == (int(pid), int(cam), "V" if suffix == "vis" else "I")
        assert r.split == ("test" if r.pid in meta["split_ids"]["test"] else "train")
