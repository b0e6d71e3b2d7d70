"""One JSON record per evaluation: what was evaluated, how, the per-trial metrics, and provenance.

Record fields (format 1)::

    format_version   1
    protocol         identifier such as "sysu/all/single-shot/seed-trials/v1" or "regdb/v2t/trial-1/v1"
    dataset          the workspace store the run belongs to
    mode             "all" | "indoor" (SYSU) or "v2t" | "t2v" (RegDB)
    shots            1 or 10 (SYSU gallery), 1 for RegDB
    sampling         "seed" | "official" (SYSU gallery convention); null for RegDB
    rerank           null, or {"k1": .., "k2": .., "lambda": ..} for k-reciprocal re-ranking
    distance         "cosine" | "euclidean";  backend: "torch" | "faiss-cpu" | "faiss-gpu"
    baseline         "agw" | "cgrnet" | "dart" | null (features given by the user)
    augment          "none" | "papg" | ... | null;  seed: int | null;  run: run folder name | null
    features         path of the features file (or folder of official files, ``features_format``), or null
    imported         for a run imported from a released checkpoint: {from, sha256, format, epoch, mAP, ...}
    trials           [{"trial": t, "cmc": [rank-1 .. rank-20 fractions], "mAP", "mINP",
                       "num_queries", "num_valid_queries"}]
    summary          {"rank1"|"rank5"|"rank10"|"rank20"|"mAP"|"mINP": {"mean", "std"}} (fractions)
    config_hash, checkpoint_sha256, git_revision, versions, device, wall_time_s, created
    queries_file     name of the per-query JSONL beside the record, or null
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from papg_bench.errors import UserError
from papg_bench.stages import Mark
from papg_bench.workspace import atomic_write_json

RECORD_FORMAT = 1
REQUIRED = ("protocol", "dataset", "mode", "trials", "summary")
SUMMARY_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def summarize_trials(trials: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and (population) std over trials of rank-1/5/10/20, mAP and mINP."""
    values: dict[str, list[float]] = {k: [] for k in SUMMARY_KEYS}
    for t in trials:
        cmc = t["cmc"]
        for k in (1, 5, 10, 20):
            values[f"rank{k}"].append(float(cmc[min(k, len(cmc)) - 1]))
        values["mAP"].append(float(t["mAP"]))
        values["mINP"].append(float(t["mINP"]))
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in values.items()}


def record_name(run: str, protocol: str) -> str:
    """File stem for a record: the run (or features) name and the protocol, safe for file systems."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", protocol.removesuffix("/v1")).strip("-")
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', run)}__{slug}"


def validate_record(record: Any, source: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise UserError(f"{source}: a result record must be a JSON object.")
    version = record.get("format_version")
    if not isinstance(version, int):
        raise UserError(f"{source}: not a papg-bench result record (no format_version).")
    if version > RECORD_FORMAT:
        raise UserError(
            f"{source}: result record format {version} is newer than this papg-bench reads "
            f"({RECORD_FORMAT}): upgrade papg-bench."
        )
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise UserError(f"{source}: result record lacks {', '.join(missing)}: re-run the evaluation.")
    if not record["trials"]:
        raise UserError(f"{source}: result record has no trials: re-run the evaluation.")
    if not isinstance(record["trials"], list):
        raise UserError(f"{source}: 'trials' must be a list of per-trial results: re-run the evaluation.")
    for trial in record["trials"]:
        if not isinstance(trial, dict):
            raise UserError(f"{source}: every trial must be a JSON object: re-run the evaluation.")
        for key in ("trial", "cmc", "mAP", "mINP"):
            if key not in trial:
                raise UserError(f"{source}: a trial lacks '{key}': re-run the evaluation.")
        cmc = trial["cmc"].tolist() if hasattr(trial["cmc"], "tolist") else trial["cmc"]
        if not isinstance(cmc, (list, tuple)) or not cmc or not all(_is_number(v) for v in cmc):
            raise UserError(f"{source}: trial {trial['trial']}: 'cmc' must be a non-empty list of numbers: "
                            "re-run the evaluation.")
        if not (_is_number(trial["mAP"]) and _is_number(trial["mINP"])):
            raise UserError(f"{source}: trial {trial['trial']}: 'mAP' and 'mINP' must be numbers: "
                            "re-run the evaluation.")
    return record


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy scalars are Real too


def write_record(path: Path, record: dict[str, Any]) -> Path:
    record = {"format_version": RECORD_FORMAT, **record}
    record.setdefault("summary", summarize_trials(record["trials"]))
    validate_record(record, str(path))
    atomic_write_json(Path(path), record)
    return Path(path)


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: run `papg-bench evaluate` first.") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}): re-run the evaluation.") from None
    return validate_record(record, str(path))


def list_records(folder: Path) -> list[dict[str, Any]]:
    """Every record in ``folder`` (sorted by file name), each with its path under ``_path``."""
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        record = read_record(path)
        record["_path"] = str(path)
        records.append(record)
    return records


def write_queries(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    from papg_bench.workspace import atomic_write_text

    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    atomic_write_text(Path(path), text)
    return Path(path)


def record_mark(path: Path, fingerprint: dict[str, Any]) -> Mark | None:
    """The stage mark of the record at ``path`` for the keys of ``fingerprint`` (``trials``: the trial numbers
    it holds; ``split_file``: the sha256 of the split file its galleries were read from)."""
    from papg_bench.stages import read_json

    record = read_json(Path(path))
    if record is None:
        return None
    made = {key: record.get(key) for key in fingerprint}
    made["trials"] = [t.get("trial") for t in record.get("trials", [])]
    made["split_file"] = (record.get("split_file") or {}).get("sha256")
    return Mark(made, True, record)
