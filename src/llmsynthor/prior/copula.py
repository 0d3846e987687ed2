"""The LLM as a nonparametric copula, quantified: pairwise lifts from next-token probabilities.

Target tables fix the margins the records must match; they say nothing about pairs of variables
that no table crosses (``relationship`` and ``sex`` in a census with only marginals). For every
such pair the model is asked, once per level of one variable, which level of the other a record
with that value has — not by sampling text but by reading the probability it gives each option
(:meth:`~llmsynthor.llm.base.ChoiceScorer.option_probabilities`). From those conditionals
P(a | c = y) comes the *lift*

    lift(c = y, a = x) = P(a = x | c = y) / Σ_y' w(y') P(a = x | c = y')

with w the target shares of c: above 1 the model finds the combination more common than
independence would say, near 0 implausible ("Husband" and "Female"). When focus cells are built,
each table's candidate cells are weighted by their deficit times the lifts with what is already
fixed, so proposals combine values the way the model thinks records do, while the loop and the
allocator still enforce every table. Numeric variables take part through their target bins.
Pairs that share a target table are skipped: their joint is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations, permutations

import numpy as np

from ..core.errors import Unsupported
from ..core.schema import Schema
from ..core.tables import Axis, Targets, TargetTable
from ..declarations.spec import SynthesisSettings
from ..llm.base import continues_answers, score_options
from .prompts import LETTERS, option_messages
from .tempering import check_prior, true_lift

LIFT_RANGE = (0.02, 50.0)
SPREAD_FLOOR = 0.03  # conditional probabilities below this are not spread to


@dataclass(frozen=True)
class Levels:
    """The levels of one variable as the prior sees it: categorical values or target bins."""

    variable: str
    axis: Axis

    def index(self, value: str | None = None, interval: tuple[float, float] | None = None) -> int:
        if not self.axis.is_numeric:
            return self.axis.labels.index(value)
        return _level(self.axis, 0.5 * (interval[0] + interval[1]))


@dataclass
class PairwisePrior:
    """Lifts for pairs of variables, looked up in either direction."""

    levels: dict[str, Levels]
    lifts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (c, a) -> [|c|, |a|], pairs no table crosses
    checked: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # ... pairs a table crosses (calibration only)
    zeros: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (c, a) -> cells ruled out outright
    phrasing: str = "plain"  # how the pairs were asked (see score_prior)
    phrasing_errors: dict[str, float] = field(default_factory=dict)  # least error on the crossed pairs per phrasing tried

    def tempered(self, strength: float | Mapping[tuple[str, str], float], zeros: bool = False, zero_lift: float = 0.0) -> PairwisePrior:
        """The prior with every lift raised to ``strength`` (0: independence), or each pair's to its own
        (a mapping pair -> strength); with ``zeros``, the cells whose scored lift is at most ``zero_lift``
        are ruled out outright (:attr:`zeros`)."""
        power = strength if isinstance(strength, Mapping) else dict.fromkeys(self.lifts, strength)
        return PairwisePrior(self.levels, {k: v ** power[k] for k, v in self.lifts.items()}, dict(self.checked),
                             {k: v <= zero_lift for k, v in self.lifts.items()} if zeros else {}, self.phrasing,
                             dict(self.phrasing_errors))

    def lift(self, u: str, v: str) -> np.ndarray | None:
        """[|u|, |v|] lifts, or None when the pair was not scored."""
        if (u, v) in self.lifts:
            return self.lifts[(u, v)]
        if (v, u) in self.lifts:
            return self.lifts[(v, u)].T
        return None

    def cell_weights(self, table: TargetTable, values: dict[str, str], intervals: dict[str, tuple[float, float]]) -> np.ndarray:
        """For each flat cell of ``table``: the product of lifts between the cell's levels and every
        value already fixed (1 where no pair was scored)."""
        out = np.ones(table.shape)
        fixed = [(name, self.levels[name].index(values.get(name), intervals.get(name)))
                 for name in self.levels if name in values or name in intervals]
        for k, axis in enumerate(table.axes):
            if axis.variable not in self.levels:
                continue
            for name, level in fixed:
                if name == axis.variable:
                    continue
                lift = self.lift(name, axis.variable)
                if lift is None:
                    continue
                row = lift[level]
                if axis.is_numeric:  # the table's bins may differ from the prior's: map by midpoints
                    row = row[[self.levels[axis.variable].index(interval=(a, b)) for a, b in zip(axis.edges[:-1], axis.edges[1:])]]
                shape = [1] * len(table.axes)
                shape[k] = axis.size
                out = out * row.reshape(shape)
        return out.ravel()

    def penalty(self, values: dict[str, str], ranges: dict[str, tuple[float, float]]) -> float:
        """How implausible a proposal is: minus the sum of log lifts over its scored pairs, where
        below 0 (combinations the model finds more common than independence cost nothing)."""
        index = {name: self.levels[name].index(values.get(name), ranges.get(name))
                 for name in self.levels if name in values or name in ranges}
        score = 0.0
        for (c, a), lift in self.lifts.items():
            if c in index and a in index:
                score += float(np.log(lift[index[c], index[a]]))
        return max(0.0, -score)

    def strongest(self, k: int = 10) -> list[dict]:
        """The ``k`` pairs of levels the model finds least and most compatible (for the manifest)."""
        rows = []
        for (c, a), lift in self.lifts.items():
            for i, j in np.ndindex(lift.shape):
                rows.append({"pair": f"{c} = {self.levels[c].axis.labels[i]} & {a} = {self.levels[a].axis.labels[j]}",
                             "lift": round(float(lift[i, j]), 3)})
        rows.sort(key=lambda r: abs(np.log(r["lift"])), reverse=True)
        return rows[:k]


def prior_levels(targets: Targets) -> dict[str, Levels]:
    """Every variable some target mentions, with the axis that has the most levels for it."""
    return {name: Levels(name, axis) for name, axis in targets.finest_axes().items()}


def pairs_to_score(targets: Targets, levels: dict[str, Levels]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(context, answer) pairs: those no target table crosses (the prior), and those a table crosses on
    the prior's own levels (the check: there the tables say what the truth is). The variable with
    fewer levels is the context."""
    crossed = {frozenset(p) for t in targets for p in combinations(t.variables, 2)}
    axes = {name: lv.axis for name, lv in levels.items()}
    names = [n for n in targets.schema.names if n in levels]
    free, checked = [], []
    for u, v in combinations(names, 2):
        pair = (u, v) if levels[u].axis.size <= levels[v].axis.size else (v, u)
        if frozenset((u, v)) not in crossed:
            free.append(pair)
        elif targets.joint(u, v, axes) is not None:
            checked.append(pair)
    return free, checked


