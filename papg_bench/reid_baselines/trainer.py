"""One trainer for every baseline: store batches, device-side augmentation, SGD, checkpoints, DDP.

Data: uint8 rows from the dataset store's memory map (and, with ``--augment papg``, the generated store),
moved to the device once per micro-batch, resized to ``size`` when the store differs, then pad/crop,
flip, channel augmentations and ImageNet normalisation on the device (``augment.BatchAugmenter``).

Batches: the sampler draws a global batch of P identities x 2K images. It is split by identity into
``world_size x micro_batches`` shards of equal size: DDP rank r trains on shards r*M .. r*M + M - 1,
accumulating gradients over its M micro-batches. The random augmentation draws are made for the global
batch, so one process with ``--micro-batches 2`` computes exactly what two DDP processes compute.

Optimisation (AGW reference): SGD with Nesterov momentum 0.9 and weight decay 5e-4; the head (BNNeck,
classifier, graph layers) at ``lr``, the backbone at ``backbone_lr``; per epoch e the rate is scaled by
(e + 1) / warmup during the warm-up, then by ``lr_gamma`` at each milestone. ``--budget steps`` fixes the
steps per epoch to those of the real images alone, so an augmented run optimises exactly as many steps as
the un-augmented one.

Every epoch ends with a checkpoint holding the model, optimiser, scheduler, sampler, criterion (a robust
criterion's state) and RNG states; a resumed run continues as if never stopped. The model used for testing
is the last epoch's, or with ``--val-split`` the epoch with the best validation mAP (validation identities
are carved out of the training identities; test identities are never looked at).

Several networks: a baseline whose ``make_procedure`` returns a :class:`Procedure` trains
``procedure.networks`` networks, each built by its ``build_model`` with its own SGD optimiser and schedule
(as above); every epoch is ``procedure.train_epoch(trainer, epoch)``, which uses the trainer's pool, image
loader, augmenter and its per-epoch generator, ``train_networks`` and ``optimizers``; the checkpoint holds
every network (the ``model`` is ``procedure.tested_model(networks)``, what ``evaluate`` extracts features
with), every optimiser and schedule, and ``procedure.state_dict()``. Such a run trains in one process
(``--micro-batches`` splits its batches; no DDP).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from papg_bench.data.batches import load_rows, normalize, resize
from papg_bench.data.store import Store
from papg_bench.errors import UserError
from papg_bench.progress import track
from papg_bench.reid_baselines.augment import BatchAugmenter, uses_generated
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.extraction import extract_features
from papg_bench.reid_baselines.losses import identity_loss
from papg_bench.reid_baselines.registry import get_baseline, with_epochs
from papg_bench.reid_baselines.sampler import CrossModalitySampler, TrainingPool
from papg_bench.runtime import rng_state, seed_everything, set_rng_state
from papg_bench.training import DistInfo, RunLog, autocast, load_checkpoint, maybe_compile, save_checkpoint
from papg_bench.workspace import atomic_write_json, sha256_file

CHECKPOINT_KIND = "reid"
MODALITY_CODES = {"V": 0, "I": 1}


def modality_codes(values: np.ndarray) -> np.ndarray:
    return np.array([MODALITY_CODES[str(v)] for v in values], dtype=np.int64)


def train_rows(store: Store, trial: int) -> np.ndarray:
    """Boolean mask of the store's training rows (every training identity; of ``trial`` where splits have trials)."""
    split_trial = store.dataset.split_trial(trial)
    mask = store.in_split("train", split_trial)
    if not mask.any():
        where = f"trial {trial}" if split_trial is not None else "the training ids"
        raise UserError(f"{store.path}: no training images for {where}: check the store (papg-bench prepare).")
    return mask


@dataclass
class PoolData:
    pool: TrainingPool
    label_pids: np.ndarray  # pid of each label
    val_rows: np.ndarray  # dataset-store rows of the validation identities (empty without --val-split)


