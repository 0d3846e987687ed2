"""How numeric values spread inside a proposal's range: a smooth density read off the targets.

A proposal gives a range ``[lo, hi]`` for each numeric variable; the model rarely knows more
than the bin it was asked for, so drawing uniformly inside the range makes every bin flat and
the marginal a staircase (Wasserstein distance to real data ≈ 2 years of age on the e-commerce
example). Instead, each numeric variable gets a cumulative distribution function that passes
exactly through the target's bin shares at the bin edges and is smooth and monotone in between
(PCHIP interpolation of the CDF), built from the table with the finest bins for it. Values are
drawn by inverting that CDF restricted to the proposal's range, so every record still lies in
its proposal's range and every bin keeps its share; only the shape inside bins changes.
With ``within_bin: uniform`` (the paper's choice) the CDF is the identity.

Integers live on the half-open line: value k stands for [k, k + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Schema
from .tables import Targets

_GRID = 4097


@dataclass(frozen=True)
class ValueShape:
    """A monotone CDF on [start, stop], tabulated on a grid; uniform when ``cdf`` is linear."""

    grid: np.ndarray
    cdf: np.ndarray

    @classmethod
    def uniform(cls, start: float, stop: float) -> ValueShape:
        return cls(np.array([start, stop], dtype=float), np.array([0.0, 1.0]))

    @classmethod
    def from_bins(cls, edges: np.ndarray, counts: np.ndarray) -> ValueShape:
        """Through (edge, cumulative share) points, monotone and smooth between them (PCHIP)."""
        from scipy.interpolate import PchipInterpolator

        cumulative = np.r_[0.0, np.cumsum(counts, dtype=float)]
        cumulative /= cumulative[-1]
        grid = np.unique(np.r_[np.linspace(edges[0], edges[-1], _GRID), edges])
        cdf = np.clip(PchipInterpolator(edges, cumulative)(grid), 0.0, 1.0)
        return cls(grid, np.maximum.accumulate(cdf))

    @classmethod
    def empirical(cls, values: np.ndarray, start: float, stop: float, integer: bool) -> ValueShape:
        """The distribution of ``values`` on [start, stop], piecewise linear: each integer k
        spread evenly over [k, k + 1); floats through ``_GRID`` of their quantiles."""
        x = np.sort(np.asarray(values, dtype=float))
        if not x.size:
            return cls.uniform(start, stop)
        if integer:
            grid = np.arange(start, stop + 1)
            cdf = np.searchsorted(x, grid, side="left") / x.size
        else:
            q = np.linspace(0, 1, _GRID)
            points, probs = np.r_[start, np.quantile(x, q), stop], np.r_[0.0, q, 1.0]
            last = np.r_[np.diff(points) > 0, True]  # of equal points keep the last (the CDF's value there)
            grid, cdf = points[last], probs[last]
        return cls(np.asarray(grid, dtype=float), np.maximum.accumulate(np.clip(cdf, 0.0, 1.0)))

    def mass(self, lo: float | np.ndarray, hi: float | np.ndarray) -> np.ndarray:
        """Probability of [lo, hi) under the shape."""
        return np.interp(hi, self.grid, self.cdf) - np.interp(lo, self.grid, self.cdf)

    def mean(self, lo: float, hi: float) -> float:
        """Expected value on [lo, hi) under the shape (the range's midpoint where it has no mass)."""
        grid = np.unique(np.r_[lo, self.grid[(self.grid > lo) & (self.grid < hi)], hi])
        cdf = np.interp(grid, self.grid, self.cdf)
        mass = np.diff(cdf)
        if mass.sum() <= 1e-12:
            return 0.5 * (lo + hi)
        return float(np.sum(mass * 0.5 * (grid[:-1] + grid[1:])) / mass.sum())

    def sample(self, lo: float, hi: float, u: np.ndarray) -> np.ndarray:
        """Values in [lo, hi) for uniform ``u`` in [0, 1): the inverse CDF restricted to the range.
        Falls back to uniform where the shape gives the range no mass."""
        a, b = np.interp([lo, hi], self.grid, self.cdf)
        if b - a <= 1e-12:
            return lo + u * (hi - lo)
        x = np.interp(a + u * (b - a), self.cdf, self.grid)
        return np.clip(x, lo, hi)


def shapes_from_targets(targets: Targets, mode: str = "smooth") -> dict[str, ValueShape]:
    """One shape per numeric variable: from the one-variable table with the most bins for it, else
    the margin of the joint table with the most bins; uniform over the domain otherwise."""
    schema: Schema = targets.schema
    shapes = {}
    for name in schema.names:
        var = schema[name]
        if not var.is_numeric:
            continue
        top = var.top
        best = None
        for table in targets:
            if name in table.variables:
                axis = table.axes[table.variables.index(name)]
                key = (axis.size, len(table.variables) == 1)
                if best is None or key > best[0]:
                    best = (key, axis.edges, table.margin([name]))
        if mode == "uniform" or best is None:
            shapes[name] = ValueShape.uniform(var.min, top)
        else:
            shapes[name] = ValueShape.from_bins(best[1], best[2])
    return shapes


def value_range(lo: float, hi: float, integer: bool) -> tuple[float, float]:
    """The half-open continuous range a proposal's [lo, hi] covers (integers: [lo, hi + 1))."""
    return (lo, hi + 1) if integer else (lo, hi)

