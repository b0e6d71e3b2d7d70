"""Names of the released networks' state dicts -> papg-bench's, so their checkpoints load strictly.

* AGW (``mangye16/Cross-Modal-Re-ID-baseline``, ``model.py``: ``embed_net``): three ResNet-50s
  (``visible_module.visible``, ``thermal_module.thermal``, ``base_resnet.base``) of which only the
  visible and thermal stems (conv1, bn1) and the base's layers 1-4 are used; non-local blocks
  ``NL_<stage>.<j>`` (``g.0``, ``W.0``, ``W.1``, ``theta``, ``phi``); ``bottleneck`` and ``classifier``.
  :func:`agw_state_from_reference` maps the used tensors onto :class:`~papg_bench.reid_baselines.agw.AGW`
  and leaves out the unused ones (the visible and thermal layers 1-4, the base's stem). DART's released
  ``embed_net`` (``XLearning-SCU/2022-CVPR-DART``, ``model.py``; each of its twin networks) is the same
  network with one more, unused batch norm (``bottleneck_2``), which is left out too.
* PAPG (``qyhsxdx/PAPG``, ``models.py``): ``netG_A2B`` (visible -> infrared) and ``netG_B2A`` are
  :class:`~papg_bench.generators.papg.Generator` s with the same ``model.<i>`` indices; a residual block's
  ``non_local_att`` (``g.0``, ``W.0``, ``W.1``, ``theta``, ``phi``) is our ``non_local`` (``g``, ``out``,
  ``bn``, ``theta``, ``phi``). ``netD_A`` (judges visible images) and ``netD_B`` have our
  :class:`~papg_bench.generators.papg.Discriminator` names already.

Every function takes a state dict (a ``module.`` prefix from DataParallel is removed; the AGW training
script's ``{"net": state_dict, ...}`` checkpoint is unwrapped) and raises a :class:`UserError` naming the
first key it does not know, so a file of another network is never half-loaded. :func:`read_released` loads a
released file without running code from it, and :func:`check_state` compares a mapped state dict with the
network it is for, naming the first tensor of the file whose shape does not fit.
"""

from __future__ import annotations

import importlib
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from papg_bench.errors import UserError
from papg_bench.reid_baselines.agw import NON_LOCAL_BLOCKS

# Released file names -> the member of papg-bench's GeneratorPair / DiscriminatorPair they become.
PAPG_NETWORKS = {"netG_A2B": "v2i", "netG_B2A": "i2v", "netD_A": "d_v", "netD_B": "d_i"}
RESNET50_BLOCKS = (3, 4, 6, 3)
_NON_LOCAL_PARTS = {"g.0": "g", "W.0": "W.0", "W.1": "W.1", "theta": "theta", "phi": "phi"}
_PAPG_NON_LOCAL_PARTS = {"g.0": "g", "W.0": "out", "W.1": "bn", "theta": "theta", "phi": "phi"}
_AGW_UNUSED = re.compile(r"(visible_module\.visible|thermal_module\.thermal)\.(layer[1-4]|fc)\.|"
                         r"base_resnet\.base\.(conv1|bn1|fc)\.|bottleneck_2\.")


def _plain(state: Mapping[str, object], what: str) -> dict[str, torch.Tensor]:
    if isinstance(state.get("net"), Mapping):
        state = state["net"]  # type: ignore[assignment]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{what}: entry {key!r} is not a tensor; expected a state dict.")
        out[key.removeprefix("module.")] = value
    return out


def _unknown(what: str, key: str) -> UserError:
    return UserError(f"{what}: {key!r} is not a tensor of the released network; is this the right file?")


Rule = tuple[str, Callable[[re.Match], str | None]]  # key pattern -> papg-bench key (None: leave it out)


def _renamed(state: Mapping[str, object], what: str, rules: Sequence[Rule]) -> dict[str, torch.Tensor]:
    """The state dict with every key renamed by the first rule whose pattern matches it in full."""
    out: dict[str, torch.Tensor] = {}
    for key, value in _plain(state, what).items():
        for pattern, rename in rules:
            if m := re.fullmatch(pattern, key):
                name = rename(m)
                if name is not None:
                    out[name] = value
                break
        else:
            raise _unknown(what, key)
    return out


def _agw_non_local(m: re.Match) -> str:
    stage, j = int(m[1]), int(m[2])
    count = NON_LOCAL_BLOCKS[stage - 1]
    if j >= count:
        raise _unknown("AGW reference state dict", m[0])
    block = RESNET50_BLOCKS[stage - 1] - count + j  # NL_s.j follows the j-th of the stage's last blocks
    return f"backbone.non_local.layer{stage}_{block}.{_NON_LOCAL_PARTS[m[3]]}.{m[4]}"


_AGW_RULES: tuple[Rule, ...] = (
    (rf"(?:{_AGW_UNUSED.pattern}).*", lambda m: None),
    (r"visible_module\.visible\.((?:conv1|bn1)\..+)", lambda m: f"backbone.resnet.stems.0.{m[1]}"),
    (r"thermal_module\.thermal\.((?:conv1|bn1)\..+)", lambda m: f"backbone.resnet.stems.1.{m[1]}"),
    (r"base_resnet\.base\.(layer[1-4]\..+)", lambda m: f"backbone.resnet.{m[1]}"),
    (r"NL_([1-4])\.(\d+)\.(g\.0|W\.0|W\.1|theta|phi)\.(\w+)", _agw_non_local),
    (r"(bottleneck\.\w+|classifier\.weight)", lambda m: m[0]),
)
_PAPG_GENERATOR_RULES: tuple[Rule, ...] = (
    (r"model\.(\d+)\.non_local_att\.(g\.0|W\.0|W\.1|theta|phi)\.(\w+)",
     lambda m: f"model.{m[1]}.non_local.{_PAPG_NON_LOCAL_PARTS[m[2]]}.{m[3]}"),
    (r"model\.\d+\.(conv_block\.[15]\.)?(weight|bias)", lambda m: m[0]),
)
_PAPG_DISCRIMINATOR_RULES: tuple[Rule, ...] = ((r"model\.(0|2|5|8|11)\.(weight|bias)", lambda m: m[0]),)


