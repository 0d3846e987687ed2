"""One candidate for each given unit (a person's day among its candidate days), chosen so that the
chosen candidates together meet the tables: the fractional solution (balanced weights) rounded one
unit at a time, then passes of exchanges that lower the tables' error.

Where the units are given (persons whose days are synthesized) the integer problem is not "how many
copies of each candidate" but "which candidate for each unit"; a region-wide MILP over it is slow
(:mod:`llmsynthor.fitting.integerize` measured 104 s at 2·10⁴ trips), so it is solved locally:
each pass visits the units in a seeded order and moves a unit to the candidate of its own that most
lowers the weighted L1 error Σ_j s_j |achieved_j − t_j| (``s_j`` = a table's weight over its total,
so the error is a weighted sum of the tables' TVDs), keeping its candidate on a tie. Passes stop
when one changes nothing or after ``passes``. Every exchange lowers the error (or, every other pass,
keeps it, to leave a plateau), so it never ends worse than the assignment it starts from. The
rounding and the passes are compiled loops (numba) summing as numpy does (:mod:`.sums`). Knows
sparse matrices, not records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import scipy.sparse as sp

from .incidence import as_incidence, vector
from .sums import segment_sum


@dataclass(frozen=True)
class UnitChoice:
    """``picks[g]`` is unit g's candidate; the error Σ s_j |achieved_j − t_j| after the first assignment and at the end."""

    picks: np.ndarray
    achieved: np.ndarray
    first_error: float
    error: float
    passes: int
    moves: int


def cell_targets(tables, emphasis=None) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``tables`` (each with ``region`` counts and a ``weight``) as :func:`choose_one` takes
    them: the targets, and each cell's scale, the table's weight (times its ``emphasis``, one factor a
    table, when given) over its total (so that the error is the weighted sum of the tables' L1 over
    their totals, 2 × TVD)."""
    factors = np.ones(len(tables)) if emphasis is None else emphasis
    targets = np.concatenate([t.region.ravel() for t in tables]) if tables else np.zeros(0)
    scale = np.concatenate([np.full(t.region.size, t.weight * float(e) / max(t.region.sum(), 1e-12))
                            for t, e in zip(tables, factors)]) if tables else np.zeros(0)
    return targets, scale


FLOOR = 1e-4  # a table's TVD counted at least this: a table met exactly is not driven to no weight at all
BOUNDS = (0.25, 4.0)  # each fit's factor on a table's emphasis stays within these


def reweighed(emphasis: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Emphasis for the next fit of several tables, towards every table within tolerance rather than the least
    total error: each table's ``emphasis`` times the square root of its ``fit`` (TVD, at least :data:`FLOOR`)
    over the tables' mean, each factor within :data:`BOUNDS`, normalized to a geometric mean of 1."""
    fit = np.maximum(np.asarray(fit, dtype=float), FLOOR)
    out = emphasis * np.clip(np.sqrt(fit / fit.mean()), *BOUNDS)
    return out / np.exp(np.mean(np.log(out)))


