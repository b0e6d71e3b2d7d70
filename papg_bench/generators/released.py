"""``papg-bench import-generator``: the released PAPG generators as a papg-bench generator run.

The released ``train.py`` (``qyhsxdx/PAPG``) saves each network's plain state dict every epoch
(``output/netG_A2B_<epoch>.pth``; its ``test.py`` reads ``output/netG_A2B.pth`` and ``netG_B2A.pth``). A is
visible and B infrared, so ``netG_A2B`` is papg-bench's ``v2i`` and ``netG_B2A`` its ``i2v``; with
``add_pose="on"`` they take 6 input channels, the image and a 3-channel pose image (``--pose-map
skeleton``). :func:`import_generator` maps both
(:func:`~papg_bench.reid_baselines.interchange.papg_generator_from_reference`), builds papg-bench's
``Generator`` with the checkpoints' shapes (width from the first convolution, pose channels from its input,
residual blocks counted, non-local blocks where the file has them) and the ``paper`` settings otherwise,
and writes ``generators/<dataset>/<name>/generators.pt`` in the format ``train-generator`` writes, so
``generate --run NAME`` (``--score``, ``--png``) uses it like a trained run. ``config.json`` and
``generators.pt`` record both files' paths and sha256 (``imported``). A file of another shape stops with the
first tensor that does not fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from papg_bench.config import make_config
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.generators.config import GeneratorConfig
from papg_bench.generators.papg import Generator
from papg_bench.generators.sets import check_set_name
from papg_bench.generators.trainer import GENERATORS, GENERATORS_KIND
from papg_bench.pose.maps import pose_channels
from papg_bench.reid_baselines.interchange import (
    check_state,
    papg_generator_from_reference,
    read_mapped,
)
from papg_bench.stages import DONE, REUSED, Mark, is_done, read_json
from papg_bench.training import save_checkpoint
from papg_bench.workspace import Workspace, atomic_path, atomic_write_json, sha256_file

RELEASED_SIZE = (288, 144)  # the released code's img_h x img_w
RELEASED_FORMAT = "PAPG train.py generator state dicts (netG_A2B, netG_B2A)"
_BLOCK = re.compile(r"model\.(\d+)\.conv_block\.1\.weight")


@dataclass
class ImportedGenerator:
    run_dir: Path
    status: str  # a stage outcome: done (imported now) or reused
    imported: dict[str, Any]
    config: dict[str, Any]


def _read(option: str, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    mapped, names, _ = read_mapped(path, option, papg_generator_from_reference, "a generator's state dict")
    return mapped, names


def _settings(mapped: Mapping[str, torch.Tensor], where: str, pose_map: str, size: tuple[int, int],
              trial: int) -> GeneratorConfig:
    """The ``paper`` generator settings with the checkpoint's width, pose input, blocks and attention."""
    first = mapped.get("model.1.weight")
    if first is None or first.ndim != 4:
        raise UserError(f"{where}: no 'model.1.weight' (the first 7x7 convolution): not a PAPG generator.")
    inputs = int(first.shape[1])
    pose = inputs != 3
    if pose and inputs - 3 != pose_channels(pose_map):
        raise UserError(f"{where}: 'model.1.weight' takes {inputs} input channels (the image and {inputs - 3} of "
                        f"pose), --pose-map {pose_map} gives {pose_channels(pose_map)} (skeleton 3, heatmaps "
                        f"{pose_channels('heatmaps')}).")
    blocks = len({m[1] for k in mapped if (m := _BLOCK.fullmatch(k))})
    attention = any(".non_local." in k for k in mapped)
    return make_config(GeneratorConfig, "paper", overrides={
        "channels": int(first.shape[0]), "blocks": blocks, "pose": pose, "attention": attention,
        "pose_map": pose_map, "size": size, "trial": trial})


def import_generator(
    ws: Workspace,
    dataset: str,
    a2b: Path,
    b2a: Path,
    name: str,
    pose_map: str = "skeleton",
    size: tuple[int, int] | None = None,
    trial: int = 0,
    force: bool = False,
) -> ImportedGenerator:
    """Import the released ``netG_A2B`` / ``netG_B2A`` files as the generator run ``name`` of the workspace
    store ``dataset``; see the module docstring. ``size`` is the size the generators work at (default
    288x144), ``trial`` the trial whose training identities ``generate`` translates (RegDB)."""
    check_set_name(name, "--name")
    open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}")
    files = {"v2i": ("--a2b", Path(a2b).expanduser().resolve()), "i2v": ("--b2a", Path(b2a).expanduser().resolve())}
    states = {member: _read(option, path) for member, (option, path) in files.items()}
    option, path = files["v2i"]
    cfg = _settings(states["v2i"][0], f"{option} {path}", pose_map, size or RELEASED_SIZE, trial)
    pose = f"pose {cfg.pose_map}" if cfg.pose else "no pose"
    attention = "attention" if cfg.attention else "no attention"
    network = f"the PAPG generator (width {cfg.channels}, {cfg.blocks} blocks, {pose}, {attention})"
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    for member, (mapped, names) in states.items():
        option, path = files[member]
        generator = Generator(pose_channels(cfg.pose_map) if cfg.pose else 0, cfg.channels, cfg.blocks,
                              cfg.attention, cfg.attention_norm)
        check_state(generator.state_dict(), mapped, names, f"{option} {path}", network)
        generator.load_state_dict(mapped, strict=True)
        loaded[member] = generator.state_dict()

    imported = {"format": RELEASED_FORMAT, **{
        released: {"from": str(path), "sha256": sha256_file(path)}
        for released, (_, path) in zip(("netG_A2B", "netG_B2A"), files.values(), strict=True)}}
    run_dir = ws.generator_dir(dataset, name)
    config = {"config": cfg.to_dict(), "dataset": dataset, "imported": imported}
    if run_dir.exists():
        old = read_json(run_dir / "config.json") or {}
        if is_done(Mark(old, (run_dir / GENERATORS).is_file()), config):
            return ImportedGenerator(run_dir, REUSED, imported, config)
        if not force:
            was = "imported from other files" if "imported" in old else "a trained generator run"
            raise UserError(f"{run_dir} holds {was}: pass --force to replace it, or choose another --name.")
    with atomic_path(run_dir) as tmp:
        tmp.mkdir()
        save_checkpoint(tmp / GENERATORS, {
            "kind": GENERATORS_KIND, "config": cfg.to_dict(), "dataset": dataset, "fingerprint": {"imported": imported},
            "v2i": loaded["v2i"], "i2v": loaded["i2v"], "epochs": None, "imported": imported,
        })
        atomic_write_json(tmp / "config.json", config)
    return ImportedGenerator(run_dir, DONE, imported, config)
