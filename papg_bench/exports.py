"""``papg-bench export-features``: a run's test features (or an .npz of features) in the files another
evaluation reads.

Formats: ``npz`` (what ``evaluate --features`` reads, with each row's identity, camera and modality and the
run's checkpoint sha256: the file ``evaluate --save-features`` writes) and ``official``, the feature files
of the dataset authors' own evaluation code where the dataset's protocol has one
(:attr:`~papg_bench.protocols.protocol.Protocol.official_format`; SYSU-MM01: ``sysu-mat``, the
``NAME_cam1.mat`` .. ``NAME_cam6.mat`` that ``evaluation_SYSU_MM01.m`` loads). The protocol's own name for
its format is accepted in place of ``official``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from papg_bench.catalog import get_dataset
from papg_bench.data.store import open_store
from papg_bench.errors import UserError
from papg_bench.protocols.feature_files import feature_table, load_features
from papg_bench.workspace import Workspace

NPZ = "npz"


@dataclass
class Exported:
    files: list[Path]
    rows: int  # feature rows written
    fmt: str  # npz, or the official format's name


def export_features(
    ws: Workspace,
    dataset: str,
    fmt: str,
    out: Path,
    run: str | None = None,
    features: Path | None = None,
    root: Path | None = None,
    name: str | None = None,
    feature: str = "bn",
    flip_test: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Exported:
    """Write the test features of the finished run ``run`` of the workspace store ``dataset``, or those of the
    .npz ``features`` (paths relative to ``root``, in the layout of the registered dataset ``dataset``), as
    ``fmt`` into ``out`` (a folder for ``official``, the file for ``npz``). ``name`` names the official files
    (default: the run's name or the .npz's stem)."""
    if (run is None) == (features is None):
        raise UserError("give --run RUN (a finished run of the store --dataset) or --features FILE.npz (with "
                        "--root), one of them.")
    if run is not None:
        from papg_bench.reid_baselines.run import run_features

        protocol = open_store(ws.dataset_dir(dataset), f"store for --dataset {dataset}").dataset.protocol
        official = None if fmt == NPZ else protocol.check_official_format(fmt)
        extracted = run_features(ws, dataset, run, feature=feature, flip_test=flip_test, device=device,
                                 progress=progress)
        if official is None:
            return Exported([extracted.save(out)], len(extracted.paths), NPZ)
        table = feature_table(extracted.features, extracted.paths, source=f"the features of run {run}")
        files = protocol.write_official_features(table, extracted.root, out, name or run)
        return Exported(files, len(table.paths), official)
    assert features is not None
    protocol = get_dataset(dataset).protocol
    if fmt == NPZ:
        raise UserError(f"--features {features} is an .npz already: export it with --format official.")
    official = protocol.check_official_format(fmt)
    if root is None:
        raise UserError(f"--root is required with --features: the {protocol.title} dataset root its paths are "
                        "relative to.")
    table = load_features(features, root)
    files = protocol.write_official_features(table, Path(root), out, name or Path(features).stem)
    return Exported(files, len(table.paths), official)
