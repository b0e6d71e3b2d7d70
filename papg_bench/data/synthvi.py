"""synthvi: the built-in procedural visible/infrared person dataset, written in the official layouts.

    SYSU layout   cam1..cam6/NNNN/NNNN.jpg, exp/{train,val,test}_id.txt
    RegDB layout  Visible/<id>/, Thermal/<id>/ (10 co-captured pairs each), idx/{train,test}_{visible,thermal}_<t>.txt
    LLCM layout   vis/, nir/ (training), test_vis/camK/, test_nir/camK/, idx/ lists (see synthvi_llcm)
    ground truth  synthvi/meta.json, synthvi/keypoints.csv (PATN format, OpenPose-18),
                  synthvi/counterparts/<same relative paths> (SYSU, LLCM: every image in the other modality)

Every image is rendered from a random generator seeded by (seed, identity, camera, index), so the
output is byte-identical for a seed whatever the number of worker processes. The whole output is
written under a temporary sibling folder and renamed into place when complete.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from papg_bench.data.store import remove_stale_temporaries
from papg_bench.data.synthvi_body import Identity, View, pose_skeleton, sample_identity
from papg_bench.data.synthvi_materials import DEFAULT_INFRARED, check_infrared
from papg_bench.data.synthvi_render import Moment, encode_jpeg, keypoints, person_layers, render, scene_offset
from papg_bench.data.synthvi_scene import REGDB_CAMERAS, SYSU_CAMERAS, Camera, cameras_seeing
from papg_bench.data.sysu import IR_CAMERAS, RGB_CAMERAS
from papg_bench.errors import UserError
from papg_bench.pose.annotation_csv import CSV_HEADER, read_annotations, write_annotations
from papg_bench.progress import track
from papg_bench.stages import DONE, REUSED, Mark, is_done, read_json
from papg_bench.workers import worker_results
from papg_bench.workspace import atomic_path, atomic_write_json, atomic_write_text

VERSION = 2  # 2: the garments' near-infrared response is a parameter (--infrared), default projection
LAYOUTS = ("sysu", "regdb", "llcm")
GT_DIR = "synthvi"
KEYPOINTS_HEADER = CSV_HEADER
REGDB_PER_ID = 10
REGDB_TRIALS = 10


@dataclass(frozen=True)
class Preset:
    sysu_ids: int
    sysu_split: tuple[int, int, int]  # train, val, test identities
    regdb_ids: int
    size: tuple[int, int]
    per_camera: tuple[int, int]  # images per identity per camera that sees it (inclusive range)


PRESETS = {
    "tiny": Preset(32, (16, 4, 12), 24, (64, 32), (3, 5)),
    "small": Preset(100, (64, 16, 20), 100, (128, 64), (4, 8)),
    "full": Preset(491, (296, 99, 96), 412, (288, 144), (10, 30)),  # SYSU-MM01 / RegDB counts
}
RGB_PRESENCE, IR_PRESENCE = 0.75, 0.8


@dataclass(frozen=True)
class Params:
    layout: str
    preset: str
    seed: int
    ids: int
    size: tuple[int, int]
    infrared: str = DEFAULT_INFRARED

    def key(self) -> dict:
        return {"version": VERSION, **asdict(self), "size": list(self.size)}


@dataclass
class SynthResult:
    root: Path
    status: str  # a stage outcome: done or reused
    images: int
    seconds: float


def make_params(layout: str, preset: str = "small", seed: int = 0, ids: int | None = None,
                size: tuple[int, int] | None = None, infrared: str = DEFAULT_INFRARED) -> Params:
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r} is not known: choose sysu, regdb or llcm.")
    if preset not in PRESETS:
        raise UserError(f"--preset {preset!r} is not known: choose one of {', '.join(PRESETS)}.")
    p = PRESETS[preset]
    if layout == "llcm":
        from papg_bench.data.synthvi_llcm import PRESETS as LLCM_PRESETS

        default_ids, default_size = LLCM_PRESETS[preset].ids, LLCM_PRESETS[preset].size
    else:
        default_ids, default_size = (p.sysu_ids if layout == "sysu" else p.regdb_ids), p.size
    count = ids if ids is not None else default_ids
    least = 3 if layout == "sysu" else 2
    if count < least:
        raise UserError(f"--ids {count}: the {layout} layout needs at least {least} identities (train and test).")
    if count > 9999:
        raise UserError(f"--ids {count}: at most 9999 identities fit the four-digit SYSU folder names.")
    if seed < 0:
        raise UserError(f"--seed {seed}: give a non-negative integer.")
    return Params(layout, preset, int(seed), int(count), tuple(size or default_size),  # type: ignore[arg-type]
                  check_infrared(infrared))


# ----------------------------------------------------------------------------------------- planning

def sysu_split(params: Params) -> dict[str, list[int]]:
    """train / val / test identities (SYSU folder numbers 1..N)."""
    train, val, test = PRESETS[params.preset].sysu_split
    n = params.ids
    if n != train + val + test:
        test = max(1, round(n * test / (train + val + test)))
        val = min(n - test - 1, round(n * val / (train + val + test)))
    order = np.random.default_rng([params.seed, 0x5917]).permutation(np.arange(1, n + 1))
    return {
        "train": sorted(int(i) for i in order[test + val:]),
        "val": sorted(int(i) for i in order[test:test + val]),
        "test": sorted(int(i) for i in order[:test]),
    }


def sysu_tracks(params: Params) -> list[tuple[int, int, int]]:
    """(pid, cam, image count) for every camera that sees each identity."""
    lo, hi = PRESETS[params.preset].per_camera
    tracks = []
    for pid in range(1, params.ids + 1):
        rng = np.random.default_rng([params.seed, pid, 0xCA])
        rgb = cameras_seeing(rng, RGB_CAMERAS, RGB_PRESENCE)
        ir = cameras_seeing(rng, IR_CAMERAS, IR_PRESENCE)
        for cam in sorted(rgb + ir):
            tracks.append((pid, cam, int(rng.integers(lo, hi + 1))))
    return tracks


def sysu_name(cam: int, pid: int, k: int) -> str:
    return f"cam{cam}/{pid:04d}/{k + 1:04d}.jpg"


def regdb_names(pid: int, k: int) -> tuple[str, str]:
    return f"Visible/{pid}/v_{pid:04d}_{k + 1:02d}.jpg", f"Thermal/{pid}/t_{pid:04d}_{k + 1:02d}.jpg"


def regdb_lists(params: Params) -> dict[str, list[str]]:
    """idx/<kind>_<t>.txt contents: a random half/half identity split per trial, labels 0.. per list."""
    lists: dict[str, list[str]] = {}
    n = params.ids
    for trial in range(1, REGDB_TRIALS + 1):
        order = list(range(1, n + 1))
        random.Random(params.seed * 1000 + trial).shuffle(order)
        halves = {"train": sorted(order[: n // 2]), "test": sorted(order[n // 2:])}
        for split, members in halves.items():
            for modality, column in (("visible", 0), ("thermal", 1)):
                lines = [f"{regdb_names(pid, k)[column]} {label}"
                         for label, pid in enumerate(members) for k in range(REGDB_PER_ID)]
                lists[f"{split}_{modality}_{trial}.txt"] = lines
    return lists


# ---------------------------------------------------------------------------------------- rendering

def make_moment(person: Identity, camera: Camera, seed: int, track_key: tuple[int, int], k: int,
                height: int, width: int) -> tuple[Moment, np.random.Generator]:
    """The pose, view and framing of image ``k`` of a track; returns the image's generator for the rest."""
    track = np.random.default_rng([seed, *track_key, 0x7A])
    angles = np.array([a for a, _ in camera.views])
    weights = np.array([w for _, w in camera.views])
    base_angle = float(track.choice(angles, p=weights / weights.sum()))
    phase0 = float(track.uniform(0, 2 * math.pi))
    rng = np.random.default_rng([seed, *track_key, k, 0x1A])
    phase = phase0 + k * person.gait_speed * 1.7 + float(rng.normal(0, 0.3))
    view = View(angle=base_angle + float(rng.normal(0, 0.12)), tilt=camera.tilt * float(rng.uniform(0.6, 1.4)))
    skeleton = pose_skeleton(person, phase, rng)
    scale = float(rng.uniform(*camera.scale))
    height_px = height * scale * (0.5 + 0.5 * person.height)
    foot_y = height / 2 + 0.5 * height_px + float(rng.normal(0, 0.025)) * height
    if rng.random() < 0.03:  # the detector box cut the feet off
        foot_y += 0.12 * height
    centre_x = width / 2 + float(rng.normal(0, 0.06)) * width
    occluder = None
    if rng.random() < camera.occlusion:
        colour = tuple(int(c) for c in rng.integers(30, 230, size=3))
        material = str(rng.choice(["wood", "metal", "fabric", "plaster"]))
        if rng.random() < 0.6:
            a, b = sorted(rng.uniform(0, 1, size=2))
            occluder = (float(a) * 0.5, float(rng.uniform(0.72, 0.88)), 0.5 + float(b) * 0.5, 1.0, colour, material)
        else:
            w = float(rng.uniform(0.12, 0.28))
            occluder = (0.0, 0.0, w, 1.0, colour, material) if rng.random() < 0.5 else \
                (1 - w, 0.0, 1.0, 1.0, colour, material)
    moment = Moment(person=person, skeleton=skeleton, view=view, height_px=height_px, centre_x=centre_x,
                    foot_y=foot_y, scene_xy=scene_offset(rng, height, width), occluder=occluder,
                    light=float(rng.uniform(0.85, 1.15)))
    return moment, rng


