"""Do the target tables describe one population? A diagnosis made before any LLM call.

Three kinds of disagreement are found, each naming both tables and the cells concerned:

* **total** — two count tables with different totals (they cannot describe the same records);
* **zero** — a cell that one table forces to zero while another table's margin over the same
  variables is positive there (no record can satisfy both);
* **margin** — two tables that share variables but give different margins over them (e.g. the
  ``age`` marginal against the age margin of ``age × sex``), by more than ``tolerance`` as a
  share of the records.

Margins are compared on the shared variables' categories; numeric variables are compared when one
table's bins are the other's or a refinement of them (fine bins are summed into coarse ones), and
skipped otherwise. Works on :class:`llmsynthor.core.tables.TargetTable` (or objects shaped like it).

:func:`diagnose_numeric` adds a fourth kind, **numeric**: a sum or mean target that no set of
records can reach while a count table holds — every record of a bin lies between the bin's edges,
so a table with the summed variable and the target's groups bounds each group's mean and sum.

:func:`diagnose_sparse` adds a fifth, **sparse**: a table with more cells holding records than the
run makes records.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Literal

import numpy as np

from .tables import Axis, NumericTarget, TargetTable

_MAX_CELLS_SHOWN = 5


@dataclass(frozen=True)
class Inconsistency:
    kind: Literal["total", "zero", "margin"]
    tables: tuple[str, str]
    variables: tuple[str, ...]
    cells: tuple[tuple[str, float, float], ...]  # (cell label, share in the first table, share in the second)
    n_cells: int = 0  # how many cells disagree (``cells`` shows the worst few)

    def describe(self) -> str:
        a, b = self.tables
        if self.kind == "total":
            (_, ta, tb), = self.cells
            return (f"tables '{a}' and '{b}' have different totals ({ta:g} vs {tb:g} records); expected every count "
                    "table to describe the same population (or give 'share' instead of 'count')")
        shown = "; ".join(f"{label}: {x:.2%} vs {y:.2%}" for label, x, y in self.cells)
        more = f" (and {self.n_cells - len(self.cells)} more)" if self.n_cells > len(self.cells) else ""
        over = " × ".join(self.variables)
        if self.kind == "zero":
            return f"'{a}' and '{b}' disagree on {over}: cells that one table forces to zero and the other does not — {shown}{more}"
        return f"'{a}' and '{b}' give different margins over {over} — {shown}{more}"


@dataclass(frozen=True)
class Sparse:
    """A count table with more cells holding records than the run makes records: most of its cells
    cannot hold even one, so the table cannot be matched (and cells of under half a record are
    never asked for)."""

    table: str
    cells: int  # cells with a positive count
    n: int
    largest: float  # the largest cell, in records at the run's size

    @property
    def tables(self) -> tuple[str]:
        return (self.table,)

    def describe(self) -> str:
        return (f"table '{self.table}' has {self.cells:,} cells with a positive count but the run makes only {self.n:,} records "
                f"(largest cell {self.largest:.3g} records), so most cells cannot hold a whole record; expected fewer cells "
                "(coarser bins or fewer variables in the table) or more records (n_records)")


def diagnose_sparse(tables: list[TargetTable] | tuple[TargetTable, ...], n: int) -> list[Sparse]:
    """Tables with more positive cells than ``n`` records."""
    found = []
    for t in tables:
        cells = int((t.counts > 0).sum())
        if cells > n:
            found.append(Sparse(t.name, cells, int(n), float(t.counts.max() * n / t.counts.sum())))
    return found


def _coarsening(fine: Axis, coarse: Axis) -> np.ndarray | None:
    """For each bin of ``fine``, the index of the ``coarse`` bin containing it; None if ``fine``
    does not refine ``coarse``."""
    if not fine.is_numeric:
        return np.arange(fine.size) if fine.labels == coarse.labels else None
    if not np.all(np.isin(coarse.edges, fine.edges)):
        return None
    return np.searchsorted(coarse.edges, fine.edges[:-1], side="right") - 1


def _margin(table: TargetTable, shared: list[str], onto: list[Axis]) -> np.ndarray | None:
    """``table``'s counts summed onto ``shared`` (in that order), each axis coarsened to ``onto``."""
    order = [table.variables.index(v) for v in shared]
    margin = table.margin(shared)
    for k, (i, target_axis) in enumerate(zip(order, onto)):
        mapping = _coarsening(table.axes[i], target_axis)
        if mapping is None:
            return None
        summed = np.zeros([*margin.shape[:k], target_axis.size, *margin.shape[k + 1:]])
        np.add.at(summed, (slice(None),) * k + (mapping,), margin)
        margin = summed
    return margin


def _common_axes(a: TargetTable, b: TargetTable, shared: list[str]) -> list[Axis] | None:
    """The coarser axis of each shared variable, or None when neither refines the other."""
    axes = []
    for v in shared:
        x, y = a.axes[a.variables.index(v)], b.axes[b.variables.index(v)]
        if _coarsening(x, y) is not None:
            axes.append(y)
        elif _coarsening(y, x) is not None:
            axes.append(x)
        else:
            return None
    return axes


