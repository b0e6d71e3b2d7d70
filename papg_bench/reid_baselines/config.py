"""Settings of ``papg-bench train``: field defaults are the ``paper`` preset (each baseline's released recipe,
``docs/presets.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from papg_bench.config import Settings, check_precision
from papg_bench.errors import UserError

BUDGETS = ("epochs", "steps")
DART_VARIANTS = ("twin", "single")


@dataclass(frozen=True)
class TrainConfig(Settings):
    SECTION: ClassVar[str] = "train"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            # trained from scratch, so the backbone learns at the head's rate (0.01 is for ImageNet weights)
            "arch": "resnet18", "width": 16, "pretrained": "none", "backbone_lr": 0.1, "size": (64, 32),
            "epochs": 20, "warmup_epochs": 2, "milestones": (14, 18), "parts": 4, "part_dim": 64,
            "dart_warmup": 5, "eval_batch_size": 128,
            # the CPU preset keeps the C/2 non-local and clamped GeM it was measured with (docs/presets.md)
            "nl_inter": "half", "gem_form": "clamped",
        },
    }

    # model
    arch: str = "resnet50"
    width: int = 64
    pretrained: str = "imagenet"  # none | imagenet (torchvision V1) | imagenet-v2 | path of a ResNet state dict
    last_stride: int = 1
    modality_stems: bool = True  # one stem (conv1, bn1, relu, maxpool) per modality; False: one shared stem
    non_local: bool = True
    nl_inter: str = "one"  # one (the released AGW code) | half (C/2, the non-local paper)
    gem_p: float = 3.0
    gem_form: str = "released"  # released: (mean(x^p) + 1e-12)^(1/p) | clamped: inputs clamped at 1e-6
    # CGRNet head
    parts: int = 6
    part_dim: int = 512
    graph_layers: int = 2
    graph_topk: int = 8
    graph_scale: float = 10.0
    # DART
    dart_variant: str = "twin"  # twin: the released two networks with co-selection | single: one weighted network
    dart_warmup: int = 1  # epochs of plain cross-entropy before the first mixture fit
    dart_threshold: float = 0.5  # clean-probability threshold (robust triplet; the share reported as noisy)
    dart_margin: float = 0.3  # the robust triplet's margin (twin)
    dart_gmm_iterations: int = 20  # EM steps of the single variant's own mixture
    # data and augmentation
    size: tuple[int, int] = (288, 144)
    pad: int = 10
    flip: bool = True
    channel_prob: float = 0.5
    gray_prob: float = 0.5
    synthetic_ratio: float | None = None  # None: sample real and generated images alike
    generated_run: str = "papg"
    trial: int = 1  # RegDB split
    val_split: float = 0.0
    # sampler
    num_ids: int = 8
    num_instances: int = 4
    micro_batches: int = 1
    budget: str = "epochs"  # epochs | steps
    # optimisation
    epochs: int | None = None  # None: the baseline's released count (registry.Baseline.epochs)
    lr: float = 0.1  # head (BNNeck, classifier, graph)
    backbone_lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (20, 50)
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    triplet_weight: float = 1.0
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU; fp32 or bf16 to force one
    channels_last: bool = True  # GPU only
    eval_batch_size: int = 256

    def validate(self) -> TrainConfig:
        check_precision(self.precision)
        checks = [
            (self.epochs is None or (isinstance(self.epochs, int) and self.epochs >= 1), "--epochs must be at least 1"),
            (self.dart_variant in DART_VARIANTS, f"--dart-variant {self.dart_variant!r}: choose twin or single"),
            (self.dart_warmup >= 0 and self.dart_margin >= 0, "--dart-warmup and dart_margin must not be negative"),
            (self.num_ids >= 2, "--num-ids must be at least 2 (the triplet loss needs negatives)"),
            (self.num_instances >= 1, "--num-instances must be at least 1"),
            (self.micro_batches >= 1, "--micro-batches must be at least 1"),
            (self.budget in BUDGETS, f"--budget {self.budget!r}: choose epochs or steps"),
            (0.0 <= self.val_split < 1.0, "--val-split must be in [0, 1)"),
            (self.synthetic_ratio is None or 0.0 <= self.synthetic_ratio <= 1.0,
             "--synthetic-ratio must be in [0, 1]"),
            (self.lr > 0 and self.backbone_lr >= 0, "--lr must be positive and --backbone-lr not negative"),
            (self.warmup_epochs >= 0 and self.pad >= 0, "--warmup-epochs and --pad must not be negative"),
            (0.0 <= self.channel_prob <= 1.0 and 0.0 <= self.gray_prob <= 1.0,
             "--channel-prob and --gray-prob must be in [0, 1]"),
            (len(self.size) == 2 and min(self.size) >= 16, "--size must be HxW with both sides at least 16"),
            (list(self.milestones) == sorted(self.milestones), "--milestones must be ascending"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message + ".")
        return self
