"""Group result records into paper tables: cells (mean +- std), gains and their seed-level intervals.

A table holds the records of one protocol family (SYSU-MM01 or RegDB) and one protocol variant
(shots, gallery sampling, re-ranking); the main variant is single-shot, seed sampling, no re-ranking.
Rows are baselines, each followed by its augmented rows; every baseline gets a row for every
augmentation present in the table, so a missing combination shows up as missing instead of vanishing.
An augmentation with generated images is told apart by its generated set (``--augment papg`` and
``gen:NAME`` name one; records cite it under ``generated_set``), so several sets (PAPG, its ablations,
the true counterparts, an imported generator) are rows of one table, labelled with the sets' display names.
All numbers here are in percent.

The trained model is the unit of inference: a cell's mean is the mean of its seeds' means over their
gallery trials, and a gain's interval is computed from one paired difference per seed (see
``docs/statistics.md``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

from papg_bench.catalog import protocols
from papg_bench.results.records import SUMMARY_KEYS

FAMILY_MODES = {p.family: tuple(p.modes) for p in protocols()}
MODE_FAMILY = {mode: family for family, modes in FAMILY_MODES.items() for mode in modes}
FAMILY_TITLES = {p.family: p.title for p in protocols()}
FAMILY_SAMPLING = {p.family: p.default_sampling or "" for p in protocols()}
TABLE_METRICS = ("rank1", "rank10", "rank20", "mAP")
BASELINE_NAMES = {"agw": "AGW", "cgrnet": "CGRNet", "dart": "DART"}
BASELINE_ORDER = ("agw", "cgrnet", "dart")
NO_AUGMENT = "none"
OURS = "papg"
SET_PREFIX = "gen:"
SET_ORDER = ("generator", "import", "counterparts")  # rows of sets of these origins, in this order
CI_METHODS = ("t", "cluster-bootstrap")
POWER = 0.8
MDE_SEEDS = (5, 10)  # seed counts for which the minimum detectable effect is also given

RunKey = tuple[Any, int]  # (seed, trial); seed may be None


@dataclass(frozen=True, order=True)
class Variant:
    """Protocol variant of a table; ``distance`` is set only when a family's records mix distances."""

    family: str
    shots: int = 1
    sampling: str = ""
    rerank: str = ""  # canonical JSON of the re-ranking parameters, "" for none
    distance: str = ""

    @property
    def is_main(self) -> bool:
        return self.shots == 1 and self.sampling in ("", "seed") and not self.rerank

    @property
    def title(self) -> str:
        parts = [FAMILY_TITLES.get(self.family, self.family)]
        parts.append("single-shot" if self.shots == 1 else f"multi-shot ({self.shots})")
        if self.sampling:
            parts.append(f"{self.sampling} sampling")
        if self.rerank:
            params = json.loads(self.rerank)
            if isinstance(params, dict):
                text = ", ".join(f"{'λ' if k == 'lambda' else k}={v}" for k, v in sorted(params.items()))
            else:
                text = str(params)
            parts.append(f"re-ranking ({text})")
        if self.distance:
            parts.append(f"{self.distance} distance")
        return ", ".join(parts)

    @property
    def slug(self) -> str:
        parts = [self.family, "single-shot" if self.shots == 1 else f"multi-shot-{self.shots}"]
        if self.sampling:
            parts.append(self.sampling)
        if self.rerank:
            params = json.loads(self.rerank)
            values = "-".join(str(v) for _, v in sorted(params.items())) if isinstance(params, dict) else ""
            parts.append(f"rerank-{values}" if values else "rerank")
        if self.distance:
            parts.append(self.distance)
        return "_".join(p.replace("/", "-").replace(" ", "-") for p in parts)

    @property
    def modes(self) -> tuple[str, ...]:
        return FAMILY_MODES.get(self.family, ())


@dataclass(frozen=True)
class Stat:
    """Mean of the seed means; ``std`` is across the seed means (``std_over`` "seeds", ddof 1) when there
    are two or more seeds, else across the one seed's trials ("trials", ddof 0, as ``evaluate`` prints)."""

    mean: float
    std: float
    n_seeds: int
    n_trials: int
    std_over: str = "trials"


