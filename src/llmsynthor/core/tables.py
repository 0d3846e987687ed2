"""The target types a run matches: axes, count tables, sum/mean targets, and all of them together.

Plain data with the few operations every layer needs (margins, alignment, content digests,
rescaling). Reading and checking target files is :mod:`llmsynthor.declarations.targets`; nothing here knows
about files, LLMs or the loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from .metrics import jsd, tvd
from .schema import IntegerVariable, Schema


class Finding(Protocol):
    """A disagreement between targets found before the run (:mod:`llmsynthor.core.consistency`)."""

    tables: tuple[str, ...]

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Axis:
    """One axis of a table: a categorical variable's values, or a numeric variable's bins."""

    variable: str
    labels: tuple[str, ...]
    edges: np.ndarray | None = None  # numeric only: len(labels) + 1 edges; the last bin is closed

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def is_numeric(self) -> bool:
        return self.edges is not None


class OnAxes:
    """Variables and shape of anything laid out on ``axes`` (count tables, sum/mean targets)."""

    axes: tuple[Axis, ...]

    @property
    def variables(self) -> list[str]:
        return [a.variable for a in self.axes]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def cells(self) -> int:
        """How many cells the table has: every combination of its axes' values (a sparse table: fewer)."""
        return int(np.prod(self.shape))


def summed(values: np.ndarray, order: list[int]) -> np.ndarray:
    """``values`` summed over every axis but those of ``order``, which come in that order (a table's margin)."""
    kept = sorted(order)
    return np.transpose(values.sum(axis=tuple(i for i in range(values.ndim) if i not in order)), [kept.index(i) for i in order])


