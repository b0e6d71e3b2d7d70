"""Render result tables in the seed paper's layout: Markdown (README), CSV (analysis), LaTeX (booktabs).

Layout per table: a baseline row, its augmented rows, and under each augmented row a gain row
(arrow and difference against the baseline row). The best value of each column is bold; a missing
combination is shown as "–" (LaTeX "--"), never filled. Gains whose seed-level interval (Student-t
or cluster bootstrap, see ``docs/statistics.md``) excludes zero carry a "*"; a note under the table
names the method, and ``table.csv`` holds every interval.
"""

from __future__ import annotations

import csv
import io

from papg_bench.catalog import mode_titles
from papg_bench.results.aggregate import MDE_SEEDS, POWER, TABLE_METRICS, Gain, ResultTable, Row, Stat, baseline_label
from papg_bench.results.records import SUMMARY_KEYS

MODE_SHORT = mode_titles()
MODE_GROUP = mode_titles(long=True)
METRIC_SHORT = {"rank1": "R-1", "rank10": "R-10", "rank20": "R-20", "mAP": "mAP"}
METRIC_LONG = {"rank1": "Rank-1", "rank10": "Rank-10", "rank20": "Rank-20", "mAP": "mAP"}
MISSING = "–"
CSV_COLUMNS = (
    "table", "baseline", "augment", "mode", "metric", "mean", "std", "std_over", "n_seeds", "n_trials",
    "gain", "ci_method", "ci_level", "gain_n_seeds", "gain_n_trials", "gain_seed_std", "ci_low", "ci_high",
    "significant", "mde80", *(f"mde80_{n}_seeds" for n in MDE_SEEDS), "ci_note", "generated_set",
    "generated_set_sha256",
)
SET_COLUMNS = 2  # generated_set, generated_set_sha256: the last columns
METHOD_NAMES = {"t": "Student-t", "cluster-bootstrap": "cluster-bootstrap"}


def _columns(table: ResultTable) -> list[tuple[str, str]]:
    return [(mode, metric) for mode in table.modes for metric in TABLE_METRICS]


def _range(values: set[int]) -> str:
    return str(min(values)) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def _span(values: list[float]) -> str:
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}–{high}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _runs_text(table: ResultTable) -> str:
    stats = [s for row in table.rows for mode in table.modes if (s := row.stat(mode, "rank1")) is not None]
    trials, seeds = {s.n_trials for s in stats}, {s.n_seeds for s in stats}
    return (f"{_range(trials)} trial{'s' if max(trials) > 1 else ''} × "
            f"{_range(seeds)} seed{'s' if max(seeds) > 1 else ''}")


def _spread_text(table: ResultTable) -> str:
    over = {s.std_over for row in table.rows for mode in table.modes if (s := row.stat(mode, "rank1")) is not None}
    if over == {"seeds"}:
        return "each seed's trials averaged first; std in table.csv across the seed means"
    if over == {"trials"}:
        return "std in table.csv across the trials of the one seed"
    return "each seed's trials averaged first; std in table.csv across the seed means, or across the trials " \
           "where a row has one seed"


def no_interval_reason(gain: Gain) -> str:
    """Why a gain has no interval (or why its interval leaves seeds out); "" when there is nothing to say."""
    if gain.n_seeds == 0:
        return "no shared seed"
    if gain.n_seeds == 1:
        return "one shared seed" if gain.unpaired_seeds else "one seed"
    return f"{_plural(gain.unpaired_seeds, 'unpaired seed')} left out" if gain.unpaired_seeds else ""


def _row_name(row: Row) -> str:
    return f"{baseline_label(row.baseline)} {row.label}"


def _method_text(table: ResultTable) -> str:
    """The interval method, in words, with the seeds and trials its gains rest on."""
    with_ci = [g for _, _, _, g in table.gains() if g.ci is not None]
    seeds, trials = {g.n_seeds for g in with_ci}, {g.n_trials for g in with_ci}
    runs = f"{_range(seeds)} seeds × {_range(trials)} paired trial{'s' if max(trials) > 1 else ''}"
    if table.method == "t":
        df = {n - 1 for n in seeds}
        freedom = f"{_range(df)} degree{'s' if max(df) > 1 else ''} of freedom"
        return f"{table.level:.0%} Student-t interval over seeds ({runs}, {freedom})"
    return (f"{table.level:.0%} cluster-bootstrap interval ({runs}; {table.resamples:,} resamples of the seeds, "
            f"then of the trials within each, generator seed 0)")


