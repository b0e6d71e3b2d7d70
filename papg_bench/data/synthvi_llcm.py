"""synthvi in the LLCM layout (Zhang & Wang, CVPR 2023): nine cameras that see visible light by day and
near infrared at night, with part of the visible images taken in low light.

    training   vis/NNNN/NNNN_cKK_sHHMMSS_fFFFF_vis.jpg, nir/NNNN/..._nir.jpg (training identities only),
               listed in idx/train_vis.txt, idx/train_nir.txt as "path label", label = position of the
               identity among the sorted training ids (0-based, the same in both lists)
    test       test_vis/camK/NNNN/..._vis.jpg (cam1..cam9), test_nir/camK/NNNN/..._nir.jpg (cam1, cam2,
               cam4..cam9), idx/test_id.txt (one comma-separated line), and idx/test_vis.txt,
               idx/test_nir.txt listing them ("path label", label = position among the sorted test ids)
    ground     synthvi/keypoints.csv, synthvi/counterparts/<path> (every image in the other modality: a
    truth      visible image's near-infrared twin, an infrared image's twin in daylight),
               synthvi/low_light.txt (the visible images taken in low light, one path a line)

Camera 3 records no near infrared at all (LLCM's test set has no infrared camera 3). Each visible image
of camera K is in low light with the share ``LOW_LIGHT_SHARE[K]`` of that camera's visible images (exactly
``low_light_count``): darker (gain 0.2-0.42 of the day's), noisier (sensor noise 9-15 grey levels) and tinted
by the camera's night lighting. Visible and infrared images of a camera are different moments (day and
night tracks), each with its counterpart in the other modality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from papg_bench.data.llcm import INFRARED_CAMERAS, VISIBLE_CAMERAS
from papg_bench.data.synthvi import GT_DIR, Params, make_moment
from papg_bench.data.synthvi_body import sample_identity
from papg_bench.data.synthvi_render import encode_jpeg, keypoints, person_layers, render
from papg_bench.data.synthvi_scene import (
    FRONT_BACK,
    INDOOR_NIR,
    INDOOR_RGB,
    MIXED,
    OUTDOOR_NIR,
    OUTDOOR_RGB,
    SIDEWAYS,
    Camera,
    Look,
    cameras_seeing,
)
from papg_bench.workspace import atomic_write_text

SUFFIX = {"V": "vis", "I": "nir"}
LOW_LIGHT_FILE = "low_light.txt"
VIS_PRESENCE, NIR_PRESENCE = 0.535, 0.4965  # chance that a camera sees an identity, per modality


@dataclass(frozen=True)
class LlcmPreset:
    ids: int
    split: tuple[int, int]  # train, test identities
    size: tuple[int, int]
    per_camera: tuple[int, int]  # images per identity per camera and modality (inclusive range)


PRESETS = {
    "tiny": LlcmPreset(12, (8, 4), (64, 32), (2, 3)),
    "small": LlcmPreset(100, (67, 33), (128, 64), (3, 6)),
    "full": LlcmPreset(1064, (713, 351), (288, 144), (2, 8)),  # LLCM's counts, about 46,767 images
}


@dataclass(frozen=True)
class LlcmCamera:
    camera: Camera  # its ``modality`` is unused: an LLCM camera records both
    low_light: float  # share of its visible images taken in low light
    tint: tuple[float, float, float]  # white balance of its night lighting


WARM, SODIUM, COLD, MIXED_LAMPS = (1.2, 1.0, 0.72), (1.35, 0.95, 0.5), (0.82, 0.98, 1.22), (1.1, 1.02, 0.85)
HALL_RGB = Look(wb=(0.92, 1.0, 1.08), gain=0.9, gamma=1.08, blur=0.7, noise=5.0, jpeg=84, vignette=0.25)
GATE_RGB = Look(wb=(1.04, 1.0, 0.9), gain=1.15, gamma=0.88, blur=0.5, noise=3.5, jpeg=88, vignette=0.15)
# camera: scene, views, scale, tilt, occlusion, day look, near-infrared look, low-light share, night tint
_CAMERA_TABLE = {
    1: ("room_d", FRONT_BACK, (0.78, 0.94), 0.12, 0.10, INDOOR_RGB, INDOOR_NIR, 0.25, WARM),
    2: ("room_e", SIDEWAYS, (0.74, 0.9), 0.08, 0.10, HALL_RGB, INDOOR_NIR, 0.3, COLD),
    3: ("street_d", MIXED, (0.76, 0.94), 0.1, 0.12, OUTDOOR_RGB, OUTDOOR_NIR, 0.5, SODIUM),
    4: ("street_e", FRONT_BACK, (0.8, 0.95), 0.05, 0.12, GATE_RGB, OUTDOOR_NIR, 0.35, SODIUM),
    5: ("street_f", SIDEWAYS, (0.75, 0.92), 0.15, 0.12, OUTDOOR_RGB, OUTDOOR_NIR, 0.4, MIXED_LAMPS),
    6: ("room_f", MIXED, (0.76, 0.94), 0.12, 0.10, HALL_RGB, INDOOR_NIR, 0.2, WARM),
    7: ("street_g", FRONT_BACK, (0.78, 0.94), 0.1, 0.12, OUTDOOR_RGB, OUTDOOR_NIR, 0.45, COLD),
    8: ("street_h", SIDEWAYS, (0.74, 0.92), 0.12, 0.12, GATE_RGB, OUTDOOR_NIR, 0.3, SODIUM),
    9: ("street_i", MIXED, (0.76, 0.94), 0.08, 0.12, OUTDOOR_RGB, OUTDOOR_NIR, 0.4, MIXED_LAMPS),
}
LLCM_CAMERAS = {cam: LlcmCamera(Camera(cam, "V", *row[:7]), *row[7:]) for cam, row in _CAMERA_TABLE.items()}
LOW_LIGHT_SHARE = {cam: spec.low_light for cam, spec in LLCM_CAMERAS.items()}


# ----------------------------------------------------------------------------------------- planning

def llcm_split(params: Params) -> dict[str, list[int]]:
    """train / test identities (folder numbers 1..N), LLCM's 713 : 351 when the count is not the preset's."""
    train, test = PRESETS[params.preset].split
    n = params.ids
    if n != train + test:
        test = min(n - 1, max(1, round(n * test / (train + test))))
    order = np.random.default_rng([params.seed, 0x11C3]).permutation(np.arange(1, n + 1))
    return {"train": sorted(int(i) for i in order[test:]), "test": sorted(int(i) for i in order[:test])}


def llcm_tracks(params: Params) -> list[tuple[int, int, str, int]]:
    """(pid, cam, modality, image count) for every camera and modality that sees each identity (both at least once)."""
    lo, hi = PRESETS[params.preset].per_camera
    tracks = []
    for pid in range(1, params.ids + 1):
        rng = np.random.default_rng([params.seed, pid, 0x11CA])
        vis = cameras_seeing(rng, VISIBLE_CAMERAS, VIS_PRESENCE)
        nir = cameras_seeing(rng, INFRARED_CAMERAS, NIR_PRESENCE)
        for modality, cams in (("V", vis), ("I", nir)):
            for cam in cams:
                tracks.append((pid, cam, modality, int(rng.integers(lo, hi + 1))))
    return tracks


def low_light_count(share: float, images: int) -> int:
    """How many of a camera's ``images`` visible images are in low light: ``share`` of them, rounded half up."""
    return int(share * images + 0.5)


