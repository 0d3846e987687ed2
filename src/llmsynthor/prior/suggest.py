"""Constraints to suggest from the model's pairwise prior: the combinations it rules out.

Target tables say nothing about pairs of variables no table crosses; the pairwise prior
(:mod:`llmsynthor.prior.copula`) has the model's lift for every such pair of levels. A lift at most the
threshold (default :data:`llmsynthor.prior.tempering.ZERO_LIFT`, 0.05) means the model finds the
combination (nearly) impossible: a candidate *constraint* (a structural zero enforced in
generation), written in the rules language so a user can paste it into the spec:

    relationship == Husband -> sex != Female
    relationship == Own-child -> marital not in [Married, Widowed]     (several values of one level merged)
    age >= 18 and age < 35 -> status != Retired                       (a numeric level: the bin [18,35))

A small model does not know everything, so every suggestion must be confirmed by the user. Two
things help to judge them:

* the **cost** of each: the share of records it would remove if the two variables were
  independent, P(c = x) · Σ P(a = y) over the target margins — what the targets would lose if
  the model were wrong; suggestions are sorted by it, largest first (ties: lowest lift first);
* the model's **record on the pairs a table does cross**: there the tables are the truth, so each
  cell the model rules out is either *confirmed* (the table has it nearly empty: its lift below
  :data:`llmsynthor.prior.tempering.TRUE_ZERO_LIFT`, or no record) or *contradicted* (the table has
  records there). How many of its zeros the tables confirm says how far to trust the others.

Pure functions over a :class:`~llmsynthor.prior.copula.PairwisePrior` and :class:`~llmsynthor.core.tables.Targets`:
no model is needed to test them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import yaml

from ..core.errors import SpecError
from ..core.rules import Rule, parse_rule
from ..core.schema import Schema
from ..core.tables import Axis, Targets, TargetTable
from .copula import PairwisePrior, score_prior
from .tempering import TRUE_ZERO_LIFT, ZERO_LIFT, true_lift


@dataclass(frozen=True)
class Suggestion:
    """One constraint the model's prior suggests: ``context = level`` rules out ``values`` of ``answer``."""

    constraint: str  # in the rules language; parses against the schema
    context: str
    level: str  # the context's level label (a value, or a bin such as [18,35))
    answer: str
    values: tuple[str, ...]  # the answer's levels ruled out
    lifts: tuple[float, ...]  # the model's lift of each
    share: float  # records it would remove under independence of the target margins

    @property
    def lift(self) -> float:
        """The largest lift among the merged levels (the weakest evidence)."""
        return max(self.lifts)


@dataclass(frozen=True)
class CheckedZero:
    """A cell of a pair a target table crosses that the model rules out, and what the table says."""

    constraint: str  # what would have been suggested
    context: str
    level: str
    answer: str
    value: str
    lift: float  # the model's
    table: str  # the table that crosses the pair
    table_lift: float  # the table's own lift there
    records: float  # the table's records there (its own counts; for a table of shares, at the run's size)

    @property
    def contradicted(self) -> bool:
        return self.records > 0 and self.table_lift >= TRUE_ZERO_LIFT

    def verdict(self) -> str:
        if self.contradicted:
            return f"contradicted by table {self.table} ({_records(self.records)}, lift {self.table_lift:.2f})"
        if self.records > 0:
            return f"confirmed by table {self.table} (nearly empty: {_records(self.records)}, lift {self.table_lift:.2f})"
        return f"confirmed by table {self.table} (0 records)"


