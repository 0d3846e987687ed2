"""Which kinds of records to ask the LLM for next: focus cells built from the deficits.

A *focus* is what one requested proposal must be: the categorical values and numeric intervals
the system fixes, built from the largest deficits. It starts from one of the largest deficit
cells of the neediest table (the *lead*) and, with ``pin="targets"``, extends it with a cell of
every other target table that is consistent with what is already fixed, drawn in proportion to
that table's remaining deficit (target counts where nothing is missing; cells whose target is
zero are never drawn) and, with a pairwise prior, by how compatible the model finds the cell with
the values already fixed. Thus one proposal lands in a wanted cell of every table at once, and a
weak model cannot drift into cells that are already full. With ``pin="lead"`` only the lead
table's cell is fixed and the LLM chooses everything else (the paper's freer setting, for
strong models). The LLM always chooses the numeric ranges inside the fixed intervals and every
variable no target table mentions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.discrepancy import neediest_table
from ..core.schema import Schema
from ..core.tables import Targets, TargetTable, interval_label

if TYPE_CHECKING:
    from .copula import PairwisePrior


@dataclass(frozen=True)
class Focus:
    """Values and intervals one proposal must respect, and the lead cell's missing records."""

    values: dict[str, str]
    intervals: dict[str, tuple[float, float]]  # numeric: [lo, hi), hi closed when it is the domain max
    missing: float

    def describe(self, schema: Schema) -> str:
        parts = []
        for name in schema.names:
            if name in self.values:
                parts.append(f"{name} = {self.values[name]}")
            elif name in self.intervals:
                parts.append(f"{name} in {interval_label(*self.intervals[name], schema[name])}")
        return ", ".join(parts)


def _consistent(table: TargetTable, values: dict, intervals: dict, schema: Schema) -> np.ndarray:
    """Boolean mask over the table's flat cells: which agree with the fixed values and intervals."""
    masks = []
    for axis in table.axes:
        if axis.is_numeric:
            lo, hi = intervals.get(axis.variable, (axis.edges[0], axis.edges[-1]))
            left, right = axis.edges[:-1], axis.edges[1:]
            masks.append((np.minimum(right, hi) - np.maximum(left, lo)) > 0)
        elif axis.variable in values:
            masks.append(np.array([label == values[axis.variable] for label in axis.labels]))
        else:
            masks.append(np.ones(axis.size, dtype=bool))
    out = masks[0]
    for m in masks[1:]:
        out = np.multiply.outer(out, m)
    return np.asarray(out, dtype=bool).ravel()


def _fix_cell(table: TargetTable, flat: int, values: dict, intervals: dict) -> None:
    idx = np.unravel_index(flat, table.shape)
    for axis, i in zip(table.axes, idx):
        if axis.is_numeric:
            lo, hi = intervals.get(axis.variable, (-np.inf, np.inf))
            intervals[axis.variable] = (max(lo, float(axis.edges[i])), min(hi, float(axis.edges[i + 1])))
        else:
            values[axis.variable] = axis.labels[i]


def plan_focus(targets: Targets, residual: list[np.ndarray], k: int, rng: np.random.Generator,
               pin: str = "targets", prior: PairwisePrior | None = None) -> list[Focus]:
    """Up to ``k`` focus cells for the next plan (``residual``: missing records per table and cell).
    With a ``prior``, each table's candidate cells are also weighted by the model's lifts with the
    values already fixed (:mod:`llmsynthor.prior.copula`)."""
    schema = targets.schema
    lead_index = neediest_table(targets, residual)
    lead = targets.tables[lead_index]
    flat = residual[lead_index].ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    cells = [int(c) for c in order if flat[c] > 0.5]
    if not cells and np.clip(flat, 0, None).sum() >= 1:  # a sparse table: a whole record missing, spread thinly
        cells = [int(c) for c in order if flat[c] > 0]
    others = sorted((t for i, t in enumerate(targets) if i != lead_index), key=lambda t: -t.counts.size)
    out = []
    for cell in cells:
        values: dict[str, str] = {}
        intervals: dict[str, tuple[float, float]] = {}
        _fix_cell(lead, cell, values, intervals)
        if pin == "targets":
            for table in others:
                ti = targets.tables.index(table)
                mask = _consistent(table, values, intervals, schema)
                weight = np.where(mask, np.clip(residual[ti].ravel(), 0, None), 0.0)
                if weight.sum() <= 0:
                    weight = np.where(mask, table.counts.ravel(), 0.0)
                if weight.sum() <= 0:
                    continue  # no consistent cell has any target: leave this table's variables free
                if prior is not None:
                    weight = weight * prior.cell_weights(table, values, intervals)
                _fix_cell(table, int(rng.choice(weight.size, p=weight / weight.sum())), values, intervals)
        out.append(Focus(values, intervals, float(flat[cell])))
    return out
