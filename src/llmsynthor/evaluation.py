"""How good is a synthetic set: on the targets, off the targets, realism, diversity, privacy.

Three things are reported separately (see ``../shared/docs/evaluation.md``):

1. **On the targets** — every target table: TVD, JS distance, Hellinger, SRMSE; every sum/mean
   target: the largest and mean relative error over its groups.
2. **Off the targets** (needs a reference micro-dataset) — every 2- and 3-way table over the
   variables that is *not* a target, binned consistently (numeric variables with the bins of
   the first target table that has them, else 6 quantile bins of the reference); plus the
   Wasserstein distance of each numeric variable and a classifier two-sample test (C2ST).
3. **Realism** — the violation rate of each rule, for the synthetic set and the reference.

Plus diversity (share of distinct records) and, with a reference, the median distance to the
closest reference record. Definitions: TVD = ½Σ|p−q|; JSD = Jensen–Shannon distance, base 2;
Hellinger = √(½Σ(√p−√q)²); SRMSE = RMSE of the cell counts / mean target cell count (on
proportions, so both sides have the same size); C2ST = |accuracy − 0.5| of a 5-fold
gradient-boosting classifier telling synthetic from reference rows (the larger side subsampled
to the smaller, so 0.5 is chance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from .metrics import jsd, tvd
from .rules import Rule
from .schema import CategoricalVariable, Schema
from .statistics import count, numeric_errors
from .targets import Axis, Targets, TargetTable, interval_label


def hellinger(synthetic: np.ndarray, target: np.ndarray) -> float:
    p, q = (np.asarray(x, dtype=float).ravel() / max(np.sum(x), 1e-300) for x in (synthetic, target))
    return float(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))


def srmse(synthetic: np.ndarray, target: np.ndarray) -> float:
    p, q = (np.asarray(x, dtype=float).ravel() / max(np.sum(x), 1e-300) for x in (synthetic, target))
    return float(np.sqrt(np.mean((p - q) ** 2)) / np.mean(q)) if np.mean(q) > 0 else 0.0


def table_metrics(synthetic: np.ndarray, target: np.ndarray) -> dict[str, float]:
    return {"tvd": tvd(synthetic, target), "jsd": jsd(synthetic, target),
            "hellinger": hellinger(synthetic, target), "srmse": srmse(synthetic, target)}


@dataclass
class Evaluation:
    """Every figure of one evaluation; ``summary()`` gives the means a table row needs."""

    on_targets: dict[str, dict[str, float]]
    numeric_targets: dict[str, dict[str, float]] = field(default_factory=dict)  # relative errors of sums and means
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)
    wasserstein: dict[str, float] = field(default_factory=dict)
    rules: dict[str, dict[str, float | None]] = field(default_factory=dict)
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
            "c2st": self.c2st, "distinct_share": self.distinct_share,
        }


def _axis_for(variable: str, schema: Schema, targets: Targets, reference: pd.DataFrame | None) -> Axis:
    for table in targets:
        for axis in table.axes:
            if axis.variable == variable:
                return axis
    var = schema[variable]
    if isinstance(var, CategoricalVariable):
        return Axis(variable, tuple(var.values))
    source = reference[variable] if reference is not None else None
    inner = np.unique(np.quantile(source, np.linspace(0, 1, 7)[1:-1])) if source is not None else np.linspace(var.min, var.max, 7)[1:-1]
    edges = np.array([var.min, *[e for e in inner if var.min < e < var.max], var.max], dtype=float)
    labels = tuple(interval_label(a, b, var) for a, b in zip(edges[:-1], edges[1:]))
    return Axis(variable, labels, edges)


def _c2st(synthetic: pd.DataFrame, reference: pd.DataFrame, schema: Schema, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    size = min(len(synthetic), len(reference))  # balanced classes, so 0.5 is chance
    rng = np.random.default_rng(seed)
    synthetic = synthetic.iloc[rng.permutation(len(synthetic))[:size]]
    reference = reference.iloc[rng.permutation(len(reference))[:size]]
    both = pd.concat([synthetic[schema.names], reference[schema.names]], ignore_index=True)
    X = np.column_stack([
        pd.Categorical(both[n], categories=schema[n].values).codes if isinstance(schema[n], CategoricalVariable)
        else both[n].to_numpy(dtype=float) for n in schema.names])
    y = np.r_[np.zeros(len(synthetic)), np.ones(len(reference))]
    categorical = [isinstance(schema[n], CategoricalVariable) for n in schema.names]
    model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed, max_iter=100)
    accuracy = cross_val_score(model, X, y, cv=5, scoring="accuracy").mean()
    return float(abs(accuracy - 0.5))


def _dcr(synthetic: pd.DataFrame, reference: pd.DataFrame, schema: Schema, seed: int) -> tuple[float, float]:
    """Median distance to the closest reference record, for the synthetic set and for a held-out
    half of the reference itself (the yardstick: real records are that close to each other)."""
    from sklearn.neighbors import NearestNeighbors

    def features(frame):
        cols = []
        for n in schema.names:
            var = schema[n]
            if isinstance(var, CategoricalVariable):
                cols.append(pd.get_dummies(pd.Categorical(frame[n], categories=var.values)).to_numpy(dtype=float))
            else:
                cols.append(((frame[n].to_numpy(dtype=float) - var.min) / (var.max - var.min))[:, None])
        return np.hstack(cols)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reference))
    half_a, half_b = reference.iloc[order[: len(order) // 2]], reference.iloc[order[len(order) // 2:]]
    index = NearestNeighbors(n_neighbors=1).fit(features(half_a))
    synthetic_distance = index.kneighbors(features(synthetic))[0].ravel()
    reference_distance = index.kneighbors(features(half_b))[0].ravel()
    return float(np.median(synthetic_distance)), float(np.median(reference_distance))


def evaluate(records: pd.DataFrame, targets: Targets, *, reference: pd.DataFrame | None = None,
             rules: list[Rule] = (), max_way: int = 3, seed: int = 0) -> Evaluation:
    """Score ``records`` against ``targets`` and, optionally, a reference micro-dataset."""
    schema = targets.schema
    result = Evaluation(on_targets={t.name: table_metrics(count(records, t), t.counts) for t in targets},
                        numeric_targets=numeric_errors(records, targets))
    rows = records[schema.names].astype(str).agg("\x1f".join, axis=1) if len(records) else pd.Series([], dtype=str)
    result.distinct_share = float(rows.nunique() / len(records)) if len(records) else 0.0
    result.duplicates = int(len(records) - rows.nunique())
    for rule in rules:
        result.rules[rule.text] = {
            "synthetic": float(rule.violations(records).mean()) if len(records) else 0.0,
            "reference": float(rule.violations(reference).mean()) if reference is not None and len(reference) else None,
        }
    if reference is None:
        return result

    target_sets = {frozenset(t.variables) for t in targets}
    axes = {n: _axis_for(n, schema, targets, reference) for n in schema.names}
    for k in range(2, max_way + 1):
        for combo in combinations(schema.names, k):
            if frozenset(combo) in target_sets:
                continue
            table = TargetTable(" × ".join(combo), tuple(axes[n] for n in combo), np.zeros(1))
            result.held_out[table.name] = table_metrics(count(records, table), count(reference, table))
    for n in schema.names:
        if not isinstance(schema[n], CategoricalVariable):
            result.wasserstein[n] = float(wasserstein_distance(records[n].to_numpy(dtype=float), reference[n].to_numpy(dtype=float)))
    result.c2st = _c2st(records, reference, schema, seed)
    result.dcr_median, result.dcr_reference_median = _dcr(records, reference, schema, seed)
    return result
