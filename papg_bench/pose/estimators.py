"""Pose estimators run on the store's person crops as they are (ReID images are already crops).

``rtmpose``
    RTMPose-m (body7, 256x192, rtmlib's "balanced" body model) through rtmlib and onnxruntime
    (onnxruntime-gpu's CUDA provider when present and the device is CUDA). rtmlib does the top-down
    affine crop of the whole image, the SimCC decoding and the mapping back to image pixels.
``keypointrcnn``
    torchvision's Keypoint R-CNN (ResNet-50 FPN, COCO). The highest-scoring person of each image is
    kept; a joint's confidence is the sigmoid of its heatmap logit.

Both give COCO-17 keypoints in store pixels, converted to OpenPose-18 with
:func:`papg_bench.pose.keypoints.coco_to_openpose`. Weights come from ``--weights FILE`` or the
library's usual cache; nothing is downloaded unless ``download=True``. The weights' sha256 goes into
``poses.json``.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.errors import UserError
from papg_bench.pose.keypoints import DEFAULT_THRESHOLD, coco_to_openpose
from papg_bench.workspace import sha256_file

ESTIMATORS = ("rtmpose", "keypointrcnn")

RTMPOSE_URL = (
    "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
    "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip"
)
RTMPOSE_INPUT_SIZE = (192, 256)  # (width, height), rtmlib's convention


def _require_rtmlib() -> None:
    try:
        import onnxruntime  # noqa: F401
        import rtmlib  # noqa: F401
    except ImportError:
        raise UserError("--estimator rtmpose needs rtmlib and onnxruntime (onnxruntime-gpu on CUDA machines): "
                        "pip install 'papg-bench[pose]'.") from None


def rtmpose_cache_dir() -> Path:
    """The folder rtmlib caches checkpoints in.

    ``$TORCH_HOME/hub/checkpoints``, else ``${XDG_CACHE_HOME:-~/.cache}/rtmlib/hub/checkpoints``. rtmlib has
    no public call that returns it, so it is computed here; ``--download`` hands this folder to rtmlib, so a
    fetched file lands where it is looked for.
    """
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(torch_home).expanduser() / "hub" / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "rtmlib" / "hub" / "checkpoints"


def rtmpose_cache_file() -> Path:
    """The unzipped RTMPose ONNX file: the zip's name with ``.onnx``, in :func:`rtmpose_cache_dir`."""
    name = RTMPOSE_URL.rsplit("/", 1)[1].split(".")[0] + ".onnx"
    return rtmpose_cache_dir() / name


def keypointrcnn_url() -> str:
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

    return KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.url


