"""The floor of the pose quality figures: both estimators' code paths with random weights.

Runs, on a prepared store with ground truth (synthvi), Keypoint R-CNN (torchvision's architecture,
``weights=None``, seeded) and a random-weight model with RTMPose's exact input/output contract
(1x3x256x192 -> SimCC x 1x17x384, y 1x17x512; the RTMPose-m network itself needs mmpose to build, so
the floor model is a small conv net with that contract), then reports the detection rate and PCK@0.5
per modality, as ``papg-bench pose --eval-against`` does. Nothing is written to the store. Run::

    .venv/bin/python experiments/pose_floor.py --store papg-work/datasets/sysu \
        --truth SYNTH/synthvi/keypoints.csv --rows 64
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from papg_bench.data.store import open_store
from papg_bench.pose.diagnostics import detection_rates, pck
from papg_bench.pose.estimators import build_estimator
from papg_bench.pose.importers import import_keypoints


class RandomSimCC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head_x, self.head_y = nn.Linear(16, 17 * 384), nn.Linear(16, 17 * 512)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head_x(f).view(-1, 17, 384), self.head_y(f).view(-1, 17, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=0, help="evenly spread rows to run on (0 = all)")
    parser.add_argument("--rcnn-min-size", type=int, default=800)
    args = parser.parse_args()
    store = open_store(args.store)
    truth, _ = import_keypoints(args.truth, "auto", store.paths, store.size, store.meta.get("source_root"))
    rows = np.arange(len(store)) if not args.rows else np.linspace(0, len(store) - 1, args.rows).round().astype(int)
    images = np.asarray(store.images[rows])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, rcnn_path = Path(tmp) / "random-rtmpose.onnx", Path(tmp) / "random-keypointrcnn.pth"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(RandomSimCC().eval(), (torch.zeros(1, 3, 256, 192),), str(onnx_path), dynamo=False,
                              input_names=["input"], output_names=["simcc_x", "simcc_y"], opset_version=17)
        from torchvision.models.detection import keypointrcnn_resnet50_fpn

        torch.save(keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), rcnn_path)
        print(f"{len(rows)} images of {store.path}")
        print("| estimator (random weights) | joints found V | joints found I | PCK@0.5 V | PCK@0.5 I | PCK@0.5 all |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, weights in (("rtmpose", onnx_path), ("keypointrcnn", rcnn_path)):
            model = build_estimator(name, weights, device="cpu", rcnn_min_size=args.rcnn_min_size)
            poses = np.concatenate([model.estimate(images[i:i + 16]) for i in range(0, len(images), 16)])
            mods = store.modalities[rows]
            rates = detection_rates(poses, mods, store.cams[rows])["modality"]
            score = pck(poses, truth[rows], mods)
            print(f"| {name} | {100 * rates['V']['joint_rate']:.1f}% | {100 * rates['I']['joint_rate']:.1f}% | "
                  f"{100 * score['modality']['V']['pck']:.1f}% | {100 * score['modality']['I']['pck']:.1f}% | "
                  f"{100 * score['all']['pck']:.1f}% |")


if __name__ == "__main__":
    main()
