"""The synthesis loop: discrepancy -> guidance -> LLM plan of proposals -> allocation -> records.

A :class:`Synthesizer` is fitted, then sampled (as scikit-learn estimators and SDV synthesizers are):

* :meth:`~Synthesizer.fit` grows the *proposal pool* with the LLM. Each iteration measures what is
  still missing (the deficit of every target cell after the best use of the proposals gathered so
  far, so the LLM is asked for what the pool cannot yet express), turns the largest deficits into
  focus cells, asks the LLM for a plan of proposals (:mod:`llmsynthor.shapes.flat.steps`) and refits the
  allocation (:mod:`llmsynthor.shapes.flat.proposal_pool`). It stops when the pool's best allocation of the n records
  matches every table within tolerance, or after ``max_iterations``. With ``draw: every_iteration``
  (the paper's add-only schedule) it also draws a batch of n / max_iterations records per iteration.
* :meth:`~Synthesizer.sample` draws records from the fitted pool with a seeded RNG and finishes
  them (:mod:`llmsynthor.shapes.flat.finish`: the calibration over records, or remove and replace). No LLM call.

The loop knows the LLM only through :class:`~llmsynthor.llm.base.LLMBackend`, by way of the
request layer (:mod:`llmsynthor.prior.requesting`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.discrepancy import deficits, table_distances, worst_tvd
from ...core.errors import Problem, ProposalError, SpecError
from ...core.metrics import tvd
from ...core.rules import parse_rules
from ...core.statistics import count_all, group_sizes, numeric_errors, numeric_stats
from ...core.tables import Targets
from ...core.within_bin import shapes_from_targets
from ...declarations.spec import Spec
from ...declarations.targets import load_targets
from ...fitting.allocation import Allocation
from ...fitting.integerize import round_to_total
from ...fitting.joint_candidates import check_constraints, joint_records
from ...llm.base import LLMBackend, identity
from ...llm.none import without_model
from ...prior import prompts
from ...prior.copula import PairwisePrior
from ...prior.requesting import LLMUsage, Requester
from ...prior.tempering import ZERO_LIFT, PriorCheck, check_prior
from . import checkpoint, steps
from .finish import calibrate_over_records, remove_and_replace
from .proposal_pool import SOURCE, ProposalPool
from .result import IterationStats, ProgressCallback, SynthesisResult, diversity


class Synthesizer:
    """Discrepancy-guided synthesis of records that match ``spec``'s targets, with an LLM as the prior.

    Parameters
    ----------
    spec:
        The validated run specification (:func:`llmsynthor.declarations.spec.load_spec`); its targets may be files,
        inline cells or pandas DataFrames.
    llm:
        Any :class:`~llmsynthor.llm.base.LLMBackend`, e.g. :class:`~llmsynthor.llm.embedded.EmbeddedLLM`.
    targets:
        Pre-loaded targets; read from the spec when omitted.
    progress:
        Called after every iteration of :meth:`fit` with an :class:`IterationStats`.
    checkpoint_dir:
        Where the loop's state is saved after every iteration (removed by the CLI when the run completes).
    clock:
        Returns seconds; injected for tests.

    Attributes set by :meth:`fit`: ``pool_`` (the proposals), ``usage_`` (LLM calls, tokens, time),
    ``history_`` (one :class:`IterationStats` per iteration), ``prior_`` (the pairwise prior as scored,
    or None), ``prior_check_`` (with ``records: joint``: the strength its lifts are applied with, checked
    against the joint tables; :mod:`llmsynthor.prior.tempering`), ``dependencies_`` and ``notes_``.
    """

    def __init__(self, spec: Spec, llm: LLMBackend, *, targets: Targets | None = None,
                 progress: ProgressCallback | None = None, checkpoint_dir: Path | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.spec = spec
        self.llm = llm
        self.targets = targets if targets is not None else load_targets(spec)
        self.progress = progress
        self.checkpoint_dir = checkpoint_dir
        self.clock = clock
        self.constraints = parse_rules(spec, "constraints")
        if self.constraints and spec.synthesis.records == "proposals" and spec.synthesis.candidates <= 1:
            raise SpecError(Problem(f"{spec.source}: constraints", "constraints are enforced in the final calibration over "
                                    "records; expected synthesis.candidates > 1 or synthesis.records: joint"))
        self.shapes = shapes_from_targets(self.targets, spec.synthesis.within_bin)
        check_constraints(self.targets, self.constraints, self.shapes, spec.source)
        if without_model(llm) and (role := self._model_role()):
            raise SpecError(Problem(f"{spec.source}: llm.backend", f"none (a run without a model), but {role}; "
                                    "expected every variable in a target table and synthesis.records: joint"))
        self.requester = Requester(llm, spec.llm, spec.seed)
        self.facts = prompts.numeric_facts(self.targets, [group_sizes(self.targets, t) for t in self.targets.numeric])
        self.pool_: ProposalPool | None = None
        self.prior_: PairwisePrior | None = None  # the lifts as scored
        self.prior_check_: PriorCheck | None = None  # records: joint — how far they are trusted
        self.fitted_ = False

    def run(self, resume: bool = False) -> SynthesisResult:
        """:meth:`fit` (continuing from the checkpoint with ``resume``), then :meth:`sample` n records."""
        return self.fit(resume=resume).sample()

    # -- fit: grow the pool ------------------------------------------------------------------
    def fit(self, resume: bool = False) -> Synthesizer:
        """Grow the proposal pool with the LLM until its best allocation matches every target (or
        ``max_iterations``); with ``resume``, continue from the checkpoint in ``checkpoint_dir``."""
        s, targets, n = self.spec.synthesis, self.targets, self.targets.n
        started, self.fitted_ = self.clock(), False
        elapsed, first, done = self._start(resume)
        # a resumed run scores the prior again (from the cache, mostly); its first scoring is counted already
        usage = self.usage_ if first == 1 else LLMUsage()
        self.prior_ = self.pool_.prior = steps.pairwise_prior(self.requester, targets, s, usage, self.notes_)
        if s.records != "proposals":
            self.pool_.prior = self._calibrated_prior()
            if not done and not self._model_decides():
                self._skip_loop(elapsed + self.clock() - started)
                done = True
        counts = count_all(self.loop_records_, targets) if self.loop_records_ is not None else [np.zeros(t.shape) for t in targets]
        plan = None  # the pool's best allocation of the records still to draw; valid until the pool or the draws change
        for iteration in range(first, s.max_iterations + 1):
            if done:
                break
            it_started, llm_before, remaining = self.clock(), self.usage_.seconds, n - self._loop_size()
            gaps = [g.ravel() for g in deficits(targets, counts)]
            if plan is None and len(self.pool_):
                plan = self._plan(gaps, remaining)
            residual = [g - p for g, p in zip(gaps, plan.predicted)] if plan is not None else gaps
            new, failure = steps.extend_pool(self.requester, self.pool_, residual, iteration, self.rng_, s,
                                             self.dependencies_["given"] + self.dependencies_["inferred"], self.facts, self.usage_)
            if not len(self.pool_):
                attempts, text, error = failure or (0, None, "no focus cell to ask about")
                raise ProposalError(f"the LLM gave no usable proposal in the first iteration: {error}", attempts=attempts, last_response=text)
            if new or plan is None:
                plan = self._plan(gaps, remaining)
            planned = [c.ravel() + p for c, p in zip(counts, plan.predicted)]
            done = iteration == s.max_iterations or self._aligned(planned, plan)
            batch = min(remaining, math.ceil(n / s.max_iterations)) if s.draw == "every_iteration" and not done else 0
            drawn = self._draw_batch(plan, batch, counts)
            if drawn:
                plan = None  # the deficits and the caps changed
                done = done or self._loop_size() >= n
            worst_name, worst_value = worst_tvd(targets, counts)
            stats = IterationStats(iteration, self._loop_size(), n, worst_name, worst_value, new, len(self.pool_), drawn,
                                   max(tvd(c, t.counts) for c, t in zip(planned, targets)), self.usage_.seconds - llm_before,
                                   self.clock() - it_started)
            self.history_.append(stats)
            self._save(iteration, done, elapsed + self.clock() - started)
            if self.progress is not None:
                self.progress(stats)
        self.fit_seconds_, self.fitted_ = elapsed + self.clock() - started, True
        return self

    def _calibrated_prior(self) -> PairwisePrior | None:
        """records: joint — the scored prior checked against the joint tables and tempered (``prior_check_``)."""
        s, prior = self.spec.synthesis, self.prior_
        if prior is None:
            self.prior_check_ = PriorCheck(0.0, reason="no pairwise prior (see the notes): the tables are joined by "
                                                       "independence, as IPF would")
            return None
        axes = {name: lv.axis for name, lv in prior.levels.items()}
        check = check_prior(prior.checked, self.targets, axes)
        if s.prior_strength != "auto":
            check = replace(check, strength=float(s.prior_strength), zeros=False,
                            reason=f"set by synthesis.prior_strength (auto would choose {check.strength:g})")
        self.prior_check_ = replace(check, phrasing=prior.phrasing, phrasing_errors=dict(prior.phrasing_errors))
        return prior.tempered(check.strength, zeros=check.zeros, zero_lift=ZERO_LIFT)

    def _model_decides(self) -> bool:
        """Whether the LLM's proposals have something to decide (:meth:`_model_role`)."""
        return self._model_role() is not None

    def _model_role(self) -> str | None:
        """What the LLM's proposals decide in this run, or None: everything with ``records: proposals``;
        with ``records: both`` they are added always; with ``records: joint`` only a variable no table
        mentions (the joint model knows its domain alone) or the categories with ``pin: lead`` (a strong
        model chooses them). Said to a run without a model as the reason it cannot be."""
        s, mentioned = self.spec.synthesis, {v for t in self.targets for v in t.variables}
        if s.records != "joint":
            return f"synthesis.records: {s.records} asks for the model's proposals"
        if s.pin == "lead":
            return "synthesis.pin: lead lets the model choose the categories"
        unmentioned = [v for v in self.targets.schema.names if v not in mentioned]
        return f"no target table mentions {', '.join(unmentioned)}: the model would choose them" if unmentioned else None

    def _skip_loop(self, elapsed: float) -> None:
        """records: joint with nothing for the model to decide: no plan call; the checkpoint says the fit is done."""
        note = ("records: joint — every variable is in a table, so the tables and the prior decide the records: no plan "
                "call was made (records: both adds the LLM's proposals, e.g. for numeric ranges inside the tables' bins)")
        if note not in self.notes_:
            self.notes_.append(note)
        self._save(0, True, elapsed)

    def _start(self, resume: bool) -> tuple[float, int, bool]:
        """Set the loop's state, fresh or from the checkpoint: (seconds already spent, first iteration, loop done)."""
        targets, shapes = self.targets, self.shapes
        given = [t.variables for t in targets if len(t.variables) > 1]
        if resume:
            if self.checkpoint_dir is None:
                raise ValueError("resume needs a checkpoint_dir")
            state = checkpoint.load(self.checkpoint_dir, self.spec.digest(), targets.digests(), self._model_digest())
            self.rng_ = np.random.default_rng()
            self.rng_.bit_generator.state = state.rng_state
            self.usage_, self.pool_ = LLMUsage.from_dict(state.usage), ProposalPool.restore(targets, state.pool, shapes)
            self.history_, self.notes_ = [IterationStats(**h) for h in state.history], state.notes
            self.dependencies_, self.loop_records_ = {"given": given, "inferred": state.inferred}, state.records
            return state.elapsed, state.iteration + 1, state.fitted
        self.rng_, self.usage_, self.pool_ = np.random.default_rng(self.spec.seed), LLMUsage(), ProposalPool(targets, shapes)
        self.history_, self.loop_records_ = [], None
        self.notes_ = [f"inconsistent targets (synthesis.inconsistent_targets = proceed; a weighted compromise is fitted): {d.describe()}"
                       for d in targets.inconsistencies]
        needed = self._model_decides()  # only the plans use them
        inferred = steps.infer_dependencies(self.requester, targets, given, self.spec.synthesis, self.usage_) if needed else []
        self.dependencies_ = {"given": given, "inferred": inferred}
        return 0.0, 1, False

    def _loop_size(self) -> int:
        return 0 if self.loop_records_ is None else len(self.loop_records_)

    def _cap(self, n: int) -> int:
        return max(1, math.floor(self.spec.synthesis.max_proposal_share * n))

    def _plan(self, gaps: list[np.ndarray], remaining: int) -> Allocation:
        return self.pool_.fit(gaps, remaining, self._cap(self.targets.n), numeric_stats(self.loop_records_, self.targets))

    def _aligned(self, planned: list[np.ndarray], plan: Allocation) -> bool:
        return (all(t.aligned(c) for t, c in zip(self.targets, planned))
                and all(t.aligned(*st) for t, st in zip(self.targets.numeric, plan.numeric)))

    def _draw_batch(self, plan: Allocation, batch: int, counts: list[np.ndarray]) -> int:
        """Draw ``batch`` records by ``plan`` (the add-only schedule); update ``counts`` and the pool's draws."""
        whole = round_to_total(plan.counts, batch, self._cap(self.targets.n) - self.pool_.drawn)
        if not whole.any():
            return 0
        frame = self.pool_.draw(whole, self.rng_)
        self.loop_records_ = frame if self.loop_records_ is None else pd.concat([self.loop_records_, frame], ignore_index=True)
        for ti, c in enumerate(count_all(frame, self.targets)):
            counts[ti] += c
        self.pool_.drawn += whole
        return int(whole.sum())

    def _save(self, iteration: int, done: bool, elapsed: float) -> None:
        if self.checkpoint_dir is not None:
            checkpoint.save(self.checkpoint_dir, checkpoint.RunState(
                self.spec.digest(), iteration, self.rng_.bit_generator.state, self.pool_.dump(), self.usage_.as_dict(),
                [asdict(h) for h in self.history_], self.dependencies_["inferred"], self.notes_, elapsed, self.loop_records_,
                fitted=done, targets=self.targets.digests(), model=self._model_digest()))

    def _model_digest(self) -> str:
        """What a checkpoint's model must be: the backend's identity (model file sha256, or endpoint and model)."""
        return hashlib.sha256(json.dumps(identity(self.llm), sort_keys=True).encode()).hexdigest()

    # -- sample: records from the fitted pool --------------------------------------------------
    def sample(self, n: int | None = None, seed: int | None = None) -> SynthesisResult:
        """``n`` records (default: the targets' n; the targets are rescaled to it) drawn from the fitted
        pool and finished to match the targets; no LLM call, no change to the fitted state. ``seed``
        gives a fresh, reproducible draw; without it the run's own random stream goes on from where
        :meth:`fit` left it (so fit + sample equals :meth:`run`, and sample() gives the same records
        every time)."""
        if not self.fitted_:
            raise RuntimeError("call fit() before sample(); a fit that stopped with an error cannot be sampled")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
            raise SpecError(Problem("sample(n)", f"expected a whole number of records >= 1, got {n!r}"))
        started, s = self.clock(), self.spec.synthesis
        targets = self.targets.rescaled(int(n)) if n is not None else self.targets
        rng = copy.deepcopy(self.rng_) if seed is None else np.random.default_rng(seed)
        if s.records != "proposals":
            return self._sample_joint(targets, rng, started)
        own = seed is None and targets.n == self.targets.n and self.loop_records_ is not None  # the loop's draws count
        records, drawn, notes = self._draw_rest(targets, self.loop_records_ if own else None,
                                                self.pool_.drawn.copy() if own else np.zeros(len(self.pool_), np.int64), rng)
        calibration, cap = None, self._cap(targets.n)
        if s.candidates > 1 and len(records) == targets.n:
            records, drawn, calibration = calibrate_over_records(records, self.pool_, targets, s, rng, cap, self.constraints)
        elif s.remove_surplus:
            records, drawn, replaced = remove_and_replace(records, self.pool_, targets, drawn, rng, cap, targets.n / self.targets.n)
            if replaced:
                notes.append(f"remove and replace: {replaced} records taken back from over-represented cells and redrawn from the pool")
        records = records[targets.schema.names]
        records = records.iloc[rng.permutation(len(records))].reset_index(drop=True)  # drawn in blocks: shuffle
        return self._result(records, targets, drawn, calibration, notes, self.clock() - started)

    def _sample_joint(self, targets: Targets, rng: np.random.Generator, started: float) -> SynthesisResult:
        """records: joint — candidates from the prior-weighted pool raked to the targets (and, where the
        loop ran, n drawn from its proposals), of which the final calibration keeps n."""
        s, notes, prior = self.spec.synthesis, list(self.notes_), self.pool_.prior
        extra = None
        if len(self.pool_):
            extra, _, more = self._draw_rest(targets, None, np.zeros(len(self.pool_), np.int64), rng)
            notes = more
        lifts, zeros = (prior.lifts, prior.zeros) if prior is not None else ({}, {})
        records, pool, info = joint_records(targets, self.shapes, lifts, zeros, self.constraints, s.candidates, s.joint_pool,
                                            rng, extra)
        drawn = np.zeros(len(self.pool_), np.int64)
        if SOURCE in records:
            source = records[SOURCE].dropna().to_numpy(dtype=np.int64)
            drawn = np.bincount(source, minlength=len(self.pool_)).astype(np.int64)
        calibration = {**info, "joint_pool": pool.summary(), "constraints": [r.text for r in self.constraints]}
        records = records[targets.schema.names]
        return self._result(records, targets, drawn, calibration, notes, self.clock() - started)

    def _draw_rest(self, targets: Targets, records: pd.DataFrame | None, drawn: np.ndarray, rng: np.random.Generator):
        """Draw the records still missing by the pool's best allocation for ``targets``; lift the cap
        per proposal if the pool cannot hold them under it. Returns (all records, drawn, notes)."""
        n, notes = targets.n, list(self.notes_)
        remaining, cap, scale = n - (0 if records is None else len(records)), self._cap(n), n / self.targets.n
        counts = count_all(records, targets) if records is not None else [np.zeros(t.shape) for t in targets]
        gaps = [g.ravel() for g in deficits(targets, counts)]
        plan = self.pool_.fit(gaps, remaining, cap, numeric_stats(records, targets), scale=scale, drawn=drawn)
        whole = round_to_total(plan.counts, remaining, cap - drawn)
        if whole.sum() < remaining:
            notes.append(f"the pool's {len(self.pool_)} proposals could hold only {int(whole.sum())} of the {remaining} "
                         f"remaining records under max_proposal_share={self.spec.synthesis.max_proposal_share}; the cap was lifted")
            plan = self.pool_.fit(gaps, remaining, n, numeric_stats(records, targets), scale=scale, drawn=drawn)
            whole = round_to_total(plan.counts if plan.counts.sum() > 0 else np.ones(len(self.pool_)), remaining)
        fresh = self.pool_.draw(whole, rng)
        parts = [f for f in (records, fresh) if f is not None and len(f)]
        return (pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]), drawn + whole, notes

    def _result(self, records: pd.DataFrame, targets: Targets, drawn: np.ndarray, calibration: dict | None,
                notes: list[str], seconds: float) -> SynthesisResult:
        counts = count_all(records, targets)
        numeric = numeric_errors(records, targets)
        converged = (len(records) == targets.n and all(t.aligned(c.ravel()) for t, c in zip(targets, counts))
                     and all(e["max_relative_error"] <= t.tolerance for t, e in zip(targets.numeric, numeric.values())))
        return SynthesisResult(
            records=records, converged=bool(converged), history=list(self.history_), distances=table_distances(targets, counts),
            dependencies=self.dependencies_, usage=self.usage_, notes=notes, numeric=numeric, calibration=calibration,
            proposals=[dict(p.as_dict(), drawn=int(k), iteration=p.iteration) for p, k in zip(self.pool_.items, drawn)],
            pairwise_prior=self.prior_.strongest(12) if self.prior_ is not None else None,
            diversity=diversity(records, targets, counts, drawn), wall_seconds=self.fit_seconds_ + seconds,
            targets=targets.digests(), prior_check=self.prior_check_.as_dict() if self.prior_check_ is not None else None)
