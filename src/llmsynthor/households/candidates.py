"""Candidate households: the LLM's compositions made concrete, many per composition.

Each composition becomes ``variants`` candidate households: numeric values drawn inside the ranges
the model gave (ages, cars), categorical values as written. A few *filler* candidates copy a
composition but draw its household values (other than the size) from the household tables'
margins, so that every household cell the tables name can be reached; they start with a small
prior weight (``synthesis.filler``), so list balancing leans on them only where the compositions
cannot meet a table. Derived counts (children, workers …) are counted from the members.

Knows frames, not LLMs: compositions arrive as plain values (:class:`~.compose.Composition`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..rules import holds, parse_condition
from ..schema import CategoricalVariable, IntegerVariable
from .controls import HOUSEHOLD, HouseholdTargets
from .spec import HouseholdSpec

MEMBER = "member"  # a person's place in its household, 0 = the reference person
COMPOSITION = "composition"  # the composition a candidate comes from


@dataclass(frozen=True)
class Candidates:
    """Candidate households with their members, and the prior weight of each candidate."""

    households: pd.DataFrame  # one row per candidate; household variables, derived counts, COMPOSITION
    persons: pd.DataFrame  # HOUSEHOLD (the candidate's row), MEMBER, person variables
    prior: np.ndarray  # one per candidate; the compositions' candidates sum to 1 each, fillers to ``filler``
    filler: np.ndarray  # bool, one per candidate

    def __len__(self) -> int:
        return len(self.households)


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
    households[COMPOSITION] = which
    sizes = np.array([len(c.members) for c in compositions])
    owner = np.repeat(np.arange(len(which)), sizes[which])  # candidate of each person
    member = np.concatenate([np.arange(sizes[i]) for i in which])
    rows = [compositions[which[h]].members[m] for h, m in zip(owner, member)]
    persons = pd.DataFrame({HOUSEHOLD: owner, MEMBER: member})
    for name, var in spec.person.variables.items():
        persons[name] = _draw([r[name] for r in rows], var, rng)
    return Candidates(derive(spec, households, persons), persons, np.full(len(which), 1.0 / variants),
                      np.zeros(len(which), dtype=bool))


def empty(spec: HouseholdSpec) -> Candidates:
    households = pd.DataFrame({**{n: [] for n in spec.household_schema.variables}, COMPOSITION: []})
    persons = pd.DataFrame({HOUSEHOLD: [], MEMBER: [], **{n: [] for n in spec.person.variables}})
    return Candidates(households, persons, np.zeros(0), np.zeros(0, dtype=bool))


def _margin_draw(spec: HouseholdSpec, targets: HouseholdTargets, name: str, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """``size`` values of a household variable drawn from the region margin of the finest household
    table that has it (numeric: a bin by its share, then uniformly inside); None if no table has it."""
    tables = [t for t in targets if t.level == "households" and name in t.variables]
    if not tables:
        return None
    table = max(tables, key=lambda t: next(a.size for a in t.axes if a.variable == name))
    axis_index = table.variables.index(name)
    axis = table.axes[axis_index]
    margin = table.region.sum(axis=tuple(i for i in range(len(table.axes)) if i != axis_index))
    bins = rng.choice(axis.size, size=size, p=margin / margin.sum())
    var = spec.household.variables[name]
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
    return Candidates(derive(spec, households, persons), persons, np.full(count, weight / count), np.ones(count, dtype=bool))


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
                      np.concatenate([p.prior for p in parts]), np.concatenate([p.filler for p in parts]))
