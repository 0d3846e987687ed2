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
   residuals (in units of the variable's spread): a linear program (HiGHS) over how many candidates
   of each kind are removed from the sample or added to it, whose optimal vertex has at most as many
   fractional entries as it has constraints; a small integer program rounds them. With many kinds
   the LP starts from the moves that help and prices the rest in from its duals (column generation).
4. **repair** — greedy swaps between a kept and an unkept candidate while a swap lowers that
   discrepancy: what the rounding left is taken out.

Candidates alike in everything the targets see (the same cell of every table, the same source, the
same group and value in every numeric target) are one *kind* and are interchangeable: steps 1, 3 and
4 work on the kinds and their counts (m candidates, K ≤ m kinds: the e-commerce example has a few
thousand kinds at any size; adult11's 11 marginals make many, ~10⁵ among 3·10⁵ candidates, hence the
column generation of step 3); only the sample and the final choice of which candidates of a kind
are kept touch every candidate (O(m log m)).

Knows targets and statistics, not LLMs or proposals (``sources`` is just a label per candidate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, brentq, linprog, milp

from ..core.discrepancy import weighted_l1
from ..core.statistics import encode
from ..core.tables import NumericTarget, Targets


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
    seconds: dict[str, float] = field(default_factory=dict, compare=False)  # per step (rake, select, lp, swaps); not in as_dict

    def as_dict(self) -> dict:
        return {"candidates": self.candidates, "kept": int(self.keep.size), "raking_rounds": self.raking_rounds,
                "raked_worst_tvd": round(self.raked_worst_tvd, 6), "l1_after_sampling": round(self.l1_sampled, 2),
                "l1_after_exact_fit": round(self.l1_fitted, 2), "l1_after_swaps": round(self.l1_final, 2), "swaps": self.swaps}


@dataclass
class _Numeric:
    """One sum/mean target over the kinds of candidates: group of each kind (-1: none), its value and
    how many candidates are of that kind (``count``)."""

    target: NumericTarget
    group: np.ndarray
    x: np.ndarray
    wanted: np.ndarray  # flat, NaN where no target
    unit: np.ndarray  # per group: the spread of the variable among the candidates (residual unit)
    count: np.ndarray | None = None  # candidates per kind (None: one each)
    _members: list[np.ndarray] | None = None

    @classmethod
    def of(cls, candidates: pd.DataFrame, target: NumericTarget, cache: dict | None = None) -> _Numeric:
        group = encode(candidates, target, cache) if target.axes else np.zeros(len(candidates), dtype=np.int64)
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

    def kinds(self, first: np.ndarray, count: np.ndarray) -> _Numeric:
        """The same target over kinds of candidates: ``first`` candidate of each kind, ``count`` of them."""
        return _Numeric(self.target, self.group[first], self.x[first], self.wanted, self.unit, count.astype(float))

    def members(self) -> list[np.ndarray]:
        """Per group with a target: the kinds in it (computed once)."""
        if self._members is None:
            order = np.argsort(self.group, kind="stable")
            bounds = np.searchsorted(self.group[order], np.arange(self.wanted.size + 1))
            self._members = [order[bounds[g]:bounds[g + 1]] for g in range(self.wanted.size)]
        return self._members

    def step(self, w: np.ndarray) -> np.ndarray:
        """Tilt the weights inside every group so that its weighted mean (or sum) is met."""
        count = np.ones(w.size) if self.count is None else self.count
        members_of = self.members()
        for g in np.flatnonzero(np.isfinite(self.wanted)):
            members = members_of[g]
            k = count[members]
            mass = w[members] @ k
            if k.sum() < 2 or mass <= 0:
                continue
            v = self.wanted[g] / mass if self.target.statistic == "sum" else self.wanted[g]
            z = (self.x[members] - v) / self.unit[g]

            def gap(lam, z=z, base=w[members] * k):
                t = base * np.exp(np.clip(lam * z, -50, 50))
                return float(t @ z)

            lo, hi = gap(-20.0), gap(20.0)
            lam = brentq(gap, -20.0, 20.0) if lo < 0 < hi else (-20.0 if lo >= 0 else 20.0)
            tilted = w[members] * np.exp(np.clip(lam * z, -50, 50))
            w[members] = tilted * (mass / (tilted @ k))
        return w

    def residual(self, kept: np.ndarray) -> np.ndarray:
        """Per group, in units: Σ_kept (x − mean wanted) for means, Σ_kept x − sum wanted for sums;
        ``kept``: candidates kept of each kind (or a mask)."""
        kept = np.asarray(kept, dtype=float)
        inside = (kept > 0) & (self.group >= 0)
        g, x, k = self.group[inside], self.x[inside], kept[inside]
        size = self.wanted.size
        if self.target.statistic == "mean":
            out = np.bincount(g, weights=k * (x - self.wanted[g]), minlength=size)
        else:
            out = np.bincount(g, weights=k * x, minlength=size) - np.nan_to_num(self.wanted)
        return np.where(np.isfinite(self.wanted), out / self.unit, 0.0)

    def change(self, idx: np.ndarray) -> np.ndarray:
        """How adding candidate ``idx`` moves its group's residual (in units; 0 outside every group)."""
        g = self.group[idx]
        safe = np.clip(g, 0, None)
        d = self.x[idx] - (self.wanted[safe] if self.target.statistic == "mean" else 0.0)
        return np.where(g >= 0, d / self.unit[safe], 0.0)


def _kinds(columns: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidates alike in every one of ``columns`` (their cell in every table, their source, their
    group and value in every numeric target) are one *kind*: every step below treats them alike.
    Returns the kind of each candidate (0 … K−1) and the first candidate of each kind; O(m) hashing."""
    kind = np.zeros(m, dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        kind = kind * (len(uniques) + 1) + (codes + 1)  # both dense, so the product stays below m²
        kind, _ = pd.factorize(kind)
    kind = kind.astype(np.int64)
    first = np.full(int(kind.max()) + 1 if m else 0, m, dtype=np.int64)
    np.minimum.at(first, kind, np.arange(m))
    return kind, first


_MOVE_COST = 0.01  # per candidate exchanged, against 1 per record of table discrepancy (times its weight)


# The integer program that rounds the LP's fractional entries: its best answer after this many branch-and-bound
# nodes, a bound on work, not on wall time, so the records never depend on the machine's speed or load. (A 1 s
# time limit, used before, stopped adult11's program inside its root node on one machine and not on another.)
# More nodes bought nothing the repair swaps do not: adult11 at 10⁴ records, worst TVD .00043 at 5 nodes, .00036
# at 200 (7 s) and .00036 with no program at all; the e-commerce example's programs are solved at the root.
ROUNDING_NODES = 5
LP_COLUMNS = 50_000  # above this many columns (kinds to keep fewer of, or to add), the LP grows its columns as it needs them


def _closest_exact(kept, available, valid, codes, wanted, numeric, targets, sources, cap, n, surplus, residual):
    """The selection nearest to the sample with the least weighted L1 discrepancy (an LP; see the module doc),
    over kinds of candidates: ``kept`` of each kind are in the sample, ``available`` more could be added;
    ``surplus`` / ``residual``: the sample's, per table cell and numeric group.

    Variables: per kind, the candidates of the sample removed (0 … kept) and the candidates added
    (0 … available), and a surplus/deficit pair per constraint row; rows: every table cell (the moves
    there = minus the sample's surplus), every group of a numeric target (likewise its residual), moves
    in = moves out; the proposals' caps as inequalities. Cost: 0.01 a move, the targets' weights per
    record (or unit) left off. Up to :data:`LP_COLUMNS` columns the LP is solved whole; beyond, by
    column generation: it starts with the moves that help under the sample's own discrepancy, and adds
    every column whose reduced cost (from the LP's duals) is negative until none is — the same optimum.
    Returns (kept of the sample, added) per kind, whole numbers summing to n; the sample if the LP fails."""
    k_kinds = kept.size
    col_kind = np.concatenate([np.flatnonzero(valid & (kept > 0)), np.flatnonzero(valid & (available > 0))])
    col_sign = np.concatenate([np.full(int((valid & (kept > 0)).sum()), -1.0), np.full(int((valid & (available > 0)).sum()), 1.0)])
    upper = np.where(col_sign < 0, kept[col_kind], available[col_kind]).astype(float)
    # rows: table cells, numeric groups, the balance of moves; per column its entries (kind-wise, times the sign)
    offsets, weights, rhs, row_entries = [], [], [], []
    start = 0
    for c, t, table, s in zip(codes, wanted, targets, surplus):
        offsets.append(start)
        row_entries.append((c, None, None))
        weights.append(np.full(t.size, table.weight))
        rhs.append(-s)
        start += t.size
    for num, r in zip(numeric, residual):
        groups = np.flatnonzero(np.isfinite(num.wanted))
        row_of = np.full(num.wanted.size, -1)
        row_of[groups] = np.arange(groups.size)
        offsets.append(start)
        safe = np.clip(num.group, 0, None)
        row_entries.append((np.where(num.group >= 0, row_of[safe], -1), num, None))
        weights.append(np.full(groups.size, num.target.weight))
        rhs.append(-r[groups])
        start += groups.size
    cells = start
    n_src = int(sources.max()) + 1
    slack_cost = np.concatenate(weights) if weights else np.zeros(0)
    b_eq = np.concatenate([*rhs, [0.0]])
    b_ub = cap - np.bincount(sources, weights=kept, minlength=n_src)
    changes = [num.change(np.arange(k_kinds)) for num in numeric]

    def price(y_eq: np.ndarray, y_ub: np.ndarray) -> np.ndarray:
        """Per kind: the duals' value of one more candidate of it (Σ over its rows of dual × entry)."""
        out = np.full(k_kinds, y_eq[cells]) + y_ub[sources]
        i = 0
        for (rows_of, num, _), off in zip(row_entries, offsets):
            if num is None:
                inside = rows_of >= 0
                out[inside] += y_eq[off + rows_of[inside]]
            else:
                inside = rows_of >= 0
                out[inside] += y_eq[off + rows_of[inside]] * changes[i][inside]
                i += 1
        return out

    def matrices(chosen: np.ndarray):
        """The equality rows (cells, groups, balance) and the caps' rows of the columns ``chosen``."""
        kinds, sign = col_kind[chosen], col_sign[chosen]
        m = kinds.size
        cols = np.arange(m)
        rows, entries, vals = [], [], []
        i = 0
        for (rows_of, num, _), off in zip(row_entries, offsets):
            r = rows_of[kinds]
            inside = r >= 0
            rows.append(off + r[inside])
            entries.append(cols[inside])
            if num is None:
                vals.append(sign[inside])
            else:
                vals.append(sign[inside] * changes[i][kinds[inside]])
                i += 1
        rows.append(np.full(m, cells))
        entries.append(cols)
        vals.append(sign)
        A = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(entries))), shape=(cells + 1, m))
        return A, sparse.csr_matrix((sign, (sources[kinds], cols)), shape=(n_src, m))

    def solve(chosen: np.ndarray, bound: np.ndarray, eq: np.ndarray, ub: np.ndarray, integral: bool = False):
        A, A_ub = matrices(chosen)
        m = chosen.size
        slack = sparse.vstack([sparse.hstack([-sparse.eye(cells), sparse.eye(cells)]), sparse.csr_matrix((1, 2 * cells))])
        cost = np.concatenate([np.full(m, _MOVE_COST), np.tile(slack_cost, 2)])
        bounds = np.column_stack([np.zeros(m + 2 * cells), np.concatenate([bound, np.full(2 * cells, np.inf)])])
        A_ub, A_eq = sparse.hstack([A_ub, sparse.csr_matrix((n_src, 2 * cells))]).tocsr(), sparse.hstack([A, slack]).tocsr()
        if integral:
            return milp(cost, integrality=np.r_[np.ones(m), np.zeros(2 * cells)], bounds=Bounds(bounds[:, 0], bounds[:, 1]),
                        constraints=[LinearConstraint(A_ub, -np.inf, ub), LinearConstraint(A_eq, eq, eq)],
                        options={"node_limit": ROUNDING_NODES})
        return linprog(cost, A_ub=A_ub, b_ub=ub, A_eq=A_eq, b_eq=eq, bounds=bounds, method="highs")

    def negative(p: np.ndarray, present: np.ndarray, most: int) -> np.ndarray:
        """Columns not yet present whose reduced cost under the kinds' prices ``p`` is negative, the most negative first."""
        reduced = _MOVE_COST - col_sign * p[col_kind]
        candidates = np.flatnonzero((reduced < -1e-9) & ~present)
        return candidates[np.argsort(reduced[candidates], kind="stable")[:most]]

    present = np.ones(col_kind.size, dtype=bool)
    if col_kind.size > LP_COLUMNS:  # start from the moves that help under the sample's own discrepancy
        present[:] = False
        y0 = np.concatenate([*(np.sign(r) * w for r, w in zip(rhs, weights)), [0.0]])  # a deficit pays its weight
        present[negative(price(y0, np.zeros(n_src)), present, LP_COLUMNS)] = True
        present[(col_sign < 0) & (b_ub[sources[col_kind]] < 0)] = True  # over a cap: its removals
    while True:
        res = solve(np.flatnonzero(present), upper[present], b_eq, b_ub)
        if res.status != 0:
            if present.all():
                return kept, np.zeros(k_kinds, dtype=np.int64)  # e.g. the caps cannot hold n: keep the sample, the swaps run
            present[:] = True
            continue
        if present.all():
            break
        more = negative(price(res.eqlin.marginals, res.ineqlin.marginals), present, LP_COLUMNS)
        if not more.size:
            break
        present[more] = True
    x = np.zeros(col_kind.size)
    x[np.flatnonzero(present)] = np.clip(res.x[: int(present.sum())], 0, upper[present])
    moves = _round(x, upper, lambda chosen, base: solve(chosen, np.ones(chosen.size), *_less(matrices, chosen, base, b_eq, b_ub),
                                                       integral=True))
    # back to whole candidates kept per column: a kind's sample less its removals, or its additions
    col_kept = col_sign < 0
    whole = np.where(col_kept, upper - moves, moves)
    short = int(round(n - whole.sum()))  # the fallback rounding may unbalance the moves: take back the last ones
    if short:
        room = np.flatnonzero((whole < upper) & col_kept) if short > 0 else np.flatnonzero((whole > 0) & ~col_kept)
        room = room if room.size >= abs(short) else np.flatnonzero(whole < upper) if short > 0 else np.flatnonzero(whole > 0)
        whole[room[: abs(short)]] += np.sign(short)
    out_kept = np.bincount(col_kind[col_kept], weights=whole[col_kept], minlength=k_kinds).astype(np.int64)
    out_added = np.bincount(col_kind[~col_kept], weights=whole[~col_kept], minlength=k_kinds).astype(np.int64)
    return out_kept, out_added


def _less(matrices, chosen: np.ndarray, base: np.ndarray, b_eq: np.ndarray, b_ub: np.ndarray):
    """The right-hand sides left for ``chosen`` columns once every column has made its ``base`` moves."""
    every = np.flatnonzero(base > 0)
    A, A_ub = matrices(every)
    return b_eq - A @ base[every], b_ub - A_ub @ base[every]


def _round(x: np.ndarray, upper: np.ndarray, integer_fit) -> np.ndarray:
    """Whole moves from the LP's ``x``: every entry rounded down, then a small integer program (HiGHS)
    decides which of the fractional ones (at most as many as the LP has rows) go up; if it fails
    (node limit without a solution), the largest fractions go up until the moves balance as the LP's did."""
    base = np.minimum(np.floor(x + 1e-9), upper)
    fractional = np.flatnonzero(x - base > 1e-9)
    if not fractional.size:
        return base
    res = integer_fit(fractional, base)
    if res.x is not None:  # optimal, or the best found within the node limit (HiGHS: status 4, x set)
        base[fractional] += np.round(res.x[: fractional.size])
        return base
    up = int(round((x - base).sum()))
    base[fractional[np.argsort(-(x - base)[fractional], kind="stable")[:up]]] += 1
    return base


def _l1(targets: Targets, surplus: list[np.ndarray], numeric: list[np.ndarray]) -> float:
    """The tables' weighted L1 plus the numeric targets' weighted residuals (in their units)."""
    return weighted_l1(targets, surplus) + sum(t.weight * float(np.abs(r).sum()) for t, r in zip(targets.numeric, numeric))


def calibrate(candidates: pd.DataFrame, targets: Targets, n: int, rng: np.random.Generator, *,
              sources: np.ndarray | None = None, cap: float | np.ndarray | None = None, max_rounds: int = 200,
              max_swaps: int | None = None) -> Calibration:
    """Choose ``n`` of ``candidates`` (distinct rows) matching ``targets`` (see the module doc).
    ``sources`` labels each candidate's proposal; at most ``cap`` kept candidates share one (one
    cap for all, or one per source).

    Candidates alike in every respect the targets see (a *kind*: the same cell of every table, the
    same source, the same value in every numeric target's group) are interchangeable, so raking, the
    exact fit and the swaps work on the kinds and their counts, never on a matrix over all candidates;
    only the systematic sample and the final choice of which candidates of a kind touch every candidate."""
    m = len(candidates)
    if m < n:
        raise ValueError(f"calibration needs at least n = {n} candidates, got {m}")
    seconds, clock = {}, time.perf_counter()
    cache: dict = {}
    codes_all = [encode(candidates, t, cache) for t in targets]
    wanted = [t.counts.ravel() * (n / max(t.counts.sum(), 1e-12)) for t in targets]
    numeric_all = [_Numeric.of(candidates, t, cache) for t in targets.numeric]
    del cache
    sources = np.zeros(m, dtype=np.int64) if sources is None else np.asarray(sources, dtype=np.int64)
    cap = np.asarray(n if cap is None else cap, dtype=float)
    cap = np.full(int(sources.max()) + 1, float(cap)) if cap.ndim == 0 else cap[: int(sources.max()) + 1]
    valid_all = np.logical_and.reduce([c >= 0 for c in codes_all]) if codes_all else np.ones(m, dtype=bool)
    finest = int(np.argmax([t.size for t in wanted])) if wanted else None
    finest_codes = codes_all[finest] if finest is not None else None
    kind, first = _kinds([*codes_all, sources, *[c for num in numeric_all for c in (num.group, num.x)]], m)
    codes = [c[first] for c in codes_all]
    del codes_all
    count = np.bincount(kind, minlength=first.size)
    numeric = [num.kinds(first, count) for num in numeric_all]
    del numeric_all
    valid, src = valid_all[first], sources[first]
    mass = count.astype(float)

    # 1. rake (over kinds: every candidate of a kind has the same weight, its inclusion probability)
    w = np.zeros(first.size)
    w[valid] = n / max(int(count[valid].sum()), 1)
    cv = [c[valid] for c in codes]
    rounds, worst = 0, 1.0
    while rounds < max_rounds and worst >= 1e-4:
        rounds += 1
        for c, t in zip(cv, wanted):
            cur = np.bincount(c, weights=(w * mass)[valid], minlength=t.size)
            ratio = np.divide(t, cur, out=np.zeros_like(cur), where=cur > 0)
            w[valid] *= ratio[c]
            np.minimum(w, 1.0, out=w)
        for num in numeric:
            w = num.step(w)
            np.minimum(w, 1.0, out=w)
        per_source = np.bincount(src, weights=w * mass)
        w *= np.minimum(1.0, cap[: per_source.size] / np.maximum(per_source, 1e-12))[src]
        total = max(float(w @ mass), 1e-12)
        worst = max((0.5 * np.abs(np.bincount(c, weights=(w * mass)[valid], minlength=t.size) / total - t / n).sum()
                     for c, t in zip(cv, wanted)), default=0.0)
    seconds["rake"], clock = time.perf_counter() - clock, time.perf_counter()

    # 2. select: systematic sampling, ordered by the finest table's cell (ties at random)
    order = np.lexsort((rng.random(m), finest_codes)) if finest is not None else rng.permutation(m)
    w_all = w[kind]
    p = w_all[order] * (n / max(float(w @ mass), 1e-12))
    cum = np.cumsum(np.minimum(p, 1.0))
    hits = np.searchsorted(cum, rng.random() * cum[-1] / n + np.arange(n) * cum[-1] / n, side="right")
    sampled = np.zeros(m, dtype=bool)
    sampled[order[np.clip(hits, 0, m - 1)]] = True
    short = n - int(sampled.sum())
    if short > 0:  # rounding left a few places: fill them with the heaviest unkept candidates
        rest = np.flatnonzero(~sampled & valid_all)
        sampled[rest[np.argsort(-w_all[rest], kind="stable")[:short]]] = True
    del w_all, p, cum
    in_sample = np.bincount(kind[sampled], minlength=first.size)
    outside = np.where(valid, count - in_sample, 0)

    def discrepancy(q):
        surplus = [np.bincount(c, weights=q[valid], minlength=t.size) - t for c, t in zip(cv, wanted)]
        residual = [num.residual(q) for num in numeric]
        return surplus, residual, _l1(targets, surplus, residual)

    l1_sampled = discrepancy(in_sample)[2]
    seconds["select"], clock = time.perf_counter() - clock, time.perf_counter()

    # 3. the closest exact fit
    surplus, residual, _ = discrepancy(in_sample)
    from_sample, added = _closest_exact(in_sample, outside, valid, codes, wanted, numeric, targets, src, cap, n, surplus, residual)
    seconds["lp"], clock = time.perf_counter() - clock, time.perf_counter()

    # 4. repair: greedy swaps while they lower the discrepancy (of whole kinds: which candidate of a kind is moot)
    q = (from_sample + added).astype(float)
    surplus, residual, l1_fitted = discrepancy(q)
    weights = np.array([t.weight for t in targets])
    num_weights = np.array([t.weight for t in targets.numeric])
    used = np.bincount(src, weights=q, minlength=int(sources.max()) + 1)
    free = np.where(valid, count, 0) - q
    swaps, limit = 0, n if max_swaps is None else max_swaps

    def delta(idx: np.ndarray, sign: int) -> np.ndarray:
        """Change of the discrepancy if a candidate of each kind ``idx`` were added (+1) or removed (−1)."""
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
        q[i] += sign
        free[i] -= sign
        used[src[i]] += sign

    while swaps < limit:
        inside = np.flatnonzero(q > 0)
        loss = delta(inside, -1)
        j = inside[int(np.argmin(loss))]
        move(j, -1)
        addable = np.flatnonzero((free > 0) & (used[src] < cap[src]))
        gain = delta(addable, +1) if addable.size else np.zeros(0)
        if not addable.size or loss.min() + gain.min() >= -1e-9:
            move(j, +1)  # no swap helps: put it back
            break
        move(addable[int(np.argmin(gain))], +1)
        swaps += 1
    keep = _choose(kind, sampled, order, q.astype(np.int64))
    seconds["swaps"] = time.perf_counter() - clock
    return Calibration(keep, m, rounds, float(worst), l1_sampled, l1_fitted, _l1(targets, surplus, residual), swaps,
                       seconds)


def _choose(kind: np.ndarray, sampled: np.ndarray, order: np.ndarray, quota: np.ndarray) -> np.ndarray:
    """Positions of ``quota[k]`` candidates of every kind k, those of the sample first, then in the
    sampling's random order (sorted)."""
    m = kind.size
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    # within a kind: sampled first, then by rank
    by = np.lexsort((rank, ~sampled, kind))
    k_sorted = kind[by]
    start = np.searchsorted(k_sorted, np.arange(quota.size))
    position = np.arange(m) - start[k_sorted]
    return np.sort(by[position < quota[k_sorted]])
