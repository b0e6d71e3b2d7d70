"""``papg-bench train-generator``: CycleGAN-style training of the two PAPG generators.

One step, as in the released ``train.py``: the generators minimise LSGAN (MSE to 1) + cycle L1 (x10) +
identity L1 (x5); then each discriminator minimises (MSE(real, 1) + MSE(fake, 0)) / 2 on a fake drawn
through its history buffer of 50 images. Adam 2e-4 (0.5, 0.999); the learning rate stays constant for the
first half of the steps and falls linearly to 0 (per step, so short runs decay smoothly too).

Batches come straight from the store's memory map as uint8, are cropped/flipped on the device, and the
pose maps are drawn on the device from the moved keypoints. Crops and flips of step ``s`` of epoch ``e``
come from a generator seeded with ``(seed, e, s)`` and are drawn for the global batch, so any rank
count, and any interruption point, sees the same data. Under ``torchrun`` the generator pair and the
discriminator pair are each wrapped in DDP and the non-local batch norms see the global batch.

Every epoch rank 0 writes ``checkpoint.pt`` atomically (networks, optimisers, schedulers, every rank's
history buffers and their generators, sampler position, RNG states), a sample grid and the logs;
``--resume`` continues from it exactly. When training ends it writes ``generators.pt`` (what
``generate`` reads) and ``result.json``; running the same command again then does nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from papg_bench.data.batches import Geometry, apply_geometry, load_rows, normalize, random_geometry, resize
from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.pairing import PairSchedule
from papg_bench.generators.papg import DiscriminatorPair, GeneratorPair, build_networks, sync_batchnorm
from papg_bench.generators.winograd import use_winograd
from papg_bench.pose.keypoints import FLIP_PERMUTATION
from papg_bench.pose.maps import load_poses, pose_channels, render_pose_maps, scale_keypoints
from papg_bench.progress import track
from papg_bench.runtime import resolve_device, rng_state, seed_everything, set_rng_state
from papg_bench.stages import DONE, RESUMED, REUSED, STOPPED, Mark, is_done, read_json
from papg_bench.training import (
    DistInfo,
    RunLog,
    at_least_fp32,
    autocast,
    barrier,
    init_distributed,
    load_checkpoint,
    maybe_compile,
    save_checkpoint,
)
from papg_bench.workspace import Workspace, atomic_write_json, config_hash, sha256_file

CHECKPOINT = "checkpoint.pt"
GENERATORS = "generators.pt"
RESULT = "result.json"
CHECKPOINT_KIND = "papg-train"
GENERATORS_KIND = "papg-generators"
LOG_EVERY = 10
HALF = (0.5, 0.5, 0.5)


# --- pieces ---------------------------------------------------------------------------------------------------


class HistoryBuffer:
    """The released ``ReplayBuffer``: until full, store and return each fake; then with probability 1/2
    return a stored fake (replacing it by the new one), else the new one. Seeded, with saveable state."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: torch.Tensor | None = None
        self.count = 0
        self.generator = torch.Generator().manual_seed(seed)

    def push_and_pop(self, batch: torch.Tensor) -> torch.Tensor:
        batch = at_least_fp32(batch.detach())
        if self.size == 0:
            return batch
        if self.images is None:
            self.images = torch.empty((self.size, *batch.shape[1:]), dtype=batch.dtype, device=batch.device)
        out = []
        for image in batch:
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        images = None if self.images is None else self.images[: self.count].cpu()
        return {"size": self.size, "count": self.count, "images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.count = int(state["count"])
        self.generator.set_state(state["generator"])
        self.images = None
        if state["images"] is not None:
            stored = state["images"].to(device)
            self.images = torch.empty((self.size, *stored.shape[1:]), dtype=stored.dtype, device=device)
            self.images[: self.count] = stored


def linear_decay_factor(step: int, total: int, decay_start: float) -> float:
    """1 for the first ``decay_start`` of the steps, then linearly down to 0 at ``total``."""
    start = int(round(total * decay_start))
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


def step_seed(seed: int, epoch: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _slice_geometry(geometry: Geometry, start: int, stop: int) -> Geometry:
    return Geometry(pad=geometry.pad, dx=geometry.dx[start:stop], dy=geometry.dy[start:stop],
                    flip=geometry.flip[start:stop], height=geometry.height, width=geometry.width)


@dataclass
class Batch:
    real_v: torch.Tensor
    real_i: torch.Tensor
    pose_v: torch.Tensor | None
    pose_i: torch.Tensor | None


class BatchMaker:
    """Rows of the store -> normalised, augmented images and pose maps on the device."""

    def __init__(self, store: Store, poses: np.ndarray | None, cfg: GeneratorConfig, device: torch.device,
                 channels_last: bool = False) -> None:
        self.store, self.cfg, self.device, self.channels_last = store, cfg, device, channels_last
        self.poses = None if poses is None else torch.from_numpy(np.ascontiguousarray(poses, dtype=np.float32))

    def images(self, rows: np.ndarray, geometry: Geometry | None) -> torch.Tensor:
        images = resize(load_rows(self.store.images, rows, self.device, pin=self.device.type == "cuda"),
                        self.cfg.size)
        if geometry is not None:
            images = apply_geometry(images, geometry)
        return normalize(images, HALF, HALF, channels_last=self.channels_last)

    def pose_maps(self, rows: np.ndarray, geometry: Geometry | None) -> torch.Tensor | None:
        if not self.cfg.pose or self.poses is None:
            return None
        height, width = self.cfg.size
        kp = self.poses[torch.as_tensor(rows)].to(self.device)
        if tuple(self.store.size) != (height, width):
            kp = scale_keypoints(kp, tuple(self.store.size), (height, width))
        if geometry is not None:
            kp = geometry.apply_to_keypoints(kp, FLIP_PERMUTATION)
        maps = render_pose_maps(kp, height, width, kind=self.cfg.pose_map, sigma=self.cfg.heatmap_sigma)
        return maps.contiguous(memory_format=torch.channels_last) if self.channels_last else maps

    def training_batch(self, pairs: np.ndarray, seed: int, epoch: int, step: int, rank: int,
                       world_size: int) -> Batch:
        """This rank's part of global step ``step``; augmentation drawn for the whole global batch."""
        b = len(pairs)
        generator = torch.Generator().manual_seed(step_seed(seed, epoch, step))
        height, width = self.cfg.size
        draws = [random_geometry(b * world_size, height, width, self.cfg.crop_pad, self.cfg.flip, generator,
                                 self.device) for _ in range(2)]
        geo_i, geo_v = (_slice_geometry(g, rank * b, (rank + 1) * b) for g in draws)
        rows_i, rows_v = pairs[:, 0], pairs[:, 1]
        return Batch(real_v=self.images(rows_v, geo_v), real_i=self.images(rows_i, geo_i),
                     pose_v=self.pose_maps(rows_v, geo_v), pose_i=self.pose_maps(rows_i, geo_i))

    def plain_batch(self, rows_v: np.ndarray, rows_i: np.ndarray) -> Batch:
        return Batch(real_v=self.images(rows_v, None), real_i=self.images(rows_i, None),
                     pose_v=self.pose_maps(rows_v, None), pose_i=self.pose_maps(rows_i, None))


def _set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class CycleTrainer:
    """Networks, optimisers, schedulers and history buffers, and one training step on a batch."""

    def __init__(self, cfg: GeneratorConfig, device: torch.device, total_steps: int, info: DistInfo | None = None,
                 compile: bool = False, channels_last: bool | None = None, winograd: bool = False) -> None:
        self.cfg, self.device = cfg, device
        self.info = info or DistInfo()
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        self.total_steps = total_steps
        seed_everything(cfg.seed)
        gens, discs = build_networks(pose_channels(cfg.pose_map) if cfg.pose else 0, cfg.channels, cfg.disc_channels,
                                     cfg.blocks, cfg.attention, cfg.attention_norm, cfg.init)
        use_winograd(gens, winograd)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        gens.to(device, memory_format=memory)
        discs.to(device, memory_format=memory)
        if self.info.distributed:
            sync_batchnorm(gens, device)
        self.gens: GeneratorPair = gens
        self.discs: DiscriminatorPair = discs
        run_gens = GeneratorPair(maybe_compile(gens.v2i, compile), maybe_compile(gens.i2v, compile))
        run_discs = DiscriminatorPair(maybe_compile(discs.d_v, compile), maybe_compile(discs.d_i, compile))
        self.judge_v, self.judge_i = run_discs.d_v, run_discs.d_i  # unwrapped: used with frozen weights
        if self.info.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.run_gens: torch.nn.Module = DistributedDataParallel(run_gens, device_ids=ids)
            self.run_discs: torch.nn.Module = DistributedDataParallel(run_discs, device_ids=ids)
        else:
            self.run_gens, self.run_discs = run_gens, run_discs
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(gens.parameters(), lr=cfg.lr, betas=betas)
        self.opt_dv = torch.optim.Adam(discs.d_v.parameters(), lr=cfg.lr, betas=betas)
        self.opt_di = torch.optim.Adam(discs.d_i.parameters(), lr=cfg.lr, betas=betas)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self._schedule)
                           for opt in (self.opt_g, self.opt_dv, self.opt_di)]
        base = cfg.seed * 1000 + self.info.rank * 2
        self.pool_v = HistoryBuffer(cfg.pool_size, base)
        self.pool_i = HistoryBuffer(cfg.pool_size, base + 1)

    def _schedule(self, step: int) -> float:
        return linear_decay_factor(step, self.total_steps, self.cfg.decay_start)

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One generator update and one update of each discriminator; returns detached losses."""
        cfg = self.cfg
        self.gens.train()
        _set_requires_grad(self.discs, False)
        with autocast(self.device, self.cfg.precision):
            out = self.run_gens(batch.real_v, batch.pose_v, batch.real_i, batch.pose_i)
            judged_i = self.judge_i(out["fake_i"])
            judged_v = self.judge_v(out["fake_v"])
        real_v, real_i = batch.real_v, batch.real_i
        gan = F.mse_loss(judged_i, torch.ones_like(judged_i)) + F.mse_loss(judged_v, torch.ones_like(judged_v))
        cycle = (F.l1_loss(at_least_fp32(out["rec_v"]), real_v)
                 + F.l1_loss(at_least_fp32(out["rec_i"]), real_i)) * cfg.lambda_cycle
        identity = (F.l1_loss(at_least_fp32(out["idt_i"]), real_i)
                    + F.l1_loss(at_least_fp32(out["idt_v"]), real_v)) * cfg.lambda_identity
        loss_g = gan + cycle + identity
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        _set_requires_grad(self.discs, True)
        fake_v = self.pool_v.push_and_pop(out["fake_v"])
        fake_i = self.pool_i.push_and_pop(out["fake_i"])
        if self.channels_last:
            fake_v = fake_v.contiguous(memory_format=torch.channels_last)
            fake_i = fake_i.contiguous(memory_format=torch.channels_last)
        b = real_v.shape[0]
        with autocast(self.device, self.cfg.precision):
            pred_v, pred_i = self.run_discs(torch.cat([real_v, fake_v.to(real_v.dtype)]),
                                            torch.cat([real_i, fake_i.to(real_i.dtype)]))
        loss_dv = (F.mse_loss(pred_v[:b], torch.ones_like(pred_v[:b]))
                   + F.mse_loss(pred_v[b:], torch.zeros_like(pred_v[b:]))) * 0.5
        loss_di = (F.mse_loss(pred_i[:b], torch.ones_like(pred_i[:b]))
                   + F.mse_loss(pred_i[b:], torch.zeros_like(pred_i[b:]))) * 0.5
        self.opt_dv.zero_grad(set_to_none=True)
        self.opt_di.zero_grad(set_to_none=True)
        (loss_dv + loss_di).backward()
        self.opt_dv.step()
        self.opt_di.step()
        for scheduler in self.schedulers:
            scheduler.step()
        return {"loss_G": loss_g.detach(), "loss_G_gan": gan.detach(), "loss_G_cycle": cycle.detach(),
                "loss_G_identity": identity.detach(), "loss_D_V": loss_dv.detach(), "loss_D_I": loss_di.detach()}

    @torch.no_grad()
    def translate(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(fake infrared from visible, fake visible from infrared) in eval mode."""
        self.gens.eval()
        try:
            with autocast(self.device, self.cfg.precision):
                return (self.gens.v2i(batch.real_v, batch.pose_v).float(),
                        self.gens.i2v(batch.real_i, batch.pose_i).float())
        finally:
            self.gens.train()

    def pool_states(self) -> dict[str, Any]:
        return {"v": self.pool_v.state_dict(), "i": self.pool_i.state_dict()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "v2i": self.gens.v2i.state_dict(), "i2v": self.gens.i2v.state_dict(),
            "d_v": self.discs.d_v.state_dict(), "d_i": self.discs.d_i.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_dv": self.opt_dv.state_dict(), "opt_di": self.opt_di.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
        }

    def load_state_dict(self, state: dict[str, Any], pools: dict[str, Any] | None) -> None:
        self.gens.v2i.load_state_dict(state["v2i"])
        self.gens.i2v.load_state_dict(state["i2v"])
        self.discs.d_v.load_state_dict(state["d_v"])
        self.discs.d_i.load_state_dict(state["d_i"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_dv.load_state_dict(state["opt_dv"])
        self.opt_di.load_state_dict(state["opt_di"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        if pools is not None:
            self.pool_v.load_state_dict(pools["v"], self.device)
            self.pool_i.load_state_dict(pools["i"], self.device)


# --- the run --------------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # a stage outcome: done, reused, resumed or stopped (stop_after_epoch)
    epochs_done: int
    steps: int
    generators: Path | None
    seconds: float
    pairs_per_second: float
    pairs_per_epoch: int


def load_store_poses(store: Store, cfg: GeneratorConfig, dataset: str) -> np.ndarray | None:
    if not cfg.pose:
        return None
    if not (store.path / "poses.npy").is_file():
        raise UserError(f"{store.path / 'poses.npy'} does not exist: run `papg-bench pose --dataset {dataset}` first, "
                        "or train without pose conditioning (--no-pose).")
    poses = load_poses(store.path)
    if len(poses) != len(store):
        raise UserError(f"{store.path / 'poses.npy'} has {len(poses)} rows but the store has {len(store)}: "
                        f"re-run `papg-bench pose --dataset {dataset} --force`.")
    return poses


def fingerprint(store: Store, cfg: GeneratorConfig) -> dict[str, Any]:
    """What a run's result depends on: its settings, the store's content and (with pose) its poses."""
    poses = store.path / "poses.npy"
    return {
        "config_hash": config_hash(cfg.to_dict()),
        "store_checksum": store.checksum,
        "poses_sha256": sha256_file(poses) if cfg.pose and poses.is_file() else None,
    }


def run_mark(run_dir: Path) -> Mark | None:
    """The stage mark of a generator run: the fingerprint its result names; complete once its generators exist."""
    done = read_json(run_dir / RESULT)
    return None if done is None else Mark(done.get("fingerprint"), (run_dir / GENERATORS).is_file(), done)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _overlay_pose(image: np.ndarray, pose: torch.Tensor | None, kind: str) -> np.ndarray:
    """Draw the pose map over a uint8 H x W x 3 image (skeleton colours, or heatmaps in red)."""
    if pose is None:
        return image
    pose = pose.float().cpu()
    if kind == "skeleton":
        colour = ((pose.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
        alpha = (pose > -0.9).any(dim=0).float().numpy()[..., None] * 0.7
    else:
        strength = pose.amax(dim=0).clamp(0, 1).numpy()[..., None]
        colour = np.broadcast_to(np.array([255.0, 40.0, 40.0]), image.shape)
        alpha = strength * 0.7
    return (image * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def write_sample_grid(trainer: CycleTrainer, maker: BatchMaker, pairs: np.ndarray, out_stem: Path,
                      title: str) -> list[Path]:
    """real V | generated I | real I | generated V, with each real image's pose drawn over it."""
    from papg_bench.results.plots import sample_grid

    batch = maker.plain_batch(pairs[:, 1], pairs[:, 0])
    fake_i, fake_v = trainer.translate(batch)
    real_v, real_i = _to_uint8(batch.real_v), _to_uint8(batch.real_i)
    fake_i_u8, fake_v_u8 = _to_uint8(fake_i), _to_uint8(fake_v)
    rows = []
    for k in range(len(pairs)):
        pose_v = None if batch.pose_v is None else batch.pose_v[k]
        pose_i = None if batch.pose_i is None else batch.pose_i[k]
        rows.append({"real_v": _overlay_pose(real_v[k], pose_v, trainer.cfg.pose_map), "fake_i": fake_i_u8[k],
                     "real_i": _overlay_pose(real_i[k], pose_i, trainer.cfg.pose_map), "fake_v": fake_v_u8[k]})
    return sample_grid(rows, out_stem, title=title)


def _gather_pools(trainer: CycleTrainer, info: DistInfo) -> list[dict[str, Any]]:
    local = trainer.pool_states()
    if not info.distributed:
        return [local]
    gathered: list[Any] = [None] * info.world_size if info.is_main else []
    dist.gather_object(local, gathered if info.is_main else None, dst=0)
    return gathered


def train_generator(
    ws: Workspace,
    dataset: str,
    cfg: GeneratorConfig,
    run: str = "papg",
    device: str | torch.device | None = None,
    resume: bool = False,
    compile: bool = False,
    channels_last: bool | None = None,
    winograd: bool = False,
    stop_after_epoch: int | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train (or resume, or confirm complete) the PAPG run ``<work>/generators/<dataset>/<run>/``.

    ``compile``, ``channels_last`` (default: on CUDA) and ``winograd`` change how fast it trains, not what it
    computes, so they are not settings of the run. ``stop_after_epoch`` ends the run after that epoch's
    checkpoint, as an interruption would (time-limited jobs; tests of ``--resume``).
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    info = init_distributed(device)
    store = open_store(ws.dataset_dir(dataset), "store")
    poses = load_store_poses(store, cfg, dataset)
    run_dir = ws.generator_dir(dataset, run)
    marks = fingerprint(store, cfg)
    mark = run_mark(run_dir)
    if is_done(mark, marks):
        done = mark.record
        return TrainResult(run_dir, REUSED, int(done["epochs"]), int(done["steps"]), run_dir / GENERATORS,
                           float(done["seconds"]), float(done["pairs_per_second"]), int(done["pairs_per_epoch"]))

    schedule = PairSchedule(store, cfg.seed, cfg.trial, cfg.max_pairs)
    global_batch = cfg.batch_size * info.world_size
    steps_per_epoch = schedule.steps_per_epoch(global_batch)
    total_steps = steps_per_epoch * cfg.epochs
    trainer = CycleTrainer(cfg, device, total_steps, info, compile=compile, channels_last=channels_last,
                           winograd=winograd)
    maker = BatchMaker(store, poses, cfg, device, trainer.channels_last)

    start_epoch, seconds = 0, 0.0
    checkpoint_path = run_dir / CHECKPOINT
    if resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, CHECKPOINT_KIND)
        if state["fingerprint"] != marks:
            raise UserError(f"{checkpoint_path} was written with other settings or data ({_differences(state, cfg)}): "
                            "resume with the same options, or drop --resume to start over.")
        if int(state["world_size"]) != info.world_size:
            raise UserError(f"{checkpoint_path} was written by {state['world_size']} process(es); resume with the "
                            f"same number (torchrun --nproc-per-node {state['world_size']}), not {info.world_size}.")
        trainer.load_state_dict(state["trainer"], state["pools"][info.rank])
        set_rng_state(state["rng"])
        start_epoch = int(state["sampler"]["epoch"])
        seconds = float(state["seconds"])
    elif info.is_main:
        for stale in (checkpoint_path, run_dir / GENERATORS, run_dir / RESULT, run_dir / "log.jsonl"):
            stale.unlink(missing_ok=True)
    barrier(info)

    log = RunLog(run_dir, enabled=info.is_main)
    if info.is_main:
        atomic_write_json(run_dir / "config.json", {"config": cfg.to_dict(), "dataset": dataset, "fingerprint": marks,
                                                    "world_size": info.world_size})
    sample_pairs = schedule.epoch_pairs(0)[: cfg.samples]
    status = RESUMED if start_epoch > 0 else DONE
    epochs_done = start_epoch
    pairs_total = 0
    run_start = time.perf_counter()
    try:
        with track(f"train-generator {dataset}/{run}", total_steps * global_batch, "pairs",
                   enabled=info.is_main and show_progress) as advance:
            advance((start_epoch * steps_per_epoch) * global_batch)
            for epoch in range(start_epoch, cfg.epochs):
                epoch_start = time.perf_counter()
                pairs = schedule.epoch_pairs(epoch)
                sums: dict[str, torch.Tensor] = {}
                window: dict[str, torch.Tensor] = {}
                for step in range(steps_per_epoch):
                    rows = schedule.batch(pairs, step, cfg.batch_size, info.rank, info.world_size)
                    batch = maker.training_batch(rows, cfg.seed, epoch, step, info.rank, info.world_size)
                    losses = trainer.step(batch)
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0) + value
                        window[key] = window.get(key, 0) + value
                    global_step = epoch * steps_per_epoch + step + 1
                    advance(global_batch, description=f"train-generator {dataset}/{run} e{epoch + 1}/{cfg.epochs}")
                    if global_step % LOG_EVERY == 0 or step == steps_per_epoch - 1:
                        count = LOG_EVERY if global_step % LOG_EVERY == 0 else (step % LOG_EVERY) + 1
                        log.log(global_step, epoch=epoch + 1, lr=trainer.opt_g.param_groups[0]["lr"],
                                **{k: float(v) / count for k, v in window.items()})
                        window = {}
                epoch_seconds = time.perf_counter() - epoch_start
                seconds += epoch_seconds
                pairs_total += steps_per_epoch * global_batch
                means = {f"epoch_{k}": float(v) / steps_per_epoch for k, v in sums.items()}
                pools = _gather_pools(trainer, info)
                if info.is_main:
                    log.log((epoch + 1) * steps_per_epoch, epoch=epoch + 1, epoch_seconds=epoch_seconds,
                            pairs_per_second=steps_per_epoch * global_batch / max(epoch_seconds, 1e-9), **means)
                    write_sample_grid(trainer, maker, sample_pairs, run_dir / "samples" / f"epoch-{epoch + 1:03d}",
                                      f"{dataset}/{run} epoch {epoch + 1}")
                    save_checkpoint(checkpoint_path, {
                        "kind": CHECKPOINT_KIND, "config": cfg.to_dict(), "fingerprint": marks,
                        "world_size": info.world_size, "trainer": trainer.state_dict(), "pools": pools,
                        "sampler": {"epoch": epoch + 1, "step": 0, "steps_per_epoch": steps_per_epoch},
                        "rng": rng_state(), "seconds": seconds,
                    })
                barrier(info)
                epochs_done = epoch + 1
                if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
                    status = STOPPED
                    break
    finally:
        log.close()

    elapsed = time.perf_counter() - run_start
    rate = pairs_total / elapsed if pairs_total else 0.0
    if status == STOPPED:
        return TrainResult(run_dir, status, epochs_done, epochs_done * steps_per_epoch, None, seconds, rate,
                           schedule.pairs_per_epoch)
    generators = run_dir / GENERATORS
    if info.is_main:
        save_checkpoint(generators, {
            "kind": GENERATORS_KIND, "config": cfg.to_dict(), "dataset": dataset, "fingerprint": marks,
            "v2i": trainer.gens.v2i.state_dict(), "i2v": trainer.gens.i2v.state_dict(), "epochs": cfg.epochs,
        })
        atomic_write_json(run_dir / RESULT, {
            "fingerprint": marks, "epochs": cfg.epochs, "steps": total_steps, "seconds": seconds,
            "pairs_per_second": total_steps * global_batch / max(seconds, 1e-9),
            "pairs_per_epoch": schedule.pairs_per_epoch, "unpaired_infrared": schedule.unpaired,
            "identities": schedule.identities, "world_size": info.world_size, "device": str(device),
            "generators_sha256": sha256_file(generators),
        })
    barrier(info)
    return TrainResult(run_dir, status, cfg.epochs, total_steps, generators, seconds,
                       total_steps * global_batch / max(seconds, 1e-9), schedule.pairs_per_epoch)


def _differences(state: dict[str, Any], cfg: GeneratorConfig) -> str:
    saved = state.get("config", {})
    now = cfg.to_dict()
    keys = [k for k in now if _norm(saved.get(k)) != _norm(now[k])]
    return ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in keys) or "the store or its poses changed"


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def load_generators(path: Path, device: torch.device) -> tuple[GeneratorConfig, GeneratorPair, dict[str, Any]]:
    """The trained generator pair of ``generators.pt`` in eval mode, with its settings and the file's metadata."""
    state = load_checkpoint(path, GENERATORS_KIND)
    saved = dict(state["config"])
    saved["size"] = tuple(saved["size"])
    cfg = GeneratorConfig(**saved)
    gens, _ = build_networks(pose_channels(cfg.pose_map) if cfg.pose else 0, cfg.channels, cfg.disc_channels,
                             cfg.blocks, cfg.attention, cfg.attention_norm)
    try:
        gens.v2i.load_state_dict(state["v2i"])
        gens.i2v.load_state_dict(state["i2v"])
    except RuntimeError as exc:
        raise UserError(f"{path} does not match its own settings ({exc.args[0].splitlines()[0]}): retrain.") from None
    gens.to(device).eval()
    return cfg, gens, state
