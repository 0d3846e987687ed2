"""Records counted on a table's cells, and counts scored against a target: for every record shape.

A table's cells are its axes' (:mod:`llmsynthor.core.tables`); a record whose value for one of the
table's variables lies outside the domain, or outside every bin, falls in no cell (:func:`cell_index`
gives it −1) and is counted in an extra "outside the domain" cell whose target is 0 — added only
when either side has a record there (:func:`with_outside`), so clean records score exactly as
without it. :func:`score_counts` gives TVD, JS distance, Hellinger and SRMSE; :func:`zone_scores`
the same per zone, with the worst zone and how many zones miss a tolerance; :func:`combinations_held_out`
which variable combinations are tables no target covers. Knows frames and tables, not LLMs or shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from ..core.metrics import jsd, tvd
from ..core.statistics import encode
from ..core.tables import TargetTable


def hellinger(synthetic: np.ndarray, target: np.ndarray) -> float:
    p, q = (np.asarray(x, dtype=float).ravel() / max(np.sum(x), 1e-300) for x in (synthetic, target))
    return float(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))


def srmse(synthetic: np.ndarray, target: np.ndarray) -> float:
    p, q = (np.asarray(x, dtype=float).ravel() / max(np.sum(x), 1e-300) for x in (synthetic, target))
    return float(np.sqrt(np.mean((p - q) ** 2)) / np.mean(q)) if np.mean(q) > 0 else 0.0


def table_metrics(synthetic: np.ndarray, target: np.ndarray) -> dict[str, float]:
    return {"tvd": tvd(synthetic, target), "jsd": jsd(synthetic, target),
            "hellinger": hellinger(synthetic, target), "srmse": srmse(synthetic, target)}


OUTSIDE_LABEL = "outside the domain"


def cell_index(records: pd.DataFrame, table, inside: dict[str, np.ndarray] | None = None, cache: dict | None = None) -> np.ndarray:
    """Every record's flat cell in ``table``: −1 where a value of one of its variables is outside the
    domain (``inside``, from :func:`~llmsynthor.core.records.inside_domain`) or outside every bin."""
    flat = encode(records, table, cache)
    ok = flat >= 0
    if inside is not None:
        for variable in table.variables:
            ok &= inside[variable]
    return np.where(ok, flat, -1)


def region_counts(flat: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """(counts over ``size`` cells, records in no cell) of flat cell indices from :func:`cell_index`."""
    ok = flat >= 0
    return np.bincount(flat[ok], minlength=size).astype(float), int((~ok).sum())


def cell_counts(records: pd.DataFrame, table: TargetTable, inside: dict[str, np.ndarray] | None = None,
                cache: dict | None = None) -> tuple[np.ndarray, int]:
    """Counts of ``records`` over the cells of ``table`` (its shape; a sparse table's: one a cell) and the
    number of records that fall in no cell (:func:`cell_index`)."""
    counts, outside = region_counts(cell_index(records, table, inside, cache), table.cells)
    return (counts if getattr(table, "listed", None) is not None else counts.reshape(table.shape)), outside


def with_outside(counts: np.ndarray, outside: float, other_outside: float = 0) -> np.ndarray:
    """Flat counts plus the "outside the domain" cell, when either side has records in it."""
    flat = np.asarray(counts, dtype=float).ravel()
    return np.append(flat, float(outside)) if outside or other_outside else flat


def score_counts(synthetic: np.ndarray, outside: float, target: np.ndarray, target_outside: float = 0) -> dict[str, float]:
    """:func:`table_metrics` of counts against a target, each side with the other's "outside the domain" cell."""
    return table_metrics(with_outside(synthetic, outside, target_outside), with_outside(target, target_outside, outside))


def zone_scores(flat: np.ndarray, zone: np.ndarray, size: int, wanted: np.ndarray, zones: Sequence[str], tolerance: float) -> dict:
    """Per zone: ``flat`` cell indices and ``zone`` indices (−1: a zone no target names) of the records,
    ``wanted`` [zone, cell] the targets. The mean and max TVD and JS distance over the zones, the worst
    zone, how many zones' TVD exceeds ``tolerance``, and every zone's TVD."""
    count = len(zones)
    known = zone >= 0
    key = np.where(flat >= 0, zone * size + flat, -1)[known]
    per_zone = np.bincount(key[key >= 0], minlength=count * size).reshape(count, size).astype(float)
    out_zone = np.bincount(zone[known & (flat < 0)], minlength=count)
    wanted = wanted.reshape(count, size)
    scored = [score_counts(per_zone[z], out_zone[z], wanted[z]) for z in range(count)]
    tvds, jsds = np.array([s["tvd"] for s in scored]), np.array([s["jsd"] for s in scored])
    worst = int(np.argmax(tvds))
    return {"zones_tvd_mean": float(tvds.mean()), "zones_tvd_max": float(tvds.max()),
            "zones_jsd_mean": float(jsds.mean()), "zones_jsd_max": float(jsds.max()),
            "worst_zone": zones[worst], "zones_over_tolerance": int((tvds > tolerance).sum()),
            "zones_tvd": [float(t) for t in tvds]}


def combinations_held_out(names: Sequence[str], covered: Callable[[frozenset], bool], max_way: int) -> list[tuple[str, ...]]:
    """Every 2- to ``max_way``-way combination of ``names``, in order, that ``covered`` does not reject
    (the targets already say it)."""
    return [combo for k in range(2, max_way + 1) for combo in combinations(names, k) if not covered(frozenset(combo))]
