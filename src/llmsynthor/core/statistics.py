"""Statistics of micro-records: which cell of each target table a record falls in, and counts.

Vectorized with numpy: a record batch is encoded once per table into flat cell indices, and a
table's counts are a ``bincount`` of them. Knows nothing about LLMs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import Axis, NumericTarget, Targets, TargetTable


def encode_axis(axis: Axis, values: pd.Series | np.ndarray) -> np.ndarray:
    """The index along ``axis`` of each value; numeric values use the axis' bins (last bin closed)."""
    if axis.is_numeric:
        x = np.asarray(values, dtype=float)
        idx = np.searchsorted(axis.edges, x, side="right") - 1
        idx[x == axis.edges[-1]] = axis.size - 1
        return idx.astype(np.int64)
    # factorize (hashing in C, fast for arrow strings too), then map the few distinct values
    codes, uniques = pd.factorize(values)
    lookup = np.append(pd.Index(axis.labels).get_indexer(uniques), -1)  # code -1 (missing) -> -1
    return lookup[codes].astype(np.int64)


def encode(records: pd.DataFrame, table: TargetTable, _cache: dict | None = None) -> np.ndarray:
    """Flat cell index of every record in ``table`` (a sparse table's: its cell, :class:`~llmsynthor.core.tables.Listed`);
    records outside every cell get -1.

    ``_cache`` (axis -> codes) lets several tables over the same variable encode it once.
    """
    cache = {} if _cache is None else _cache
    codes = []
    for axis in table.axes:
        key = (axis.variable, axis.labels)
        if key not in cache:
            cache[key] = encode_axis(axis, records[axis.variable])
        codes.append(cache[key])
    inside = np.logical_and.reduce([(c >= 0) & (c < a.size) for c, a in zip(codes, table.axes)])
    flat = np.full(len(records), -1, dtype=np.int64)
    if inside.any():
        flat[inside] = np.ravel_multi_index(tuple(c[inside] for c in codes), table.shape)
        listed = getattr(table, "listed", None)  # a sparse table: its listed cell, else its cell elsewhere
        if listed is not None:
            flat[inside] = listed.cell(flat[inside])
    return flat


def count(records: pd.DataFrame, table: TargetTable, _cache: dict | None = None) -> np.ndarray:
    """Counts of ``records`` over the cells of ``table``, with the table's shape."""
    flat = encode(records, table, _cache)
    return np.bincount(flat[flat >= 0], minlength=int(np.prod(table.shape))).reshape(table.shape).astype(float)


def count_all(records: pd.DataFrame, targets: Targets) -> list[np.ndarray]:
    """Counts of ``records`` for every target table, in the targets' order."""
    cache: dict = {}
    return [count(records, t, cache) for t in targets]


def group_sums(records: pd.DataFrame, target: NumericTarget) -> tuple[np.ndarray, np.ndarray]:
    """Records per group of a numeric target and the sum of its variable per group (group shape)."""
    size = int(np.prod(target.shape))
    flat = encode(records, target) if target.axes else np.zeros(len(records), dtype=np.int64)
    keep = flat >= 0
    values = records[target.variable].to_numpy(dtype=float)
    counts = np.bincount(flat[keep], minlength=size).astype(float)
    sums = np.bincount(flat[keep], weights=values[keep], minlength=size)
    return counts.reshape(target.shape), sums.reshape(target.shape)


def group_sizes(targets: Targets, target: NumericTarget) -> np.ndarray:
    """Expected records per group of a numeric target at the final size: the margin of a count table
    that has the same group axes, else an even split."""
    for table in targets:
        where = []
        for axis in target.axes:
            match = [i for i, other in enumerate(table.axes) if other.variable == axis.variable and other.labels == axis.labels]
            if not match:
                break
            where.append(match[0])
        else:
            return table.margin([table.axes[i].variable for i in where])
    return np.full(target.shape, targets.n / max(1, int(np.prod(target.shape))))


def numeric_errors(records: pd.DataFrame, targets: Targets) -> dict[str, dict[str, float]]:
    """Largest and mean relative error of every sum/mean target among ``records``."""
    out = {}
    for target in targets.numeric:
        err = target.relative_errors(*group_sums(records, target))
        out[target.name] = {"max_relative_error": float(err.max()) if err.size else 0.0,
                            "mean_relative_error": float(err.mean()) if err.size else 0.0}
    return out


def numeric_stats(records: pd.DataFrame | None, targets: Targets) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(records, sum) per group of every sum/mean target among ``records``; None without either."""
    if records is None or not targets.numeric:
        return None
    return [group_sums(records, t) for t in targets.numeric]