def build_pool(store: Store, generated: Store | None, cfg: TrainConfig, seed: int) -> PoolData:
    """Training images of ``store`` (minus validation ids), plus the generated images of their sources."""
    mask = train_rows(store, cfg.trial)
    train_pids = np.unique(store.pids[mask])
    val_pids = np.array([], dtype=np.int64)
    if cfg.val_split > 0:
        count = max(1, int(round(cfg.val_split * len(train_pids))))
        if count > len(train_pids) - 2:
            raise UserError(f"--val-split {cfg.val_split}: leaves fewer than 2 training identities.")
        val_pids = np.sort(np.random.default_rng([seed, 7]).choice(train_pids, size=count, replace=False))
        train_pids = np.setdiff1d(train_pids, val_pids)
    label_of = {int(p): i for i, p in enumerate(train_pids)}
    real = np.flatnonzero(mask & np.isin(store.pids, train_pids))
    val_rows = np.flatnonzero(mask & np.isin(store.pids, val_pids))
    store_rows, generated_flags = [real], [np.zeros(len(real), dtype=bool)]
    labels = [np.array([label_of[int(p)] for p in store.pids[real]], dtype=np.int64)]
    modalities = [modality_codes(store.modalities[real])]
    if generated is not None:
        fake = generated_training_rows(store, generated, real)
        store_rows.append(fake)
        generated_flags.append(np.ones(len(fake), dtype=bool))
        labels.append(np.array([label_of[int(p)] for p in generated.pids[fake]], dtype=np.int64))
        modalities.append(modality_codes(generated.modalities[fake]))
    pool = TrainingPool(generated=np.concatenate(generated_flags), store_rows=np.concatenate(store_rows),
                        labels=np.concatenate(labels), modalities=np.concatenate(modalities),
                        num_classes=len(train_pids))
    return PoolData(pool=pool, label_pids=train_pids, val_rows=val_rows)


def generated_training_rows(store: Store, generated: Store, real_rows: np.ndarray) -> np.ndarray:
    """Rows of the generated store whose source is one of ``real_rows``, checked against the source store."""
    if "source_row" not in generated.columns:
        raise UserError(f"{generated.path}/index.csv has no source_row column: regenerate with papg-bench generate.")
    source = generated.columns["source_row"]
    if len(source) and (source.min() < 0 or source.max() >= len(store)
                        or not np.array_equal(generated.pids, store.pids[source])):
        raise UserError(
            f"{generated.path} was generated from another store than {store.path} (source rows or identities "
            "do not match): run papg-bench generate again for this dataset."
        )
    rows = np.flatnonzero(np.isin(source, real_rows))
    if not len(rows):
        raise UserError(f"{generated.path} holds no images generated from training images: run papg-bench generate.")
    return rows


class PoolImages:
    """Loads pool entries (dataset-store or generated-store rows) as uint8 batches of one size."""

    def __init__(self, store: Store, generated: Store | None, pool: TrainingPool, size: tuple[int, int]) -> None:
        self.store, self.generated, self.pool, self.size = store, generated, pool, tuple(size)

    def load(self, index: np.ndarray, device: torch.device) -> torch.Tensor:
        index = np.asarray(index, dtype=np.int64)
        fake = self.pool.generated[index]
        if not fake.any():
            return resize(load_rows(self.store.images, self.pool.store_rows[index], device), self.size)
        out = torch.empty((len(index), 3, *self.size), dtype=torch.uint8, device=device)
        for flag, images in ((False, self.store.images), (True, self.generated.images)):
            where = np.flatnonzero(fake == flag)
            if len(where):
                batch = resize(load_rows(images, self.pool.store_rows[index[where]], device), self.size)
                out[torch.as_tensor(where, device=device)] = batch
        return out


class Procedure(Protocol):
    """How a baseline trains several networks (see the module doc)."""

    networks: int

    def tested_model(self, networks: list[nn.Module]) -> nn.Module: ...
    def setup(self, trainer: Trainer) -> None: ...
    def train_epoch(self, trainer: Trainer, epoch: int) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def summary(self) -> dict: ...


