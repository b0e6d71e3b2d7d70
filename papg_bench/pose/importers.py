"""Import keypoints made elsewhere, and export the store's keypoints as a PATN/PAPG annotation CSV.

Formats (``--format auto`` picks by the file):

``csv``       The PATN / PAPG annotation file (:mod:`.annotation_csv`): first line exactly
              ``name:keypoints_y:keypoints_x``, then one line per image ``name: [18 ys]: [18 xs]`` (ints,
              -1 = missing), OpenPose-18 order.
``openpose``  A folder of OpenPose ``*_keypoints.json`` files (one per image, ``people[*].pose_keypoints_2d``
              in the COCO-18 or BODY_25 layout); the file's path inside the folder, without
              ``_keypoints.json``, names the image (its extension is ignored).
``coco``      A COCO keypoint JSON (``images`` with ``file_name``/``width``/``height``, ``annotations``
              with 17 ``keypoints`` triples; visibility 0 = missing).

Names are matched to store rows by relative path (``cam1/0001/0001.jpg``). Coordinates are in the
pixels of the source images and are converted to store pixels: each source image's size comes from
the COCO file, from ``--source-size HxW`` (all images one size) or from the image's header under the
store's ``source_root``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from papg_bench.errors import UserError
from papg_bench.pose.annotation_csv import read_annotations, write_annotations
from papg_bench.pose.keypoints import DEFAULT_THRESHOLD, MISSING, NUM_JOINTS, coco_to_openpose, mark_missing
from papg_bench.pose.maps import scale_keypoints

FORMATS = ("auto", "csv", "openpose", "coco")
OPENPOSE_SUFFIX = "_keypoints.json"
# BODY_25 -> OpenPose-18 (COCO-18): drop MidHip (8) and the feet (19..24).
BODY25_TO_OPENPOSE18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
SHOWN_NAMES = 5


@dataclass
class KeypointFile:
    """Keypoints read from a file, still in source-image pixels: ``names[i]`` -> ``keypoints[i]`` (18 x 3)."""

    path: Path
    format: str
    names: list[str]
    keypoints: np.ndarray  # K x 18 x 3 float32
    sizes: dict[str, tuple[int, int]] | None = None  # source (H, W) per name, when the file says


def detect_format(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        return "openpose"
    if not path.is_file():
        raise UserError(f"--from {path}: no such file or folder.")
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith("name:") or path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() == ".json" or head.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"--from {path}: not valid JSON ({exc}).") from None
        if isinstance(data, dict) and "people" in data:
            raise UserError(f"--from {path}: an OpenPose file holds one image; pass the folder that holds all of "
                            "them (--format openpose).")
        return "coco"
    raise UserError(f"--from {path}: cannot tell its format; pass --format csv, openpose or coco.")


def read_keypoint_file(path: Path, fmt: str = "auto", threshold: float = DEFAULT_THRESHOLD) -> KeypointFile:
    """Read a keypoint file or folder in ``fmt`` (see the module doc) as OpenPose-18 keypoints."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown: use one of {', '.join(FORMATS)}.")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "openpose" and not path.is_dir():
        raise UserError(f"--from {path}: the OpenPose format is a folder of *{OPENPOSE_SUFFIX} files.")
    if fmt != "openpose" and not path.is_file():
        raise UserError(f"--from {path}: no such file.")
    reader = {"csv": read_csv, "openpose": read_openpose_folder, "coco": read_coco}[fmt]
    return reader(path, threshold) if fmt != "csv" else reader(path)


def read_csv(path: Path) -> KeypointFile:
    """The PATN/PAPG annotation CSV (:mod:`.annotation_csv`)."""
    names, keypoints = read_annotations(path)
    return KeypointFile(Path(path), "csv", [normalize_name(name) for name in names], keypoints)