def low_light_plan(params: Params, tracks: list[tuple[int, int, str, int]]) -> dict[tuple[int, int], tuple[bool, ...]]:
    """(pid, cam) -> low-light flag of each visible image of that track; exactly ``low_light_count`` per camera."""
    plan: dict[tuple[int, int], list[bool]] = {}
    for cam in VISIBLE_CAMERAS:
        images = [(pid, k) for pid, c, m, n in tracks if c == cam and m == "V" for k in range(n)]
        for pid, _k in images:
            plan.setdefault((pid, cam), [])
        chosen = np.random.default_rng([params.seed, cam, 0x11D]).permutation(len(images))
        dark = set(chosen[:low_light_count(LOW_LIGHT_SHARE[cam], len(images))].tolist())
        for i, (pid, _k) in enumerate(images):
            plan[(pid, cam)].append(i in dark)
    return {key: tuple(flags) for key, flags in plan.items()}


def llcm_tasks(params: Params, splits: dict[str, list[int]]) -> list[tuple]:
    """Render tasks ``("llcm", pid, cam, count, modality, split, low-light flags)``."""
    tracks = llcm_tracks(params)
    plan = low_light_plan(params, tracks)
    test = set(splits["test"])
    return [("llcm", pid, cam, n, modality, "test" if pid in test else "train",
             plan[(pid, cam)] if modality == "V" else (False,) * n)
            for pid, cam, modality, n in tracks]