@dataclass(frozen=True)
class _RenderSettings:
    root: Path
    seed: int
    height: int
    width: int
    infrared: str

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _render_settings(root: str, seed: int, height: int, width: int, infrared: str) -> _RenderSettings:
    return _RenderSettings(Path(root), seed, height, width, infrared)


def _render_track(settings: _RenderSettings, task: tuple) -> list[tuple[str, list[int], list[int]]]:
    """Render and write one track; returns (name, ys, xs) keypoint rows."""
    layout, pid, cam, count = task[:4]
    seed, h, w, infrared, _write = settings.seed, settings.height, settings.width, settings.infrared, settings.write
    if layout == "llcm":
        from papg_bench.data import synthvi_llcm

        return synthvi_llcm.render_track(task, seed, h, w, infrared, _write)
    person = sample_identity(seed, pid)
    rows = []
    for k in range(count):
        if layout == "sysu":
            camera = SYSU_CAMERAS[cam]
            moment, rng = make_moment(person, camera, seed, (pid, cam), k, h, w)
            layers = person_layers(moment, h, w, infrared)
            own = render(moment, camera, camera.modality, seed, h, w, rng, layers)
            other = "I" if camera.modality == "V" else "V"
            twin = render(moment, camera, other, seed, h, w, rng, layers)
            twin_look = camera.infrared if other == "I" else camera.visible
            name = sysu_name(cam, pid, k)
            _write(name, encode_jpeg(own, camera.own_look.jpeg))
            _write(f"{GT_DIR}/counterparts/{name}", encode_jpeg(twin, twin_look.jpeg))
            names = [name]
        else:
            vis_cam, th_cam = REGDB_CAMERAS[1], REGDB_CAMERAS[2]
            moment, rng = make_moment(person, vis_cam, seed, (pid, 0), k, h, w)
            layers = person_layers(moment, h, w, infrared)
            names = list(regdb_names(pid, k))
            _write(names[0], encode_jpeg(render(moment, vis_cam, "V", seed, h, w, rng, layers), vis_cam.visible.jpeg))
            _write(names[1], encode_jpeg(render(moment, th_cam, "I", seed, h, w, rng, layers), th_cam.infrared.jpeg))
        kp = keypoints(moment, h, w)
        for name in names:
            rows.append((name, [int(v) for v in kp[:, 1]], [int(v) for v in kp[:, 0]]))
    return rows


