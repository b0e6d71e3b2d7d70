"""LLCM: the reader, the query/gallery of both modes, the same-identity-same-camera removal and eval_llcm."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from metrics_helpers import RankedCase

from papg_bench.data.fixtures import make_llcm_tree
from papg_bench.data.llcm import INFRARED_CAMERAS, VISIBLE_CAMERAS, read_llcm
from papg_bench.errors import UserError
from papg_bench.protocols import llcm
from papg_bench.protocols.metrics import evaluate

# --- a hand-made test tree ------------------------------------------------------------------------------------

# (top folder, camera, id) -> file names; written in an order the protocol must not rely on.
FOLDERS = {
    ("test_vis", 1, 2): ["0002_c01_s2_f0300_vis.jpg", "0002_c01_s1_f0100_vis.jpg", "0002_c01_s1_f0200_vis.jpg"],
    ("test_vis", 4, 2): ["0002_c04_s1_f0060_vis.jpg", "0002_c04_s1_f0050_vis.jpg"],
    ("test_vis", 2, 11): ["0011_c02_s3_f0002_vis.jpg", "0011_c02_s3_f0001_vis.jpg"],
    ("test_vis", 9, 11): ["0011_c09_s4_f0009_vis.jpg", "0011_c09_s4_f0007_vis.jpg", "0011_c09_s4_f0008_vis.jpg"],
    ("test_vis", 1, 7): ["0007_c01_s9_f0001_vis.jpg"],  # not a test id
    ("test_nir", 1, 2): ["0002_c01_s5_f0020_nir.jpg", "0002_c01_s5_f0010_nir.jpg"],
    ("test_nir", 5, 2): ["0002_c05_s6_f0030_nir.jpg"],
    ("test_nir", 2, 11): ["0011_c02_s7_f0060_nir.jpg", "0011_c02_s7_f0040_nir.jpg", "0011_c02_s7_f0050_nir.jpg"],
    ("test_nir", 8, 11): ["0011_c08_s8_f0080_nir.jpg", "0011_c08_s8_f0070_nir.jpg"],
    ("test_nir", 9, 11): [],  # an empty folder draws nothing
}
TRAIN_VIS = ["vis/0001/0001_c03_s1_f0001_vis.jpg 0", "vis/0004/0004_c07_s1_f0001_vis.jpg 1"]
TRAIN_NIR = ["nir/0001/0001_c06_s1_f0001_nir.jpg 0", "nir/0004/0004_c09_s1_f0001_nir.jpg 1"]


def _tree(root: Path, test_ids: str = "11,2") -> Path:
    """Empty files: the protocol lists folders and never opens an image."""
    for (top, cam, pid), names in FOLDERS.items():
        folder = root / top / f"cam{cam}" / f"{pid:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).touch()
    for line in TRAIN_VIS + TRAIN_NIR:
        path = root / line.split()[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (root / "idx").mkdir(parents=True, exist_ok=True)
    (root / "idx" / "train_vis.txt").write_text("\n".join(TRAIN_VIS) + "\n")
    (root / "idx" / "train_nir.txt").write_text("\n".join(TRAIN_NIR) + "\n")
    (root / "idx" / "test_id.txt").write_text(test_ids + "\n")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _tree(tmp_path / "LLCM")


ALL_NIR = [
    "test_nir/cam1/0002/0002_c01_s5_f0010_nir.jpg", "test_nir/cam1/0002/0002_c01_s5_f0020_nir.jpg",
    "test_nir/cam5/0002/0002_c05_s6_f0030_nir.jpg",
    "test_nir/cam2/0011/0011_c02_s7_f0040_nir.jpg", "test_nir/cam2/0011/0011_c02_s7_f0050_nir.jpg",
    "test_nir/cam2/0011/0011_c02_s7_f0060_nir.jpg",
    "test_nir/cam8/0011/0011_c08_s8_f0070_nir.jpg", "test_nir/cam8/0011/0011_c08_s8_f0080_nir.jpg",
]
ALL_VIS = [
    "test_vis/cam1/0002/0002_c01_s1_f0100_vis.jpg", "test_vis/cam1/0002/0002_c01_s1_f0200_vis.jpg",
    "test_vis/cam1/0002/0002_c01_s2_f0300_vis.jpg",
    "test_vis/cam4/0002/0002_c04_s1_f0050_vis.jpg", "test_vis/cam4/0002/0002_c04_s1_f0060_vis.jpg",
    "test_vis/cam2/0011/0011_c02_s3_f0001_vis.jpg", "test_vis/cam2/0011/0011_c02_s3_f0002_vis.jpg",
    "test_vis/cam9/0011/0011_c09_s4_f0007_vis.jpg", "test_vis/cam9/0011/0011_c09_s4_f0008_vis.jpg",
    "test_vis/cam9/0011/0011_c09_s4_f0009_vis.jpg",
]
# random.seed(t), then one random.choice per (id, camera): ids 2, 11; cameras in the modality's order.
DRAWN_VIS = {
    0: ["test_vis/cam1/0002/0002_c01_s1_f0200_vis.jpg", "test_vis/cam4/0002/0002_c04_s1_f0060_vis.jpg",
        "test_vis/cam2/0011/0011_c02_s3_f0001_vis.jpg", "test_vis/cam9/0011/0011_c09_s4_f0008_vis.jpg"],
    1: ["test_vis/cam1/0002/0002_c01_s1_f0100_vis.jpg", "test_vis/cam4/0002/0002_c04_s1_f0050_vis.jpg",
        "test_vis/cam2/0011/0011_c02_s3_f0002_vis.jpg", "test_vis/cam9/0011/0011_c09_s4_f0007_vis.jpg"],
}
DRAWN_NIR = {  # the one-image folder cam5/0002 still takes a random.choice
    0: ["test_nir/cam1/0002/0002_c01_s5_f0020_nir.jpg", "test_nir/cam5/0002/0002_c05_s6_f0030_nir.jpg",
        "test_nir/cam2/0011/0011_c02_s7_f0040_nir.jpg", "test_nir/cam8/0011/0011_c08_s8_f0080_nir.jpg"],
    1: ["test_nir/cam1/0002/0002_c01_s5_f0010_nir.jpg", "test_nir/cam5/0002/0002_c05_s6_f0030_nir.jpg",
        "test_nir/cam2/0011/0011_c02_s7_f0050_nir.jpg", "test_nir/cam8/0011/0011_c08_s8_f0070_nir.jpg"],
}


def _ids_cams(paths: list[str]) -> tuple[list[int], list[int]]:
    return [int(p.split("/")[2]) for p in paths], [int(p.split("/")[1][3:]) for p in paths]


# --- query and gallery ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("trial", [0, 1])
def test_ir2vis_every_infrared_image_against_drawn_visible(root, trial):
    query, gallery = llcm.query_gallery(root, "ir2vis", trial)
    assert query.paths == ALL_NIR
    assert gallery.paths == DRAWN_VIS[trial]
    assert (query.pids.tolist(), query.cams.tolist()) == _ids_cams(ALL_NIR)
    assert (gallery.pids.tolist(), gallery.cams.tolist()) == _ids_cams(DRAWN_VIS[trial])
    assert llcm.query_split(root, "ir2vis").paths == ALL_NIR
    assert llcm.gallery_split(root, "ir2vis", trial).paths == DRAWN_VIS[trial]


@pytest.mark.parametrize("trial", [0, 1])
def test_ir2vis_drawn_infrared_rows_against_every_visible_image(root, trial):
    # test_mode [2, 1]: the infrared side is drawn and eval_llcm is called with it as the query.
    query, gallery = llcm.query_gallery(root, "ir2vis-drawn", trial)
    assert query.paths == DRAWN_NIR[trial]
    assert gallery.paths == ALL_VIS
    assert (query.pids.tolist(), query.cams.tolist()) == _ids_cams(DRAWN_NIR[trial])
    assert (gallery.pids.tolist(), gallery.cams.tolist()) == _ids_cams(ALL_VIS)
    assert llcm.query_split(root, "ir2vis-drawn", trial).paths == DRAWN_NIR[trial]
    assert llcm.gallery_split(root, "ir2vis-drawn").paths == ALL_VIS


def _released_draw(top: str, cameras: tuple[int, ...], trial: int) -> list[str]:
    """The released process_gallery_llcm, global random and all, over the hand-made folders."""
    random.seed(trial)
    ids = sorted([f"{x:04d}" for x in [11, 2]])  # "%04d" strings, as released
    files = []
    for pid in ids:
        for cam in cameras:
            names = FOLDERS.get((top, cam, int(pid)))
            if names is None:
                continue
            if names:
                files.append(random.choice(sorted(f"{top}/cam{cam}/{pid}/{n}" for n in names)))
    return files


@pytest.mark.parametrize("trial", list(llcm.TRIALS))
def test_every_trial_matches_the_released_draws(root, trial):
    assert llcm.query_gallery(root, "ir2vis", trial)[1].paths == _released_draw("test_vis", VISIBLE_CAMERAS, trial)
    drawn = llcm.query_gallery(root, "ir2vis-drawn", trial)[0].paths
    assert drawn == _released_draw("test_nir", INFRARED_CAMERAS, trial)


def test_modes_ids_and_options():
    assert VISIBLE_CAMERAS == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert INFRARED_CAMERAS == (1, 2, 4, 5, 6, 7, 8, 9)
    assert llcm.MODES["ir2vis"].test_mode == (1, 2) and llcm.MODES["ir2vis-drawn"].test_mode == (2, 1)
    assert list(llcm.TRIALS) == list(range(10))
    assert llcm.protocol_id("ir2vis") == "llcm/ir2vis/seed-trials/v1"
    assert llcm.protocol_id("ir2vis-drawn", rerank=True) == "llcm/ir2vis-drawn/seed-trials/rerank/v1"
    with pytest.raises(UserError, match="ir2vis"):
        llcm.protocol_id("v2t")


def test_bad_protocol_options(root):
    with pytest.raises(UserError, match="trials are 0..9"):
        llcm.query_gallery(root, "ir2vis", 10)
    with pytest.raises(UserError, match="mode 't2v'"):
        llcm.query_gallery(root, "t2v", 0)
    with pytest.raises(UserError, match="draws its query per trial"):
        llcm.query_split(root, "ir2vis-drawn")
    with pytest.raises(UserError, match="draws its gallery per trial"):
        llcm.gallery_split(root, "ir2vis")


# --- the same-identity-same-camera removal ----------------------------------------------------------------------

CASE = RankedCase(
    g_pids=[1, 2, 1, 2, 3, 4, 4], g_cams=[1, 2, 3, 1, 1, 2, 5], q_pids=[1, 2, 3, 4], q_cams=[1, 2, 1, 9],
    rankings=[
        [0, 5, 6, 2, 1, 3, 4],  # pid 1 cam 1: g0 removed -> g5(4) g6(4) g2(1): first match at 3, id rank 2
        [1, 0, 3, 2, 4, 5, 6],  # pid 2 cam 2: g1 removed -> g0(1) g3(2): first match at 2 (g3 is cam 1: kept)
        [4, 0, 1, 2, 3, 5, 6],  # pid 3 cam 1: its only gallery image g4 is cam 1 -> not valid
        [5, 6, 0, 1, 2, 3, 4],  # pid 4 cam 9: nothing removed, matches at 1 and 2
    ],
)


def test_llcm_removal_golden():
    m = CASE.evaluate(protocol="llcm", top_k=3)
    assert m.num_valid == 3 and m.valid.tolist() == [True, True, False, True]
    assert m.first_rank.tolist() == [3, 2, 0, 1]
    assert m.id_rank.tolist() == [2, 2, 0, 1]
    assert m.ap[[0, 1, 3]] == pytest.approx([1 / 3, 1 / 2, 1])
    assert m.inp[[0, 1, 3]] == pytest.approx([1 / 3, 1 / 2, 1])
    assert np.isnan(m.ap[2]) and np.isnan(m.inp[2])
    assert m.cmc == pytest.approx([1 / 3, 1, 1, 1, 1, 1, 1])  # identity CMC: q0's two g-id-4 entries count once
    assert m.mAP == pytest.approx(11 / 18) and m.mINP == pytest.approx(11 / 18)
    assert m.top.tolist()[:2] == [[5, 6, 2], [0, 3, 2]]  # removed entries never listed
    explicit = CASE.evaluate(protocol="sysu", removal="same-identity-same-camera")
    assert explicit.mAP == pytest.approx(11 / 18) and explicit.cmc == pytest.approx(m.cmc)


def test_without_the_removal_the_numbers_differ():
    kept = CASE.evaluate(protocol="llcm", removal="none")
    # q0 matches at 1, 4; q1 at 1, 3; q2 at 1; q3 at 1, 2.
    assert kept.num_valid == 4 and kept.first_rank.tolist() == [1, 1, 1, 1]
    assert kept.cmc[0] == pytest.approx(1.0)
    assert kept.mAP == pytest.approx((3 / 4 + 5 / 6 + 1 + 1) / 4)
    assert kept.mINP == pytest.approx((2 / 4 + 2 / 3 + 1 + 1) / 4)


def test_removal_rule_is_checked():
    with pytest.raises(UserError, match="removal rule 'same-camera'"):
        evaluate(np.zeros((1, 1)), np.array([1]), np.array([1]), np.array([1]), np.array([2]), protocol="llcm",
                 removal="same-camera")  # type: ignore[arg-type]


def reference_eval_llcm(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
    """eval_llcm as released, one query at a time (it assumes at least max_rank distinct ids are kept)."""
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1)
    pred_label = g_pids[indices]
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    new_all_cmc, all_ap, all_inp = [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        new_cmc = pred_label[q_idx][keep]
        new_index = np.unique(new_cmc, return_index=True)[1]
        new_cmc = [new_cmc[index] for index in sorted(new_index)]
        new_match = (np.asarray(new_cmc) == q_pid).astype(np.int32)
        new_all_cmc.append(new_match.cumsum()[:max_rank])
        orig_cmc = matches[q_idx][keep]
        if not np.any(orig_cmc):
            continue
        cmc = orig_cmc.cumsum()
        pos_max_idx = np.max(np.where(orig_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        num_valid_q += 1.0
        num_rel = orig_cmc.sum()
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(orig_cmc.cumsum())]) * orig_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    assert num_valid_q > 0
    cmc = np.asarray(new_all_cmc).astype(np.float32).sum(0) / num_valid_q
    return cmc, np.mean(all_ap), np.mean(all_inp)


@pytest.mark.parametrize("seed", range(40))
def test_matches_the_released_eval_llcm_without_ties(seed):
    rng = np.random.default_rng(seed)
    num_ids = int(rng.integers(21, 30))
    per_id = int(rng.integers(1, 4))
    g_pids = np.repeat(np.arange(num_ids), per_id)
    g_cams = rng.integers(1, 10, len(g_pids))
    nq = int(rng.integers(1, 25))
    q_pids = rng.integers(0, num_ids + 3, nq)  # some identities are not in the gallery
    q_pids[0] = 0
    q_cams = rng.integers(1, 10, nq)
    q_cams[0] = 10  # at least one valid query
    dist = np.stack([rng.permutation(len(g_pids)) for _ in range(nq)]).astype(np.float32)  # no ties
    dist = dist / len(g_pids) - 0.5
    cmc, m_ap, m_inp = reference_eval_llcm(dist, q_pids, g_pids, q_cams, g_cams)
    m = evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol="llcm")
    assert len(m.cmc) == len(cmc) == 20
    assert m.cmc == pytest.approx(cmc, abs=1e-6)  # the released CMC is float32
    assert (m.mAP, m.mINP) == pytest.approx((m_ap, m_inp), abs=1e-12)


# --- the reader -------------------------------------------------------------------------------------------------

def test_reader_lists_training_lists_and_test_folders(root):
    listing = read_llcm(root)
    assert listing.name == "llcm"
    by_path = {r.path: r for r in listing.records}
    rec = by_path["vis/0004/0004_c07_s1_f0001_vis.jpg"]
    assert (rec.pid, rec.cam, rec.modality, rec.split) == (4, 7, "V", "train")
    rec = by_path["nir/0001/0001_c06_s1_f0001_nir.jpg"]
    assert (rec.pid, rec.cam, rec.modality, rec.split) == (1, 6, "I", "train")
    rec = by_path["test_nir/cam8/0011/0011_c08_s8_f0070_nir.jpg"]
    assert (rec.pid, rec.cam, rec.modality, rec.split) == (11, 8, "I", "test")
    rec = by_path["test_vis/cam9/0011/0011_c09_s4_f0007_vis.jpg"]
    assert (rec.pid, rec.cam, rec.modality, rec.split) == (11, 9, "V", "test")
    tests = sorted(r.path for r in listing.records if r.split == "test")
    assert tests == sorted(ALL_NIR + ALL_VIS)  # id 7 is not a test id
    assert listing.info["split_ids"] == {"train": [1, 4], "test": [11, 2]}
    assert listing.info["unlisted_images"] == 1
    assert listing.info["train_ids_in_test"] == []


def test_fixture_tree_reads_and_evaluates(tmp_path):
    root = make_llcm_tree(tmp_path / "llcm", train_ids=[1, 2], test_ids=[3, 4, 5], images_per_camera=2)
    listing = read_llcm(root)
    assert {r.split for r in listing.records} == {"train", "test"}
    assert all((root / r.path).is_file() for r in listing.records)
    train = [r for r in listing.records if r.split == "train"]
    assert {r.modality for r in train} == {"V", "I"} and {r.pid for r in train} == {1, 2}
    assert all(r.cam in INFRARED_CAMERAS for r in listing.records if r.modality == "I")
    test_paths = {r.path for r in listing.records if r.split == "test"}
    for mode in llcm.MODES:
        query, gallery = llcm.query_gallery(root, mode, 0)
        assert set(query.paths) <= test_paths and set(gallery.paths) <= test_paths
        dist = (query.pids[:, None] != gallery.pids[None, :]).astype(np.float32)
        m = evaluate(dist, query.pids, gallery.pids, query.cams, gallery.cams, protocol="llcm")
        assert m.mAP == pytest.approx(1.0)


def test_training_camera_from_a_cam_folder(root):
    (root / "vis" / "cam2" / "0009").mkdir(parents=True)
    (root / "vis" / "cam2" / "0009" / "x.jpg").touch()
    (root / "idx" / "train_vis.txt").write_text("\n".join(TRAIN_VIS + ["vis/cam2/0009/x.jpg 2"]) + "\n")
    rec = next(r for r in read_llcm(root).records if r.path == "vis/cam2/0009/x.jpg")
    assert (rec.pid, rec.cam) == (9, 2)


def _one_line_error(call, *needles: str) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def test_missing_train_vis_list(root):
    (root / "idx" / "train_vis.txt").unlink()
    message = _one_line_error(lambda: read_llcm(root), str(root / "idx" / "train_vis.txt"))
    assert "is missing" in message and "relative/path label" in message


def test_missing_test_id_file(root):
    (root / "idx" / "test_id.txt").unlink()
    path = str(root / "idx" / "test_id.txt")
    message = _one_line_error(lambda: read_llcm(root), path)
    assert "comma-separated" in message
    _one_line_error(lambda: llcm.query_gallery(root, "ir2vis", 0), path)


@pytest.mark.parametrize("folder", ["test_nir/cam3", "test_vis/cam10", "test_vis/cam0"])
def test_unknown_camera_folder(root, folder):
    (root / folder / "0002").mkdir(parents=True)
    path = str(root / folder)
    message = _one_line_error(lambda: read_llcm(root), path)
    assert "rename or remove it" in message
    _one_line_error(lambda: llcm.query_gallery(root, "ir2vis", 0), path)


def test_bad_layouts(root, tmp_path):
    _one_line_error(lambda: read_llcm(tmp_path / "absent"), "is not a folder")
    (root / "idx" / "test_id.txt").write_text("2;11\n")
    _one_line_error(lambda: read_llcm(root), "test_id.txt", "not an integer id")
    (root / "idx" / "test_id.txt").write_text("2,11,2\n")
    _one_line_error(lambda: read_llcm(root), "id 2 is listed twice")
    (root / "idx" / "test_id.txt").write_text("2,11\n")
    (root / "idx" / "train_nir.txt").write_text("nir/0001/0001_c06_s1_f0001_nir.jpg 1\n")
    _one_line_error(lambda: read_llcm(root), "train_nir.txt:1", "label 1")
    (root / "idx" / "train_nir.txt").write_text("nir/0001/missing_c06_.jpg 0\n")
    _one_line_error(lambda: read_llcm(root), "train_nir.txt:1", "does not exist")
    (root / "idx" / "train_nir.txt").write_text("nir/0001/0001_c12_s1_f0001_nir.jpg 0\n")
    _one_line_error(lambda: read_llcm(root), "train_nir.txt:1", "camera 12")
    (root / "idx" / "train_nir.txt").write_text("nir/0001/0001_c06_s1_f0001_nir.jpg\n")
    _one_line_error(lambda: read_llcm(root), "train_nir.txt:1", "relative/path label")
    (root / "idx" / "train_nir.txt").write_text("\n".join(TRAIN_NIR) + "\n")
    (root / "test_vis" / "cam1" / "2").mkdir()
    _one_line_error(lambda: read_llcm(root), str(root / "test_vis" / "cam1" / "2"), "zero-padded")
