"""Settings of a PAPG generator run (``papg-bench train-generator``).

Field defaults are the ``paper`` preset: the released PAPG code's values (288x144 images, 64-channel
generator with 9 residual + non-local blocks, batch 1, Adam 2e-4 (0.5, 0.999), 200 epochs with the
learning rate constant for the first half and linear to 0 after, LSGAN + cycle L1 x10 + identity L1 x5,
history buffers of 50, ``weights_init_normal``: ``init = "paper"``). ``tiny`` is a narrow, shallow model
on small images for tests and the demo; it keeps the zero-initialised non-local batch norm
(``init = "zero-bn"``) its figures were measured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from papg_bench.config import Settings, check_precision
from papg_bench.errors import UserError
from papg_bench.generators.papg import ATTENTION_NORMS, INITS, POSE_MAPS


@dataclass(frozen=True)
class GeneratorConfig(Settings):
    size: tuple[int, int] = (288, 144)  # H x W the generator sees (the store is resized on the device if needed)
    epochs: int = 200
    batch_size: int = 1  # per process; the global batch under DDP is batch_size x world size
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of the training steps after which the lr falls linearly to 0
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    pool_size: int = 50  # history buffer of generated images, per discriminator (and per rank)
    channels: int = 64  # generator width after the first conv (64-128-256 in the released code)
    disc_channels: int = 64
    blocks: int = 9
    pose: bool = True
    attention: bool = True
    pose_map: str = "skeleton"  # skeleton: 3 channels in [-1, 1]; heatmaps: 18 Gaussians in [0, 1]
    attention_norm: str = "dot"  # dot: affinity / N (released code); softmax: the paper's figure
    init: str = "paper"  # paper: the released weights_init_normal (non-local BN weights N(1, 0.02)); zero-bn
    heatmap_sigma: float = 6.0  # pixels at the generator's size
    flip: bool = True
    crop_pad: int = 8  # zero-pad then random-crop back to size (0 = no crop)
    seed: int = 0
    max_pairs: int = 0  # cap on training pairs per epoch (0 = every infrared training image)
    trial: int = 0  # RegDB: the trial whose training identities are used (0 = the store's first)
    samples: int = 4  # rows of the per-epoch sample grid
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU; fp32 or bf16 to force one

    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": {
            "size": (64, 32), "epochs": 2, "batch_size": 4, "channels": 16, "disc_channels": 16, "blocks": 2,
            "heatmap_sigma": 2.0, "crop_pad": 2, "init": "zero-bn",
        },
    }
    SECTION: ClassVar[str] = "generator"

    def __post_init__(self) -> None:
        if self.pose_map not in POSE_MAPS:
            raise UserError(f"--pose-map {self.pose_map!r} is not known: choose skeleton or heatmaps.")
        if self.attention_norm not in ATTENTION_NORMS:
            raise UserError(f"--attention-norm {self.attention_norm!r} is not known: choose dot or softmax.")
        if self.init not in INITS:
            raise UserError(f"--init {self.init!r} is not known: choose paper (the released code) or zero-bn.")
        check_precision(self.precision)
        checks = {
            "--epochs": self.epochs >= 1, "--batch-size": self.batch_size >= 1, "--lr": self.lr > 0,
            "--blocks": self.blocks >= 0, "channels": self.channels >= 4 and self.channels % 2 == 0,
            "disc_channels": self.disc_channels >= 1, "pool_size": self.pool_size >= 0,
            "crop_pad": self.crop_pad >= 0, "--max-pairs": self.max_pairs >= 0,
            "decay_start": 0.0 <= self.decay_start <= 1.0,
        }
        for option, ok in checks.items():
            if not ok:
                raise UserError(f"{option}: value out of range in the generator settings; see --help.")
        height, width = self.size
        if height % 4 or width % 4 or height < 32 or width < 32:
            raise UserError(f"--size {height}x{width}: both sides must be multiples of 4 (the generator downsamples "
                            "twice) and at least 32 (the discriminator's receptive field).")

    def model_dict(self) -> dict:
        """The settings that define the networks (what a checkpoint must match to be loaded)."""
        keys = ("channels", "disc_channels", "blocks", "pose", "attention", "pose_map", "attention_norm")
        return {k: getattr(self, k) for k in keys}