def asking_order(pairs: list[tuple[str, str]], levels: dict[str, Levels]) -> list[tuple[str, str]]:
    """The order :func:`score_prior` asks (context, answer) ``pairs`` in: grouped by the variable asked
    about, whose question and options open every prompt of its group (scored together)."""
    names = list(levels)
    return sorted(pairs, key=lambda pair: names.index(pair[1]))


PHRASINGS = ("plain", "shares")  # how a pair is asked: the options alone, or with their target shares


def by_letter(settings: SynthesisSettings | None, llm) -> bool:
    """Whether the prior's options are asked for by letter (``prior_answers``; auto — and without
    settings, as for a household spec — where ``llm`` cannot continue an answer begun for it)."""
    answers = settings.prior_answers if settings is not None else "auto"
    return answers == "letters" or (answers == "auto" and not continues_answers(llm))


def score_prior(targets: Targets, scorer, schema: Schema, on_call=None, check: bool = True,
                phrasings: tuple[str, ...] = ("plain",), both_directions: bool = False, letters: bool = False) -> PairwisePrior:
    """Ask ``scorer`` (a :class:`~llmsynthor.llm.base.ChoiceScorer`) for every pair no table crosses,
    and (``check``) for the pairs a table crosses, kept apart in :attr:`PairwisePrior.checked` to
    calibrate the prior against; ``on_call(choice)`` sees each answer (usage accounting).

    With several ``phrasings`` (e.g. :data:`PHRASINGS`) and pairs to check, the crossed pairs are asked in each, and the
    phrasing whose lifts reproduce the tables best (least error at its best strength,
    :func:`llmsynthor.prior.tempering.check_prior`) is used for the rest (:attr:`PairwisePrior.phrasing`).
    With ``both_directions`` every pair is also asked the other way round (P(c | a)) and the two
    lifts, which estimate the same P(c, a) / (P(c) P(a)), are combined by their geometric mean.
    With ``letters`` the options are asked for by letter (:func:`~llmsynthor.prior.prompts.option_messages`)."""
    levels = prior_levels(targets)
    prior = PairwisePrior(levels)
    free, checked = pairs_to_score(targets, levels)
    asked = {a for _, a in free + checked} | ({c for c, _ in free + checked} if both_directions else set())
    too_many = sorted(name for name in asked if levels[name].axis.size > len(LETTERS))
    if letters and too_many:  # before any question is asked
        raise Unsupported(f"{', '.join(too_many)}: more than {len(LETTERS)} levels, and this backend reads answers by letter "
                           "(synthesis.prior_answers); use the embedded backend (prior_answers: text), or fewer levels")

    def conditionals(pairs, phrasing):  # (c, a) -> [|c|, |a|]: P(a | c), asked once per level of c
        requests, rows = [], []
        for c, a in pairs:
            shares = targets.shares(a, levels[a].axis) if phrasing == "shares" else None
            for i in range(levels[c].axis.size):
                requests.append(option_messages(schema, c, levels[c].axis, i, a, levels[a].axis, shares, letters))
                rows.append((c, a))
        out = {(c, a): [] for c, a in pairs}
        for (c, a), choice in zip(rows, score_options(scorer, requests)):
            if on_call is not None:
                on_call(choice)
            out[(c, a)].append(choice.probabilities)
        return {pair: np.array(p) for pair, p in out.items()}

    def lifts_of(pairs, phrasing):  # P(a | c) over its average
        out, ordered = {}, asking_order(pairs, levels)
        for answer in dict.fromkeys(a for _, a in ordered):
            for (c, a), p in conditionals([pair for pair in ordered if pair[1] == answer], phrasing).items():
                out[(c, a)] = np.clip(p / np.maximum(targets.shares(c, levels[c].axis) @ p, 1e-12), *LIFT_RANGE)
        return out

    def ask(pairs, phrasing):
        out = lifts_of(pairs, phrasing)
        if both_directions:
            other = lifts_of([(a, c) for c, a in pairs], phrasing)
            out = {(c, a): np.clip(np.sqrt(out[(c, a)] * other[(a, c)].T), *LIFT_RANGE) for c, a in pairs}
        return {pair: out[pair] for pair in pairs}

    prior.phrasing = phrasings[0]
    if check and checked:
        axes = {name: lv.axis for name, lv in levels.items()}
        tried = {phrasing: ask(checked, phrasing) for phrasing in phrasings}
        for phrasing, lifts in tried.items():
            errors = check_prior(lifts, targets, axes).errors
            prior.phrasing_errors[phrasing] = min(errors.values()) if errors else float("nan")
        if len(tried) > 1:
            prior.phrasing = min(tried, key=lambda ph: (prior.phrasing_errors[ph], phrasings.index(ph)))
        prior.checked = tried[prior.phrasing]
    prior.lifts = ask(free, prior.phrasing)
    return prior


