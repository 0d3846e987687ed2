"""Candidate households: the LLM's compositions made concrete, many per composition.

Each composition becomes ``variants`` candidate households: numeric values drawn inside the ranges
the model gave (ages, cars), categorical values as written. *Filler* candidates copy a
composition's members but draw its household values (other than the size) from the household
tables' margins, so that every household cell can be reached with the model's members; they start
with a small prior weight (``synthesis.filler``). *Independent* candidates know no joint at all
(the size, household values and each member's values from the tables' margins, the reference person
first) so that every control cell is reachable whatever the model answered (``synthesis.independent``,
a smaller weight still). List balancing leans on either only where the compositions cannot meet a
table; every candidate's ``source`` says which it is. Derived counts (children, workers …) are
counted from the members.

Knows frames, not LLMs: compositions arrive as plain values (:class:`~.compose.Composition`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...core.rules import holds, parse_condition
from ...core.schema import CategoricalVariable, IntegerVariable
from .controls import HOUSEHOLD, HOUSEHOLDS, PERSONS, HouseholdTargets
from .spec import HouseholdSpec

MEMBER = "member"  # a person's place in its household, 0 = the reference person
COMPOSITION = "composition"  # the composition a candidate comes from
SOURCES = ("composition", "filler", "independent")  # the model's household; its members, other household values; margins only


@dataclass(frozen=True)
class Candidates:
    """Candidate households with their members, and the prior weight of each candidate."""

    households: pd.DataFrame  # one row per candidate; household variables, derived counts, COMPOSITION
    persons: pd.DataFrame  # HOUSEHOLD (the candidate's row), MEMBER, person variables
    prior: np.ndarray  # one per candidate; the compositions' candidates sum to 1 each, fillers to ``filler``
    source: np.ndarray  # one per candidate: a SOURCES label

    def __len__(self) -> int:
        return len(self.households)

    def keep(self, mask: np.ndarray) -> Candidates:
        """The candidates where ``mask`` holds, with their members, renumbered; each kept candidate's
        prior scaled so that the part weighs what it weighed before (none kept: empty)."""
        rows = np.flatnonzero(mask)
        new = np.full(len(self), -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        owner = new[self.persons[HOUSEHOLD].to_numpy()]
        persons = self.persons[owner >= 0].reset_index(drop=True)
        persons[HOUSEHOLD] = owner[owner >= 0]
        prior = self.prior[rows]
        if prior.sum() > 0:
            prior = prior * (self.prior.sum() / prior.sum())
        return Candidates(self.households.iloc[rows].reset_index(drop=True), persons, prior, self.source[rows])


def _draw(values: list, var, rng: np.random.Generator) -> np.ndarray:
    """One concrete value per entry: labels as given, ranges drawn uniformly (whole numbers for integers)."""
    if isinstance(var, CategoricalVariable):
        return np.asarray(values, dtype=object)
    lo = np.array([v[0] for v in values], dtype=float)
    hi = np.array([v[1] for v in values], dtype=float)
    if isinstance(var, IntegerVariable):
        return np.floor(lo + rng.random(len(lo)) * (hi - lo + 1)).clip(lo, hi).astype(np.int64)
    return lo + rng.random(len(lo)) * (hi - lo)


def derive(spec: HouseholdSpec, households: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """``households`` with every derived count recounted from its members (``persons[HOUSEHOLD]`` rows)."""
    out = households.copy()
    owner = persons[HOUSEHOLD].to_numpy()
    for name, condition in spec.derived.items():
        meets = holds(parse_condition(condition, spec.person_schema), persons)
        out[name] = np.bincount(owner[meets], minlength=len(households)).astype(np.int64)
    return out


def expand(spec: HouseholdSpec, compositions: list, variants: int, rng: np.random.Generator) -> Candidates:
    """``variants`` concrete candidates per composition, each composition's candidates weighing 1 in all."""
    if not compositions:
        return empty(spec)
    k = len(compositions)
    which = np.repeat(np.arange(k), variants)  # composition of each candidate
    households = pd.DataFrame({name: _draw([compositions[i].household[name] for i in which], var, rng)
                               for name, var in spec.household.variables.items()})
    for name, var in spec.household.variables.items():  # values the model's token probabilities gave: drawn from them
        if any(name in c.scores for c in compositions):
            column = households[name].to_numpy(dtype=object).copy()
            for i, c in enumerate(compositions):
                if name in c.scores:
                    p = np.asarray(c.scores[name], dtype=float)
                    column[which == i] = np.asarray(var.values, dtype=object)[rng.choice(len(p), size=variants, p=p / p.sum())]
            households[name] = column
    households[COMPOSITION] = which
    sizes = np.array([len(c.members) for c in compositions])
    owner = np.repeat(np.arange(len(which)), sizes[which])  # candidate of each person
    member = np.concatenate([np.arange(sizes[i]) for i in which])
    rows = [compositions[which[h]].members[m] for h, m in zip(owner, member)]
    persons = pd.DataFrame({HOUSEHOLD: owner, MEMBER: member})
    for name, var in spec.person.variables.items():
        persons[name] = _draw([r[name] for r in rows], var, rng)
    return Candidates(derive(spec, households, persons), persons, np.full(len(which), 1.0 / variants),
                      np.full(len(which), SOURCES[0], dtype=object))


