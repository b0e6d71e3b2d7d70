"""``import-generated``: another generator's images, in the released PAPG, camera-folder or paired layout, as a
named generated set: every file matched to its source row, nothing written on an unmatched, ambiguous,
leaking or corrupt file."""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from papg_bench.catalog import dataset_names
from papg_bench.cli import main
from papg_bench.data.fixtures import make_llcm_tree, make_regdb_tree, make_sysu_tree
from papg_bench.data.layouts import read_layout
from papg_bench.data.prepare import load_resized, prepare_store
from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.generators.imported_sets import import_generated
from papg_bench.generators.pairing import training_rows
from papg_bench.generators.sets import manifest_sha256, read_manifest
from papg_bench.workspace import Workspace, sha256_file

SIZE = (32, 16)
TREES = {"sysu": make_sysu_tree, "regdb": make_regdb_tree, "llcm": make_llcm_tree}


def _workspace(base: Path, dataset: str = "sysu") -> Workspace:
    root = TREES[dataset](base / f"src-{dataset}", size=SIZE)
    ws = Workspace(base / "work")
    prepare_store(read_layout(dataset, root), root, ws.dataset_dir(dataset), SIZE, workers=1)
    return ws


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return _workspace(tmp_path_factory.mktemp("import"))


def _store(ws: Workspace, dataset: str = "sysu") -> Store:
    return open_store(ws.dataset_dir(dataset))


def _fake(store: Store, row: int, scale: int = 2) -> Image.Image:
    """A recognisable 'generated' image of row ``row``, at ``scale`` times the store's size."""
    pixels = 255 - np.asarray(store.images[row])
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def _released_name(path: str) -> str:
    """The released test.py's file name for a source image: its name up to the first dot, then '_.png'."""
    pure = PurePosixPath(path)
    return str(pure.parent / (pure.name.split(".")[0] + "_.png"))