@dataclass
class Cell:
    """The runs of one baseline/augmentation/mode: metric values and CMC curves keyed by (seed, trial)."""

    values: dict[str, dict[RunKey, float]] = field(default_factory=lambda: {k: {} for k in SUMMARY_KEYS})
    curves: dict[RunKey, np.ndarray] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    def stat(self, metric: str) -> Stat:
        runs = self.values[metric]
        by_seed = _by_seed(runs)
        trials = {trial for _, trial in runs}
        if len(by_seed) >= 2:
            means = np.array([np.mean(v) for v in by_seed.values()])
            return Stat(float(means.mean()), float(means.std(ddof=1)), len(by_seed), len(trials), "seeds")
        data = np.array(list(runs.values()), dtype=float)
        return Stat(float(data.mean()), float(data.std()), len(by_seed), len(trials), "trials")

    def curve_runs(self) -> np.ndarray:
        """Every run's CMC curve (percent), cut to the shortest, as an array (runs x ranks)."""
        curves = [self.curves[k] for k in sorted(self.curves, key=_run_sort_key)]
        length = min(len(c) for c in curves)
        return np.stack([c[:length] for c in curves])


@dataclass(frozen=True)
class Gain:
    """Augmented minus baseline, in percentage points. ``shown`` is the difference of the shown values.

    ``n_seeds`` counts the seeds both rows have; each gives one seed-level difference (its paired trials'
    mean), of which ``seed_mean`` is the mean and ``seed_std`` the std (ddof 1). ``ci`` and ``mde``
    (seed count -> minimum detectable effect at ``POWER``) need two or more of them; ``unpaired_seeds``
    counts the seeds of either row that the other lacks.
    """

    diff: float
    shown: float
    ci: tuple[float, float] | None
    n_pairs: int
    n_seeds: int
    n_trials: int = 0
    method: str = "t"
    seed_mean: float | None = None
    seed_std: float | None = None
    mde: dict[int, float] = field(default_factory=dict)
    unpaired_seeds: int = 0

    @property
    def significant(self) -> bool:
        return self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)


@dataclass
class Row:
    """``augment`` is the augmentation with its generated set spelled out (``papg`` for the workspace's
    PAPG set, ``gen:NAME+channel`` ...); ``generated_set`` names the set and ``set_sha256`` holds the
    manifest sha256s its records cite."""

    baseline: str
    augment: str
    label: str
    cells: dict[str, Cell]
    gains: dict[tuple[str, str], Gain | None] = field(default_factory=dict)  # (mode, metric); augmented rows
    generated_set: str | None = None
    set_sha256: tuple[str, ...] = ()

    @property
    def is_augmented(self) -> bool:
        return self.augment != NO_AUGMENT

    def stat(self, mode: str, metric: str) -> Stat | None:
        cell = self.cells.get(mode)
        return cell.stat(metric) if cell is not None else None


@dataclass
class ResultTable:
    variant: Variant
    modes: tuple[str, ...]
    rows: list[Row]
    resamples: int
    level: float
    method: str = "t"

    def best(self, mode: str, metric: str) -> float | None:
        """The highest shown (two-decimal) value of a column, or None when the column is empty."""
        shown = [round(s.mean, 2) for row in self.rows if (s := row.stat(mode, metric)) is not None]
        return max(shown) if shown else None

    def has_intervals(self) -> bool:
        return any(g is not None and g.ci is not None for row in self.rows for g in row.gains.values())

    def gains(self) -> list[tuple[Row, str, str, Gain]]:
        """Every computed gain as (row, mode, metric, gain), in table order."""
        return [(row, mode, metric, gain) for row in self.rows for (mode, metric), gain in row.gains.items()
                if gain is not None]


def baseline_label(baseline: str) -> str:
    return BASELINE_NAMES.get(baseline, baseline)


def _split_set(augment: str) -> tuple[str | None, list[str]]:
    """(the generated set an augmentation key names, or None; its other components)."""
    parts = augment.split("+")
    for part in parts:
        if part == OURS or part.startswith(SET_PREFIX):
            return (OURS if part == OURS else part[len(SET_PREFIX):]), [p for p in parts if p != part]
    return None, parts