def agw_state_from_reference(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The released AGW (or DART) ``embed_net`` state dict (ResNet-50, ``no_local='on'``) as an ``AGW``'s.

    The result loads with ``strict=True`` into the ``agw`` baseline built with ``arch resnet50``,
    ``modality_stems``, ``non_local`` and the checkpoint's non-local width (``nl_inter one`` for the
    released ``Non_local``, whose inter-channels are 1; ``half`` for a C/2 variant), at the
    checkpoint's number of classes.
    """
    return _renamed(state, "AGW reference state dict", _AGW_RULES)


def papg_generator_from_reference(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """A released PAPG ``Generator`` state dict (``netG_A2B`` / ``netG_B2A``) as a papg-bench ``Generator``'s.

    Loads strictly into ``Generator(pose_channels=3, channels=64, blocks=9, attention=True)`` for the
    released ``add_pose="on"``, ``add_att="on"`` networks (``attention=False`` for ``add_att="off"``).
    """
    return _renamed(state, "PAPG generator reference state dict", _PAPG_GENERATOR_RULES)


def papg_discriminator_from_reference(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """A released PAPG ``Discriminator`` state dict (``netD_A`` / ``netD_B``): the names are papg-bench's."""
    return _renamed(state, "PAPG discriminator reference state dict", _PAPG_DISCRIMINATOR_RULES)


def _numpy_global(name: str) -> tuple[Any, str]:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute), name


def read_released(path: Path | str, option: str) -> Any:
    """A released checkpoint as ``torch.save`` wrote it (a state dict, or a dict holding one next to epochs,
    scores and numpy arrays), loaded with ``weights_only``: tensors, containers, numbers and numpy arrays only,
    never code from the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option} {path}: no such file.")

    def load() -> Any:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
            first = (str(exc).splitlines() or [""])[0]
            raise UserError(f"{option} {path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                            f"{first}).") from None

    try:
        return load()
    except pickle.UnpicklingError:
        pass
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - an old-format file that cannot be listed
        names = []
    other = [n for n in names if not n.startswith("numpy.")]
    if other or not names:
        listed = f" ({', '.join(other[:3])})" if other else ""
        raise UserError(f"{option} {path} holds objects other than tensors, numbers and numpy arrays{listed}; "
                        "papg-bench does not run code from a checkpoint: save the state dict alone.")
    import numpy as np

    try:  # the listed names, and the dtype classes numpy's reduction of an array names as it goes
        allowed = [_numpy_global(n) for n in names] + [np.ndarray, np.dtype] + [
            getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    except (ImportError, AttributeError):
        raise UserError(f"{option} {path} holds numpy objects this numpy cannot rebuild "
                        f"({', '.join(names)}).") from None
    with torch.serialization.safe_globals(allowed):
        try:
            return load()
        except pickle.UnpicklingError as exc:
            raise UserError(f"{option} {path} could not be read with its numpy objects ({exc}).") from None


def _shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) or "scalar"


def check_state(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                released_names: Mapping[str, str], source: str, network: str) -> None:
    """Raise a :class:`UserError` unless ``given`` (mapped names -> tensors, in the released file's order) fits
    ``expected`` (a network's ``state_dict()``) tensor for tensor; it names the first tensor of the file whose
    shape differs (by its name in the file, ``released_names``), else the first tensor the file lacks."""
    for key, value in given.items():
        name = released_names.get(key, key)
        want = expected.get(key)
        if want is None:
            raise UserError(f"{source}: {name!r} has no place in {network}; is this the right file?")
        if tuple(value.shape) != tuple(want.shape):
            raise UserError(f"{source}: {name!r} has shape {_shape(value.shape)}, {network} needs "
                            f"{_shape(want.shape)}: a checkpoint of another network?")
    missing = [key for key in expected if key not in given]
    if missing:
        raise UserError(f"{source}: {len(missing)} tensor(s) of {network} are missing, the first one loading into "
                        f"{missing[0]!r}: a checkpoint of another network?")


def read_mapped(path: Path | str, option: str, mapping: Any,
                expected: str) -> tuple[dict[str, torch.Tensor], dict[str, str], Mapping[str, Any]]:
    """A released file read with :func:`read_released` and mapped by ``mapping`` (one of the functions above):
    (papg-bench's state dict, its names in the file, the file's content). Errors name ``option`` and the file."""
    loaded = read_released(path, option)
    if not isinstance(loaded, Mapping):
        raise UserError(f"{option} {path} holds a {type(loaded).__name__}, not {expected}.")
    try:
        mapped = mapping(loaded)
    except UserError as exc:
        raise UserError(f"{option} {path}: {exc}") from None
    return mapped, released_names(loaded, mapping), loaded


def released_names(state: Mapping[str, object], mapping: Any) -> dict[str, str]:
    """Mapped name -> the name in the released file, for messages (``mapping``: one of the functions above)."""
    plain = state["net"] if isinstance(state.get("net"), Mapping) else state
    names: dict[str, str] = {}
    for key, value in plain.items():  # type: ignore[union-attr]
        names.update({mine: str(key) for mine in mapping({key: value})})
    return names
