"""Discrepancy between synthetic and target tables, and the guidance rendered from it.

A deficit is "records missing at the final size n": target count minus synthetic count, per cell.
Positive means under-represented and becomes guidance for the LLM; negative cells are what remove
and replace (or the calibration over records) take back.
"""

from __future__ import annotations

import numpy as np

from .metrics import jsd, tvd
from .tables import Targets


def deficits(targets: Targets, counts: list[np.ndarray]) -> list[np.ndarray]:
    """Target minus synthetic counts, per table and cell."""
    return [t.counts - c for t, c in zip(targets, counts)]


def weighted_l1(targets: Targets, gaps: list[np.ndarray]) -> float:
    """Σ_t weight_t · Σ_cells |gap|: records off, over every table (``gaps`` as deficits or surpluses)."""
    return float(sum(t.weight * np.abs(g).sum() for t, g in zip(targets, gaps)))


def neediest_table(targets: Targets, gaps: list[np.ndarray]) -> int:
    """Index of the table with the most weighted missing records (ties: the one with more variables)."""
    scores = [(t.weight * float(np.clip(g, 0, None).sum()), len(t.variables), -i) for i, (t, g) in enumerate(zip(targets, gaps))]
    return -max(scores)[2]


def table_distances(targets: Targets, counts: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """TVD and JSD (distance, base 2) of every table, on proportions."""
    return {t.name: {"tvd": tvd(c, t.counts), "jsd": jsd(c, t.counts)} for t, c in zip(targets, counts)}


def worst_tvd(targets: Targets, counts: list[np.ndarray]) -> tuple[str, float]:
    """The table whose TVD is largest, and that TVD (1.0 while there are no records)."""
    if not targets.tables:
        return "", 0.0
    if sum(c.sum() for c in counts[:1]) == 0:
        return targets.tables[0].name, 1.0
    scores = [(tvd(c, t.counts), t.name) for t, c in zip(targets, counts)]
    value, name = max(scores)
    return name, value
