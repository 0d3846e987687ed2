"""Statistics of micro-records: which cell of each target table a record falls in, and counts.

Vectorized with numpy: a record batch is encoded once per table into flat cell indices, and a
table's counts are a ``bincount`` of them. Knows nothing about LLMs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .targets import Axis, Targets, TargetTable


def encode_axis(axis: Axis, values: pd.Series | np.ndarray) -> np.ndarray:
    """The index along ``axis`` of each value; numeric values use the axis' bins (last bin closed)."""
    if axis.is_numeric:
        x = np.asarray(values, dtype=float)
        idx = np.searchsorted(axis.edges, x, side="right") - 1
        idx[x == axis.edges[-1]] = axis.size - 1
        return idx.astype(np.int64)
    lookup = {label: i for i, label in enumerate(axis.labels)}
    return pd.Series(values).map(lookup).to_numpy(dtype=np.int64)


def encode(records: pd.DataFrame, table: TargetTable) -> np.ndarray:
    """Flat cell index of every record in ``table``; records outside every cell get -1."""
    codes = [encode_axis(axis, records[axis.variable].to_numpy()) for axis in table.axes]
    inside = np.logical_and.reduce([(c >= 0) & (c < a.size) for c, a in zip(codes, table.axes)])
    flat = np.full(len(records), -1, dtype=np.int64)
    if inside.any():
        flat[inside] = np.ravel_multi_index(tuple(c[inside] for c in codes), table.shape)
    return flat


def count(records: pd.DataFrame, table: TargetTable) -> np.ndarray:
    """Counts of ``records`` over the cells of ``table``, with the table's shape."""
    flat = encode(records, table)
    return np.bincount(flat[flat >= 0], minlength=int(np.prod(table.shape))).reshape(table.shape).astype(float)


def count_all(records: pd.DataFrame, targets: Targets) -> list[np.ndarray]:
    """Counts of ``records`` for every target table, in the targets' order."""
    return [count(records, t) for t in targets]
