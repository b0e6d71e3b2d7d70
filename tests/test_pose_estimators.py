"""Both estimators' code paths with random weights, the COCO -> OpenPose mapping, weight errors,
where RTMPose weights are cached and fetched to."""

import ast
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import papg_bench.pose.estimators as estimators
from papg_bench.errors import UserError
from papg_bench.pose.estimators import (
    RTMPOSE_URL,
    build_estimator,
    keypointrcnn_cache_file,
    locate_weights,
    rtmpose_cache_file,
)
from papg_bench.pose.keypoints import COCO17, MISSING, OPENPOSE18, coco_to_openpose
from papg_bench.workspace import sha256_file

IMAGE_H, IMAGE_W = 64, 32
# RTMPose sees the whole image as its box, padded by 1.25 and widened to its 3:4 input: a 64 x 32
# image becomes a 60 x 80 window centred on (16, 32); a SimCC bin b is input pixel b / 2.
WINDOW_W, WINDOW_H = 60.0, 80.0


def image_to_bins(x: float, y: float) -> tuple[int, int]:
    bx = 2 * (x - (IMAGE_W / 2 - WINDOW_W / 2)) * 192 / WINDOW_W
    by = 2 * (y - (IMAGE_H / 2 - WINDOW_H / 2)) * 256 / WINDOW_H
    assert bx == int(bx) and by == int(by)
    return int(bx), int(by)


# COCO joints (x, y) in image pixels chosen on whole bins; the left wrist gets a weak score.
TARGETS = {name: (1 + 5 * (i % 7), 2 + 5 * (i % 12)) for i, name in enumerate(COCO17)}
TARGETS["l_shoulder"], TARGETS["r_shoulder"] = (26, 12), (6, 17)
WEAK = "l_wrist"