def _stamp(seed: int, pid: int, cam: int, modality: str, count: int) -> tuple[int, int, int]:
    """(time HHMMSS, first frame, frame step) of a track: visible tracks by day, infrared ones at night."""
    rng = np.random.default_rng([seed, pid, cam, 1 if modality == "V" else 2, 0x57A])
    hour = int(rng.integers(8, 18)) if modality == "V" else int(rng.choice([19, 20, 21, 22, 23, 0, 1, 2, 3, 4]))
    clock = hour * 10000 + int(rng.integers(0, 60)) * 100 + int(rng.integers(0, 60))
    step = int(rng.integers(5, 26))
    return clock, int(rng.integers(0, 10000 - step * count)), step


def track_paths(seed: int, pid: int, cam: int, modality: str, count: int, split: str) -> list[str]:
    """Relative paths of the ``count`` images of a track, in frame order."""
    clock, first, step = _stamp(seed, pid, cam, modality, count)
    suffix = SUFFIX[modality]
    folder = f"{suffix}/{pid:04d}" if split == "train" else f"test_{suffix}/cam{cam}/{pid:04d}"
    return [f"{folder}/{pid:04d}_c{cam:02d}_s{clock:06d}_f{first + k * step:04d}_{suffix}.jpg" for k in range(count)]


# ---------------------------------------------------------------------------------------- rendering

def low_light_camera(spec: LlcmCamera, seed: int, pid: int, k: int) -> Camera:
    """The camera of one low-light visible image: the day look darkened, noisier and tinted."""
    rng = np.random.default_rng([seed, pid, spec.camera.cam, k, 0x11D])
    day = spec.camera.visible
    jitter = rng.uniform(0.92, 1.08, size=3)
    night = replace(day, wb=tuple(float(day.wb[i] * spec.tint[i] * jitter[i]) for i in range(3)),
                    gain=day.gain * float(rng.uniform(0.2, 0.42)), noise=float(rng.uniform(9.0, 15.0)),
                    blur=day.blur + 0.3, jpeg=day.jpeg - 10, vignette=min(0.6, day.vignette + 0.2))
    return replace(spec.camera, visible=night)


def render_track(task: tuple, seed: int, height: int, width: int, infrared: str,
                 write: Callable[[str, bytes], None]) -> list[tuple[str, list[int], list[int]]]:
    """Render one LLCM track and its counterparts through ``write(rel, data)``; returns keypoint rows."""
    _, pid, cam, count, modality, split, low = task
    spec = LLCM_CAMERAS[cam]
    camera = spec.camera
    person = sample_identity(seed, pid)
    other = "I" if modality == "V" else "V"
    rows = []
    for k, name in enumerate(track_paths(seed, pid, cam, modality, count, split)):
        moment, rng = make_moment(person, camera, seed, (pid, cam, 1 if modality == "V" else 2), k, height, width)
        layers = person_layers(moment, height, width, infrared)
        seen_by = low_light_camera(spec, seed, pid, k) if low[k] else camera
        own = render(moment, seen_by, modality, seed, height, width, rng, layers)
        twin = render(moment, camera, other, seed, height, width, rng, layers)
        own_look = seen_by.visible if modality == "V" else camera.infrared
        twin_look = camera.infrared if other == "I" else camera.visible
        write(name, encode_jpeg(own, own_look.jpeg))
        write(f"{GT_DIR}/counterparts/{name}", encode_jpeg(twin, twin_look.jpeg))
        kp = keypoints(moment, height, width)
        rows.append((name, [int(v) for v in kp[:, 1]], [int(v) for v in kp[:, 0]]))
    return rows


# ------------------------------------------------------------------------------------- lists, meta