def augment_label(augment: str, display: str | None = None) -> str:
    """A row's label: ``+ PAPG (ours)``, ``+ <set display name> + channel``, ``+ channel`` ..."""
    name, others = _split_set(augment)
    if name is None:
        return f"+ {augment}"
    shown = display or ("PAPG (ours)" if name == OURS else name)
    return " + ".join([f"+ {shown}", *others])


def augment_key(record: dict[str, Any]) -> str:
    """The row a record belongs to: its augmentation with the generated set it trained with spelled out.

    ``--augment papg`` with the workspace's PAPG set stays ``papg``; any other set is ``gen:NAME`` in
    place of the generated component, whether it was trained as ``gen:NAME`` or as ``papg`` with
    ``--generated-run NAME``. Records without ``generated_set`` take the name from their settings."""
    augment = str(record.get("augment") or NO_AUGMENT)
    name, others = _split_set(augment)
    if name is None:
        return augment
    reference = record.get("generated_set") or {}
    if reference.get("name"):
        name = str(reference["name"])
    elif name == OURS:
        name = str((record.get("config") or {}).get("generated_run") or OURS)
    return "+".join([OURS if name == OURS else f"{SET_PREFIX}{name}", *others])


def t_interval(seed_differences: Sequence[float], *, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of seed-level differences, with n_seeds - 1 degrees of freedom."""
    d = np.asarray(seed_differences, dtype=float)
    if d.size < 2:
        raise ValueError("t_interval needs at least two seed-level differences")
    mean, sem = float(d.mean()), float(d.std(ddof=1)) / np.sqrt(d.size)
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(level, d.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def cluster_bootstrap_ci(
    groups: Sequence[Sequence[float]], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Two-level percentile bootstrap of the mean of seed means: resample the seeds (``groups``, each the
    paired trial differences of one seed), then the trials within each drawn seed.

    Uses a fixed-seed numpy Generator, so the same groups always give the same interval.
    """
    arrays = [np.asarray(g, dtype=float) for g in groups]
    if len(arrays) < 2 or any(a.size == 0 for a in arrays):
        raise ValueError("cluster_bootstrap_ci needs at least two non-empty groups")
    n = len(arrays)
    counts = np.array([a.size for a in arrays])
    width = int(counts.max())
    padded = np.zeros((n, width))
    for i, a in enumerate(arrays):
        padded[i, : a.size] = a
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // (n * width))  # bounds the index arrays' memory
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        picked = rng.integers(0, n, size=(k, n))
        m = counts[picked][..., None]
        trials = (rng.random((k, n, width)) * m).astype(np.int64)
        inside = np.arange(width) < m  # a drawn seed gets as many trial draws as it has trials
        values = np.where(inside, padded[picked[..., None], trials], 0.0)
        means[start : start + k] = (values.sum(axis=-1) / m[..., 0]).mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@lru_cache(maxsize=256)
def _standardised_mde(n_seeds: int, level: float, power: float) -> float:
    df = n_seeds - 1
    critical = stats.t.ppf(1.0 - (1.0 - level) / 2.0, df)

    def shortfall(effect: float) -> float:
        nc = effect * np.sqrt(n_seeds)
        # the lower tail as the upper tail of -nc: nct.cdf is unstable far out in that tail
        return float(stats.nct.sf(critical, df, nc) + stats.nct.sf(critical, df, -nc)) - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2.0
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10))


def minimum_detectable_effect(std: float, n_seeds: int, *, level: float = 0.95, power: float = POWER) -> float:
    """The smallest true mean gain that the two-sided one-sample t-test at ``1 - level`` on ``n_seeds``
    seed-level differences of std ``std`` detects with probability ``power`` (exact, noncentral t)."""
    if n_seeds < 2:
        raise ValueError("a minimum detectable effect needs at least two seeds")
    return float(std) * _standardised_mde(int(n_seeds), float(level), float(power))


def _by_seed(runs: dict[RunKey, float]) -> dict[Any, list[float]]:
    by_seed: dict[Any, list[float]] = {}
    for key in sorted(runs, key=_run_sort_key):
        by_seed.setdefault(key[0], []).append(runs[key])
    return by_seed


def _run_sort_key(key: RunKey) -> tuple[int, Any, int]:
    seed, trial = key
    return (seed is None, seed if seed is not None else 0, trial)


