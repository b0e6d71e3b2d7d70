"""``papg-bench import-generated``: another generator's images as a generated set of the workspace.

Every imported image is matched to the store row it was made from; its direction follows from that
row's modality (a visible source gives ``V2I``, an infrared one ``I2V``) and its target modality from the
direction. Three layouts of ``--from DIR``:

``papg``
    The released PAPG ``test.py`` output: ``DIR/A/`` holds fake visible images made from infrared ones,
    ``DIR/B/`` fake infrared images made from visible ones. ``test.py`` names each file after its source
    image as ``<source name up to its first dot>_.png``. A file matches the source whose path (without its
    extension) is the file's path under ``A/`` or ``B/`` (without ``.png`` and that trailing ``_``), or,
    for flat folders, whose path with ``/`` written as ``_`` is, or whose file name is, when only one
    source of that modality has it.
``camfolders``
    Images written in the dataset's own layout (as DiVE writes a diffusion model's images into the camera
    folders), each at the path of its source image (any image extension, an optional trailing ``_``,
    optionally under a ``V2I/`` or ``I2V/`` folder), or named in a mapping file.
``paired``
    A folder of generated images in any sub-folders (a CycleGAN-style ``trainA/`` and ``trainB/``, say)
    and a mapping file.

The mapping file (``--mapping FILE``, by default ``DIR/mapping.csv`` when it exists; required for
``paired``) is a CSV with the header ``generated_path,source_path``: each generated image's path under
``DIR`` and the path of its source image as the store's index has it (relative to the dataset root).

Nothing is written unless every image matches exactly one source image: unmatched and ambiguous files
stop the import with the first ones named. Images made from test identities are refused (the leakage
guard of :func:`~papg_bench.generators.sets.guard_plan`), and an image that cannot be decoded stops the
import naming it. Images are resized with the store's own resizing (:func:`~papg_bench.data.prepare.load_resized`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from papg_bench.data.prepare import load_resized
from papg_bench.data.store import Store, checksum_files, is_complete, open_store
from papg_bench.errors import UserError
from papg_bench.generators.sets import (
    DIRECTIONS,
    Batch,
    SetResult,
    Translator,
    check_set_name,
    default_display,
    read_manifest,
    write_set,
)
from papg_bench.workspace import Workspace, sha256_file

LAYOUTS = ("papg", "camfolders", "paired")
PAPG_FOLDERS = {"A": "I2V", "B": "V2I"}  # released test.py: A = fake visible from infrared, B = fake infrared
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAPPING = "mapping.csv"
MAPPING_COLUMNS = ("generated_path", "source_path")
CHUNK = 64
SHOWN = 5


@dataclass(frozen=True)
class Match:
    """The imported file ``file`` (relative to the folder) was made from store row ``row`` in ``direction``."""

    file: str
    row: int
    direction: str


def image_files(folder: Path) -> list[str]:
    """Every image file under ``folder`` (recursively, hidden files and folders left out), relative, sorted."""
    found = []
    for path in Path(folder).rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(rel.as_posix())
    return sorted(found)


def _stem(path: str) -> str:
    pure = PurePosixPath(path)
    return str(pure.with_suffix("")) if pure.suffix else path


def _keys(rel: str) -> list[str]:
    """The names a generated file may give its source by: its path without extension, then without the
    trailing ``_`` the released ``test.py`` adds."""
    stem = _stem(rel)
    return [stem, stem[:-1]] if stem.endswith("_") and len(stem) > 1 else [stem]


class _Index:
    """Source rows by path (without extension), by path with '/' as '_', and by file name up to its first dot."""

    def __init__(self, store: Store, rows: np.ndarray) -> None:
        self.store = store
        self.by_path: dict[str, list[int]] = {}
        self.by_flat: dict[str, list[int]] = {}
        self.by_name: dict[str, list[int]] = {}
        for row in rows.tolist():
            stem = _stem(store.paths[row])
            self.by_path.setdefault(stem, []).append(row)
            self.by_flat.setdefault(stem.replace("/", "_"), []).append(row)
            self.by_name.setdefault(PurePosixPath(store.paths[row]).name.split(".")[0], []).append(row)

    def lookup(self, rel: str, loose: bool) -> list[int]:
        for key in _keys(rel):
            if key in self.by_path:
                return self.by_path[key]
        if not loose:
            return []
        for key in _keys(rel):
            if key.replace("/", "_") in self.by_flat:
                return self.by_flat[key.replace("/", "_")]
        for key in _keys(rel):
            if "/" not in key and key in self.by_name:
                return self.by_name[key]
        return []


def _shown(items: list[str]) -> str:
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _rows_of(store: Store, modality: str | None) -> np.ndarray:
    return np.flatnonzero(store.modalities == modality) if modality else np.arange(len(store))


def _check_matches(folder: Path, unmatched: list[str], ambiguous: list[tuple[str, list[int]]], store: Store,
                   hint: str) -> None:
    if unmatched:
        raise UserError(f"{folder}: {len(unmatched)} image(s) match no source image of {store.path}: "
                        f"{_shown(unmatched)}. {hint} Nothing was imported.")
    if ambiguous:
        file, rows = ambiguous[0]
        candidates = _shown([store.paths[r] for r in rows])
        raise UserError(f"{folder}: {len(ambiguous)} image(s) match several source images, first {file} "
                        f"({len(rows)}: {candidates}): name each file after its source's path, or give --mapping. "
                        "Nothing was imported.")


def match_by_name(store: Store, folder: Path, layout: str) -> list[Match]:
    """Match every image of a ``papg`` or ``camfolders`` folder to its source row by its name."""
    folder = Path(folder)
    matches: list[Match] = []
    unmatched: list[str] = []
    ambiguous: list[tuple[str, list[int]]] = []
    if layout == "papg":
        present = [name for name in PAPG_FOLDERS if (folder / name).is_dir()]
        if not present:
            raise UserError(f"--from {folder}: no A/ or B/ folder: the released PAPG test.py writes fake visible "
                            "images to output/A and fake infrared ones to output/B; pass that output folder.")
        groups = [(f"{name}/", PAPG_FOLDERS[name], image_files(folder / name)) for name in present]
        hint = ("Files in A/ (fake visible) must be named after an infrared source image and files in B/ after a "
                "visible one, e.g. A/<source path without extension>_.png, or give --mapping.")
    else:
        files = image_files(folder)
        by_direction: dict[str | None, list[str]] = {}
        for rel in files:
            head, _, rest = rel.partition("/")
            if head in DIRECTIONS and rest:
                by_direction.setdefault(head, []).append(rel)
            else:
                by_direction.setdefault(None, []).append(rel)
        groups = [(f"{d}/" if d else "", d, [r[len(d) + 1:] if d else r for r in rels])
                  for d, rels in by_direction.items()]
        hint = ("Each image must sit at its source image's path in the dataset's layout (any image extension, "
                "optionally under V2I/ or I2V/), or give a mapping file with --mapping.")
    indices: dict[str | None, _Index] = {}
    for prefix, direction, rels in groups:
        modality = DIRECTIONS[direction][0] if direction else None
        index = indices.setdefault(modality, _Index(store, _rows_of(store, modality)))
        for rel in rels:
            rows = index.lookup(rel, loose=layout == "papg")
            if not rows:
                unmatched.append(prefix + rel)
            elif len(rows) > 1:
                ambiguous.append((prefix + rel, rows))
            else:
                row = rows[0]
                matches.append(Match(prefix + rel, row, direction or _direction_of(store, row)))
    if not matches and not unmatched and not ambiguous:
        raise UserError(f"--from {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found.")
    _check_matches(folder, unmatched, ambiguous, store, hint)
    return matches


def _direction_of(store: Store, row: int) -> str:
    modality = store.modalities[row]
    return next(d for d, (source, _) in DIRECTIONS.items() if source == modality)


def read_mapping(path: Path) -> list[tuple[str, str]]:
    """The ``(generated_path, source_path)`` lines of a mapping CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not set(MAPPING_COLUMNS) <= {f.strip() for f in reader.fieldnames}:
                raise UserError(f"--mapping {path}: the first line must be the header "
                                f"{','.join(MAPPING_COLUMNS)} (found {reader.fieldnames}).")
            lines = []
            for number, line in enumerate(reader, 2):
                line = {k.strip(): (v or "").strip() for k, v in line.items() if k is not None}
                generated, source = line.get("generated_path", ""), line.get("source_path", "")
                if not generated or not source:
                    raise UserError(f"--mapping {path}, line {number}: both generated_path and source_path are "
                                    "needed.")
                lines.append((generated.removeprefix("./"), source.removeprefix("./")))
    except FileNotFoundError:
        raise UserError(f"--mapping {path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--mapping {path} is not a UTF-8 CSV ({exc}).") from None
    if not lines:
        raise UserError(f"--mapping {path} maps no image.")
    return lines


