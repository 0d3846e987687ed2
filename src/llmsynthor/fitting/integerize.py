"""Whole numbers from fractional ones, in one place: every record shape's counts go through here.

* :func:`round_to_total` — a vector of counts (or weights) to whole counts with a given sum, never
  past a cap: largest remainders, then largest counts (the flat loop's draws, zone totals, request sizes).
* :func:`integerize` — fractional weights of candidates to whole copies, exactly ``total`` of them,
  the controls as close as can be (a small MILP over the fractional parts; PopulationSim's step
  after list balancing). It falls back to the largest remainders (:func:`largest`) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from .incidence import as_incidence, importance_of, vector

MAX_BINARIES = 1000  # above this many fractional candidates the MILP sees only the LP relaxation's support and its nearest


def round_to_total(counts: np.ndarray, total: int, caps: np.ndarray | None = None) -> np.ndarray:
    """Whole counts summing to ``total`` (fewer only if the caps cannot hold it): the counts are
    scaled to ``total``, floored, and the shortfall goes to the largest remainders, then to the
    largest counts, never past a cap. Zeros when the counts sum to 0."""
    counts = np.clip(np.asarray(counts, dtype=float), 0, None)
    if counts.sum() <= 0 or total <= 0:
        return np.zeros(counts.size, dtype=np.int64)
    limit = np.full(counts.size, np.inf) if caps is None else np.floor(np.clip(caps, 0, None))
    scaled = np.minimum(counts * (total / counts.sum()), limit)
    base = np.floor(scaled).astype(np.int64)
    priority = scaled - base  # first the largest remainders, then the largest counts
    for key in (priority, counts):
        short = int(total - base.sum())
        while short > 0:
            room = np.flatnonzero(base < limit)
            if room.size == 0:
                return base
            pick = room[np.argsort(-key[room], kind="stable")[:short]]
            base[pick] += 1
            short -= pick.size
            if key is priority:
                break
    return base


def largest(keys: np.ndarray, residual: int) -> np.ndarray:
    """Largest remainders: a mask of the ``residual`` largest keys, ties to the lower index."""
    chosen = np.zeros(keys.size, dtype=bool)
    chosen[np.argsort(-keys, kind="stable")[:residual]] = True
    return chosen


@dataclass(frozen=True)
class IntegerResult:
    """Whole copies per candidate from :func:`integerize`.

    ``method`` is ``"floor"`` (the weights were whole numbers), ``"milp"`` or ``"rounding"`` (largest
    remainders); ``optimal`` says whether the choice is proven optimal (within the MILP's gap, over
    every candidate); ``candidates`` is how many the MILP chose among; ``note`` says why the MILP
    saw fewer, stopped early or was not used. ``absolute_errors`` is |achieved − target|.
    """

    counts: np.ndarray
    achieved: np.ndarray
    absolute_errors: np.ndarray
    method: Literal["floor", "milp", "rounding"]
    optimal: bool
    candidates: int
    note: str = ""


def integerize(incidence, targets, weights, total: int, importance=None, *, node_limit: int = 20, mip_rel_gap: float = 1e-4,
               max_binaries: int = MAX_BINARIES, time_limit: float | None = None, units: str = "copies") -> IntegerResult:
    """Whole copies per candidate (households, persons, …), exactly ``total`` of them, close to the weights and the controls.

    The weights are first scaled to sum to ``total``; every candidate gets the floor of its weight
    and the remaining copies go one each to candidates with a fractional part, chosen by a MILP
    (``scipy.optimize.milp``, HiGHS): minimize Σ_j importance_j/min importance · |achieved_j − t_j|
    over the controls, plus a tie-breaker (worth less than one copy in the least important
    control in all) favouring large fractional parts.

    With more than ``max_binaries`` fractional candidates the MILP would be slow (every node solves
    an LP over all of them), so the LP relaxation is solved first over all of them and the MILP only
    over its support (the candidates it gives a positive share) plus as many more as there are
    controls, those with the smallest reduced costs. The MILP stops at ``node_limit`` nodes or at
    ``mip_rel_gap``, both independent of machine speed; ``time_limit`` (default none) bounds the wall
    time at the price of determinism. Should HiGHS find no solution, the remaining copies go to
    the largest LP shares (without an LP: the largest fractional parts), ties to the lower index,
    and the result says so (``method="rounding"`` and a ``note``). ``units`` names the copies in
    messages ("households").
    """
    matrix = as_incidence(incidence)
    candidates, controls = matrix.shape
    return integerize_checked(matrix, vector("targets", targets, controls, allow_nan=True), vector("weights", weights, candidates),
                       total, importance_of(importance, controls), node_limit, mip_rel_gap, max_binaries, time_limit, units)


def integerize_checked(matrix: sp.csr_array, targets: np.ndarray, weights: np.ndarray, total: int, importance: np.ndarray,
                       node_limit: int, mip_rel_gap: float, max_binaries: int, time_limit: float | None,
                       units: str = "copies") -> IntegerResult:
    """:func:`integerize` on inputs already checked (:mod:`.incidence`): the zones' workers call it once a zone."""
    if int(total) != total or total < 0:
        raise ValueError(f"total must be a whole number ≥ 0, got {total}")
    total = int(total)
    positive = np.flatnonzero(weights > 0)
    if total > 0 and positive.size == 0:
        raise ValueError(f"weights must have a positive entry to place {total} {units}, got none")
    scaled = np.zeros_like(weights)
    if total > 0:
        scaled[positive] = weights[positive] * (total / float(np.add.reduce(weights[positive])))
    floors = np.floor(scaled + 1e-9)
    fractions = np.clip(scaled - floors, 0.0, None)
    residual = total - int(np.add.reduce(floors))
    pool = np.flatnonzero(fractions > 1e-12)
    if pool.size < residual:  # only when near-integer weights were snapped down: any positive candidate may take one more
        pool = positive
    counts = floors.astype(np.int64)
    if residual > 0:
        problem = _Rounding(matrix, targets, importance, counts, residual)
        extra, method, optimal, considered, note = problem.solve(pool, fractions[pool], node_limit, mip_rel_gap, max_binaries, time_limit)
        counts[pool[extra]] += 1
    else:
        method, optimal, considered, note = "floor", True, 0, ""
    achieved = matrix.T @ counts.astype(np.float64)
    errors = np.where(np.isnan(targets), np.nan, np.abs(achieved - np.nan_to_num(targets)))
    return IntegerResult(counts, achieved, errors, method, optimal, considered, note)


