"""The spec's ``constraints:`` — hard rules over households and persons — checked and enforced.

A *household constraint* is a rule over household variables and derived counts; a *person
constraint* a rule over a person's variables and its household's (the language and levels of
``rules:``). A candidate household is allowed when it breaks no household constraint and none of its
members breaks a person constraint; every other candidate is left out before balancing, so no
household written breaks a constraint.

:func:`check_constraints` runs before any LLM call: from households drawn from the tables alone
(:func:`.candidates.independent`), it names every control cell that such households do reach but
never while meeting the constraints — a table says those households exist, a constraint says they
cannot. Knows rules, tables and frames, not LLMs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import Problem, SpecError
from ..rules import Rule, parse_rule
from .candidates import Candidates, independent
from .controls import HOUSEHOLD, HouseholdTargets, incidence, joined
from .spec import HouseholdSpec

CHECK_HOUSEHOLDS = 20_000  # households drawn from the tables to check the constraints against them
EVIDENCE = 20  # a cell reached by at least this many of them, none allowed, is a contradiction
SHOWN = 5  # cells named at most


def parsed(spec: HouseholdSpec) -> tuple[list[Rule], list[Rule]]:
    """(household constraints, person constraints), parsed against their levels' schemas."""
    c = spec.constraints
    return ([parse_rule(t, spec.household_schema, f"constraints.households[{i}]") for i, t in enumerate(c.households)],
            [parse_rule(t, spec.joined_schema, f"constraints.persons[{i}]") for i, t in enumerate(c.persons)])


def broken(spec: HouseholdSpec, households: pd.DataFrame, persons: pd.DataFrame) -> dict[str, np.ndarray]:
    """Constraint text -> mask over ``households`` (rows, derived counts included) of those that break
    it: the household itself, or one of its members (``persons[HOUSEHOLD]`` is the household's row)."""
    household_rules, person_rules = parsed(spec)
    out = {rule.text: np.asarray(rule.violations(households), dtype=bool) for rule in household_rules}
    if person_rules:
        people = joined(households, persons)
        owner = persons[HOUSEHOLD].to_numpy()
        for rule in person_rules:
            mask = np.zeros(len(households), dtype=bool)
            mask[owner[np.asarray(rule.violations(people), dtype=bool)]] = True
            out[rule.text] = out.get(rule.text, np.zeros(len(households), dtype=bool)) | mask
    return out


def enforce(spec: HouseholdSpec, part: Candidates) -> tuple[Candidates, dict[str, int]]:
    """The candidates of ``part`` that break no constraint (their prior scaled so the part weighs as
    before), and how many each constraint took out."""
    if not (spec.constraints.households or spec.constraints.persons) or not len(part):
        return part, {}
    masks = broken(spec, part.households, part.persons)
    out = np.logical_or.reduce(list(masks.values()))
    return part.keep(~out), {text: int(m.sum()) for text, m in masks.items()}


def check_constraints(spec: HouseholdSpec, targets: HouseholdTargets, seed: int = 0) -> None:
    """SpecError naming the control cells with a positive target that households drawn from the
    tables reach (at least ``EVIDENCE`` of them) but never while meeting the constraints."""
    if not (spec.constraints.households or spec.constraints.persons):
        return
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    drawn = independent(spec, targets, None, CHECK_HOUSEHOLDS, 1.0, rng)
    if not len(drawn):
        return
    masks = broken(spec, drawn.households, drawn.persons)
    out = np.logical_or.reduce(list(masks.values()))
    matrix = incidence(targets, drawn.households, drawn.persons)
    reached = np.asarray((matrix > 0).sum(axis=0)).ravel()
    allowed = np.asarray((matrix[np.flatnonzero(~out)] > 0).sum(axis=0)).ravel()
    region = targets.region_vector()
    bad = np.flatnonzero((region > 0) & (reached >= EVIDENCE) & (allowed == 0))
    if not len(bad):
        return
    offsets = targets.offsets()
    problems = []
    for j in bad[:SHOWN]:
        t = int(np.searchsorted(offsets, j, side="right") - 1)
        table = targets.tables[t]
        index = np.unravel_index(int(j - offsets[t]), table.shape)
        cell = ", ".join(f"{a.variable} = {a.labels[i]}" for a, i in zip(table.axes, index))
        rows = np.flatnonzero(np.asarray(matrix[:, j].todense()).ravel() > 0)
        always = [text for text, m in masks.items() if m[rows].all()]  # each alone leaves the cell empty
        names = always or [text for text, m in masks.items() if m[rows].any()]  # or together
        said = (f"breaks {' and '.join(repr(n) for n in always)}" if always
                else f"breaks one of {', '.join(repr(n) for n in names)}")
        problems.append(Problem(f"{spec.source}: constraints",
                                f"table {table.name!r} has {region[j]:g} in the cell {cell}, but every household "
                                f"there {said}; expected constraints the tables allow (drop or narrow the constraint, "
                                "or check the table)"))
    if len(bad) > SHOWN:
        problems.append(Problem(f"{spec.source}: constraints", f"… and {len(bad) - SHOWN} more such cell(s)"))
    raise SpecError(problems)