def empty(spec: HouseholdSpec) -> Candidates:
    households = pd.DataFrame({**{n: [] for n in spec.household_schema.variables}, COMPOSITION: []})
    persons = pd.DataFrame({HOUSEHOLD: [], MEMBER: [], **{n: [] for n in spec.person.variables}})
    return Candidates(households, persons, np.zeros(0), np.zeros(0, dtype=object))


def reference_marker(spec: HouseholdSpec) -> tuple[str, str] | None:
    """(variable, value) when the reference condition is one categorical equality (``relationship ==
    householder``): then the answer's structure itself has exactly one reference person."""
    clauses = parse_condition(spec.person.reference, spec.person_schema)
    if len(clauses) == 1 and clauses[0].op == "==" and isinstance(spec.person.variables[clauses[0].variable], CategoricalVariable):
        return clauses[0].variable, str(clauses[0].value)
    return None


def _margin_draw(spec: HouseholdSpec, targets: HouseholdTargets, name: str, size: int, rng: np.random.Generator,
                 level: str = HOUSEHOLDS.name, leave_out: str | None = None) -> np.ndarray | None:
    """``size`` values of a variable drawn from the region margin of the finest table of ``level`` that
    has it (numeric: a bin by its share, then uniformly inside; a categorical's ``leave_out`` label
    never); None if no table has it."""
    tables = [t for t in targets if t.level == level and name in t.variables]
    if not tables:
        return None
    table = max(tables, key=lambda t: next(a.size for a in t.axes if a.variable == name))
    axis_index = table.variables.index(name)
    axis = table.axes[axis_index]
    margin = table.region.sum(axis=tuple(i for i in range(len(table.axes)) if i != axis_index)).astype(float)
    if leave_out is not None and not axis.is_numeric:
        margin[[i for i, label in enumerate(axis.labels) if label == leave_out]] = 0.0
    if margin.sum() <= 0:
        return None
    bins = rng.choice(axis.size, size=size, p=margin / margin.sum())
    var = spec.household_schema.variables[name] if level == HOUSEHOLDS.name else spec.person.variables[name]
    if not axis.is_numeric:
        return np.asarray(axis.labels, dtype=object)[bins]
    lo, hi = axis.edges[bins], axis.edges[bins + 1]
    if isinstance(var, IntegerVariable):
        hi = np.where(bins == axis.size - 1, var.max, hi - 1)
        return np.floor(lo + rng.random(size) * (hi - lo + 1)).clip(lo, hi).astype(np.int64)
    return lo + rng.random(size) * (hi - lo)


def fillers(spec: HouseholdSpec, targets: HouseholdTargets, base: Candidates, count: int, weight: float,
            rng: np.random.Generator) -> Candidates:
    """``count`` copies of randomly chosen candidates of ``base`` with their household values (other than
    the size) drawn from the tables' margins; prior ``weight`` in all."""
    if count == 0 or len(base) == 0:
        return empty(spec)
    pick = np.sort(rng.choice(len(base), size=count))
    households = base.households.iloc[pick].reset_index(drop=True)
    for name in spec.household.variables:
        if name == spec.household.size:
            continue
        drawn = _margin_draw(spec, targets, name, count, rng)
        if drawn is not None:
            households[name] = drawn
    persons = _repeat_members(base.persons, pick)
    return Candidates(derive(spec, households, persons), persons, np.full(count, weight / count),
                      np.full(count, SOURCES[1], dtype=object))


