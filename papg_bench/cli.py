"""The ``papg-bench`` command line: one thin command per step, no logic beyond argument handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import papg_bench
from papg_bench.catalog import dataset_names
from papg_bench.data.synthvi_materials import DEFAULT_INFRARED, check_infrared
from papg_bench.errors import UserError, os_error_message
from papg_bench.numerics import THREADS_ENV
from papg_bench.stages import DONE, REUSED
from papg_bench.workspace import WORK_ENV, Workspace

app = typer.Typer(
    name="papg-bench",
    help="Pose-attention-guided visible<->infrared augmentation benchmark for VI-ReID.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

Dataset = Annotated[str, typer.Option(
    "--dataset", "-d", help="Store name in the workspace (prepare's --name, by default the dataset's name).")]


def _version(value: bool) -> None:
    if value:
        out.print(f"papg-bench {papg_bench.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    work: Annotated[
        Path | None, typer.Option("--work", envvar=WORK_ENV, help="Workspace folder (default ./papg-work).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", envvar=THREADS_ENV, min=1,
        help="torch's CPU threads (default: torch's choice; the demo uses 2). Recorded with every run.")] = None,
) -> None:
    if threads is not None:
        from papg_bench.numerics import pin_numerics

        pin_numerics(threads, deterministic=False)
    ctx.obj = Workspace.resolve(work)


def workspace(ctx: typer.Context, writable: bool = True) -> Workspace:
    """The workspace of ``--work``, checked to be a folder (and writable when the command writes into it)."""
    ws = ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()
    return ws.check(writable=writable)


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{option} {text!r} is not HxW (e.g. 288x144).") from None
    if height < 8 or width < 8:
        raise UserError(f"{option} {text!r}: both sides must be at least 8 pixels.")
    return height, width


@app.command()
def info(ctx: typer.Context) -> None:
    """Versions (torch, CUDA, cuDNN, faiss), devices, and what the workspace holds."""
    from papg_bench.runtime import environment_report, faiss_summary
    from papg_bench.workspace_summary import summarize

    ws = workspace(ctx, writable=False)
    report = environment_report()
    table = Table(title="environment", show_header=False)
    table.add_row("papg-bench", report["papg_bench"])
    table.add_row("torch", report["torch"])
    table.add_row("CUDA", str(report["cuda"]))
    table.add_row("cuDNN", str(report["cudnn"]))
    table.add_row("faiss", faiss_summary(report["faiss"]))
    table.add_row("devices", ", ".join(report["devices"]))
    table.add_row("CPU threads", str(report["cpu_threads"]))
    out.print(table)
    out.print(summarize(ws))


@app.command()
def prepare(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=f"Layout of --root: {' or '.join(dataset_names())}.")],
    root: Annotated[Path, typer.Option("--root", help="Dataset root in the official layout.")],
    size: Annotated[str | None, typer.Option(help="Stored image size HxW (default: the dataset's, 288x144).")] = None,
    name: Annotated[str | None, typer.Option(help="Store name in the workspace (default: --dataset).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoder processes (default: all cores).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable images.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the input is unchanged.")] = False,
) -> None:
    """Decode an official-layout dataset once into the workspace's image store."""
    from papg_bench.catalog import get_dataset
    from papg_bench.data.prepare import prepare_store

    ws = workspace(ctx)
    kind = get_dataset(dataset)
    store_size = parse_size(size) if size is not None else kind.default_size
    listing = kind.read(root)
    target = ws.dataset_dir(name or dataset)
    result = prepare_store(listing, root, target, store_size, workers=workers, skip_bad=skip_bad, force=force)
    if result.status == REUSED:
        out.print(f"{target}: reused ({result.count} images, prepared from the same files); use --force to rebuild.")
    else:
        out.print(f"{target}: stored {result.count} images at {store_size[0]}x{store_size[1]}.")
    for item in result.skipped:
        err.print(f"[yellow]skipped[/] {item['path']}: {item['error']}")


def _print_files(files: list[Path], verb: str = "wrote") -> None:
    for path in files:
        out.print(f"{verb} {path}", markup=False, highlight=False, soft_wrap=True)


# --- synth ---