@dataclass
class Conditionals:
    """P(v | the other values of a record) for every variable v (numeric ones over their finest
    target bins), from pairwise lifts alone (a pairwise Markov network with the target margins as
    its singletons): the tables' own lifts for pairs a table crosses, the model's
    (:class:`PairwisePrior`) for pairs none crosses, 1 otherwise. Used to spread a proposal's
    records over the values and bins records like it have, instead of giving all of them the one
    value and the one narrow range the proposal names."""

    schema: Schema
    axes: dict[str, Axis]  # the levels of each variable: categorical values, or the finest target bins
    shares: dict[str, np.ndarray]  # target shares over those levels
    lifts: dict[tuple[str, str], tuple[Axis, np.ndarray]] = field(default_factory=dict)  # (u, v) -> (u's axis, [|u|, |v|])

    @classmethod
    def build(cls, targets: Targets, prior: PairwisePrior | None = None) -> Conditionals:
        schema = targets.schema
        finest = prior_levels(targets)
        axes = {v: Axis(v, tuple(schema[v].values)) if not schema[v].is_numeric else finest[v].axis
                for v in schema.names if not schema[v].is_numeric or v in finest}
        out = cls(schema, axes, {v: targets.shares(v, axis) for v, axis in axes.items()})
        for table in sorted(targets, key=lambda t: -t.counts.size):  # the finest table for a pair wins
            total = table.counts.sum()
            for i, j in permutations(range(len(table.axes)), 2):
                u, v = table.axes[i], table.axes[j]
                if v.variable not in axes or v.labels != axes[v.variable].labels or (u.variable, v.variable) in out.lifts or total <= 0:
                    continue
                joint = table.margin([u.variable, v.variable]) / total
                out.lifts[(u.variable, v.variable)] = (u, true_lift(joint))
        for u, v in permutations(prior.levels if prior is not None else (), 2):
            lift = prior.lift(u, v)  # pairs no table crosses, read in either direction
            if lift is not None and v in axes and prior.levels[v].axis.labels == axes[v].labels and (u, v) not in out.lifts:
                out.lifts[(u, v)] = (prior.levels[u].axis, lift)
        return out

    def _row(self, axis: Axis, lift: np.ndarray, values: dict[str, str], ranges: dict[str, tuple[float, float]]) -> np.ndarray:
        """The lifts of every level of v with u's value (a numeric range: averaged over its bins)."""
        if not axis.is_numeric:
            return lift[axis.labels.index(values[axis.variable])]
        lo, hi = ranges[axis.variable]
        if hi <= lo:
            weights = np.zeros(axis.size)
            weights[_level(axis, lo)] = 1.0
        else:
            weights = np.clip(np.minimum(axis.edges[1:], hi) - np.maximum(axis.edges[:-1], lo), 0, None)
        return weights @ lift / max(weights.sum(), 1e-12)

    def conditional(self, v: str, values: dict[str, str], ranges: dict[str, tuple[float, float]]) -> np.ndarray:
        """P(v | every other value in ``values`` and ``ranges``), over v's levels."""
        p = self.shares[v].astype(float).copy()
        for (u, target), (axis, lift) in self.lifts.items():
            if target == v and u != v and (u in values or u in ranges):
                p = p * self._row(axis, lift, values, ranges)
        return p / p.sum() if p.sum() > 0 else p

    def spread(self, values: dict[str, str], ranges: dict[str, tuple[float, float]], share: float,
               floor: float = SPREAD_FLOOR) -> dict[str, tuple]:
        """For every variable: (1 − share) on the proposal's own value or range, ``share`` over the
        conditional given its other values (probabilities under ``floor`` set to zero, so what the
        tables or the model rule out stays out). A numeric variable spreads to whole other bins
        (see :attr:`llmsynthor.prior.proposals.Proposal.spread`)."""
        out = {}
        for v, axis in self.axes.items():
            if v not in values and v not in ranges:
                continue
            p = self.conditional(v, values, ranges)
            p = np.where(p < floor, 0.0, p)
            if p.sum() <= 0:
                continue
            p = share * p / p.sum()
            if not axis.is_numeric:
                p[axis.labels.index(values[v])] += 1 - share
                out[v] = tuple(p)
                continue
            lo, hi = ranges[v]
            own = _level(axis, 0.5 * (lo + hi))
            parts = [(lo, hi, float(p[own] + 1 - share))]
            for b in np.flatnonzero(p > 0):
                if b != own:
                    parts.append((float(axis.edges[b]), self._top(v, axis, int(b)), float(p[b])))
            out[v] = tuple(parts)
        return out

    def _top(self, v: str, axis: Axis, b: int) -> float:
        """The largest value of bin b (bins are [a, b); the last one is closed)."""
        right = float(axis.edges[b + 1])
        if self.schema[v].type == "integer":
            return right - 1
        return right if b == axis.size - 1 else float(np.nextafter(right, -np.inf))


def _level(axis: Axis, x: float) -> int:
    return int(np.clip(np.searchsorted(axis.edges, x, side="right") - 1, 0, axis.size - 1))
