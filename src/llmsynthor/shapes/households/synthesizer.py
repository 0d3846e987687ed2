"""Households with their persons: compositions from the LLM once for the region, then every zone balanced.

:meth:`HouseholdSynthesizer.fit`

1. asks the LLM for ``synthesis.compositions`` households (:mod:`.compose`): two thirds spread over
   the household sizes the tables give (√ of each size's share, so rare large households are asked
   for too), the rest for the cells the first pool supplies worst — the cells list balancing has to
   stretch its candidates most to meet (the LLMSynthor loop's deficit guidance, at household level);
2. with ``household_values: scored``, reads each categorical household value again from the
   model's token probabilities given the members (:func:`.compose.value_question`);
3. makes them concrete (:mod:`.candidates`: ``variants`` candidates per composition, plus filler
   candidates — the model's members with other household values — and independent ones — the
   tables only, drawn until every control is in reach — at small prior weights), leaving out every
   candidate that breaks one of the spec's ``constraints`` (:mod:`.constraints`, checked against
   the tables before any LLM call);
4. balances the pool to the region's tables (list balancing, :mod:`llmsynthor.fitting.balance`): the region weights;
   while a table misses its tolerance there, more independent candidates and balancing anew.

:meth:`HouseholdSynthesizer.sample` shares the region-only tables out among the zones
(:func:`.balance.apportion`), balances every zone to its own tables and its share, starting from
the region weights, and integerizes (no LLM call; locally, in processes or on Ray, byte-identical
whatever the executor), then writes linked households and persons with ids.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ...core.errors import Problem, SpecError
from ...core.levels import repeat_candidates
from ...core.metrics import tvd
from ...fitting.balance import BalanceResult, ZoneBalance, apportion, balance_zones, list_balance, unreachable
from ...fitting.integerize import round_to_total
from ...llm.base import LLMBackend, can_score_options, continues_answers, score_options
from ...llm.none import without_model
from ...prior.prompts import LETTERS
from ...prior.requesting import Answer, LLMUsage, Requester
from .candidates import COMPOSITION, MEMBER, SOURCES, Candidates, combine, expand, fillers, independent, reference_marker
from .compose import (
    Composition,
    Kind,
    composition_messages,
    composition_schema,
    max_tokens,
    parse_composition,
    scored_variables,
    value_question,
)
from .constraints import check_constraints, enforce
from .controls import (
    HOUSEHOLD,
    HOUSEHOLDS,
    PERSONS,
    HouseholdTargets,
    LevelTable,
    control_cells,
    describe_cells,
    incidence,
    linked,
    load_controls,
)
from .spec import HouseholdSpec

TOP_UPS = 3  # rounds of more independent candidates while a table misses its tolerance at the region
MIN_KEPT = 0.1  # draw at most 10× the independent candidates a top-up wants, whatever the constraints leave out
FIRST_ROUND = 2 / 3  # share of the compositions spread over the sizes; the rest go to the worst supplied cells
REGION = "region"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class HouseholdResult:
    """Linked households and persons, and what producing them took."""

    households: pd.DataFrame  # household_id, zone, household variables, derived counts
    persons: pd.DataFrame  # household_id, person_id, member, person variables
    usage: LLMUsage
    compositions: int  # accepted
    requests: int
    region: BalanceResult
    zones: dict[str, ZoneBalance]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # output households by the kind of candidate they copy
    constraints: dict = field(default_factory=dict)  # the constraints and the candidates they left out, by source
    unreachable: list[dict] = field(default_factory=list)  # control cells no candidate reaches (controls.control_cells)


def _size_shares(spec: HouseholdSpec, targets: HouseholdTargets) -> dict[int, float]:
    """Share of households of every size, from the finest household table with the size (a bin's
    share spread over its sizes, halving with each step up); 1–4 alike when no table has it."""
    size = spec.household.size
    tables = [t for t in targets if t.level == HOUSEHOLDS.name and size in t.variables]
    if not tables:
        return {s: 0.25 for s in range(int(spec.size_variable.min), int(spec.size_variable.min) + 4)}
    table = max(tables, key=lambda t: t.axes[t.variables.index(size)].size)
    i = table.variables.index(size)
    axis = table.axes[i]
    margin = table.region.sum(axis=tuple(j for j in range(len(table.axes)) if j != i))
    margin = margin / margin.sum()
    out: dict[int, float] = {}
    for b in range(axis.size):
        lo = int(axis.edges[b])
        hi = int(spec.size_variable.max) if b == axis.size - 1 else int(axis.edges[b + 1]) - 1
        steps = 0.5 ** np.arange(hi - lo + 1)
        for s, w in zip(range(lo, hi + 1), steps / steps.sum()):
            if margin[b] * w > 0:
                out[s] = float(margin[b] * w)
    return out


def size_kinds(spec: HouseholdSpec, targets: HouseholdTargets, count: int) -> list[Kind]:
    """``count`` kinds over the sizes of ≥ 1 % share, allocated by √ share, interleaved (the first requests cover every size)."""
    shares = {s: p for s, p in _size_shares(spec, targets).items() if p >= 0.01} or _size_shares(spec, targets)
    sizes = sorted(shares)
    weights = np.sqrt([shares[s] for s in sizes])
    alloc = round_to_total(weights, count)
    queues = [[s] * int(a) for s, a in zip(sizes, alloc)]
    out: list[Kind] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(Kind(q.pop()))
    return out


def _cell_values(table: LevelTable, flat: int, spec: HouseholdSpec) -> list[tuple[str, object]]:
    """(variable, label or (lo, hi)) of one cell of ``table``."""
    index = np.unravel_index(flat, table.shape)
    out = []
    for axis, i in zip(table.axes, index):
        if axis.is_numeric:
            var = spec.joined_schema.variables[axis.variable]
            last = i == axis.size - 1
            hi = float(var.max) if last else float(axis.edges[i + 1]) - (1 if var.type == "integer" else 0)
            out.append((axis.variable, (float(axis.edges[i]), hi)))
        else:
            out.append((axis.variable, axis.labels[i]))
    return out


def deficit_kinds(spec: HouseholdSpec, targets: HouseholdTargets, matrix, prior: np.ndarray, count: int,
                  rng: np.random.Generator) -> list[Kind]:
    """Kinds for the ``count`` cells the pool supplies worst: a cell's target against what the prior
    weights (scaled to the households) give it, scored target × log(ratio); unreachable cells first."""
    if count <= 0:
        return []
    region = targets.region_vector()
    supplied = np.asarray(matrix.T @ (prior * targets.households / prior.sum())).ravel()
    ratio = np.minimum(region / np.maximum(supplied, 1e-9), 1e6)
    score = np.where((region > 0.5) & (ratio > 1.5), region * np.log(np.maximum(ratio, 1.0)), 0.0)
    order = [j for j in np.argsort(-score, kind="stable") if score[j] > 0][:count]
    if not order:
        return []
    offsets = targets.offsets()
    sizes, shares = zip(*sorted(_size_shares(spec, targets).items()))
    marker = reference_marker(spec)
    kinds = []
    for j in (order * count)[:count]:
        t = int(np.searchsorted(offsets, j, side="right") - 1)
        table = targets.tables[t]
        values = _cell_values(table, j - offsets[t], spec)
        household = [(n, v) for n, v in values if n in spec.household.variables and n != spec.household.size]
        person = tuple((n, v) for n, v in values if n in spec.person.variables)
        size_range = dict(values).get(spec.household.size)
        # a member who is not the reference person needs one who is: two members at least
        smallest = 2 if marker is not None and any(n == marker[0] and str(v) != marker[1] for n, v in person) else 1
        possible = [s for s in sizes if s >= smallest] or list(sizes)
        allowed = [s for s in possible if size_range is None or size_range[0] <= s <= size_range[1]] or possible
        p = np.array([shares[sizes.index(s)] for s in allowed])
        size = int(rng.choice(allowed, p=p / p.sum()))
        derived = [(n, v) for n, v in values if n in spec.derived]  # told to the model; its members decide them
        kinds.append(Kind(size, tuple(household + derived), (person,) if person else ()))
    return kinds


def require_model(spec: HouseholdSpec, llm: LLMBackend | None = None) -> None:
    """Refuse a run without a model — ``llm`` the no-model backend, or (without ``llm``) the spec's
    ``llm.backend: none`` — before any work: every household starts from a composition the model writes."""
    if without_model(llm) if llm is not None else spec.llm.backend == "none":
        raise SpecError(Problem(f"{spec.source}: llm.backend", "none (a run without a model), but household specs "
                                "need the model to write household compositions; expected embedded or openai"))


class HouseholdSynthesizer:
    """Linked households and persons that match a household spec's tables, zone by zone.

    Parameters: ``spec`` (:func:`~.spec.load_household_spec`), ``llm`` (any backend), ``targets``
    (pre-loaded controls; read from the spec when omitted), ``progress(stage, done, total)``,
    ``constraints_checked`` (the caller ran :func:`.constraints.check_constraints` on these targets
    already, as the CLI does before the model loads; else :meth:`fit` runs it first).
    Attributes set by :meth:`fit`: ``candidates_``, ``region_`` (the region balance), ``usage_``,
    ``compositions_``, ``requests_``, ``notes_``, ``constrained_`` (candidates the constraints left
    out, by source and constraint), ``top_ups_`` (independent candidates added while a table missed),
    ``unreachable_`` (the control cells no candidate reaches, named: :func:`.controls.control_cells`).
    """

    def __init__(self, spec: HouseholdSpec, llm: LLMBackend, *, targets: HouseholdTargets | None = None,
                 progress: Progress | None = None, clock: Callable[[], float] = time.perf_counter,
                 constraints_checked: bool = False):
        self.spec, self.llm, self.progress, self.clock = spec, llm, progress, clock
        self.targets = targets if targets is not None else load_controls(spec)
        self.constraints_checked = constraints_checked
        require_model(spec, llm)
        self.requester = Requester(llm, spec.llm, spec.seed)

    def run(self) -> HouseholdResult:
        return self.fit().sample()

    # -- fit: compositions for the region -------------------------------------------------------
    def _ask(self, kinds: list[Kind], first: int) -> list[Answer]:
        spec = self.spec

        def request(index: int, kind: Kind) -> Answer:
            messages = composition_messages(spec, kind)
            schema = composition_schema(spec, kind.size, frozenset(n for n, _ in kind.household if n in spec.household.variables))
            answer = self.requester.ask(messages, schema, max_tokens(spec, kind.size),
                                        lambda text: parse_composition(text, spec, kind, first + index), 0, first + index)
            if self.progress:
                self.progress("compositions", first + index + 1, spec.synthesis.compositions)
            return answer

        return self.requester.map(request, kinds)

    def _gather(self, kinds: list[Kind], first: int) -> list:
        answers = self._ask(kinds, first)
        for a in answers:
            a.charge(self.usage_)
        self.requests_ += len(kinds)
        return [a.value for a in answers if a.value is not None]

    def fit(self) -> HouseholdSynthesizer:
        s, started = self.spec.synthesis, self.clock()
        if not self.constraints_checked:  # before any LLM call
            check_constraints(self.spec, self.targets, self.spec.seed)
            self.constraints_checked = True
        self.usage_, self.requests_, self.notes_ = LLMUsage(), 0, []
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, 1]))
        first = max(1, int(round(s.compositions * FIRST_ROUND))) if s.compositions > 1 else 1
        compositions = self._gather(size_kinds(self.spec, self.targets, first), 0)
        if not compositions:
            raise_no_compositions(self.usage_)
        pool, matrix = self._pool(compositions, rng)
        more = deficit_kinds(self.spec, self.targets, matrix, pool.prior, s.compositions - first, rng)
        if more:
            compositions += self._gather(more, first)
            pool, matrix = self._pool(compositions, rng)
        if s.household_values == "scored":
            compositions = self._score_values(compositions)
            pool, matrix = self._pool(compositions, np.random.default_rng(np.random.SeedSequence([self.spec.seed, 2])))
        self.compositions_, self.candidates_, self.matrix_ = compositions, pool, matrix
        llm_seconds = self.clock() - started
        self.region_ = list_balance(matrix, self.targets.region_vector(), pool.prior, self.targets.importance())
        self._top_up(compositions, rng)
        left_out = self.constrained_["left_out"]
        if sum(left_out.values()):
            self.notes_.append("constraints left out " + ", ".join(
                f"{left_out[k]:,} of {self.constrained_['candidates'][k]:,} {k} candidates" for k in SOURCES
                if self.constrained_["candidates"][k]))
        self.unreachable_ = control_cells(self.targets, self.region_.unreachable)
        if self.unreachable_:
            self.notes_.append(f"{len(self.unreachable_)} control cell(s) no candidate household reaches (they stay "
                               "short): " + "; ".join(describe_cells(self.unreachable_)))
        self.seconds_ = {"compositions": llm_seconds, "region_balance": self.clock() - started - llm_seconds}
        return self

    def _score_values(self, compositions: list[Composition]) -> list[Composition]:
        """The compositions with their categorical household values read from the model's token
        probabilities given their members (:func:`.compose.value_question`); unchanged, with a note,
        where the backend cannot score options or a variable has more values than letters."""
        if not can_score_options(self.llm):
            self.notes_.append(f"{self.llm.name} cannot score options: household values are the ones the model wrote")
            return compositions
        letters = not continues_answers(self.llm)
        asked = [(i, name) for i, c in enumerate(compositions) for name in scored_variables(self.spec, c)
                 if not letters or len(self.spec.household.variables[name].values) <= len(LETTERS)]
        asked.sort(key=lambda pair: pair[1])  # one variable's questions together: they share their beginning
        scores: list[dict] = [{} for _ in compositions]
        for (i, name), choice in zip(asked, score_options(self.llm, [value_question(self.spec, compositions[i], name, letters)
                                                                     for i, name in asked])):
            self.usage_.add_scoring(choice)
            scores[i][name] = tuple(choice.probabilities)
        if self.progress:
            self.progress("household values", len(asked), len(asked))
        return [replace(c, scores=s) if s else c for c, s in zip(compositions, scores)]

    def _pool(self, compositions: list, rng: np.random.Generator):
        """The candidates and their incidence: the compositions' variants, fillers, and independent
        candidates — more of them, up to three times, while a control cell with a positive target is
        still out of every candidate's reach (each part's incidence computed once, as it is added).
        Candidates that break a constraint are left out of every part (counted in ``constrained_``)."""
        s = self.spec.synthesis
        self.constrained_ = {"candidates": {name: 0 for name in SOURCES}, "left_out": {name: 0 for name in SOURCES},
                             "by_constraint": {}}

        base = self._allowed(expand(self.spec, compositions, s.variants, rng))
        parts = [base]
        if s.filler > 0:
            parts.append(self._allowed(fillers(self.spec, self.targets, base, s.filler_households, s.filler * len(compositions), rng)))
        parts = [p for p in parts if len(p)]
        matrices = [incidence(self.targets, p.households, p.persons) for p in parts]
        count, weight = s.independent_households, s.independent * len(compositions)
        for _ in range(4 if s.independent > 0 and count > 0 and len(base) else 0):
            more, matrix = self._independents(base, count, weight, rng)
            if matrix is None:  # no reference marker, or every one broke a constraint
                break
            parts.append(more)
            matrices.append(matrix)
            if not len(unreachable(sparse.vstack(matrices, format="csr"), self.targets.region_vector())):
                break
            count, weight = 2 * count, 2 * weight  # the next round as heavy per candidate
        if not parts:
            raise_all_constrained(self.constrained_)
        self._base = base
        return combine(parts), sparse.vstack(matrices, format="csr")

    def _independents(self, base: Candidates, count: int, weight: float, rng: np.random.Generator):
        """``count`` independent candidates (prior ``weight`` in all) but those a constraint rules out,
        and their incidence (None when none is left)."""
        more = self._allowed(independent(self.spec, self.targets, base, count, weight, rng))
        return more, incidence(self.targets, more.households, more.persons) if len(more) else None

    def _allowed(self, part: Candidates) -> Candidates:
        """``part`` without the candidates that break a constraint, counted in ``constrained_``."""
        kept, counts = enforce(self.spec, part)
        for name in SOURCES:
            before = int((part.source == name).sum())
            self.constrained_["candidates"][name] += before
            self.constrained_["left_out"][name] += before - int((kept.source == name).sum())
        for text, k in counts.items():
            self.constrained_["by_constraint"][text] = self.constrained_["by_constraint"].get(text, 0) + k
        return kept

    def region_misses(self, achieved: np.ndarray) -> tuple[str, float]:
        """(the target table the region weights meet worst, its TVD)."""
        offsets = self.targets.offsets()
        return max(((t.name, tvd(achieved[a:b], t.region)) for t, a, b in zip(self.targets.tables, offsets[:-1], offsets[1:])),
                   key=lambda pair: pair[1], default=("", 0.0))

    def _top_up(self, compositions: list, rng: np.random.Generator) -> None:
        """While a table misses its tolerance at the region (list balancing stretched a few candidates
        too far, e.g. large households with three children), up to ``TOP_UPS`` times: twice as many
        independent candidates again (kept after the constraints: as many more drawn as they leave out),
        as heavy each as the first ones, and balance anew."""
        s = self.spec.synthesis
        self.top_ups_ = 0
        if s.independent <= 0 or s.independent_households <= 0:
            return
        base = self._base
        each = s.independent * len(compositions) / s.independent_households
        count, added, (name, miss) = s.independent_households, 0, self.region_misses(self.region_.achieved)
        for _ in range(TOP_UPS):
            if miss <= s.tolerance_tvd or not len(base):
                break
            count *= 2
            drawn, left = self.constrained_["candidates"]["independent"], self.constrained_["left_out"]["independent"]
            share = 1.0 - left / drawn if drawn else 1.0  # of the independent candidates the constraints keep
            draw = int(np.ceil(count / max(share, MIN_KEPT)))
            more, matrix = self._independents(base, draw, each * draw, rng)
            if matrix is None:
                break
            self.candidates_ = combine([self.candidates_, more])
            self.matrix_ = sparse.vstack([self.matrix_, matrix], format="csr")
            self.region_ = list_balance(self.matrix_, self.targets.region_vector(), self.candidates_.prior,
                                        self.targets.importance())
            added += len(more)
            before, (name, miss) = (name, miss), self.region_misses(self.region_.achieved)
            self.notes_.append(f"table {before[0]!r} missed by TVD {before[1]:.4f} at the region: {len(more):,} more "
                               f"independent candidates (worst now {name!r}, {miss:.4f})")
        self.top_ups_ = added

    # -- sample: every zone, no LLM ---------------------------------------------------------------
    def sample(self) -> HouseholdResult:
        s, started = self.spec.synthesis, self.clock()
        targets, pool = self.targets, self.candidates_
        if targets.zones:  # region tables shared out among the zones, so that zones add up to them
            zone_vectors = apportion(self.matrix_, targets.zone_vectors(), targets.region_vector(), self.region_.weights,
                                     targets.zone_households, targets.importance())
            zone_targets = {z: zone_vectors[i] for i, z in enumerate(targets.zones)}
            totals = {z: int(targets.zone_households[i]) for i, z in enumerate(targets.zones)}
        else:
            zone_targets, totals = {REGION: targets.region_vector()}, {REGION: targets.households}
        done = balance_zones(self.matrix_, zone_targets, self.region_.weights, targets.importance(), totals=totals,
                             executor=s.executor, workers=s.workers, ray_address=s.ray_address,
                             progress=(lambda zone, k, n: self.progress("zones", k, n)) if self.progress else None, unit="household")
        order = list(targets.zones) if targets.zones else [REGION]
        households, persons = link(self.spec, pool, [(z, done[z].counts) for z in order], bool(targets.zones))
        seconds = {**self.seconds_, "zones": self.clock() - started}
        chosen = np.sum([done[z].counts for z in order], axis=0)
        sources = {name: int(chosen[pool.source == name].sum()) for name in SOURCES}
        constraints = {HOUSEHOLDS.name: list(self.spec.constraints.households), PERSONS.name: list(self.spec.constraints.persons),
                       **self.constrained_} if self.spec.constraints.households or self.spec.constraints.persons else {}
        return HouseholdResult(households, persons, self.usage_, len(self.compositions_), self.requests_, self.region_,
                               done, seconds, list(self.notes_), sources, constraints, list(self.unreachable_))


def raise_all_constrained(constrained: dict) -> None:
    from ...core.errors import ProposalError

    worst = ", ".join(f"{k!r} ({v})" for k, v in sorted(constrained["by_constraint"].items(), key=lambda kv: -kv[1])[:3])
    raise ProposalError(f"every candidate household broke a constraint (most often: {worst}); expected constraints "
                        "that the model's households can meet", attempts=0, last_response=None)


def raise_no_compositions(usage: LLMUsage) -> None:
    from ...core.errors import ProposalError

    reasons = ", ".join(f"{k} ({v})" for k, v in Counter(usage.rejected).most_common(3)) or "no answer parsed"
    raise ProposalError(f"the LLM gave no usable household composition in the first round: {reasons}", attempts=usage.calls,
                        last_response=None)


def link(spec: HouseholdSpec, pool: Candidates, zones: list[tuple[str, np.ndarray]], zoned: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Linked households and persons: each candidate repeated as many times as its zone's count, ids
    numbered in zone order then candidate order."""
    picks, zone_of = [], []
    for zone, counts in zones:
        chosen = np.repeat(np.arange(len(counts)), counts.astype(np.int64))
        picks.append(chosen)
        zone_of.append(np.full(len(chosen), zone, dtype=object))
    pick = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    people = pool.persons.sort_values([HOUSEHOLD, MEMBER], kind="stable")
    frames = repeat_candidates(linked(pool.households.drop(columns=[COMPOSITION]), people), pick)
    households, persons = frames[HOUSEHOLDS.name], frames[PERSONS.name]
    if zoned:
        households.insert(1, "zone", np.concatenate(zone_of))
    persons = persons[[HOUSEHOLDS.id, PERSONS.id, MEMBER, *spec.person.variables]]
    return households, persons


