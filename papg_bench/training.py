"""What every trainer shares: torch.distributed set-up, mixed precision, logs and checkpoints.

The same code runs as one process or under ``torchrun`` (DDP). On a CPU the process group uses
gloo, on GPUs nccl. Only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from papg_bench.config import check_precision
from papg_bench.errors import UserError
from papg_bench.workspace import atomic_torch_save


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def uses_bf16(device: torch.device, precision: str = "auto") -> bool:
    """``auto`` is bf16 autocast on CUDA and fp32 on the CPU (the reference, and exact resume's setting).

    ``bf16`` on the CPU runs convolutions through oneDNN's bf16 kernels (about twice the generator's
    throughput on this project's AVX512-BF16 machine; BENCHMARKS.md).
    """
    return check_precision(precision) == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`uses_bf16` says so, else a no-op (fp32)."""
    if uses_bf16(device, precision):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 when autocast made it bf16/fp16; float64 stays float64."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def maybe_compile(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    return torch.compile(model) if enabled else model  # type: ignore[return-value]


class RunLog:
    """Append-only ``log.jsonl`` plus TensorBoard scalars under ``<run>/tb`` (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "log.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
                except ImportError:  # tensorboard is a dependency, but logging must never stop training
                    self._tb = None

    def log(self, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        entry = {"time": time.time(), "step": step, **values}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True, default=float) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    atomic_torch_save(state, Path(path))


def load_checkpoint(path: Path, expect_kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: train first, or drop --resume.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise UserError(f"{path} is not a readable checkpoint ({type(exc).__name__}): delete it and retrain.") from None
    if expect_kind is not None and state.get("kind") != expect_kind:
        raise UserError(f"{path} is a '{state.get('kind')}' checkpoint, not '{expect_kind}': check the run folder.")
    return state


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Temporarily set the intra-op thread count (benchmarks and tests)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