def keypointrcnn_cache_file() -> Path:
    """Where ``torch.hub`` keeps Keypoint R-CNN's COCO weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / keypointrcnn_url().rsplit("/", 1)[1]


def locate_weights(estimator: str, weights: Path | str | None = None, download: bool = False) -> Path:
    """The weights file for ``estimator``: ``weights`` when given, else the library cache.

    Missing weights raise one :class:`UserError` naming the file to download, from where, and where
    to put it. With ``download=True`` a missing cache file is fetched first.
    """
    if estimator not in ESTIMATORS:
        raise UserError(f"--estimator {estimator!r} is unknown: use one of {', '.join(ESTIMATORS)}.")
    if estimator == "rtmpose":
        _require_rtmlib()
        url, cache = RTMPOSE_URL, rtmpose_cache_file()
        how = (f"download {url}, unzip it and save its end2end.onnx as {cache}")
    else:
        url, cache = keypointrcnn_url(), keypointrcnn_cache_file()
        how = f"download {url} and save it as {cache}"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"--weights {path}: no such file. For {estimator}, {how} (or pass that file to "
                            "--weights).")
        return path
    if cache.is_file():
        return cache
    if not download:
        raise UserError(f"{estimator} weights are missing ({cache} does not exist): {how}, pass a local copy "
                        "with --weights FILE, or rerun with --download to fetch it.")
    return _download(estimator, url, cache)


def _download(estimator: str, url: str, cache: Path) -> Path:
    try:
        if estimator == "rtmpose":
            from rtmlib.tools.file import download_checkpoint  # fetches the zip, keeps its end2end.onnx

            return Path(download_checkpoint(url, dst_dir=str(cache.parent)))
        import torch

        torch.hub.load_state_dict_from_url(url, progress=True, map_location="cpu")
        return cache
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"--download: fetching {url} failed ({exc}); download it by hand and save it as {cache}, "
                        "or pass it with --weights FILE.") from None


@dataclass
class Estimator:
    """A loaded pose estimator: ``estimate(images)`` -> B x 18 x 3 OpenPose keypoints in image pixels."""

    name: str
    weights: Path
    weights_sha256: str
    threshold: float
    device: str
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"estimator": self.name, "weights": str(self.weights), "weights_sha256": self.weights_sha256,
                "threshold": self.threshold, "device": self.device, **self.settings}

    def estimate_coco(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def estimate(self, images: np.ndarray) -> np.ndarray:
        """B x H x W x 3 uint8 RGB -> B x 18 x 3 float32 (x, y, confidence; -1 where not confident)."""
        return coco_to_openpose(self.estimate_coco(images), self.threshold)


class RTMPoseEstimator(Estimator):
    def __init__(self, weights: Path, sha256: str, threshold: float, device: str) -> None:
        _require_rtmlib()
        import onnxruntime as ort
        from rtmlib import RTMPose

        use_cuda = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        ort_device = device if use_cuda else "cpu"
        super().__init__("rtmpose", weights, sha256, threshold, ort_device, {"input_size": list(RTMPOSE_INPUT_SIZE)})
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rtmlib prints "load <file> with ..." to stdout
                self.model = RTMPose(str(weights), model_input_size=RTMPOSE_INPUT_SIZE, backend="onnxruntime",
                                     device=ort_device)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
            raise UserError(f"{weights} is not a usable RTMPose ONNX model ({type(exc).__name__}: {exc}): "
                            f"use the end2end.onnx from {RTMPOSE_URL}.") from None
        session = self.model.session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 2 or len(inputs[0].shape) != 4:
            raise UserError(f"{weights}: expected one 1x3x256x192 input and two SimCC outputs (simcc_x, simcc_y), "
                            f"found {len(inputs)} input(s) and {len(outputs)} output(s): use the end2end.onnx from "
                            f"{RTMPOSE_URL}.")
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in outputs]
        self.batched = not isinstance(inputs[0].shape[0], int) or inputs[0].shape[0] != 1

    def estimate_coco(self, images: np.ndarray) -> np.ndarray:
        height, width = images.shape[1:3]
        bbox = [0, 0, width, height]
        crops, frames = [], []
        for image in images:
            bgr = np.ascontiguousarray(image[..., ::-1])  # rtmlib models take OpenCV's BGR
            crop, center, scale = self.model.preprocess(bgr, bbox)
            crops.append(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32))
            frames.append((center, scale))
        if self.batched:
            outputs = [self.model.session.run(self.output_names, {self.input_name: np.stack(crops)})]
            outputs = [[o[i : i + 1] for o in outputs[0]] for i in range(len(crops))]
        else:
            outputs = [self.model.session.run(self.output_names, {self.input_name: c[None]}) for c in crops]
        result = np.empty((len(images), 17, 3), dtype=np.float32)
        for i, (out, (center, scale)) in enumerate(zip(outputs, frames, strict=True)):
            kpts, scores = self.model.postprocess(out, center, scale)
            result[i, :, :2] = kpts[0]
            result[i, :, 2] = scores[0]
        return result


class KeypointRCNNEstimator(Estimator):
    def __init__(self, weights: Path, sha256: str, threshold: float, device: str, min_size: int = 800) -> None:
        import torch
        from torchvision.models.detection import keypointrcnn_resnet50_fpn

        super().__init__("keypointrcnn", weights, sha256, threshold, device, {"min_size": min_size})
        model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_keypoints=17,
                                          min_size=min_size, max_size=max(1333, 2 * min_size),
                                          box_detections_per_img=1)  # the best person is the one kept
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - pickle, zip and key mismatches all mean "wrong file"
            raise UserError(f"{weights} is not a Keypoint R-CNN state dict ({type(exc).__name__}: "
                            f"{str(exc)[:200]}): use {keypointrcnn_url()}.") from None
        self.torch_device = torch.device(device)
        self.model = model.eval().to(self.torch_device)

    def estimate_coco(self, images: np.ndarray) -> np.ndarray:
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.torch_device).permute(0, 3, 1, 2)
        inputs = list(batch.float().div_(255.0).unbind(0))
        with torch.inference_mode():
            detections = self.model(inputs)
        result = np.full((len(images), 17, 3), -1.0, dtype=np.float32)
        for i, det in enumerate(detections):
            people = (det["labels"] == 1).nonzero().flatten()
            if len(people) == 0:
                continue
            best = people[det["scores"][people].argmax()]
            result[i, :, :2] = det["keypoints"][best, :, :2].float().cpu().numpy()
            result[i, :, 2] = torch.sigmoid(det["keypoints_scores"][best].float()).cpu().numpy()
        return result


def build_estimator(name: str, weights: Path | str | None = None, download: bool = False,
                    device: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                    rcnn_min_size: int = 800) -> Estimator:
    """Load ``name`` (``rtmpose`` or ``keypointrcnn``) with checked weights on ``device`` (default: best)."""
    from papg_bench.runtime import resolve_device

    path = locate_weights(name, weights, download)
    digest = sha256_file(path)
    dev = str(resolve_device(device))
    if name == "rtmpose":
        return RTMPoseEstimator(path, digest, threshold, dev)
    return KeypointRCNNEstimator(path, digest, threshold, dev, min_size=rcnn_min_size)
