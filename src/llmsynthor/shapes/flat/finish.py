"""After the last draw: the final calibration over records, or remove and replace.

Both work on records drawn from the pool (column :data:`~llmsynthor.shapes.flat.proposal_pool.SOURCE` says from which
proposal) and never call the LLM or invent a record: every record kept comes from a proposal.
The algorithms are :mod:`llmsynthor.fitting.calibration` and :mod:`llmsynthor.fitting.replacement`; this module
feeds them from the pool.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ...core.discrepancy import deficits, weighted_l1
from ...core.errors import ProposalError
from ...core.rules import Rule, allowed
from ...core.statistics import count_all, numeric_errors, numeric_stats
from ...core.tables import Targets
from ...core.within_bin import ValueShape
from ...declarations.spec import SynthesisSettings
from ...fitting.calibration import calibrate
from ...fitting.integerize import round_to_total
from ...fitting.replacement import surplus_records
from ...prior.copula import Conditionals
from .proposal_pool import SOURCE, ProposalPool


def calibrate_over_records(records: pd.DataFrame, pool: ProposalPool, targets: Targets, settings: SynthesisSettings,
                           rng: np.random.Generator, cap: int, constraints: list[Rule] = ()) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The n ``records`` plus (candidates − 1)·n drawn from the same proposals with their values spread
    over other categories and bins (:meth:`llmsynthor.prior.copula.Conditionals.spread`); keep the n that
    match ``targets`` best, none that breaks a constraint. Returns (records kept, records kept per
    proposal, what it did)."""
    schema, n = targets.schema, targets.n
    extra = int(round((settings.candidates - 1) * n))
    # values inside a range or bin follow the records' own draws (the model's ranges within each bin)
    shapes = {v: ValueShape.empirical(records[v].to_numpy(), schema[v].min, schema[v].top, schema[v].type == "integer")
              for v in pool.shapes or {}}
    soft = ProposalPool(targets, shapes)
    soft.prior = pool.prior
    conditionals = Conditionals.build(targets, pool.prior) if settings.spread > 0 else None
    for p in pool.items:  # same order, so a candidate's source is the same index in both pools
        soft.add(replace(p, spread=conditionals.spread(p.values, p.ranges, settings.spread)) if conditionals else p, split=False)
    scale, extra_cap = extra / n, math.ceil(cap * extra / n)
    fit = soft.fit([t.counts.ravel() * scale for t in targets], extra, extra_cap, scale=scale)
    whole = round_to_total(fit.counts, extra, np.full(len(soft), extra_cap))
    fresh = soft.draw(whole, rng)
    candidates = pd.concat([records, fresh], ignore_index=True) if len(fresh) else records
    if constraints:
        ok = allowed(candidates, list(constraints))
        if ok.sum() < n:
            raise ProposalError(f"only {int(ok.sum())} of {len(candidates)} candidate records keep every constraint, "
                                f"fewer than the {n} needed; raise synthesis.candidates or use synthesis.records: joint")
        candidates, records = candidates[ok].reset_index(drop=True), records[ok[:len(records)]]  # order kept: loop first
    sources = candidates[SOURCE].to_numpy(dtype=np.int64)
    caps = np.maximum(cap, np.bincount(sources[:len(records)], minlength=len(pool)))  # never stricter than the loop was
    result = calibrate(candidates, targets, n, rng, sources=sources, cap=caps)
    kept = candidates.iloc[result.keep].reset_index(drop=True)
    drawn = np.bincount(sources[result.keep], minlength=len(pool)).astype(np.int64)
    return kept, drawn, {**result.as_dict(), "spread": settings.spread, "from_loop": int((result.keep < len(records)).sum())}


def remove_and_replace(records: pd.DataFrame, pool: ProposalPool, targets: Targets, drawn: np.ndarray,
                       rng: np.random.Generator, cap: int, scale: float = 1.0, rounds: int = 4) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Take back records whose removal lowers the tables' weighted L1 discrepancy
    (:mod:`llmsynthor.fitting.replacement`), redraw as many from the pool's best allocation for the deficits
    left, and keep a round only if it helped. ``drawn``: records taken from each proposal; ``scale``:
    the targets' size over the pool's. Returns (records, drawn, records replaced)."""
    counts, total = count_all(records, targets), 0
    for _ in range(rounds):
        if SOURCE not in records:
            break  # records restored from an older checkpoint do not say where they came from
        rows = surplus_records(records, targets, counts, rng)
        if not rows.size:
            break
        taken = records.iloc[rows]
        trial_counts = [c - t for c, t in zip(counts, count_all(taken, targets))]
        trial_drawn = drawn.copy()
        np.subtract.at(trial_drawn, taken[SOURCE].to_numpy(dtype=np.int64), 1)
        gaps = [g.ravel() for g in deficits(targets, trial_counts)]
        kept = records.drop(records.index[rows])
        fit = pool.fit(gaps, rows.size, cap, numeric_stats(kept, targets), scale=scale, drawn=trial_drawn)
        whole = round_to_total(fit.counts, rows.size, cap - trial_drawn)
        if whole.sum() < rows.size:
            break
        fresh = pool.draw(whole, rng)
        trial_counts = [c + f for c, f in zip(trial_counts, count_all(fresh, targets))]
        trial = pd.concat([kept, fresh], ignore_index=True)
        worse_numeric = any(after["max_relative_error"] > max(before["max_relative_error"], t.tolerance)
                            for t, before, after in zip(targets.numeric, numeric_errors(records, targets).values(),
                                                        numeric_errors(trial, targets).values()))
        if weighted_l1(targets, deficits(targets, trial_counts)) >= weighted_l1(targets, deficits(targets, counts)) or worse_numeric:
            break
        records, counts, drawn = trial, trial_counts, trial_drawn + whole
        total += int(rows.size)
    return records, drawn, total