def _family(record: dict[str, Any]) -> str:
    mode = record["mode"]
    return MODE_FAMILY.get(mode) or str(record["protocol"]).split("/")[0]


def _variant(record: dict[str, Any], with_distance: bool) -> Variant:
    rerank = record.get("rerank")
    family = _family(record)
    return Variant(
        family=family,
        shots=int(record.get("shots") or 1),
        # seed sampling is the SYSU default, so a record that does not say is not set apart from those that do
        sampling=str(record.get("sampling") or FAMILY_SAMPLING.get(family, "")),
        rerank=json.dumps(rerank, sort_keys=True) if rerank else "",
        distance=str(record.get("distance") or "") if with_distance else "",
    )


def _baseline(record: dict[str, Any]) -> str:
    if record.get("baseline"):
        return str(record["baseline"])
    source = record.get("features") or record.get("run") or record.get("_path") or "features"
    return Path(str(source)).stem


def _order(values: Iterable[str], first: tuple[str, ...]) -> list[str]:
    return sorted(set(values), key=lambda v: (first.index(v) if v in first else len(first), v))


def _select_latest(records: list[dict[str, Any]], notes: list[str]) -> dict[tuple, dict[str, Any]]:
    """One record per (variant, baseline, augment, mode, seed): the newest, with a note when others exist."""
    families_distances: dict[str, set[str]] = defaultdict(set)
    for record in records:
        families_distances[_family(record)].add(str(record.get("distance") or ""))
    chosen: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        variant = _variant(record, with_distance=len(families_distances[_family(record)]) > 1)
        key = (variant, _baseline(record), augment_key(record), record["mode"], record.get("seed"))
        chosen[key].append(record)
    selected = {}
    for key, group in chosen.items():
        group.sort(key=lambda r: (str(r.get("created") or ""), str(r.get("_path") or "")))
        selected[key] = group[-1]
        if len(group) > 1:
            others = ", ".join(str(r.get("_path")) for r in group[:-1])
            notes.append(f"{len(group)} records for {key[1]}/{key[2]}/{key[3]} seed {key[4]} ({key[0].title}): "
                         f"using the newest, {group[-1].get('_path')}; ignoring {others}")
    return selected


def _set_labels(records: Iterable[dict[str, Any]]) -> dict[str, tuple[str | None, str | None]]:
    """Augmentation key -> (display name, origin kind) of its set, from the newest record that gives them."""
    labels: dict[str, tuple[str | None, str | None]] = {}
    for record in sorted(records, key=lambda r: (str(r.get("created") or ""), str(r.get("_path") or ""))):
        reference = record.get("generated_set") or {}
        key = augment_key(record)
        old = labels.get(key, (None, None))
        labels[key] = (reference.get("display") or old[0], reference.get("kind") or old[1])
    return labels


def _augment_order(augments: set[str], sets: dict[str, tuple[str | None, str | None]]) -> list[str]:
    """PAPG first, then augmentations without generated images, then the other sets: generator runs,
    imports, true counterparts, by name."""
    def rank(augment: str) -> tuple[int, int, str]:
        name, _ = _split_set(augment)
        if name == OURS:
            return (0, 0 if augment == OURS else 1, augment)
        if name is None:
            return (1, 0, augment)
        kind = sets.get(augment, (None, None))[1]
        return (2, SET_ORDER.index(kind) if kind in SET_ORDER else len(SET_ORDER), augment)

    return sorted(augments, key=rank)


def _fill_cell(cell: Cell, record: dict[str, Any]) -> None:
    seed = record.get("seed")
    cell.paths.append(str(record.get("_path") or ""))
    for trial in record["trials"]:
        key = (seed, int(trial["trial"]))
        cmc = np.asarray(trial["cmc"], dtype=float) * 100.0
        for k in (1, 5, 10, 20):
            cell.values[f"rank{k}"][key] = float(cmc[min(k, len(cmc)) - 1])
        cell.values["mAP"][key] = float(trial["mAP"]) * 100.0
        cell.values["mINP"][key] = float(trial["mINP"]) * 100.0
        cell.curves[key] = cmc