def _bins(axis, values: np.ndarray) -> np.ndarray:
    """The bin of each value on ``axis`` (numeric: by its edges, the last bin closed; categorical: the
    label's place), -1 where a value falls in none."""
    if axis.is_numeric:
        v = values.astype(float)
        index = np.searchsorted(axis.edges, v, side="right") - 1
        index = np.where(v == axis.edges[-1], axis.size - 1, index)
        return np.where((index >= 0) & (index < axis.size), index, -1)
    place = {label: i for i, label in enumerate(axis.labels)}
    return np.array([place.get(str(x), -1) for x in values], dtype=np.int64)


def _inside(axis, bins: np.ndarray, var, rng: np.random.Generator, halving: bool = False) -> np.ndarray:
    """A value inside each bin: a label, or uniformly (``halving``: each whole number half as likely as
    the one before, as household sizes are) between the bin's edges."""
    if not axis.is_numeric:
        return np.asarray(axis.labels, dtype=object)[bins]
    lo = axis.edges[bins]
    last = bins == axis.size - 1
    if not isinstance(var, IntegerVariable):
        return lo + rng.random(len(bins)) * (axis.edges[bins + 1] - lo)
    hi = np.where(last, var.max, axis.edges[bins + 1] - 1)
    if not halving:
        return np.floor(lo + rng.random(len(bins)) * (hi - lo + 1)).clip(lo, hi).astype(np.int64)
    steps = np.floor(-np.log2(1 - rng.random(len(bins))))  # 0 with probability ½, 1 with ¼, ...
    return np.minimum(lo + steps, hi).astype(np.int64)


def _draw_from_tables(tables, frame: pd.DataFrame, todo: list[str], variables: dict, rng: np.random.Generator,
                      halving: str | None = None) -> list[str]:
    """Fill ``frame``'s columns ``todo`` from the tables' region counts, the largest table first: each
    table's new variables drawn jointly, given the values ``frame`` already has for its other variables
    (conditional on their bins; where that slice is empty, from the table's margin); variables of a
    table that are neither drawn nor given are summed out. Returns the variables no table has."""
    left = list(todo)
    for table in sorted(tables, key=lambda t: -int(np.prod(t.shape))):
        new = [i for i, v in enumerate(table.variables) if v in left]
        if not new:
            continue
        given = [i for i, v in enumerate(table.variables) if v not in left and v in frame.columns]
        dropped = tuple(i for i in range(len(table.axes)) if i not in new and i not in given)
        joint = np.transpose(table.region.sum(axis=dropped, keepdims=True), given + new + list(dropped)).astype(float)
        given_shape = [table.axes[i].size for i in given]
        joint = joint.reshape(int(np.prod(given_shape)) if given else 1, -1)
        if given:
            bins = np.stack([_bins(table.axes[i], frame[table.variables[i]].to_numpy()) for i in given])
            known = (bins >= 0).all(axis=0)
            key = np.where(known, np.ravel_multi_index(np.where(bins >= 0, bins, 0), given_shape), -1)
        else:
            key = np.zeros(len(frame), dtype=np.int64)
        margin = joint.sum(axis=0)
        cells = np.zeros(len(frame), dtype=np.int64)
        for k in np.unique(key):
            rows = np.flatnonzero(key == k)
            p = joint[k] if k >= 0 and joint[k].sum() > 0 else margin
            cells[rows] = rng.choice(len(p), size=len(rows), p=p / p.sum())
        for i, place in zip(new, np.unravel_index(cells, [table.axes[i].size for i in new])):
            name = table.variables[i]
            frame[name] = _inside(table.axes[i], place, variables[name], rng, halving=name == halving)
            left.remove(name)
    return left


