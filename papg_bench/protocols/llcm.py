"""LLCM query and gallery, exactly as the dataset authors' released test code builds and evaluates them.

Two sides per mode, both over the ids of ``idx/test_id.txt`` taken in the order of their ``"%04d"`` folder
names, each id's cameras in the modality's order (visible cam1..cam9, infrared cam1, cam2, cam4..cam9):

- the *full* side: every image of the modality, sorted file names;
- the *drawn* side of trial ``t`` (0..9): ``random.seed(t)``, then one ``random.choice`` of the sorted file
  names per id and camera with a non-empty folder.

The released ``test.py`` names a mode by ``test_mode`` (1 = visible, 2 = infrared): ``test_mode[0]`` is
the drawn modality and ``test_mode[1]`` the full one. ``[1, 2]`` ("IR to VIS") ranks the drawn visible
images for every infrared image: mode ``ir2vis``. ``[2, 1]`` ("VIS to IR") draws the infrared side and
computes the distance matrix the other way round: the rows (queries) are the drawn infrared images and the
columns (gallery) every visible image. It is scored as infrared-to-visible retrieval, so it is named by what
it is: mode ``ir2vis-drawn``. :func:`query_gallery` returns the sides in those evaluation roles.

Evaluation: identity-deduplicated CMC, mAP and mINP, with the gallery entries of the query's identity
from the query's camera number removed (``protocol="llcm"`` of :func:`papg_bench.protocols.metrics.evaluate`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from papg_bench.data.listing import INFRARED, VISIBLE
from papg_bench.data.llcm import CAMERAS, TEST_FOLDERS, camera_folders, image_names, ordered_ids, read_test_ids
from papg_bench.errors import UserError
from papg_bench.protocols.protocol import Protocol
from papg_bench.protocols.splits import Split

Folders = dict[int, dict[int, Path]]


@dataclass(frozen=True)
class Mode:
    """One LLCM test mode: which modality is listed in full, which is drawn, which side is the query."""

    test_mode: tuple[int, int]  # the released test.py's test_mode: (drawn modality, full modality)
    full: str  # "V" or "I"
    drawn: str
    query_is_drawn: bool  # the drawn side is the query (rows), the full side the gallery (columns)


MODES = {
    "ir2vis": Mode(test_mode=(1, 2), full=INFRARED, drawn=VISIBLE, query_is_drawn=False),
    "ir2vis-drawn": Mode(test_mode=(2, 1), full=VISIBLE, drawn=INFRARED, query_is_drawn=True),
}
TRIALS = tuple(range(10))


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise UserError(f"LLCM mode {mode!r}: use 'ir2vis' (every infrared image against visible images drawn per "
                        "trial) or 'ir2vis-drawn' (infrared images drawn per trial against every visible image).")
    return MODES[mode]


def check_trial(trial: int) -> None:
    if trial not in TRIALS:
        raise UserError(f"LLCM trial {trial}: trials are 0..9.")


def protocol_id(mode: str, rerank: bool = False) -> str:
    """E.g. ``llcm/ir2vis/seed-trials/v1``; re-ranking adds a ``rerank`` segment before the version."""
    check_mode(mode)
    return f"llcm/{mode}/seed-trials{'/rerank' if rerank else ''}/v1"


def _rows(folders: Folders, ids: list[int], modality: str, rng: random.Random | None) -> list[tuple[str, int, int]]:
    top = TEST_FOLDERS[modality]
    rows = []
    for pid in ids:
        for cam in CAMERAS[modality]:
            folder = folders.get(cam, {}).get(pid)
            names = image_names(folder) if folder is not None else []
            if not names:
                continue
            picked = names if rng is None else [rng.choice(names)]
            rows.extend((f"{top}/cam{cam}/{folder.name}/{name}", pid, cam) for name in picked)
    return rows


def full_split(root: Path | str, modality: str, folders: Folders | None = None) -> Split:
    """Every test image of ``modality`` ("V" or "I"), ids in folder-name order, cameras in order, sorted names."""
    root = Path(root)
    ids = ordered_ids(read_test_ids(root))
    folders = folders if folders is not None else camera_folders(root, modality)
    rows = _rows(folders, ids, modality, None)
    if not rows:
        raise UserError(f"{root}: the test ids have no images under {TEST_FOLDERS[modality]}/camK/NNNN/.")
    return Split.from_rows(rows)


def drawn_split(root: Path | str, modality: str, trial: int, folders: Folders | None = None) -> Split:
    """One image per test id and camera of ``modality``, drawn as ``random.seed(trial)`` + ``random.choice``."""
    root = Path(root)
    check_trial(trial)
    ids = ordered_ids(read_test_ids(root))
    folders = folders if folders is not None else camera_folders(root, modality)
    rows = _rows(folders, ids, modality, random.Random(trial))  # the stream of random.seed(trial)
    if not rows:
        raise UserError(f"{root}: the test ids have no images under {TEST_FOLDERS[modality]}/camK/NNNN/.")
    return Split.from_rows(rows)


def _side(root: Path, spec: Mode, drawn: bool, trial: int | None, mode: str, role: str) -> Split:
    if not drawn:
        return full_split(root, spec.full)
    if trial is None:
        raise UserError(f"LLCM mode {mode!r} draws its {role} per trial: give a trial in 0..9.")
    return drawn_split(root, spec.drawn, trial)


def query_split(root: Path | str, mode: str, trial: int | None = None) -> Split:
    """The query side (rows of the distance matrix); ``trial`` is needed where the query is drawn (ir2vis-drawn)."""
    spec = check_mode(mode)
    return _side(Path(root), spec, spec.query_is_drawn, trial, mode, "query")


def gallery_split(root: Path | str, mode: str, trial: int | None = None) -> Split:
    """The gallery side (columns); ``trial`` is needed where the gallery is drawn (ir2vis)."""
    spec = check_mode(mode)
    return _side(Path(root), spec, not spec.query_is_drawn, trial, mode, "gallery")


def query_gallery(root: Path | str, mode: str = "ir2vis", trial: int = 0) -> tuple[Split, Split]:
    """The (query, gallery) of one LLCM trial in evaluation roles; paths relative to ``root``."""
    root = Path(root)
    spec = check_mode(mode)
    check_trial(trial)
    full = full_split(root, spec.full)
    drawn = drawn_split(root, spec.drawn, trial)
    return (drawn, full) if spec.query_is_drawn else (full, drawn)


class LlcmProtocol(Protocol):
    """LLCM: both test modes of the released test code, ten trials drawn with ``random.seed(trial)``."""

    family = "llcm"
    title = "LLCM"
    modes = {"ir2vis": "IR→VIS", "ir2vis-drawn": "IR(drawn)→VIS"}
    mode_groups = {"ir2vis": "Infrared→Visible", "ir2vis-drawn": "Infrared (drawn per trial)→Visible"}
    removal = "same-identity-same-camera"
    identity_cmc = True
    fixed_trials = TRIALS

    def check_mode(self, mode: str) -> None:
        check_mode(mode)

    def identifier(self, mode: str, shots: int, sampling: str | None, trials: Sequence[int],
                   rerank: bool = False) -> str:
        return protocol_id(mode, rerank)

    def query_gallery(self, root: Path, mode: str, trial: int, shots: int = 1, sampling: str | None = None,
                      split_file: Path | None = None) -> tuple[Split, Split]:
        return query_gallery(root, mode, trial)


PROTOCOL = LlcmProtocol()
