"""Distances between a table of synthetic counts and a table of target counts.

Definitions, stated once: both tables are normalized to proportions over all their cells.

* TVD = ½ Σ |p − q|; by group (:func:`tvd_by_group`: a district's cells of a table), each group's
  cells normalized within it, a group with counts on one side only missed entirely (1).
* JSD = Jensen–Shannon *distance* with log base 2 (the square root of the divergence; in [0, 1]),
  from :func:`scipy.special.rel_entr` (clipped at zero, so identical tables give exactly 0
  rather than the NaN that rounding can produce). The paper's "JSD" figures are distances too.

For flows (origin–destination tables), as transport models are judged:

* CPC, the common part of commuters = 2 Σ min(T, S) / (Σ T + Σ S), on counts (1: the same flows);
* cosine similarity of the two tables as vectors of counts.
"""

from __future__ import annotations

import numpy as np
from scipy.special import rel_entr


def _proportions(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    total = x.sum()
    return x / total if total > 0 else np.full_like(x, 1.0 / x.size)


def tvd(synthetic: np.ndarray, target: np.ndarray) -> float:
    """Total variation distance between two tables of counts."""
    return float(0.5 * np.abs(_proportions(synthetic) - _proportions(target)).sum())


def tvd_by_group(synthetic: np.ndarray, target: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """[group]: the TVD between the synthetic and target counts of each group's cells (``group`` gives each
    cell's, 0 … ``groups``−1), each side normalized within the group; 1 for a group with counts on one
    side only, 0 for a group with none on either."""
    s, t = np.asarray(synthetic, dtype=float).ravel(), np.asarray(target, dtype=float).ravel()
    a, b = np.bincount(group, weights=s, minlength=groups), np.bincount(group, weights=t, minlength=groups)
    p, q = s / np.where(a > 0, a, 1.0)[group], t / np.where(b > 0, b, 1.0)[group]
    out = 0.5 * np.bincount(group, weights=np.abs(p - q), minlength=groups)
    return np.where((a > 0) & (b > 0), out, ((a > 0) != (b > 0)).astype(float))


def jsd(synthetic: np.ndarray, target: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2) between two tables of counts."""
    p, q = _proportions(synthetic), _proportions(target)
    m = (p + q) / 2
    divergence = (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / (2 * np.log(2))
    return float(np.sqrt(max(divergence, 0.0)))


def cpc(synthetic: np.ndarray, target: np.ndarray) -> float:
    """Common part of commuters between two tables of counts (1 when they are equal, 0 when disjoint)."""
    s, t = np.asarray(synthetic, dtype=float).ravel(), np.asarray(target, dtype=float).ravel()
    total = s.sum() + t.sum()
    return float(2 * np.minimum(s, t).sum() / total) if total > 0 else 1.0


def cosine(synthetic: np.ndarray, target: np.ndarray) -> float:
    """Cosine similarity of two tables of counts as vectors (1 when proportional)."""
    s, t = np.asarray(synthetic, dtype=float).ravel(), np.asarray(target, dtype=float).ravel()
    norms = np.linalg.norm(s) * np.linalg.norm(t)
    return float(s @ t / norms) if norms > 0 else float(np.array_equal(s, t))