def _uniform(var, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` values spread evenly over a variable's domain (labels, or uniformly between min and max)."""
    if isinstance(var, CategoricalVariable):
        return np.asarray(var.values, dtype=object)[rng.integers(len(var.values), size=size)]
    if isinstance(var, IntegerVariable):
        return rng.integers(int(var.min), int(var.max) + 1, size=size)
    return var.min + rng.random(size) * (var.max - var.min)


def independent(spec: HouseholdSpec, targets: HouseholdTargets, base: Candidates | None, count: int, weight: float,
                rng: np.random.Generator) -> Candidates:
    """``count`` candidates that know no more than the tables: the size and household values drawn from
    the household tables (jointly where a table crosses them), each member's values from the person
    tables given its household's values (a person × household-income table is used as such), the
    reference person first (with a reference marker: its value for member 0 and never for the others);
    a variable no table has takes the values the LLM's members or households have (without ``base``:
    values spread over its domain, as the constraint check before any LLM call draws). They make every
    control cell reachable whatever the model answered; prior ``weight`` in all, so balancing uses them
    only where the compositions fall short."""
    marker = reference_marker(spec)
    if count == 0 or (base is not None and len(base) == 0) or marker is None:  # without a marker, member 0 would not be sure to be the reference
        return empty(spec)
    households = pd.DataFrame(index=np.arange(count))
    level = [t for t in targets if t.level == HOUSEHOLDS.name]
    for name in _draw_from_tables(level, households, list(spec.household.variables), spec.household.variables, rng,
                                  halving=spec.household.size):
        households[name] = (base.households[name].to_numpy()[rng.integers(len(base), size=count)] if base is not None
                            else _uniform(spec.household.variables[name], count, rng))
    households[COMPOSITION] = -1
    sizes = households[spec.household.size].to_numpy(dtype=np.int64)
    owner = np.repeat(np.arange(count), sizes)
    member = np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    joined = households.drop(columns=[COMPOSITION]).iloc[owner].reset_index(drop=True)
    persons = [t for t in targets if t.level == PERSONS.name]
    for name in _draw_from_tables(persons, joined, list(spec.person.variables), spec.person.variables, rng):
        joined[name] = (base.persons[name].to_numpy()[rng.integers(len(base.persons), size=len(owner))] if base is not None
                        else _uniform(spec.person.variables[name], len(owner), rng))
    name, value = marker
    others = (member > 0) & (joined[name].to_numpy() == value)
    redrawn = _margin_draw(spec, targets, name, int(others.sum()), rng, PERSONS.name, leave_out=value)
    if redrawn is None:
        pool = base.persons[name].to_numpy() if base is not None else np.asarray(spec.person.variables[name].values, dtype=object)
        pool = pool[pool != value]
        redrawn = pool[rng.integers(len(pool), size=int(others.sum()))] if len(pool) else None
    column = joined[name].to_numpy(dtype=object).copy()
    if redrawn is not None:
        column[others] = redrawn
    column[member == 0] = value
    out = pd.DataFrame({HOUSEHOLD: owner, MEMBER: member})
    for n in spec.person.variables:
        out[n] = column if n == name else joined[n].to_numpy()
    return Candidates(derive(spec, households[[*spec.household.variables, COMPOSITION]], out), out,
                      np.full(count, weight / count), np.full(count, SOURCES[2], dtype=object))


def _repeat_members(persons: pd.DataFrame, pick: np.ndarray) -> pd.DataFrame:
    """The members of base candidates ``pick`` (repeats allowed), renumbered 0..len(pick)-1."""
    grouped = persons.groupby(HOUSEHOLD, sort=True).indices
    rows = np.concatenate([grouped[p] for p in pick])
    owner = np.concatenate([np.full(len(grouped[p]), i) for i, p in enumerate(pick)])
    out = persons.iloc[rows].reset_index(drop=True)
    out[HOUSEHOLD] = owner
    return out


def combine(parts: list[Candidates]) -> Candidates:
    """One pool from several, person rows renumbered to the combined households' rows."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("no candidates to combine")
    offsets = np.cumsum([0, *(len(p) for p in parts[:-1])])
    persons = []
    for part, offset in zip(parts, offsets):
        frame = part.persons.copy()
        frame[HOUSEHOLD] = frame[HOUSEHOLD].to_numpy() + offset
        persons.append(frame)
    return Candidates(pd.concat([p.households for p in parts], ignore_index=True), pd.concat(persons, ignore_index=True),
                      np.concatenate([p.prior for p in parts]), np.concatenate([p.source for p in parts]))
