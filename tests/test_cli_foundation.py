"""The CLI skeleton, settings layering and workspace helpers."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from papg_bench.cli import main
from papg_bench.config import Settings, make_config
from papg_bench.errors import UserError
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json


def test_help_and_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "prepare" in text and "info" in text
    assert main(["--version"]) == 0
    assert "papg-bench 0.1.0" in capsys.readouterr().out


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "papg_bench.cli", "--work", str(tmp_path), "prepare", "--dataset", "sysu",
         "--root", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing" in proc.stderr and "not a folder" in proc.stderr


@pytest.mark.parametrize("argv, names", [
    (["info", "--bogus"], "--bogus"),
    (["--threads", "0", "info"], "--threads"),
    (["prepare"], "--dataset"),
])
def test_usage_errors_are_one_message_and_status_2(argv: list[str], names: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "papg_bench.cli", "--work", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and names in proc.stderr


def test_threads_option_sets_torch_threads_and_is_recorded(tmp_path: Path) -> None:
    code = ("import torch; from papg_bench.cli import main; from papg_bench.workspace import provenance; "
            f"main(['--work', {str(tmp_path)!r}, '--threads', '1', 'info']); print('THREADS', torch.get_num_threads(), "
            "provenance()['numerics']['threads'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert "THREADS 1 1" in proc.stdout


def test_info_shows_versions_and_workspace(work: Path, capsys: pytest.CaptureFixture) -> None:
    (work / "datasets" / "sysu").mkdir(parents=True)
    (work / "datasets" / "sysu" / "meta.json").write_text('{"complete": true, "count": 7, "image_size": [8, 4]}')
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "torch" in text and "faiss" in text and "cuDNN" in text
    assert "7 images 8x4" in text


def test_bad_size_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["--work", str(tmp_path), "prepare", "--dataset", "sysu", "--root", str(tmp_path), "--size", "big"])
    assert code == 2
    assert "--size 'big' is not HxW" in capsys.readouterr().err


def test_error_messages_print_brackets_literally(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    work = tmp_path / "[bold]w"  # rich would take this for markup and drop it
    work.write_text("")
    assert main(["--work", str(work), "info"]) == 2
    assert f"--work {work} is a file" in " ".join(capsys.readouterr().err.split())


def test_workspace_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PAPG_WORK", raising=False)
    assert Workspace.resolve().root == Path("papg-work")
    monkeypatch.setenv("PAPG_WORK", str(tmp_path))
    ws = Workspace.resolve()
    assert ws.dataset_dir("sysu") == tmp_path / "datasets" / "sysu"
    assert Workspace.resolve(tmp_path / "x").run_dir("sysu", "agw") == tmp_path / "x" / "runs" / "sysu" / "agw"


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@dataclass(frozen=True)
class _Demo(Settings):
    PRESETS = {"tiny": {"epochs": 2, "size": (32, 16)}}
    SECTION = "demo"
    epochs: int = 80
    lr: float = 0.1
    size: tuple[int, int] = (288, 144)
    flip: bool = True


def test_make_config_layers(tmp_path: Path) -> None:
    assert make_config(_Demo).epochs == 80
    tiny = make_config(_Demo, "tiny")
    assert (tiny.epochs, tiny.size) == (2, (32, 16))
    toml = tmp_path / "c.toml"
    toml.write_text("[demo]\nlr = 1\nsize = [64, 32]\n")
    cfg = make_config(_Demo, "tiny", toml, {"epochs": 5, "flip": None})
    assert (cfg.epochs, cfg.lr, cfg.size, cfg.flip) == (5, 1.0, (64, 32), True)
    assert isinstance(cfg.lr, float)
    with pytest.raises(UserError, match="unknown setting 'momentum'"):
        make_config(_Demo, overrides={"momentum": 0.9})
    with pytest.raises(UserError, match="--preset 'huge'"):
        make_config(_Demo, "huge")
    toml.write_text("[demo]\nflip = 3\n")
    with pytest.raises(UserError, match="must be true or false"):
        make_config(_Demo, config_file=toml)
    with pytest.raises(UserError, match="does not exist"):
        make_config(_Demo, config_file=tmp_path / "none.toml")
