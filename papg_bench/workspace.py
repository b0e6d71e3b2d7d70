"""Where every artefact lives, atomic writes, and provenance.

Layout under the workspace root (default ``./papg-work``, ``--work DIR`` or ``PAPG_WORK``)::

    datasets/<name>/                 image store written by ``prepare`` (+ poses.npy from ``pose``)
    generators/<dataset>/<run>/      PAPG generator training runs (checkpoints, samples, logs)
    generated/<dataset>/<run>/       generated image stores (same format as datasets/)
    runs/<dataset>/<run>/            re-identification training runs
    results/<dataset>/               one JSON record per evaluation (+ per-query JSONL)
    reports/<dataset>/               tables (Markdown, CSV, LaTeX) and plots written by ``report``
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_WORK = Path("papg-work")
WORK_ENV = "PAPG_WORK"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, work: Path | str | None = None) -> Workspace:
        if work is None:
            work = os.environ.get(WORK_ENV) or DEFAULT_WORK
        return cls(Path(work).expanduser())

    def dataset_dir(self, name: str) -> Path:
        return self.root / "datasets" / name

    def generator_dir(self, dataset: str, run: str) -> Path:
        return self.root / "generators" / dataset / run

    def generated_dir(self, dataset: str, run: str) -> Path:
        return self.root / "generated" / dataset / run

    def run_dir(self, dataset: str, run: str) -> Path:
        return self.root / "runs" / dataset / run

    def results_dir(self, dataset: str) -> Path:
        return self.root / "results" / dataset

    def reports_dir(self, dataset: str) -> Path:
        return self.root / "reports" / dataset


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path (file or folder) that replaces ``path`` only on success.

    On an exception (or a killed process) nothing appears at ``path``; a stale temporary may be left
    behind under a dot-name, which no reader ever accepts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = _tmp_sibling(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    with atomic_path(Path(path)) as tmp:
        torch.save(obj, tmp)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_revision() -> str | None:
    """The git revision of the papg-bench checkout, with ``-dirty`` when it has local changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("papg-bench", "torch", "torchvision", "timm", "numpy", "faiss-cpu", "faiss-gpu-cu12"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced an artefact: time, host, git revision, package versions and (optionally) config."""
    record: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "git_revision": git_revision(),
        "versions": package_versions(),
    }
    if config is not None:
        record["config"] = config
        record["config_hash"] = config_hash(config)
    return record


def temp_dir_near(path: Path) -> Path:
    """A fresh temporary folder on the same file system as ``path`` (so a rename is atomic)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=path))