@dataclass
class Suggestions:
    """What the prior suggests and how its zeros fare where the tables know the truth."""

    suggestions: list[Suggestion]
    checked: list[CheckedZero]
    threshold: float
    notes: list[str] = field(default_factory=list)  # zeros that cannot be written as a constraint, and why
    checked_cells: int = 0  # cells of the pairs a table crosses that the model scored

    @property
    def confirmed(self) -> int:
        return sum(not z.contradicted for z in self.checked)

    def summary(self) -> str:
        """``of the model's N zeros on crossed pairs, K are confirmed by the tables`` (with what that means)."""
        n = len(self.checked)
        if not self.checked_cells:
            return ("no target table crosses two scored variables: nothing to check the model's zeros against — "
                    "judge every suggestion yourself")
        if not n:
            return (f"the model rules out none of the {self.checked_cells} cells of the pairs the tables cross: nothing "
                    "to check its zeros against — judge every suggestion yourself")
        return (f"of the model's {n} zeros on crossed pairs, {self.confirmed} are confirmed by the tables "
                f"({self.confirmed / n:.0%}); {n - self.confirmed} contradicted")

    def header(self, model: str = "the model") -> list[str]:
        """The comment lines that open a ``constraints:`` block: who suggested it and how far to trust it."""
        return [f"# suggested by {model} from its token probabilities (lift <= {self.threshold:g});",
                "# confirm each one before use: a constraint removes every record that breaks it."]

    def items(self, limit: int | None = None) -> list[str]:
        """One YAML list item per suggestion (``- constraint  # evidence``), unindented."""
        chosen = self.suggestions[:limit] if limit is not None else self.suggestions
        return [yaml.safe_dump([s.constraint], width=10**6, allow_unicode=True, default_flow_style=False).strip()
                + f"  # model lift {s.lift:.3f}; removes {s.share:.2%} of records under independence" for s in chosen]

    def as_yaml(self, limit: int | None = None, model: str = "the model") -> str:
        """A ``constraints:`` block ready to paste into a spec, one suggestion a line with its evidence."""
        items = self.items(limit)
        lines = [*self.header(model), f"# {self.summary()}", "constraints:" + ("" if items else " []")]
        return "\n".join([*lines, *(f"  {item}" for item in items)]) + "\n"

    def restricted(self, keep) -> Suggestions:
        """The suggestions and checked zeros whose pair ``keep(context, answer)`` accepts."""
        return replace(self, suggestions=[s for s in self.suggestions if keep(s.context, s.answer)],
                       checked=[z for z in self.checked if keep(z.context, z.answer)])


def suggest(prior: PairwisePrior, targets: Targets, threshold: float = ZERO_LIFT, known: Sequence[Rule] = ()) -> Suggestions:
    """Suggestions from the lifts at most ``threshold`` of the pairs no table crosses (cells the
    ``known`` constraints rule out already are left out), and the model's zeros on the pairs a table
    crosses with each one's verdict."""
    schema = targets.schema
    axes = {name: lv.axis for name, lv in prior.levels.items()}
    shares = {name: targets.shares(name, axis) for name, axis in axes.items()}
    out, notes = [], []
    for (c, a), lift in prior.lifts.items():
        for i in range(axes[c].size):
            ruled = [j for j in range(axes[a].size) if lift[i, j] <= threshold and not _covered(known, schema, c, axes[c], i, a, axes[a], j)]
            for group in _groups(schema[a], axes[a], ruled):
                out += _suggestions(schema, c, axes[c], i, a, axes[a], group, lift, shares, notes)
    out.sort(key=lambda s: (-s.share, s.lift, s.constraint))
    return Suggestions(out, checked_zeros(prior, targets, threshold), threshold, notes,
                       sum(lift.size for lift in prior.checked.values()))


def score_and_suggest(targets: Targets, scorer, threshold: float = ZERO_LIFT, known: Sequence[Rule] = (), keep=None, *,
                      phrasings: tuple[str, ...] = ("plain",), letters: bool = False, on_call=None) -> Suggestions:
    """Score the pairwise prior of ``targets`` with ``scorer`` (the crossed pairs too, to check its
    zeros; :func:`llmsynthor.prior.copula.score_prior`) and suggest from it; ``keep(context, answer)``, when
    given, says which pairs a suggestion may name."""
    prior = score_prior(targets, scorer, targets.schema, on_call=on_call, check=True, phrasings=phrasings, letters=letters)
    found = suggest(prior, targets, threshold, known)
    return found.restricted(keep) if keep is not None else found


