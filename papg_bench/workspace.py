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

from papg_bench.errors import WRITE_ONLY_ERRNOS, UserError, WriteError, file_in_the_way
from papg_bench.numerics import cpu_numerics

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

    def check(self, writable: bool) -> Workspace:
        """Raise a :class:`UserError` naming the root unless it is (or can become) a usable folder.

        Writability is probed by creating a file, not with ``os.access``: that also catches read-only
        mounts and a full disk, and it holds for root, to whom ``os.access`` always says yes.
        """
        root = self.root
        fix = f"pass a folder with --work or {WORK_ENV}"
        if os.path.lexists(root) and not root.is_dir():
            what = "a file" if root.is_file() else "a broken link" if not root.exists() else "a special file"
            raise UserError(f"--work {root} is {what}, not a folder: {fix}.")
        blocker = file_in_the_way(root)
        if blocker is not None:
            raise UserError(f"--work {root} is under {blocker}, which is a file, not a folder: {fix}.")
        if root.is_dir():
            try:
                with os.scandir(root):
                    pass
            except OSError as exc:
                raise UserError(f"--work {root} cannot be read ({exc.strerror}): {fix}.") from None
        if writable:
            folder = root if root.is_dir() else next(p for p in root.parents if p.is_dir())
            try:
                fd, probe = tempfile.mkstemp(prefix=".papg-write-check-", dir=folder)
            except OSError as exc:
                where = "" if folder == root else f" (it would be created in {folder})"
                raise UserError(f"--work {root} is not writable{where}: {exc.strerror}. Pass a writable folder "
                                f"with --work or {WORK_ENV}.") from None
            os.close(fd)
            os.unlink(probe)
        return self


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")


def make_parent(path: Path) -> None:
    """Create the folder ``path`` goes into; a failure is a :class:`WriteError` naming ``path``."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(path, exc) from exc


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def write_failure(exc: BaseException, tmp: Path, final: Path) -> WriteError | None:
    """``exc`` as a :class:`WriteError` if it is a failure to write ``tmp`` (or anything in it) or ``final``.

    The message names the file under ``final``, never the temporary name the user does not know. A
    failure only writing causes (a full disk) counts wherever it happened; other errors give ``None``.
    """
    if isinstance(exc, WriteError):
        failed, cause = exc.path, exc.cause
    elif isinstance(exc, OSError):
        failed = Path(os.fsdecode(exc.filename)) if exc.filename is not None else final
        if exc.errno not in WRITE_ONLY_ERRNOS and not (_within(failed, tmp) or _within(failed, final)):
            return None
        cause = exc
    else:
        return None
    if _within(failed, tmp):
        failed = final / failed.relative_to(tmp)
    elif isinstance(exc, WriteError):
        return exc
    return WriteError(failed, cause)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling and rename it over ``path``."""
    path = Path(path)
    make_parent(path)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteError(path, exc) from exc
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    """Remove a temporary file or folder, quietly: a failure here must not hide the original error."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        with contextlib.suppress(OSError):
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
    make_parent(path)
    tmp = _tmp_sibling(path)
    try:
        try:
            yield tmp
            replace_folder_or_file(tmp, path)
        except (OSError, WriteError) as exc:
            failure = write_failure(exc, tmp, path)
            if failure is None or failure is exc:
                raise
            raise failure from exc
    finally:
        _remove(tmp)


def replace_folder_or_file(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``; an old folder at ``path`` is swapped out first and put back on failure."""
    if not (path.is_dir() and not path.is_symlink()):
        os.replace(tmp, path)
        return
    old = _tmp_sibling(path)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    # Saving through a Python file lets a failed write (a full disk) surface as its OSError; torch's
    # own file writer, and its zip writer's cleanup, report one only as "RuntimeError: unexpected pos".
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            if isinstance(exc.__context__, OSError):
                raise exc.__context__ from None
            raise


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
        "numerics": cpu_numerics(),
    }
    if config is not None:
        record["config"] = config
        record["config_hash"] = config_hash(config)
    return record


def temp_dir_near(path: Path) -> Path:
    """A fresh temporary folder on the same file system as ``path`` (so a rename is atomic)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=path))
    except OSError as exc:
        raise WriteError(path, exc) from exc
