"""How many records to draw from each proposal: the system's arithmetic, not the model's.

Given the pool of proposals, the expected cell shares of each (its *profile* in every target
table) and the counts still missing, choose non-negative counts c that minimize

    Σ_tables  w_t · ‖ P_t c − gap_t ‖²  +  γ² Σ_p π_p c_p²   subject to  Σ c = R,  0 ≤ c_p ≤ cap_p

with :func:`scipy.optimize.lsq_linear` (bounded least squares; the sum is a heavily weighted
row). π_p ≥ 0 penalizes proposals the model finds implausible (minus the log of their pairwise
lifts, :mod:`llmsynthor.copula`): where plausible proposals can fill the same cells, they do;
where only implausible ones can, the tables still win. Counts are then integerized by largest
remainders so they sum to exactly R.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import lsq_linear


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
    (sum and mean targets, :meth:`ProposalPool.fit`).
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


def integerize(counts: np.ndarray, total: int, caps: np.ndarray | None = None) -> np.ndarray:
    """Whole counts summing to ``total`` (fewer only if the caps cannot hold it): the counts are
    scaled to ``total``, floored, and the shortfall goes to the largest remainders, then to the
    largest counts, never past a cap."""
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
