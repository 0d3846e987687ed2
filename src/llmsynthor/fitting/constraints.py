"""Constraints the target tables contradict, found before any LLM call, for every record shape.

A record shape draws candidates from its tables alone (no prior), says which of them each
constraint rules out (a mask per constraint), and gives their incidence on the target cells
(:mod:`.incidence`). :func:`contradictions` finds the cells with a positive target that those
candidates reach (at least ``evidence`` of them) but never while meeting every constraint — a table
says such records exist, a constraint says they cannot — and which constraints empty each cell;
:func:`contradiction_problems` words them for a :class:`~llmsynthor.core.errors.SpecError`.
Knows masks and arrays, not rules' syntax, shapes or LLMs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..core.errors import Problem
from .incidence import as_incidence, vector

SHOWN = 10  # cells named at most


@dataclass(frozen=True)
class Contradiction:
    """A target cell the constraints leave empty: its column, its target, and the constraints that
    rule out every candidate there, each alone (``alone``) or only together (``together``)."""

    cell: int
    target: float
    alone: tuple[str, ...]
    together: tuple[str, ...]

    def said(self) -> str:
        """How the constraints empty the cell, in words."""
        if self.alone:
            return f"breaks {' and '.join(repr(n) for n in self.alone)}"
        return f"breaks one of {', '.join(repr(n) for n in self.together)}"


def contradictions(incidence, targets, broken: Mapping[str, np.ndarray], *, evidence: int = 1) -> list[Contradiction]:
    """The cells with a positive target (``nan``: no target) that at least ``evidence`` candidates reach,
    none of them breaking no constraint. ``broken`` maps each constraint to a mask over the candidates
    (the rows of ``incidence``) of those it rules out."""
    if not broken:
        return []
    matrix = as_incidence(incidence)
    wanted = np.nan_to_num(vector("targets", targets, matrix.shape[1], allow_nan=True))
    masks = {text: np.asarray(mask, dtype=bool) for text, mask in broken.items()}
    out = np.logical_or.reduce(list(masks.values()))
    reached = np.diff(matrix.tocsc().indptr)  # candidates reaching each cell (explicit zeros are gone)
    kept = np.diff(matrix[np.flatnonzero(~out)].tocsc().indptr) if (~out).any() else np.zeros(matrix.shape[1], dtype=np.int64)
    found = []
    csc = matrix.tocsc()
    for cell in np.flatnonzero((wanted > 0) & (reached >= evidence) & (kept == 0)):
        rows = csc.indices[csc.indptr[cell]:csc.indptr[cell + 1]]
        alone = tuple(text for text, m in masks.items() if m[rows].all())
        together = tuple(text for text, m in masks.items() if m[rows].any())
        found.append(Contradiction(int(cell), float(wanted[cell]), alone, together))
    return found


def contradiction_problems(found: list[Contradiction], describe: Callable[[int], tuple[str, str]], source: str,
                           noun: str) -> list[Problem]:
    """One problem per contradicted cell (the first ``SHOWN``, then how many more): ``describe(cell)``
    gives (the table's name, the cell in words), ``noun`` one candidate ("record", "household")."""
    problems = []
    for c in found[:SHOWN]:
        table, cell = describe(c.cell)
        problems.append(Problem(f"{source}: constraints",
                                f"table {table!r} has {c.target:g} in the cell {cell}, but every {noun} there {c.said()}; "
                                "expected constraints the tables allow (drop or narrow the constraint, or check the table)"))
    if len(found) > SHOWN:
        problems.append(Problem(f"{source}: constraints", f"… and {len(found) - SHOWN} more such cell(s)"))
    return problems
