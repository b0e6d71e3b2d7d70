"""RegDB query and gallery: the test lists of one trial, visible->thermal or thermal->visible.

Trial ``t`` (1..10) uses ``<root>/idx/test_visible_<t>.txt`` and ``test_thermal_<t>.txt`` (lines
``relative/path label``), in file order. Identity comes from the folder (``Visible/<id>/...``); cameras are
1 = visible, 2 = thermal. Nothing is removed from the gallery at evaluation time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from papg_bench.data.regdb import available_trials, identity_of, list_path, read_list
from papg_bench.errors import UserError
from papg_bench.protocols.protocol import Protocol
from papg_bench.protocols.splits import Split

DIRECTIONS = {"v2t": ("test_visible", "test_thermal"), "t2v": ("test_thermal", "test_visible")}


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise UserError(f"RegDB direction {direction!r}: use 'v2t' (visible->thermal) or 't2v' (thermal->visible).")


def protocol_id(direction: str, trials: list[int], rerank: bool = False) -> str:
    """E.g. ``regdb/v2t/trial-1/v1`` for one trial, ``regdb/v2t/trials-1-10/v1`` for a contiguous range."""
    ts = sorted(trials)
    if len(ts) == 1:
        which = f"trial-{ts[0]}"
    elif ts == list(range(ts[0], ts[-1] + 1)):
        which = f"trials-{ts[0]}-{ts[-1]}"
    else:
        which = "trials-" + "+".join(str(t) for t in ts)
    return f"regdb/{direction}/{which}{'/rerank' if rerank else ''}/v1"


def _split(root: Path, kind: str, trial: int) -> Split:
    path = list_path(root, kind, trial)
    rows = []
    for rel, _label in read_list(path):
        pid, _modality, cam = identity_of(root, rel, path)
        rows.append((rel, pid, cam))
    return Split.from_rows(rows)


def query_gallery(root: Path | str, trial: int = 1, direction: str = "v2t") -> tuple[Split, Split]:
    """The (query, gallery) of RegDB ``trial`` in ``direction``; paths relative to ``root``."""
    root = Path(root)
    check_direction(direction)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the RegDB root (holding Visible/, Thermal/, idx/).")
    query_kind, gallery_kind = DIRECTIONS[direction]
    return _split(root, query_kind, trial), _split(root, gallery_kind, trial)


class RegdbProtocol(Protocol):
    """RegDB: the test lists of one trial, visible->thermal or thermal->visible; nothing removed."""

    family = "regdb"
    title = "RegDB"
    modes = {"v2t": "V→T", "t2v": "T→V"}
    mode_groups = {"v2t": "Visible→Thermal", "t2v": "Thermal→Visible"}
    removal = "none"
    identity_cmc = False
    trial_from_training = True

    def check_mode(self, mode: str) -> None:
        check_direction(mode)

    def check_options(self, mode: str, shots: int, sampling: str | None) -> None:
        check_direction(mode)
        if shots != 1:
            raise UserError(f"--shots {shots}: RegDB galleries are the whole test list (use --shots 1).")

    def default_trials(self, root: Path) -> tuple[int, ...]:
        return tuple(available_trials(Path(root)))

    def check_trials(self, trials: Sequence[int], text: str) -> None:
        if any(t < 1 for t in trials):
            raise UserError(f"--trials {text!r}: RegDB trials are numbered from 1 (usually 1..10).")

    def identifier(self, mode: str, shots: int, sampling: str | None, trials: Sequence[int],
                   rerank: bool = False) -> str:
        return protocol_id(mode, list(trials), rerank)

    def query_gallery(self, root: Path, mode: str, trial: int, shots: int = 1, sampling: str | None = None,
                      split_file: Path | None = None) -> tuple[Split, Split]:
        return query_gallery(root, trial, mode)


PROTOCOL = RegdbProtocol()