def read_openpose_folder(folder: Path, threshold: float = DEFAULT_THRESHOLD) -> KeypointFile:
    """A folder of OpenPose JSON files; the most confident person of each file is kept."""
    folder = Path(folder)
    files = sorted(folder.rglob(f"*{OPENPOSE_SUFFIX}"))
    if not files:
        raise UserError(f"{folder}: no *{OPENPOSE_SUFFIX} files (OpenPose --write_json output) in it.")
    names, points = [], []
    for file in files:
        try:
            people = json.loads(file.read_text()).get("people", [])
        except (json.JSONDecodeError, AttributeError):
            raise UserError(f"{file}: not an OpenPose JSON file (expected an object with 'people').") from None
        best = np.full((NUM_JOINTS, 3), MISSING, dtype=np.float32)
        best_score = -np.inf
        for person in people:
            flat = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float32)
            if flat.size == 25 * 3:
                kp = flat.reshape(25, 3)[list(BODY25_TO_OPENPOSE18)]
            elif flat.size == NUM_JOINTS * 3:
                kp = flat.reshape(NUM_JOINTS, 3)
            else:
                raise UserError(f"{file}: pose_keypoints_2d has {flat.size // 3} joints; expected 18 (COCO) or 25 "
                                "(BODY_25).")
            score = float(kp[:, 2].sum())
            if score > best_score:
                best, best_score = kp, score
        rel = file.relative_to(folder).as_posix()
        names.append(normalize_name(rel[: -len(OPENPOSE_SUFFIX)]))
        points.append(mark_missing(best, threshold))
    return KeypointFile(folder, "openpose", names, np.stack(points))


