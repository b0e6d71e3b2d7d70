"""A workspace or output folder that cannot be used: one clear message, exit status 2, nothing half-written."""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_records import record, save, trial

import papg_bench.results.report as report_module
from papg_bench.cli import main
from papg_bench.data.fixtures import make_sysu_tree
from papg_bench.data.writer import StoreWriter
from papg_bench.errors import UserError, WriteError
from papg_bench.results.records import write_record
from papg_bench.workspace import Workspace, atomic_path, atomic_write_text, replace_folder_or_file

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def full_disk(*_: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), so a test can see that a failure added nothing."""
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _within(path: object, folder: Path) -> bool:
    if isinstance(path, int):
        return False
    resolved = Path(os.path.abspath(os.fsdecode(path)))  # type: ignore[arg-type]
    return resolved == folder or folder in resolved.parents


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Folders appended to the yielded list behave as on a read-only file system, for root too.

    ``chmod`` would not do: root (which runs these tests here) may write anywhere. Every way the
    project creates or changes files (``open``, ``os.open``, ``mkdir``, renames) raises EACCES there.
    """
    folders: list[Path] = []

    def blocked(path: object) -> bool:
        return any(_within(path, f) for f in folders)

    def denied(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))  # type: ignore[arg-type]

    real_open, real_os_open, real_mkdir, real_replace, real_rename = (
        builtins.open, os.open, os.mkdir, os.replace, os.rename)

    def fake_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if blocked(file) and any(c in mode for c in "wax+"):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if blocked(path) and flags & WRITE_FLAGS:
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if blocked(path) and not os.path.isdir(path):
            raise denied(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_move(real):  # type: ignore[no-untyped-def]
        def move(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            if blocked(src) or blocked(dst):
                raise denied(dst)
            return real(src, dst, *args, **kwargs)
        return move

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_move(real_replace))
    monkeypatch.setattr(os, "rename", fake_move(real_rename))
    yield folders


def make_records(folder: Path) -> None:
    save(folder, "agw-none-s0__all", record("agw", "none", "all", [trial(0, .40, .70, .80, .35)]))
    save(folder, "agw-papg-s0__all", record("agw", "papg", "all", [trial(0, .50, .75, .85, .40)]))


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sysu_tree(tmp_path_factory.mktemp("sysu") / "SYSU-MM01", train_ids=[1, 2], val_ids=[3],
                          test_ids=[4, 5], images_per_camera=1, size=(16, 8))


def commands(tmp: Path) -> dict[str, list[str]]:
    """Every command that uses the workspace, with arguments it parses; none gets past the workspace check."""
    return {
        "info": ["info"],
        "prepare": ["prepare", "-d", "sysu", "--root", str(tmp / "SYSU"), "--workers", "1"],
        "evaluate-features": ["evaluate", "-d", "sysu", "--features", str(tmp / "f.npz"), "--root", str(tmp)],
        "evaluate-run": ["evaluate", "-d", "sysu", "--baseline", "agw"],
        "pose": ["pose", "-d", "sysu", "--from", str(tmp / "k.csv")],
        "train-generator": ["train-generator", "-d", "sysu", "--preset", "tiny"],
        "generate": ["generate", "-d", "sysu"],
        "generate-counterparts": ["generate", "-d", "sysu", "--counterparts"],
        "train": ["train", "-d", "sysu", "--preset", "tiny"],
        "report": ["report", "-d", "sysu"],
        "demo": ["demo", "--scale", "tiny", "--out", str(tmp / "demo-out")],
    }


COMMANDS = list(commands(Path(".")))


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_clear_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    flat = " ".join(text.split())  # rich may wrap long paths
    for needle in needles:
        assert needle in flat, (needle, text)


@pytest.mark.parametrize("name", COMMANDS)
def test_work_is_a_file(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "papg-work"
    work.write_text("not a folder")
    before = tree(tmp_path)
    code, text = run(["--work", str(work), *commands(tmp_path)[name]], capsys)
    assert_clear_error(code, text, f"--work {work} is a file, not a folder",
                       "pass a folder with --work or PAPG_WORK")
    assert tree(tmp_path) == before and work.read_text() == "not a folder"


@pytest.mark.parametrize("name", COMMANDS)
def test_work_under_a_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("x")
    work = tmp_path / "notes.txt" / "papg-work"
    monkeypatch.setenv("PAPG_WORK", str(work))  # the environment variable takes the same path as --work
    before = tree(tmp_path)
    code, text = run(commands(tmp_path)[name], capsys)
    assert_clear_error(code, text, f"--work {work} is under {tmp_path / 'notes.txt'}, which is a file")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "info"])
