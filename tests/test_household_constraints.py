"""Household ``constraints:`` — hard rules over households and persons: parsed at load with a clear
error, checked against the tables before any LLM call, enforced on every candidate so that no
household written breaks one, with the targets still met."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_household_compose import SchemaLLM, tiny_two_zones

from llmsynthor.core.errors import SpecError
from llmsynthor.shapes.households.candidates import Candidates
from llmsynthor.shapes.households.constraints import broken, check_constraints
from llmsynthor.shapes.households.controls import HOUSEHOLD, load_controls
from llmsynthor.shapes.households.evaluation import evaluate_households
from llmsynthor.shapes.households.spec import parse_household_spec
from llmsynthor.shapes.households.synthesizer import HouseholdSynthesizer

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


def test_the_manifest_and_the_report_say_what_the_constraints_left_out(tmp_path):
    import json

    from llmsynthor.shapes.households.output import write_outputs

    spec = spec_with(CONSTRAINTS)
    targets = load_controls(spec)
    llm = SchemaLLM(domains={"age": (0, 99)})
    result = HouseholdSynthesizer(spec, llm, targets=targets).run()
    evaluation = evaluate_households(spec, targets, result.households, result.persons)
    paths = write_outputs(spec, result, evaluation, llm, tmp_path / "out", targets=targets)
    manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    assert manifest["constraints"]["by_constraint"] == result.constraints["by_constraint"]
    assert manifest["evaluation"]["rejection"]["constraint_households"] == 0
    page = paths["report"].read_text(encoding="utf-8")
    assert "constraints (enforced)" in page and "<td>relationship == spouse -&gt; age &gt;= 18</td>" in page
    left = result.constraints["left_out"]["composition"]
    assert f"<td>all composition candidates</td><td>{left:,} of {result.constraints['candidates']['composition']:,}</td>" in page


def test_more_independent_candidates_are_drawn_while_a_table_misses_at_the_region(monkeypatch):
    """A pool too thin for list balancing to meet every table gets more independent candidates (up
    to TOP_UPS rounds, each said in the notes), and the region then misses by less."""
    import llmsynthor.shapes.households.synthesizer as synthesizer

    data = tiny_two_zones(0)
    data["targets"].append({"name": "size_kids", "variables": ["size", "kids"], "cells": [  # children as households have them
        {"size": "[1,2)", "kids": "[0,1)", "count": 8}, {"size": "[2,3)", "kids": "[0,1)", "count": 4},
        {"size": "[2,3)", "kids": "[1,4]", "count": 3}, {"size": "[3,4]", "kids": "[0,1)", "count": 1},
        {"size": "[3,4]", "kids": "[1,4]", "count": 4}]})
    data["synthesis"] = {**data["synthesis"], "variants": 1, "filler": 0.0, "independent_households": 2}
    spec = parse_household_spec(data)
    monkeypatch.setattr(synthesizer, "TOP_UPS", 0)
    thin = HouseholdSynthesizer(spec, SchemaLLM(domains={"age": (0, 99)})).fit()
    _, missed = thin.region_misses(thin.region_.achieved)
    assert missed > spec.synthesis.tolerance_tvd and not any("more independent" in n for n in thin.notes_)
    monkeypatch.setattr(synthesizer, "TOP_UPS", 3)
    topped = HouseholdSynthesizer(spec, SchemaLLM(domains={"age": (0, 99)})).fit()
    assert any("more independent candidates" in n for n in topped.notes_) and topped.top_ups_ > 0
    assert topped.region_misses(topped.region_.achieved)[1] < missed
    assert len(topped.candidates_) == len(thin.candidates_) + topped.top_ups_ == topped.matrix_.shape[0]