# -------------------------------------------------------------------------------------------- driver

def read_meta(out: Path) -> dict | None:
    return read_json(Path(out) / GT_DIR / "meta.json")


def is_complete(out: Path, params: Params) -> bool:
    """Whether ``out`` holds a whole synthvi rendering of ``params``."""
    meta = read_meta(out)
    return is_done(Mark(meta.get("params"), bool(meta.get("complete"))) if meta else None, params.key())


def synthesize(out: Path, layout: str, preset: str = "small", seed: int = 0, ids: int | None = None,
               size: tuple[int, int] | None = None, workers: int | None = None, force: bool = False,
               infrared: str = DEFAULT_INFRARED) -> SynthResult:
    """Render synthvi in ``layout`` at ``out`` (unless it is already complete for these parameters).

    ``infrared`` names the garments' near-infrared response (SYSU layout; RegDB's thermal images see heat).
    """
    out = Path(out)
    params = make_params(layout, preset, seed, ids, size, infrared)
    if is_complete(out, params) and not force:
        return SynthResult(out, REUSED, int(read_meta(out)["images"]), 0.0)  # type: ignore[index]
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and read_meta(out) is None)):
        raise UserError(
            f"--out {out} exists and is not a synthvi output (no {GT_DIR}/meta.json): give a new or empty "
            "folder; synthvi replaces the whole folder."
        )
    start = time.perf_counter()
    remove_stale_temporaries(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        count = _render_all(tmp, params, workers)
        os.replace(tmp / GT_DIR / "meta.partial.json", tmp / GT_DIR / "meta.json")
    return SynthResult(out, DONE, count, time.perf_counter() - start)


def ensure_synthvi(out: Path, layout: str, preset: str, seed: int, infrared: str = DEFAULT_INFRARED) -> Path:
    """The synthvi root at ``out``, rendered only when it is not already complete for these parameters."""
    return synthesize(out, layout, preset=preset, seed=seed, infrared=infrared).root


def _render_all(tmp: Path, params: Params, workers: int | None) -> int:
    from papg_bench.data import synthvi_llcm  # imports this module

    h, w = params.size
    if params.layout == "sysu":
        splits = sysu_split(params)
        tasks = [("sysu", pid, cam, n) for pid, cam, n in sysu_tracks(params)]
        per_task = 1
    elif params.layout == "llcm":
        splits = synthvi_llcm.llcm_split(params)
        tasks = synthvi_llcm.llcm_tasks(params, splits)
        per_task = 1
    else:
        splits = {}
        tasks = [("regdb", pid, 0, REGDB_PER_ID) for pid in range(1, params.ids + 1)]
        per_task = 2
    # longest tracks first keeps the workers busy to the end
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][3])
    tasks = [tasks[i] for i in order]
    total = sum(t[3] for t in tasks) * per_task
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    init_args = (str(tmp), params.seed, h, w, params.infrared)
    rows: list[tuple[str, list[int], list[int]]] = []
    with track(f"synth {params.layout}", total=total, unit="img") as advance, \
            worker_results(_render_track, tasks, workers, _render_settings, init_args) as results:
        for result in results:
            rows.extend(result)
            advance(len(result))
    if params.layout == "sysu":
        exp = tmp / "exp"
        exp.mkdir()
        for split, ids in splits.items():
            atomic_write_text(exp / f"{split}_id.txt", ",".join(str(i) for i in ids) + "\n")
    elif params.layout == "llcm":
        synthvi_llcm.write_lists(tmp, params, splits, tasks)
    else:
        for name, lines in regdb_lists(params).items():
            atomic_write_text(tmp / "idx" / name, "\n".join(lines) + "\n")
    rows.sort()
    write_annotations(tmp / GT_DIR / "keypoints.csv", rows)
    meta = {
        "generator": "synthvi",
        "params": params.key(),
        "layout": params.layout,
        "preset": params.preset,
        "seed": params.seed,
        "version": VERSION,
        "infrared": params.infrared,
        "image_size": list(params.size),
        "identities": params.ids,
        "images": len(rows),
        "keypoints": {"file": "keypoints.csv", "format": "PATN name:keypoints_y:keypoints_x, OpenPose-18, "
                      "pixels of the written image, -1 = out of view"},
        "complete": True,
    }
    if params.layout == "sysu":
        meta["split_ids"] = splits
        meta["counterparts"] = "counterparts/<image path>: the same moment in the other modality"
        meta["images_by_camera"] = {f"cam{c}": sum(1 for n, _, _ in rows if n.startswith(f"cam{c}/"))
                                    for c in sorted(SYSU_CAMERAS)}
    elif params.layout == "llcm":
        meta.update(synthvi_llcm.meta_fields(splits, tasks))
    else:
        meta["pairs"] = "Thermal image k shows the same moment as Visible image k of an identity"
        meta["trials"] = list(range(1, REGDB_TRIALS + 1))
    atomic_write_json(tmp / GT_DIR / "meta.partial.json", meta)
    return len(rows)


def read_keypoints(path: Path) -> dict[str, np.ndarray]:
    """keypoints.csv -> {name: 18 x 2 int array of (x, y)}, -1 where out of view."""
    names, points = read_annotations(path)
    return {name.strip(): kp[:, :2].astype(np.int64) for name, kp in zip(names, points, strict=True)}
