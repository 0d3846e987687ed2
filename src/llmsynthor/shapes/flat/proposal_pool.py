"""The proposal pool: every distinct proposal gathered so far, its profile in every target, and
how many records each has given.

The pool is the fitted model of a run: the loop grows it with the LLM's proposals, and the
allocator (:func:`llmsynthor.fitting.allocation.solve`) decides how many records each contributes so that
every table and every sum/mean target holds. Records are drawn from it with a seeded RNG.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ...core.statistics import group_sizes
from ...core.tables import Targets
from ...core.within_bin import ValueShape
from ...fitting.allocation import Allocation, numeric_rows, solve
from ...prior.copula import PairwisePrior
from ...prior.proposals import Proposal, draw, expected_value, profile

SOURCE = "__proposal"  # internal column of drawn records: which proposal of the pool they came from


class ProposalPool:
    """Every distinct proposal gathered so far, its profile in every table, and records drawn."""

    def __init__(self, targets: Targets, shapes: dict[str, ValueShape] | None = None):
        self.targets = targets
        self.shapes = shapes
        self.prior: PairwisePrior | None = None  # set once scored; makes implausible proposals costly
        self._penalty: list[float] = []  # the prior's penalty of items[:len(_penalty)]
        self.items: list[Proposal] = []
        self._keys: set = set()
        self._columns: list[list[np.ndarray]] = [[] for _ in targets]
        self._numeric: list[tuple[list[np.ndarray], list[float]]] = [([], []) for _ in targets.numeric]
        self._group_sizes = [group_sizes(targets, t) for t in targets.numeric]
        self._split_vars = list(dict.fromkeys(t.variable for t in targets.numeric))
        self.drawn = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, proposal: Proposal, split: bool = True) -> bool:
        """Add a proposal unless an identical one is already in the pool. With sum/mean targets, also
        add its lower and upper half for each variable they concern (records from a half still lie in
        the proposal's range), so the allocator can move a mean without leaving the tables' bins."""
        if not self._add(proposal):
            return False
        for name in self._split_vars if split else ():
            lo, hi = proposal.ranges[name]
            integer = self.targets.schema[name].type == "integer"
            if hi - lo < (1 if integer else 1e-9):
                continue
            mid = self._median(name, lo, hi)
            lower, upper = ((lo, np.floor(mid)), (np.floor(mid) + 1, hi)) if integer else ((lo, mid), (mid, hi))
            if integer and not lo <= lower[1] < upper[0] <= hi:
                lower, upper = (lo, lo), (lo + 1, hi)
            for part in (lower, upper):
                self._add(replace(proposal, ranges={**proposal.ranges, name: (float(part[0]), float(part[1]))}))
        return True

    def _median(self, name: str, lo: float, hi: float) -> float:
        shape = (self.shapes or {}).get(name)
        if shape is None:
            return 0.5 * (lo + hi)
        return float(shape.sample(lo, hi, np.array([0.5]))[0])

    def _add(self, proposal: Proposal) -> bool:
        if proposal.key() in self._keys:
            return False
        self._keys.add(proposal.key())
        self.items.append(proposal)
        for columns, table in zip(self._columns, self.targets):
            columns.append(profile(proposal, table, self.targets.schema, self.shapes))
        for (shares, means), target in zip(self._numeric, self.targets.numeric):
            shares.append(profile(proposal, target, self.targets.schema, self.shapes))
            means.append(expected_value(proposal, target.variable, self.targets.schema, self.shapes))
        self.drawn = np.append(self.drawn, 0)
        return True

    def fit(self, gaps: list[np.ndarray], total: int, cap: int, drawn_stats: list[tuple[np.ndarray, np.ndarray]] | None = None,
            scale: float = 1.0, drawn: np.ndarray | None = None) -> Allocation:
        """The best allocation of ``total`` more records over the pool (see :func:`allocation.solve`);
        ``drawn_stats`` are (records, sum) per group of each numeric target among the records drawn;
        ``drawn``: records already taken from each proposal (default ``self.drawn``), counted against ``cap``;
        ``scale``: the records describe ``scale`` times the targets' population (sums and group sizes
        grow with it; ``gaps`` are given at that scale already)."""
        profiles = [np.column_stack(c) if c else np.zeros((t.counts.size, 0)) for c, t in zip(self._columns, self.targets)]
        penalty = None
        if self.prior is not None:  # computed once per proposal, not on every fit
            self._penalty += [self.prior.penalty(p.values, p.ranges) for p in self.items[len(self._penalty):]]
            penalty = np.array(self._penalty)
        drawn_stats = drawn_stats or [(np.zeros(t.shape), np.zeros(t.shape)) for t in self.targets.numeric]
        extra, numeric = [], []
        for (shares, means), target, size, (have_n, have_sum) in zip(self._numeric, self.targets.numeric, self._group_sizes, drawn_stats):
            S = np.column_stack(shares) if shares else np.zeros((max(1, int(np.prod(target.shape))), 0))
            m = np.asarray(means, dtype=float)
            extra.append(numeric_rows(S, m, target, size, have_n, have_sum, scale))
            numeric.append((S, S * m))
        alloc = solve(profiles, gaps, [t.weight for t in self.targets], total, cap - (self.drawn if drawn is None else drawn), penalty, extra)
        predicted = [(n0 + (S @ alloc.counts).reshape(n0.shape), s0 + (Sm @ alloc.counts).reshape(s0.shape))
                     for (S, Sm), (n0, s0) in zip(numeric, drawn_stats)]
        return replace(alloc, numeric=predicted)

    def draw(self, counts: np.ndarray, rng: np.random.Generator, shapes: dict[str, ValueShape] | None = None) -> pd.DataFrame:
        """``counts[i]`` records from proposal i, in pool order, each labelled with its proposal
        (column :data:`SOURCE`); values inside ranges follow ``shapes`` (default: the pool's)."""
        schema = self.targets.schema
        frames = [draw(p, int(k), schema, rng, self.shapes if shapes is None else shapes).assign(**{SOURCE: i})
                  for i, (p, k) in enumerate(zip(self.items, counts)) if k > 0]
        if not frames:
            return pd.DataFrame({**{v: pd.Series(dtype=object) for v in schema.names}, SOURCE: pd.Series(dtype=np.int64)})
        return pd.concat(frames, ignore_index=True)

    def dump(self) -> list[dict]:
        return [{"values": p.values, "ranges": {k: list(v) for k, v in p.ranges.items()}, "num": p.num,
                 "iteration": p.iteration, "drawn": int(k)} for p, k in zip(self.items, self.drawn)]

    @classmethod
    def restore(cls, targets: Targets, items: list[dict], shapes: dict[str, ValueShape] | None = None) -> ProposalPool:
        pool = cls(targets, shapes)
        for item in items:
            pool.add(Proposal(item["values"], {k: tuple(v) for k, v in item["ranges"].items()}, item["num"], item["iteration"]), split=False)
        pool.drawn = np.array([item["drawn"] for item in items], dtype=np.int64)
        return pool
