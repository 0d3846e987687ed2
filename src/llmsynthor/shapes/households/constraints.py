"""The spec's ``constraints:`` — hard rules over households and persons — checked and enforced.

A *household constraint* is a rule over household variables and derived counts; a *person
constraint* a rule over a person's variables and its household's (the language and levels of
``rules:``). A candidate household is allowed when it breaks no household constraint and none of its
members breaks a person constraint; every other candidate is left out before balancing, so no
household written breaks a constraint.

:func:`check_constraints` runs before any LLM call: from households drawn from the tables alone
(:func:`.candidates.independent`), it names every control cell that such households do reach but
never while meeting the constraints (:mod:`llmsynthor.fitting.constraints`, as for flat records) — a
table says those households exist, a constraint says they cannot. Knows rules, tables and frames, not LLMs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.errors import SpecError
from ...core.rules import Rule, parse_rule
from ...core.tables import name_cell
from ...fitting.constraints import contradiction_problems, contradictions
from .candidates import Candidates, independent
from .controls import HOUSEHOLD, HouseholdTargets, incidence, joined
from .spec import HouseholdSpec

CHECK_HOUSEHOLDS = 20_000  # households drawn from the tables to check the constraints against them
EVIDENCE = 20  # a cell reached by at least this many of them, none allowed, is a contradiction


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
    matrix = incidence(targets, drawn.households, drawn.persons)
    found = contradictions(matrix, targets.region_vector(), masks, evidence=EVIDENCE)
    if found:
        offsets = targets.offsets()
        raise SpecError(contradiction_problems(found, lambda j: name_cell(targets.tables, j, offsets), spec.source, "household"))
