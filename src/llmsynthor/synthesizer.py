"""The synthesis loop: discrepancy -> guidance -> LLM plan of proposals -> allocation -> records.

Each iteration

1. measures what is still missing: the deficit of every target cell, after the best use of the
   proposals gathered so far (so the LLM is asked for what the pool cannot yet express);
2. turns the largest of those deficits into guidance, one line per requested proposal;
3. asks the LLM for a plan of proposals under a JSON schema, validates and clamps each, and
   pins it into the cell it was asked to fill;
4. lets the allocator (bounded least squares, :mod:`llmsynthor.allocation`) decide how many
   records each proposal in the pool contributes, and draws a batch of records with the run's
   seeded RNG.

The loop stops when all ``n`` records are drawn. With ``draw: when_aligned`` (default) it only
grows the pool until the best allocation over it matches every table within tolerance (or
``max_iterations`` is reached) and then draws all records at once, so an early, poorly fitting
batch can never be locked in. ``draw: every_iteration`` is the paper's add-only schedule: a
batch of n / max_iterations records per iteration. The loop knows the LLM only through :class:`LLMBackend`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import checkpoint, prompts
from .allocation import integerize, solve
from .calibration import calibrate
from .copula import Conditionals, PairwisePrior, score_prior
from .discrepancy import deficits, table_distances, weighted_l1, worst_tvd
from .errors import BackendError, ProposalError
from .focus import plan_focus
from .llm.base import Completion, LLMBackend, can_score_options, identity
from .metrics import tvd
from .proposals import ParseReport, Proposal, draw, expected_value, parse_plan, pin, plan_schema, profile
from .replacement import surplus_records
from .shapes import ValueShape, shapes_from_targets
from .spec import Spec
from .statistics import count_all, group_sizes, group_sums, numeric_errors
from .targets import Targets, load_targets


@dataclass(frozen=True)
class IterationStats:
    """What one iteration did; the progress callback receives one per iteration."""

    iteration: int
    records: int
    n: int
    worst_table: str
    worst_tvd: float
    new_proposals: int
    pool: int
    drawn: int
    predicted_worst_tvd: float
    llm_seconds: float
    seconds: float


@dataclass
class LLMUsage:
    """Calls, tokens, time and validation outcomes of every LLM request in a run."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    invalid_responses: int = 0
    failed_steps: int = 0
    accepted_proposals: int = 0
    rejected: Counter = field(default_factory=Counter)
    corrected: Counter = field(default_factory=Counter)
    option_scorings: int = 0  # questions scored for the pairwise prior, one per context level (not in ``calls``)

    def add(self, completion: Completion) -> None:
        self.calls += 1
        self.cache_hits += int(completion.cached)
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.seconds += completion.seconds

    def absorb(self, report: ParseReport) -> None:
        self.accepted_proposals += report.accepted
        self.rejected.update(report.rejected)
        self.corrected.update(report.corrected)

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "invalid_responses": self.invalid_responses,
            "failed_steps": self.failed_steps,
            "accepted_proposals": self.accepted_proposals,
            "rejected_proposals_by_reason": dict(self.rejected),
            "corrections_by_reason": dict(self.corrected),
            "option_scorings": self.option_scorings,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LLMUsage:
        return cls(data["calls"], data["cache_hits"], data["prompt_tokens"], data["completion_tokens"], data["seconds"],
                   data["invalid_responses"], data["failed_steps"], data["accepted_proposals"],
                   Counter(data["rejected_proposals_by_reason"]), Counter(data["corrections_by_reason"]),
                   data.get("option_scorings", 0))


@dataclass
class _Answer:
    """One LLM step, its attempts and what validation said of each; merged into the usage in order."""

    value: object = None
    failure: tuple | None = None
    completions: list[Completion] = field(default_factory=list)
    reports: list[ParseReport] = field(default_factory=list)

    def charge(self, usage: LLMUsage) -> None:
        for completion in self.completions:
            usage.add(completion)
        for report in self.reports:
            usage.absorb(report)
        usage.invalid_responses += len(self.completions) - (self.failure is None)
        usage.failed_steps += self.failure is not None


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
    pairwise_prior: list[dict] | None = None  # the strongest lifts the model gave (see llmsynthor.copula)
    diversity: dict = field(default_factory=dict)  # distinct records, proposals used, entropy per table
    numeric: dict[str, dict[str, float]] = field(default_factory=dict)  # relative errors of sum/mean targets
    calibration: dict | None = None  # what the final calibration over records did (llmsynthor.calibration)

    @property
    def worst_tvd(self) -> float:
        return max((d["tvd"] for d in self.distances.values()), default=0.0)


