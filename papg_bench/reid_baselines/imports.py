"""``papg-bench import-run``: a released VI-ReID checkpoint as a papg-bench run.

The released AGW ``train.py`` (``mangye16/Cross-Modal-Re-ID-baseline``) saves
``{"net": embed_net.state_dict(), "cmc": ..., "mAP": ..., "mINP": ..., "epoch": ...}`` as
``<dataset>_agw_p4_n8_lr_0.1_seed_0_best.t``. :func:`import_run` maps ``net`` onto papg-bench's ``agw``
model (:func:`~papg_bench.reid_baselines.interchange.agw_state_from_reference`), builds that model with the
checkpoint's shapes (classes from the classifier, width from layer1's first block, non-local inter-channels
1 or C/2, no non-local blocks when the file has none) and the ``paper`` preset otherwise (features in fp32,
as the released ``test.py``), and writes a finished run folder in papg-bench's own format::

    runs/<dataset>/<run>/config.json     the settings, with "imported": {from, sha256, epoch, mAP, rank1}
    runs/<dataset>/<run>/checkpoint.pt   papg-bench's checkpoint of the model
    runs/<dataset>/<run>/summary.json    complete, selection {"by": "imported"}, and "imported"

so ``evaluate --run <run>``, ``report`` and the figures treat it as any trained run; its records carry the
``imported`` field. The run is the baseline with augmentation ``none`` and the seed given (records of a
trained run of the same baseline, augmentation and seed fall in the same report cell). A file of another
shape stops with the first tensor that does not fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from papg_bench.config import make_config
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.reid_baselines.config import TrainConfig
from papg_bench.reid_baselines.interchange import agw_state_from_reference, check_state, read_mapped
from papg_bench.reid_baselines.registry import get_baseline
from papg_bench.reid_baselines.trainer import CHECKPOINT_KIND
from papg_bench.training import save_checkpoint
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, config_hash, provenance, sha256_file

RELEASED_SIZE = (288, 144)  # the released test.py's img_h x img_w
RELEASED_FORMAT = "AGW train.py checkpoint (net, epoch, mAP)"
IMPORTABLE = ("agw",)


@dataclass
class ImportOutcome:
    run_dir: Path
    status: str  # imported | unchanged
    summary: dict[str, Any]


def _number(value: Any) -> float | None:
    """A score of the released file (a float, numpy scalar or one-element array) as a float, else None."""
    try:
        number = float(getattr(value, "item", lambda: value)())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scores(loaded: Mapping[str, Any]) -> dict[str, Any]:
    cmc = loaded.get("cmc")
    try:
        rank1 = _number(cmc[0]) if cmc is not None else None
    except (TypeError, IndexError, KeyError):
        rank1 = None
    epoch = loaded.get("epoch")
    return {"epoch": int(epoch) if isinstance(epoch, int) else None, "mAP": _number(loaded.get("mAP")),
            "mINP": _number(loaded.get("mINP")), "rank1": rank1}


def _agw_settings(mapped: Mapping[str, torch.Tensor], names: Mapping[str, str], source: str,
                  size: tuple[int, int], trial: int) -> tuple[TrainConfig, int, str]:
    """The ``paper`` settings with the checkpoint's width and non-local blocks, its class count, and a
    description of the network for messages."""
    classifier = mapped.get("classifier.weight")
    if classifier is None or classifier.ndim != 2:
        raise UserError(f"{source}: no classifier.weight (classes x 2048): not an AGW embed_net checkpoint.")
    first = mapped.get("backbone.resnet.layer1.0.conv1.weight")  # the first block's width is the network's
    width = int(first.shape[0]) if first is not None and first.ndim == 4 else 64
    non_local = any(k.startswith("backbone.non_local.") for k in mapped)
    nl_inter = "one"
    theta_key = next((k for k in mapped if k.startswith("backbone.non_local.") and k.endswith(".theta.weight")), None)
    if theta_key is not None:
        theta = mapped[theta_key]
        if theta.ndim != 4 or theta.shape[0] not in (1, theta.shape[1] // 2):
            raise UserError(f"{source}: {names.get(theta_key, theta_key)!r} has shape "
                            f"{'x'.join(map(str, theta.shape))}: the released non-local blocks have 1 inter-channel "
                            "(or C/2); a checkpoint of another network?")
        nl_inter = "one" if theta.shape[0] == 1 else "half"
    cfg = make_config(TrainConfig, "paper", overrides={  # evaluated in fp32, as the released test.py
        "pretrained": "none", "width": width, "non_local": non_local, "nl_inter": nl_inter, "size": size,
        "trial": trial, "precision": "fp32"}).validate()
    classes = int(classifier.shape[0])
    blocks = f"non-local inter-channels {nl_inter}" if non_local else "no non-local blocks"
    return cfg, classes, f"the AGW network (ResNet-50 width {width}, {classes} classes, {blocks})"


def import_run(
    ws: Workspace,
    dataset: str,
    source: Path,
    baseline: str = "agw",
    run: str | None = None,
    seed: int = 0,
    trial: int = 1,
    size: tuple[int, int] | None = None,
    force: bool = False,
) -> ImportOutcome:
    """Import the released checkpoint ``source`` as the finished run ``run`` (default ``<baseline>-imported``)
    of the workspace store ``dataset``; see the module docstring. The same file imported again is
    ``unchanged``; another run in the folder needs ``force``. ``trial`` is the RegDB trial the checkpoint
    was trained on (it is evaluated on that trial); ``size`` the test image size (default 288x144)."""
    if baseline not in IMPORTABLE:
        raise UserError(f"--baseline {baseline!r}: import-run reads the released AGW train.py's checkpoints "
                        f"(--baseline {' or '.join(IMPORTABLE)}).")
    open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    source = Path(source).expanduser().resolve()
    mapped, names, loaded = read_mapped(source, "--from", agw_state_from_reference,
                                        "a state dict or a dict with 'net'")
    cfg, classes, network = _agw_settings(mapped, names, str(source), size or RELEASED_SIZE, trial)
    model = get_baseline(baseline).build_model(cfg, classes)
    check_state(model.state_dict(), mapped, names, str(source), network)
    model.load_state_dict(mapped, strict=True)

    digest_file = sha256_file(source)
    imported = {"from": str(source), "sha256": digest_file, "format": RELEASED_FORMAT, **_scores(loaded)}
    run = run or f"{baseline}-imported"
    run_dir = ws.run_dir(dataset, run)
    run_config = {"dataset": dataset, "baseline": baseline, "augment": "none", "seed": seed, "train": cfg.to_dict(),
                  "inputs": {"store": None, "generated": None}, "imported": imported}
    digest = config_hash(run_config)
    summary_path = run_dir / "summary.json"
    if run_dir.exists():
        try:
            old = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("config_hash") == digest and (run_dir / str(old.get("checkpoint"))).is_file():
            return ImportOutcome(run_dir, "unchanged", old)
        if not force:
            was = (f"imported from {old['imported']['from']}" if isinstance(old.get("imported"), dict)
                   else "a trained or unfinished run")
            raise UserError(f"{run_dir} holds another run ({was}): pass --force to replace it, or name this one "
                            "with --run.")
    state = {"kind": CHECKPOINT_KIND, "epoch": imported["epoch"], "model": model.state_dict(),
             "run_config": run_config, "config_hash": digest, "num_classes": classes, "imported": imported}
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        atomic_write_json(tmp / "config.json", {"preset": "paper", **provenance(run_config)})
        save_checkpoint(tmp / "checkpoint.pt", state)
        summary = {
            "complete": True, "config_hash": digest, "run_config": run_config, "epochs_done": imported["epoch"],
            "identities": classes, "checkpoint": "checkpoint.pt",
            "checkpoint_sha256": sha256_file(tmp / "checkpoint.pt"),
            "selection": {"by": "imported", "epoch": imported["epoch"]}, "imported": imported,
        }
        atomic_write_json(tmp / "summary.json", summary)
    return ImportOutcome(run_dir, "imported", summary)
