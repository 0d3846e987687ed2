"""The trips bench's case (bench/mtc_trips.py): the MTC survey read from the activitysim wheel, its
chains checked, and the baselines' building blocks; plus the flow metrics (CPC, cosine)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from llmsynthor.core.metrics import cosine, cpc

sys.path.insert(0, str(ROOT / "bench"))
import mtc_trips  # noqa: E402
from wheels import wheel_or_skip  # noqa: E402

EXPECTED_CHAINS = {"persons with trips": 4612, "trips": 17606, "trips not starting where the previous ended": 159,
                   "persons: a trip not starting where the previous ended": 81, "persons: day not starting at home": 18,
                   "persons: day not ending at home": 10, "persons: a tour whose departures go backwards": 10,
                   "persons: a drive-alone tour with a walk, bike or transit leg": 53, "persons whose day is a valid chain": 4477}


@pytest.fixture(scope="module")
def survey():
    return mtc_trips.read_survey(wheel_or_skip(mtc_trips.wheel_path, mtc_trips.WHEEL))


def test_the_survey_is_read_whole_and_coded(survey):
    assert (len(survey.households), len(survey.persons), len(survey.tours), len(survey.trips)) == (2000, 5269, 6982, 17606)
    assert len(survey.zones) == 1454 and survey.zones["DISTRICT"].nunique() == 34
    trips = survey.trips
    assert set(trips["period"]) == set(mtc_trips.PERIODS) and trips["purpose"].nunique() == 8 and trips["mode"].nunique() == 6
    assert trips[["purpose", "mode", "km"]].notna().all().all() and (trips["km"] > 0).all()
    assert trips["km"].median() == pytest.approx(5.0, abs=2.5)  # a Bay Area trip: a few km, not hundreds


def test_the_survey_s_chains_are_checked_and_what_breaks_is_counted(survey):
    found = mtc_trips.check_chains(survey)
    assert found == EXPECTED_CHAINS


def test_flow_metrics_on_known_tables():
    assert cpc([1, 2, 3], [1, 2, 3]) == 1.0 and cpc([1, 0], [0, 1]) == 0.0 and cpc([2, 2], [1, 3]) == pytest.approx(0.75)
    assert cosine([1, 2], [2, 4]) == pytest.approx(1.0) and cosine([1, 0], [0, 1]) == 0.0 and cpc([0], [0]) == 1.0


def test_furness_meets_both_margins():
    rng = np.random.default_rng(0)
    production, attraction = np.array([10.0, 30.0, 60.0]), np.array([50.0, 25.0, 25.0])
    flows = mtc_trips.furness(production, attraction, rng.random((3, 3)), iterations=500, tolerance=1e-12)
    assert flows.sum(axis=1) == pytest.approx(production) and flows.sum(axis=0) == pytest.approx(attraction)


def test_the_tables_joint_keeps_every_trip_inside_its_districts_and_periods(survey):
    drawn = mtc_trips.ipf(survey.trips, survey.zones, np.random.default_rng(0))
    assert len(drawn) == len(survey.trips)
    assert (survey.zones.loc[drawn["origin"], "DISTRICT"].to_numpy() == drawn["o_district"].to_numpy()).all()
    assert (survey.zones.loc[drawn["destination"], "DISTRICT"].to_numpy() == drawn["d_district"].to_numpy()).all()
    period = np.asarray(mtc_trips.PERIODS)[np.searchsorted(mtc_trips.PERIOD_STARTS, drawn["depart"], side="right") - 1]
    assert (period == drawn["period"].to_numpy()).all()
    pairs = set(map(tuple, survey.trips[["purpose", "mode"]].to_numpy()))
    assert set(map(tuple, drawn[["purpose", "mode"]].to_numpy())) <= pairs  # no purpose × mode the tables rule out
    scores = mtc_trips.score(survey.trips, drawn)
    assert scores["target TVD max"] < 0.15 and 0 < scores["TAZ OD CPC"] < 1


def test_counts_are_sparse_and_weighted():
    frame = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"]})
    assert mtc_trips.counts(frame, ["a", "b"], np.array([1.0, 2.0, 3.0])).to_dict() == {(1, "x"): 1.0, (1, "y"): 2.0, (2, "x"): 3.0}


def test_the_survey_s_valid_days_are_written_as_matsim_plans_and_read_back(survey, tmp_path):
    from llmsynthor.outputs.matsim import read_plans

    assert mtc_trips.write_survey_plans(survey, tmp_path / "plans.xml") == EXPECTED_CHAINS["persons whose day is a valid chain"]
    back = read_plans(tmp_path / "plans.xml")
    assert back["person_id"].nunique() == 4477 and set(back["mode"]) == {"car", "ride", "walk", "bike", "pt", "taxi"}
    trips = survey.trips[survey.trips["person_id"].astype(str).isin(back["person_id"])]
    assert len(back) == len(trips) and (back["depart"] // 3600).value_counts().sort_index().tolist() == trips["depart"].value_counts().sort_index().tolist()


def test_the_flat_trips_case_is_a_valid_spec_and_its_rules_hold_on_the_survey(survey, tmp_path):
    from llmsynthor import load_spec, load_targets
    from llmsynthor.core.rules import parse_rule

    data = mtc_trips.flat_trips(survey)
    assert len(data) == 17606 and data.notna().all().all() and list(data.columns) == list(mtc_trips.FLAT_VARIABLES)
    spec = load_spec(mtc_trips.write_case(tmp_path, data, 5000))
    targets = load_targets(spec)
    assert len(list(targets)) == 8 and targets.n == 5000
    for text in mtc_trips.FLAT_RULES:
        rates = parse_rule(text, spec.record_schema).rates(data)
        assert rates["among_condition"] <= 0.002, text  # each rule holds for at least 99.8 % of the trips it concerns
