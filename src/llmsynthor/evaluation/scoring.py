"""How good is a synthetic set: on the targets, off the targets, realism, diversity, privacy.

Three things are reported separately:

1. **On the targets** — every target table: TVD, JS distance, Hellinger, SRMSE; every sum/mean
   target: the largest and mean relative error over its groups.
2. **Off the targets** (needs a reference micro-dataset) — every 2- and 3-way table over the
   variables that is *not* a target, binned consistently (numeric variables with the bins of
   the first target table that has them, else 6 quantile bins of the reference); plus the
   Wasserstein distance of each numeric variable and a classifier two-sample test (C2ST).
3. **Realism** — for each rule ``condition -> consequence``, the records that meet the condition
   and not the consequence, as a share of the records that meet the condition (the rule's own
   population; none when no record meets it) and as a share of all records, with both counts;
   for the synthetic set and the reference. A spec without rules leaves realism unscored, and says
   so (``summary()["realism"]``: :data:`~llmsynthor.core.rules.NOT_SCORED`), never as a rate of 0.

Plus diversity (share of distinct records) and, with a reference, the median distance to the
closest reference record. Definitions: TVD = ½Σ|p−q|; JSD = Jensen–Shannon distance, base 2;
Hellinger = √(½Σ(√p−√q)²); SRMSE = RMSE of the cell counts / mean target cell count (on
proportions, so both sides have the same size); C2ST = |accuracy − 0.5| of a 5-fold
gradient-boosting classifier telling synthetic from reference rows (the larger side subsampled
to the smaller, so 0.5 is chance).

Values outside the domain (a category not in the variable's values, a number outside
[min, max], a non-integer in an integer variable, a missing value) are counted per variable
(``outside_domain``) and count as error: a record whose value for one of a table's variables is
outside the domain falls in an extra cell "outside the domain" of that table, whose target is 0
(in held-out tables the reference's own out-of-domain records fill that cell on its side). The
cell is added only when a record of either side falls in it, so clean records score exactly as
without it. Wasserstein distances use the values present (out-of-range values included, missing
ones left out); sum and mean targets count a missing value of the summed variable as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from ..core.errors import Problem, SpecError
from ..core.records import inside_domain, outside_domain
from ..core.rules import Rule, realism_state
from ..core.schema import CategoricalVariable, Schema
from ..core.statistics import numeric_errors
from ..core.tables import Axis, Targets, TargetTable, interval_label
from .cells import cell_counts, combinations_held_out, score_counts


@dataclass
class Evaluation:
    """Every figure of one evaluation; ``summary()`` gives the means a table row needs."""

    on_targets: dict[str, dict[str, float]]
    numeric_targets: dict[str, dict[str, float]] = field(default_factory=dict)  # relative errors of sums and means
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)
    wasserstein: dict[str, float | None] = field(default_factory=dict)  # None: no value present on one side
    # per rule: "synthetic"/"reference" = share of all records violating it (kept for callers), and
    # for each side "<side>_among_condition", "<side>_condition_records", "<side>_violations", "<side>_records"
    rules: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    # variable -> {"count", "missing", "share", "example"} of values outside the domain
    outside_domain: dict[str, dict] = field(default_factory=dict)
    reference_outside_domain: dict[str, dict] = field(default_factory=dict)
    records_outside_domain: int = 0  # records with at least one value outside the domain
    outside_cells: dict[str, int] = field(default_factory=dict)  # target table -> records in its extra cell
    c2st: float | None = None
    distinct_share: float = 1.0
    duplicates: int = 0
    dcr_median: float | None = None
    dcr_reference_median: float | None = None

    def summary(self) -> dict[str, float | None]:
        def mean(block, key):
            return float(np.mean([m[key] for m in block.values()])) if block else None

        synthetic_rules = [r["synthetic"] for r in self.rules.values()]
        return {
            "target_tvd_mean": mean(self.on_targets, "tvd"), "target_jsd_mean": mean(self.on_targets, "jsd"),
            "heldout_jsd_mean": mean(self.held_out, "jsd"), "heldout_srmse_mean": mean(self.held_out, "srmse"),
            "rule_violations": float(np.mean(synthetic_rules)) if synthetic_rules else None,
            "realism": realism_state(len(self.rules)),
            "c2st": self.c2st, "distinct_share": self.distinct_share,
            "records_outside_domain": self.records_outside_domain,
        }


def _axis_for(variable: str, schema: Schema, targets: Targets, reference: pd.DataFrame | None) -> Axis:
    for table in targets:
        for axis in table.axes:
            if axis.variable == variable:
                return axis
    var = schema[variable]
    if isinstance(var, CategoricalVariable):
        return Axis(variable, tuple(var.values))
    source = _finite(reference[variable]) if reference is not None else np.empty(0)
    source = source[(source >= var.min) & (source <= var.max)]
    inner = np.unique(np.quantile(source, np.linspace(0, 1, 7)[1:-1])) if len(source) else np.linspace(var.min, var.max, 7)[1:-1]
    edges = np.array([var.min, *[e for e in inner if var.min < e < var.max], var.max], dtype=float)
    labels = tuple(interval_label(a, b, var) for a, b in zip(edges[:-1], edges[1:]))
    return Axis(variable, labels, edges)


def _codes(values: pd.Series, labels: list[str]) -> np.ndarray:
    """Index of each value among ``labels``; -1 for a value outside them (or missing)."""
    return pd.Index(labels).get_indexer(values.astype(object))


def _c2st(synthetic: pd.DataFrame, reference: pd.DataFrame, schema: Schema, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    size = min(len(synthetic), len(reference))  # balanced classes, so 0.5 is chance
    rng = np.random.default_rng(seed)
    synthetic = synthetic.iloc[rng.permutation(len(synthetic))[:size]]
    reference = reference.iloc[rng.permutation(len(reference))[:size]]
    both = pd.concat([synthetic[schema.names], reference[schema.names]], ignore_index=True)
    X = np.column_stack([
        _codes(both[n], schema[n].values) if isinstance(schema[n], CategoricalVariable)
        else both[n].to_numpy(dtype=float) for n in schema.names])
    y = np.r_[np.zeros(len(synthetic)), np.ones(len(reference))]
    categorical = [isinstance(schema[n], CategoricalVariable) for n in schema.names]
    model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed, max_iter=100)
    accuracy = cross_val_score(model, X, y, cv=5, scoring="accuracy").mean()
    return float(abs(accuracy - 0.5))


DCR_SAMPLE = 20_000  # synthetic records whose distance to the closest reference record is measured, at most


def _dcr(synthetic: pd.DataFrame, reference: pd.DataFrame, schema: Schema, seed: int) -> tuple[float, float]:
    """Median distance to the closest reference record, for the synthetic set and for a held-out
    half of the reference itself (the yardstick: real records are that close to each other).

    A synthetic set larger than :data:`DCR_SAMPLE` is measured on a random sample of that many records
    (each query searches the reference: all of 10⁶ records would take minutes; the sample's median lies
    within about ±0.7 percentile points, two standard errors, of the whole set's)."""
    from sklearn.neighbors import NearestNeighbors

    def features(frame):
        cols = []
        for n in schema.names:
            var = schema[n]
            if isinstance(var, CategoricalVariable):
                codes = _codes(frame[n], var.values)  # a value outside the domain: all zeros
                cols.append(np.vstack([np.eye(len(var.values)), np.zeros(len(var.values))])[codes])
            else:
                scaled = (frame[n].to_numpy(dtype=float) - var.min) / (var.max - var.min)
                cols.append(np.nan_to_num(scaled, nan=-1.0, posinf=2.0, neginf=-1.0)[:, None])  # missing: far from any record
        return np.hstack(cols)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reference))
    half_a, half_b = reference.iloc[order[: len(order) // 2]], reference.iloc[order[len(order) // 2:]]
    index = NearestNeighbors(n_neighbors=1).fit(features(half_a))
    if len(synthetic) > DCR_SAMPLE:
        synthetic = synthetic.iloc[np.sort(rng.permutation(len(synthetic))[:DCR_SAMPLE])]
    synthetic_distance = index.kneighbors(features(synthetic))[0].ravel()
    reference_distance = index.kneighbors(features(half_b))[0].ravel()
    return float(np.median(synthetic_distance)), float(np.median(reference_distance))


def _rule_figures(rule: Rule, records: pd.DataFrame, side: str) -> dict[str, float | int | None]:
    r = rule.rates(records)
    return {side: r["overall"], f"{side}_among_condition": r["among_condition"],
            f"{side}_condition_records": r["condition"], f"{side}_violations": r["violations"], f"{side}_records": r["records"]}


def _numeric_filled(records: pd.DataFrame, targets: Targets) -> pd.DataFrame:
    """Records whose missing values of summed variables count as 0 (a sum or mean target must not
    skip them silently; they are reported as outside the domain)."""
    variables = {t.variable for t in targets.numeric}
    if not variables or not records[list(variables)].isna().any().any():
        return records
    filled = records.copy()
    for v in variables:
        filled[v] = pd.to_numeric(filled[v], errors="coerce").fillna(0.0)
    return filled


def _finite(values: pd.Series) -> np.ndarray:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return x[np.isfinite(x)]


MIN_COMPARED = 10  # records on each side for the figures against a reference


def evaluate(records: pd.DataFrame, targets: Targets, *, reference: pd.DataFrame | None = None,
             rules: list[Rule] = (), max_way: int = 3, seed: int = 0) -> Evaluation:
    """Score ``records`` against ``targets`` and, optionally, a reference micro-dataset.

    Values outside the schema's domains are counted per variable and scored as error (see the
    module's docstring); they never make a table look better than it is."""
    schema = targets.schema
    if reference is not None and min(len(records), len(reference)) < MIN_COMPARED:
        raise SpecError(Problem("reference" if len(reference) < MIN_COMPARED else "records",
                                f"{min(len(records), len(reference))} records; comparing with a reference (C2ST's 5 folds, "
                                f"distance to the closest record) needs at least {MIN_COMPARED} on each side"))
    inside = inside_domain(records, schema)
    on_targets, outside_cells, cache = {}, {}, {}
    for t in targets:
        counts, outside = cell_counts(records, t, inside, cache)
        on_targets[t.name] = score_counts(counts, outside, t.counts)
        if outside:
            outside_cells[t.name] = outside
    result = Evaluation(on_targets=on_targets, numeric_targets=numeric_errors(_numeric_filled(records, targets), targets),
                        outside_domain=outside_domain(records, schema, inside), outside_cells=outside_cells)
    result.records_outside_domain = int(len(records) - np.logical_and.reduce(list(inside.values())).sum()) if len(records) else 0
    rows = pd.util.hash_pandas_object(records[schema.names], index=False)  # one hash per record (missing values too)
    result.distinct_share = float(rows.nunique() / len(records)) if len(records) else 0.0
    result.duplicates = int(len(records) - rows.nunique())
    for rule in rules:
        figures = _rule_figures(rule, records, "synthetic")
        if reference is not None and len(reference):
            figures.update(_rule_figures(rule, reference, "reference"))
        else:
            figures["reference"] = None
        result.rules[rule.text] = figures
    if reference is None:
        return result

    reference_inside = inside_domain(reference, schema)
    result.reference_outside_domain = outside_domain(reference, schema, reference_inside)
    target_sets = {frozenset(t.variables) for t in targets}
    axes = {n: _axis_for(n, schema, targets, reference) for n in schema.names}
    cache, reference_cache = {}, {}
    for combo in combinations_held_out(schema.names, target_sets.__contains__, max_way):
        table = TargetTable(" × ".join(combo), tuple(axes[n] for n in combo), np.zeros(1))
        counts, outside = cell_counts(records, table, inside, cache)
        reference_counts, reference_outside = cell_counts(reference, table, reference_inside, reference_cache)
        result.held_out[table.name] = score_counts(counts, outside, reference_counts, reference_outside)
    for n in schema.names:
        if not isinstance(schema[n], CategoricalVariable):
            x, y = _finite(records[n]), _finite(reference[n])
            result.wasserstein[n] = float(wasserstein_distance(x, y)) if len(x) and len(y) else None
    result.c2st = _c2st(records, reference, schema, seed)
    result.dcr_median, result.dcr_reference_median = _dcr(records, reference, schema, seed)
    return result
