"""Remove and replace: which drawn records to take back when cells are over-represented.

The paper's loop only adds records, so a cell filled past its target can only be diluted and an
early mistake stays. Here, after a batch is drawn, a record is removed when that lowers the
weighted L1 discrepancy of the tables: it sits in over-represented cells (by at least one whole
record) of more weight than the cells it would leave short. Records in several over-represented
cells go first; the loop then refills the deficits it left. Vectorized per table; the greedy pass
updates the surpluses after every removal so no cell is over-corrected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.statistics import encode
from ..core.tables import Targets


def surplus_records(records: pd.DataFrame, targets: Targets, counts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Positions (in ``records``) of records whose removal lowers Σ_t w_t · ‖counts_t − target_t‖₁."""
    if not len(records):
        return np.zeros(0, dtype=np.int64)
    codes = np.column_stack([encode(records, t) for t in targets])  # records × tables
    surplus = [c.ravel() - t.counts.ravel() for c, t in zip(counts, targets)]
    weights = np.array([t.weight for t in targets])

    def benefit(rows: np.ndarray) -> np.ndarray:
        over = np.column_stack([s[codes[rows, i]] >= 1 for i, s in enumerate(surplus)])
        return (np.where(over, 1.0, -1.0) * weights).sum(axis=1)

    first = benefit(np.arange(len(records)))
    candidates = np.flatnonzero(first > 0)
    if not candidates.size:
        return candidates
    # most over-represented first; ties in random order (seeded)
    candidates = candidates[np.lexsort((rng.random(candidates.size), -first[candidates]))]
    removed = []
    for row in candidates:
        if benefit(np.array([row]))[0] <= 0:
            continue
        removed.append(row)
        for i, s in enumerate(surplus):
            s[codes[row, i]] -= 1
    return np.array(sorted(removed), dtype=np.int64)