def _gain(base: Cell | None, aug: Cell | None, metric: str, method: str, resamples: int, level: float
          ) -> Gain | None:
    if base is None or aug is None:
        return None
    b, a = base.stat(metric), aug.stat(metric)
    shown = round(round(a.mean, 2) - round(b.mean, 2), 2)
    base_runs, aug_runs = base.values[metric], aug.values[metric]
    pairs = set(base_runs) & set(aug_runs)
    by_seed = _by_seed({k: aug_runs[k] - base_runs[k] for k in pairs})
    seeds = {seed for seed, _ in base_runs} | {seed for seed, _ in aug_runs}
    gain = Gain(a.mean - b.mean, shown, None, len(pairs), len(by_seed), n_trials=len({t for _, t in pairs}),
                method=method, unpaired_seeds=len(seeds) - len(by_seed))
    if len(by_seed) < 2:
        return gain
    d = np.array([np.mean(v) for v in by_seed.values()])
    if method == "t":
        ci = t_interval(d, level=level)
    else:
        ci = cluster_bootstrap_ci(list(by_seed.values()), resamples=resamples, level=level)
    std = float(d.std(ddof=1))
    mde = {n: minimum_detectable_effect(std, n, level=level) for n in sorted({d.size, *MDE_SEEDS})}
    return replace(gain, ci=ci, seed_mean=float(d.mean()), seed_std=std, mde=mde)


def build_tables(
    records: Iterable[dict[str, Any]], *, ci: str = "t", resamples: int = 10_000, level: float = 0.95
) -> tuple[list[ResultTable], list[str]]:
    """Group validated records into tables (main variant first) and return them with notes for the user.

    ``ci`` is the gains' interval: ``t`` (Student-t over the seed-level differences) or
    ``cluster-bootstrap`` (``resamples`` two-level resamples, seeds then trials).
    """
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {', '.join(CI_METHODS)}, not {ci!r}")
    notes: list[str] = []
    selected = _select_latest(list(records), notes)
    cells: dict[Variant, dict[tuple[str, str], dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
    hashes: dict[tuple[Variant, str, str], set[str]] = defaultdict(set)
    for (variant, baseline, augment, mode, _seed), record in sorted(selected.items(), key=lambda kv: str(kv[0])):
        cell = cells[variant][(baseline, augment)].setdefault(mode, Cell())
        _fill_cell(cell, record)
        if (sha := (record.get("generated_set") or {}).get("sha256")):
            hashes[(variant, baseline, augment)].add(str(sha))
    sets = _set_labels(selected.values())
    notes += [f"{baseline_label(baseline)} {augment_label(augment, sets.get(augment, (None, None))[0])} "
              f"({variant.title}): its records cite {len(shas)} versions of the generated set (manifest sha256 "
              f"{', '.join(sorted(s[:12] for s in shas))}): the set was written again between runs."
              for (variant, baseline, augment), shas in sorted(hashes.items(), key=str) if len(shas) > 1]

    tables = []
    for variant in sorted(cells, key=lambda v: (not v.is_main, v)):
        groups = cells[variant]
        present_modes = {mode for by_mode in groups.values() for mode in by_mode}
        modes = tuple(m for m in variant.modes) + tuple(sorted(present_modes - set(variant.modes)))
        augments = _augment_order({a for _, a in groups} - {NO_AUGMENT}, sets)
        rows: list[Row] = []
        for baseline in _order((b for b, _ in groups), BASELINE_ORDER):
            base = Row(baseline, NO_AUGMENT, baseline_label(baseline), groups.get((baseline, NO_AUGMENT), {}))
            rows.append(base)
            for augment in augments:
                display, _ = sets.get(augment, (None, None))
                row = Row(baseline, augment, augment_label(augment, display), groups.get((baseline, augment), {}),
                          generated_set=_split_set(augment)[0],
                          set_sha256=tuple(sorted(hashes.get((variant, baseline, augment), ()))))
                for mode in modes:
                    for metric in SUMMARY_KEYS:
                        row.gains[(mode, metric)] = _gain(
                            base.cells.get(mode), row.cells.get(mode), metric, ci, resamples, level
                        )
                rows.append(row)
        tables.append(ResultTable(variant, modes, rows, resamples, level, ci))
    return tables, notes
