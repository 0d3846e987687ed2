"""Levels of linked records (core.levels) and the constraint check on any incidence (fitting.constraints)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsynthor.core.levels import Level, LevelTable, Linked, chain, incidence, level_counts, repeat_candidates
from llmsynthor.core.tables import Axis, name_cell
from llmsynthor.fitting.constraints import contradiction_problems, contradictions

HOUSEHOLDS = Level("households", id="household_id")
PERSONS = Level("persons", id="person_id", parent="households", link="household")
TRIPS = Level("trips", id="trip_id", parent="persons", link="person")


def three_levels() -> Linked:
    """Two households: the first with persons a (2 trips) and b (none), the second with c (1 trip)."""
    households = pd.DataFrame({"size": ["2", "1"]})
    persons = pd.DataFrame({"household": [0, 0, 1], "age": ["adult", "child", "adult"], "name": ["a", "b", "c"]})
    trips = pd.DataFrame({"person": [2, 0, 0], "mode": ["walk", "car", "walk"]})
    return Linked(chain(HOUSEHOLDS, PERSONS, TRIPS), {"households": households, "persons": persons, "trips": trips})


def test_a_chain_is_checked_top_first():
    assert chain(HOUSEHOLDS, PERSONS, TRIPS) == (HOUSEHOLDS, PERSONS, TRIPS)
    with pytest.raises(ValueError, match="first level is the top"):
        chain(PERSONS, TRIPS)
    with pytest.raises(ValueError, match="must have 'households' as its parent"):
        chain(HOUSEHOLDS, TRIPS)
    with pytest.raises(ValueError, match="a parent needs a link column"):
        Level("persons", id="person_id", parent="households")


def test_linked_frames_name_what_is_missing():
    with pytest.raises(ValueError, match=r"trips, persons.household"):
        Linked(chain(HOUSEHOLDS, PERSONS, TRIPS), {"households": pd.DataFrame({"x": [1]}), "persons": pd.DataFrame({"age": ["a"]})})


def test_rows_see_their_ancestors_and_belong_to_their_candidate():
    linked = three_levels()
    trips = linked.joined("trips")
    assert trips[["mode", "age", "size"]].values.tolist() == [["walk", "adult", "1"], ["car", "adult", "2"], ["walk", "adult", "2"]]
    assert linked.owners("trips").tolist() == [1, 0, 0] and linked.owners("persons").tolist() == [0, 0, 1]


def test_incidence_counts_each_level_s_rows_per_candidate_and_level_counts_weight_them():
    linked = three_levels()
    tables = [LevelTable("households_by_size", "households", (Axis("size", ("1", "2")),), np.array([5.0, 5.0]), None),
              LevelTable("trips_by_mode_age", "trips", (Axis("mode", ("walk", "car")), Axis("age", ("adult", "child"))),
                         np.zeros((2, 2)), None)]
    matrix = incidence(tables, linked).toarray()
    # columns: size 1, size 2 | walk·adult, walk·child, car·adult, car·child
    assert matrix.tolist() == [[0, 1, 1, 0, 1, 0], [1, 0, 1, 0, 0, 0]]
    assert level_counts(tables[1], linked, np.array([3.0, 1.0])).tolist() == [[4.0, 0.0], [3.0, 0.0]]
    assert name_cell(tables, 4) == ("trips_by_mode_age", "mode = car, age = adult")


def test_repeated_candidates_number_every_level_and_carry_their_ancestors_ids():
    out = repeat_candidates(three_levels(), np.array([1, 0, 0]))
    assert out["households"][["household_id", "size"]].values.tolist() == [[1, "1"], [2, "2"], [3, "2"]]
    persons = out["persons"]
    assert list(persons.columns[:2]) == ["household_id", "person_id"] and "household" not in persons
    assert persons[["household_id", "person_id", "name"]].values.tolist() == [[1, 1, "c"], [2, 2, "a"], [2, 3, "b"], [3, 4, "a"], [3, 5, "b"]]
    trips = out["trips"]
    assert list(trips.columns[:3]) == ["household_id", "person_id", "trip_id"]
    assert trips[["household_id", "person_id", "trip_id", "mode"]].values.tolist() == [
        [1, 1, 1, "walk"], [2, 2, 2, "car"], [2, 2, 3, "walk"], [3, 4, 4, "car"], [3, 4, 5, "walk"]]


def test_a_cell_every_candidate_there_breaks_is_a_contradiction_naming_the_constraints():
    incidence_ = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0]])
    broken = {"r1": np.array([True, False, False]), "r2": np.array([False, True, True])}
    found = contradictions(incidence_, [5, 3, 2], broken)
    assert [(c.cell, c.alone, c.together) for c in found] == [(0, (), ("r1", "r2")), (1, ("r2",), ("r2",)), (2, ("r1",), ("r1",))]
    assert contradictions(incidence_, [0, 0, 2], broken, evidence=2) == []  # cell 2 reached once only; the others want none
    assert contradictions(incidence_, [5, 3, 2], {"r1": np.zeros(3, dtype=bool)}) == []  # a constraint nobody breaks
    tables = [LevelTable("t", "records", (Axis("x", ("a", "b", "c")),), np.zeros(3), None)]
    problems = contradiction_problems(found, lambda j: name_cell(tables, j), "spec.yaml", "record")
    assert "table 't' has 5 in the cell x = a, but every record there breaks one of 'r1', 'r2'" in str(problems[0])
    assert "table 't' has 3 in the cell x = b, but every record there breaks 'r2'" in str(problems[1])


def test_a_parent_frame_with_any_index_is_joined_by_row_number_and_no_table_gives_an_empty_incidence():
    linked = three_levels()
    shuffled = Linked(linked.levels, {**linked.frames, "households": linked.frames["households"].set_axis([7, 3])})
    assert shuffled.joined("persons")["size"].tolist() == ["2", "2", "1"]
    assert incidence([], linked).shape == (2, 0)