def write_released_layout(store: Store, out: Path, flat: bool = False, rows: np.ndarray | None = None) -> list[int]:
    """``out/A`` (fake visible from infrared) and ``out/B`` (fake infrared from visible) in the released naming."""
    rows = training_rows(store) if rows is None else rows
    for row in rows.tolist():
        folder = "A" if store.modalities[row] == "I" else "B"
        name = _released_name(store.paths[row])
        target = out / folder / (PurePosixPath(name).name if flat else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        _fake(store, row).save(target)
    return rows.tolist()


def _no_set(ws: Workspace, dataset: str, name: str) -> None:
    folder = ws.root / "generated" / dataset
    assert not (folder / name).exists()
    assert not folder.exists() or not [p for p in folder.iterdir() if p.name.startswith(f".{name}.")]


def test_released_papg_layout_is_matched_row_by_row_with_its_manifest(ws: Workspace, tmp_path: Path) -> None:
    store = _store(ws)
    rows = write_released_layout(store, tmp_path / "output")
    result = import_generated(ws, "sysu", tmp_path / "output", "papg", "papg-released")
    assert result.status == "done" and result.count == len(rows)
    generated = open_store(result.path)
    source = generated.columns["source_row"]
    assert sorted(source.tolist()) == sorted(rows)
    directions = generated.columns["direction"]
    assert ((directions == "I2V") == (store.modalities[source] == "I")).all()
    assert (generated.modalities != store.modalities[source]).all()  # the target modality
    assert (generated.pids == store.pids[source]).all()
    for k in (0, len(generated) - 1):
        file = tmp_path / "output" / generated.columns["imported_from"][k]
        assert file.name == PurePosixPath(store.paths[source[k]]).name.split(".")[0] + "_.png"
        assert np.array_equal(generated.images[k], load_resized(file, *SIZE))  # the store's own resizing

    manifest = read_manifest(result.path)
    assert manifest == result.manifest
    assert manifest["name"] == "papg-released" and manifest["display"] == "papg-released (imported)"
    assert manifest["dataset"] == "sysu"
    origin = manifest["origin"]
    assert origin["kind"] == "import" and origin["layout"] == "papg" and origin["files"] == len(rows)
    assert origin["folder"] == str((tmp_path / "output").resolve()) and len(origin["files_sha256"]) == 64
    assert manifest["rows"]["count"] == len(rows)
    assert manifest["rows"]["directions"] == {"V2I": int((directions == "V2I").sum()),
                                              "I2V": int((directions == "I2V").sum())}
    assert manifest["rows"]["index_sha256"] == sha256_file(result.path / "index.csv")
    assert manifest["source"]["checksum"] == store.meta["content_checksum"]
    assert manifest["sha256"] == manifest_sha256(manifest)

    again = import_generated(ws, "sysu", tmp_path / "output", "papg", "papg-released", display="PAPG (released)")
    assert again.status == "reused" and again.manifest["display"] == "PAPG (released)"
    assert again.manifest["sha256"] == manifest["sha256"]  # a display name is not part of what the set is
    _fake(store, rows[0], scale=3).save(tmp_path / "output" / generated.columns["imported_from"][
        list(source).index(rows[0])])
    changed = import_generated(ws, "sysu", tmp_path / "output", "papg", "papg-released")
    assert changed.status == "done" and changed.manifest["origin"]["files_sha256"] != origin["files_sha256"]


def test_flat_released_names_match_when_unique_and_are_ambiguous_otherwise(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture) -> None:
    regdb = _workspace(tmp_path / "r", "regdb")
    store = _store(regdb, "regdb")
    rows = write_released_layout(store, tmp_path / "flat-regdb", flat=True, rows=training_rows(store, 1))
    result = import_generated(regdb, "regdb", tmp_path / "flat-regdb", "papg", "flat", trial=1)
    assert sorted(open_store(result.path).columns["source_row"].tolist()) == sorted(rows)

    sysu = _workspace(tmp_path / "s")
    write_released_layout(_store(sysu), tmp_path / "flat-sysu", flat=True)  # 0001_.png in every camera
    code = main(["--work", str(sysu.root), "import-generated", "--dataset", "sysu", "--from",
                 str(tmp_path / "flat-sysu"), "--layout", "papg", "--name", "flat"])
    err = capsys.readouterr().err
    assert code == 2 and "match several source images" in err and "--mapping" in err
    assert err.count("error:") == 1 and "Traceback" not in err
    _no_set(sysu, "sysu", "flat")


def test_unmatched_file_stops_the_import_with_nothing_written(ws: Workspace, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    store = _store(ws)
    write_released_layout(store, tmp_path / "output")
    (tmp_path / "output" / "B" / "cam1" / "0099").mkdir(parents=True)
    _fake(store, 0).save(tmp_path / "output" / "B" / "cam1" / "0099" / "0001_.png")
    (tmp_path / "output" / "B" / "cam3" / "0001").mkdir(parents=True)
    _fake(store, 0).save(tmp_path / "output" / "B" / "cam3" / "0001" / "0001_.png")  # an infrared name in B/
    code = main(["--work", str(ws.root), "import-generated", "--dataset", "sysu", "--from",
                 str(tmp_path / "output"), "--layout", "papg", "--name", "partial"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1
    assert "2 image(s) match no source image" in err
    assert "B/cam1/0099/0001_.png" in err and "B/cam3/0001/0001_.png" in err and "Nothing was imported" in err
    _no_set(ws, "sysu", "partial")


def test_images_of_test_identities_are_refused(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = _store(ws)
    test_row = int(np.flatnonzero(store.in_split("test") & (store.modalities == "I"))[0])
    write_released_layout(store, tmp_path / "output", rows=np.concatenate([training_rows(store)[:4], [test_row]]))
    code = main(["--work", str(ws.root), "import-generated", "--dataset", "sysu", "--from",
                 str(tmp_path / "output"), "--layout", "papg", "--name", "leak"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "test identity" in err
    assert _released_name(store.paths[test_row]) in err
    _no_set(ws, "sysu", "leak")


def test_a_corrupt_png_stops_the_import_naming_it(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = _store(ws)
    rows = write_released_layout(store, tmp_path / "output")
    visible = [r for r in rows if store.modalities[r] == "V"]
    broken = tmp_path / "output" / "B" / _released_name(store.paths[visible[-1]])
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["--work", str(ws.root), "import-generated", "--dataset", "sysu", "--from",
                 str(tmp_path / "output"), "--layout", "papg", "--name", "corrupt"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "cannot be read as an image" in err and broken.name in err
    _no_set(ws, "sysu", "corrupt")


@pytest.mark.parametrize("dataset", dataset_names())
def test_camera_folder_layout_of_every_dataset(dataset: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ws = _workspace(tmp_path, dataset)
    store = _store(ws, dataset)
    rows = training_rows(store)
    folder = tmp_path / "dive"
    for row in rows.tolist():
        target = (folder / store.paths[row]).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        _fake(store, row, scale=1).save(target)
    assert main(["--work", str(ws.root), "import-generated", "--dataset", dataset, "--from", str(folder),
                 "--layout", "camfolders", "--name", "dive", "--display", "DiVE (imported)"]) == 0
    assert "--augment gen:dive" in capsys.readouterr().out
    generated = open_store(ws.generated_dir(dataset, "dive"))
    source = generated.columns["source_row"]
    assert sorted(source.tolist()) == sorted(rows.tolist())
    assert ((generated.columns["direction"] == "V2I") == (store.modalities[source] == "V")).all()
    k = len(generated) // 2
    assert np.array_equal(generated.images[k], 255 - np.asarray(store.images[source[k]]))
    assert read_manifest(generated.path)["display"] == "DiVE (imported)"


def _write_mapping(path: Path, lines: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["generated_path", "source_path"])
        writer.writerows(lines)
    return path


def test_camera_folders_with_a_mapping_file(ws: Workspace, tmp_path: Path) -> None:
    store = _store(ws)
    rows = training_rows(store)[:6]
    folder = tmp_path / "diffusion"
    lines = []
    for k, row in enumerate(rows.tolist()):  # written into the other modality's camera, under new names
        rel = f"cam{6 if store.modalities[row] == 'V' else 1}/{int(store.pids[row]):04d}/sample_{k:03d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        _fake(store, row).save(folder / rel)
        lines.append((rel, store.paths[row]))
    _write_mapping(folder / "mapping.csv", lines)  # found without --mapping
    result = import_generated(ws, "sysu", folder, "camfolders", "diffusion")
    generated = open_store(result.path)
    assert dict(zip(generated.columns["imported_from"], generated.columns["source_row"].tolist(), strict=True)) == {
        rel: int(store.row_of_path()[src]) for rel, src in lines}
    assert result.manifest["origin"]["mapping_sha256"] == sha256_file(folder / "mapping.csv")


def test_paired_layout_needs_a_mapping_that_names_every_image(ws: Workspace, tmp_path: Path) -> None:
    store = _store(ws)
    rows = training_rows(store)[:8]
    folder = tmp_path / "cyclegan"
    lines = []
    for k, row in enumerate(rows.tolist()):
        rel = f"{'trainB' if store.modalities[row] == 'V' else 'trainA'}/{k:04d}_fake.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        _fake(store, row).save(folder / rel)
        lines.append((rel, store.paths[row]))
    with pytest.raises(UserError, match="needs a mapping file"):
        import_generated(ws, "sysu", folder, "paired", "cyclegan")
    mapping = _write_mapping(tmp_path / "pairs.csv", lines[:-1])
    with pytest.raises(UserError, match=r"1 image\(s\) are not in the mapping.*" + lines[-1][0]):
        import_generated(ws, "sysu", folder, "paired", "cyclegan", mapping=mapping)
    _write_mapping(mapping, [*lines[:-1], (lines[-1][0], "cam1/0999/0001.jpg")])
    with pytest.raises(UserError, match="are not images of"):
        import_generated(ws, "sysu", folder, "paired", "cyclegan", mapping=mapping)
    _no_set(ws, "sysu", "cyclegan")
    _write_mapping(mapping, lines)
    result = import_generated(ws, "sysu", folder, "paired", "cyclegan", mapping=mapping)
    assert result.count == len(rows) and result.manifest["origin"]["layout"] == "paired"


def test_an_import_does_not_replace_a_set_of_another_origin(ws: Workspace, tmp_path: Path) -> None:
    from reid_helpers import write_generated_store

    write_generated_store(ws, "sysu", run="handmade")
    write_released_layout(_store(ws), tmp_path / "output", rows=training_rows(_store(ws))[:4])
    with pytest.raises(UserError, match="another origin"):
        import_generated(ws, "sysu", tmp_path / "output", "papg", "handmade")
    assert import_generated(ws, "sysu", tmp_path / "output", "papg", "handmade", force=True).count == 4


def test_score_works_on_an_imported_set(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_released_layout(_store(ws), tmp_path / "output")
    assert main(["--work", str(ws.root), "import-generated", "--dataset", "sysu", "--from", str(tmp_path / "output"),
                 "--layout", "papg", "--name", "scored", "--score"]) == 0
    manifest = json.loads((ws.generated_dir("sysu", "scored") / "manifest.json").read_text())
    assert set(manifest["quality"]["modality_gap"]) == {"V2I", "I2V"}
    assert manifest["sha256"] == manifest_sha256(manifest)


def test_bad_options_are_one_error(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--layout 'dive'"):
        import_generated(ws, "sysu", tmp_path, "dive", "x")
    with pytest.raises(UserError, match="--name 'a/b'"):
        import_generated(ws, "sysu", tmp_path, "papg", "a/b")
    with pytest.raises(UserError, match="no A/ or B/ folder"):
        import_generated(ws, "sysu", tmp_path, "papg", "x")


def test_generate_png_output_imports_back_to_the_same_images(ws: Workspace, tmp_path: Path) -> None:
    from reid_helpers import write_generated_store

    from papg_bench.generators.synthesis import write_pngs

    generated = open_store(write_generated_store(ws, "sysu", run="made-here"))
    write_pngs(generated, tmp_path / "png")  # A/<source path>.png, B/<source path>.png
    result = import_generated(ws, "sysu", tmp_path / "png", "papg", "round-trip")
    back = open_store(result.path)
    order = {int(r): k for k, r in enumerate(generated.columns["source_row"])}
    assert len(back) == len(generated)
    for k in range(len(back)):
        original = order[int(back.columns["source_row"][k])]
        assert back.columns["direction"][k] == generated.columns["direction"][original]
        assert np.array_equal(back.images[k], generated.images[original])  # PNG is lossless, same size
