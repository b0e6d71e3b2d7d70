"""What an evaluation protocol is: its modes, trials, query and gallery per trial, removal rule and CMC.

A protocol is one object per dataset (``SysuProtocol``, ``RegdbProtocol``, ``LlcmProtocol``), found
through :mod:`papg_bench.catalog`. The evaluation (:mod:`.evaluate`), the trainer's validation and the
report ask it; none of them knows a dataset by name.

A new protocol subclasses :class:`Protocol` and provides:

- ``family`` (the first segment of its identifiers) and ``title`` (the tables' heading);
- ``modes``: mode name -> column title, in the order tables show them, and ``mode_groups``: mode name ->
  the heading over its columns (mode names are unique across protocols);
- ``removal`` (which gallery entries a query ignores, see :data:`.metrics.Removal`) and
  ``identity_cmc`` (whether the CMC counts each gallery identity once);
- ``shots`` / ``samplings`` it accepts, with :meth:`check_options` for anything finer, and ``split_file``
  where a sampling reads a file of the dataset authors' (SYSU-MM01's ``rand_perm_cam.mat``);
- ``fixed_trials`` (its trial numbers), or :meth:`default_trials` and :meth:`check_trials` where the
  dataset's files list them;
- :meth:`identifier` and :meth:`query_gallery`;
- where the dataset authors' evaluation code reads features from files of its own layout:
  ``official_format`` (its name, e.g. ``sysu-mat``), :meth:`write_official_features` and
  :meth:`read_official_features`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from papg_bench.errors import UserError
from papg_bench.protocols.splits import Split

if TYPE_CHECKING:
    from papg_bench.protocols.feature_files import FeatureTable


@dataclass(frozen=True)
class SplitFile:
    """A file of the dataset authors' that fixes the galleries of one sampling."""

    sampling: str  # the --sampling that reads it
    default: str  # where it is looked for, relative to the dataset root
    source: str  # where a user gets it


class Protocol(ABC):
    family: ClassVar[str]
    title: ClassVar[str]
    modes: ClassVar[Mapping[str, str]]  # mode -> short column title, in table order
    mode_groups: ClassVar[Mapping[str, str]]  # mode -> the heading over a mode's columns
    removal: ClassVar[str]
    identity_cmc: ClassVar[bool]
    shots: ClassVar[tuple[int, ...]] = (1,)
    samplings: ClassVar[tuple[str, ...]] = ()  # gallery sampling variants; empty: the protocol has one
    trial_from_training: ClassVar[bool] = False  # a run is evaluated on the trial it was trained on only
    official_format: ClassVar[str | None] = None  # the feature files of the authors' evaluation code, if any
    split_file: ClassVar[SplitFile | None] = None  # the file a sampling reads, if any
    fixed_trials: ClassVar[tuple[int, ...]] = ()  # its trials, where they do not depend on the dataset's files

    @property
    def default_sampling(self) -> str | None:
        return self.samplings[0] if self.samplings else None

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise UserError(f"{self.title} mode {mode!r}: use one of {', '.join(self.modes)}.")

    def check_options(self, mode: str, shots: int, sampling: str | None) -> None:
        """Refuse a mode, shot count or sampling this protocol does not define."""
        self.check_mode(mode)
        if shots not in self.shots:
            allowed = " or ".join(str(s) for s in self.shots)
            raise UserError(f"--shots {shots}: {self.title} galleries take --shots {allowed}.")
        if self.samplings and sampling not in self.samplings:
            raise UserError(f"--sampling {sampling!r}: {self.title} galleries use {' or '.join(self.samplings)}.")

    def check_split_file(self, sampling: str | None, split_file: Path | None) -> None:
        """Refuse ``--split-file`` where no sampling reads one, with another sampling, or when it is missing."""
        if split_file is None:
            return
        spec = self.split_file
        if spec is None:
            raise UserError(f"--split-file {split_file}: {self.title} galleries are fixed by no split file; drop it.")
        if sampling != spec.sampling:
            raise UserError(f"--split-file {split_file} is read by --sampling {spec.sampling}, not --sampling "
                            f"{sampling}: add --sampling {spec.sampling} or drop --split-file.")
        if not Path(split_file).is_file():
            raise UserError(f"--split-file {split_file} does not exist: it is {spec.source}.")

    def split_file_path(self, root: Path, sampling: str | None, split_file: Path | None = None) -> Path | None:
        """The split file that ``sampling`` reads (``split_file``, else the default under ``root``), or None."""
        spec = self.split_file
        if spec is None or sampling != spec.sampling:
            return None
        return Path(split_file) if split_file is not None else Path(root) / spec.default

    def record_sampling(self, sampling: str | None) -> str | None:
        """The sampling a record states (None where the protocol has only one)."""
        return sampling if self.samplings else None

    def default_trials(self, root: Path) -> tuple[int, ...]:
        """The trials a published table averages over: :attr:`fixed_trials` unless the dataset lists its own."""
        return self.fixed_trials

    def check_trials(self, trials: Sequence[int], text: str) -> None:
        """Refuse trial numbers the protocol does not have (``text`` is what the user typed)."""
        if any(t not in self.fixed_trials for t in trials):
            raise UserError(f"--trials {text!r}: {self.title} trials are {self.fixed_trials[0]}.."
                            f"{self.fixed_trials[-1]}.")

    @abstractmethod
    def identifier(self, mode: str, shots: int, sampling: str | None, trials: Sequence[int],
                   rerank: bool = False) -> str:
        """The protocol identifier records carry, e.g. ``sysu/all/single-shot/seed/v1``."""

    @abstractmethod
    def query_gallery(self, root: Path, mode: str, trial: int, shots: int = 1, sampling: str | None = None,
                      split_file: Path | None = None) -> tuple[Split, Split]:
        """(query, gallery) of one trial, paths relative to the dataset root, in protocol order
        (``split_file``: the file :attr:`split_file` describes, when not at its default place)."""

    def check_official_format(self, fmt: str) -> str:
        """``official`` or this protocol's format name -> the format name; anything else is refused."""
        if self.official_format is None:
            raise UserError(f"--format {fmt!r}: the {self.title} evaluation code reads no feature files of its own; "
                            "save an .npz (--format npz, or evaluate --save-features).")
        if fmt not in ("official", self.official_format):
            raise UserError(f"--format {fmt!r}: {self.title} features go out as npz or official "
                            f"({self.official_format}).")
        return self.official_format

    def write_official_features(self, table: FeatureTable, root: Path, out_dir: Path, name: str) -> list[Path]:
        """Write ``table`` (paths relative to ``root``) in the files the authors' evaluation reads, named after
        ``name``, into ``out_dir``; returns the files written."""
        self.check_official_format("official")
        raise NotImplementedError(f"{type(self).__name__} names a feature format but does not write it")

    def read_official_features(self, folder: Path, root: Path, name: str | None = None) -> FeatureTable:
        """Read what :meth:`write_official_features` writes (``name`` may be left out when ``folder`` holds one
        set) back as features with paths relative to ``root``."""
        self.check_official_format("official")
        raise NotImplementedError(f"{type(self).__name__} names a feature format but does not read it")
