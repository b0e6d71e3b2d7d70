"""Render result tables in the seed paper's layout: Markdown (README), CSV (analysis), LaTeX (booktabs).

Layout per table: a baseline row, its augmented rows, and under each augmented row a gain row
(arrow and difference against the baseline row). The best value of each column is bold; a missing
combination is shown as "–" (LaTeX "--"), never filled. Gains whose paired bootstrap interval over
seeds x trials excludes zero carry a "*".
"""

from __future__ import annotations

import csv
import io

from papg_bench.results.aggregate import TABLE_METRICS, Gain, ResultTable, Row, Stat
from papg_bench.results.records import SUMMARY_KEYS

MODE_SHORT = {"all": "All", "indoor": "Indoor", "v2t": "V→T", "t2v": "T→V"}
MODE_GROUP = {"all": "All-search", "indoor": "Indoor-search", "v2t": "Visible→Thermal", "t2v": "Thermal→Visible"}
METRIC_SHORT = {"rank1": "R-1", "rank10": "R-10", "rank20": "R-20", "mAP": "mAP"}
METRIC_LONG = {"rank1": "Rank-1", "rank10": "Rank-10", "rank20": "Rank-20", "mAP": "mAP"}
MISSING = "–"
CSV_COLUMNS = (
    "table", "baseline", "augment", "mode", "metric", "mean", "std", "n_seeds", "n_trials",
    "gain", "ci_low", "ci_high", "significant",
)


def _columns(table: ResultTable) -> list[tuple[str, str]]:
    return [(mode, metric) for mode in table.modes for metric in TABLE_METRICS]


def _range(values: set[int]) -> str:
    return str(min(values)) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def _runs_text(table: ResultTable) -> str:
    stats = [s for row in table.rows for mode in table.modes if (s := row.stat(mode, "rank1")) is not None]
    trials, seeds = {s.n_trials for s in stats}, {s.n_seeds for s in stats}
    return (f"{_range(trials)} trial{'s' if max(trials) > 1 else ''} × "
            f"{_range(seeds)} seed{'s' if max(seeds) > 1 else ''}")


def _gain_text(gain: Gain | None, up: str, down: str, mark: str) -> str | None:
    if gain is None:
        return None
    arrow = up if gain.shown > 0 else down if gain.shown < 0 else ""
    text = f"{arrow} {abs(gain.shown):.2f}" if arrow else f"{abs(gain.shown):.2f}"
    return text + (mark if gain.significant else "")


def _value_text(table: ResultTable, row: Row, mode: str, metric: str, bold: str) -> str | None:
    stat: Stat | None = row.stat(mode, metric)
    if stat is None:
        return None
    text = f"{stat.mean:.2f}"
    return bold.format(text) if round(stat.mean, 2) == table.best(mode, metric) else text


def _interval_note(table: ResultTable, mark: str) -> str:
    if not any(row.is_augmented for row in table.rows):
        return ""
    if table.has_intervals():
        return (f"{mark} gain whose paired bootstrap {table.level:.0%} confidence interval over seeds × trials "
                f"({table.resamples:,} resamples) excludes zero; intervals in table.csv.")
    return "No confidence intervals for the gains: they need runs of two or more seeds."


# --- Markdown ---------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def render_markdown(tables: list[ResultTable]) -> str:
    """All tables as Markdown, each under a heading naming its protocol variant, with its footnotes."""
    parts = []
    for table in tables:
        columns = _columns(table)
        header = ["Method"] + [f"{MODE_SHORT.get(mode, mode)} {METRIC_SHORT[metric]}" for mode, metric in columns]
        lines = [f"### {table.variant.title}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join([":---"] + ["---:"] * len(columns)) + "|"]
        for row in table.rows:
            values = [_value_text(table, row, mode, metric, "**{}**") for mode, metric in columns]
            lines.append("| " + " | ".join([_md_escape(row.label)] + [v or MISSING for v in values]) + " |")
            if row.is_augmented:
                gains = [_gain_text(row.gains.get(c), "↑", "↓", r"\*") for c in columns]
                lines.append("| " + " | ".join([""] + [g or MISSING for g in gains]) + " |")
        lines += ["", f"Values in %, mean over {_runs_text(table)}; ↑/↓: change against the baseline row above; "
                      f"{MISSING}: no record."]
        if note := _interval_note(table, r"\*"):
            lines += ["", note]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# --- CSV --------------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_csv(tables: list[ResultTable]) -> str:
    """One line per table/baseline/augment/mode/metric that has data: mean, std, runs, gain and its interval."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for table in tables:
        for row in table.rows:
            for mode in table.modes:
                for metric in SUMMARY_KEYS:
                    stat = row.stat(mode, metric)
                    if stat is None:
                        continue
                    gain = row.gains.get((mode, metric))
                    ci = gain.ci if gain is not None else None
                    writer.writerow([
                        table.variant.slug, row.baseline, row.augment, mode, metric,
                        _num(stat.mean), _num(stat.std), stat.n_seeds, stat.n_trials,
                        _num(gain.diff if gain else None), _num(ci[0] if ci else None), _num(ci[1] if ci else None),
                        "" if ci is None else str(gain.significant).lower(),  # type: ignore[union-attr]
                    ])
    return buffer.getvalue()


# --- LaTeX ------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "λ": r"$\lambda$", "×": r"$\times$", "–": "--", "→": r"$\rightarrow$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_table(table: ResultTable, dataset: str) -> str:
    columns = _columns(table)
    width = len(TABLE_METRICS)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.variant.title)} ({latex_escape(dataset)}). Values in \%.}}",
        r"\begin{tabular}{l" + "c" * len(columns) + "}",
        r"\toprule",
        " & ".join([""] + [rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(MODE_GROUP.get(m, m))}}}"
                           for m in table.modes]) + r" \\",
        " ".join(rf"\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(table.modes))),
        " & ".join(["Method"] + [METRIC_LONG[metric] for _, metric in columns]) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in table.rows:
        if previous is not None and row.baseline != previous:
            lines.append(r"\midrule")
        previous = row.baseline
        values = [_value_text(table, row, mode, metric, r"\textbf{{{}}}") for mode, metric in columns]
        lines.append(" & ".join([latex_escape(row.label)] + [v or "--" for v in values]) + r" \\")
        if row.is_augmented:
            gains = [_gain_text(row.gains.get(c), r"$\uparrow$", r"$\downarrow$", "$^{*}$") for c in columns]
            lines.append(" & ".join([""] + [g or "--" for g in gains]) + r" \\")
    note = latex_escape(_interval_note(table, "*"))
    if table.has_intervals():
        note = "$^{*}$" + note[1:]
    note = f" {note}" if note else ""
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\par\smallskip",
        rf"{{\footnotesize Mean over {latex_escape(_runs_text(table))}; "
        r"$\uparrow$/$\downarrow$: change against the baseline row above; --: no record." + note + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def render_latex(tables: list[ResultTable], dataset: str) -> str:
    """All tables as LaTeX ``table`` environments (needs ``\\usepackage{booktabs}``)."""
    header = f"% papg-bench report for dataset {dataset}; needs \\usepackage{{booktabs}}\n"
    return header + "\n".join(_latex_table(table, dataset) for table in tables)
