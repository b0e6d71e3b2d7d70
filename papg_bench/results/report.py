"""``papg-bench report``: gather a dataset's result records, write the tables and the CMC plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papg_bench.errors import UserError
from papg_bench.results.aggregate import CI_METHODS, ResultTable, Row, baseline_label, build_tables
from papg_bench.results.plots import CmcSeries, cmc_plot
from papg_bench.results.records import list_records
from papg_bench.results.tables import MODE_GROUP, render_csv, render_latex, render_markdown
from papg_bench.stages import DONE, REUSED, fingerprint_files, is_done, output_mark, write_mark
from papg_bench.workspace import atomic_write_text

FORMAT_FILES = {"md": "table.md", "csv": "table.csv", "latex": "table.tex"}
FORMAT_ALIASES = {"markdown": "md", "tex": "latex"}


MARK = "report.json"  # the stage mark: which records and options the files in the folder were made from


@dataclass
class Report:
    tables: list[ResultTable]
    markdown: str
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = DONE  # a stage outcome: done, or reused when the files were already made from these records
    fingerprint: str = ""


def parse_formats(text: str) -> tuple[str, ...]:
    """``md``, ``csv``, ``latex``, ``all`` or a comma-separated list of them."""
    names = [FORMAT_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in text.split(",") if n.strip()]
    if "all" in names:
        return tuple(FORMAT_FILES)
    bad = [n for n in names if n not in FORMAT_FILES]
    if bad or not names:
        raise UserError(f"--format {text!r} is not one of md, csv, latex, all (or a comma-separated list).")
    return tuple(dict.fromkeys(names))


def parse_ci(text: str) -> str:
    """``t`` (Student-t over the seed-level gains) or ``cluster-bootstrap``."""
    name = text.strip().lower()
    if name not in CI_METHODS:
        raise UserError(f"--ci {text!r} is not one of {', '.join(CI_METHODS)}.")
    return name


def _linestyle(table: ResultTable, row: Row) -> Any:
    if not row.is_augmented:
        return "--"
    augments = list(dict.fromkeys(r.augment for r in table.rows if r.is_augmented))
    return ("-", ":", "-.", (0, (5, 1, 1, 1)))[augments.index(row.augment) % 4]


def cmc_plots(tables: list[ResultTable], out_dir: Path) -> list[Path]:
    """One CMC figure per table and mode: ``cmc_<mode>`` for the main table, ``cmc_<mode>__<variant>`` else."""
    files = []
    for table in tables:
        for mode in table.modes:
            series = [
                CmcSeries(f"{baseline_label(row.baseline)} {row.label}" if row.is_augmented else row.label,
                          row.cells[mode].curve_runs(), group=row.baseline, linestyle=_linestyle(table, row))
                for row in table.rows if mode in row.cells
            ]
            if not series:
                continue
            main = table.variant.is_main and not table.variant.distance
            stem = out_dir / (f"cmc_{mode}" if main else f"cmc_{mode}__{table.variant.slug}")
            files += cmc_plot(series, stem, title=f"{table.variant.title}: {MODE_GROUP.get(mode, mode)}")
    return files


def make_report(
    dataset: str,
    results_dir: Path,
    out_dir: Path,
    *,
    formats: tuple[str, ...] = tuple(FORMAT_FILES),
    plots: bool = True,
    ci: str = "t",
    resamples: int = 10_000,
) -> Report:
    """Read every record in ``results_dir``, write the requested tables (and CMC plots) to ``out_dir``.

    ``ci`` is the gains' seed-level interval, ``t`` or ``cluster-bootstrap`` (``resamples`` resamples).
    """
    ci = parse_ci(ci)
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    records = list_records(results_dir) if results_dir.is_dir() else []
    if not records:
        raise UserError(f"no result records for dataset '{dataset}' in {results_dir}: "
                        f"run `papg-bench evaluate --dataset {dataset}` first.")
    tables, notes = build_tables(records, ci=ci, resamples=resamples)
    markdown = render_markdown(tables)
    fingerprint = fingerprint_files(sorted(results_dir.glob("*.json")), dataset, formats, plots, ci, resamples)
    report = Report(tables, markdown, notes=notes, fingerprint=fingerprint)
    mark = output_mark(out_dir / MARK)
    if is_done(mark, fingerprint):
        report.files = [out_dir / name for name in mark.record["files"]]
        report.status = REUSED
        return report
    texts = {"md": lambda: markdown, "csv": lambda: render_csv(tables), "latex": lambda: render_latex(tables, dataset)}
    for fmt in formats:
        path = out_dir / FORMAT_FILES[fmt]
        atomic_write_text(path, texts[fmt]())
        report.files.append(path)
    if plots:
        report.files += cmc_plots(tables, out_dir)
    write_mark(out_dir / MARK, fingerprint, report.files)
    return report
