"""Features given by the user: an ``.npz`` with ``features`` (N x D floats) and ``paths`` (N image paths).

Paths are relative to the dataset root (``cam3/0001/0001.jpg``, ``Visible/1/...bmp``); backslashes and a
leading ``./`` are accepted, and absolute paths under the root are made relative. Save one with::

    np.savez("feats.npz", features=feats.astype(np.float32), paths=np.array(rel_paths, dtype=str))

``evaluate --save-features`` writes the same two arrays plus, per row, ``pids``, ``cams`` and ``modality``
(``V`` / ``I``), and the scalars ``feature`` (``bn`` / ``pooled``), ``flip_test``, ``checkpoint_sha256``,
``run`` and ``dataset`` (:func:`save_features`); :func:`feature_meta` reads the scalars back for records.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from papg_bench.errors import UserError
from papg_bench.protocols.splits import Split

FEATURES_KEY = "features"
PATHS_KEY = "paths"
_SHOW_MISSING = 5
ROW_KEYS = ("pids", "cams", "modality")  # per-row arrays of a saved file
META_KEYS = ("feature", "flip_test", "checkpoint_sha256", "run", "dataset")  # its scalars


@dataclass(frozen=True)
class FeatureTable:
    features: np.ndarray  # (N, D) float32
    paths: list[str]  # normalised relative paths
    source: str  # where they came from, for messages
    index: dict[str, int] = field(repr=False, default_factory=dict)


def normalize_path(path: str, root: Path | None = None) -> str:
    text = str(path).strip().replace("\\", "/")
    if root is not None and text.startswith("/"):
        prefix = Path(root).resolve().as_posix().rstrip("/") + "/"
        if text.startswith(prefix):
            text = text[len(prefix):]
    while text.startswith("./"):
        text = text[2:]
    return text


def feature_table(features: np.ndarray, paths: Sequence[str], root: Path | None = None,
                  source: str = "features") -> FeatureTable:
    """Check and index features + paths (the in-memory twin of :func:`load_features`)."""
    feats = np.asarray(features)
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise UserError(f"{source}: '{FEATURES_KEY}' must be a non-empty 2-D array (images x dims), got {feats.shape}.")
    if not np.issubdtype(feats.dtype, np.number) or np.issubdtype(feats.dtype, np.complexfloating):
        raise UserError(f"{source}: '{FEATURES_KEY}' must hold real numbers, got dtype {feats.dtype}.")
    feats = feats.astype(np.float32, copy=False)
    if not np.isfinite(feats).all():
        bad = int(np.flatnonzero(~np.isfinite(feats).all(axis=1))[0])
        raise UserError(f"{source}: features hold NaN or infinite values (first in row {bad}); fix the extractor.")
    rel = [normalize_path(p, root) for p in paths]
    if len(rel) != len(feats):
        raise UserError(f"{source}: {len(feats)} feature rows but {len(rel)} paths; they must match one to one.")
    index: dict[str, int] = {}
    for row, p in enumerate(rel):
        if p in index:
            raise UserError(f"{source}: path {p!r} appears twice (rows {index[p]} and {row}); keep one row per image.")
        index[p] = row
    return FeatureTable(features=feats, paths=rel, source=source, index=index)


def load_features(path: Path | str, root: Path | None = None) -> FeatureTable:
    """Read ``path`` (.npz with ``features`` and ``paths``), checked and indexed by relative path."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: --features takes an .npz with 'features' and 'paths' arrays.")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            missing = [k for k in (FEATURES_KEY, PATHS_KEY) if k not in keys]
            if missing:
                raise UserError(
                    f"{path} lacks {', '.join(repr(k) for k in missing)} (it has: {', '.join(keys) or 'nothing'}); "
                    "save it with np.savez(file, features=..., paths=np.array(paths, dtype=str))."
                )
            features = data[FEATURES_KEY]
            paths = data[PATHS_KEY]
    except UserError:
        raise
    except ValueError as exc:  # object arrays need pickle, which we refuse to load
        raise UserError(
            f"{path}: {exc}. Save the paths as a string array: paths=np.array(paths, dtype=str)."
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npz file ({exc}).") from None
    if paths.ndim != 1 or paths.dtype.kind not in "US":
        raise UserError(f"{path}: 'paths' must be a 1-D string array, got shape {paths.shape} dtype {paths.dtype}.")
    text = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in paths.tolist()]
    return feature_table(features, text, root=root, source=str(path))


def save_features(path: Path | str, features: np.ndarray, paths: Sequence[str], pids: Sequence[int],
                  cams: Sequence[int], modalities: Sequence[str], meta: Mapping[str, str | bool | None]) -> Path:
    """Write a features file that :func:`load_features` reads, with each row's identity, camera and modality
    and the scalars of ``meta`` (:data:`META_KEYS`; None is left out), atomically."""
    from papg_bench.workspace import atomic_path

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: give the features file to write, e.g. {path / 'features.npz'}.")
    table = feature_table(features, paths, source=str(path))
    arrays: dict[str, np.ndarray] = {
        FEATURES_KEY: table.features, PATHS_KEY: np.array(table.paths, dtype=str),
        "pids": np.asarray(pids, dtype=np.int64), "cams": np.asarray(cams, dtype=np.int64),
        "modality": np.array([str(m) for m in modalities], dtype=str),
    }
    if any(len(arrays[k]) != len(table.paths) for k in ROW_KEYS):
        raise ValueError("pids, cams and modalities must have one entry per feature row")
    unknown = set(meta) - set(META_KEYS)
    if unknown:
        raise ValueError(f"unknown features-file fields: {sorted(unknown)}")
    arrays.update({k: np.array(v) for k, v in meta.items() if v is not None})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def feature_meta(path: Path | str) -> dict[str, str | bool]:
    """The scalars :func:`save_features` wrote (``feature``, ``flip_test``, ``checkpoint_sha256``, ...); those a
    file does not hold are left out, so a user's own .npz gives an empty dict."""
    out: dict[str, str | bool] = {}
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            for key in META_KEYS:
                if key in data and data[key].ndim == 0:
                    value = data[key].item()
                    out[key] = value if isinstance(value, bool) else str(value)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return {}
    return out


def rows_for(table: FeatureTable, split: Split, role: str = "query") -> np.ndarray:
    """Feature rows of ``split``'s images in protocol order; an error names the first missing paths."""
    rows = np.fromiter((table.index.get(p, -1) for p in split.paths), dtype=np.int64, count=len(split))
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        first = [split.paths[i] for i in missing[:_SHOW_MISSING]]
        example = f" (the file has paths like {table.paths[0]!r})" if table.paths else ""
        raise UserError(
            f"{table.source}: {len(missing)} {role} image(s) of the protocol have no feature, first: "
            f"{', '.join(first)}{example}. Extract features for every image, with paths relative to --root."
        )
    return rows