def match_by_mapping(store: Store, folder: Path, mapping: Path, layout: str) -> list[Match]:
    """Match every image of ``folder`` to its source row through the mapping CSV."""
    folder = Path(folder)
    lines = read_mapping(mapping)
    files = set(image_files(folder))
    seen: dict[str, int] = {}
    row_of = store.row_of_path()
    matches, unmatched, missing = [], [], []
    for generated, source in lines:
        if generated in seen:
            raise UserError(f"--mapping {mapping}: {generated} is mapped twice; give each image one source.")
        seen[generated] = 1
        if not (folder / generated).is_file():
            missing.append(generated)
            continue
        row = row_of.get(source)
        if row is None:
            unmatched.append(f"{generated} -> {source}")
            continue
        direction = _direction_of(store, row)
        head = generated.split("/", 1)[0]
        expected = PAPG_FOLDERS.get(head) if layout == "papg" else None
        if expected is not None and expected != direction:
            raise UserError(f"--mapping {mapping}: {generated} sits in {head}/ ({expected}) but its source {source} "
                            f"is a {'visible' if direction == 'V2I' else 'infrared'} image.")
        matches.append(Match(generated, row, direction))
    if missing:
        raise UserError(f"--mapping {mapping}: {len(missing)} mapped image(s) do not exist under {folder}: "
                        f"{_shown(missing)}. Nothing was imported.")
    if unmatched:
        raise UserError(f"--mapping {mapping}: {len(unmatched)} source path(s) are not images of {store.path}: "
                        f"{_shown(unmatched)}; source_path is the image's path relative to the dataset root, as in "
                        "the store's index.csv. Nothing was imported.")
    extra = sorted(files - set(seen))
    if extra:
        raise UserError(f"{folder}: {len(extra)} image(s) are not in the mapping {mapping}: {_shown(extra)}. "
                        "Add them to the mapping, or remove them. Nothing was imported.")
    return matches