@app.command()
def synth(
    layout: Annotated[str, typer.Option(help="Folder layout to write: sysu, regdb or llcm.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset root to write (replaced as a whole).")],
    preset: Annotated[str, typer.Option(help="tiny (tests), small (the demo) or full (real counts).")] = "small",
    ids: Annotated[int | None, typer.Option(help="Number of identities (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    size: Annotated[str | None, typer.Option(help="Image size HxW (default: the preset's).")] = None,
    workers: Annotated[int | None, typer.Option(help="Rendering processes (default: all cores).")] = None,
    preview: Annotated[Path | None, typer.Option(help="Also write a labelled preview grid to this PNG.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Render even when --out is complete already.")] = False,
    infrared: Annotated[str, typer.Option(
        help="Near-infrared response of garments (SYSU and LLCM layouts): projection, or material-dye (hard).")
    ] = DEFAULT_INFRARED,
) -> None:
    """Render synthvi, the built-in visible/infrared person dataset, in the SYSU-MM01, RegDB or LLCM layout."""
    from papg_bench.data.synthvi import synthesize
    from papg_bench.data.synthvi_preview import write_preview

    result = synthesize(out_dir, layout, preset=preset, seed=seed, ids=ids,
                        size=parse_size(size) if size is not None else None, workers=workers, force=force,
                        infrared=infrared)
    if result.status == REUSED:
        out.print(f"{result.root}: reused ({result.images} images, the same parameters); use --force to render again.")
    else:
        out.print(f"{result.root}: rendered {result.images} images in {result.seconds:.1f} s.")
    if preview is not None:
        out.print(f"preview: {write_preview(result.root, preview)}")

# --- evaluate ---
@app.command()
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d", help=f"Whose protocol: {' or '.join(dataset_names())}.")],
    features: Annotated[Path | None, typer.Option(
        "--features", help="An .npz with 'features' (N x D) and 'paths' (N paths relative to --root); with "
        "--format official, a folder of the dataset authors' feature files.")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Dataset root in the official layout.")] = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="SYSU: all or indoor; RegDB: v2t or t2v (default: both).")] = None,
    shots: Annotated[int, typer.Option("--shots", help="SYSU gallery: 1 (single-shot) or 10 (multi-shot).")] = 1,
    sampling: Annotated[str, typer.Option(
        "--sampling", help="SYSU gallery: seed (random.seed(trial)) or official (exp/rand_perm_cam.mat).")] = "seed",
    split_file: Annotated[Path | None, typer.Option(
        "--split-file", help="With --sampling official: the dataset authors' split file when it is not under the "
        "root (SYSU-MM01: rand_perm_cam.mat from wuancong/SYSU-MM01, evaluation/data_split/).")] = None,
    trials: Annotated[str | None, typer.Option(
        "--trials", help="A range (0-9) or a list (1,3,5); default SYSU 0-9, RegDB every trial (1-10).")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="auto, torch, faiss (GPU when available), faiss-cpu or faiss-gpu.")] = "auto",
    distance: Annotated[str, typer.Option("--distance", help="cosine (L2-normalised) or euclidean.")] = "cosine",
    device: Annotated[str | None, typer.Option(
        "--device", help="Device of the torch backend (default: CUDA when present).")] = None,
    rerank: Annotated[bool, typer.Option(
        "--rerank", help="k-reciprocal re-ranking (Zhong et al., CVPR 2017), recorded as a variant.")] = False,
    k1: Annotated[int, typer.Option("--k1", help="Re-ranking k1.")] = 20,
    k2: Annotated[int, typer.Option("--k2", help="Re-ranking k2.")] = 6,
    lambda_value: Annotated[float, typer.Option("--lambda", help="Re-ranking lambda.")] = 0.3,
    top_k: Annotated[int, typer.Option("--top-k", help="Gallery paths listed per query in the JSONL.")] = 10,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the records (default <work>/results/<dataset>/).")] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Evaluate a trained run (agw, cgrnet, dart) of the workspace dataset --dataset.")] = None,
    augment: Annotated[str, typer.Option("--augment", help="The run's augmentation (with --baseline).")] = "none",
    seed: Annotated[int, typer.Option("--seed", help="The run's seed (with --baseline).")] = 0,
    run: Annotated[str | None, typer.Option("--run", help="Run folder (default <baseline>-<augment>-s<seed>).")
                   ] = None,
    flip_test: Annotated[bool, typer.Option("--flip-test", help="Run: average with the mirrored image.")] = False,
    feature: Annotated[str, typer.Option(
        "--feature", help="Run: bn (feat_fc, after the BNNeck; the AGW code's selected feature) or pooled "
        "(feat_pool); both L2-normalised.")] = "bn",
    force: Annotated[bool, typer.Option("--force", help="Run: recompute records that exist.")] = False,
    save_features: Annotated[Path | None, typer.Option(
        "--save-features", help="Run: also write its test features (paths, pids, cams, modality, feature kind, "
        "flip, checkpoint sha256) to this .npz, which --features reads back; the records name it.")] = None,
    features_format: Annotated[str, typer.Option(
        "--format", help="Of --features: npz, or official (a folder of the dataset authors' feature files; "
        "SYSU-MM01: sysu-mat, NAME_cam1.mat .. NAME_cam6.mat).")] = "npz",
    features_name: Annotated[str | None, typer.Option(
        "--name", help="With --format official: the NAME of NAME_cam<k>.mat (default: the folder's only set).")
    ] = None,
) -> None:
    """Evaluate features with the exact SYSU-MM01 / RegDB protocols (every trial; CMC, mAP, mINP)."""
    from papg_bench.protocols.evaluate import (
        ProtocolOptions,
        RerankOptions,
        evaluate_features_file,
        parse_trials,
        summary_table,
    )

    if baseline is not None or run is not None:  # a trained run
        from papg_bench.reid_baselines.run import evaluate_run

        if features is not None:
            raise UserError("give either --features or --baseline/--run, not both.")
        if features_format != "npz" or features_name is not None:
            raise UserError("--format and --name say how to read --features; a run's features are extracted.")
        result = evaluate_run(
            workspace(ctx, writable=out_dir is None), dataset, baseline or "agw", augment, seed, run=run,
            modes=(mode,) if mode else None,
            shots=shots, sampling=sampling, split_file=split_file, trials=trials, flip_test=flip_test,
            feature=feature, distance=distance,
            backend=backend, rerank=RerankOptions(k1, k2, lambda_value) if rerank else None, device=device,
            force=force, top_k=top_k, out_dir=out_dir, save_features=save_features)
        out.print(summary_table(result.records, title=f"{result.run} (percent, mean ± std over trials)"))
        for path, reused in zip(result.paths, result.reused, strict=True):
            out.print(f"record: {path}{' (reused)' if reused else ''}", highlight=False, soft_wrap=True)
        if save_features is not None:
            out.print(f"features: {save_features.resolve()}", highlight=False, soft_wrap=True)
        return
    if save_features is not None:
        raise UserError("--save-features writes a run's features: give --baseline/--run (--features are saved "
                        "already).")
    if features is None:
        raise UserError("--features FILE.npz is required: an .npz with 'features' and 'paths' arrays.")
    if root is None:
        raise UserError(f"--root is required with --features: the {dataset} dataset root the paths are relative to.")
    options = ProtocolOptions(
        shots=shots, sampling=sampling, split_file=split_file, trials=parse_trials(trials, dataset),
        distance=distance, backend=backend, device=device,
        rerank=RerankOptions(k1, k2, lambda_value) if rerank else None, top_k=top_k,
    )
    target = out_dir if out_dir is not None else workspace(ctx).results_dir(dataset)
    saved = evaluate_features_file(features, root, dataset, options, target, modes=[mode] if mode else None,
                                   fmt=features_format, name=features_name)
    out.print(summary_table([s.record for s in saved], title=f"{features.name} (percent, mean ± std over trials)"))
    for s in saved:
        out.print(f"record: {s.record_path}  per-query: {s.queries_path.name}", highlight=False, soft_wrap=True)


