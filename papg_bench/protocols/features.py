"""Features given by the user: an ``.npz`` with ``features`` (N x D floats) and ``paths`` (N image paths).

Paths are relative to the dataset root (``cam3/0001/0001.jpg``, ``Visible/1/...bmp``); backslashes and a
leading ``./`` are accepted, and absolute paths under the root are made relative. Save one with::

    np.savez("feats.npz", features=feats.astype(np.float32), paths=np.array(rel_paths, dtype=str))
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from papg_bench.errors import UserError
from papg_bench.protocols.splits import Split

FEATURES_KEY = "features"
PATHS_KEY = "paths"
_SHOW_MISSING = 5


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