@dataclass(frozen=True)
class Listed:
    """The cells of a sparse table — one over zones × zones, say, where nearly every cell is empty: the
    cells it lists, then one cell "elsewhere" for each value of its axis ``by``, which holds every
    combination the table does not list (their targets are all 0). Counts on these cells score exactly
    as on every cell of the table: TVD, JS distance and L1 error are sums over cells whose target is 0
    of terms linear in the count, so unlisted cells can share one cell; ``by`` keeps them apart where
    cells are weighed apart (one origin's district from another's).

    A cell's position in the table (``keys``) is its flat index in ``shape`` (row-major, as
    :func:`numpy.ravel_multi_index` gives it); the listed cells come first, in the order of their keys."""

    shape: tuple[int, ...]
    keys: np.ndarray  # int64, ascending: the listed cells' flat indices in ``shape``
    by: int = 0  # the axis whose values each have their own cell elsewhere

    @property
    def size(self) -> int:
        return len(self.keys) + self.shape[self.by]

    def cell(self, flat: np.ndarray) -> np.ndarray:
        """The cell of each flat index in ``shape`` (``flat`` ≥ 0): its listed cell, else the cell elsewhere
        of its value on axis ``by``."""
        flat = np.asarray(flat, dtype=np.int64)
        if not len(self.keys):
            return self._elsewhere(flat)
        at = np.minimum(np.searchsorted(self.keys, flat), len(self.keys) - 1)
        return np.where(self.keys[at] == flat, at, self._elsewhere(flat))

    def _elsewhere(self, flat: np.ndarray) -> np.ndarray:
        return len(self.keys) + (flat // self.stride) % self.shape[self.by]

    @property
    def stride(self) -> int:
        """How far apart in flat indices two cells one value apart on axis ``by`` are."""
        return int(np.prod(self.shape[self.by + 1:]))

    def codes(self) -> tuple[np.ndarray, ...]:
        """Every cell's position on each axis (the listed cells, then those elsewhere: −1 on every axis
        but ``by``)."""
        listed = np.unravel_index(self.keys, self.shape) if len(self.keys) else tuple(np.zeros(0, np.int64) for _ in self.shape)
        rest = np.arange(self.shape[self.by])
        return tuple(np.r_[c, rest if k == self.by else np.full(len(rest), -1)].astype(np.int64) for k, c in enumerate(listed))


@dataclass(frozen=True)
class TargetTable(OnAxes):
    """A target table rescaled to the run's size ``n``; ``counts`` has one axis per variable."""

    name: str
    axes: tuple[Axis, ...]
    counts: np.ndarray
    weight: float = 1.0
    source: str = ""
    tolerance_tvd: float = 0.01  # aligned when TVD and JS distance are at most these
    tolerance_jsd: float = 0.03
    raw_total: float | None = None  # the table's own total, for count tables

    def margin(self, variables: list[str]) -> np.ndarray:
        """The counts summed over every other variable, axes in the order of ``variables``."""
        return summed(self.counts, [self.variables.index(v) for v in variables])

    def aligned(self, counts: np.ndarray) -> bool:
        """Whether ``counts`` (on this table's cells) are within the table's tolerances."""
        return tvd(counts, self.counts) <= self.tolerance_tvd and jsd(counts, self.counts) <= self.tolerance_jsd


@dataclass(frozen=True)
class NumericTarget(OnAxes):
    """The sum or mean of a numeric variable per group (the cells of ``axes``; no axes: overall).
    ``values`` has the groups' shape, NaN where a group has no target; sums are rescaled to ``n``."""

    name: str
    axes: tuple[Axis, ...]
    variable: str
    statistic: str  # "sum" or "mean"
    values: np.ndarray
    weight: float = 1.0
    tolerance: float = 0.02
    source: str = ""

    def relative_errors(self, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
        """|statistic − target| / |target| for every group with a target (a group with no records
        but a target mean counts as 100 % off)."""
        wanted = np.isfinite(self.values)
        got = sums if self.statistic == "sum" else np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
        err = np.abs(np.nan_to_num(got, nan=0.0) - self.values) / np.maximum(np.abs(self.values), 1e-12)
        err = np.where(np.isnan(got) & wanted, 1.0, err)
        return err[wanted]

    def aligned(self, counts: np.ndarray, sums: np.ndarray) -> bool:
        return bool(np.all(self.relative_errors(counts, sums) <= self.tolerance))


@dataclass(frozen=True)
class Targets:
    """All target tables of a run and the run's record count."""

    n: int
    tables: tuple[TargetTable, ...]
    schema: Schema = field(repr=False)
    inconsistencies: tuple[Finding, ...] = ()  # found before the run, kept when told to proceed
    numeric: tuple[NumericTarget, ...] = ()  # sums and means; iterating Targets yields the count tables only

    def __iter__(self):
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def digests(self) -> dict[str, str]:
        """sha256 of every target's content by name — its axes and its shares (sums: per record; means
        as given), so neither where the cells came from nor the run's size changes it: what resume and
        the manifest identify targets by."""
        out = {t.name: _digest(t.axes, t.counts / t.counts.sum(), "count") for t in self.tables}
        for t in self.numeric:
            out[t.name] = _digest(t.axes, t.values / self.n if t.statistic == "sum" else t.values, t.statistic, t.variable)
        return out

    def finest_axes(self) -> dict[str, Axis]:
        """Every variable some table mentions with more than one level, with the axis that has the most
        levels for it (categorical values, or the finest bins): the levels a pairwise model works on."""
        best: dict[str, Axis] = {}
        for table in self.tables:
            for axis in table.axes:
                if axis.variable not in best or axis.size > best[axis.variable].size:
                    best[axis.variable] = axis
        return {name: axis for name, axis in best.items() if axis.size > 1}

    def shares(self, variable: str, axis: Axis) -> np.ndarray:
        """The target shares of ``variable`` over ``axis``: its one-way table, else the margin of a
        table with that axis, else uniform."""
        for table in self.tables:
            if table.variables == [variable] and table.axes[0].labels == axis.labels:
                return table.counts / table.counts.sum()
        for table in self.tables:
            for other in table.axes:
                if other.variable == variable and other.labels == axis.labels:
                    margin = table.margin([variable])
                    return margin / margin.sum()
        return np.full(axis.size, 1 / axis.size)

    def joint(self, u: str, v: str, axes: dict[str, Axis]) -> np.ndarray | None:
        """The target shares of (u, v) over ``axes[u]`` × ``axes[v]`` from the finest table that crosses
        them on exactly those axes, or None when no table does."""
        for table in sorted(self.tables, key=lambda t: -t.counts.size):
            labels = {a.variable: a.labels for a in table.axes}
            if labels.get(u) == axes[u].labels and labels.get(v) == axes[v].labels and table.counts.sum() > 0:
                joint = table.margin([u, v])
                return joint / joint.sum()
        return None

    def rescaled(self, n: int) -> Targets:
        """The same targets for ``n`` records: counts and sums scaled by n / self.n, means kept."""
        if n == self.n:
            return self
        k = n / self.n
        return replace(self, n=int(n), tables=tuple(replace(t, counts=t.counts * k) for t in self.tables),
                       numeric=tuple(replace(t, values=t.values * k) if t.statistic == "sum" else t for t in self.numeric))


def _digest(axes: tuple[Axis, ...], values: np.ndarray, *labels: str) -> str:
    h = hashlib.sha256("\x1f".join(labels).encode())
    for axis in axes:
        h.update(("\x1e" + axis.variable + "\x1f" + "\x1f".join(axis.labels)).encode())
    rounded = [float(f"{v:.12g}") for v in np.asarray(values, dtype=float).ravel()]  # rescaling leaves last-digit noise
    h.update(np.asarray(rounded, dtype="<f8").tobytes())
    return h.hexdigest()


def interval_label(lo: float, hi: float, var) -> str:
    """The label of the half-open interval [lo, hi) of a numeric variable, as specs write it.

    An interval that reaches the top of the domain is shown closed: ``[52,90]`` for integers
    (internally [52, 91)), ``[921,2000]`` for floats.
    """
    integer = isinstance(var, IntegerVariable)
    closed = hi >= var.top
    fmt = (lambda v: str(int(v))) if integer else (lambda v: f"{v:g}")
    return f"[{fmt(lo)},{fmt(hi - 1 if integer and closed else hi)}{']' if closed else ')'}"




class _Cells(Protocol):
    name: str
    axes: tuple[Axis, ...]

    @property
    def cells(self) -> int: ...


def table_offsets(tables: Sequence[_Cells]) -> np.ndarray:
    """Where each table's cells start in the flat vector of all their cells (the total at the end)."""
    return np.cumsum([0, *(t.cells for t in tables)])


def locate_cell(tables: Sequence[_Cells], j: int, offsets: np.ndarray | None = None) -> tuple[int, tuple[int, ...]]:
    """(which table, the index in it) of cell ``j`` of the flat vector of the tables' cells."""
    offsets = table_offsets(tables) if offsets is None else offsets
    t = int(np.searchsorted(offsets, j, side="right") - 1)
    return t, tuple(int(i) for i in np.unravel_index(int(j - offsets[t]), tuple(a.size for a in tables[t].axes)))


def name_cell(tables: Sequence[_Cells], j: int, offsets: np.ndarray | None = None) -> tuple[str, str]:
    """(the table's name, ``a = x, b = y``) of cell ``j`` of the flat vector of the tables' cells."""
    t, index = locate_cell(tables, j, offsets)
    return tables[t].name, ", ".join(f"{a.variable} = {a.labels[i]}" for a, i in zip(tables[t].axes, index))