ProgressCallback = Callable[[IterationStats], None]
_SOURCE = "__proposal"  # internal column: which proposal a drawn record came from


class ProposalPool:
    """Every distinct proposal gathered so far, its profile in every table, and records drawn."""

    def __init__(self, targets: Targets, shapes: dict[str, ValueShape] | None = None):
        self.targets = targets
        self.shapes = shapes
        self.prior: PairwisePrior | None = None  # set once scored; makes implausible proposals costly
        self._penalty: list[float] = []  # the prior's penalty of items[:len(_penalty)]
        self.items: list[Proposal] = []
        self._keys: set = set()
        self._columns: list[list[np.ndarray]] = [[] for _ in targets]
        self._numeric: list[tuple[list[np.ndarray], list[float]]] = [([], []) for _ in targets.numeric]
        self._group_sizes = [group_sizes(targets, t) for t in targets.numeric]
        self._split_vars = list(dict.fromkeys(t.variable for t in targets.numeric))
        self.drawn = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, proposal: Proposal, split: bool = True) -> bool:
        """Add a proposal unless an identical one is already in the pool. With sum/mean targets, also
        add its lower and upper half for each variable they concern (records from a half still lie in
        the proposal's range), so the allocator can move a mean without leaving the tables' bins."""
        if not self._add(proposal):
            return False
        for name in self._split_vars if split else ():
            lo, hi = proposal.ranges[name]
            integer = self.targets.schema[name].type == "integer"
            if hi - lo < (1 if integer else 1e-9):
                continue
            mid = self._median(name, lo, hi)
            lower, upper = ((lo, np.floor(mid)), (np.floor(mid) + 1, hi)) if integer else ((lo, mid), (mid, hi))
            if integer and not lo <= lower[1] < upper[0] <= hi:
                lower, upper = (lo, lo), (lo + 1, hi)
            for part in (lower, upper):
                self._add(replace(proposal, ranges={**proposal.ranges, name: (float(part[0]), float(part[1]))}))
        return True

    def _median(self, name: str, lo: float, hi: float) -> float:
        shape = (self.shapes or {}).get(name)
        if shape is None:
            return 0.5 * (lo + hi)
        return float(shape.sample(lo, hi, np.array([0.5]))[0])

    def _add(self, proposal: Proposal) -> bool:
        if proposal.key() in self._keys:
            return False
        self._keys.add(proposal.key())
        self.items.append(proposal)
        for columns, table in zip(self._columns, self.targets):
            columns.append(profile(proposal, table, self.targets.schema, self.shapes))
        for (shares, means), target in zip(self._numeric, self.targets.numeric):
            shares.append(profile(proposal, target, self.targets.schema, self.shapes))
            means.append(expected_value(proposal, target.variable, self.targets.schema, self.shapes))
        self.drawn = np.append(self.drawn, 0)
        return True

    def fit(self, gaps: list[np.ndarray], total: int, cap: int, drawn_stats: list[tuple[np.ndarray, np.ndarray]] | None = None,
            scale: float = 1.0, drawn: np.ndarray | None = None):
        """The best allocation of ``total`` more records over the pool (see :func:`allocation.solve`);
        ``drawn_stats`` are (records, sum) per group of each numeric target among the records drawn;
        ``drawn``: records already taken from each proposal (default ``self.drawn``), counted against ``cap``;
        ``scale``: the records describe ``scale`` times the targets' population (sums and group sizes
        grow with it; ``gaps`` are given at that scale already)."""
        profiles = [np.column_stack(c) if c else np.zeros((t.counts.size, 0)) for c, t in zip(self._columns, self.targets)]
        penalty = None
        if self.prior is not None:  # computed once per proposal, not on every fit
            self._penalty += [self.prior.penalty(p.values, p.ranges) for p in self.items[len(self._penalty):]]
            penalty = np.array(self._penalty)
        drawn_stats = drawn_stats or [(np.zeros(t.shape), np.zeros(t.shape)) for t in self.targets.numeric]
        extra, numeric = [], []
        for (shares, means), target, size, (have_n, have_sum) in zip(self._numeric, self.targets.numeric, self._group_sizes, drawn_stats):
            S = np.column_stack(shares) if shares else np.zeros((max(1, int(np.prod(target.shape))), 0))
            m = np.asarray(means, dtype=float)
            want = np.isfinite(target.values.ravel())
            v, cur_n, cur_sum = target.values.ravel()[want], have_n.ravel()[want], have_sum.ravel()[want]
            if target.statistic == "sum":  # Σ_p c_p s_pg m_p = V_g − drawn sum, relative to V_g
                v = v * scale
                rows, rhs = (S[want] * m) / np.abs(v)[:, None], (v - cur_sum) / np.abs(v)
            else:  # Σ_p c_p s_pg (m_p − V_g) = −(drawn sum − V_g · drawn records), relative to V_g · N_g
                norm = np.abs(v) * size.ravel()[want] * scale
                rows, rhs = S[want] * (m[None, :] - v[:, None]) / norm[:, None], -(cur_sum - v * cur_n) / norm
            extra.append((np.sqrt(target.weight) * rows, np.sqrt(target.weight) * rhs))
            numeric.append((S, S * m))
        alloc = solve(profiles, gaps, [t.weight for t in self.targets], total, cap - (self.drawn if drawn is None else drawn), penalty, extra)
        predicted = [(n0 + (S @ alloc.counts).reshape(n0.shape), s0 + (Sm @ alloc.counts).reshape(s0.shape))
                     for (S, Sm), (n0, s0) in zip(numeric, drawn_stats)]
        return replace(alloc, numeric=predicted)

    def dump(self) -> list[dict]:
        return [{"values": p.values, "ranges": {k: list(v) for k, v in p.ranges.items()}, "num": p.num,
                 "iteration": p.iteration, "drawn": int(k)} for p, k in zip(self.items, self.drawn)]

    @classmethod
    def restore(cls, targets: Targets, items: list[dict], shapes: dict[str, ValueShape] | None = None) -> ProposalPool:
        pool = cls(targets, shapes)
        for item in items:
            pool.add(Proposal(item["values"], {k: tuple(v) for k, v in item["ranges"].items()}, item["num"], item["iteration"]), split=False)
        pool.drawn = np.array([item["drawn"] for item in items], dtype=np.int64)
        return pool


