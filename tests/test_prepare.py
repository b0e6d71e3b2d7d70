"""``prepare``: store round trip, no-op rerun, --force, --skip-bad, and an interrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from papg_bench.cli import main
from papg_bench.data.fixtures import make_regdb_tree, make_sysu_tree
from papg_bench.data.prepare import RESAMPLE, prepare_store
from papg_bench.data.store import is_complete, open_store
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError


def test_round_trip_pixels_equal_direct_pillow_resize(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu", size=(50, 30))
    out = tmp_path / "store"
    result = prepare_store(read_sysu(root), root, out, size=(40, 20), workers=2)
    assert result.status == "done"
    store = open_store(out)
    assert store.images.shape == (result.count, 40, 20, 3)
    assert isinstance(store.images, np.memmap)
    for row in (0, result.count // 2, result.count - 1):
        with Image.open(root / store.paths[row]) as img:
            expected = np.asarray(img.convert("RGB").resize((20, 40), RESAMPLE))
        np.testing.assert_array_equal(store.images[row], expected)
    listing = read_sysu(root)
    assert store.paths == [r.path for r in listing.records]
    assert list(store.pids) == [r.pid for r in listing.records]
    assert set(store.splits) == {"train", "val", "test"}
    assert store.in_split("train").sum() == sum(r.split in ("train", "val") for r in listing.records)
    assert store.meta["image_size"] == [40, 20] and store.meta["dataset"] == "sysu"


def test_regdb_store_trial_splits(tmp_path: Path) -> None:
    root = make_regdb_tree(tmp_path / "regdb", ids=4, images_per_modality=2, trials=2)
    assert main(["--work", str(tmp_path / "w"), "prepare", "--dataset", "regdb", "--root", str(root),
                 "--size", "32x16", "--workers", "1"]) == 0
    store = open_store(tmp_path / "w" / "datasets" / "regdb")
    train1, test1 = store.in_split("train", 1), store.in_split("test", 1)
    assert not (train1 & test1).any() and (train1 | test1).all()
    assert len(set(store.pids[train1])) == 2


def test_rerun_is_noop_and_force_rebuilds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    args = ["--work", str(tmp_path / "w"), "prepare", "--dataset", "sysu", "--root", str(root), "--size", "32x16"]
    assert main(args) == 0
    images = tmp_path / "w" / "datasets" / "sysu" / "images.npy"
    first = images.stat().st_mtime_ns
    assert main(args) == 0
    assert "reused (" in capsys.readouterr().out
    assert images.stat().st_mtime_ns == first
    assert main(args + ["--force"]) == 0
    assert "stored" in capsys.readouterr().out
    assert images.stat().st_mtime_ns != first
    # changed content (same names) is noticed through the checksum
    victim = next((root / "cam1").rglob("*.jpg"))
    Image.new("RGB", (32, 64), (1, 2, 3)).save(victim)
    assert main(args) == 0
    assert "stored" in capsys.readouterr().out


def test_bad_image_stops_or_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_sysu_tree(tmp_path / "sysu")
    victim = sorted((root / "cam2").rglob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    out = tmp_path / "store"
    with pytest.raises(UserError, match=r"cam2/.*cannot be decoded.*--skip-bad"):
        prepare_store(read_sysu(root), root, out, size=(32, 16), workers=2)
    assert not out.exists()
    result = prepare_store(read_sysu(root), root, out, size=(32, 16), workers=2, skip_bad=True)
    rel = victim.relative_to(root).as_posix()
    assert [s["path"] for s in result.skipped] == [rel]
    store = open_store(out)
    assert rel not in store.paths
    assert json.loads((out / "meta.json").read_text())["skipped"][0]["path"] == rel
    assert len(store) == len(read_sysu(root).records) - 1
    # the compacted rows still hold the right pixels
    row = store.paths.index(sorted(p for p in store.paths if p != rel)[0])
    with Image.open(root / store.paths[row]) as img:
        np.testing.assert_array_equal(store.images[row], np.asarray(img.convert("RGB").resize((16, 32), RESAMPLE)))
    # through the CLI: exit status 2 and one message
    code = main(["--work", str(tmp_path / "w"), "prepare", "--dataset", "sysu", "--root", str(root)])
    assert code == 2
    assert "cannot be decoded" in capsys.readouterr().err


def test_killed_prepare_leaves_no_accepted_store(tmp_path: Path) -> None:
    root = make_sysu_tree(tmp_path / "sysu", images_per_camera=40, size=(256, 128))
    work = tmp_path / "w"
    store_dir = work / "datasets" / "sysu"
    cmd = [sys.executable, "-m", "papg_bench.cli", "--work", str(work), "prepare", "--dataset", "sysu",
           "--root", str(root), "--size", "256x128", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parent = store_dir.parent
        if parent.is_dir() and any(p.name.startswith(".sysu.tmp-") for p in parent.iterdir()):
            break
        time.sleep(0.01)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not is_complete(store_dir)
    with pytest.raises(UserError):
        open_store(store_dir)
    # the next run builds a complete store and removes the dead run's temporary folder
    assert main(["--work", str(work), "prepare", "--dataset", "sysu", "--root", str(root), "--size", "64x32"]) == 0
    assert is_complete(store_dir)
    assert not [p for p in store_dir.parent.iterdir() if p.name.startswith(".")]