def diagnose(tables: list[TargetTable] | tuple[TargetTable, ...], tolerance: float = 0.005) -> list[Inconsistency]:
    """Every pairwise disagreement between ``tables`` (counts already on one scale ``n``).

    ``tolerance`` is a share of the records: margins closer than that are consistent (published
    tables are rounded)."""
    found: list[Inconsistency] = []
    totals = [(t.name, t.raw_total) for t in tables if getattr(t, "raw_total", None) is not None]
    for name, total in totals[1:]:
        first, first_total = totals[0]
        if not np.isclose(total, first_total, rtol=1e-6, atol=0):
            found.append(Inconsistency("total", (first, name), (), ((name, first_total, total),)))
    for a, b in combinations(tables, 2):
        shared = [v for v in a.variables if v in b.variables]
        if not shared:
            continue
        axes = _common_axes(a, b, shared)
        if axes is None:
            continue
        ma, mb = _margin(a, shared, axes), _margin(b, shared, axes)
        pa, pb = ma / max(ma.sum(), 1e-300), mb / max(mb.sum(), 1e-300)
        labels = [" · ".join(cell) for cell in product(*(ax.labels for ax in axes))]
        pa, pb = pa.ravel(), pb.ravel()
        zero = ((pa == 0) & (pb > 0)) | ((pb == 0) & (pa > 0))
        off = np.abs(pa - pb) > tolerance
        for kind, mask in (("zero", zero), ("margin", off & ~zero)):
            idx = np.flatnonzero(mask)
            if idx.size:
                worst = idx[np.argsort(-np.abs(pa[idx] - pb[idx]), kind="stable")][:_MAX_CELLS_SHOWN]
                found.append(Inconsistency(kind, (a.name, b.name), tuple(shared),
                                           tuple((labels[i], float(pa[i]), float(pb[i])) for i in worst), int(idx.size)))
    return found


@dataclass(frozen=True)
class Unreachable:
    """A sum or mean target outside what a count table allows (kind ``numeric``)."""

    tables: tuple[str, str]  # (the numeric target, the count table that rules it out)
    variable: str
    statistic: str
    cells: tuple[tuple[str, float, float, float], ...]  # (group, wanted, lowest reachable, highest reachable)
    n_cells: int = 0
    kind: Literal["numeric"] = "numeric"

    def describe(self) -> str:
        target, table = self.tables
        shown = "; ".join(f"{label + ': ' if label else ''}{wanted:.6g} wanted, {lo:.6g} to {hi:.6g} reachable"
                          if lo <= hi else f"{label + ': ' if label else ''}{wanted:.6g} wanted, but '{table}' has no records there"
                          for label, wanted, lo, hi in self.cells)
        more = f" (and {self.n_cells - len(self.cells)} more)" if self.n_cells > len(self.cells) else ""
        return (f"'{target}' asks a {self.statistic} of {self.variable} that the bins of '{table}' cannot give — "
                f"{shown}{more}; expected a value within the bins' lowest and highest {self.statistic}")


def _group_bounds(table: TargetTable, target: NumericTarget, integer: bool):
    """Per group of ``target``: record count and the lowest/highest sum of its variable that
    ``table`` allows (None when the table lacks a group variable or its bins do not nest)."""
    groups = target.variables
    if target.variable not in table.variables or not set(groups) <= set(table.variables):
        return None
    if any(_coarsening(table.axes[table.variables.index(v)], ax) is None for v, ax in zip(groups, target.axes)):
        return None
    bins = table.axes[table.variables.index(target.variable)]
    counts = _margin(table, [*groups, target.variable], [*target.axes, bins])
    top = bins.edges[1:] - (1 if integer else 0)  # the largest value a record of each bin can take
    return counts.sum(axis=-1), counts @ bins.edges[:-1], counts @ top


def diagnose_numeric(tables, numeric: list[NumericTarget] | tuple[NumericTarget, ...],
                     integer: dict[str, bool], sum_scale: float = 1.0) -> list[Unreachable]:
    """Every sum/mean target that a count table makes unreachable by more than its tolerance.
    ``integer`` says which numeric variables take whole numbers (their bins' top edge is exclusive);
    sums are reported × ``sum_scale`` (back in the spec's own units when counts were rescaled)."""
    found: list[Unreachable] = []
    for target in numeric:
        for table in tables:
            bounds = _group_bounds(table, target, integer.get(target.variable, False))
            if bounds is None:
                continue
            size, low, high = bounds
            if target.statistic == "mean":
                low, high = (np.divide(b, size, out=np.full(size.shape, np.inf * sign), where=size > 0)
                             for b, sign in ((low, 1), (high, -1)))
            wanted = target.values
            gap = np.maximum(low - wanted, wanted - high)  # > 0: outside; ±inf where the table has no records
            miss = np.isfinite(wanted) & (gap > target.tolerance * np.maximum(np.abs(wanted), 1e-12))
            idx = np.argwhere(miss)
            if not len(idx):
                continue
            order = np.argsort(-gap[miss] / np.maximum(np.abs(wanted[miss]), 1e-12), kind="stable")[:_MAX_CELLS_SHOWN]
            labels = [" · ".join(ax.labels[i] for ax, i in zip(target.axes, tuple(idx[k]))) for k in order]
            unit = sum_scale if target.statistic == "sum" else 1.0
            cells = tuple((label, *(unit * float(x[tuple(idx[k])]) for x in (wanted, low, high)))
                          for label, k in zip(labels, order))
            found.append(Unreachable((target.name, table.name), target.variable, target.statistic, cells, len(idx)))
    return found