def _interval_notes(table: ResultTable, mark: str) -> list[str]:
    gains = table.gains()
    if not gains:
        return []
    notes = []
    with_ci = [g for _, _, _, g in gains if g.ci is not None]
    if with_ci:
        notes.append(f"{mark} gain whose {_method_text(table)} excludes zero; a seed's gain is the mean of its "
                     "paired trial differences (augmented minus baseline), the seeds being the unit of inference. "
                     "Each gain's interval, seed-level std and minimum detectable effects are in table.csv.")
        rank1 = [g for _, _, metric, g in gains if metric == "rank1" and g.ci is not None]
        if rank1:
            present = _span([g.mde[g.n_seeds] for g in rank1])
            others = ", ".join(f"{_span([g.mde[n] for g in rank1])} with {n}" for n in MDE_SEEDS)
            notes.append(f"Minimum detectable rank-1 gain at {POWER:.0%} power (noncentral t, from the seed-level "
                         f"std of the gain): {present} points with the "
                         f"{_range({g.n_seeds for g in rank1})} seeds present, {others}.")
    reasons: dict[str, dict[str, list[str]]] = {}
    for row, mode, _, gain in gains:
        if reason := no_interval_reason(gain):
            kind = "partial" if gain.n_seeds >= 2 else reason
            row_modes = reasons.setdefault(kind, {}).setdefault(_row_name(row), [])
            if MODE_SHORT.get(mode, mode) not in row_modes:
                row_modes.append(MODE_SHORT.get(mode, mode))
    everywhere = not with_ci and len(reasons) == 1
    for reason, rows in reasons.items():
        where = "; ".join(f"{name} ({', '.join(modes)})" for name, modes in rows.items())
        if reason == "one seed":
            who = "the gains" if everywhere else where
            notes.append(f"No interval and no mark for {who}: a gain needs runs of at least two seeds, and one seed "
                         "gives no seed-to-seed spread, so no minimum detectable effect either.")
        elif reason == "no shared seed":
            notes.append(f"No interval for {where}: the augmented and baseline runs share no seed, so they cannot "
                         "be paired by seed.")
        elif reason == "one shared seed":
            notes.append(f"No interval for {where}: the augmented and baseline runs share only one seed.")
        else:
            notes.append(f"The intervals of {where} use only the seeds that the augmented and baseline rows share.")
    return notes


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
        lines += ["", f"Values in %, mean over {_runs_text(table)} ({_spread_text(table)}); ↑/↓: change against "
                      f"the baseline row above; {MISSING}: no record."]
        for note in _interval_notes(table, r"\*"):
            lines += ["", note]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# --- CSV --------------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _gain_columns(table: ResultTable, gain: Gain | None) -> list[object]:
    if gain is None:
        return [""] * (len(CSV_COLUMNS) - CSV_COLUMNS.index("gain") - SET_COLUMNS)
    ci = gain.ci
    return [
        _num(gain.diff), gain.method if ci else "", f"{table.level:g}" if ci else "", gain.n_seeds, gain.n_trials,
        _num(gain.seed_std), _num(ci[0] if ci else None), _num(ci[1] if ci else None),
        "" if ci is None else str(gain.significant).lower(),
        _num(gain.mde.get(gain.n_seeds)), *(_num(gain.mde.get(n)) for n in MDE_SEEDS), no_interval_reason(gain),
    ]


def render_csv(tables: list[ResultTable]) -> str:
    """One line per table/baseline/augment/mode/metric that has data: mean, std, runs, gain and its interval,
    and the generated set with the manifest sha256s of its records (columns documented in
    ``docs/statistics.md``)."""
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
                    writer.writerow([
                        table.variant.slug, row.baseline, row.augment, mode, metric,
                        _num(stat.mean), _num(stat.std), stat.std_over, stat.n_seeds, stat.n_trials,
                        *_gain_columns(table, row.gains.get((mode, metric))),
                        row.generated_set or "", ";".join(row.set_sha256),
                    ])
    return buffer.getvalue()


# --- LaTeX ------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "λ": r"$\lambda$", "×": r"$\times$", "–": "--", "→": r"$\rightarrow$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _caption(table: ResultTable, dataset: str) -> str:
    text = latex_escape(f"{table.variant.title} ({dataset}).") + r" Values in \%."
    rank1 = [f"{_row_name(row)}, {MODE_GROUP.get(mode, mode)} {g.seed_mean:+.2f} [{g.ci[0]:.2f}, {g.ci[1]:.2f}], "
             f"std {g.seed_std:.2f}"
             for row, mode, metric, g in table.gains() if metric == "rank1" and g.ci is not None]
    if rank1:
        gains = "; ".join(rank1)
        text += " " + latex_escape(f"Gains: {_method_text(table)}; rank-1 gain (mean of the seed gains) "
                                   f"[interval], seed-level std: {gains}.")
    elif table.gains():
        text += " " + latex_escape("Gains: no interval (fewer than two seeds shared with the baseline).")
    return text


def _latex_table(table: ResultTable, dataset: str) -> str:
    columns = _columns(table)
    width = len(TABLE_METRICS)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_caption(table, dataset)}}}",
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
    notes = [latex_escape(n) for n in _interval_notes(table, "*")]
    if table.has_intervals():
        notes[0] = "$^{*}$" + notes[0][1:]
    note = "".join(f" {n}" for n in notes)
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\par\smallskip",
        rf"{{\footnotesize Mean over {latex_escape(_runs_text(table))} ({latex_escape(_spread_text(table))}); "
        r"$\uparrow$/$\downarrow$: change against the baseline row above; --: no record." + note + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def render_latex(tables: list[ResultTable], dataset: str) -> str:
    """All tables as LaTeX ``table`` environments (needs ``\\usepackage{booktabs}``)."""
    header = f"% papg-bench report for dataset {dataset}; needs \\usepackage{{booktabs}}\n"
    return header + "\n".join(_latex_table(table, dataset) for table in tables)