@app.command("export-features")
def export_features_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d", help="The workspace store of --run; with --features, the dataset whose layout its paths "
        f"follow ({' or '.join(dataset_names())}).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="official (the files the dataset authors' evaluation reads; SYSU-MM01: sysu-mat, "
        "NAME_cam1.mat .. NAME_cam6.mat) or npz (what evaluate --features reads).")],
    out_path: Annotated[Path, typer.Option("--out", help="Folder for the official files; the file for npz.")],
    run: Annotated[str | None, typer.Option("--run", help="A finished (trained or imported) run of --dataset.")
                   ] = None,
    features: Annotated[Path | None, typer.Option("--features", help="Or an .npz of features (with --root).")
                        ] = None,
    root: Annotated[Path | None, typer.Option("--root", help="With --features: the dataset root.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="NAME of NAME_cam<k>.mat (default: the run's name or the .npz's stem).")] = None,
    feature: Annotated[str, typer.Option("--feature", help="Run: bn (feat_fc) or pooled (feat_pool).")] = "bn",
    flip_test: Annotated[bool, typer.Option("--flip-test", help="Run: average with the mirrored image.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="Run: device of the extraction.")] = None,
) -> None:
    """Write a run's test features (or an .npz) as the dataset authors' evaluation code reads them, or as .npz."""
    from papg_bench.exports import export_features

    ws = workspace(ctx, writable=False) if run is not None else ctx.obj  # --features needs no workspace
    made = export_features(ws, dataset, fmt, out_path, run=run, features=features, root=root, name=name,
                           feature=feature, flip_test=flip_test, device=device)
    out.print(f"{made.rows} features as {made.fmt}:", highlight=False)
    _print_files(made.files)


# --- pose ---
@app.command()
def pose(
    ctx: typer.Context,
    dataset: Dataset,
    from_: Annotated[Path | None, typer.Option(
        "--from", help="Import keypoints from this file or folder instead of running an estimator.")] = None,
    format_: Annotated[str, typer.Option(
        "--format", help="Format of --from and --eval-against: auto, csv (PATN/PAPG), openpose (folder), coco.")
    ] = "auto",
    source_size: Annotated[str | None, typer.Option(
        help="Size HxW of the images the imported keypoints were measured on (default: read each source "
             "image's header).")] = None,
    estimator: Annotated[str | None, typer.Option(
        help="rtmpose or keypointrcnn (default rtmpose when the store has no keypoints yet).")] = None,
    weights: Annotated[Path | None, typer.Option(
        help="Local weights: RTMPose ONNX file or Keypoint R-CNN state dict (default: the library cache).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch missing estimator weights.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per estimator batch.")] = 32,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when present).")] = None,
    threshold: Annotated[float, typer.Option(help="Joints less confident than this are stored as missing.")] = 0.1,
    rcnn_min_size: Annotated[int, typer.Option(help="Keypoint R-CNN's input short side.")] = 800,
    preview: Annotated[Path | None, typer.Option(help="Write a PNG sheet of images with their skeletons.")] = None,
    eval_against: Annotated[Path | None, typer.Option(
        help="Ground-truth keypoint file: report PCK@0.5 (head-size normalised) per modality.")] = None,
    export: Annotated[Path | None, typer.Option(help="Also write the keypoints as a PATN/PAPG annotation CSV.")
                      ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo keypoints even when the input is unchanged.")] = False,
) -> None:
    """18 OpenPose keypoints per store image (estimated or imported) and their quality report."""
    from papg_bench.pose.diagnostics import report_tables
    from papg_bench.pose.run import run_pose

    store = workspace(ctx).dataset_dir(dataset)
    result = run_pose(
        store, source=from_, fmt=format_, source_size=parse_size(source_size, "--source-size") if source_size else None,
        estimator=estimator, weights=weights, download=download, batch_size=batch_size, device=device,
        threshold=threshold, rcnn_min_size=rcnn_min_size, preview=preview, eval_against=eval_against,
        eval_format=format_ if from_ is None else "auto", export=export, force=force,
    )
    if result.status == REUSED:
        what = "reused (same input as last time; --force to redo)" if from_ or estimator else "existing keypoints"
    elif result.meta.get("source") == "import":
        what = f"imported from {from_}"
    else:
        what = f"estimated with {result.meta.get('estimator')}"
    out.print(f"{store / 'poses.npy'}: {result.count} poses, {what}.")
    for note in result.notes:
        err.print(f"[yellow]note[/] {note}")
    for table in report_tables(result.detection, result.pck):
        out.print(table)
    if result.preview:
        out.print(f"preview: {result.preview}")
    if result.export:
        out.print(f"exported {result.export_rows} rows to {result.export}")


# --- train-generator / generate ---
_GenRun = Annotated[str, typer.Option("--run", help="Generator run name: <work>/generators/<dataset>/<run>/.")]
_GenInt = Annotated[int | None, typer.Option()]
_GenFloat = Annotated[float | None, typer.Option()]


@app.command("train-generator")
def train_generator_command(
    ctx: typer.Context,
    dataset: Dataset,
    run: _GenRun = "papg",
    preset: Annotated[str, typer.Option(help="paper (the released code's values) or tiny.")] = "paper",
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file (a generator table, or top-level keys).")
    ] = None,
    epochs: _GenInt = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step and process.")] = None,
    lr: _GenFloat = None,
    size: Annotated[str | None, typer.Option(help="Training size HxW (default 288x144; tiny 64x32).")] = None,
    blocks: Annotated[int | None, typer.Option(help="Residual (+ non-local) blocks per generator.")] = None,
    pose: Annotated[bool | None, typer.Option("--pose/--no-pose", help="Condition on the pose map.")] = None,
    attention: Annotated[bool | None, typer.Option("--attention/--no-attention",
                                                   help="Non-local block after each residual block.")] = None,
    pose_map: Annotated[str | None, typer.Option(help="skeleton (3 channels) or heatmaps (18).")] = None,
    attention_norm: Annotated[str | None, typer.Option(help="dot (affinity / N, released code) or softmax.")] = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="paper (the released weights_init_normal: non-local BN weights N(1, 0.02)) or zero-bn "
        "(non-local blocks start as the identity; the tiny preset).")] = None,
    channels: Annotated[int | None, typer.Option(help="Generator width (64 in the released code).")] = None,
    disc_channels: Annotated[int | None, typer.Option(help="Discriminator width (64).")] = None,
    lambda_cycle: _GenFloat = None,
    lambda_identity: _GenFloat = None,
    pool_size: Annotated[int | None, typer.Option(help="History buffer per discriminator (50).")] = None,
    beta1: _GenFloat = None,
    beta2: _GenFloat = None,
    decay_start: Annotated[float | None, typer.Option(help="Fraction of steps before the lr decays to 0.")] = None,
    heatmap_sigma: _GenFloat = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Random horizontal flips.")] = None,
    crop_pad: Annotated[int | None, typer.Option(help="Zero-pad and random-crop by this many pixels.")] = None,
    trial: Annotated[int | None, typer.Option(help="RegDB trial whose training ids are used (0 = first).")] = None,
    seed: _GenInt = None,
    max_pairs: Annotated[int | None, typer.Option(help="Cap on pairs per epoch, for quick runs (0 = all).")] = None,
    precision: Annotated[str | None, typer.Option(
        help="auto (bf16 autocast on CUDA, fp32 on the CPU), fp32 or bf16 (fast on CPUs with AVX512-BF16/AMX).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when present).")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the networks.")] = False,
    channels_last: Annotated[bool | None, typer.Option(
        "--channels-last/--no-channels-last", help="NHWC tensors and weights (default: on CUDA).")] = None,
    winograd: Annotated[bool, typer.Option(
        "--winograd", help="Winograd F(2x2,3x3) for the residual trunk's 3x3 convolutions: the same convolution "
        "in 2.25x fewer multiply-adds; pays on the CPU with --compile.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
) -> None:
    """Train PAPG (visible<->infrared, pose- and attention-guided); torchrun for several GPUs or nodes."""
    from papg_bench.config import make_config
    from papg_bench.generators.config import GeneratorConfig
    from papg_bench.generators.trainer import train_generator
    from papg_bench.training import cleanup_distributed

    overrides = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "size": parse_size(size) if size else None,
        "blocks": blocks, "pose": pose, "attention": attention, "pose_map": pose_map,
        "attention_norm": attention_norm, "init": init, "channels": channels, "disc_channels": disc_channels,
        "lambda_cycle": lambda_cycle, "lambda_identity": lambda_identity, "pool_size": pool_size, "beta1": beta1,
        "beta2": beta2, "decay_start": decay_start, "heatmap_sigma": heatmap_sigma, "flip": flip,
        "crop_pad": crop_pad, "trial": trial, "seed": seed, "max_pairs": max_pairs,
        "precision": precision,
    }
    cfg = make_config(GeneratorConfig, preset, config, overrides)
    try:
        result = train_generator(workspace(ctx), dataset, cfg, run=run, device=device, resume=resume,
                                 compile=compile, channels_last=channels_last, winograd=winograd)
    finally:
        cleanup_distributed()
    if result.status == REUSED:
        out.print(f"{result.run_dir}: reused: already trained with these settings and data "
                  f"({result.epochs_done} epochs); delete the folder or change a setting to retrain.", highlight=False)
    else:
        out.print(f"{result.run_dir}: {result.epochs_done} epochs, {result.steps} steps, "
                  f"{result.pairs_per_second:.2f} pairs/s -> {result.generators}", highlight=False)


@app.command()
def generate(
    ctx: typer.Context,
    dataset: Dataset,
    run: Annotated[str | None, typer.Option(
        "--run", help="Generator run name: <work>/generators/<dataset>/<run>/ (default papg; counterparts with "
        "--counterparts).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per generator batch.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when present).")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also write A/ (fake V) and B/ (fake I) PNGs here.")
                   ] = None,
    score: Annotated[bool, typer.Option("--score", help="SSIM/PSNR/L1 vs true counterparts, and modality gap.")
                     ] = False,
    force: Annotated[bool, typer.Option("--force", help="Regenerate even when up to date.")] = False,
    counterparts: Annotated[bool, typer.Option(
        "--counterparts", help="Write the true counterparts (synthvi's, RegDB's co-captured pairs) instead of a "
        "generator's output: the augmentation's upper bound.")] = False,
    trial: Annotated[int, typer.Option(help="With --counterparts: RegDB trial whose training ids are used (0 = "
                                            "first).")] = 0,
    other_moment: Annotated[bool, typer.Option(
        "--other-moment", help="With --counterparts: the counterpart of another image of the identity (another "
        "camera where possible), so no pose or background is shared.")] = False,
    seed: Annotated[int, typer.Option(help="With --other-moment: seed of the draw.")] = 0,
    display: Annotated[str | None, typer.Option(
        "--display", help="The set's label in report tables (default e.g. 'PAPG (ours)').")] = None,
) -> None:
    """Each training image's counterpart in the other modality: <work>/generated/<dataset>/<run>/."""
    from papg_bench.generators.quality import quality_tables
    from papg_bench.generators.synthesis import generate as generate_images

    if counterparts:
        from papg_bench.generators.counterparts import write_counterparts

        if png is not None or score:
            raise UserError("--counterparts writes the true images: --png and --score score a generator's output; "
                            "drop them.")
        default_run = "counterparts-other" if other_moment else "counterparts"
        result = write_counterparts(workspace(ctx), dataset, run=run or default_run, trial=trial, force=force,
                                    other_moment=other_moment, seed=seed, display=display)
        what = "reused (same store; --force to redo)" if result.status == REUSED else "written"
        out.print(f"{result.path}: {result.count} true counterparts, {what}; train with --augment "
                  f"gen:{result.path.name} (or --augment papg --generated-run {result.path.name})", highlight=False)
        return
    if trial or other_moment or seed:
        raise UserError("--trial, --other-moment and --seed go with --counterparts; a generator's images use the "
                        "trial and seed it was trained with.")
    result = generate_images(workspace(ctx), dataset, run=run or "papg", batch_size=batch_size, device=device,
                             png_dir=png, score=score, force=force, display=display)
    what = "reused (same generator and store; --force to redo)" if result.status == REUSED else "written"
    out.print(f"{result.path}: {result.count} images, {what}; generator sha256 {result.generator_sha256[:16]}",
              highlight=False)
    if result.png_dir:
        out.print(f"PNGs: {result.png_dir}/A (fake visible) and {result.png_dir}/B (fake infrared)", highlight=False)
    if result.quality is not None:
        for table in quality_tables(result.quality):
            out.print(table)

@app.command("import-generated")
def import_generated_command(
    ctx: typer.Context,
    dataset: Dataset,
    from_: Annotated[Path, typer.Option("--from", help="Folder of another generator's images.")],
    layout: Annotated[str, typer.Option(
        "--layout", help="papg (released test.py: A/ fake visible, B/ fake infrared), camfolders (the dataset's "
        "own layout, at each source's path) or paired (any folders plus a mapping CSV).")],
    name: Annotated[str, typer.Option("--name", help="Set name: <work>/generated/<dataset>/<name>/.")],
    display: Annotated[str | None, typer.Option(
        "--display", help="The set's label in report tables (default '<name> (imported)').")] = None,
    mapping: Annotated[Path | None, typer.Option(
        "--mapping", help="CSV generated_path,source_path (default DIR/mapping.csv when it exists).")] = None,
    trial: Annotated[int, typer.Option(help="Trial whose training identities may be sources (0 = first).")] = 0,
    score: Annotated[bool, typer.Option("--score", help="SSIM/PSNR/L1 vs true counterparts, and modality gap.")
                     ] = False,
    force: Annotated[bool, typer.Option("--force", help="Import again, or replace a set of another origin.")
                     ] = False,
) -> None:
    """Import another generator's images as a named generated set (train with --augment gen:NAME)."""
    from papg_bench.generators.imported_sets import import_generated

    ws = workspace(ctx)
    result = import_generated(ws, dataset, from_, layout, name, display=display, mapping=mapping, trial=trial,
                              force=force)
    directions = ", ".join(f"{d} {n}" for d, n in result.manifest["rows"]["directions"].items())
    what = "reused (same files; --force to redo)" if result.status == REUSED else "imported"
    out.print(f"{result.path}: {result.count} images ({directions}) {what} as {result.manifest['display']!r}; "
              f"train with --augment gen:{name}", highlight=False, soft_wrap=True)
    if score:
        from papg_bench.generators.quality import quality_tables
        from papg_bench.generators.synthesis import score_set

        quality, _ = score_set(ws, dataset, name, force=result.status == DONE or force)
        for table in quality_tables(quality):
            out.print(table)


# --- train ---
_Int = Annotated[int | None, typer.Option()]
_Float = Annotated[float | None, typer.Option()]
_Str = Annotated[str | None, typer.Option()]


@app.command()
def train(
    ctx: typer.Context,
    dataset: Dataset,
    baseline: Annotated[str, typer.Option(help="agw, cgrnet or dart.")] = "agw",
    augment: Annotated[str, typer.Option(
        help="none, papg, gen:NAME (any generated set), channel, gray or a '+' combination (gen:NAME+channel).")
    ] = "none",
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    preset: Annotated[str, typer.Option(help="paper (the AGW recipe) or tiny (CPU tests and demo).")] = "paper",
    config: Annotated[Path | None, typer.Option(help="TOML file with settings (table [train] or top level).")
                      ] = None,
    run: Annotated[str | None, typer.Option(help="Run folder name (default <baseline>-<augment>-s<seed>).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: CUDA when present).")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an unfinished run from its checkpoint.")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Delete the run folder and train again.")] = False,
    stop_after: Annotated[int | None, typer.Option(help="Stop after this many epochs (resumable).")] = None,
    arch: Annotated[str | None, typer.Option(help="resnet50 | resnet34 | resnet18.")] = None,
    width: Annotated[int | None, typer.Option(help="Base channel width (64 = standard ResNet).")] = None,
    pretrained: Annotated[str | None, typer.Option(
        help="none, imagenet (torchvision's V1 file, from torch's hub cache only), imagenet-v2, or a weight file.")
                          ] = None,
    last_stride: _Int = None,
    modality_stems: Annotated[bool | None, typer.Option(
        "--modality-stems/--shared-stem", help="One stem per modality (AGW) or one shared stem.")] = None,
    non_local: Annotated[bool | None, typer.Option("--non-local/--no-non-local")] = None,
    nl_inter: Annotated[str | None, typer.Option(
        help="Non-local inter-channels: one (the released AGW code, paper) or half (C/2).")] = None,
    gem_p: _Float = None,
    gem_form: Annotated[str | None, typer.Option(
        help="GeM: released ((mean(x^p) + 1e-12)^(1/p), paper) or clamped (inputs clamped at 1e-6).")] = None,
    parts: Annotated[int | None, typer.Option(help="CGRNet: horizontal part stripes.")] = None,
    part_dim: _Int = None,
    graph_layers: _Int = None,
    graph_topk: _Int = None,
    graph_scale: _Float = None,
    dart_variant: Annotated[str | None, typer.Option(
        help="DART: twin (the released two networks with co-selection) or single (one weighted network).")] = None,
    dart_warmup: Annotated[int | None, typer.Option(help="DART: epochs before clean-probability weighting.")] = None,
    dart_gmm_iterations: Annotated[int | None, typer.Option(help="DART single: EM steps of its mixture.")] = None,
    dart_threshold: _Float = None,
    dart_margin: Annotated[float | None, typer.Option(help="DART twin: the robust triplet's margin.")] = None,
    size: Annotated[str | None, typer.Option(help="Training image size HxW (288x144 paper).")] = None,
    pad: _Int = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip")] = None,
    channel_prob: _Float = None,
    gray_prob: _Float = None,
    synthetic_ratio: Annotated[float | None, typer.Option(
        help="Share of each modality's K images drawn from generated images (default: as in the pool).")] = None,
    generated_run: Annotated[str | None, typer.Option(
        help="Generated set to read for papg (default papg); --augment gen:NAME names one too.")] = None,
    trial: Annotated[int | None, typer.Option(help="RegDB trial whose training list is used.")] = None,
    val_split: Annotated[float | None, typer.Option(
        help="Fraction of training identities held out to select the epoch (default: last epoch).")] = None,
    num_ids: Annotated[int | None, typer.Option("--num-ids", "--batch-size", help="Identities per batch (P).")
                       ] = None,
    num_instances: Annotated[int | None, typer.Option(help="Images per identity and modality (K).")] = None,
    micro_batches: Annotated[int | None, typer.Option(help="Gradient-accumulation shards per batch.")] = None,
    budget: Annotated[str | None, typer.Option(
        help="epochs (equal epochs) or steps (as many steps as the un-augmented run).")] = None,
    epochs: _Int = None,
    lr: Annotated[float | None, typer.Option(help="Head learning rate (backbone: --backbone-lr).")] = None,
    backbone_lr: _Float = None,
    momentum: _Float = None,
    nesterov: Annotated[bool | None, typer.Option("--nesterov/--no-nesterov")] = None,
    weight_decay: _Float = None,
    warmup_epochs: _Int = None,
    milestones: Annotated[str | None, typer.Option(help="Epochs where the rate drops, e.g. 20,50.")] = None,
    lr_gamma: _Float = None,
    label_smoothing: _Float = None,
    triplet_weight: _Float = None,
    precision: Annotated[str | None, typer.Option(
        help="auto (bf16 autocast on CUDA, fp32 on the CPU), fp32 or bf16.")] = None,
    channels_last: Annotated[bool | None, typer.Option("--channels-last/--no-channels-last")] = None,
    eval_batch_size: _Int = None,
) -> None:
    """Train a VI-ReID baseline with an augmentation: <work>/runs/<dataset>/<baseline>-<augment>-s<seed>/."""
    overrides = {k: v for k, v in locals().items() if k not in (
        "ctx", "dataset", "baseline", "augment", "seed", "preset", "config", "run", "device", "compile", "resume",
        "restart", "stop_after")}
    from papg_bench.reid_baselines.run import train_run

    if size is not None:
        overrides["size"] = parse_size(size)
    if milestones is not None:
        try:
            overrides["milestones"] = tuple(int(v) for v in milestones.split(",") if v.strip())
        except ValueError:
            raise UserError(f"--milestones {milestones!r}: give comma-separated epochs, e.g. 20,50.") from None
    outcome = train_run(workspace(ctx), dataset, baseline, augment, seed, preset, config, overrides, device=device,
                        compile=compile, resume=resume, restart=restart, run=run, stop_after=stop_after)
    s = outcome.summary
    out.print(f"{outcome.run_dir}: {outcome.status}; {s['epochs_done']} epochs, {s['steps']} steps, "
              f"{s['train_images']['real']} real + {s['train_images']['generated']} generated training images, "
              f"{s['wall_time_s']:.0f} s training.", highlight=False, soft_wrap=True)
    if "dart" in s and "generated_low_clean" in s["dart"]:
        d = s["dart"]
        out.print(f"DART: {d['generated_low_clean']} of {d['generated_images']} generated and {d['real_low_clean']} "
                  f"of {d['real_images']} real images have clean probability < {d['threshold']}.", highlight=False)


# --- released checkpoints in ---


@app.command("import-run")
def import_run_command(
    ctx: typer.Context,
    dataset: Dataset,
    from_: Annotated[Path, typer.Option(
        "--from", help="The released checkpoint, e.g. sysu_agw_p4_n8_lr_0.1_seed_0_best.t (AGW train.py) or "
                       "release_sysu_dart_nr20_net1.t (the first of DART run.py's two networks).")],
    baseline: Annotated[str, typer.Option(
        help="Whose checkpoint: agw (mangye16/Cross-Modal-Re-ID-baseline) or dart (XLearning-SCU/2022-CVPR-DART).")
                        ] = "agw",
    net2: Annotated[Path | None, typer.Option(
        "--net2", help="DART: the second network's file (default: --from with _net1.t read as _net2.t).")] = None,
    run: Annotated[str | None, typer.Option(help="Run folder name (default <baseline>-imported).")] = None,
    seed: Annotated[int, typer.Option(help="The seed the checkpoint was trained with, for the report.")] = 0,
    trial: Annotated[int, typer.Option(help="RegDB: the trial the checkpoint was trained on.")] = 1,
    size: Annotated[str, typer.Option(help="Test image size HxW (the released test.py's 288x144).")] = "288x144",
    force: Annotated[bool, typer.Option("--force", help="Replace another run in the folder.")] = False,
) -> None:
    """A released VI-ReID checkpoint as a finished run: evaluate --run NAME and report use it like a trained one."""
    from papg_bench.reid_baselines.imported_runs import import_run

    outcome = import_run(workspace(ctx), dataset, from_, baseline=baseline, run=run, seed=seed, trial=trial,
                         size=parse_size(size), force=force, net2=net2)
    imported = outcome.summary["imported"]
    files = imported.get("files") or [{"from": imported["from"], "sha256": imported["sha256"]}]
    sources = " and ".join(f"{f['from']} (sha256 {f['sha256'][:16]})" for f in files)
    what = "reused (the same files; --force to import again)" if outcome.status == REUSED else "imported"
    out.print(f"{outcome.run_dir}: {what} from {sources}, epoch {imported['epoch']}, "
              f"{outcome.summary['identities']} classes; evaluate with `papg-bench evaluate -d {dataset} --run "
              f"{outcome.run_dir.name}`", highlight=False, soft_wrap=True)


@app.command("import-generator")
def import_generator_command(
    ctx: typer.Context,
    dataset: Dataset,
    a2b: Annotated[Path, typer.Option("--a2b", help="The released netG_A2B.pth (visible -> infrared).")],
    b2a: Annotated[Path, typer.Option("--b2a", help="The released netG_B2A.pth (infrared -> visible).")],
    name: Annotated[str, typer.Option("--name", help="Generator run: <work>/generators/<dataset>/<name>/.")],
    pose_map: Annotated[str, typer.Option(
        help="Pose input the checkpoints were trained with: skeleton (the released 3-channel pose image) or "
        "heatmaps.")] = "skeleton",
    size: Annotated[str, typer.Option(help="Size HxW the generators work at (the released 288x144).")] = "288x144",
    trial: Annotated[int, typer.Option(help="RegDB: trial whose training identities generate translates.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace another run of that name.")] = False,
) -> None:
    """The released PAPG generators as a generator run: generate --run NAME uses it like a trained one."""
    from papg_bench.generators.released import import_generator

    made = import_generator(workspace(ctx), dataset, a2b, b2a, name, pose_map=pose_map, size=parse_size(size),
                            trial=trial, force=force)
    what = "reused (the same files; --force to import again)" if made.status == REUSED else "imported"
    digests = ", ".join(f"{k} sha256 {v['sha256'][:16]}" for k, v in made.imported.items() if isinstance(v, dict))
    out.print(f"{made.run_dir}: {what} ({digests}); write its set with `papg-bench generate -d {dataset} --run "
              f"{name}`", highlight=False, soft_wrap=True)


# --- report / demo ---


@app.command()
def report(
    ctx: typer.Context,
    dataset: Dataset,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, csv, latex, all, or a comma list.")] = "all",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default <work>/reports/<dataset>/).")
    ] = None,
    results: Annotated[
        Path | None, typer.Option("--results", help="Folder of result records (default <work>/results/<dataset>/).")
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the CMC plots (PNG and PDF).")] = True,
    ci: Annotated[str, typer.Option("--ci", help="Interval of the gains over seeds: t or cluster-bootstrap.")] = "t",
) -> None:
    """Paper tables (Markdown, CSV, LaTeX) and CMC plots from the dataset's evaluation records."""
    from rich.markdown import Markdown
    from rich.markup import escape

    from papg_bench.results.report import make_report, parse_ci, parse_formats

    formats, ci = parse_formats(fmt), parse_ci(ci)
    if results is None or out_dir is None:
        ws = workspace(ctx, writable=out_dir is None)
        results = results or ws.results_dir(dataset)
        out_dir = out_dir or ws.reports_dir(dataset)
    made = make_report(dataset, results, out_dir, formats=formats, plots=plots, ci=ci)
    if out.is_terminal:
        out.print(Markdown(made.markdown))
    else:
        out.print(made.markdown, markup=False, highlight=False, soft_wrap=True)
    for note in made.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    _print_files(made.files, "wrote" if made.status == DONE else "reused (made from the same records)")


