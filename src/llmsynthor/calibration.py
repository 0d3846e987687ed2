"""Final calibration over records: from m ≥ n candidate records, keep the n that match the targets.

The candidates are drawn from the proposals (this module never makes a record). Three steps:

1. **rake** — weights start equal and are raked to every count table in turn (iterative
   proportional fitting over records, as IPU/PopulationSim do over households); a sum or mean
   target tilts the weights inside each group exponentially until its mean is met. Every
   weight is an inclusion probability capped at 1 (a candidate is kept at most once) and the
   candidates of one proposal together at ``cap`` records. The result is the weighting closest
   to the draw (in the raking sense) that meets the targets.
2. **select** — systematic sampling with those probabilities, the candidates ordered by their
   cell in the finest table (implicit stratification): n distinct candidates.
3. **closest exact fit** — the sample is moved to the selection nearest to it (fewest candidates
   exchanged) that minimizes the weighted L1 discrepancy of the tables and the numeric targets'
   residuals (in units of the variable's spread): a linear program (HiGHS) over 0 ≤ x ≤ 1, whose
   optimal vertex has at most as many fractional entries as it has constraints; they are rounded.
4. **repair** — greedy swaps between a kept and an unkept candidate while a swap lowers that
   discrepancy: what the rounding left is taken out.

Knows targets and statistics, not LLMs or proposals (``sources`` is just a label per candidate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import brentq, linprog

from .discrepancy import weighted_l1
from .statistics import encode
from .tables import NumericTarget, Targets


@dataclass(frozen=True)
class Calibration:
    """The kept candidates and what each step did (for the manifest)."""

    keep: np.ndarray  # positions of the kept candidates, sorted
    candidates: int
    raking_rounds: int
    raked_worst_tvd: float  # worst table TVD of the weighted candidates after raking
    l1_sampled: float  # weighted L1 discrepancy (records) right after sampling
    l1_fitted: float  # ... after the closest exact fit
    l1_final: float  # ... after the swaps
    swaps: int

    def as_dict(self) -> dict:
        return {"candidates": self.candidates, "kept": int(self.keep.size), "raking_rounds": self.raking_rounds,
                "raked_worst_tvd": round(self.raked_worst_tvd, 6), "l1_after_sampling": round(self.l1_sampled, 2),
                "l1_after_exact_fit": round(self.l1_fitted, 2), "l1_after_swaps": round(self.l1_final, 2), "swaps": self.swaps}


@dataclass
class _Numeric:
    """One sum/mean target over the candidates: group of each candidate (-1: none) and its value."""

    target: NumericTarget
    group: np.ndarray
    x: np.ndarray
    wanted: np.ndarray  # flat, NaN where no target
    unit: np.ndarray  # per group: the spread of the variable among the candidates (residual unit)

    @classmethod
    def of(cls, candidates: pd.DataFrame, target: NumericTarget) -> _Numeric:
        group = encode(candidates, target) if target.axes else np.zeros(len(candidates), dtype=np.int64)
        wanted = np.asarray(target.values, dtype=float).ravel()
        group = np.where((group >= 0) & np.isfinite(wanted[np.clip(group, 0, None)]), group, -1)
        x = candidates[target.variable].to_numpy(dtype=float)
        g, inside = np.clip(group, 0, None), group >= 0
        size = np.bincount(g[inside], minlength=wanted.size)
        mean = np.bincount(g[inside], weights=x[inside], minlength=wanted.size) / np.maximum(size, 1)
        var = np.bincount(g[inside], weights=x[inside] ** 2, minlength=wanted.size) / np.maximum(size, 1) - mean ** 2
        unit = np.sqrt(np.clip(var, 0, None))
        unit[unit <= 1e-12] = 1.0  # a group whose candidates all have one value
        return cls(target, group, x, wanted, unit)

    def step(self, w: np.ndarray) -> np.ndarray:
        """Tilt the weights inside every group so that its weighted mean (or sum) is met."""
        for g in np.flatnonzero(np.isfinite(self.wanted)):
            members = np.flatnonzero(self.group == g)
            mass = w[members].sum()
            if members.size < 2 or mass <= 0:
                continue
            v = self.wanted[g] / mass if self.target.statistic == "sum" else self.wanted[g]
            z = (self.x[members] - v) / self.unit[g]

            def gap(lam, z=z, base=w[members]):
                t = base * np.exp(np.clip(lam * z, -50, 50))
                return float(t @ z)

            lo, hi = gap(-20.0), gap(20.0)
            lam = brentq(gap, -20.0, 20.0) if lo < 0 < hi else (-20.0 if lo >= 0 else 20.0)
            tilted = w[members] * np.exp(np.clip(lam * z, -50, 50))
            w[members] = tilted * (mass / tilted.sum())
        return w

    def residual(self, kept: np.ndarray) -> np.ndarray:
        """Per group, in units: Σ_kept (x − mean wanted) for means, Σ_kept x − sum wanted for sums."""
        inside = kept & (self.group >= 0)
        g, x = self.group[inside], self.x[inside]
        size = self.wanted.size
        if self.target.statistic == "mean":
            out = np.bincount(g, weights=x - self.wanted[g], minlength=size)
        else:
            out = np.bincount(g, weights=x, minlength=size) - np.nan_to_num(self.wanted)
        return np.where(np.isfinite(self.wanted), out / self.unit, 0.0)

    def change(self, idx: np.ndarray) -> np.ndarray:
        """How adding candidate ``idx`` moves its group's residual (in units; 0 outside every group)."""
        g = self.group[idx]
        safe = np.clip(g, 0, None)
        d = self.x[idx] - (self.wanted[safe] if self.target.statistic == "mean" else 0.0)
        return np.where(g >= 0, d / self.unit[safe], 0.0)