def checked_zeros(prior: PairwisePrior, targets: Targets, threshold: float = ZERO_LIFT) -> list[CheckedZero]:
    """Every cell of a pair a table crosses whose model lift is at most ``threshold``, with the table's
    records and lift there; contradicted ones first, then by records."""
    schema = targets.schema
    axes = {name: lv.axis for name, lv in prior.levels.items()}
    out = []
    for (c, a), lift in prior.checked.items():
        table = crossing_table(targets, c, a, axes)
        if table is None:
            continue
        counts = table.margin([c, a])
        if table.raw_total is not None and counts.sum() > 0:  # the table's own counts, not rescaled to the run
            counts = counts * (table.raw_total / counts.sum())
        truth = true_lift(counts / counts.sum())
        for i, j in zip(*np.nonzero(lift <= threshold)):
            text = _constraint(schema, c, axes[c], int(i), a, axes[a], [int(j)])
            out.append(CheckedZero(text, c, axes[c].labels[i], a, axes[a].labels[j], float(lift[i, j]), table.name,
                                   float(truth[i, j]), float(counts[i, j])))
    out.sort(key=lambda z: (not z.contradicted, -z.records, z.lift, z.constraint))
    return out


def crossing_table(targets: Targets, u: str, v: str, axes: dict[str, Axis]) -> TargetTable | None:
    """The table :meth:`~llmsynthor.core.tables.Targets.joint` reads the pair (u, v) from: the finest one
    that crosses them on exactly ``axes[u]`` × ``axes[v]``."""
    for table in sorted(targets, key=lambda t: -t.counts.size):
        labels = {ax.variable: ax.labels for ax in table.axes}
        if labels.get(u) == axes[u].labels and labels.get(v) == axes[v].labels and table.counts.sum() > 0:
            return table
    return None


# -- writing a ruled-out combination in the rules language ---------------------------------------


def format_constraint(schema: Schema, context: str, context_axis: Axis, level: int, answer: str, answer_axis: Axis,
                      ruled_out: Sequence[int]) -> str:
    """The constraint that forbids ``context`` at ``level`` together with any of the answer's levels
    ``ruled_out`` (categorical: any values; numeric: adjacent bins), e.g.
    ``age >= 18 and age < 35 -> status not in [Retired, Widowed]``. Parses with
    :func:`llmsynthor.core.rules.parse_rule` against ``schema`` (not checked here: see :func:`suggest`)."""
    return _constraint(schema, context, context_axis, level, answer, answer_axis, list(ruled_out))


def _constraint(schema: Schema, c: str, c_axis: Axis, i: int, a: str, a_axis: Axis, js: list[int]) -> str:
    a_side = _Side(schema[a], a, a_axis, js)
    c_side = _Side(schema[c], c, c_axis, [i])
    if a_side.negation() is None and c_side.negation() is not None:  # a middle range of a: forbid c's level instead
        a_side, c_side = c_side, a_side
    negation = a_side.negation()
    if negation is None:  # both are middle ranges: condition c's range and a >= lo, consequence a >= hi
        lo, hi = a_side.interval()
        return " and ".join([*c_side.clauses(), f"{a} >= {_number(schema[a], lo)}"]) + f" -> {a} >= {_number(schema[a], hi)}"
    return " and ".join(c_side.clauses()) + f" -> {negation}"


