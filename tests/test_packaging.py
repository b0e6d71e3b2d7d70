"""How the package installs and starts: `python -m`, declared dependencies, optional FAISS, pins."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import typer

import papg_bench
from papg_bench.cli import app, main
from papg_bench.errors import UserError
from papg_bench.protocols.retrieval import distance_matrix, resolve_backend
from papg_bench.runtime import faiss_status, faiss_summary

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCANNED = ("papg_bench", "tests", "benchmarks", "experiments")
# Import names that differ from their distributions' names, for when none of those is installed here.
PROVIDERS_WHEN_ABSENT = {"faiss": ["faiss-cpu", "faiss-gpu-cu12"]}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"unparsable requirement {spec!r}"
    return normalize(match.group(1))


def declared_distributions() -> set[str]:
    project = PYPROJECT["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return {requirement_name(s) for s in specs} - {"papg-bench"}


def top_level_imports(path: Path) -> set[str]:
    """Absolute imports of one file, as top-level module names (``from x.y import z`` -> ``x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def is_local(name: str, folder: Path) -> bool:
    """The project's own packages, or a helper module that sits beside the importing file."""
    return (name in ("papg_bench", "experiments") or (folder / f"{name}.py").is_file()
            or (folder / name / "__init__.py").is_file())


def undeclared_imports(files: list[Path], declared: set[str]) -> dict[str, list[str]]:
    """Third-party modules imported by ``files`` whose distribution is not in ``declared`` -> importing files."""
    providers = packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in files:
        for name in sorted(top_level_imports(path)):
            if name in sys.stdlib_module_names or is_local(name, path.parent):
                continue
            # A module not installed here (say tomli on Python >= 3.11) must be declared under its own name.
            dists = {normalize(d) for d in providers.get(name, PROVIDERS_WHEN_ABSENT.get(name, [name]))}
            if not dists & declared:
                missing.setdefault(name, []).append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
    return missing


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps the help at the terminal width
    return subprocess.run([sys.executable, "-m", "papg_bench", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_python_m_help_lists_every_command() -> None:
    proc = run_module("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: papg-bench" in proc.stdout
    commands = sorted(typer.main.get_command(app).commands)
    assert {"info", "prepare", "evaluate", "demo"} <= set(commands)
    for name in commands:
        assert re.search(rf"\b{re.escape(name)}\b", proc.stdout), f"{name} missing from --help"


def test_python_m_version_is_the_package_version() -> None:
    proc = run_module("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"papg-bench {papg_bench.__version__}"
    assert PYPROJECT["project"]["version"] == papg_bench.__version__


def test_script_and_module_share_one_entry_point() -> None:
    assert PYPROJECT["project"]["scripts"]["papg-bench"] == "papg_bench.cli:main"
    tree = ast.parse((ROOT / "papg_bench" / "__main__.py").read_text())
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("papg_bench.cli", "main") in imported


def test_every_imported_third_party_module_is_declared() -> None:
    files = sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*.py"))
    assert len(files) > 50
    assert undeclared_imports(files, declared_distributions()) == {}


def test_the_import_check_flags_what_is_not_declared(tmp_path: Path) -> None:
    source = tmp_path / "uses.py"
    source.write_text("import json\nimport numpy\nimport yaml\nfrom PIL import Image\nfrom .sibling import x\n"
                      "import not_a_real_module_xyz\n")
    missing = undeclared_imports([source], declared_distributions())
    # yaml is installed (PyYAML comes with timm) but papg-bench declares no PyYAML, so importing it is flagged
    assert sorted(missing) == ["not_a_real_module_xyz", "yaml"]
    assert undeclared_imports([source], declared_distributions() | {"pyyaml", "not-a-real-module-xyz"}) == {}


def test_build_requirement_supports_an_spdx_license() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"  # a PEP 639 string needs setuptools >= 77
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if requirement_name(r) == "setuptools"]
    floor = re.search(r">=\s*(\d+)", setuptools)
    assert floor and int(floor.group(1)) >= 77


def test_faiss_is_an_extra_not_a_dependency() -> None:
    project = PYPROJECT["project"]
    core = {requirement_name(s) for s in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert not {n for n in core if n.startswith("faiss")}
    assert {requirement_name(s) for s in extras["faiss"]} == {"faiss-cpu"}
    assert {requirement_name(s) for s in extras["faiss-gpu"]} == {"faiss-gpu-cu12"}
    assert extras["gpu"] == extras["faiss-gpu"]


def test_makefile_installs_declared_extras_including_faiss() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installed = re.findall(r'-e "\.\[([^\]]*)\]"', makefile)
    assert installed, "no editable install line in the Makefile"
    for group in installed:
        extras = {e.strip() for e in group.split(",")}
        assert extras <= set(PYPROJECT["project"]["optional-dependencies"])
        assert {"dev", "faiss"} <= extras
    assert re.search(r"^TORCH_INDEX \?=\s*$", makefile, re.M)


def test_constraints_pin_torch_pair_and_no_cuda_stack() -> None:
    lines = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins = dict(ln.split("==", 1) for ln in lines if ln and not ln.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    forced = [n for n in pins if re.match(r"(nvidia|cuda)[-_]|triton$", n, re.I)]
    assert forced == []  # torch brings its own CUDA wheels; pinning them forces them onto CPU-only installs


@pytest.fixture
def no_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError


@pytest.mark.parametrize(("backend", "extra"), [("faiss", "faiss"), ("faiss-cpu", "faiss"),
                                                 ("faiss-gpu", "faiss-gpu")])
def test_faiss_backend_without_faiss_names_option_and_fix(no_faiss: None, backend: str, extra: str) -> None:
    with pytest.raises(UserError) as caught:
        resolve_backend(backend)
    message = str(caught.value)
    assert message.startswith(f"--backend {backend} needs FAISS")
    assert f"pip install 'papg-bench[{extra}]'" in message
    assert "\n" not in message


def test_auto_backend_works_without_faiss(no_faiss: None) -> None:
    assert resolve_backend("auto") == "torch"
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((5, 8)), rng.standard_normal((7, 8))
    np.testing.assert_array_equal(distance_matrix(q, g, backend="auto", device="cpu"),
                                  distance_matrix(q, g, backend="torch", device="cpu"))
    assert faiss_status() == {"installed": False, "version": None, "gpu": False}
    assert "pip install 'papg-bench[faiss]'" in faiss_summary()


def test_evaluate_cli_without_faiss(no_faiss: None, tmp_path: Path, work: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from papg_bench.data.fixtures import make_regdb_tree
    from papg_bench.data.regdb import read_list
    from papg_bench.results.records import read_record

    root = make_regdb_tree(tmp_path / "RegDB", ids=6, images_per_modality=2, trials=1, size=(16, 8))
    entries = read_list(root / "idx" / "test_visible_1.txt") + read_list(root / "idx" / "test_thermal_1.txt")
    pids = sorted({int(p.split("/")[1]) for p, _ in entries})
    feats = np.stack([np.eye(len(pids), dtype=np.float32)[pids.index(int(p.split("/")[1]))] for p, _ in entries])
    np.savez(tmp_path / "f.npz", features=feats, paths=np.array([p for p, _ in entries]))
    args = ["evaluate", "-d", "regdb", "--features", str(tmp_path / "f.npz"), "--root", str(root), "--trials", "1",
            "--mode", "v2t", "--out", str(tmp_path / "out")]

    assert main([*args, "--backend", "faiss-cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "--backend faiss-cpu needs FAISS" in err and "pip install 'papg-bench[faiss]'" in err

    assert main([*args, "--backend", "auto"]) == 0
    (record_path,) = sorted((tmp_path / "out").glob("*.json"))
    record = read_record(record_path)
    assert record["backend"] == "torch" and record["summary"]["rank1"]["mean"] == 1.0
