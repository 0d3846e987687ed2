"""Candidate records from the joint model: the target tables joined by a calibrated pairwise prior.

1. **pool** — ``size`` independent records: every categorical variable from its target shares (its
   values uniformly where no table mentions it), every numeric one from its shape
   (:mod:`llmsynthor.core.within_bin`, the targets' bins smoothed).
2. **weight** — each record by the product, over the pairs no table crosses, of the prior's lifts
   between its levels (already raised to the calibrated strength, :mod:`llmsynthor.prior.tempering`);
   zero where the prior rules a pair of its levels out, or where the record breaks a constraint.
3. **rake** — the weights are raked (iterative proportional fitting) to every count table in turn:
   of all weightings that meet the tables, the one closest to the prior's.
4. **draw** — ``k`` candidates by systematic sampling with those weights.

The final calibration (:mod:`llmsynthor.fitting.calibration`) then keeps the n candidates that meet every
target exactly. Knows targets, shapes and constraint rules, not LLMs: the lifts come in as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.errors import SpecError
from ..core.levels import RECORDS, Linked
from ..core.levels import incidence as level_incidence
from ..core.rules import Rule, allowed
from ..core.schema import CategoricalVariable, IntegerVariable
from ..core.statistics import encode, encode_axis
from ..core.tables import Axis, Targets, name_cell, table_offsets
from ..core.within_bin import ValueShape
from .calibration import calibrate
from .constraints import contradiction_problems, contradictions

Lifts = dict[tuple[str, str], np.ndarray]  # (u, v) -> [|u|, |v|] over the levels' axes


@dataclass
class JointPool:
    """The weighted pool and what happened to it (for the manifest)."""

    records: pd.DataFrame
    weights: np.ndarray
    numeric: dict[str, tuple] = field(default_factory=dict)  # numeric variable -> (finest axis, shape, variable)
    ruled_out: int = 0  # records the prior's zeros took out
    broke_constraints: int = 0  # records a constraint took out
    restored: int = 0  # ruled-out records given back because a target cell had no other
    raking_rounds: int = 0
    raked_worst_tvd: float = 1.0

    def draw(self, k: int, rng: np.random.Generator) -> pd.DataFrame:
        """``k`` records by systematic sampling with the pool's weights (a heavy record may come more
        than once, as the distribution says). Every numeric value is drawn afresh inside its level's
        bin: the weights depend on the bin only, so this is the same distribution, without the copies
        a finite pool would give."""
        cum = np.cumsum(self.weights)
        if k <= 0 or cum[-1] <= 0:
            return self.records.iloc[:0].copy()
        points = (rng.random() + np.arange(k)) * (cum[-1] / k)
        rows = np.clip(np.searchsorted(cum, points, side="right"), 0, len(cum) - 1)
        out = self.records.iloc[rng.permutation(rows)].reset_index(drop=True)
        for name, (axis, shape, var) in self.numeric.items():
            level = np.clip(encode_axis(axis, out[name]), 0, axis.size - 1)
            top = np.where(level == axis.size - 1, var.top, axis.edges[level + 1])  # the last bin is closed
            u, x = rng.random(k), np.empty(k)
            for b in np.unique(level):
                at = level == b
                x[at] = shape.sample(float(axis.edges[b]), float(top[at][0]), u[at])
            if isinstance(var, IntegerVariable):
                x = np.clip(np.floor(x), var.min, var.max).astype(np.int64)
            out[name] = x
        return out

    def summary(self) -> dict:
        return {"pool": len(self.records), "ruled_out_by_prior": self.ruled_out, "broke_constraints": self.broke_constraints,
                "restored": self.restored, "raking_rounds": self.raking_rounds,
                "raked_worst_tvd": round(self.raked_worst_tvd, 6),
                "effective_size": round(float(self.weights.sum() ** 2 / max((self.weights ** 2).sum(), 1e-300)), 1)}


def independent_pool(targets: Targets, shapes: dict[str, ValueShape], size: int, rng: np.random.Generator,
                     axes: dict[str, Axis]) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """``size`` records of the independence model of the targets' margins, with the level of each
    variable in ``axes`` (categorical values or the finest bins) and each record's weight.

    Half the records take every categorical value uniformly instead of by its share, so that rare
    combinations (the 14 soldiers of a census in a federal job) are in the pool at all; the weights
    (target probability over the mixture's) make the weighted pool the independence model again.
    Numeric values follow their shapes in both halves."""
    schema = targets.schema
    columns, levels = {}, {}
    uniform = rng.random(size) < 0.5
    log_ratio = np.zeros(size)  # log p(x) - log u(x) over the categoricals
    for name, var in schema.variables.items():
        if isinstance(var, CategoricalVariable):
            axis = axes.get(name) or Axis(name, tuple(var.values))
            shares = targets.shares(name, axis) if name in axes else np.full(axis.size, 1 / axis.size)
            shares = shares / shares.sum()
            codes = np.where(uniform, rng.integers(0, axis.size, size), rng.choice(axis.size, size=size, p=shares))
            log_ratio += np.log(np.maximum(shares[codes], 1e-300)) + np.log(axis.size)
            columns[name] = np.asarray(axis.labels, dtype=object)[codes]
        else:
            shape = shapes.get(name) or ValueShape.uniform(var.min, var.top)
            x = shape.sample(var.min, var.top, rng.random(size))
            if isinstance(var, IntegerVariable):
                x = np.clip(np.floor(x), var.min, var.max).astype(np.int64)
            columns[name] = x
        if name in axes:
            levels[name] = encode_axis(axes[name], columns[name])
    ratio = np.exp(np.clip(log_ratio, -700, 700))
    weights = ratio / (0.5 * ratio + 0.5)  # p / (p/2 + u/2), in units of u
    return pd.DataFrame(columns, columns=schema.names), levels, weights


def build_pool(targets: Targets, shapes: dict[str, ValueShape], axes: dict[str, Axis], lifts: Lifts, zeros: Lifts,
               constraints: list[Rule], size: int, rng: np.random.Generator, max_rounds: int = 100) -> JointPool:
    """The pool of :func:`independent_pool` weighted by ``lifts`` (already tempered) and ``zeros``
    (cells ruled out), without records that break ``constraints``, raked to every count table."""
    records, levels, base = independent_pool(targets, shapes, size, rng, axes)
    log_w = np.log(np.maximum(base, 1e-300))
    ruled = np.zeros(size, dtype=bool)
    for (u, v), lift in lifts.items():
        if u in levels and v in levels:
            iu, iv = np.clip(levels[u], 0, lift.shape[0] - 1), np.clip(levels[v], 0, lift.shape[1] - 1)
            log_w += np.log(np.maximum(lift[iu, iv], 1e-300))
            if (u, v) in zeros:
                ruled |= zeros[(u, v)][iu, iv]
    broke = ~allowed(records, constraints) if constraints else np.zeros(size, dtype=bool)
    w = np.exp(log_w - log_w.max())
    codes = [encode(records, t) for t in targets]
    wanted = [t.counts.ravel() / max(t.counts.sum(), 1e-12) for t in targets]
    numeric = {name: (axes[name], shapes.get(name) or ValueShape.uniform(var.min, var.top), var)
               for name, var in targets.schema.variables.items() if var.is_numeric and name in axes}
    pool = JointPool(records, w, numeric, int((ruled & ~broke).sum()), int(broke.sum()))
    ruled = _restore(pool, ruled, broke, codes, wanted)
    pool.weights = np.where(ruled | broke, 0.0, w)
    _rake(pool, codes, wanted, max_rounds)
    return pool


def _restore(pool: JointPool, ruled: np.ndarray, broke: np.ndarray, codes: list[np.ndarray], wanted: list[np.ndarray]) -> np.ndarray:
    """Give back the prior's ruled-out records in every target cell that would otherwise have none
    (a table says such records exist: the tables win over the prior)."""
    for c, t in zip(codes, wanted):
        inside = c >= 0
        left = np.bincount(c[inside & ~ruled & ~broke], minlength=t.size)
        empty = (t > 0) & (left == 0)
        if empty.any():
            back = ruled & inside & empty[np.clip(c, 0, None)]
            pool.restored += int(back.sum())
            ruled = ruled & ~back
    return ruled


def _rake(pool: JointPool, codes: list[np.ndarray], wanted: list[np.ndarray], max_rounds: int) -> None:
    w = pool.weights
    valid = np.logical_and.reduce([c >= 0 for c in codes]) if codes else np.ones(len(w), dtype=bool)
    w[~valid] = 0.0
    worst = 1.0
    for pool.raking_rounds in range(1, max_rounds + 1):
        for c, t in zip(codes, wanted):
            cur = np.bincount(c[valid], weights=w[valid], minlength=t.size)
            cur = cur / max(cur.sum(), 1e-300)
            w[valid] *= np.divide(t, cur, out=np.zeros_like(cur), where=cur > 0)[c[valid]]
        total = max(w.sum(), 1e-300)
        worst = max((0.5 * np.abs(np.bincount(c[valid], weights=w[valid], minlength=t.size) / total - t).sum()
                     for c, t in zip(codes, wanted)), default=0.0)
        if worst < 1e-6:
            break
    pool.weights, pool.raked_worst_tvd = w / max(w.sum(), 1e-300), float(worst)


def check_constraints(targets: Targets, constraints: list[Rule], shapes: dict[str, ValueShape], source: str,
                      size: int = 50_000, seed: int = 0) -> None:
    """SpecError naming the target cells that ``constraints`` leave no record for (a table says such
    records exist, a constraint says they cannot); before any LLM call (:mod:`.constraints`)."""
    if not constraints:
        return
    records, _, _ = independent_pool(targets, shapes, size, np.random.default_rng(seed), targets.finest_axes())
    tables = list(targets)
    offsets = table_offsets(tables)
    incidence = level_incidence(tables, Linked((RECORDS,), {RECORDS.name: records}))
    wanted = np.concatenate([t.counts.ravel() for t in tables])
    found = contradictions(incidence, wanted, {rule.text: rule.violations(records) for rule in constraints})
    if found:
        raise SpecError(contradiction_problems(found, lambda cell: name_cell(tables, cell, offsets), source, "record"))


def joint_records(targets: Targets, shapes: dict[str, ValueShape], lifts: Lifts, zeros: Lifts, constraints: list[Rule],
                  candidates: float, pool_size: int, rng: np.random.Generator,
                  extra: pd.DataFrame | None = None) -> tuple[pd.DataFrame, JointPool, dict]:
    """The n records of the joint model: ``candidates`` × n drawn from :func:`build_pool` (plus
    ``extra`` candidates from elsewhere, e.g. the LLM's proposals), of which the final calibration
    keeps the n that meet every target. Returns (records, the pool, the calibration's summary)."""
    n = targets.n
    pool = build_pool(targets, shapes, targets.finest_axes(), lifts, zeros, constraints, pool_size, rng)
    drawn = pool.draw(max(int(round(candidates * n)), n), rng)
    frames = [drawn] + ([extra[targets.schema.names]] if extra is not None and len(extra) else [])
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else drawn
    if constraints:
        frame = frame[allowed(frame, constraints)].reset_index(drop=True)
    result = calibrate(frame, targets, n, rng)
    kept = frame.iloc[result.keep].reset_index(drop=True)
    return kept, pool, {**result.as_dict(), "from_proposals": int((result.keep >= len(drawn)).sum())}
