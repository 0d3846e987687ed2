"""A table's cells by district: where a table of trips naming zones or districts is met district by
district (:func:`~llmsynthor.shapes.trips.evaluation.by_district`), and how the choice and the polish
weigh its cells so that each district counts as much as any other (:func:`district_scale`).

A table's district side is where its trips leave from (``origin_district``, else ``origin``), else
where they go (``destination_district``, else ``destination``); a zone's district is the zone
table's. Knows tables and zones, nothing of the fit.
"""

from __future__ import annotations

import numpy as np

from ...core.levels import LevelTable
from ...declarations.zones import Zones
from ...fitting.choice import cell_targets
from .inputs import TRIPS, district_side


def district_cells(table: LevelTable, zones: Zones) -> tuple[str, np.ndarray, np.ndarray] | None:
    """A table's district side, its districts' names and each of its cells' district (an index into the
    names, over the table's cells raveled): its cells by origin district (else destination), for a table
    of trips naming a zone or district; None otherwise, or without districts in the zone table."""
    if zones.district is None or table.level != TRIPS.name:
        return None
    found = district_side(table.variables)
    if found is None:
        return None
    variable, side = found
    k = table.variables.index(variable)
    labels = np.asarray(table.axes[k].labels, dtype=str)
    district = labels if variable.endswith("_district") else zones.district.astype(str)[zones.rows(labels)]
    names, group = np.unique(district, return_inverse=True)
    return side, names, group[table.codes()[k]]  # a sparse table's cells elsewhere keep their district side (Listed.by)


def _groups(table: LevelTable, zones: Zones) -> tuple[int, np.ndarray, bool]:
    """A table's groups: how many, each cell's (raveled), and whether they are districts — each district of
    a table with a district side (:func:`district_cells`), else the whole table as one."""
    cells = district_cells(table, zones)
    if cells is None:
        return 1, np.zeros(table.cells, dtype=np.int64), False
    return len(cells[1]), cells[2].astype(np.int64), True


def district_scale(tables, zones: Zones) -> np.ndarray:
    """Over the cells of ``tables`` (raveled, in order): a factor that turns a table's L1 error over its
    total into the mean over its districts of their L1 errors over their own totals (the table's total
    over the number of districts times the cell's district's total); 1 for a table with no district side."""
    out = []
    for table in tables:
        count, group, districts = _groups(table, zones)
        totals = np.bincount(group, weights=table.region.ravel(), minlength=count)
        out.append(table.region.sum() / (count * np.maximum(totals[group], 1.0)) if districts else np.ones(table.cells))
    return np.concatenate(out) if out else np.zeros(0)


def cell_groups(tables, zones: Zones) -> np.ndarray:
    """Over the cells of ``tables`` (raveled, in order): each cell's group, numbered from 0 — a table with a
    district side has one group per district (:func:`district_cells`), any other table one."""
    out, groups = [], 0
    for table in tables:
        count, group, _ = _groups(table, zones)
        out.append(groups + group)
        groups += count
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def cell_weights(tables, zones: Zones, emphasis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cells of ``tables`` as the choice and the polish weigh them: their targets, and each cell's
    weight — its table's weight (times its ``emphasis``) over its total, times :func:`district_scale` —
    so that the error is the weighted sum of the tables' L1 errors, a table naming zones or districts
    counting as the mean of its districts'."""
    targets, scale = cell_targets(tables, emphasis)
    return targets, scale * district_scale(tables, zones)


def described(fit: dict | None) -> str:
    """A table's fit district by district (:func:`~llmsynthor.shapes.trips.evaluation.by_district`) in
    words: the worst district, its TVD, how many districts exceed the tolerance ("" for none)."""
    return "" if fit is None else f"{fit['worst_district']} {fit['tvd_max']:.4f} · {fit['over_tolerance']} of {fit['districts']} over"
