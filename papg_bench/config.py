"""Typed settings: dataclasses with presets (``paper``, ``tiny``), TOML files and CLI overrides.

Every configurable step owns one dataclass. Its field defaults are the ``paper`` preset; the class
attribute ``PRESETS`` maps other preset names to the fields they change. :func:`make_config` layers,
in order: defaults -> preset -> TOML file (the table named after the step, or the whole file) -> CLI
overrides (``None`` means "not given").
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from papg_bench.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 on the CPU


def check_precision(precision: str) -> str:
    """The ``precision`` setting of the generator and the baselines, or a UserError naming the option."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is not known: choose auto, fp32 or bf16.")
    return precision

PRESET_NAMES = ("paper", "tiny")

T = TypeVar("T")


class Settings:
    """Mixin for step settings dataclasses."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    SECTION: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _apply(cfg: T, values: dict[str, Any], source: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise UserError(f"{source}: unknown setting '{key}'. Known settings: {known}.")
        current = getattr(cfg, name)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise UserError(f"{source}: setting '{key}' must be true or false, got {value!r}.")
        if isinstance(current, int | float) and not isinstance(current, bool):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise UserError(f"{source}: setting '{key}' must be a number, got {value!r}.")
            value = type(current)(value)
        changes[name] = value
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist: give an existing TOML file to --config.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML ({exc}): fix the syntax.") from None


def make_config(
    cls: type[T],
    preset: str = "paper",
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Build ``cls`` from its defaults, a preset, an optional TOML file and CLI overrides."""
    presets: dict[str, dict[str, Any]] = getattr(cls, "PRESETS", {})
    if preset != "paper" and preset not in presets:
        names = ", ".join(("paper", *sorted(presets)))
        raise UserError(f"--preset {preset!r} is not known: choose one of {names}.")
    cfg = cls()
    if preset != "paper":
        cfg = _apply(cfg, presets[preset], f"preset {preset}")
    if config_file is not None:
        data = load_toml(Path(config_file))
        section = getattr(cls, "SECTION", "")
        if section and section in data and isinstance(data[section], dict):
            data = data[section]
        elif section:
            data = {k: v for k, v in data.items() if not isinstance(v, dict)}
        cfg = _apply(cfg, data, str(config_file))
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        cfg = _apply(cfg, given, "command line")
    return cfg