def read_coco(path: Path, threshold: float = DEFAULT_THRESHOLD) -> KeypointFile:
    """A COCO keypoint JSON; per image, the annotation with the most labelled joints (then highest score)."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise UserError(f"{path}: a COCO keypoint file needs 'images' (id, file_name) and 'annotations' (image_id, "
                        "keypoints); a results list without image names cannot be matched to the store.")
    images = {img["id"]: img for img in data["images"]}
    chosen: dict[int, tuple[tuple[float, float], np.ndarray]] = {}
    for ann in data["annotations"]:
        flat = np.asarray(ann.get("keypoints", []), dtype=np.float32)
        if flat.size != 17 * 3:
            raise UserError(f"{path}: annotation {ann.get('id', '?')} has {flat.size // 3} keypoints; expected the "
                            "17 COCO keypoints.")
        kp = flat.reshape(17, 3).copy()
        labelled = kp[:, 2] > 0
        # Ground truth carries visibility flags (1, 2); results carry a score per person.
        kp[:, 2] = np.where(labelled, float(ann["score"]) if "score" in ann else 1.0, 0.0)
        key = (float(labelled.sum()), float(ann.get("score", 0.0)))
        image_id = ann["image_id"]
        if image_id not in images:
            raise UserError(f"{path}: annotation {ann.get('id', '?')} names image_id {image_id}, which 'images' lacks.")
        if image_id not in chosen or key > chosen[image_id][0]:
            chosen[image_id] = (key, kp)
    names, points, sizes = [], [], {}
    for image_id, (_, kp) in chosen.items():
        img = images[image_id]
        name = normalize_name(img["file_name"])
        names.append(name)
        points.append(coco_to_openpose(kp, min(threshold, 1.0)))
        if "height" in img and "width" in img:
            sizes[name] = (int(img["height"]), int(img["width"]))
    if not names:
        raise UserError(f"{path}: no annotations with keypoints.")
    return KeypointFile(Path(path), "coco", names, np.stack(points), sizes or None)


def normalize_name(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def match_rows(names: Iterable[str], store_paths: list[str], source: Path) -> np.ndarray:
    """Store row of every name (by relative path; a name without extension matches its path's stem).

    Raises one :class:`UserError` listing the first few names that match no store row.
    """
    exact = {p: i for i, p in enumerate(store_paths)}
    stems: dict[str, int] = {}
    for i, p in enumerate(store_paths):
        stems.setdefault(p.rsplit(".", 1)[0], i)
    rows, unmatched = [], []
    names = list(names)
    for name in names:
        row = exact.get(name)
        if row is None:
            row = stems.get(name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name)
        if row is None:
            unmatched.append(name)
        rows.append(-1 if row is None else row)
    if unmatched:
        shown = ", ".join(unmatched[:SHOWN_NAMES]) + (", ..." if len(unmatched) > SHOWN_NAMES else "")
        what = "none of its" if len(unmatched) == len(names) else f"{len(unmatched)} of its {len(names)}"
        hint = " Is it a keypoint file for another dataset?" if len(unmatched) == len(names) else ""
        raise UserError(f"{source}: {what} image names match the store (by relative path, e.g. "
                        f"{store_paths[0] if store_paths else '?'}): {shown}.{hint}")
    return np.asarray(rows, dtype=np.int64)


def source_sizes(rows: np.ndarray, store_paths: list[str], source_root: str | None,
                 source_size: tuple[int, int] | None, known: dict[str, tuple[int, int]] | None,
                 names: list[str]) -> list[tuple[int, int]]:
    """Each imported row's source-image size (H, W): from the file, ``--source-size`` or the image header."""
    from PIL import Image

    sizes = []
    root = Path(source_root) if source_root else None
    for name, row in zip(names, rows, strict=True):
        if known and name in known:
            sizes.append(known[name])
        elif source_size is not None:
            sizes.append(source_size)
        else:
            if root is None or not root.is_dir():
                raise UserError(f"the store's source images ({source_root}) are not here, so their sizes are unknown: "
                                "pass --source-size HxW (the size the keypoints were measured at).")
            image = root / store_paths[row]
            try:
                with Image.open(image) as img:  # reads the header only
                    width, height = img.size
            except OSError as exc:
                raise UserError(f"{image}: cannot read its size ({exc}); pass --source-size HxW.") from None
            sizes.append((height, width))
    return sizes


def to_store_pixels(keypoints: np.ndarray, sizes: list[tuple[int, int]], store_size: tuple[int, int]) -> np.ndarray:
    """Rescale each row's keypoints from its source size to the store size, one group per distinct size."""
    return _rescale(keypoints, sizes, store_size, to_store=True)


def _rescale(keypoints: np.ndarray, sizes: list[tuple[int, int]], store_size: tuple[int, int],
             to_store: bool) -> np.ndarray:
    """Each row from its own size to ``store_size`` (``to_store``) or back, one group per distinct size."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        by_size.setdefault(tuple(size), []).append(i)
    for size, index in by_size.items():
        source, target = (size, store_size) if to_store else (store_size, size)
        out[index] = scale_keypoints(out[index], source, target)
    return out


def import_keypoints(source: Path, fmt: str, store_paths: list[str], store_size: tuple[int, int],
                     source_root: str | None, source_size: tuple[int, int] | None = None,
                     threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, KeypointFile]:
    """N x 18 x 3 store-pixel keypoints from ``source`` (rows the file does not cover are missing)."""
    kfile = read_keypoint_file(source, fmt, threshold)
    rows = match_rows(kfile.names, store_paths, kfile.path)
    duplicates = len(rows) - len(np.unique(rows))
    if duplicates:
        raise UserError(f"{kfile.path}: {duplicates} store image(s) appear more than once; keep one row per image.")
    sizes = source_sizes(rows, store_paths, source_root, source_size, kfile.sizes, kfile.names)
    poses = np.full((len(store_paths), NUM_JOINTS, 3), MISSING, dtype=np.float32)
    poses[rows] = to_store_pixels(kfile.keypoints, sizes, store_size)
    return poses, kfile


def export_csv(path: Path, poses: np.ndarray, store_paths: list[str], store_size: tuple[int, int],
               source_root: str | None, source_size: tuple[int, int] | None = None) -> int:
    """Write ``poses`` as a PATN/PAPG annotation CSV in source-image pixels (the convention of the format).

    The coordinates go back to each source image's size (``--source-size`` or the image headers), so
    importing the file again gives the same keypoints up to rounding. Returns the number of rows.
    """
    rows = np.arange(len(store_paths))
    sizes = source_sizes(rows, store_paths, source_root, source_size, None, store_paths)
    back = _rescale(poses, sizes, store_size, to_store=False)
    entries = []
    for name, kp in zip(store_paths, back, strict=True):
        missing = kp[:, 2] <= 0
        # A joint rounded just past the top or left edge must not turn into -1 (missing).
        xs = np.where(missing, -1, np.rint(kp[:, 0]).clip(min=0)).astype(int).tolist()
        ys = np.where(missing, -1, np.rint(kp[:, 1]).clip(min=0)).astype(int).tolist()
        entries.append((name, ys, xs))
    return write_annotations(Path(path), entries)