class _Rounding:
    """Which candidates of a pool get one copy more: ``residual`` of them, the controls as close as can be."""

    def __init__(self, matrix: sp.csr_array, targets: np.ndarray, importance: np.ndarray, floors: np.ndarray, residual: int):
        controlled = np.flatnonzero(~np.isnan(targets))
        self.matrix, self.residual = matrix, residual
        self.controls = controlled
        self.gap = targets[controlled] - matrix[:, controlled].T @ floors.astype(np.float64)
        self.weight = importance[controlled] / importance[controlled].min() if controlled.size else np.zeros(0)

    def solve(self, pool: np.ndarray, fractions: np.ndarray, node_limit: int, mip_rel_gap: float, max_binaries: int,
              time_limit: float | None) -> tuple[np.ndarray, str, bool, int, str]:
        """(chosen mask over the pool, method, optimal, candidates in the MILP, note)."""
        options = {"node_limit": int(node_limit), "mip_rel_gap": float(mip_rel_gap)}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        if not np.any(np.diff(self.matrix[pool][:, self.controls].tocsc().indptr)):  # no control the pool can move
            return largest(fractions, self.residual), "rounding", True, 0, "no control to fit: the largest fractional parts"
        subset, shares = np.arange(pool.size), fractions
        if pool.size > max_binaries:
            cost, rows, rhs, upper = self._program(pool, fractions)
            lp = linprog(cost, A_eq=rows, b_eq=rhs, bounds=np.column_stack([np.zeros(cost.size), upper]), method="highs",
                         options={k: v for k, v in options.items() if k == "time_limit"})
            if lp.x is None:
                return largest(fractions, self.residual), "rounding", False, 0, f"the LP relaxation failed ({lp.message})"
            shares = lp.x[:pool.size]
            support = shares > 1e-9
            zeros = np.flatnonzero(~support)
            nearest = zeros[np.argsort(lp.lower.marginals[:pool.size][zeros], kind="stable")[:self.controls.size + 1]]
            subset = np.union1d(np.flatnonzero(support), nearest)
        cost, rows, rhs, upper = self._program(pool[subset], fractions[subset])
        n = subset.size
        result = milp(cost, integrality=np.concatenate([np.ones(n), np.zeros(cost.size - n)]), bounds=Bounds(np.zeros(cost.size), upper),
                      constraints=LinearConstraint(rows, rhs, rhs), options=options)
        chosen = result.x[:n] > 0.5 if result.x is not None else None
        if chosen is None or int(chosen.sum()) != self.residual:
            why = result.message if chosen is None else f"its solution places {int(chosen.sum())} copies instead of {self.residual}"
            return largest(shares, self.residual), "rounding", False, n, f"the MILP gave no usable solution ({why})"
        mask = np.zeros(pool.size, dtype=bool)
        mask[subset[chosen]] = True
        reduced = f"the MILP saw {n} of {pool.size} candidates (LP support and nearest)" if n < pool.size else ""
        stopped = "" if result.status == 0 else f"the MILP stopped early at {result.mip_node_count} nodes, gap {result.mip_gap:.2g}"
        return mask, "milp", result.status == 0 and n == pool.size, n, "; ".join(filter(None, [reduced, stopped]))

    def _program(self, pool: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, sp.csc_array, np.ndarray, np.ndarray]:
        """Variables: one 0/1 per pool candidate, then shortfall and excess per control; rows: the controls, then the count."""
        block = self.matrix[pool][:, self.controls]
        n, m = pool.size, self.controls.size
        epsilon = 0.5 / (self.residual + 1)  # the whole tie-breaker is worth less than one copy in the least important control
        cost = np.concatenate([epsilon * (1.0 - fractions), self.weight, self.weight])
        identity = sp.identity(m, format="csc")
        rows = sp.vstack([sp.hstack([block.T, identity, -identity]), sp.hstack([sp.csr_array(np.ones((1, n))), sp.csr_array((1, 2 * m))])],
                         format="csc")
        return cost, rows, np.concatenate([self.gap, [self.residual]]), np.concatenate([np.ones(n), np.full(2 * m, np.inf)])
