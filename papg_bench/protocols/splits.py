"""The query or gallery side of one protocol trial: paths in protocol order with identities and cameras."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    """Paths relative to the dataset root (forward slashes), in protocol order.

    ``cams`` are the camera numbers the dataset's reader assigns.
    """

    paths: list[str]
    pids: np.ndarray = field(repr=False)
    cams: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pids", np.asarray(self.pids, dtype=np.int64))
        object.__setattr__(self, "cams", np.asarray(self.cams, dtype=np.int64))
        if not (len(self.paths) == len(self.pids) == len(self.cams)):
            raise ValueError("Split: paths, pids and cams must have the same length")

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_rows(cls, rows: list[tuple[str, int, int]]) -> Split:
        """Build from ``(path, pid, cam)`` tuples."""
        return cls(
            paths=[r[0] for r in rows],
            pids=np.array([r[1] for r in rows], dtype=np.int64),
            cams=np.array([r[2] for r in rows], dtype=np.int64),
        )
