"""How many records to draw from each proposal: the system's arithmetic, not the model's.

Given the pool of proposals, the expected cell shares of each (its *profile* in every target
table) and the counts still missing, the allocator *rakes* weights over the pool: starting from
equal weights it rescales, table after table, the proposals of every cell so that the cell gets
its missing count (generalized iterative proportional fitting; a proposal that spreads over
several cells is rescaled by the share-weighted mean of their factors). Among all allocations
that fit the tables this converges to the one closest (in KL divergence) to equal use of every
proposal, so what the tables do not fix keeps the spread of the pool instead of piling onto the
few proposals a sparse least-squares vertex would pick. Cells that no proposal covers stay
short; the loop asks the LLM for them next. Weights are capped per proposal and finally
integerized by largest remainders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """Real-valued counts per proposal, and the counts they put in every table's cells."""

    counts: np.ndarray
    predicted: list[np.ndarray]


def _scale_to(weights: np.ndarray, total: float, upper: np.ndarray) -> np.ndarray:
    """Scale ``weights`` to sum to ``total`` without passing ``upper`` (less if the caps bind)."""
    w = np.minimum(weights, upper)
    for _ in range(50):
        room = (w < upper - 1e-12) & (w > 0)
        short = total - w.sum()
        if short <= 1e-9 or not room.any():
            break
        w[room] = np.minimum(w[room] * (1 + short / w[room].sum()), upper[room])
    return w


def solve(profiles: list[np.ndarray], gaps: list[np.ndarray], total: float, caps: np.ndarray,
          rounds: int = 200, tol: float = 1e-7) -> Allocation:
    """Raked allocation of ``total`` records over the proposals of the pool.

    ``profiles[t]`` is (cells_t × proposals), each column a proposal's shares (summing to 1);
    ``gaps[t]`` the missing counts of table t (flat; negative cells count as zero);
    ``caps[p]`` the most records proposal p may still take.
    """
    n_prop = caps.size
    upper = np.maximum(np.asarray(caps, dtype=float), 0.0)
    if n_prop == 0 or total <= 0 or not (upper > 0).any():
        return Allocation(np.zeros(n_prop), [np.zeros_like(np.asarray(g, dtype=float)) for g in gaps])
    wanted = []
    for gap in gaps:
        g = np.clip(np.asarray(gap, dtype=float), 0, None)
        wanted.append(g * (total / g.sum()) if g.sum() > 0 else g)
    w = np.where(upper > 0, total / n_prop, 0.0)
    for _ in range(rounds):
        before = w.copy()
        for P, want in zip(profiles, wanted):
            if want.sum() <= 0:
                continue
            have = P @ w
            factor = np.divide(want, have, out=np.ones_like(want), where=have > 0)
            w = np.minimum(w * (P.T @ factor), upper)
        if np.abs(w - before).max() <= tol * total:
            break
    w = _scale_to(w, total, upper)
    return Allocation(w, [P @ w for P in profiles])


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
