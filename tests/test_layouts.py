"""Official-layout readers: what they list, and every bad-layout message."""

import shutil
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


# a tiny tree of each layout, and its reader
LAYOUTS = {
    "sysu": (make_sysu_tree, read_sysu),
    "regdb": (lambda root: make_regdb_tree(root, ids=4, images_per_modality=2, trials=1), read_regdb),
}
# case -> (layout, what spoils a fresh tree, the message its reader must give)
BAD_LAYOUTS = {
    "sysu-missing-exp": ("sysu", lambda root: shutil.rmtree(root / "exp"), r"exp is missing"),
    "sysu-bad-id-file": ("sysu", lambda root: (root / "exp" / "val_id.txt").write_text("4; 5\n"),
                         r"val_id\.txt.*not an integer id.*comma-separated"),
    "sysu-missing-id-file": ("sysu", lambda root: (root / "exp" / "test_id.txt").unlink(), r"test_id\.txt is missing"),
    "sysu-bad-camera-folder": ("sysu", lambda root: (root / "camera7").mkdir(), r"camera7.*not camK"),
    "regdb-missing-listed-image": ("regdb", lambda root: next((root / "Visible" / "1").iterdir()).unlink(),
                                   r"listed image .* does not exist"),
    "regdb-bad-list-line": ("regdb",
                            lambda root: (root / "idx" / "train_visible_1.txt").write_text("Visible/1/a.bmp\n"),
                            r"train_visible_1\.txt:1: expected 'relative/path label'"),
    "regdb-missing-idx": ("regdb", lambda root: shutil.rmtree(root / "idx"), r"idx is missing"),
}


@pytest.mark.parametrize("case", BAD_LAYOUTS)
def test_bad_layout_is_one_clear_error(tmp_path: Path, case: str) -> None:
    layout, spoil, message = BAD_LAYOUTS[case]
    make, read = LAYOUTS[layout]
    root = make(tmp_path / layout)
    spoil(root)
    with pytest.raises(UserError, match=message):
        read(root)


def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--dataset 'market'"):
        read_layout("market", tmp_path)