class ImportTranslator(Translator):
    """Images another generator wrote, decoded and resized to the store's size."""

    kind = "import"
    columns = ("imported_from",)

    def __init__(self, folder: Path, layout: str, matches: list[Match], mapping: Path | None, trial: int) -> None:
        self.folder, self.layout, self.matches, self.mapping, self.trial = Path(folder), layout, matches, mapping, trial
        self.by_direction = {d: [m for m in matches if m.direction == d] for d in DIRECTIONS}
        files = sorted(m.file for m in matches)
        self.mapping_sha256 = sha256_file(mapping) if mapping is not None else None
        extra = json.dumps({"layout": layout, "mapping": self.mapping_sha256}, sort_keys=True)
        self.files_sha256 = checksum_files(self.folder, files, extra=extra)

    def fingerprint(self, store: Store) -> str:
        return f"import:{self.files_sha256}"

    def plan(self, store: Store) -> dict[str, np.ndarray]:
        return {d: np.array([m.row for m in ms], dtype=np.int64) for d, ms in self.by_direction.items()}

    def describe(self, direction: str, k: int) -> str:
        return str(self.folder / self.by_direction[direction][k].file)

    def origin(self) -> dict[str, Any]:
        return {"layout": self.layout, "folder": str(self.folder.resolve()), "files": len(self.matches),
                "files_sha256": self.files_sha256,
                "mapping": str(Path(self.mapping).resolve()) if self.mapping is not None else None,
                "mapping_sha256": self.mapping_sha256, "trial": self.trial}

    def meta(self) -> dict[str, Any]:
        return {"generator": str(self.folder.resolve()), "generator_run": "import", "imported_from":
                str(self.folder.resolve()), "layout": self.layout, "trial": self.trial}

    def generator(self, fingerprint: str) -> str:
        return fingerprint

    def default_display(self, name: str) -> str:
        return default_display(name, {"kind": self.kind})

    def batches(self, store: Store, plan: dict[str, np.ndarray]) -> Iterator[Batch]:
        height, width = store.size
        for direction, matches in self.by_direction.items():
            for begin in range(0, len(matches), CHUNK):
                chunk = matches[begin:begin + CHUNK]
                images = np.stack([self._load(m.file, height, width) for m in chunk])
                yield Batch(np.array([m.row for m in chunk], dtype=np.int64), direction, images,
                            {"imported_from": [m.file for m in chunk]})

    def _load(self, rel: str, height: int, width: int) -> np.ndarray:
        try:
            return load_resized(self.folder / rel, height, width)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file named
            raise UserError(f"{self.folder / rel} cannot be read as an image ({type(exc).__name__}: {exc}): "
                            "replace or remove it. Nothing was imported.") from None


def import_generated(ws: Workspace, dataset: str, folder: Path, layout: str, name: str, *,
                     display: str | None = None, mapping: Path | None = None, trial: int = 0,
                     force: bool = False) -> SetResult:
    """Import the images of ``folder`` (``layout``) as the generated set ``name`` of ``dataset``."""
    check_set_name(name)
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--from {folder} is not a folder.")
    store = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    if mapping is None and (folder / MAPPING).is_file():
        mapping = folder / MAPPING
    if mapping is None and layout == "paired":
        raise UserError(f"--layout paired needs a mapping file: give --mapping FILE or write {folder / MAPPING} "
                        f"with the header {','.join(MAPPING_COLUMNS)}.")
    out = ws.generated_dir(dataset, name)
    if is_complete(out) and not force:
        kind = (read_manifest(out).get("origin") or {}).get("kind")
        if kind != "import":
            raise UserError(f"{out} holds the generated set {name!r} of another origin ({kind}): choose another "
                            "--name, or pass --force to replace it.")
    matches = (match_by_mapping(store, folder, Path(mapping), layout) if mapping is not None
               else match_by_name(store, folder, layout))
    translator = ImportTranslator(folder, layout, matches, Path(mapping) if mapping is not None else None, trial)
    return write_set(ws, dataset, name, translator, display=display, force=force, describe=translator.describe)

