"""``papg-bench pose``: fill a store's ``poses.npy`` by import or estimation, then report on it.

What is done:

* ``source`` given: import the keypoint file (CSV / OpenPose folder / COCO JSON), converted to store pixels.
* ``estimator`` given: run it over every image of the store in batches (progress bar).
* neither: keep the store's existing keypoints when there are some, else run ``rtmpose``.

Keypoints made from the same input as last time (same file bytes or same weights, same settings,
same store) are not made again unless ``force``. Everything that can fail (the keypoint file, the
weights, the ground-truth file) is read before ``poses.npy`` is written, so a failure leaves it as it
was. Then the detection rates are computed, and on request the PCK against ``eval_against``, a
preview sheet and a CSV export.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.store import Store, open_store
from papg_bench.errors import UserError
from papg_bench.pose.diagnostics import detection_rates, pck, preview_rows, write_preview
from papg_bench.pose.keypoints import DEFAULT_THRESHOLD, NUM_JOINTS, load_poses, read_poses_meta, save_poses
from papg_bench.progress import track
from papg_bench.stages import DONE, REUSED, Mark, is_done

DEFAULT_ESTIMATOR = "rtmpose"


@dataclass
class PoseResult:
    store: Path
    status: str  # a stage outcome: done (imported or estimated now, see meta["source"]) or reused
    count: int
    meta: dict[str, Any]
    detection: dict[str, Any]
    pck: dict[str, Any] | None = None
    preview: Path | None = None
    export: Path | None = None
    export_rows: int = 0
    notes: list[str] = field(default_factory=list)


def run_pose(
    store_dir: Path | str,
    *,
    source: Path | str | None = None,
    fmt: str = "auto",
    source_size: tuple[int, int] | None = None,
    estimator: str | None = None,
    weights: Path | str | None = None,
    download: bool = False,
    batch_size: int = 32,
    device: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    rcnn_min_size: int = 800,
    preview: Path | str | None = None,
    eval_against: Path | str | None = None,
    eval_format: str = "auto",
    export: Path | str | None = None,
    force: bool = False,
) -> PoseResult:
    """Fill (or reuse) ``<store_dir>/poses.npy`` and report on it; see the module doc."""
    from papg_bench.pose.importers import import_keypoints

    store = open_store(Path(store_dir))
    if source is not None and estimator is not None:
        raise UserError("--from and --estimator both given: import a keypoint file or run an estimator, not both.")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1.")
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold {threshold}: must be between 0 and 1.")
    paths = store.paths
    source_root = store.meta.get("source_root")
    truth = None
    if eval_against is not None:  # read first: a bad ground-truth file must not cost an estimation run
        truth, _ = import_keypoints(Path(eval_against), eval_format, paths, store.size, source_root, source_size,
                                    threshold)

    previous = read_poses_meta(store.path)
    have_poses = (store.path / "poses.npy").is_file() and previous is not None
    if source is None and estimator is None and have_poses and not force:
        status, poses, meta = REUSED, load_poses(store.path), previous
    elif source is not None:
        signature = _file_signature(Path(source), fmt, source_size, threshold, store)
        if not force and is_done(_poses_mark(previous, store), signature):
            status, poses, meta = REUSED, load_poses(store.path), previous
        else:
            poses, kfile = import_keypoints(Path(source), fmt, paths, store.size, source_root, source_size, threshold)
            meta = {"source": "import", "file": str(Path(source).resolve()), "format": kfile.format,
                    "file_entries": len(kfile.names), "threshold": threshold, "signature": signature}
            status = DONE
    else:
        from papg_bench.pose.estimators import build_estimator

        model = build_estimator(estimator or DEFAULT_ESTIMATOR, weights, download, device, threshold, rcnn_min_size)
        signature = {"kind": "estimator", **{k: v for k, v in model.describe().items() if k not in ("weights",
                                                                                                     "device")},
                     "store": store.meta.get("content_checksum")}
        if not force and is_done(_poses_mark(previous, store), signature):
            status, poses, meta = REUSED, load_poses(store.path), previous
        else:
            poses = estimate_store(model, store, batch_size)
            meta = {"source": "estimator", **model.describe(), "batch_size": batch_size, "signature": signature}
            status = DONE

    meta = dict(meta)
    detection = detection_rates(poses, store.modalities, store.cams)
    if status == DONE:
        meta.update(image_size=list(store.size), store_checksum=store.meta.get("content_checksum"),
                    dataset=store.meta.get("dataset"), detection=detection)
        save_poses(store.path, poses, meta)
    result = PoseResult(store=store.path, status=status, count=len(poses), meta=meta, detection=detection)
    if source is not None and status == DONE:
        covered = int((poses[..., 2] > 0).any(1).sum())
        if covered < len(poses):
            result.notes.append(f"{len(poses) - covered} of {len(poses)} store images have no keypoints in the file "
                                "(stored as missing).")
    if truth is not None:
        result.pck = pck(poses, truth, store.modalities)
    if preview is not None:
        rows = preview_rows(store.modalities)
        result.preview = write_preview(Path(preview), np.asarray(store.images[rows]), poses[rows])
    if export is not None:
        from papg_bench.pose.importers import export_csv

        result.export = Path(export)
        result.export_rows = export_csv(result.export, poses, paths, store.size, source_root, source_size)
    return result


def estimate_store(model: Any, store: Store, batch_size: int) -> np.ndarray:
    """Run ``model.estimate`` over every image of ``store`` in batches of consecutive rows."""
    count = len(store)
    poses = np.empty((count, NUM_JOINTS, 3), dtype=np.float32)
    with track(f"pose {model.name}", total=count, unit="img") as advance:
        for start in range(0, count, batch_size):
            stop = min(count, start + batch_size)
            poses[start:stop] = model.estimate(np.asarray(store.images[start:stop]))
            advance(stop - start)
    return poses


def _poses_mark(previous: dict[str, Any] | None, store: Store) -> Mark | None:
    """The stage mark of the store's poses: the signature they were made for, complete when they load."""
    if previous is None:
        return None
    try:
        load_poses(store.path)
    except UserError:
        return Mark(previous.get("signature"), False)
    return Mark(previous.get("signature"), True)


def _file_signature(source: Path, fmt: str, source_size: tuple[int, int] | None, threshold: float,
                    store: Store) -> dict[str, Any]:
    """What an import depends on: the file's (or folder's) bytes, the options and the store."""
    digest = hashlib.sha256()
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"--from {source}: no such file or folder (or it is empty).")
    for file in files:
        digest.update(file.relative_to(source).as_posix().encode() if source.is_dir() else b"")
        digest.update(file.read_bytes())
    return {"kind": "import", "sha256": digest.hexdigest(), "format": fmt,
            "source_size": list(source_size) if source_size else None, "threshold": threshold,
            "store": store.meta.get("content_checksum")}
