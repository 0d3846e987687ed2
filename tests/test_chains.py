"""Persons' days of trips checked as chains (evaluation.chains): each reason caught, valid days pass."""

from __future__ import annotations

import pandas as pd
import pytest

from llmsynthor.core.errors import SpecError
from llmsynthor.evaluation.chains import check_days

# person 1: home 10 -> work 20 -> lunch 30 -> work 20 -> home 10, by car: valid
# person 2: starts at 11 (home is 10), jumps from 20 to 21, ends at 12; its walk tour goes back in time
# person 3: a drive-alone tour with a transit leg
TRIPS = pd.DataFrame([
    (1, 1, 1, 10, 20, 7, "car", "car"), (1, 2, 1, 20, 30, 12, "car", "car"), (1, 3, 1, 30, 20, 13, "car", "car"),
    (1, 4, 1, 20, 10, 17, "car", "car"),
    (2, 5, 2, 11, 20, 9, "walk", "walk"), (2, 6, 2, 21, 12, 8, "walk", "walk"),
    (3, 7, 3, 10, 40, 8, "car", "car"), (3, 8, 3, 40, 10, 18, "transit", "car"),
], columns=["person_id", "trip_id", "tour_id", "origin", "destination", "depart", "mode", "tour_mode"])
HOME = pd.Series({1: 10, 2: 10, 3: 10})


def test_each_reason_is_caught_and_a_valid_day_passes():
    check = check_days(TRIPS, order=["trip_id"], home=HOME, tour="tour_id", mode="mode", tour_mode="tour_mode",
                       car_modes=["car"], other_modes=["walk", "bike", "transit"])
    assert check.persons.tolist() == [1, 2, 3] and check.trips == 8
    assert {r: m.tolist() for r, m in check.broken.items()} == {
        "jump": [False, True, False], "not_from_home": [False, True, False], "not_to_home": [False, True, False],
        "backwards": [False, True, False], "car_left_behind": [False, False, True]}
    assert check.valid.tolist() == [True, False, False] and check.jumping_trips == 1
    assert check.counts == {"jump": 1, "not_from_home": 1, "not_to_home": 1, "backwards": 1, "car_left_behind": 1}


def test_departure_order_decides_and_ties_go_by_the_order_columns():
    tied = TRIPS[TRIPS["person_id"] == 1].assign(depart=8)  # every trip in one hour: the trip ids order them
    assert check_days(tied, order=["trip_id"], home=HOME).valid.tolist() == [True]
    reversed_ids = tied.assign(trip_id=tied["trip_id"].to_numpy()[::-1])
    assert check_days(reversed_ids, order=["trip_id"], home=HOME).counts["jump"] == 1


def test_without_homes_or_tours_only_continuity_is_checked():
    check = check_days(TRIPS)
    assert check.counts == {"jump": 1, "not_from_home": 0, "not_to_home": 0, "backwards": 0, "car_left_behind": 0}


def test_a_missing_column_is_named():
    with pytest.raises(SpecError, match="'depart'"):
        check_days(TRIPS.drop(columns=["depart"]))


def test_tour_ids_repeated_across_persons_are_never_compared_across_them_and_no_trips_is_no_day():
    per_person = pd.DataFrame({"person_id": [1, 1, 2, 2], "tour_id": [1, 1, 1, 1], "trip_id": [1, 2, 1, 2],
                               "origin": [10, 20, 10, 30], "destination": [20, 10, 30, 10], "depart": [8, 9, 7, 12]})
    assert check_days(per_person, order=["trip_id"], tour="tour_id").counts["backwards"] == 0
    empty = check_days(TRIPS.iloc[:0], home=HOME, tour="tour_id")
    assert empty.trips == 0 and len(empty.persons) == 0 and empty.counts["jump"] == 0