class TinySimCC(nn.Module):
    """The RTMPose contract: input 1 x 3 x 256 x 192, outputs simcc_x 1 x 17 x 384, simcc_y 1 x 17 x 512."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head_x = nn.Linear(4, 17 * 384)
        self.head_y = nn.Linear(4, 17 * 512)
        peak_x, peak_y = torch.zeros(17, 384), torch.zeros(17, 512)
        for k, name in enumerate(COCO17):
            bx, by = image_to_bins(*TARGETS[name])
            height = 0.05 if name == WEAK else 1.0
            peak_x[k, bx], peak_y[k, by] = height, height
        self.register_buffer("peak_x", peak_x)
        self.register_buffer("peak_y", peak_y)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        noise_x = torch.tanh(self.head_x(f)).view(-1, 17, 384) * 1e-3  # random weights, kept below the peaks
        noise_y = torch.tanh(self.head_y(f)).view(-1, 17, 512) * 1e-3
        return self.peak_x + noise_x, self.peak_y + noise_y


@pytest.fixture(scope="module")
def rtmpose_onnx(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rtm") / "tiny-rtmpose.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter (dynamo=False) announces its deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(TinySimCC().eval(), (torch.zeros(1, 3, 256, 192),), str(path), dynamo=False,
                          input_names=["input"], output_names=["simcc_x", "simcc_y"], opset_version=17)
    return path


def images(count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, IMAGE_H, IMAGE_W, 3), dtype=np.uint8)


def test_coco_to_openpose_on_known_values():
    coco = np.zeros((17, 3), dtype=np.float32)
    for k in range(17):
        coco[k] = (10 + k, 100 + k, 0.9)
    coco[COCO17.index("l_knee"), 2] = 0.05  # below the threshold -> missing
    out = coco_to_openpose(coco, threshold=0.1)
    assert out.shape == (18, 3)
    for j, name in enumerate(OPENPOSE18):
        if name == "neck":
            ls, rs = coco[COCO17.index("l_shoulder")], coco[COCO17.index("r_shoulder")]
            np.testing.assert_allclose(out[j], [(ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2, 0.9])
        elif name == "l_knee":
            np.testing.assert_array_equal(out[j], [MISSING] * 3)
        else:
            np.testing.assert_allclose(out[j], coco[COCO17.index(name)])
    coco[COCO17.index("r_shoulder"), 2] = 0.0  # one shoulder unseen: no neck
    assert (coco_to_openpose(coco)[OPENPOSE18.index("neck")] == MISSING).all()


def test_rtmpose_path_returns_store_pixels(rtmpose_onnx):
    estimator = build_estimator("rtmpose", weights=rtmpose_onnx, device="cpu")
    assert estimator.weights_sha256 == sha256_file(rtmpose_onnx)
    poses = estimator.estimate(images(2))
    assert poses.shape == (2, 18, 3) and poses.dtype == np.float32
    for j, name in enumerate(OPENPOSE18):
        if name == "neck":
            expected = np.add(TARGETS["l_shoulder"], TARGETS["r_shoulder"]) / 2
        elif name == WEAK:
            assert (poses[:, j] == MISSING).all()
            continue
        else:
            expected = TARGETS[name]
        np.testing.assert_allclose(poses[:, j, :2], np.broadcast_to(expected, (2, 2)), atol=1e-3)
        assert (poses[:, j, 2] > 0.9).all()


def test_keypointrcnn_path_with_random_weights(tmp_path, monkeypatch):
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match="download"):
        build_estimator("keypointrcnn")
    torch.manual_seed(0)
    model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_keypoints=17)
    cache = keypointrcnn_cache_file()  # torch's usual cache, found without --weights
    cache.parent.mkdir(parents=True)
    torch.save(model.state_dict(), cache)
    assert locate_weights("keypointrcnn") == cache
    estimator = build_estimator("keypointrcnn", device="cpu", rcnn_min_size=64)
    poses = estimator.estimate(images(1))
    assert poses.shape == (1, 18, 3)
    seen = poses[..., 2] > 0
    assert seen.any()
    assert (poses[seen][:, 0] >= 0).all() and (poses[seen][:, 0] <= IMAGE_W).all()  # back in image pixels
    assert (poses[seen][:, 1] >= 0).all() and (poses[seen][:, 1] <= IMAGE_H).all()
    assert (poses[seen][:, 2] <= 1).all()
    assert estimator.describe()["weights_sha256"] == sha256_file(cache)


def test_missing_weights_name_the_file_and_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match=r"rtmpose-m_simcc.*\.zip.*end2end\.onnx.*--download"):
        locate_weights("rtmpose")
    with pytest.raises(UserError, match="--weights .*nothing.onnx: no such file"):
        locate_weights("rtmpose", tmp_path / "nothing.onnx")
    with pytest.raises(UserError, match="keypointrcnn_resnet50_fpn_coco"):
        locate_weights("keypointrcnn")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a usable RTMPose ONNX model"):
        build_estimator("rtmpose", weights=bad, device="cpu")


def test_pose_command_fills_the_store_with_an_estimator(tmp_path, rtmpose_onnx, capsys):
    from papg_bench.cli import main
    from papg_bench.data.fixtures import make_sysu_tree
    from papg_bench.pose.keypoints import load_poses, read_poses_meta

    root = make_sysu_tree(tmp_path / "sysu", train_ids=[1], val_ids=[3], test_ids=[2], images_per_camera=1,
                          size=(IMAGE_H, IMAGE_W))
    work = ["--work", str(tmp_path / "w")]
    assert main([*work, "prepare", "--dataset", "sysu", "--root", str(root), "--size", f"{IMAGE_H}x{IMAGE_W}",
                 "--workers", "1"]) == 0
    args = [*work, "pose", "--dataset", "sysu", "--estimator", "rtmpose", "--weights", str(rtmpose_onnx),
            "--batch-size", "3", "--device", "cpu"]
    assert main(args) == 0
    assert "estimated with rtmpose" in capsys.readouterr().out
    store = tmp_path / "w" / "datasets" / "sysu"
    poses = load_poses(store)
    assert (poses[:, OPENPOSE18.index("nose"), :2] == TARGETS["nose"]).all()
    meta = read_poses_meta(store)
    assert meta["estimator"] == "rtmpose" and meta["weights_sha256"] == sha256_file(rtmpose_onnx)
    assert meta["detection"]["all"]["joint_rate"] == pytest.approx(17 / 18)  # all but the weak wrist
    assert main(args) == 0
    assert "reused (" in capsys.readouterr().out


RTMPOSE_ONNX_NAME = "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.onnx"


def test_rtmpose_cache_follows_torch_home_then_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rtmpose_cache_file() == tmp_path / "torch" / "hub" / "checkpoints" / RTMPOSE_ONNX_NAME
    monkeypatch.delenv("TORCH_HOME")
    assert rtmpose_cache_file() == tmp_path / "xdg" / "rtmlib" / "hub" / "checkpoints" / RTMPOSE_ONNX_NAME
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert rtmpose_cache_file() == tmp_path / "home" / ".cache" / "rtmlib" / "hub" / "checkpoints" / RTMPOSE_ONNX_NAME


@pytest.mark.parametrize("torch_home", [True, False])
def test_rtmlib_finds_its_model_where_we_look(tmp_path, monkeypatch, rtmpose_onnx, torch_home):
    """rtmlib's public constructor, given the URL, loads the cached file without downloading anything."""
    import rtmlib
    import rtmlib.tools.file

    monkeypatch.delenv("TORCH_HOME", raising=False)
    if torch_home:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def offline(*args, **kwargs):
        raise OSError("tests do not download")

    monkeypatch.setattr(rtmlib.tools.file, "urlopen", offline, raising=False)
    cache = rtmpose_cache_file()
    cache.parent.mkdir(parents=True)
    shutil.copy(rtmpose_onnx, cache)
    model = rtmlib.RTMPose(RTMPOSE_URL, model_input_size=(192, 256), backend="onnxruntime", device="cpu")
    assert [i.name for i in model.session.get_inputs()] == ["input"]
    assert locate_weights("rtmpose") == cache


def test_download_puts_rtmpose_in_the_cache_we_read(tmp_path, monkeypatch):
    import rtmlib.tools.file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def fake_download(url, dst_dir=None, **kwargs):
        calls.append((url, dst_dir))
        target = Path(dst_dir) / (Path(url).name.split(".")[0] + ".onnx")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"onnx")
        return str(target)

    monkeypatch.setattr(rtmlib.tools.file, "download_checkpoint", fake_download)
    assert locate_weights("rtmpose", download=True) == rtmpose_cache_file()
    assert calls == [(RTMPOSE_URL, str(rtmpose_cache_file().parent))]
    assert locate_weights("rtmpose") == rtmpose_cache_file()  # found again, no second download
    assert len(calls) == 1

    def failing(url, dst_dir=None, **kwargs):
        raise OSError("unreachable")

    monkeypatch.setattr(rtmlib.tools.file, "download_checkpoint", failing)
    rtmpose_cache_file().unlink()
    with pytest.raises(UserError, match=r"--download: fetching .*unreachable.*--weights FILE"):
        locate_weights("rtmpose", download=True)


def test_estimators_use_no_private_rtmlib_names():
    tree = ast.parse(Path(estimators.__file__).read_text())
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rtmlib":
            used += node.module.split(".") + [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            used += [part for a in node.names if a.name.split(".")[0] == "rtmlib" for part in a.name.split(".")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            used.append(node.attr)
    assert "rtmlib" in used
    assert [name for name in used if name.startswith("_")] == []