class Synthesizer:
    """Discrepancy-guided synthesis of ``spec.n_records`` records with an LLM as the prior.

    Parameters
    ----------
    spec:
        The validated run specification (:func:`llmsynthor.spec.load_spec`).
    llm:
        Any :class:`~llmsynthor.llm.base.LLMBackend`, e.g. :class:`~llmsynthor.llm.embedded.EmbeddedLLM`.
    targets:
        Pre-loaded targets; read from the spec when omitted.
    progress:
        Called after every iteration with an :class:`IterationStats`.
    checkpoint_dir:
        Where the run's state is saved after every iteration (removed when the run completes).
    clock:
        Returns seconds; injected for tests.
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
        self.records_: pd.DataFrame | None = None
        self.prior: PairwisePrior | None = None
        self.facts = prompts.numeric_facts(self.targets, [group_sizes(self.targets, t) for t in self.targets.numeric])

    def run_digest(self) -> str:
        """Identifies what a checkpoint may be resumed with: the spec (seed included) and the model."""
        return checkpoint_digest(self.spec, self.llm)

    # -- LLM steps -------------------------------------------------------------------------
    def _seed(self, iteration: int, request: int, attempt: int) -> int:
        """Decoding seed of one request: fixed by the run seed and the request's place in the run,
        not by timing or by how many calls came before, so concurrent and resumed runs agree."""
        return int(np.random.SeedSequence([self.spec.seed, iteration, request, attempt]).generate_state(1)[0] % (2**31 - 1))

    def _ask(self, messages, schema, max_tokens: int, parse, iteration: int, request: int) -> _Answer:
        """One LLM step with bounded retries on unusable output; touches no shared state.

        ``parse(text)`` returns (value, error, report or None).
        """
        settings = self.spec.llm
        answer = _Answer()
        for attempt in range(settings.max_retries + 1):
            completion = self.llm.complete_json(messages, schema, max_tokens=max_tokens, temperature=settings.temperature,
                                                seed=self._seed(iteration, request, attempt))
            answer.completions.append(completion)
            value, error, report = parse(completion.text)
            if report is not None:
                answer.reports.append(report)
            if error is None:
                answer.value = value
                return answer
        answer.failure = (len(answer.completions), completion.text, error)
        return answer

    def _infer_dependencies(self, usage: LLMUsage) -> list[list[str]]:
        s = self.spec.synthesis
        given = [t.variables for t in self.targets if len(t.variables) > 1]
        if not s.infer_dependencies or s.max_dependency_groups == 0:
            return []
        schema = self.spec.record_schema
        given_sets = [frozenset(g) for g in given]

        def parse(text):
            try:
                groups = json.loads(text).get("groups", [])
            except (json.JSONDecodeError, AttributeError):
                return None, "not a JSON object with 'groups'", None
            out, seen = [], set(given_sets)
            for g in groups if isinstance(groups, list) else []:
                if not isinstance(g, list):
                    continue
                names = [v for v in dict.fromkeys(g) if v in schema.variables]
                key = frozenset(names)
                if len(names) >= 2 and key not in seen:
                    seen.add(key)
                    out.append(names)
            return out[: s.max_dependency_groups], None, None

        messages = prompts.dependency_messages(schema, given, s.max_dependency_groups)
        answer = self._ask(messages, prompts.dependency_schema(schema, s.max_dependency_groups), 120, parse, 0, 0)
        answer.charge(usage)
        return answer.value or []

    def _replace_surplus(self, frames: list[pd.DataFrame], counts: list[np.ndarray], pool: ProposalPool,
                         rng: np.random.Generator, cap: int, rounds: int = 4) -> int:
        """Remove and replace, after the last draw: take back records whose removal lowers the tables'
        weighted L1 discrepancy (:mod:`llmsynthor.replacement`), redraw as many from the pool's best
        allocation for the deficits left, and keep a round only if it helped. No LLM call; every
        record still comes from a proposal. Updates ``frames``, ``counts`` and ``pool.drawn``."""
        targets, schema, total = self.targets, self.spec.record_schema, 0
        for _ in range(rounds):
            records = frames[0]
            if _SOURCE not in records:
                break  # records restored from an older checkpoint do not say where they came from
            rows = surplus_records(records, targets, counts, rng)
            if not rows.size:
                break
            taken = records.iloc[rows]
            trial_counts = [c - t for c, t in zip(counts, count_all(taken, targets))]
            drawn = pool.drawn.copy()
            np.subtract.at(drawn, taken[_SOURCE].to_numpy(dtype=np.int64), 1)
            gaps = [g.ravel() for g in deficits(targets, trial_counts)]
            fit = pool.fit(gaps, rows.size, cap, _numeric_stats(records.drop(records.index[rows]), targets), drawn=drawn)
            whole = integerize(fit.counts, rows.size, cap - drawn)
            if whole.sum() < rows.size:
                break
            fresh = pd.concat([draw(p, int(k), schema, rng, pool.shapes).assign(**{_SOURCE: i})
                               for i, (p, k) in enumerate(zip(pool.items, whole)) if k > 0], ignore_index=True)
            trial_counts = [c + f for c, f in zip(trial_counts, count_all(fresh, targets))]
            trial = pd.concat([records.drop(records.index[rows]), fresh], ignore_index=True)
            worse_numeric = any(after["max_relative_error"] > max(before["max_relative_error"], t.tolerance)
                                for t, before, after in zip(targets.numeric, numeric_errors(records, targets).values(),
                                                            numeric_errors(trial, targets).values()))
            if weighted_l1(targets, deficits(targets, trial_counts)) >= weighted_l1(targets, deficits(targets, counts)) or worse_numeric:
                break
            frames[0] = trial
            counts[:] = trial_counts
            pool.drawn = drawn + whole
            total += int(rows.size)
        return total

    def _calibrate(self, frames: list[pd.DataFrame], pool: ProposalPool, rng: np.random.Generator, cap: int) -> dict:
        """Final calibration over records (:mod:`llmsynthor.calibration`): the n records the loop drew,
        plus (candidates − 1)·n drawn from the same proposals with their values spread over other
        categories and bins (:meth:`llmsynthor.copula.Conditionals.spread`); keep the n that match
        the targets best.
        No LLM call; every record still comes from a proposal. Updates ``frames`` and ``pool.drawn``."""
        s, targets, schema, n = self.spec.synthesis, self.targets, self.spec.record_schema, self.targets.n
        extra = int(round((s.candidates - 1) * n))
        # values inside a range or bin follow the loop's own draws (the model's ranges within each bin)
        shapes = {v: ValueShape.empirical(frames[0][v].to_numpy(), schema[v].min, schema[v].top, schema[v].type == "integer")
                  for v in pool.shapes or {}}
        soft = ProposalPool(targets, shapes)
        soft.prior = pool.prior
        conditionals = Conditionals.build(targets, self.prior) if s.spread > 0 else None
        for p in pool.items:  # same order, so a candidate's source is the same index in both pools
            soft.add(replace(p, spread=conditionals.spread(p.values, p.ranges, s.spread)) if conditionals else p, split=False)
        scale, extra_cap = extra / n, math.ceil(cap * extra / n)
        fit = soft.fit([t.counts.ravel() * scale for t in targets], extra, extra_cap, scale=scale)
        whole = integerize(fit.counts, extra, np.full(len(soft), extra_cap))
        drawn = [draw(p, int(k), schema, rng, soft.shapes).assign(**{_SOURCE: i}) for i, (p, k) in enumerate(zip(soft.items, whole)) if k > 0]
        candidates = pd.concat([frames[0], *drawn], ignore_index=True)
        sources = candidates[_SOURCE].to_numpy(dtype=np.int64)
        caps = np.maximum(cap, np.bincount(sources[:len(frames[0])], minlength=len(pool)))  # never stricter than the loop was
        result = calibrate(candidates, targets, n, rng, sources=sources, cap=caps)
        frames[0] = candidates.iloc[result.keep].reset_index(drop=True)
        pool.drawn = np.bincount(sources[result.keep], minlength=len(pool)).astype(np.int64)
        return {**result.as_dict(), "spread": s.spread, "from_loop": int((result.keep < n).sum())}

    def _score_prior(self, usage: LLMUsage, notes: list[str]) -> PairwisePrior | None:
        """The pairwise prior (:mod:`llmsynthor.copula`), if asked for and the backend can score options."""
        if not self.spec.synthesis.pairwise_prior or self.spec.synthesis.pin != "targets":
            return None
        if not can_score_options(self.llm):
            note = (f"{self.llm.name} gives no token probabilities: focus cells of different tables are combined "
                    "by deficit alone (no pairwise prior)")
            if note not in notes:  # a resumed run has it already
                notes.append(note)
            return None

        def charge(choice):  # counted apart from calls and their cache hits
            usage.option_scorings += 1
            usage.prompt_tokens += choice.prompt_tokens
            usage.seconds += choice.seconds

        try:
            return score_prior(self.targets, self.llm, self.spec.record_schema, on_call=charge)
        except BackendError as exc:
            if not any(n.startswith("pairwise prior skipped") for n in notes):
                notes.append(f"pairwise prior skipped: {exc}")
            return None

    def _extend_pool(self, pool: ProposalPool, residual: list[np.ndarray], iteration: int,
                     rng: np.random.Generator, dependencies: list[list[str]], usage: LLMUsage):
        """Ask the LLM for proposals that fill the largest residual deficits; add them to the pool.

        With ``parallel_requests`` > 1 several plans, each for its own focus cells, are in flight
        at once (up to ``llm.concurrency``); their answers are applied in request order.
        Returns (proposals added, failure of the first request or None).
        """
        schema, s = self.spec.record_schema, self.spec.synthesis
        shaped = [r.reshape(t.shape) for r, t in zip(residual, self.targets)]
        focus = plan_focus(self.targets, shaped, s.proposals_per_call * s.parallel_requests, rng, s.pin, self.prior)
        chunks = [focus[i:i + s.proposals_per_call] for i in range(0, len(focus), s.proposals_per_call)]
        if not chunks:
            return 0, None

        def request(index: int, chunk: list):
            # categoricals every focus fixes are set by the system, not generated
            fixed_vars = frozenset.intersection(*(frozenset(f.values) for f in chunk))
            fixed = [dict(f.values) for f in chunk]
            free = [v for v in schema.names if v not in fixed_vars]

            def parse(text):
                items, report, error = parse_plan(text, schema, iteration, fixed)
                return items, error, report

            return self._ask(prompts.plan_messages(schema, chunk, free, dependencies, self.facts),
                             plan_schema(schema, len(chunk), omit=fixed_vars),
                             30 + len(chunk) * (12 + 12 * len(free)), parse, iteration, index)

        workers = min(self.spec.llm.concurrency, len(chunks))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as executor:
                answers = list(executor.map(request, range(len(chunks)), chunks))
        else:
            answers = [request(i, c) for i, c in enumerate(chunks)]

        added = 0
        report = ParseReport()  # what pinning and de-duplication changed
        for answer, chunk in zip(answers, chunks):
            answer.charge(usage)
            for index, proposal in answer.value or []:
                if index < len(chunk):
                    proposal = pin(proposal, chunk[index], schema, report)
                if pool.add(proposal):
                    added += 1
                else:
                    report.corrected["duplicate of an earlier proposal, skipped"] += 1
        usage.absorb(report)
        return added, answers[0].failure

    # -- the loop --------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SynthesisResult:
        """Run the loop; with ``resume``, continue from the checkpoint in ``checkpoint_dir``."""
        spec, targets, s = self.spec, self.targets, self.spec.synthesis
        schema = spec.record_schema
        started = self.clock()
        n = targets.n
        cap = max(1, math.floor(s.max_proposal_share * n))
        given = [t.variables for t in targets if len(t.variables) > 1]
        shapes = shapes_from_targets(targets, s.within_bin)

        if resume:
            if self.checkpoint_dir is None:
                raise ValueError("resume needs a checkpoint_dir")
            state = checkpoint.load(self.checkpoint_dir, self.run_digest())
            rng = np.random.default_rng()
            rng.bit_generator.state = state.rng_state
            usage = LLMUsage.from_dict(state.usage)
            pool = ProposalPool.restore(targets, state.pool, shapes)
            history = [IterationStats(**h) for h in state.history]
            inferred, notes, first, elapsed = state.inferred, state.notes, state.iteration + 1, state.elapsed
            frames = [state.records] if state.records is not None else []
        else:
            rng = np.random.default_rng(spec.seed)
            usage, pool, history, first, elapsed, frames = LLMUsage(), ProposalPool(targets, shapes), [], 1, 0.0, []
            notes = [f"inconsistent targets (synthesis.inconsistent_targets = proceed; a weighted compromise is fitted): {d.describe()}"
                     for d in targets.inconsistencies]
            inferred = self._infer_dependencies(usage)
        self.prior = pool.prior = self._score_prior(usage, notes)
        counts = count_all(frames[0], targets) if frames else [np.zeros(t.shape) for t in targets]
        remaining = n - sum(len(f) for f in frames)
        self.records_ = frames[0] if frames else None

        fit = None  # the pool's best allocation; valid until the pool or the draws change
        for iteration in range(first, s.max_iterations + 1):
            if remaining <= 0:
                break
            it_started, llm_before = self.clock(), usage.seconds
            gaps = [g.ravel() for g in deficits(targets, counts)]
            if fit is None and len(pool):
                fit = pool.fit(gaps, remaining, cap, _numeric_stats(frames[0] if frames else None, targets))
            # ask for what the pool cannot yet express: the deficit left by its best allocation
            residual = [g - p for g, p in zip(gaps, fit.predicted)] if fit is not None else gaps
            new, failure = self._extend_pool(pool, residual, iteration, rng, given + inferred, usage)
            if not len(pool):
                attempts, text, error = failure or (0, None, "no deficit to ask about")
                raise ProposalError(f"the LLM gave no usable proposal in the first iteration: {error}",
                                    attempts=attempts, last_response=text)

            if new or fit is None:
                fit = pool.fit(gaps, remaining, cap, _numeric_stats(frames[0] if frames else None, targets))
            planned = [c.ravel() + p for c, p in zip(counts, fit.predicted)]
            predicted = max(tvd(c, t.counts) for c, t in zip(planned, targets))
            last = iteration == s.max_iterations or (all(t.aligned(c) for t, c in zip(targets, planned))
                                                     and all(t.aligned(*st) for t, st in zip(targets.numeric, fit.numeric)))
            if last:
                batch = remaining
            elif s.draw == "every_iteration":  # the paper's add-only schedule
                batch = min(remaining, math.ceil(n / s.max_iterations))
            else:
                batch = 0  # keep growing the pool; draw once the plan fits
            whole = integerize(fit.counts, batch, cap - pool.drawn)
            if last and whole.sum() < remaining:
                notes.append(
                    f"iteration {iteration}: the pool's {len(pool)} proposals could hold only {int(whole.sum())} of the "
                    f"{remaining} remaining records under max_proposal_share={s.max_proposal_share}; the cap was lifted"
                )
                fit = pool.fit(gaps, remaining, n, _numeric_stats(frames[0] if frames else None, targets))  # without the cap
                whole = integerize(fit.counts if fit.counts.sum() > 0 else np.ones(len(pool)), remaining)
            batch_frames = [draw(p, int(k), schema, rng, pool.shapes).assign(**{_SOURCE: i})
                            for i, (p, k) in enumerate(zip(pool.items, whole)) if k > 0]
            if batch_frames:
                frame = pd.concat(batch_frames, ignore_index=True)
                frames = [pd.concat(frames + [frame], ignore_index=True)]
                for ti, c in enumerate(count_all(frame, targets)):
                    counts[ti] += c
                self.records_ = frames[0]
            pool.drawn += whole
            remaining -= int(whole.sum())
            if whole.any():
                fit = None  # the deficits and the caps changed

            worst_name, worst_value = worst_tvd(targets, counts)
            stats = IterationStats(iteration, n - remaining, n, worst_name, worst_value, new, len(pool),
                                   int(whole.sum()), float(predicted), usage.seconds - llm_before,
                                   self.clock() - it_started)
            history.append(stats)
            if self.checkpoint_dir is not None:
                checkpoint.save(self.checkpoint_dir, checkpoint.RunState(
                    self.run_digest(), iteration, rng.bit_generator.state, pool.dump(), usage.as_dict(),
                    [asdict(h) for h in history], inferred, notes, elapsed + self.clock() - started, self.records_))
            if self.progress is not None:
                self.progress(stats)

        calibration = None
        if s.candidates > 1 and frames and remaining == 0 and _SOURCE in frames[0]:
            calibration = self._calibrate(frames, pool, rng, cap)
            counts[:] = count_all(frames[0], targets)
        replaced = self._replace_surplus(frames, counts, pool, rng, cap) if s.remove_surplus and frames and calibration is None else 0
        if replaced:
            notes.append(f"remove and replace: {replaced} records taken back from over-represented cells and redrawn from the pool")
        records = frames[0][schema.names] if frames else pd.DataFrame(columns=schema.names)
        records = records.iloc[rng.permutation(len(records))].reset_index(drop=True)  # drawn in blocks: shuffle
        self.records_ = records
        distances = table_distances(targets, counts)
        numeric = numeric_errors(records, targets)
        converged = (remaining == 0 and all(t.aligned(c.ravel()) for t, c in zip(targets, counts))
                     and all(e["max_relative_error"] <= t.tolerance for t, e in zip(targets.numeric, numeric.values())))
        return SynthesisResult(
            records=records,
            converged=bool(converged),
            history=history,
            distances=distances,
            dependencies={"given": given, "inferred": inferred},
            pairwise_prior=self.prior.strongest(12) if self.prior is not None else None,
            numeric=numeric,
            calibration=calibration,
            diversity=_diversity(records, targets, counts, pool.drawn),
            usage=usage,
            proposals=[dict(p.as_dict(), drawn=int(k), iteration=p.iteration) for p, k in zip(pool.items, pool.drawn)],
            wall_seconds=elapsed + self.clock() - started,
            notes=notes,
        )


def _numeric_stats(records: pd.DataFrame | None, targets: Targets) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(records, sum) per group of every numeric target among ``records``."""
    if records is None or not targets.numeric:
        return None
    return [group_sums(records, t) for t in targets.numeric]


def _diversity(records: pd.DataFrame, targets: Targets, counts: list[np.ndarray], drawn: np.ndarray) -> dict:
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


def checkpoint_digest(spec: Spec, llm: LLMBackend) -> str:
    """A checkpoint may only be resumed with the same spec content (seed included) and model."""
    return hashlib.sha256((spec.digest() + json.dumps(identity(llm), sort_keys=True)).encode()).hexdigest()