@dataclass(frozen=True)
class _Side:
    """One variable's levels in a combination: categorical values, or adjacent numeric bins."""

    var: object
    name: str
    axis: Axis
    levels: list[int]

    def interval(self) -> tuple[float, float]:
        return float(self.axis.edges[min(self.levels)]), float(self.axis.edges[max(self.levels) + 1])

    def clauses(self) -> list[str]:
        """What a record in these levels meets (the domain's own bounds left out)."""
        if not self.axis.is_numeric:
            labels = [self.axis.labels[k] for k in self.levels]
            return [f"{self.name} == {labels[0]}" if len(labels) == 1 else f"{self.name} in [{', '.join(labels)}]"]
        lo, hi = self.interval()
        out = [f"{self.name} >= {_number(self.var, lo)}"] if lo > self.var.min else []
        return out + ([f"{self.name} < {_number(self.var, hi)}"] if hi < self.var.top else [])

    def negation(self) -> str | None:
        """One clause a record outside these levels meets, or None (a range strictly inside the domain)."""
        if not self.axis.is_numeric:
            labels = [self.axis.labels[k] for k in self.levels]
            return f"{self.name} != {labels[0]}" if len(labels) == 1 else f"{self.name} not in [{', '.join(labels)}]"
        lo, hi = self.interval()
        if lo <= self.var.min:
            return f"{self.name} >= {_number(self.var, hi)}"
        if hi >= self.var.top:
            return f"{self.name} < {_number(self.var, lo)}"
        return None


def _number(var, x: float) -> str:
    return str(int(x)) if var.type == "integer" else f"{x:.12g}"


def _groups(var, axis: Axis, ruled: list[int]) -> list[list[int]]:
    """The ruled-out levels of one context level merged: all categorical values in one group, numeric
    bins in runs of adjacent ones."""
    if not ruled:
        return []
    if not axis.is_numeric:
        return [ruled]
    runs = [[ruled[0]]]
    for j in ruled[1:]:
        if j == runs[-1][-1] + 1:
            runs[-1].append(j)
        else:
            runs.append([j])
    return runs


def _suggestions(schema, c, c_axis, i, a, a_axis, group, lift, shares, notes) -> list[Suggestion]:
    """The suggestion for ``group``; when its text does not parse (a value with a comma, say), one per
    value; a value no constraint can name goes to ``notes``."""
    def make(js):
        text = _constraint(schema, c, c_axis, i, a, a_axis, js)
        parse_rule(text, schema)
        return Suggestion(text, c, c_axis.labels[i], a, tuple(a_axis.labels[j] for j in js), tuple(float(lift[i, j]) for j in js),
                          float(shares[c][i] * shares[a][js].sum()))

    try:
        return [make(group)]
    except SpecError:
        if len(group) == 1 or a_axis.is_numeric:
            notes.append(f"{c} = {c_axis.labels[i]} & {a} in {{{', '.join(a_axis.labels[j] for j in group)}}}: "
                         "ruled out by the model but not writable in the rules language (a label with '->', ' and ' or a comma?)")
            return []
        return [s for j in group for s in _suggestions(schema, c, c_axis, i, a, a_axis, [j], lift, shares, notes)]


def _covered(known: Sequence[Rule], schema: Schema, c: str, c_axis: Axis, i: int, a: str, a_axis: Axis, j: int) -> bool:
    """Whether a known constraint over these two variables alone forbids the cell (checked at the
    ends and the middle of numeric bins)."""
    rules = [r for r in known if {cl.variable for cl in (*r.condition, *r.consequence)} <= {c, a}]
    if not rules:
        return False
    points = {v: _points(schema[v], axis, k) for v, axis, k in ((c, c_axis, i), (a, a_axis, j))}
    frame = pd.DataFrame([{c: x, a: y} for x in points[c] for y in points[a]])
    return any(bool(r.violations(frame).all()) for r in rules)


def _points(var, axis: Axis, k: int) -> list:
    if not axis.is_numeric:
        return [axis.labels[k]]
    lo, hi = float(axis.edges[k]), float(axis.edges[k + 1])
    last = hi - 1 if var.type == "integer" else (hi if hi >= var.top else float(np.nextafter(hi, -np.inf)))
    return [lo, (lo + last) / 2, last]


def _records(k: float) -> str:
    return f"{k:,.0f} records" if k >= 1 or k == 0 else f"{k:.2g} records"
