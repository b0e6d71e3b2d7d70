"""Generated sets: named image sets in the workspace, and the contract of what fills them.

A generated set is ``<work>/generated/<dataset>/<name>/``: a store (``images.npy``, ``index.csv``,
``meta.json``, as :mod:`papg_bench.data.store`) whose every row is an image made from one row of the
dataset's store, plus ``manifest.json``, which says what the set is::

    format_version  1
    name            the folder name: what ``train --augment gen:NAME`` and the report call the set
    display         its label in report tables ("PAPG (ours)", "true counterparts (upper bound)", ...)
    dataset         the dataset of the source store (its meta.json ``dataset``)
    origin          {"kind": "generator" | "counterparts" | "import", ...}: a generator run with its settings
                    and checkpoint sha256, the true counterparts, or an imported folder with a sha256 over
                    its files (each translator fills in its own keys)
    source          {"store": path of the source store, "checksum": its content checksum}
    rows            which store rows the set covers: count, per-direction counts, identities, the trial
                    whose training rows they are, and ``index_sha256``, the sha256 of ``index.csv``, whose
                    columns ``source_row``, ``direction``, ``modality`` (the target modality) and ``pid``
                    name every image's source row, direction, target modality and identity
    fingerprint     identifies the images for the source store (a checkpoint's sha256, an import's files)
    sha256          sha256 over the manifest without ``display``, ``quality`` and ``sha256`` itself: what
                    runs and result records cite, unchanged by a new display name or new quality scores
    quality         the ``--score`` report (aligned SSIM/PSNR/L1, modality gap) once it was computed

Every writer of generated images goes through :func:`write_set` with a :class:`Translator`: PAPG synthesis
(:mod:`.synthesis`), the true counterparts (:mod:`.counterparts`) and imports of other generators' output
(:mod:`.imports`). A new generator is one module with one :class:`Translator` subclass; the trainer, the
CLI's ``train`` and the report read any set by its name.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.data.store import Store, index_csv, is_complete, open_store
from papg_bench.data.writer import StoreWriter
from papg_bench.errors import UserError
from papg_bench.progress import track
from papg_bench.stages import DONE, REUSED, Mark, is_done, read_json
from papg_bench.workspace import Workspace, atomic_write_json, sha256_file

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DIRECTIONS = {"V2I": ("V", "I"), "I2V": ("I", "V")}  # direction -> (source modality, target modality)
GENERATED_COLUMNS = ("path", "pid", "cam", "modality", "split", "source_row", "direction", "generator", "seed")
ORIGIN_KINDS = ("generator", "counterparts", "import")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UNHASHED = ("display", "quality", "sha256")


@dataclass
class Batch:
    """Images a translator made: ``images[k]`` (uint8, H x W x 3 at the store's size) from source row
    ``rows[k]`` in ``direction``; ``extra`` holds the values of the translator's extra columns, per image."""

    rows: np.ndarray
    direction: str
    images: np.ndarray
    extra: dict[str, list[Any]] = field(default_factory=dict)


class Translator(ABC):
    """What makes the images of a generated set. A new generator is one subclass of this.

    Set ``kind`` (one of ``ORIGIN_KINDS``) and implement:

    - :meth:`fingerprint`: a string that changes whenever the images would (a checkpoint's sha256, a sha256
      over an imported folder's files, the settings that change the output). :func:`write_set` rewrites a
      set only when its fingerprint or its source store changed (or with ``force``).
    - :meth:`origin`: the manifest's ``origin``: ``{"kind": ..., ...}`` with whatever tells a reader where
      the images came from (settings, checkpoint path and sha256, imported folder, ...).
    - :meth:`plan`: the source rows it will translate, per direction (``{"V2I": rows, "I2V": rows}``, a row
      may appear several times when several images come from it). :func:`write_set` refuses any row that
      is not a training row of the trial (no test identity may leak into training) before anything is made.
    - :meth:`batches`: yield :class:`Batch` es of images for the planned rows, in any order. A translator
      may leave out planned rows it cannot make (the set then holds fewer images) or raise
      :class:`~papg_bench.errors.UserError` to stop; nothing is written then.

    Optional: ``columns`` (extra index columns, filled from :attr:`Batch.extra`), :meth:`meta` (extra keys
    for meta.json), :meth:`default_display`, ``seed`` (the index's ``seed`` column), ``trial`` (whose
    training rows are allowed; :meth:`plan` may set it) and :meth:`generator` (the index's ``generator``
    column; default the fingerprint). :meth:`origin` and :meth:`meta` are called after :meth:`plan`.
    """

    kind: str = "generator"
    columns: tuple[str, ...] = ()
    seed: int = 0
    trial: int = 0  # whose training rows may be sources (datasets whose training ids change with the trial)

    @abstractmethod
    def fingerprint(self, store: Store) -> str:
        """Identifies the images this translator makes from ``store``."""

    @abstractmethod
    def origin(self) -> dict[str, Any]:
        """The manifest's ``origin`` (``kind`` is added when missing)."""

    @abstractmethod
    def plan(self, store: Store) -> dict[str, np.ndarray]:
        """Source rows to translate, per direction (``V2I``: visible sources, ``I2V``: infrared sources)."""

    @abstractmethod
    def batches(self, store: Store, plan: dict[str, np.ndarray]) -> Iterator[Batch]:
        """The images of the planned rows, batch by batch."""

    def meta(self) -> dict[str, Any]:
        """Extra keys of the set's meta.json (after the provenance every generated store starts with)."""
        return {}

    def generator(self, fingerprint: str) -> str:
        """The index's ``generator`` column."""
        return fingerprint

    def default_display(self, name: str) -> str:
        """The set's label in report tables when ``--display`` is not given."""
        return name


@dataclass
class SetResult:
    path: Path
    status: str  # a stage outcome: done or reused
    count: int
    fingerprint: str
    seconds: float
    manifest: dict[str, Any]


def check_set_name(name: str, option: str = "--name") -> str:
    """A set name is a folder name: letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UserError(f"{option} {name!r}: a generated set's name is 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit (it names the folder <work>/generated/<dataset>/<name>/).")
    return name


def generated_meta(store: Store, digest: str, source_checksum: str) -> dict[str, Any]:
    """The provenance every generated store starts its meta.json with (generator-specific keys follow)."""
    return {
        "dataset": store.meta.get("dataset"),
        **({"trials": store.meta["trials"]} if "trials" in store.meta else {}),
        "kind": "generated",
        "source_store": str(store.path),
        "source_checksum": source_checksum,
        "content_checksum": f"{digest}:{source_checksum}",
        "generator_sha256": digest,
    }


def set_mark(out: Path) -> Mark | None:
    """The stage mark of a generated set: the images' fingerprint and the source store's checksum."""
    meta = read_json(Path(out) / "meta.json")
    if meta is None:
        return None
    return Mark([meta.get("generator_sha256"), meta.get("source_checksum")], bool(meta.get("complete")), meta)


def add_generated_row(columns: dict[str, list[Any]], store: Store, row: int, direction: str, generator: str,
                      seed: int) -> None:
    """The index entry of the image made from source ``row`` in ``direction`` (GENERATED_COLUMNS)."""
    values = (f"{direction}/{store.paths[row]}", int(store.pids[row]), int(store.cams[row]), DIRECTIONS[direction][1],
              store.splits[row], int(row), direction, generator, seed)
    for name, value in zip(GENERATED_COLUMNS, values, strict=True):
        columns[name].append(value)


def guard_plan(store: Store, plan: dict[str, np.ndarray], trial: int = 0,
               describe: Any = None) -> None:
    """Refuse planned rows of the wrong source modality or outside the training rows of ``trial``.

    ``describe(direction, k)`` names the k-th planned image of a direction in the message (an imported
    file, say); by default the source row's path names it.
    """
    from papg_bench.generators.pairing import held_out_identities, split_trial

    train = store.in_split("train", split_trial(store, trial))
    test_ids = held_out_identities(store, trial)
    for direction, rows in plan.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(store)):
            raise ValueError(f"planned rows outside the store ({len(store)} rows)")
        source = DIRECTIONS[direction][0]
        wrong = np.flatnonzero(store.modalities[rows] != source)
        leaked = np.flatnonzero(~train[rows] | np.isin(store.pids[rows], list(test_ids)))
        for bad, why in ((wrong, f"is not a {'visible' if source == 'V' else 'infrared'} image, so it cannot be "
                                 f"the source of a {direction} image"),
                         (leaked, "belongs to a test identity (or is outside the training rows of the trial); "
                                  "only training identities may be augmented, or test data would leak into "
                                  "training")):
            if len(bad):
                names = [_name(store, rows, direction, k, describe) for k in bad[:3]]
                more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
                raise UserError(f"{'; '.join(names)}{more}: the source image {why}. Nothing was written.")


def _name(store: Store, rows: np.ndarray, direction: str, k: int, describe: Any) -> str:
    row = int(rows[k])
    base = f"{store.paths[row]} (identity {int(store.pids[row])})"
    return f"{describe(direction, int(k))} -> {base}" if describe is not None else base


def write_set(ws: Workspace, dataset: str, name: str, translator: Translator, *, display: str | None = None,
              force: bool = False, describe: Any = None) -> SetResult:
    """Write (or confirm up to date) the generated set ``name`` of ``dataset`` from ``translator``.

    The set is written through a temporary folder and appears whole or not at all; an up-to-date set is
    kept (a new ``display`` only updates its manifest). ``describe(direction, k)`` names the k-th planned
    image of a direction in error messages (an imported file, say).
    """
    check_set_name(name)
    store = open_store(ws.dataset_dir(dataset), "store")
    digest = translator.fingerprint(store)
    source_checksum = store.checksum
    out = ws.generated_dir(dataset, name)
    start = time.perf_counter()
    mark = set_mark(out)
    if not force and is_done(mark, [digest, source_checksum]):
        manifest = read_manifest(out)
        wanted = display if display is not None else manifest.get("display")
        if not (out / MANIFEST).is_file() or wanted != manifest.get("display"):
            manifest["display"] = wanted
            atomic_write_json(out / MANIFEST, manifest)
        count = int(mark.record.get("count", 0))
        return SetResult(out, REUSED, count, digest, time.perf_counter() - start, manifest)
    plan = {d: np.asarray(plan_rows, dtype=np.int64) for d, plan_rows in translator.plan(store).items()}
    guard_plan(store, plan, translator.trial, describe)
    total = sum(len(r) for r in plan.values())
    if not total:
        raise UserError(f"{translator.kind} {name!r}: nothing to write for {dataset} (no source images planned).")
    manifest = _write(store, translator, plan, total, digest, source_checksum, out, name, display)
    return SetResult(out, DONE, int(manifest["rows"]["count"]), digest, time.perf_counter() - start, manifest)


def _write(store: Store, translator: Translator, plan: dict[str, np.ndarray], total: int, digest: str,
           source_checksum: str, out: Path, name: str, display: str | None) -> dict[str, Any]:
    height, width = store.size
    columns: dict[str, list[Any]] = {k: [] for k in (*GENERATED_COLUMNS, *translator.columns)}
    generator = translator.generator(digest)
    with StoreWriter(out, total, height, width) as writer, \
            track(f"{translator.kind} {name}", total, "img") as advance:
        written = 0
        for batch in translator.batches(store, plan):
            count = len(batch.rows)
            images = np.asarray(batch.images)
            if images.shape != (count, height, width, 3) or images.dtype != np.uint8:
                raise ValueError(f"{type(translator).__name__} gave images of shape {images.shape} {images.dtype} "
                                 f"for {count} rows; expected uint8 {count} x {height} x {width} x 3")
            if written + count > total:
                raise ValueError(f"{type(translator).__name__} gave more images than it planned ({total})")
            writer.images[written:written + count] = images
            written += count
            for k, row in enumerate(np.asarray(batch.rows, dtype=np.int64).tolist()):
                add_generated_row(columns, store, row, batch.direction, generator, translator.seed)
                for column in translator.columns:
                    columns[column].append(batch.extra[column][k])
            advance(count)
        if not written:
            raise UserError(f"{translator.kind} {name!r}: no image was made for {store.path}.")
        if written < total:
            writer.compact(range(written))
        meta = {**generated_meta(store, digest, source_checksum), **translator.meta(),
                "directions": {d: columns["direction"].count(d) for d in DIRECTIONS}, "generated_set": name}
        manifest = build_manifest(
            name=name, dataset=store.meta.get("dataset"), origin={"kind": translator.kind, **translator.origin()},
            source={"store": str(store.path), "checksum": source_checksum}, fingerprint=digest,
            rows=_rows_summary(columns, translator.trial, _index_sha256(columns)),
            display=display or translator.default_display(name))
        atomic_write_json(writer.tmp / MANIFEST, manifest)
        writer.finish(columns, meta)
    return manifest


def _index_sha256(columns: dict[str, list[Any]]) -> str:
    """The sha256 of the index.csv that :meth:`StoreWriter.finish` writes for ``columns``."""
    text = index_csv({"row": list(range(len(columns["path"]))), **columns})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rows_summary(columns: dict[str, Any], trial: int | None, index_sha256: str) -> dict[str, Any]:
    directions = [str(d) for d in columns["direction"]]
    return {
        "count": len(directions),
        "directions": {d: directions.count(d) for d in DIRECTIONS},
        "identities": len({int(p) for p in columns["pid"]}),
        "source_rows": len({int(r) for r in columns["source_row"]}),
        "trial": trial,
        "index": "index.csv",
        "index_columns": {"source_row": "source row in the dataset store", "direction": "V2I or I2V",
                          "modality": "target modality", "pid": "identity (the source's)"},
        "index_sha256": index_sha256,
    }


def build_manifest(*, name: str, dataset: Any, origin: dict[str, Any], source: dict[str, Any], fingerprint: str,
                   rows: dict[str, Any], display: str) -> dict[str, Any]:
    """A manifest with its ``sha256``."""
    manifest = {"format_version": MANIFEST_FORMAT, "name": name, "display": display, "dataset": dataset,
                "origin": origin, "source": source, "rows": rows, "fingerprint": fingerprint}
    manifest["sha256"] = manifest_sha256(manifest)
    return manifest


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``manifest`` without ``display``, ``quality`` and ``sha256``."""
    core = {k: v for k, v in manifest.items() if k not in UNHASHED}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the generated set at ``path``; for a set written before manifests, one derived from
    its meta.json and index (not written back)."""
    path = Path(path)
    file = path / MANIFEST
    if file.is_file():
        try:
            manifest = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{file} is not valid JSON ({exc}): write the set again with --force.") from None
        if int(manifest.get("format_version", 0)) > MANIFEST_FORMAT:
            raise UserError(f"{file}: manifest format {manifest.get('format_version')} is newer than this "
                            f"papg-bench understands ({MANIFEST_FORMAT}): upgrade papg-bench.")
        return manifest
    generated = open_store(path, "generated set")
    meta = generated.meta
    origin = _legacy_origin(meta)
    columns = {k: list(generated.columns[k]) for k in ("direction", "pid", "source_row") if k in generated.columns}
    columns.setdefault("direction", [])
    columns.setdefault("source_row", [])
    rows = _rows_summary(columns, meta.get("trial"), sha256_file(path / "index.csv"))
    fingerprint = str(meta.get("generator_sha256") or meta.get("content_checksum") or "")
    return build_manifest(name=path.name, dataset=meta.get("dataset"), origin=origin,
                          source={"store": meta.get("source_store"), "checksum": meta.get("source_checksum")},
                          fingerprint=fingerprint, rows=rows, display=default_display(path.name, origin))


def _legacy_origin(meta: dict[str, Any]) -> dict[str, Any]:
    digest = str(meta.get("generator_sha256") or "")
    if digest.startswith("counterparts"):
        return {"kind": "counterparts", "source": meta.get("generator"), "trial": meta.get("trial"),
                "other_moment": bool(meta.get("other_moment"))}
    if "generator_config" in meta:
        return {"kind": "generator", "generator": "papg", "run": meta.get("generator_run"),
                "checkpoint": meta.get("generator"), "checkpoint_sha256": digest,
                "settings": meta.get("generator_config")}
    return {"kind": "unknown"}


def default_display(name: str, origin: dict[str, Any]) -> str:
    """The label of a set whose writer gave none."""
    kind = origin.get("kind")
    if kind == "counterparts":
        return "true counterparts, another moment" if origin.get("other_moment") else \
            "true counterparts (upper bound)"
    if kind == "generator" and origin.get("generator") == "papg":
        return "PAPG (ours)" if name == "papg" else f"PAPG ({name})"
    if kind == "import":
        return f"{name} (imported)"
    return name


def set_reference(ws: Workspace, dataset: str, name: str) -> dict[str, Any]:
    """What a run and its records cite of a set: name, display, manifest sha256 and origin kind."""
    manifest = read_manifest(ws.generated_dir(dataset, name))
    return {"name": name, "display": manifest.get("display") or name, "sha256": manifest.get("sha256"),
            "kind": (manifest.get("origin") or {}).get("kind")}


def record_quality(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Put a ``--score`` report into the set's manifest (its sha256 does not change)."""
    manifest = read_manifest(path)
    manifest["quality"] = report
    atomic_write_json(Path(path) / MANIFEST, manifest)
    return manifest


def list_sets(ws: Workspace, dataset: str) -> list[dict[str, Any]]:
    """The manifests of every complete generated set of ``dataset``, by name."""
    folder = ws.root / "generated" / dataset
    if not folder.is_dir():
        return []
    return [read_manifest(p) for p in sorted(folder.iterdir()) if p.is_dir() and is_complete(p)]
