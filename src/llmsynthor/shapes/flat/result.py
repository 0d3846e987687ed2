"""What a run gives back: the records, how well they match, what the LLM did, and progress events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...core.tables import Targets
from ...prior.requesting import LLMUsage


@dataclass(frozen=True)
class IterationStats:
    """What one iteration of the loop did; the progress callback receives one per iteration."""

    iteration: int
    records: int  # records drawn so far (the paper's add-only schedule draws during the loop)
    n: int
    worst_table: str
    worst_tvd: float
    new_proposals: int
    pool: int
    drawn: int
    predicted_worst_tvd: float  # of the pool's best allocation of all n records
    llm_seconds: float
    seconds: float


ProgressCallback = Callable[[IterationStats], None]


@dataclass
class SynthesisResult:
    """Records and everything needed to judge and reproduce them."""

    records: pd.DataFrame
    converged: bool
    history: list[IterationStats]
    distances: dict[str, dict[str, float]]
    dependencies: dict[str, list[list[str]]]
    usage: LLMUsage
    proposals: list[dict]
    wall_seconds: float
    notes: list[str] = field(default_factory=list)
    pairwise_prior: list[dict] | None = None  # the strongest lifts the model gave (see llmsynthor.prior.copula)
    diversity: dict = field(default_factory=dict)  # distinct records, proposals used, entropy per table
    numeric: dict[str, dict[str, float]] = field(default_factory=dict)  # relative errors of sum/mean targets
    calibration: dict | None = None  # what the final calibration over records did (llmsynthor.fitting.calibration)
    targets: dict[str, str] = field(default_factory=dict)  # sha256 of every target's content, by name
    prior_check: dict | None = None  # records: joint — the prior's strength, checked on the joint tables (llmsynthor.prior.tempering)

    @property
    def worst_tvd(self) -> float:
        return max((d["tvd"] for d in self.distances.values()), default=0.0)


def diversity(records: pd.DataFrame, targets: Targets, counts: list[np.ndarray], drawn: np.ndarray) -> dict:
    """How varied the records are: distinct share, how many proposals carry them and the largest
    share from one, and the entropy (bits) of every table beside the target's."""
    from scipy.stats import entropy

    n = max(len(records), 1)
    return {
        "distinct_share": round(float(1 - records.duplicated().mean()), 4) if len(records) else 0.0,
        "proposals_used": int((drawn > 0).sum()),
        "largest_proposal_share": round(float(drawn.max() / n), 4) if drawn.size else 0.0,
        "entropy_bits": {t.name: {"synthetic": round(float(entropy(c.ravel() + 0.0, base=2)), 4) if c.sum() else 0.0,
                                  "target": round(float(entropy(t.counts.ravel(), base=2)), 4)}
                         for t, c in zip(targets, counts)},
    }
