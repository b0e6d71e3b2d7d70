"""What decides the last digits of a CPU run, recorded with every artefact, and how to pin it.

On one machine a run is reproducible to the last digit when the intra-op thread count, the torch build
and the CPU's kernels are the same: the thread count splits reductions, and oneDNN / MKL pick their
kernels (and with them the order of float additions) by the instruction set they find. Another CPU can
therefore give other digits, and a training run amplifies them.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

THREADS_ENV = "PAPG_THREADS"


@cache
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_numerics() -> dict[str, Any] | None:
    """The settings that decide a CPU run's rounding: threads, kernels' instruction set, determinism flag.

    None when torch was never imported: then nothing torch computes went into the artefact.
    """
    if "torch" not in sys.modules:
        return None
    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def pin_numerics(threads: int | None, deterministic: bool = True) -> None:
    """Fix the intra-op thread count (when given) and, optionally, ask torch for deterministic algorithms.

    Deterministic algorithms change nothing on the CPU's usual kernels; on CUDA they select the
    reproducible ones (with a warning, not an error, where an operation has none).
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@contextmanager
def pinned_numerics(threads: int | None, deterministic: bool = True) -> Iterator[None]:
    """:func:`pin_numerics` for the duration of a block; the previous settings come back after it."""
    import torch

    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    pin_numerics(threads, deterministic)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1], warn_only=previous[2])
