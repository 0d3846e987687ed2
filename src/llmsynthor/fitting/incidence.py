"""Candidates' incidence on target cells, and the vectors that go with it, checked once.

The shape contract's common currency: a record shape turns its candidates (records, or households
with their persons, or persons with their trips) into an **incidence** — candidates × controls, what
ONE copy of each candidate adds to each target cell (1 in a cell a household falls into, the number
of its persons in a person-level cell) — a dense array or a scipy sparse matrix, entries ≥ 0.
List balancing (:mod:`.balance`), integerizing (:mod:`.integerize`) and the constraint check
(:mod:`.constraints`) all read it through these functions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def as_incidence(incidence) -> sp.csr_array:
    """The incidence as a canonical float64 CSR array (sorted, no duplicates, no explicit zeros)."""
    matrix = sp.csr_array(incidence, dtype=np.float64) if sp.issparse(incidence) else sp.csr_array(np.asarray(incidence, dtype=np.float64))
    if matrix.ndim != 2:
        raise ValueError(f"incidence must be a 2-d array (candidates × controls), got shape {matrix.shape}")
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    if not np.all(np.isfinite(matrix.data)) or np.any(matrix.data < 0):
        raise ValueError("incidence must be finite and ≥ 0, got negative or non-finite entries")
    return matrix


def vector(name: str, values, size: int, *, allow_nan: bool = False) -> np.ndarray:
    """``values`` (or one value repeated) as ``size`` finite floats ≥ 0 (``nan`` too where ``allow_nan``: no control there)."""
    array = np.array(values, dtype=np.float64).reshape(-1) if np.ndim(values) else np.full(size, float(values))
    if array.size != size:
        raise ValueError(f"{name} must have {size} entries, got {array.size}")
    checked = array[~np.isnan(array)] if allow_nan else array
    wrong = checked[~np.isfinite(checked) | (checked < 0)]
    if wrong.size:
        raise ValueError(f"{name} must be finite and ≥ 0{' (nan: no control)' if allow_nan else ''}, got {wrong.size} entries like {wrong[0]}")
    return array


def importance_of(importance, controls: int) -> np.ndarray:
    """How much each control matters (> 0), 1 for every one when not given."""
    if importance is None:
        return np.ones(controls)
    values = vector("importance", importance, controls)
    if np.any(values <= 0):
        raise ValueError(f"importance must be > 0 for every control, got {values[values <= 0][:3].tolist()}")
    return values
