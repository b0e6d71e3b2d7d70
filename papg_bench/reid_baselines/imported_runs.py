"""``papg-bench import-run``: a released VI-ReID checkpoint as a papg-bench run.

The released AGW ``train.py`` (``mangye16/Cross-Modal-Re-ID-baseline``) saves
``{"net": embed_net.state_dict(), "cmc": ..., "mAP": ..., "mINP": ..., "epoch": ...}`` as
``<dataset>_agw_p4_n8_lr_0.1_seed_0_best.t``. The released DART ``run.py`` (``XLearning-SCU/2022-CVPR-DART``)
saves each of its two networks so, with its optimiser's state too, as ``<savename>_net1.t`` and
``<savename>_net2.t`` (RegDB: ``<savename>_trial<N>_net1.t``). :func:`import_run` maps every ``net`` onto
papg-bench's AGW network (:func:`~papg_bench.reid_baselines.interchange.agw_state_from_reference`; DART's
unused ``bottleneck_2`` is left out), builds it with the checkpoint's shapes (classes from the classifier,
width from layer1's first block, non-local inter-channels 1 or C/2, no non-local blocks when the file has
none) and the ``paper`` preset otherwise (features in fp32, as the released ``test.py``), and writes a
finished run folder in papg-bench's own format::

    runs/<dataset>/<run>/config.json     the settings, with "imported": {from, sha256, epoch, mAP, rank1}
    runs/<dataset>/<run>/checkpoint.pt   papg-bench's checkpoint of the model (DART: both networks)
    runs/<dataset>/<run>/summary.json    complete, selection {"by": "imported"}, and "imported"

so ``evaluate --run <run>``, ``report`` and the figures treat it as any trained run (a DART pair tests with the
mean of both networks' features, as a DART run trained here); its records carry the ``imported`` field
(a pair's lists both files and their sha256 in ``files``). The run is the baseline with augmentation
``none`` and the seed given (records of a trained run of the same baseline, augmentation and seed fall in
the same report cell). A file of another shape stops with the first tensor that does not fit.
"""

from __future__ import annotations

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
from papg_bench.reid_baselines.registry import get_baseline, tested_model, with_epochs
from papg_bench.reid_baselines.trainer import CHECKPOINT_KIND
from papg_bench.stages import DONE, REUSED, Mark, is_done, read_json
from papg_bench.training import save_checkpoint
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, config_hash, provenance, sha256_file

RELEASED_SIZE = (288, 144)  # the released test.py's img_h x img_w
RELEASED_CODE = {"agw": "mangye16/Cross-Modal-Re-ID-baseline train.py", "dart": "XLearning-SCU/2022-CVPR-DART run.py"}
RELEASED_FORMATS = {
    "agw": "AGW train.py checkpoint (net, epoch, mAP)",
    "dart": "DART run.py checkpoint pair _net1.t, _net2.t (net, epoch, mAP, optimizer)",
}
DART_FIRST, DART_SECOND = "_net1.t", "_net2.t"


@dataclass
class ImportOutcome:
    run_dir: Path
    status: str  # a stage outcome: done (imported now) or reused
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


def dart_partner(first: Path) -> Path:
    """The second file of a released DART pair: run.py saves ``<name>_net1.t`` and ``<name>_net2.t``."""
    if not first.name.endswith(DART_FIRST):
        raise UserError(f"--from {first}: the released DART run.py saves its networks as <name>{DART_FIRST} and "
                        f"<name>{DART_SECOND}; give the first with --from, or name the second with --net2.")
    return first.with_name(first.name[:-len(DART_FIRST)] + DART_SECOND)