_MOVE_COST = 0.01  # per candidate exchanged, against 1 per record of table discrepancy (times its weight)


def _closest_exact(kept, valid, codes, wanted, numeric, targets, sources, cap, n) -> np.ndarray:
    """The selection nearest to ``kept`` with the least weighted L1 discrepancy (an LP; see the module doc).

    Variables: x (one per candidate, 0 ≤ x ≤ 1) and a surplus/deficit pair per constraint row;
    rows: every table cell (Σ x over its candidates = target), every group of a numeric target
    (its residual = 0), Σ x = n; the proposals' caps as inequalities."""
    m = kept.size
    ok = np.flatnonzero(valid)
    blocks, rhs, slack_cost = [], [], []  # (row of each entry, column, value) per constraint group
    for c, t, table in zip(codes, wanted, targets):
        blocks.append((c[ok], ok, np.ones(ok.size), t.size))
        rhs.append(t)
        slack_cost.append(np.full(t.size, table.weight))
    for num in numeric:
        members = np.flatnonzero(valid & (num.group >= 0))
        groups = np.flatnonzero(np.isfinite(num.wanted))
        row_of = np.full(num.wanted.size, -1)
        row_of[groups] = np.arange(groups.size)
        blocks.append((row_of[num.group[members]], members, num.change(members), groups.size))
        rhs.append(num.wanted[groups] / num.unit[groups] if num.target.statistic == "sum" else np.zeros(groups.size))
        slack_cost.append(np.full(groups.size, num.target.weight))
    offsets = np.cumsum([0] + [size for *_, size in blocks])
    cells = int(offsets[-1])
    rows = np.concatenate([r + off for (r, *_), off in zip(blocks, offsets)] + [np.full(m, cells)])
    cols = np.concatenate([col for _, col, *_ in blocks] + [np.arange(m)])
    vals = np.concatenate([v for *_, v, _ in blocks] + [np.ones(m)])
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(cells + 1, m))
    slack = sparse.vstack([sparse.hstack([-sparse.eye(cells), sparse.eye(cells)]), sparse.csr_matrix((1, 2 * cells))])
    n_src = int(sources.max()) + 1
    A_ub = sparse.hstack([sparse.csr_matrix((np.ones(m), (sources, np.arange(m))), shape=(n_src, m)),
                          sparse.csr_matrix((n_src, 2 * cells))])
    cost = np.concatenate([_MOVE_COST * np.where(kept, -1.0, 1.0), np.tile(np.concatenate(slack_cost), 2)])
    upper = np.concatenate([valid.astype(float), np.full(2 * cells, np.inf)])
    res = linprog(cost, A_ub=A_ub.tocsr(), b_ub=cap, A_eq=sparse.hstack([A, slack]).tocsr(),
                  b_eq=np.concatenate([*rhs, [n]]), bounds=np.column_stack([np.zeros(upper.size), upper]), method="highs")
    if res.status != 0:
        return kept  # e.g. the caps cannot hold n: keep the sample, the swaps still run
    x = res.x[:m]
    out = np.zeros(m, dtype=bool)
    out[np.argsort(-(x + 1e-6 * kept), kind="stable")[:n]] = True  # integral entries first; ties keep the sample
    return out


def _l1(targets: Targets, surplus: list[np.ndarray], numeric: list[np.ndarray]) -> float:
    """The tables' weighted L1 plus the numeric targets' weighted residuals (in their units)."""
    return weighted_l1(targets, surplus) + sum(t.weight * float(np.abs(r).sum()) for t, r in zip(targets.numeric, numeric))


