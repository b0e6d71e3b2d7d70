"""Devices, seeding, RNG state and the environment report shared by every step."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

from papg_bench.errors import UserError


def resolve_device(name: str | None = None) -> Any:
    """CUDA when present, else CPU; ``--device`` overrides (``cpu``, ``cuda``, ``cuda:1``)."""
    import torch

    if name is None or name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name: use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu.")
    return device


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG's state, for a checkpoint."""
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def faiss_status() -> dict[str, Any]:
    """Whether the optional FAISS package is importable, its version and whether it can use a GPU."""
    try:
        import faiss
    except ImportError:
        return {"installed": False, "version": None, "gpu": False}
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    return {
        "installed": True,
        "version": getattr(faiss, "__version__", "?"),
        "gpu": hasattr(faiss, "StandardGpuResources") and gpus > 0,
        "gpus": gpus,
    }


def faiss_summary(status: dict[str, Any] | None = None) -> str:
    """One line for ``info``: the FAISS version and GPU use, or how to install it."""
    status = faiss_status() if status is None else status
    if not status["installed"]:
        return "not installed (optional, for --backend faiss: pip install 'papg-bench[faiss]')"
    return f"{status['version']} (GPU: {'yes' if status['gpu'] else 'no'})"


def environment_report() -> dict[str, Any]:
    import torch

    import papg_bench

    cuda = torch.cuda.is_available()
    devices = ["cpu"] + [
        f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
    ] if cuda else ["cpu"]
    return {
        "papg_bench": papg_bench.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else f"not available (built for {torch.version.cuda})",
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpu_threads": torch.get_num_threads(),
        "faiss": faiss_status(),
        "devices": devices,
    }
