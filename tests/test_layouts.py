"""Official-layout readers: what they list, and every bad-layout message."""

from pathlib import Path

import pytest

from papg_bench.data.fixtures import make_regdb_tree, make_sysu_tree
from papg_bench.data.layouts import read_layout
from papg_bench.data.regdb import read_regdb
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError


def test_sysu_listing(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu", train_ids=[1, 2], val_ids=[3], test_ids=[4], images_per_camera=2)
    listing = read_sysu(root)
    assert listing.name == "sysu"
    by_path = {r.path: r for r in listing.records}
    cam3 = [r for r in listing.records if r.cam == 3]
    assert cam3 and all(r.modality == "I" for r in cam3)
    assert all(r.modality == "V" for r in listing.records if r.cam in (1, 2, 4, 5))
    rec = by_path["cam6/0004/0001.jpg"]
    assert (rec.pid, rec.cam, rec.modality, rec.split) == (4, 6, "I", "test")
    assert {r.split for r in listing.records if r.pid == 3} == {"val"}
    assert listing.info["split_ids"] == {"train": [1, 2], "val": [3], "test": [4]}


def test_sysu_ids_from_folder_names_not_offsets(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu", train_ids=[1], val_ids=[2], test_ids=[3], images_per_camera=1)
    # A long, odd file name must not change the parsed identity or camera.
    src = root / "cam1" / "0001" / "0001.jpg"
    if src.exists():
        src.rename(root / "cam1" / "0001" / "cam5_9999_photo.jpg")
        rec = next(r for r in read_sysu(root).records if r.path.endswith("cam5_9999_photo.jpg"))
        assert (rec.pid, rec.cam) == (1, 1)


def test_sysu_missing_exp(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    for f in (root / "exp").iterdir():
        f.unlink()
    (root / "exp").rmdir()
    with pytest.raises(UserError, match=r"exp is missing"):
        read_sysu(root)


def test_sysu_bad_id_file(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    (root / "exp" / "val_id.txt").write_text("4; 5\n")
    with pytest.raises(UserError, match=r"val_id\.txt.*not an integer id.*comma-separated"):
        read_sysu(root)


def test_sysu_missing_id_file(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    (root / "exp" / "test_id.txt").unlink()
    with pytest.raises(UserError, match=r"test_id\.txt is missing"):
        read_sysu(root)


def test_sysu_bad_camera_folder(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    (root / "camera7").mkdir()
    with pytest.raises(UserError, match=r"camera7.*not camK"):
        read_sysu(root)


def test_sysu_root_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a folder"):
        read_sysu(tmp_path / "nope")


def test_regdb_listing(tmp_path: Path) -> None:
    root = make_regdb_tree(tmp_path / "regdb", ids=4, images_per_modality=2, trials=2)
    listing = read_regdb(root)
    assert listing.info["trials"] == [1, 2]
    assert len(listing.records) == 4 * 2 * 2
    thermal = [r for r in listing.records if r.path.startswith("Thermal/")]
    assert thermal and all(r.modality == "I" and r.cam == 2 for r in thermal)
    for r in listing.records:
        assert r.pid == int(r.path.split("/")[1])
        tokens = r.split.split()
        assert len(tokens) == 2 and {t[:-1] for t in tokens} <= {"train", "test"}


def test_regdb_missing_listed_image(tmp_path: Path) -> None:
    root = make_regdb_tree(tmp_path / "regdb", ids=4, images_per_modality=2, trials=1)
    victim = next((root / "Visible" / "1").iterdir())
    victim.unlink()
    with pytest.raises(UserError, match=r"listed image .* does not exist"):
        read_regdb(root)


def test_regdb_bad_list_line(tmp_path: Path) -> None:
    root = make_regdb_tree(tmp_path / "regdb", ids=4, images_per_modality=2, trials=1)
    (root / "idx" / "train_visible_1.txt").write_text("Visible/1/a.bmp\n")
    with pytest.raises(UserError, match=r"train_visible_1\.txt:1: expected 'relative/path label'"):
        read_regdb(root)


def test_regdb_missing_idx(tmp_path: Path) -> None:
    root = make_regdb_tree(tmp_path / "regdb", ids=4, images_per_modality=1, trials=1)
    for f in (root / "idx").iterdir():
        f.unlink()
    (root / "idx").rmdir()
    with pytest.raises(UserError, match=r"idx is missing"):
        read_regdb(root)


def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--dataset 'market'"):
        read_layout("market", tmp_path)