def _networks(baseline: str, files: list[Path], size: tuple[int, int],
              trial: int) -> tuple[TrainConfig, int, list[torch.nn.Module], list[Mapping[str, Any]]]:
    """Each released file checked against and loaded into one network of ``baseline`` (all of one shape): the
    settings, the class count, the networks and the files' contents."""
    options = ("--from", "--net2")
    read = [read_mapped(path, option, agw_state_from_reference, "a state dict or a dict with 'net'")
            for path, option in zip(files, options, strict=False)]
    shapes = [_agw_settings(mapped, names, str(path), size, trial)
              for (mapped, names, _), path in zip(read, files, strict=True)]
    cfg, classes, network = shapes[0]
    for (other, other_classes, described), path in zip(shapes[1:], files[1:], strict=True):
        if (other, other_classes) != (cfg, classes):
            raise UserError(f"--net2 {path} holds {described}, --from {files[0]} {network}: the two networks of a "
                            "pair have one shape; are they from the same run?")
    known = get_baseline(baseline)
    cfg = with_epochs(known, cfg)
    networks = []
    for k, ((mapped, names, _), path) in enumerate(zip(read, files, strict=True)):
        model = known.build_model(cfg, classes)
        check_state(model.state_dict(), mapped, names, str(path),
                    network if len(files) == 1 else f"{network} (network {k + 1} of the pair)")
        model.load_state_dict(mapped, strict=True)
        networks.append(model)
    return cfg, classes, networks, [loaded for _, _, loaded in read]


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
    net2: Path | None = None,
) -> ImportOutcome:
    """Import the released checkpoint ``source`` (for ``dart``: the pair ``source`` and ``net2``, by default
    ``source``'s ``_net2.t`` partner) as the finished run ``run`` (default ``<baseline>-imported``) of the
    workspace store ``dataset``; see the module docstring. The same files imported again are ``reused``;
    another run in the folder needs ``force``. ``trial`` is the RegDB trial the checkpoint was trained on (it
    is evaluated on that trial); ``size`` the test image size (default 288x144)."""
    if baseline not in RELEASED_FORMATS:
        raise UserError(f"--baseline {baseline!r}: import-run reads the released checkpoints of "
                        f"{' and '.join(f'{b} ({w})' for b, w in RELEASED_CODE.items())}: --baseline "
                        f"{' or '.join(RELEASED_FORMATS)}.")
    if net2 is not None and baseline != "dart":
        raise UserError(f"--net2 names the second network of a DART pair; --baseline {baseline} has one file (--from).")
    open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    files = [Path(source).expanduser().resolve()]
    if baseline == "dart":
        files.append(Path(net2).expanduser().resolve() if net2 is not None else dart_partner(files[0]))
    cfg, classes, networks, contents = _networks(baseline, files, size or RELEASED_SIZE, trial)
    model = tested_model(get_baseline(baseline), cfg, networks)
    scores = [_scores(loaded) for loaded in contents]
    if len({s["epoch"] for s in scores}) > 1:
        raise UserError(f"--from {files[0]} is epoch {scores[0]['epoch']}, --net2 {files[1]} epoch "
                        f"{scores[1]['epoch']}: the two networks of a pair are saved at the same epoch; are they from "
                        "the same run?")

    digests = [sha256_file(path) for path in files]
    imported: dict[str, Any] = {"from": str(files[0]), "sha256": digests[0], "format": RELEASED_FORMATS[baseline],
                                **scores[0]}
    if len(files) > 1:
        imported["files"] = [{"from": str(path), "sha256": digest} for path, digest in zip(files, digests, strict=True)]
    run = run or f"{baseline}-imported"
    run_dir = ws.run_dir(dataset, run)
    run_config = {"dataset": dataset, "baseline": baseline, "augment": "none", "seed": seed, "train": cfg.to_dict(),
                  "inputs": {"store": None, "generated": None}, "imported": imported}
    digest = config_hash(run_config)
    summary_path = run_dir / "summary.json"
    if run_dir.exists():
        old = read_json(summary_path) or {}
        if is_done(Mark(old.get("config_hash"), (run_dir / str(old.get("checkpoint"))).is_file()), digest):
            return ImportOutcome(run_dir, REUSED, old)
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
    return ImportOutcome(run_dir, DONE, summary)
