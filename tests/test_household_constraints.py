"""Household ``constraints:`` — hard rules over households and persons: parsed at load with a clear
error, checked against the tables before any LLM call, enforced on every candidate so that no
household written breaks one, with the targets still met."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_household_compose import SchemaLLM, tiny_two_zones

from llmsynthor.errors import SpecError
from llmsynthor.households.candidates import Candidates
from llmsynthor.households.constraints import broken, check_constraints
from llmsynthor.households.controls import HOUSEHOLD, load_controls
from llmsynthor.households.evaluation import evaluate_households
from llmsynthor.households.spec import parse_household_spec
from llmsynthor.households.synthesizer import HouseholdSynthesizer

CONSTRAINTS = {"households": ["kids >= 1 -> size >= 2"],
               "persons": ["relationship == child -> age < 18", "relationship == spouse -> age >= 18"]}


def spec_with(constraints: dict | None, seed: int = 0):
    data = tiny_two_zones(seed)
    if constraints is not None:
        data["constraints"] = constraints
    return parse_household_spec(data, source="tiny.yaml")


def violations(spec, households: pd.DataFrame, persons: pd.DataFrame) -> int:
    """Households of the written frames that break one of CONSTRAINTS (derived counts recounted)."""
    checked = spec_with(CONSTRAINTS)
    row = pd.Series(np.arange(len(households)), index=households["household_id"])
    members = persons.assign(**{HOUSEHOLD: row.loc[persons["household_id"]].to_numpy()})
    frame = households.copy()
    frame["kids"] = np.bincount(members.loc[members["age"] < 18, HOUSEHOLD], minlength=len(frame))
    return int(np.logical_or.reduce(list(broken(checked, frame, members).values())).sum())


def test_a_constraint_that_does_not_parse_is_named_with_its_place():
    spec = spec_with({"persons": ["relationship == child -> works == maybe"]})
    with pytest.raises(SpecError) as error:
        load_controls(spec)
    text = str(error.value)
    assert "constraints.persons[0]" in text and "maybe" in text


def test_no_household_written_breaks_a_constraint_and_the_targets_still_hold():
    free = HouseholdSynthesizer(spec_with(None), SchemaLLM(domains={"age": (0, 99)})).run()
    assert violations(spec_with(None), free.households, free.persons) > 0  # the fake's random households break them

    spec = spec_with(CONSTRAINTS)
    result = HouseholdSynthesizer(spec, SchemaLLM(domains={"age": (0, 99)})).run()
    assert violations(spec, result.households, result.persons) == 0
    evaluation = evaluate_households(spec, load_controls(spec), result.households, result.persons)
    assert evaluation.rejection["constraint_households"] == 0
    for name, figures in evaluation.on_targets.items():
        assert figures["tvd"] <= 0.05, (name, figures)
    counts = result.constraints
    assert counts["persons"] == CONSTRAINTS["persons"] and counts["households"] == CONSTRAINTS["households"]
    assert counts["left_out"]["composition"] > 0 and set(counts["by_constraint"]) == {*CONSTRAINTS["households"],
                                                                                     *CONSTRAINTS["persons"]}


def test_a_constraint_that_contradicts_a_table_is_an_error_naming_the_cell_before_any_llm_call():
    spec = spec_with({"households": ["size >= 1 -> size <= 2"]})  # the size table has 5 households of 3 to 4
    llm = SchemaLLM(domains={"age": (0, 99)})
    with pytest.raises(SpecError) as error:
        HouseholdSynthesizer(spec, llm).fit()
    text = str(error.value)
    assert "size_by_zone" in text and "size = [3,4]" in text and "'size >= 1 -> size <= 2'" in text
    assert llm.calls == []
    check_constraints(spec_with(CONSTRAINTS), load_controls(spec_with(CONSTRAINTS)))  # ones the tables allow: no error


def test_keeping_candidates_keeps_their_members_and_the_part_its_weight():
    households = pd.DataFrame({"size": [1, 2, 1], "tenure": ["own", "rent", "own"]})
    persons = pd.DataFrame({HOUSEHOLD: [0, 1, 1, 2], "member": [0, 0, 1, 0], "age": [30, 40, 8, 70]})
    part = Candidates(households, persons, np.array([0.2, 0.3, 0.5]), np.array(["filler"] * 3, dtype=object))
    kept = part.keep(np.array([False, True, True]))
    assert kept.households["size"].tolist() == [2, 1]
    assert kept.persons[HOUSEHOLD].tolist() == [0, 0, 1] and kept.persons["age"].tolist() == [40, 8, 70]
    np.testing.assert_allclose(kept.prior, [0.375, 0.625])  # 1.0 in all, as before