def warmup_step_factor(epoch: int, warmup: int, milestones: tuple[int, ...], gamma: float) -> float:
    """Linear warm-up over ``warmup`` epochs, then ``gamma`` at each milestone (the AGW schedule)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    return gamma ** sum(1 for m in milestones if epoch >= m)


class Trainer:
    """Trains one run; ``run()`` goes from the current epoch (fresh or resumed) to the last."""

    def __init__(self, store: Store, generated: Store | None, baseline: str, augment: str, seed: int,
                 cfg: TrainConfig, run_dir: Path, run_config: dict[str, Any], config_hash: str,
                 device: torch.device, dist_info: DistInfo | None = None, compile: bool = False) -> None:
        self.baseline = get_baseline(baseline)
        self.dist = dist_info or DistInfo()
        cfg = with_epochs(self.baseline, cfg.validate())
        self.store, self.generated, self.cfg, self.seed = store, generated, cfg, seed
        self.procedure: Procedure | None = self.baseline.make_procedure(cfg)
        if self.procedure is not None and self.dist.distributed:
            raise UserError(f"--baseline {baseline} trains {self.procedure.networks} networks in one process: run it "
                            "without torchrun (--micro-batches splits its batches).")
        self.augment = augment
        self.run_dir, self.run_config, self.config_hash = Path(run_dir), run_config, config_hash
        self.device = device
        if uses_generated(augment) and generated is None:
            raise UserError(f"--augment {augment} needs a generated set: run papg-bench generate (or "
                            "import-generated) first.")
        if cfg.synthetic_ratio not in (None, 0.0) and generated is None:
            raise UserError("--synthetic-ratio needs generated images: use --augment papg (or a combination with it).")
        self.shards = self.dist.world_size * cfg.micro_batches
        if cfg.num_ids % self.shards:
            raise UserError(
                f"--num-ids {cfg.num_ids} must be divisible by processes x micro-batches ({self.shards}): each "
                "shard of a batch holds whole identities."
            )
        data = build_pool(store, generated, cfg, seed)
        self.pool, self.label_pids, self.val_rows = data.pool, data.label_pids, data.val_rows
        self.images = PoolImages(store, generated, self.pool, cfg.size)
        real_only = cfg.budget == "steps"
        steps = CrossModalitySampler.default_steps(self.pool, cfg.num_ids, cfg.num_instances, real_only)
        self.sampler = CrossModalitySampler(self.pool, cfg.num_ids, cfg.num_instances, seed, steps,
                                            cfg.synthetic_ratio)
        gpu = device.type == "cuda"
        self.channels_last = gpu and cfg.channels_last
        self.augmenter = BatchAugmenter(augment, cfg.size, cfg.pad, cfg.flip, cfg.channel_prob, cfg.gray_prob,
                                        channels_last=self.channels_last)
        seed_everything(seed)
        self.networks = [self._placed(self.baseline.build_model(cfg, self.pool.num_classes))
                         for _ in range(1 if self.procedure is None else self.procedure.networks)]
        self.model = self.networks[0] if self.procedure is None else self.procedure.tested_model(self.networks)
        self.optimizers = [self._optimizer(network) for network in self.networks]
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: warmup_step_factor(e, cfg.warmup_epochs, tuple(cfg.milestones), cfg.lr_gamma))
            for optimizer in self.optimizers]
        self.optimizer, self.scheduler = self.optimizers[0], self.schedulers[0]
        # a procedure makes one criterion per network, with the baseline's make_criterion
        self.criterion = self.baseline.make_criterion(cfg, self.pool) if self.procedure is None else None
        self.train_model: nn.Module = self.model
        if self.dist.distributed:
            ids = [device.index] if gpu else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.train_model = maybe_compile(self.train_model, compile)
        self.train_networks = ([self.train_model] if self.procedure is None
                               else [maybe_compile(network, compile) for network in self.networks])
        self.aug_generator = torch.Generator()
        self.elapsed = 0.0
        self.images_seen = 0
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        if self.procedure is not None:
            self.procedure.setup(self)

    # --- set-up -------------------------------------------------------------------------------------

    def _placed(self, network: nn.Module) -> nn.Module:
        network = network.to(self.device)
        return network.to(memory_format=torch.channels_last) if self.channels_last else network

    def _optimizer(self, network: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        head = {id(p) for m in network.head_modules() for p in m.parameters()}
        trainable = [p for p in network.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if id(p) not in head], "lr": cfg.backbone_lr},
            {"params": [p for p in trainable if id(p) in head], "lr": cfg.lr},
        ]
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov and cfg.momentum > 0)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    @property
    def _stateful(self) -> Any:
        """What keeps state besides the networks: the procedure, else the criterion."""
        return self.procedure if self.procedure is not None else self.criterion

    def state(self) -> dict[str, Any]:
        one = self.procedure is None  # one network: its optimiser's and scheduler's states as they are
        return {
            "kind": CHECKPOINT_KIND,
            "epoch": self.sampler.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if one else [o.state_dict() for o in self.optimizers],
            "scheduler": self.scheduler.state_dict() if one else [s.state_dict() for s in self.schedulers],
            "sampler": self.sampler.state_dict(),
            "criterion": self._stateful.state_dict(),
            "rng": rng_state(),
            "run_config": self.run_config,
            "config_hash": self.config_hash,
            "num_classes": self.pool.num_classes,
            "label_pids": self.label_pids.tolist(),
            "elapsed": self.elapsed,
            "images_seen": self.images_seen,
            "best": self.best,
            "history": self.history,
        }

    def load(self, path: Path) -> None:
        state = load_checkpoint(path, CHECKPOINT_KIND)
        if state.get("config_hash") != self.config_hash:
            raise UserError(
                f"{path} was trained with another configuration (hash {state.get('config_hash')} vs "
                f"{self.config_hash}): resume with the same options, or start over with --restart."
            )
        self.model.load_state_dict(state["model"])
        if self.procedure is None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        else:
            for optimizer, saved in zip(self.optimizers, state["optimizer"], strict=True):
                optimizer.load_state_dict(saved)
            for scheduler, saved in zip(self.schedulers, state["scheduler"], strict=True):
                scheduler.load_state_dict(saved)
        self.sampler.load_state_dict(state["sampler"])
        self._stateful.load_state_dict(state["criterion"])
        set_rng_state(state["rng"])
        self.elapsed, self.images_seen = float(state["elapsed"]), int(state["images_seen"])
        self.best, self.history = state.get("best"), list(state.get("history", []))

    # --- one step -------------------------------------------------------------------------------------

    def _shard_positions(self, batch_shape: tuple[int, int]) -> list[np.ndarray]:
        ids, per_id = batch_shape
        positions = np.arange(ids * per_id).reshape(ids, per_id)
        per_shard = ids // self.shards
        first = self.dist.rank * self.cfg.micro_batches
        return [positions[s * per_shard:(s + 1) * per_shard].reshape(-1)
                for s in range(first, first + self.cfg.micro_batches)]

    def train_step(self, batch: np.ndarray) -> dict[str, float]:
        flat = batch.reshape(-1)
        draws = self.augmenter.draw(len(flat), self.aug_generator)
        shards = self._shard_positions(batch.shape)
        totals: dict[str, float] = {}
        for m, positions in enumerate(shards):
            index = flat[positions]
            modalities = torch.as_tensor(self.pool.modalities[index], device=self.device)
            labels = torch.as_tensor(self.pool.labels[index], device=self.device)
            images = self.augmenter(self.images.load(index, self.device), modalities, draws,
                                    torch.as_tensor(positions))
            last = m == len(shards) - 1
            sync = contextlib.nullcontext() if last or not self.dist.distributed else self.train_model.no_sync()
            with sync:
                with autocast(self.device, self.cfg.precision):
                    outputs = self.train_model(images, modalities)
                loss, parts = self.criterion(outputs, labels, torch.as_tensor(index))
                (loss / len(shards)).backward()
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) / len(shards)
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / len(shards)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return totals

    # --- helpers used by criteria and validation ------------------------------------------------------

    @torch.no_grad()
    def per_sample_losses(self) -> np.ndarray:
        """Identity cross-entropy of every pool image (no augmentation, eval mode), gathered over ranks."""
        n = len(self.pool)
        mine = np.arange(self.dist.rank, n, self.dist.world_size)
        losses = torch.zeros(len(mine), dtype=torch.float32)
        self.model.eval()
        step = self.cfg.eval_batch_size
        with track("per-sample losses", len(mine), "img", enabled=self.dist.is_main) as advance:
            for start in range(0, len(mine), step):
                index = mine[start:start + step]
                images = normalize(self.images.load(index, self.device), channels_last=self.channels_last)
                modalities = torch.as_tensor(self.pool.modalities[index], device=self.device)
                labels = torch.as_tensor(self.pool.labels[index], device=self.device)
                with autocast(self.device, self.cfg.precision):
                    logits = self.model(images, modalities)["logits"]
                losses[start:start + len(index)] = identity_loss(logits, labels, reduction="none").float().cpu()
                advance(len(index))
        self.model.train()
        if not self.dist.distributed:
            return losses.numpy().astype(np.float64)
        width = -(-n // self.dist.world_size)
        comm = self._comm_device()
        padded = torch.zeros(width, device=comm)
        padded[:len(mine)] = losses.to(comm)
        gathered = [torch.zeros(width, device=comm) for _ in range(self.dist.world_size)]
        dist.all_gather(gathered, padded)
        full = np.zeros(n)
        for r, part in enumerate(gathered):
            rows = np.arange(r, n, self.dist.world_size)
            full[rows] = part.cpu().numpy()[:len(rows)]
        return full

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BN running statistics (DDP only broadcasts them before a forward)."""
        if self.dist.distributed:
            for buffer in self.model.buffers():
                dist.broadcast(buffer.data, 0)

    def validate(self) -> dict[str, float]:
        """Rank-1 / mAP on the validation identities: infrared queries against the visible gallery."""
        from papg_bench.protocols.metrics import evaluate

        rows = self.val_rows
        mods = modality_codes(self.store.modalities[rows])
        feats = extract_features(self.model, self.store.images, rows, mods, self.cfg.size, self.device,
                                 self.cfg.eval_batch_size, precision=self.cfg.precision,
                                 channels_last=self.channels_last)
        query, gallery = rows[mods == 1], rows[mods == 0]
        fq, fg = feats[mods == 1], feats[mods == 0]
        metrics = evaluate(1.0 - fq @ fg.T, self.store.pids[query], self.store.pids[gallery],
                           self.store.cams[query], self.store.cams[gallery], protocol=self.store.dataset.protocol)
        return {"val_rank1": float(metrics.cmc[0]), "val_mAP": float(metrics.mAP)}

    # --- the loop -----------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int, run_name: str) -> dict[str, float]:
        """One epoch of the one-network loop; the values to log (the parts of the loss averaged over its steps)."""
        batch_images = self.cfg.num_ids * 2 * self.cfg.num_instances
        values: dict[str, float] = dict(self.criterion.before_epoch(self, epoch))
        self.aug_generator.manual_seed(self.seed * 1_000_003 + epoch)
        self.train_model.train()
        sums: dict[str, float] = {}
        steps = self.steps_per_epoch - self.sampler.step
        title = f"train {run_name} epoch {epoch + 1}/{self.cfg.epochs}"
        with track(title, steps * batch_images, "img", enabled=self.dist.is_main) as advance:
            for batch in self.sampler:
                for key, value in self.train_step(batch).items():
                    sums[key] = sums.get(key, 0.0) + value
                self.images_seen += batch_images
                advance(batch_images)
        values.update({k: v / max(1, steps) for k, v in sums.items()})
        return values

    def run(self, stop_after: int | None = None, run_name: str = "") -> dict[str, Any]:
        """Train from the current epoch to the last (or until ``stop_after`` epochs are done)."""
        cfg, main = self.cfg, self.dist.is_main
        log = RunLog(self.run_dir, enabled=main)
        end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
        try:
            for epoch in range(self.sampler.epoch, end):
                started, seen = time.perf_counter(), self.images_seen
                if self.procedure is None:
                    values = self._train_epoch(epoch, run_name)
                else:
                    self.aug_generator.manual_seed(self.seed * 1_000_003 + epoch)
                    values = dict(self.procedure.train_epoch(self, epoch))
                    self.sampler.set_epoch(epoch + 1)
                lr_backbone, lr_head = (g["lr"] for g in self.optimizer.param_groups)
                for scheduler in self.schedulers:
                    scheduler.step()
                self._sync_buffers()
                seconds = time.perf_counter() - started
                self.elapsed += seconds
                values.update(epoch=epoch, lr=lr_head, lr_backbone=lr_backbone,
                              images_per_s=(self.images_seen - seen) / max(seconds, 1e-9))
                if len(self.val_rows) and main:
                    values.update(self.validate())
                    if self.best is None or values["val_mAP"] > self.best["val_mAP"]:
                        self.best = {"epoch": epoch, "val_rank1": values["val_rank1"], "val_mAP": values["val_mAP"]}
                        save_checkpoint(self.run_dir / "best.pt", {**self.state(), "best": self.best})
                self.history.append({k: float(v) for k, v in values.items()})
                if main:
                    save_checkpoint(self.checkpoint_path, self.state())
                    log.log((epoch + 1) * self.steps_per_epoch, **values)
                if self.dist.distributed:
                    dist.barrier()
        finally:
            log.close()
        complete = self.sampler.epoch >= cfg.epochs
        summary = self.summary(complete)
        if main and complete:
            atomic_write_json(self.run_dir / "summary.json", summary)
        return summary

    def summary(self, complete: bool) -> dict[str, Any]:
        chosen = "best.pt" if self.best is not None else "checkpoint.pt"
        path = self.run_dir / chosen
        return {
            "complete": complete,
            "config_hash": self.config_hash,
            "run_config": self.run_config,
            "epochs_done": self.sampler.epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "steps": self.sampler.epoch * self.steps_per_epoch,
            "images_seen": self.images_seen,
            "train_images": {"real": int((~self.pool.generated).sum()), "generated": int(self.pool.generated.sum())},
            "identities": self.pool.num_classes,
            "wall_time_s": self.elapsed,
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "checkpoint": chosen,
            "checkpoint_sha256": sha256_file(path) if path.is_file() and self.dist.is_main else None,
            "selection": ({"by": "val_mAP", **self.best} if self.best is not None else {"by": "last epoch"}),
            "last": self.history[-1] if self.history else None,
            **self._stateful.summary(),
        }