def test_read_only_work_fails_before_writing(name: str, tmp_path: Path, read_only: list[Path],
                                             capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "papg-work"
    make_records(work / "results" / "sysu")
    before = tree(tmp_path)
    read_only.append(work)
    code, text = run(["--work", str(work), *commands(tmp_path)[name]], capsys)
    assert_clear_error(code, text, f"--work {work} is not writable: Permission denied",
                       "Pass a writable folder with --work or PAPG_WORK")
    read_only.clear()
    assert tree(tmp_path) == before


def test_missing_work_under_a_read_only_folder(tmp_path: Path, read_only: list[Path],
                                               capsys: pytest.CaptureFixture) -> None:
    read_only.append(tmp_path)
    work = tmp_path / "papg-work"
    code, text = run(["--work", str(work), "report", "-d", "sysu"], capsys)
    assert_clear_error(code, text, f"--work {work} is not writable (it would be created in {tmp_path})")
    read_only.clear()
    assert not work.exists()


def test_read_only_work_still_serves_reading_commands(tmp_path: Path, read_only: list[Path],
                                                      capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "papg-work"
    make_records(work / "results" / "sysu")
    (work / "datasets" / "sysu").mkdir(parents=True)
    (work / "datasets" / "sysu" / "meta.json").write_text('{"complete": true, "count": 7, "image_size": [8, 4]}')
    before = tree(work)
    read_only.append(work)
    code, text = run(["--work", str(work), "info"], capsys)
    assert code == 0, text
    assert "7 images 8x4" in text and "2 records" in text
    code, text = run(["--work", str(work), "report", "-d", "sysu", "--out", str(tmp_path / "out"), "--no-plots"],
                     capsys)
    assert code == 0, text
    assert "+ PAPG (ours)" in text
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"table.md", "table.csv", "table.tex", "report.json"}
    read_only.clear()
    assert tree(work) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a folder without write permission")
def test_real_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "papg-work"
    make_records(work / "results" / "sysu")
    work.chmod(0o555)
    try:
        code, text = run(["--work", str(work), "report", "-d", "sysu"], capsys)
        assert_clear_error(code, text, f"--work {work} is not writable")
        assert main(["--work", str(work), "info"]) == 0
    finally:
        work.chmod(0o755)


def test_info_on_a_file_used_to_look_empty(tmp_path: Path) -> None:
    work = tmp_path / "papg-work"
    work.write_text("")
    proc = subprocess.run([sys.executable, "-m", "papg_bench.cli", "--work", str(work), "info"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "(empty)" not in proc.stdout
    assert f"--work {work} is a file, not a folder" in " ".join(proc.stderr.split())


# --- failures while writing, after the workspace check passed ---


def test_report_into_a_read_only_reports_folder(work: Path, read_only: list[Path],
                                                capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    (work / "reports").mkdir()
    read_only.append(work / "reports")
    code, text = run(["report", "-d", "sysu"], capsys)
    assert_clear_error(code, text, f"cannot write {work / 'reports' / 'sysu' / 'table.md'}: Permission denied. "
                                   "Choose a writable --work or --out.")
    read_only.clear()
    assert tree(work / "reports") == set()


def test_report_out_in_a_read_only_folder(work: Path, tmp_path: Path, read_only: list[Path],
                                          capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    out = tmp_path / "published"
    out.mkdir()
    read_only.append(out)
    code, text = run(["report", "-d", "sysu", "--out", str(out)], capsys)
    assert_clear_error(code, text, f"cannot write {out / 'table.md'}: Permission denied")
    read_only.clear()
    assert tree(out) == set()


def test_report_out_under_a_file(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    (work / "reports").write_text("x")
    code, text = run(["report", "-d", "sysu"], capsys)
    assert_clear_error(code, text, f"cannot write {work / 'reports' / 'sysu' / 'table.md'}: "
                                   f"{work / 'reports'} is a file, not a folder")
    (tmp_path / "out.md").write_text("x")
    code, text = run(["report", "-d", "sysu", "--out", str(tmp_path / "out.md")], capsys)
    assert_clear_error(code, text, f"{tmp_path / 'out.md'} is a file, not a folder")
    assert (tmp_path / "out.md").read_text() == "x"


def test_report_on_a_full_disk_leaves_no_temporaries(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")
    monkeypatch.setattr(os, "fsync", full_disk)
    code, text = run(["report", "-d", "sysu", "--no-plots"], capsys)
    assert_clear_error(code, text, f"cannot write {work / 'reports' / 'sysu' / 'table.md'}: No space left on device. "
                                   "Free some space, or choose another --work or --out.")
    assert tree(work / "reports") == {"sysu"}  # the folder made for the tables, and nothing in it


def test_plot_failure_names_the_plot_not_its_temporary(tmp_path: Path, read_only: list[Path]) -> None:
    (tmp_path / "plots").mkdir()
    read_only.append(tmp_path / "plots")
    with pytest.raises(WriteError) as caught, atomic_path(tmp_path / "plots" / "cmc.png") as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"png")
    assert str(caught.value).startswith(f"cannot write {tmp_path / 'plots' / 'cmc.png'}: Permission denied")
    assert ".tmp-" not in str(caught.value)
    read_only.clear()
    assert tree(tmp_path / "plots") == set()


def test_write_inside_a_temporary_folder_is_named_by_its_final_path(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "dataset"
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(WriteError, match=f"cannot write {target / 'exp' / 'train_id.txt'}: No space left"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            atomic_write_text(tmp / "exp" / "train_id.txt", "1,2\n")
    assert tree(tmp_path) == set()


def test_record_write_failure(tmp_path: Path, read_only: list[Path]) -> None:
    read_only.append(tmp_path)
    rec = record("agw", "none", "all", [trial(0, .4, .7, .8, .35)])
    with pytest.raises(WriteError, match="cannot write .*agw__all.json: Permission denied"):
        write_record(tmp_path / "results" / "agw__all.json", rec)
    read_only.clear()
    assert tree(tmp_path) == set()


# --- stores: a full disk never leaves a half-written store or its temporary folder ---


def test_prepare_on_a_full_disk(tmp_path: Path, sysu_root: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "w"
    monkeypatch.setattr(os, "posix_fallocate", full_disk)
    code, text = run(["--work", str(work), "prepare", "-d", "sysu", "--root", str(sysu_root), "--workers", "1"],
                     capsys)
    assert_clear_error(code, text, f"cannot write {work / 'datasets' / 'sysu'}: No space left on device",
                       "Free some space")
    assert tree(work / "datasets") == set()


def test_prepare_disk_fills_mid_store_keeps_the_old_store(tmp_path: Path, sysu_root: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "w"
    argv = ["--work", str(work), "prepare", "-d", "sysu", "--root", str(sysu_root), "--workers", "1", "--force"]
    assert main(argv) == 0
    store = work / "datasets" / "sysu"
    old = {name: (store / name).read_bytes() for name in ("images.npy", "index.csv", "meta.json")}
    real_pwrite, written = os.pwrite, []

    def filling(fd: int, data: bytes, offset: int) -> int:
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(offset)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", filling)
    capsys.readouterr()
    code, text = run([*argv, "--size", "32x16"], capsys)
    assert_clear_error(code, text, f"cannot write {store}: No space left on device")
    assert len(written) == 3
    assert tree(work / "datasets") == {"sysu", *(f"sysu/{n}" for n in old)}
    assert {name: (store / name).read_bytes() for name in old} == old


def test_store_writer_failure_in_finish_removes_the_temporary(tmp_path: Path, read_only: list[Path]) -> None:
    final = tmp_path / "generated" / "sysu" / "papg"
    with pytest.raises(WriteError) as caught, StoreWriter(final, 2, 8, 4) as writer:
        writer.images[:] = 1
        read_only.append(writer.tmp)
        writer.finish({"path": ["a", "b"], "pid": [1, 2], "cam": [1, 3], "modality": ["visible", "infrared"],
                       "split": ["train", "train"]}, {})
    read_only.clear()
    assert str(caught.value).startswith(f"cannot write {final / 'index.csv'}: Permission denied")
    assert tree(final.parent) == set()


def test_store_writer_leaves_other_errors_alone(tmp_path: Path) -> None:
    final = tmp_path / "store"
    with pytest.raises(FileNotFoundError), StoreWriter(final, 1, 8, 4):
        open(tmp_path / "elsewhere" / "missing.txt").close()  # a reading bug, not a failure to write
    with pytest.raises(UserError, match="nothing to store"), StoreWriter(final, 1, 8, 4):
        raise UserError("nothing to store")
    assert tree(tmp_path) == set()


def test_replacing_a_folder_puts_the_old_one_back_on_failure(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    final, new = tmp_path / "store", tmp_path / ".store.tmp-new"
    final.mkdir()
    (final / "meta.json").write_text("old")
    new.mkdir()
    real_replace, calls = os.replace, []

    def second_fails(src, dst):  # type: ignore[no-untyped-def]
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError):
        replace_folder_or_file(new, final)
    assert (final / "meta.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".store.tmp-new", "store"]


# --- what the entry point does with errors nothing translated ---


def test_untranslated_permission_error_is_a_message(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    make_records(work / "results" / "sysu")

    def denied(*_: object, **__: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/srv/shared/cache")

    monkeypatch.setattr(report_module, "make_report", denied)
    code, text = run(["report", "-d", "sysu"], capsys)
    assert_clear_error(code, text, "cannot use /srv/shared/cache: Permission denied")


@pytest.mark.parametrize("bug", [KeyError("rank1"), FileNotFoundError(errno.ENOENT, "No such file", "x.json"),
                                 NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b")])
def test_programming_errors_keep_their_traceback(bug: Exception, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_records(work / "results" / "sysu")

    def broken(*_: object, **__: object) -> None:
        raise bug

    monkeypatch.setattr(report_module, "make_report", broken)
    with pytest.raises(type(bug)):
        main(["report", "-d", "sysu"])


def test_workspace_check_probe_leaves_nothing(tmp_path: Path) -> None:
    Workspace(tmp_path).check(writable=True)
    Workspace(tmp_path / "new" / "work").check(writable=True)
    assert tree(tmp_path) == set()


def test_checkpoint_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from papg_bench.workspace import atomic_torch_save

    real_open = builtins.open

    class FillingFile:
        """A file on a disk with room for 1000 bytes."""

        def __init__(self, fh) -> None:  # type: ignore[no-untyped-def]
            self.fh, self.written = fh, 0

        def write(self, data) -> int:  # type: ignore[no-untyped-def]
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(data)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.fh, name)

        def __enter__(self) -> FillingFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    def filling_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = real_open(file, mode, *args, **kwargs)
        return FillingFile(fh) if "w" in mode and _within(file, tmp_path) else fh

    target = tmp_path / "runs" / "agw" / "checkpoint.pt"
    monkeypatch.setattr(builtins, "open", filling_open)
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device"):
        atomic_torch_save({"weights": torch.zeros(10_000)}, target)
    monkeypatch.undo()
    assert tree(tmp_path) == {"runs", "runs/agw"}
    atomic_torch_save({"weights": torch.ones(3)}, target)
    assert torch.load(target)["weights"].tolist() == [1.0, 1.0, 1.0]


def test_info_names_folders_it_cannot_read(work: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    (work / "runs" / "sysu" / "agw-none-s0").mkdir(parents=True)
    (work / "results" / "sysu").mkdir(parents=True)
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self == work / "runs":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, text = run(["info"], capsys)
    assert code == 0, text
    assert "unreadable" in text and "Permission denied" in text and "0 records" in text
    assert "agw-none-s0" not in text
