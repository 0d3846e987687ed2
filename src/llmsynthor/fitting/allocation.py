"""How many records to draw from each proposal: the system's arithmetic, not the model's.

Given the pool of proposals, the expected cell shares of each (its *profile* in every target
table) and the counts still missing, choose non-negative counts c that minimize

    Σ_tables  w_t · ‖ P_t c − gap_t ‖²  +  γ² Σ_p π_p c_p²   subject to  Σ c = R,  0 ≤ c_p ≤ cap_p

with :func:`scipy.optimize.lsq_linear` (bounded least squares; the sum is a heavily weighted
row). π_p ≥ 0 penalizes proposals the model finds implausible (minus the log of their pairwise
lifts, :mod:`llmsynthor.prior.copula`): where plausible proposals can fill the same cells, they do;
where only implausible ones can, the tables still win. Counts are then integerized by largest
remainders so they sum to exactly R.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import lsq_linear

from ..core.tables import NumericTarget


@dataclass(frozen=True)
class Allocation:
    """Real-valued and integer counts per proposal, and the predicted counts per table."""

    counts: np.ndarray
    predicted: list[np.ndarray]
    numeric: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (records, sum) per group, per numeric target


PENALTY_STRENGTH = 0.1  # γ: a tie-breaker: among allocations that fit the tables about equally, the plausible one wins


def solve(profiles: list[np.ndarray], gaps: list[np.ndarray], weights: list[float], total: float, caps: np.ndarray,
          penalty: np.ndarray | None = None, extra: list[tuple[np.ndarray, np.ndarray]] = ()) -> Allocation:
    """Bounded least-squares allocation of ``total`` records over proposals.

    ``profiles[t]`` is (cells_t × proposals); ``gaps[t]`` the missing counts of table t (flat);
    ``penalty`` (one value ≥ 0 per proposal) discourages implausible proposals; ``extra`` are more
    (rows × proposals, right-hand side) pairs, already scaled: residuals in relative-error units
    (sum and mean targets, :func:`numeric_rows`).
    """
    n_prop = caps.size
    if n_prop == 0 or total <= 0:
        return Allocation(np.zeros(n_prop), [np.zeros_like(g) for g in gaps])
    scale = max(total, 1.0)
    blocks = [np.sqrt(w) * p / scale for p, w in zip(profiles, weights)]
    rhs = [np.sqrt(w) * g / scale for g, w in zip(gaps, weights)]
    big = 1e3 * np.sqrt(len(profiles) + 1)  # the sum row: practically a hard constraint
    blocks.append(np.full((1, n_prop), big / scale))
    rhs.append(np.array([big * total / scale]))
    for rows, rhs_extra in extra:
        blocks.append(rows)
        rhs.append(rhs_extra)
    if penalty is not None and np.any(penalty > 0):
        blocks.append(np.diag(PENALTY_STRENGTH * np.sqrt(np.clip(penalty, 0, None))) / scale)
        rhs.append(np.zeros(n_prop))
    A, b = np.vstack(blocks), np.concatenate(rhs)
    upper = np.maximum(caps.astype(float), 0.0)
    free = upper > 0
    counts = np.zeros(n_prop)
    if free.any():
        if upper[free].sum() < total:
            counts[free] = upper[free]
        else:
            res = lsq_linear(A[:, free], b, bounds=(np.zeros(free.sum()), upper[free] + 1e-12), method="bvls")
            counts[free] = np.clip(res.x, 0, upper[free])
    return Allocation(counts, [p @ counts for p in profiles])


def numeric_rows(shares: np.ndarray, means: np.ndarray, target: NumericTarget, size: np.ndarray,
                 have_n: np.ndarray, have_sum: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rows (groups × proposals) and right-hand side that make a sum or mean target
    hold, in relative-error units, weighted by the target's weight (the ``extra`` of :func:`solve`).

    ``shares`` (groups × proposals): each proposal's share of records in each group; ``means``: each
    proposal's expected value of the variable; ``size``: records expected per group at the targets'
    size; ``have_n`` / ``have_sum``: records and sum per group among the records drawn already;
    ``scale``: the records describe ``scale`` times the targets' population."""
    want = np.isfinite(target.values.ravel())
    v, cur_n, cur_sum = target.values.ravel()[want], have_n.ravel()[want], have_sum.ravel()[want]
    if target.statistic == "sum":  # Σ_p c_p s_pg m_p = V_g − drawn sum, relative to V_g
        v = v * scale
        rows, rhs = (shares[want] * means) / np.abs(v)[:, None], (v - cur_sum) / np.abs(v)
    else:  # Σ_p c_p s_pg (m_p − V_g) = −(drawn sum − V_g · drawn records), relative to V_g · N_g
        norm = np.abs(v) * size.ravel()[want] * scale
        rows, rhs = shares[want] * (means[None, :] - v[:, None]) / norm[:, None], -(cur_sum - v * cur_n) / norm
    return np.sqrt(target.weight) * rows, np.sqrt(target.weight) * rhs
