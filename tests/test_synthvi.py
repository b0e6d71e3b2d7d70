"""synthvi: layouts that the project's readers and `prepare` accept, ground truth, determinism, the CLI,
and the learnability check (the modality gap is real and learnable)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthvi_helpers import check_seed_determinism, tree

from experiments.synthvi_learnability import read_rgb
from papg_bench.cli import main
from papg_bench.data import synthvi
from papg_bench.data.prepare import prepare_store
from papg_bench.data.regdb import read_list, read_regdb
from papg_bench.data.store import open_store
from papg_bench.data.synthvi import KEYPOINTS_HEADER, ensure_synthvi, read_keypoints, read_meta, synthesize
from papg_bench.data.synthvi_body import GARMENT_COLOURS
from papg_bench.data.synthvi_materials import garment_nir
from papg_bench.data.sysu import read_sysu
from papg_bench.errors import UserError

SYNTHVI_1_SYSU_DIGEST = "f56bac552266b0aa1aaabf118b97ec1cac8c2006cdd8f7d27f948e26c5f09260"
SYNTHVI_1_REGDB_DIGEST = "f4a0a4c829de25260f2d8fa876f35087754ee33a8dea53234e8f70cb1f67003f"


@pytest.fixture(scope="module")
def sysu_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synthvi") / "sysu", "sysu", preset="tiny", seed=0, workers=2).root


def test_sysu_layout_passes_reader_with_ground_truth(sysu_tiny: Path) -> None:
    listing = read_sysu(sysu_tiny)
    meta = read_meta(sysu_tiny)
    assert meta is not None and meta["complete"] and meta["images"] == len(listing.records)
    assert listing.info["split_ids"] == meta["split_ids"]
    by_split: dict[str, set[int]] = {"train": set(), "val": set(), "test": set()}
    for r in listing.records:
        by_split[r.split].add(r.pid)
    assert all(by_split.values()) and not (by_split["test"] & (by_split["train"] | by_split["val"]))
    for pid in by_split["test"]:  # every test identity can be queried (IR) and found (RGB)
        cams = {r.cam for r in listing.records if r.pid == pid}
        assert cams & {3, 6} and cams & {1, 2, 4, 5}
    points = read_keypoints(sysu_tiny / "synthvi" / "keypoints.csv")
    assert (sysu_tiny / "synthvi" / "keypoints.csv").read_text().splitlines()[0] == KEYPOINTS_HEADER
    assert set(points) == {r.path for r in listing.records}
    h, w = meta["image_size"]
    seen = np.zeros(18, dtype=int)
    for r in listing.records[::7]:
        img, twin = read_rgb(sysu_tiny / r.path), read_rgb(sysu_tiny / "synthvi" / "counterparts" / r.path)
        assert img.shape == twin.shape == (h, w, 3)
        grey, colour = (twin, img) if r.modality == "V" else (img, twin)
        assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
        assert not np.array_equal(colour[..., 0], colour[..., 2])
        kp = points[r.path]
        inside = kp[:, 0] >= 0
        assert np.all((kp[inside, 0] < w) & (kp[inside, 1] >= 0) & (kp[inside, 1] < h))
        assert np.all(kp[~inside] == -1)
        seen += inside
    assert seen[1] > 0 and seen[0] < seen[1]  # necks always, noses only when the face is turned to us


def test_sysu_layout_goes_through_prepare(sysu_tiny: Path, tmp_path: Path) -> None:
    listing = read_sysu(sysu_tiny)
    result = prepare_store(listing, sysu_tiny, tmp_path / "store", size=(64, 32), workers=1)
    store = open_store(result.path)
    assert len(store) == len(listing.records)
    assert set(store.modalities) == {"V", "I"} and store.in_split("test").sum() > 0


def test_regdb_layout_lists_pairs_and_prepare(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "regdb", "regdb", preset="tiny", ids=6, seed=3, workers=1).root
    listing = read_regdb(root)
    assert listing.info["trials"] == list(range(1, 11))
    for pid in range(1, 7):
        assert len(list((root / "Visible" / str(pid)).iterdir())) == 10
        assert len(list((root / "Thermal" / str(pid)).iterdir())) == 10
    splits = set()
    for trial in range(1, 11):
        train = read_list(root / "idx" / f"train_visible_{trial}.txt")
        test = read_list(root / "idx" / f"test_thermal_{trial}.txt")
        train_ids = sorted({int(p.split("/")[1]) for p, _ in train})
        test_ids = sorted({int(p.split("/")[1]) for p, _ in test})
        assert len(train_ids) == len(test_ids) == 3 and not set(train_ids) & set(test_ids)
        assert all(label == train_ids.index(int(p.split("/")[1])) for p, label in train)
        splits.add(tuple(train_ids))
    assert len(splits) > 1  # a random split per trial
    points = read_keypoints(root / "synthvi" / "keypoints.csv")
    visible = sorted(p for p in points if p.startswith("Visible/2/"))
    thermal = sorted(p for p in points if p.startswith("Thermal/2/"))
    assert all(np.array_equal(points[v], points[t]) for v, t in zip(visible, thermal, strict=True))  # co-captured
    store = open_store(prepare_store(listing, root, tmp_path / "store", size=(64, 32), workers=1).path)
    assert store.in_split("train", 1).sum() == store.in_split("test", 1).sum() == 60


def test_same_seed_byte_identical_whatever_the_workers(tmp_path: Path) -> None:
    check_seed_determinism(tmp_path, "sysu", seed=7)


def _digest(root: Path) -> str:
    """sha256 over every written file but meta.json (which records the version and parameters)."""
    h = hashlib.sha256()
    for name, data in tree(root).items():
        if not name.endswith("meta.json"):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def test_material_dye_response_reproduces_synthvi_1_byte_for_byte(tmp_path: Path) -> None:
    # digests of synthvi version 1's output (whose only response was material-dye), so that every
    # figure measured on it can be reproduced with --infrared material-dye
    sysu = synthesize(tmp_path / "s", "sysu", preset="tiny", ids=4, seed=0, workers=1, infrared="material-dye").root
    regdb = synthesize(tmp_path / "r", "regdb", preset="tiny", ids=2, seed=0, workers=1, infrared="material-dye").root
    assert _digest(sysu) == SYNTHVI_1_SYSU_DIGEST
    assert _digest(regdb) == SYNTHVI_1_REGDB_DIGEST
    assert read_meta(sysu)["infrared"] == "material-dye" and read_meta(sysu)["version"] == synthvi.VERSION


def test_infrared_response_changes_only_the_near_infrared_garments(tmp_path: Path) -> None:
    default = tree(synthesize(tmp_path / "p", "sysu", preset="tiny", ids=4, seed=0, workers=1).root)
    hard = tree(synthesize(tmp_path / "m", "sysu", preset="tiny", ids=4, seed=0, workers=1,
                           infrared="material-dye").root)
    assert default.keys() == hard.keys()
    visible = [n for n in default if n.startswith(("cam1/", "cam2/", "cam4/", "cam5/"))]
    infrared = [n for n in default if n.startswith(("cam3/", "cam6/"))]
    assert visible and infrared
    assert all(default[n] == hard[n] for n in visible)
    assert all(default[n] != hard[n] for n in infrared)
    assert default["synthvi/keypoints.csv"] == hard["synthvi/keypoints.csv"]


def test_projection_response_keeps_the_dye_order_material_dye_scrambles_it() -> None:
    def luma(rgb: tuple[int, int, int]) -> float:
        return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]

    def spearman(a: list[float], b: list[float]) -> float:
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return float(np.corrcoef(ra, rb)[0, 1])

    dyes = list(GARMENT_COLOURS)
    lumas = [luma(c) for c in dyes]
    for material in ("cotton", "denim", "wool"):
        projection = [garment_nir("projection", material, c) for c in dyes]
        hard = [garment_nir("material-dye", material, c) for c in dyes]
        assert spearman(projection, lumas) > 0.9 and abs(spearman(hard, lumas)) < 0.5
    # one colour, several materials: only material-dye lets the material decide
    spread = {r: np.ptp([garment_nir(r, m, (180, 30, 35)) for m in ("cotton", "synthetic", "wool", "denim")])
              for r in ("projection", "material-dye")}
    assert spread["material-dye"] > 0.3 and spread["projection"] < 0.1


def test_ensure_renders_once_and_interrupted_render_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "demo"
    root = ensure_synthvi(out, "regdb", "tiny", 1)
    stamp = (root / "synthvi" / "meta.json").stat().st_mtime_ns
    assert ensure_synthvi(out, "regdb", "tiny", 1) == root
    assert (root / "synthvi" / "meta.json").stat().st_mtime_ns == stamp

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthvi, "_render_all", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthvi(tmp_path / "other", "regdb", "tiny", 1)
    with pytest.raises(KeyboardInterrupt):  # different parameters: must re-render, old output stays
        ensure_synthvi(out, "regdb", "tiny", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert read_meta(out)["params"]["seed"] == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"layout": "market"}, "--layout"),
        ({"layout": "sysu", "preset": "huge"}, "--preset"),
        ({"layout": "sysu", "ids": 2}, "--ids"),
        ({"layout": "regdb", "seed": -1}, "--seed"),
        ({"layout": "sysu", "infrared": "thermal"}, "--infrared"),
    ],
)
def test_bad_options_raise_user_errors(tmp_path: Path, kwargs: dict, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        synthesize(tmp_path / "x", **kwargs)


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not a synthvi output"):
        synthesize(tmp_path / "data", "regdb", preset="tiny", ids=2)
    assert (tmp_path / "data" / "thesis.tex").read_text() == "precious"


def test_cli_synth_with_preview(tmp_path: Path) -> None:
    preview = tmp_path / "preview.png"
    args = ["synth", "--layout", "sysu", "--out", str(tmp_path / "s"), "--preset", "tiny", "--ids", "4",
            "--size", "48x24", "--workers", "1", "--preview", str(preview)]
    assert main(args) == 0
    assert read_meta(tmp_path / "s")["image_size"] == [48, 24]
    with Image.open(preview) as img:
        assert img.width > 7 * 24 and img.height > 100
    assert main(["synth", "--layout", "sysu", "--out", str(tmp_path / "t"), "--size", "big"]) == 2
    assert main(["synth", "--layout", "sysu", "--out", str(tmp_path / "t"), "--infrared", "thermal"]) == 2
    assert main(["demo", "--infrared", "thermal"]) == 2
    assert not (tmp_path / "t").exists()
    assert main(args[:-2] + ["--preview", str(tmp_path / "preview.jpg")]) == 2


@pytest.mark.slow
def test_modality_gap_is_real_and_learnable(sysu_tiny: Path) -> None:
    """Raw-pixel retrieval is exact arithmetic on fixed renders; the learned translation is judged by its
    pixel error, which moves by under 0.002 between thread counts and stays at or below 0.50 of the grey
    baseline's over seeds 0-2 (docs/reproducibility.md): the bound of 0.75 is several times that spread."""
    from experiments.synthvi_learnability import learnability

    r = learnability(sysu_tiny, steps=600, seed=0)
    chance = r["chance_infrared_to_visible"]
    within = min(r["visible_to_visible"], r["infrared_to_infrared"])
    assert within > 3 * chance
    assert r["infrared_to_visible"] < within / 2  # the modality gap is real
    assert r["translated_l1"] < 0.75 * r["grey_l1"]  # and learnable