def calibrate(candidates: pd.DataFrame, targets: Targets, n: int, rng: np.random.Generator, *,
              sources: np.ndarray | None = None, cap: float | np.ndarray | None = None, max_rounds: int = 200,
              max_swaps: int | None = None) -> Calibration:
    """Choose ``n`` of ``candidates`` (distinct rows) matching ``targets`` (see the module doc).
    ``sources`` labels each candidate's proposal; at most ``cap`` kept candidates share one (one
    cap for all, or one per source)."""
    m = len(candidates)
    if m < n:
        raise ValueError(f"calibration needs at least n = {n} candidates, got {m}")
    cache: dict = {}
    codes = [encode(candidates, t, cache) for t in targets]
    wanted = [t.counts.ravel() * (n / max(t.counts.sum(), 1e-12)) for t in targets]
    numeric = [_Numeric.of(candidates, t) for t in targets.numeric]
    sources = np.zeros(m, dtype=np.int64) if sources is None else np.asarray(sources, dtype=np.int64)
    cap = np.asarray(n if cap is None else cap, dtype=float)
    cap = np.full(int(sources.max()) + 1, float(cap)) if cap.ndim == 0 else cap[: int(sources.max()) + 1]

    # 1. rake
    w = np.zeros(m)
    valid = np.logical_and.reduce([c >= 0 for c in codes]) if codes else np.ones(m, dtype=bool)
    w[valid] = n / max(valid.sum(), 1)
    rounds, worst = 0, 1.0
    while rounds < max_rounds and worst >= 1e-4:
        rounds += 1
        for c, t in zip(codes, wanted):
            cur = np.bincount(c[valid], weights=w[valid], minlength=t.size)
            ratio = np.divide(t, cur, out=np.zeros_like(cur), where=cur > 0)
            w[valid] *= ratio[c[valid]]
            np.minimum(w, 1.0, out=w)
        for num in numeric:
            w = num.step(w)
            np.minimum(w, 1.0, out=w)
        per_source = np.bincount(sources, weights=w)
        w *= np.minimum(1.0, cap[: per_source.size] / np.maximum(per_source, 1e-12))[sources]
        worst = max((0.5 * np.abs(np.bincount(c[valid], weights=w[valid], minlength=t.size) / max(w.sum(), 1e-12) - t / n).sum()
                     for c, t in zip(codes, wanted)), default=0.0)

    # 2. select: systematic sampling, ordered by the finest table's cell (ties at random)
    finest = int(np.argmax([t.size for t in wanted])) if wanted else None
    order = np.lexsort((rng.random(m), codes[finest])) if finest is not None else rng.permutation(m)
    p = w[order] * (n / max(w.sum(), 1e-12))
    cum = np.cumsum(np.minimum(p, 1.0))
    hits = np.searchsorted(cum, rng.random() * cum[-1] / n + np.arange(n) * cum[-1] / n, side="right")
    kept = np.zeros(m, dtype=bool)
    kept[order[np.clip(hits, 0, m - 1)]] = True
    short = n - int(kept.sum())
    if short > 0:  # rounding left a few places: fill them with the heaviest unkept candidates
        rest = np.flatnonzero(~kept & valid)
        kept[rest[np.argsort(-w[rest], kind="stable")[:short]]] = True

    def discrepancy(kept):
        surplus = [np.bincount(c[kept], minlength=t.size) - t for c, t in zip(codes, wanted)]
        residual = [num.residual(kept) for num in numeric]
        return surplus, residual, _l1(targets, surplus, residual)

    l1_sampled = discrepancy(kept)[2]
    kept = _closest_exact(kept, valid, codes, wanted, numeric, targets, sources, cap, n)

    # 4. repair: greedy swaps while they lower the discrepancy
    surplus, residual, l1_fitted = discrepancy(kept)
    weights = np.array([t.weight for t in targets])
    num_weights = np.array([t.weight for t in targets.numeric])
    used = np.bincount(sources[kept], minlength=int(sources.max()) + 1).astype(float)
    swaps, limit = 0, n if max_swaps is None else max_swaps

    def delta(idx: np.ndarray, sign: int) -> np.ndarray:
        """Change of the discrepancy if the candidates ``idx`` were added (+1) or removed (−1)."""
        out = np.zeros(idx.size)
        for c, s, wt in zip(codes, surplus, weights):
            r = s[c[idx]]
            out += wt * (np.abs(r + sign) - np.abs(r))
        for num, r, wt in zip(numeric, residual, num_weights):
            g, d = num.group[idx], num.change(idx)
            cur = r[np.clip(g, 0, None)]
            out += np.where(g >= 0, wt * (np.abs(cur + sign * d) - np.abs(cur)), 0.0)
        return out

    def move(i: int, sign: int) -> None:
        for c, s in zip(codes, surplus):
            s[c[i]] += sign
        for num, r in zip(numeric, residual):
            if num.group[i] >= 0:
                r[num.group[i]] += sign * num.change(np.array([i]))[0]
        kept[i] = sign > 0
        used[sources[i]] += sign

    while swaps < limit:
        inside = np.flatnonzero(kept)
        loss = delta(inside, -1)
        j = inside[int(np.argmin(loss))]
        move(j, -1)
        outside = np.flatnonzero(~kept & valid & (used[sources] < cap[sources]))
        outside = outside[outside != j]
        gain = delta(outside, +1) if outside.size else np.zeros(0)
        if not outside.size or loss.min() + gain.min() >= -1e-9:
            move(j, +1)  # no swap helps: put it back
            break
        move(outside[int(np.argmin(gain))], +1)
        swaps += 1
    return Calibration(np.flatnonzero(kept), m, rounds, float(worst), l1_sampled, l1_fitted, _l1(targets, surplus, residual), swaps)
