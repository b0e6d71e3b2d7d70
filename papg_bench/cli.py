"""The ``papg-bench`` command line: one thin command per step, no logic beyond argument handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import papg_bench
from papg_bench.errors import UserError
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

Dataset = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name in the workspace (sysu, regdb, ...).")]


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
) -> None:
    ctx.obj = Workspace.resolve(work)


def workspace(ctx: typer.Context) -> Workspace:
    return ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()


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
    from papg_bench.runtime import environment_report
    from papg_bench.workspace_summary import summarize

    report = environment_report()
    faiss = report["faiss"]
    table = Table(title="environment", show_header=False)
    table.add_row("papg-bench", report["papg_bench"])
    table.add_row("torch", report["torch"])
    table.add_row("CUDA", str(report["cuda"]))
    table.add_row("cuDNN", str(report["cudnn"]))
    faiss_text = f"{faiss['version']} (GPU: {'yes' if faiss['gpu'] else 'no'})" if faiss["installed"] else "missing"
    table.add_row("faiss", faiss_text)
    table.add_row("devices", ", ".join(report["devices"]))
    table.add_row("CPU threads", str(report["cpu_threads"]))
    out.print(table)
    ws = workspace(ctx)
    out.print(summarize(ws))


@app.command()
def prepare(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Layout of --root: sysu or regdb.")],
    root: Annotated[Path, typer.Option("--root", help="Dataset root in the official layout.")],
    size: Annotated[str, typer.Option(help="Stored image size HxW.")] = "288x144",
    name: Annotated[str | None, typer.Option(help="Store name in the workspace (default: --dataset).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoder processes (default: all cores).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out unreadable images.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the input is unchanged.")] = False,
) -> None:
    """Decode an official-layout dataset once into the workspace's image store."""
    from papg_bench.data.layouts import read_layout
    from papg_bench.data.prepare import prepare_store

    ws = workspace(ctx)
    store_size = parse_size(size)
    listing = read_layout(dataset, root)
    target = ws.dataset_dir(name or dataset)
    result = prepare_store(listing, root, target, store_size, workers=workers, skip_bad=skip_bad, force=force)
    if result.status == "unchanged":
        out.print(f"{target}: unchanged ({result.count} images); use --force to rebuild.")
    else:
        out.print(f"{target}: stored {result.count} images at {size}.")
    for item in result.skipped:
        err.print(f"[yellow]skipped[/] {item['path']}: {item['error']}")


# --- synth (issue 3) ---

# --- evaluate (issue 4) ---

# --- pose (issue 5) ---

# --- train-generator / generate (issue 6) ---

# --- train (issue 7) ---

# --- report / demo (issue 8) ---


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app; a :class:`UserError` becomes one red line and exit status 2."""
    try:
        app(args=argv, prog_name="papg-bench", standalone_mode=False)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err.print("[red]aborted[/]")
        return 130
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return 130
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