@app.command()
def demo(
    ctx: typer.Context,
    scale: Annotated[str, typer.Option(help="synthvi preset: small (the demo) or tiny (a quick check).")] = "small",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the tables and plots go.")] = Path("results/demo"),
    seed: Annotated[int, typer.Option(help="Seed of the data, the generator and the baselines.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: CUDA when present).")] = None,
    infrared: Annotated[str, typer.Option(
        help="synthvi's near-infrared response: projection, or material-dye (synthvi 1, hard).")] = DEFAULT_INFRARED,
    layout: Annotated[str | None, typer.Option(
        help="Dataset layout synthvi is rendered in and evaluated with (default sysu; llcm, regdb).")] = None,
) -> None:
    """The whole pipeline on the built-in synthvi dataset; stages already complete are reused."""
    from papg_bench.data.synthvi import LAYOUTS
    from papg_bench.demo import DEFAULT_LAYOUT, DEMO_THREADS, DemoSettings, run_demo

    if scale not in ("small", "tiny"):
        raise UserError(f"--scale {scale!r}: choose small or tiny.")
    layout = layout or DEFAULT_LAYOUT
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}.")
    threads = ctx.parent.params.get("threads") if ctx.parent is not None else None
    settings = DemoSettings(synth_preset=scale, seed=seed, out=out_dir, device=device, layout=layout,
                            infrared=check_infrared(infrared), threads=threads or DEMO_THREADS)
    run_demo(workspace(ctx), settings)
    table = out_dir / "table.md"
    if table.is_file():
        out.print(table.read_text(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"tables and plots: {out_dir}/")


# --- figures: ranked retrieval lists, t-SNE ---
figures = typer.Typer(help="Qualitative figures of evaluated runs: ranked retrieval lists, t-SNE of features.",
                      no_args_is_help=True)
app.add_typer(figures, name="figures")
_FigRun = Annotated[str, typer.Option(
    "--run", help="Evaluated run or features name (a record's file name before '__'), or a record .json.")]
_FigCompare = Annotated[str | None, typer.Option(
    "--compare", help="A second run (or record .json), e.g. the augmented model, drawn with the same choice.")]
_FigMode = Annotated[str | None, typer.Option("--mode", help="Protocol mode (default: the first evaluated).")]
_FigOut = Annotated[Path | None, typer.Option(
    "--out", help="File stem for .png/.pdf/.json (default <work>/reports/<dataset>/figures/...).")]
_FigDevice = Annotated[str | None, typer.Option(help="Device for extracting a trained run's features.")]


def _figure_output(made: papg_bench.results.figures.Figures) -> None:
    from rich.markup import escape

    for note in made.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    _print_files(made.files)


@figures.command("ranks")
def figures_ranks(
    ctx: typer.Context,
    dataset: Dataset,
    run: _FigRun,
    compare: _FigCompare = None,
    mode: _FigMode = None,
    trial: Annotated[int | None, typer.Option(help="Trial whose gallery is shown (default: the first).")] = None,
    queries: Annotated[list[str] | None, typer.Option(
        "--queries", help="A query path as the per-query file lists it (repeat for several).")] = None,
    pick: Annotated[str | None, typer.Option(
        help="random (seeded), hardest, or most-improved (from --run to --compare); default random.")] = None,
    count: Annotated[int, typer.Option(min=1, help="Queries to pick.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of --pick random.")] = 0,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Gallery images per query.")] = 10,
    out_stem: _FigOut = None,
    device: _FigDevice = None,
) -> None:
    """Top-k gallery images of chosen queries, framed green (correct) or red (wrong), with rank and distance."""
    from papg_bench.results.figures import rank_figure

    _figure_output(rank_figure(workspace(ctx, writable=out_stem is None), dataset, run, compare=compare, mode=mode,
                               trial=trial, queries=queries, pick=pick, count=count, seed=seed, top_k=top_k,
                               out=out_stem, device=device))


@figures.command("tsne")
def figures_tsne(
    ctx: typer.Context,
    dataset: Dataset,
    run: _FigRun,
    compare: _FigCompare = None,
    mode: _FigMode = None,
    ids: Annotated[int, typer.Option(min=2, help="Test identities drawn (seeded).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the identities, images and t-SNE.")] = 0,
    perplexity: Annotated[float, typer.Option(help="t-SNE perplexity (capped at (points - 1) / 3).")] = 30.0,
    per_identity: Annotated[int, typer.Option(
        min=0, help="At most this many images per identity and modality (0: all).")] = 20,
    out_stem: _FigOut = None,
    device: _FigDevice = None,
) -> None:
    """t-SNE of test features: colour = identity, marker = modality (scikit-learn's TSNE)."""
    from papg_bench.results.figures import tsne_figure

    _figure_output(tsne_figure(workspace(ctx), dataset, run, compare=compare, mode=mode, ids=ids, seed=seed,
                               perplexity=perplexity, per_identity=per_identity, out=out_stem, device=device))


def _error(message: str) -> int:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return 2


def _is_usage_error(exc: Exception) -> bool:
    """A bad option or value: click's ClickException, or the same class in the copy of click that typer carries."""
    import click

    return isinstance(exc, click.ClickException) or (isinstance(exc, typer.TyperException) and hasattr(exc, "show"))


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app; a :class:`UserError` becomes one red line and exit status 2.

    So does an ``OSError`` of permissions or disk space that no writer translated; other exceptions
    are bugs and keep their traceback.
    """
    try:
        app(args=argv, prog_name="papg-bench", standalone_mode=False)
    except UserError as exc:
        return _error(str(exc))
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err.print("[red]aborted[/]")
        return 130
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return 130
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        return _error(message)
    except Exception as exc:  # usage errors arrive here with standalone_mode=False
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