def _paths_of(seed: int, tasks: list[tuple]) -> list[tuple[tuple, list[str]]]:
    return [(task, track_paths(seed, task[1], task[2], task[4], task[3], task[5])) for task in tasks]


def write_lists(root: Path, params: Params, splits: dict[str, list[int]], tasks: list[tuple]) -> None:
    """idx/train_{vis,nir}.txt, idx/test_{vis,nir}.txt, idx/test_id.txt and synthvi/low_light.txt."""
    labels = {split: {pid: label for label, pid in enumerate(ids)} for split, ids in splits.items()}
    lines: dict[str, list[str]] = {f"{split}_{s}.txt": [] for split in ("train", "test") for s in SUFFIX.values()}
    dark = []
    for task, paths in _paths_of(params.seed, tasks):
        _, pid, _cam, _n, modality, split, low = task
        lines[f"{split}_{SUFFIX[modality]}.txt"] += [f"{p} {labels[split][pid]}" for p in paths]
        dark += [p for p, flag in zip(paths, low, strict=True) if flag]
    for name, entries in lines.items():
        atomic_write_text(root / "idx" / name, "\n".join(sorted(entries)) + "\n")
    atomic_write_text(root / "idx" / "test_id.txt", ",".join(str(i) for i in splits["test"]) + "\n")
    atomic_write_text(root / GT_DIR / LOW_LIGHT_FILE, "".join(f"{p}\n" for p in sorted(dark)))


def meta_fields(splits: dict[str, list[int]], tasks: list[tuple]) -> dict:
    """The LLCM entries of ``synthvi/meta.json``."""
    by_camera: dict[str, dict[str, int]] = {s: {} for s in SUFFIX.values()}
    dark: dict[str, int] = {}
    for _, _pid, cam, n, modality, _split, low in tasks:
        counts = by_camera[SUFFIX[modality]]
        counts[f"cam{cam}"] = counts.get(f"cam{cam}", 0) + n
        if modality == "V":
            dark[f"cam{cam}"] = dark.get(f"cam{cam}", 0) + sum(low)
    return {
        "split_ids": splits,
        "labels": "idx lists: label = position of the identity among the sorted ids of its split (0-based)",
        "counterparts": "counterparts/<image path>: the same moment in the other modality (an infrared "
                        "image's visible twin in daylight)",
        "images_by_camera": {s: dict(sorted(c.items(), key=lambda kv: int(kv[0][3:]))) for s, c in by_camera.items()},
        "cameras": {"vis": list(VISIBLE_CAMERAS), "nir": list(INFRARED_CAMERAS)},
        "low_light": {
            "file": LOW_LIGHT_FILE,
            "share_by_camera": {f"cam{c}": LOW_LIGHT_SHARE[c] for c in VISIBLE_CAMERAS},
            "images_by_camera": {f"cam{c}": dark.get(f"cam{c}", 0) for c in VISIBLE_CAMERAS},
            "rule": "per camera, int(share * visible images + 0.5) visible images, chosen at random",
        },
    }


# ------------------------------------------------------------------------------------------ preview

def preview_rows(root: Path, meta: dict, points: dict, identities: int) -> tuple[list[str], list[tuple]]:
    """Headers and rows of ``synth --preview``: one image per camera and modality of each identity."""
    headers = [f"c{c} vis" for c in VISIBLE_CAMERAS] + [f"c{c} nir" for c in INFRARED_CAMERAS]
    pids = (meta["split_ids"]["test"] + meta["split_ids"]["train"])[:identities]
    test = set(meta["split_ids"]["test"])
    rows = []
    for pid in pids:
        cells = []
        for modality, cams in (("V", VISIBLE_CAMERAS), ("I", INFRARED_CAMERAS)):
            suffix = SUFFIX[modality]
            for cam in cams:
                folder = f"test_{suffix}/cam{cam}/{pid:04d}" if pid in test else f"{suffix}/{pid:04d}"
                files = sorted(p.name for p in (root / folder).glob(f"{pid:04d}_c{cam:02d}_*.jpg"))
                name = f"{folder}/{files[0]}" if files else None
                cells.append((name, points.get(name or "")))
        rows.append((pid, cells))
    return headers, rows