def choose_one(incidence, starts: np.ndarray, targets, weights, scale, rng: np.random.Generator, *, passes: int = 30,
               first: Literal["rounded", "drawn"] = "rounded", start: np.ndarray | None = None,
               members: np.ndarray | None = None) -> UnitChoice:
    """A candidate for each unit among the rows of its pool in ``incidence`` ([candidate, cell]): pool k
    is rows ``starts[k]`` … ``starts[k+1]−1`` (``starts`` has one more entry than there are pools and
    ends at the number of candidates); ``members`` gives each unit's pool (None: one unit a pool, in
    order). Units sharing a pool are alike (e.g. persons of one home zone and kind): each may take any of
    its candidates, as often as units pick it. ``weights`` (≥ 0; uniform within a pool where they are
    all 0) are each pool's shares over its candidates (scaled to its units: only the shares count);
    ``scale`` weighs each cell's absolute error; a cell whose target is NaN is not counted.

    The first assignment is ``rounded`` (default): the units, in a seeded order, each take the
    candidate that best meets the targets given the units already assigned and the weighted average
    of those still to come — rounding the fractional solution one unit at a time, so that what one
    unit's rounding misses, the next ones make up — or ``drawn``: each unit's candidate drawn by its
    pool's weights. ``start`` (a candidate per unit, each within its pool) replaces it. The passes
    then go on from there."""
    matrix = as_incidence(incidence)
    candidates, cells = matrix.shape
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or starts.size < 2 or starts[0] != 0 or starts[-1] != candidates or np.any(np.diff(starts) < 1):
        raise ValueError("starts must rise from 0 to the number of candidates, each pool with at least one candidate")
    if first not in ("rounded", "drawn"):
        raise ValueError(f"first must be 'rounded' or 'drawn', not {first!r}")
    pools = len(starts) - 1
    members = np.arange(pools) if members is None else np.asarray(members, dtype=np.int64)
    if members.ndim != 1 or np.any(members < 0) or np.any(members >= pools):
        raise ValueError(f"members must give each unit a pool among the {pools} that starts delimits")
    t = vector("targets", targets, cells, allow_nan=True)
    w = vector("weights", weights, candidates)
    s = np.where(np.isnan(t), 0.0, vector("scale", scale, cells))
    t = np.nan_to_num(t)
    units = len(members)
    low, high = starts[:-1][members], starts[1:][members]  # each unit's candidates
    sizes = np.diff(starts)
    pool_of = np.repeat(np.arange(pools), sizes)
    total = np.bincount(pool_of, weights=w, minlength=pools)
    p = np.where(total[pool_of] > 0, w / np.where(total[pool_of] > 0, total[pool_of], 1), 1.0 / sizes[pool_of])
    csr = sp.csr_array(matrix)
    indptr, indices, data = csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data.astype(np.float64)
    work = np.empty(int(np.diff(indptr).max(initial=0)) * int(sizes.max()))  # the compiled loops' scratch: a unit's gains,
    cost = np.empty(int(sizes.max()))  # and its candidates' costs
    if start is not None:
        picks = np.asarray(start, dtype=np.int64).copy()
        if picks.shape != (units,) or np.any(picks < low) or np.any(picks >= high):
            raise ValueError("start must give one candidate per unit, each within its pool's rows")
        residual = np.asarray(csr[picks].sum(axis=0)).ravel() - t
    elif first == "drawn":
        below = np.cumsum(p) - np.repeat(np.cumsum(p)[starts[:-1]] - p[starts[:-1]], sizes)  # cumulative within the pool
        picks = low + np.minimum(_first_at_least(below, rng.random(units), low, high), high - low - 1)
        residual = np.asarray(csr[picks].sum(axis=0)).ravel() - t
    else:
        picks = np.zeros(units, dtype=np.int64)
        residual = csr.T @ (p * np.bincount(members, minlength=pools)[pool_of]) - t  # every unit at its pool's weighted average
        _round(rng.permutation(units), low, high, indptr, indices, data, s, p, residual, picks, work, cost)
        residual = np.asarray(csr[picks].sum(axis=0)).ravel() - t  # exact again, free of rounding drift
    error_first = float(s @ np.abs(residual))
    moves = done = 0
    for done in range(1, passes + 1):
        sideways = done % 2 == 0  # every other pass may also move sideways (same error), to leave a plateau
        moved = _exchange(rng.permutation(units), low, high, indptr, indices, data, s, residual, picks, work, cost, sideways)
        moves += moved
        if not moved and not sideways:
            break
    return UnitChoice(picks, residual + t, error_first, float(s @ np.abs(residual)), done, moves)


@numba.njit(cache=True)
def _costs(a: int, b: int, indptr, indices, data, s, residual, work, cost) -> None:
    """``cost[c − a]`` for each candidate c = a … b−1: the change of the error were it added to ``residual``
    (each candidate's gains summed as ``np.add.reduceat`` sums them)."""
    lo = indptr[a]
    for q in range(lo, indptr[b]):
        r = residual[indices[q]]
        work[q - lo] = s[indices[q]] * (abs(r + data[q]) - abs(r))
    for c in range(a, b):
        cost[c - a] = segment_sum(work, indptr[c] - lo, indptr[c + 1] - lo) if indptr[c + 1] > indptr[c] else 0.0


@numba.njit(cache=True)
def _round(order, low, high, indptr, indices, data, s, p, residual, picks, work, cost) -> None:
    """The first assignment: the units in ``order``, each taking its candidate that best meets the targets
    given the units already assigned and the weighted average ``p`` of those still to come."""
    for g in order:
        a, b = low[g], high[g]
        for c in range(a, b):
            for q in range(indptr[c], indptr[c + 1]):
                residual[indices[q]] -= data[q] * p[c]
        _costs(a, b, indptr, indices, data, s, residual, work, cost)
        c = a + int(np.argmin(cost[:b - a]))
        picks[g] = c
        for q in range(indptr[c], indptr[c + 1]):
            residual[indices[q]] += data[q]


@numba.njit(cache=True)
def _exchange(order, low, high, indptr, indices, data, s, residual, picks, work, cost, sideways: bool) -> int:
    """One pass: each unit in ``order`` moved to its candidate that most lowers the error (``sideways``: or
    keeps it); the number of units moved."""
    moved = 0
    for g in order:
        a, b = low[g], high[g]
        if b - a < 2:
            continue
        c = picks[g]
        for q in range(indptr[c], indptr[c + 1]):
            residual[indices[q]] -= data[q]
        _costs(a, b, indptr, indices, data, s, residual, work, cost)
        best = int(np.argmin(cost[:b - a]))
        if cost[best] < cost[c - a] - 1e-12 or (sideways and best != c - a and cost[best] <= cost[c - a] + 1e-12):
            c = a + best
            picks[g] = c
            moved += 1
        for q in range(indptr[c], indptr[c + 1]):
            residual[indices[q]] += data[q]
    return moved


def _first_at_least(cumulative: np.ndarray, u: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """For each unit, the offset (from ``low``) of the first of its candidates ``low`` … ``high``−1 whose
    cumulative share (within its pool) reaches u; its last candidate where none does."""
    out = np.empty(len(u), dtype=np.int64)
    for g, (a, b, v) in enumerate(zip(low, high, u)):
        out[g] = min(int(np.searchsorted(cumulative[a:b], v - 1e-12, side="left")), b - a - 1)
    return out
