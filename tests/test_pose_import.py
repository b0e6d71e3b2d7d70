"""Importing keypoints (CSV, OpenPose, COCO), export round trip, errors, report, CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from papg_bench.cli import main
from papg_bench.data.fixtures import make_sysu_tree
from papg_bench.data.prepare import prepare_store
from papg_bench.data.store import open_store
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError
from papg_bench.pose.annotation_csv import CSV_HEADER
from papg_bench.pose.diagnostics import detection_rates, head_sizes, pck
from papg_bench.pose.importers import import_keypoints
from papg_bench.pose.keypoints import COCO17, OPENPOSE18, load_poses, read_poses_meta
from papg_bench.pose.run import run_pose

SOURCE = (128, 64)  # the fixture tree's image size
STORE = (64, 32)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("pose-store")
    root = make_sysu_tree(base / "sysu", train_ids=[1, 2], val_ids=[3], test_ids=[4, 5], images_per_camera=2,
                          size=SOURCE)
    prepare_store(read_sysu(root), root, base / "work" / "datasets" / "sysu", size=STORE, workers=1)
    return base


@pytest.fixture
def store_dir(prepared, tmp_path):
    """A fresh copy of the prepared store (its source_root still points at the fixture tree)."""
    target = tmp_path / "work" / "datasets" / "sysu"
    shutil.copytree(prepared / "work" / "datasets" / "sysu", target)
    return target


def ground_truth(paths, seed=0):
    """Integer keypoints in source pixels, (x, y) per joint, with a few missing joints."""
    rng = np.random.default_rng(seed)
    kp = np.stack([rng.integers(0, SOURCE[1], (len(paths), 18)), rng.integers(0, SOURCE[0], (len(paths), 18))], -1)
    missing = rng.random((len(paths), 18)) < 0.1
    missing[:, :2] = False  # keep nose and neck: every image has a head size
    kp[missing] = -1
    return kp


def write_csv(path: Path, paths, kp) -> Path:
    lines = [CSV_HEADER] + [f"{p}: {k[:, 1].tolist()}: {k[:, 0].tolist()}" for p, k in zip(paths, kp, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def to_store(kp):
    out = np.full((*kp.shape[:2], 3), -1.0, dtype=np.float32)
    ok = kp[..., 0] >= 0
    out[..., 0] = np.where(ok, (kp[..., 0] + 0.5) * STORE[1] / SOURCE[1] - 0.5, -1)
    out[..., 1] = np.where(ok, (kp[..., 1] + 0.5) * STORE[0] / SOURCE[0] - 0.5, -1)
    out[..., 2] = np.where(ok, 1.0, -1)
    return out


def test_csv_import_lands_in_store_pixels(store_dir, tmp_path):
    store = open_store(store_dir)
    kp = ground_truth(store.paths)
    covered = len(store.paths) - 3  # the file leaves out three images
    csv = write_csv(tmp_path / "gt.csv", store.paths[:covered], kp[:covered])
    result = run_pose(store_dir, source=csv)
    assert result.status == "done"
    poses = load_poses(store_dir)
    assert poses.shape == (len(store.paths), 18, 3) and poses.dtype == np.float32
    np.testing.assert_allclose(poses[:covered], to_store(kp[:covered]), atol=1e-5)
    assert (poses[covered:] == -1).all()
    assert any("3 of" in note for note in result.notes)
    meta = read_poses_meta(store_dir)
    assert meta["format"] == "csv" and meta["joints"] == list(OPENPOSE18) and meta["count"] == len(store.paths)
    assert run_pose(store_dir, source=csv).status == "reused"
    assert run_pose(store_dir, source=csv, force=True).status == "done"


def test_source_size_option_and_missing_source_images(store_dir, tmp_path):
    store = open_store(store_dir)
    kp = ground_truth(store.paths)
    csv = write_csv(tmp_path / "gt.csv", store.paths, kp * 2)  # as if measured on 256 x 128 originals
    poses, _ = import_keypoints(csv, "auto", store.paths, STORE, source_root=None, source_size=(256, 128))
    expected = to_store(kp)
    ok = expected[..., 2] > 0
    np.testing.assert_allclose(poses[ok], expected[ok], atol=0.3)  # 2x coarser grid, same places
    with pytest.raises(UserError, match="--source-size"):
        import_keypoints(csv, "csv", store.paths, STORE, source_root=str(tmp_path / "gone"))


def test_openpose_folder_and_coco_json(store_dir, tmp_path):
    store = open_store(store_dir)
    paths = store.paths[:2]
    folder = tmp_path / "openpose"
    weak = [0.0] * 54
    body25 = np.zeros((25, 3))
    body25[:, :2] = np.arange(50).reshape(25, 2) + 3
    body25[:, 2] = 0.8
    body25[5, 2] = 0.05  # below the threshold
    coco18 = np.zeros((18, 3))
    coco18[:, :2] = 10
    coco18[:, 2] = 0.9
    for path, person in zip(paths, (body25, coco18), strict=True):
        file = folder / (path.rsplit(".", 1)[0] + "_keypoints.json")
        file.parent.mkdir(parents=True, exist_ok=True)
        people = [{"pose_keypoints_2d": weak}, {"pose_keypoints_2d": person.ravel().tolist()}]
        file.write_text(json.dumps({"version": 1.3, "people": people}))
    poses, kfile = import_keypoints(folder, "auto", store.paths, STORE, str(store.meta["source_root"]))
    assert kfile.format == "openpose"
    first = body25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]
    expected = to_store(first[None, :, :2].astype(int))[0]
    expected[5] = -1
    np.testing.assert_allclose(poses[0, :, :2], expected[:, :2], atol=1e-5)
    np.testing.assert_allclose(poses[1, :, :2], to_store(np.full((1, 18, 2), 10))[0, :, :2], atol=1e-5)

    # COCO: sizes come from the file itself (here 256 x 128), visibility 0 = missing
    keypoints = np.zeros((17, 3))
    keypoints[:, 0], keypoints[:, 1], keypoints[:, 2] = 20, 40, 2
    keypoints[COCO17.index("l_ankle"), 2] = 0
    coco = {"images": [{"id": 7, "file_name": paths[0], "height": 256, "width": 128}],
            "annotations": [{"id": 1, "image_id": 7, "keypoints": keypoints.ravel().tolist(), "num_keypoints": 16}],
            "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    poses, kfile = import_keypoints(tmp_path / "coco.json", "auto", store.paths, STORE, None)
    assert kfile.format == "coco"
    np.testing.assert_allclose(poses[0, OPENPOSE18.index("neck")], [(20.5 / 4 - 0.5), (40.5 / 4 - 0.5), 1.0])
    assert (poses[0, OPENPOSE18.index("l_ankle")] == -1).all()
    assert (poses[1:] == -1).all()


def test_errors_leave_poses_untouched(store_dir, tmp_path, monkeypatch):
    store = open_store(store_dir)
    good = write_csv(tmp_path / "gt.csv", store.paths, ground_truth(store.paths))
    run_pose(store_dir, source=good)
    before = (store_dir / "poses.npy").read_bytes(), (store_dir / "poses.json").read_bytes()
    work = ["--work", str(store_dir.parent.parent), "pose", "--dataset", "sysu"]

    regdb = write_csv(tmp_path / "regdb.csv", [f"Visible/{i}/person_v_{i}.bmp" for i in range(4)],
                      ground_truth(range(4)))
    with pytest.raises(UserError, match="none of its image names match.*another dataset"):
        run_pose(store_dir, source=regdb)
    assert main([*work, "--from", str(regdb)]) == 2

    short = tmp_path / "short.csv"
    short.write_text(CSV_HEADER + "\n" + f"{store.paths[0]}: {list(range(17))}: {list(range(17))}\n")
    with pytest.raises(UserError, match="17 ys and 17 xs.*18"):
        run_pose(store_dir, source=short)
    assert main([*work, "--from", str(short)]) == 2

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="download"):
        run_pose(store_dir, estimator="keypointrcnn")
    assert main([*work, "--estimator", "rtmpose", "--weights", str(tmp_path / "missing.onnx")]) == 2
    assert ((store_dir / "poses.npy").read_bytes(), (store_dir / "poses.json").read_bytes()) == before


def test_export_round_trip(store_dir, tmp_path):
    store = open_store(store_dir)
    kp = ground_truth(store.paths, seed=3)
    run_pose(store_dir, source=write_csv(tmp_path / "gt.csv", store.paths, kp), export=tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert text[0] == CSV_HEADER and len(text) == len(store.paths) + 1
    first = load_poses(store_dir)
    again, _ = import_keypoints(tmp_path / "out.csv", "csv", store.paths, STORE, str(store.meta["source_root"]))
    np.testing.assert_allclose(again, first, atol=1e-5)  # exported in source pixels, as the format is


def test_cli_report_preview_and_pck(store_dir, tmp_path, capsys):
    store = open_store(store_dir)
    csv = write_csv(tmp_path / "gt.csv", store.paths, ground_truth(store.paths))
    png = tmp_path / "preview.png"
    args = ["--work", str(store_dir.parent.parent), "pose", "--dataset", "sysu", "--from", str(csv),
            "--preview", str(png), "--eval-against", str(csv)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "infrared" in out and "camera 3" in out and "PCK@0.5" in out and "100.0%" in out
    with Image.open(png) as img:
        assert img.size[1] % (STORE[0] * 4) == 0  # drawn 4x larger, whole rows of images
        assert np.asarray(img).std() > 0


def test_detection_rates_and_pck_on_known_values():
    truth = np.full((2, 18, 3), -1.0, dtype=np.float32)
    truth[:, 0] = (10, 10, 1)  # nose
    truth[:, 1] = (10, 20, 1)  # neck: head box 0 x 10, head size 10
    truth[:, 2] = (0, 20, 1)
    np.testing.assert_allclose(head_sizes(truth), [10, 10])
    pred = truth.copy()
    pred[0, 2, 0] += 4.9  # within 0.5 x 10
    pred[1, 2, 0] += 5.1  # beyond
    pred[1, 0] = -1  # not found
    result = pck(pred, truth, np.array(["V", "I"]))
    assert result["modality"]["V"]["pck"] == 1.0
    assert result["modality"]["I"]["pck"] == pytest.approx(1 / 3)
    assert result["all"]["joints"] == 6
    rates = detection_rates(pred, np.array(["V", "I"]), np.array([1, 3]))
    assert rates["modality"]["V"]["joint_rate"] == pytest.approx(3 / 18)
    assert rates["camera"]["3"]["joint_rate"] == pytest.approx(2 / 18)
    assert rates["all"]["image_rate"] == 1.0
