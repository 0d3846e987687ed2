"""What-if closures (shapes.trips.scenario.close_zone): a zone closed to the visits of an activity, in some hours or all
day, its visits made elsewhere — a text naming a zone, a word of closing and no number of people read as one and checked
before any model work, the activity chosen by a test double scorer; every visit in scope moved to another zone within
reach, the trip leaving it leaving from there, nothing else changed; the scenario's folder and the report beside the
baseline. The real model reads a closure in test_trips_model.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_trips_scenario import Scorer, flat, small
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.core.errors import SpecError
from llmsynthor.declarations.zones import Zones
from llmsynthor.shapes.trips.evaluation import chains_of
from llmsynthor.shapes.trips.inputs import read_inputs
from llmsynthor.shapes.trips.scenario import ask_close, check_scenarios, close_zone, read_close_text, text_kind
from llmsynthor.shapes.trips.spec import Close, Scenario

runner = CliRunner()
MALL = {"zone": "4", "purpose": "shopping", "start": None, "end": None}


# ---- the text, before any model work

@pytest.mark.parametrize("text, kind", [
    ("the shopping mall in zone 5 is closed from 10:00 to 20:00", "close"),
    ("zone 5 shuts: nobody goes there", "close"),
    ("the school in zone 3 closes for the day", "close"),
    ("the mall in zone Centre is closed", "close"),  # a zone id of the zone table without a digit
    ("zone 5 is closed, and its 300 shoppers go elsewhere", "close"),  # closed: a closure, refused for its number
    ("a fair in zone 5 from 18:00 to 21:00 draws 6 visitors", "event"),  # a zone and visitors
    ("a fair in zone 5, close to the station, from 18:00 to 21:00 draws 6 visitors", "event"),  # "close to": no closing
    ("the closing ceremony in zone 5 from 18:00 to 21:00 draws 60 fans", "event"),
    ("a fair in zone 5 from 18:00 to 21:00", "event"),  # a zone, no visitors, no closing: refused as an event
    ("a transit strike: half of the transit riders drive alone instead", "shift"),
    ("roads closed: 30% of drivers take transit", "shift"),  # closing, but no zone: a change of modes
])
def test_a_text_naming_a_zone_and_a_closing_is_a_closure(text, kind):
    assert text_kind(text, known=["Centre", "5"]) == kind


@pytest.mark.parametrize("text, said", [
    ("the shopping mall in zone 5 is closed from 10:00 to 20:00", ("5", (10, 19))),  # the trips there departing in hours 10-19
    ("zone 3 is shut all day", ("3", ())),
    ("from 6 pm to 11 pm the restaurants of zone 6 are closed", ("6", (18, 22))),
])
def test_a_closure_states_its_zone_and_hours(tmp_path, text, said):
    _, spec = small(tmp_path)
    got = read_close_text(Scenario(name="x", text=text), spec, read_inputs(spec).zones)
    assert (got.zone, got.hours) == said


@pytest.mark.parametrize("text, says", [
    ("the mall in zone 99 is closed", "names zone '99', not in the zone table"),
    ("the malls in zone 4 and zone 5 are closed", "names zones ['4', '5']; one closure in one zone"),
    ("the mall in zone 4 closes at 18:00", "gives 1 time; a closure gives none (the whole day) or two: when the trips there depart"),
    ("the mall in zone 4 is closed from 20:00 to 10:00", "ends at 10:00, not after it starts at 20:00"),
    ("the mall in zone 4 is closed from 1:00 to 4:00", "'1:00' is outside the day's hours"),
    ("the mall in zone 4 is 50% closed", "gives a percentage; a closure moves every visit in its scope elsewhere"),
    ("the mall in zone 4 is closed from 10 to 20", "gives '10', '20', no clock time: a closure gives no number but its hours"),
    ("zone 4 is closed, and its 300 shoppers go elsewhere", "gives '300', no clock time"),
])
def test_a_closure_with_a_wrong_zone_hours_or_a_share_is_refused_before_any_work(tmp_path, text, says):
    _, spec = small(tmp_path)
    with pytest.raises(SpecError) as error:
        read_close_text(Scenario(name="mall", text=text), spec, read_inputs(spec).zones)
    assert "scenarios: mall" in str(error.value) and says in flat(str(error.value))


def test_a_given_closure_outside_the_spec_or_the_zone_table_is_refused_before_any_work(tmp_path):
    with pytest.raises(SpecError) as error:
        small(tmp_path, scenarios=[{"name": "a", "close": {"zone": 4, "purpose": "home", "start": 9}}])
    message = flat(str(error.value))
    assert "purpose 'home' is not an activity" in message and "give both start and end (the hours the trips there depart in)" in message
    _, spec = small(tmp_path / "b", scenarios=[{"name": "b", "close": {"zone": 99}},
                                               {"name": "c", "text": "the mall in zone 4 is closed"}])
    zones = read_inputs(spec).zones
    with pytest.raises(SpecError) as error:
        check_scenarios(spec, zones, model=False)
    message = flat(str(error.value))
    assert "scenarios: b: closed zone '99' is not in the zone table" in message
    assert "scenarios: c: is a sentence, and this run has no model to read it" in message and "`close: {zone, purpose}`" in message
    one = spec.model_copy(update={"scenarios": [Scenario(name="d", close=Close(zone="4")),
                                                Scenario(name="e", text="the mall in zone 4 is closed")]})
    with pytest.raises(SpecError) as error:
        check_scenarios(one, Zones(np.array(["4"]), lon=np.zeros(1), lat=np.zeros(1)), model=True)
    message = flat(str(error.value))
    assert "scenarios: d: closes the only zone of the zone table: nowhere else to go" in message
    assert "scenarios: e: reads as a closure (a zone, a word of closing), and the zone table has one zone" in message


def test_the_model_chooses_the_activity_closed_or_any_among_the_specs_words(tmp_path):
    _, spec = small(tmp_path)
    spec = spec.model_copy(update={"trips": spec.trips.model_copy(update={"words": {"shopping": "buying things"}})})
    scenario = Scenario(name="mall", text="the mall in zone 4 is closed from 10:00 to 20:00")
    said = read_close_text(scenario, spec, read_inputs(spec).zones)
    scorer = Scorer({"closed": "visits for buying things"})
    seen = []
    close, asked = ask_close(scenario, said, spec, scorer, seen.append)
    assert close == Close(zone="4", purpose="shopping", start=10, end=19) and len(seen) == 1
    assert scorer.asked[0][2] == ["visits for any activity", "visits for work", "visits for school", "visits for buying things"]
    assert scorer.asked[0][0].startswith("Closure: the mall in zone 4")
    close, _ = ask_close(scenario, said, spec, Scorer({"closed": "visits for any activity"}))
    assert close.purpose is None


# ---- the closure applied

def days(zones) -> pd.DataFrame:
    """Three persons living in zone 1: shopping in zone 4 at 10 (and work in zone 4 at 8 for person 1); shopping in
    zone 4 at 10 then at 11 (two visits in a row); shopping in zone 4 at 20."""
    rows = [(1, 1, "1", "4", 8, "work"), (1, 1, "4", "4", 10, "shopping"), (1, 1, "4", "1", 17, "home"),
            (2, 2, "1", "4", 10, "shopping"), (2, 2, "4", "4", 11, "shopping"), (2, 2, "4", "1", 12, "home"),
            (3, 3, "1", "4", 20, "shopping"), (3, 3, "4", "1", 21, "home")]
    frame = pd.DataFrame(rows, columns=["person_id", "tour_id", "origin", "destination", "depart", "purpose"])
    rows_of = zones.rows(frame["origin"].to_numpy()), zones.rows(frame["destination"].to_numpy())
    return frame.assign(trip_id=np.arange(1, len(frame) + 1), trip_mode="walk", km=zones.km(*rows_of).round(3))


def test_every_visit_in_scope_goes_elsewhere_and_the_next_trip_leaves_from_there(tmp_path):
    _, spec = small(tmp_path)
    zones = read_inputs(spec).zones
    trips = days(zones)
    closed = close_zone(Close(zone="4", purpose="shopping", start=9, end=12), spec, zones, trips, np.random.default_rng(0))
    out = closed.trips
    assert closed.in_scope == 3  # person 1's visit at 10, person 2's two; not the work visit, not the visit at 20
    assert out.loc[out["moved"], "trip_id"].tolist() == [2, 3, 4, 5, 6]  # each visit and the trip leaving it
    visits = out[out["trip_id"].isin([2, 4, 5])]
    assert (visits["destination"] != "4").all()
    assert (out["origin"].to_numpy()[1:] == out["destination"].to_numpy()[:-1])[out["person_id"].to_numpy()[1:]
                                                                                 == out["person_id"].to_numpy()[:-1]].all()  # chains
    pd.testing.assert_frame_equal(out[~out["moved"]].drop(columns="moved"), trips[~out["moved"].to_numpy()])
    pd.testing.assert_frame_equal(out.drop(columns=["moved", "origin", "destination", "km"]), trips.drop(columns=["origin", "destination", "km"]))
    moved_rows = zones.rows(out["origin"].to_numpy()), zones.rows(out["destination"].to_numpy())
    assert out["km"].to_numpy() == pytest.approx(zones.km(*moved_rows).round(3))
    again = close_zone(Close(zone="4", purpose="shopping", start=9, end=12), spec, zones, trips, np.random.default_rng(0))
    pd.testing.assert_frame_equal(again.trips, out)  # one seed, one result
    every = close_zone(Close(zone="4"), spec, zones, trips, np.random.default_rng(0))
    assert every.in_scope == 5 and not ((every.trips["destination"] == "4") & (every.trips["purpose"] != "home")).any()
    assert (trips["destination"] == "4").sum() == 5  # the baseline's frame is left as it was


def test_a_visit_goes_only_within_reach_of_both_its_legs_and_to_the_zone_nearest_when_none_is(tmp_path):
    _, spec = small(tmp_path)
    zones = read_inputs(spec).zones
    trips = days(zones)
    for seed in range(5):
        closed = close_zone(Close(zone="4"), spec, zones, trips, np.random.default_rng(seed))
        km, before = closed.trips["km"].to_numpy(), trips["km"].to_numpy()
        visits = np.flatnonzero((trips["destination"] == "4").to_numpy() & (trips["purpose"] != "home").to_numpy())
        for i in visits:  # each leg of a visit within 1.5 x the longer of the two as they were + 1 km
            reach = 1.5 * max(before[i], before[i + 1]) + 1.0
            assert km[i] <= reach and km[i + 1] <= reach or i + 1 in visits
        assert closed.beyond_reach == 0
    # a person living in zone 4 shops there: both legs 0 km, no other zone within 1 km: the zone nearest zone 4, zone 5
    home = pd.DataFrame({"person_id": 9, "tour_id": 9, "origin": "4", "destination": "4", "depart": [10, 11],
                         "purpose": ["shopping", "home"], "trip_id": [1, 2], "trip_mode": "walk", "km": 0.0})
    closed = close_zone(Close(zone="4"), spec, zones, home, np.random.default_rng(0))
    assert closed.beyond_reach == 1 and closed.trips["destination"].tolist() == ["5", "4"] and closed.trips["origin"].tolist() == ["4", "5"]



def test_visits_in_a_row_each_move_and_the_districts_follow_the_zones(tmp_path):
    _, spec = small(tmp_path)
    zones = read_inputs(spec).zones
    trips = days(zones)
    district = dict(zip(zones.ids, zones.district.astype(str)))
    trips = trips.assign(origin_district=trips["origin"].map(district), destination_district=trips["destination"].map(district))
    for seed in range(5):
        out = close_zone(Close(zone="4", purpose="shopping"), spec, zones, trips, np.random.default_rng(seed)).trips
        two = out[out["person_id"] == 2]  # shopping in zone 4 twice in a row: both visits elsewhere, one chain
        assert (two["destination"].iloc[:2] != "4").all() and two["origin"].iloc[1] == two["destination"].iloc[0]
        assert two["origin"].iloc[2] == two["destination"].iloc[1] and two["destination"].iloc[2] == "1"
        assert (out["origin_district"] == out["origin"].map(district)).all()
        assert (out["destination_district"] == out["destination"].map(district)).all()


# ---- a run

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("close")
    path, spec = small(tmp_path, scenarios=[{"name": "mall", "close": MALL}])
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    return path, spec, folder, result


def test_a_run_writes_the_closure_beside_the_baseline_and_the_report_shows_both(run, tmp_path):
    path, spec, folder, result = run
    assert "scenario mall (given in the spec): zone 4 closed to visits for shopping; they are made elsewhere" in flat(result.output)
    scenario = folder / "scenarios" / "mall"
    manifest = json.loads((scenario / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["close"] == MALL
    assert manifest["only_zones_changed"] and manifest["others_are_the_baseline"]
    rise = manifest["arrivals_in_zone_in_scope"]
    assert rise["baseline"] == manifest["visits"]["in_scope"] > 0 and rise["scenario"] == 0
    read = dict(dtype={"person_id": str, "household_id": str, "home_zone": str, "origin": str, "destination": str})
    before, after = pd.read_csv(folder / "trips.csv", **read), pd.read_csv(scenario / "trips.csv", **read)
    assert len(before) == len(after) and after["moved"].sum() == manifest["trips"]["moved"] > 0
    assert manifest["visits"]["zones_gone_to"] == len(manifest["visits"]["to_zones"]) <= 20  # a few zones: all listed
    assert sum(manifest["visits"]["to_zones"].values()) == manifest["visits"]["in_scope"] and "4" not in manifest["visits"]["to_zones"]
    persons = pd.read_csv(scenario / "persons.csv", **read)
    assert chains_of(spec, persons, after.drop(columns="moved")).valid.all()
    fits = manifest["fit_tvd"]
    assert all(f["scenario"] == pytest.approx(f["baseline"], abs=1e-6) for name, f in fits.items() if name in ("mode x purpose",
                                                                                                            "trips per person"))
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)]).exit_code == 0
    page = html.read_text()
    assert "Scenario mall" in page and "visits moved" in page and "trips arriving in zone 4 for an activity" in page


@pytest.mark.browser
def test_the_report_of_a_closure_renders_every_plot_in_a_browser(run, tmp_path):
    from browser import render

    path, _, folder, _ = run
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)]).exit_code == 0
    seen = render(html)
    assert seen.console_errors == []
    assert seen.declared_plots == seen.rendered_plots == 9  # 4 tables, length, hour, flows; arrivals by hour and the map
