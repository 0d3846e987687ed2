"""What-if scenarios that change the baseline's own trips: a share of one mode's tours made by another
(shapes.trips.scenario.shift_modes) — a text naming no zone and no number of people read as such a change
and checked before any model work, the model's questions answered by a test double scorer, whole tours
moved (only their modes), none of a length the new mode never travels — and a share of tours not made
(cancel_tours, given in the spec): whole tours, every day left a chain; the scenarios' folders and the report
beside the baseline. The real model reads a change of modes in test_trips_model.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_trips_scenario import Scorer, flat, small
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.core.errors import SpecError
from llmsynthor.shapes.trips.evaluation import chains_of
from llmsynthor.shapes.trips.inputs import read_inputs
from llmsynthor.shapes.trips.scenario import (
    ask_shift,
    cancel_tours,
    check_scenarios,
    flow_changes,
    read_shift_text,
    shift_modes,
    text_kind,
)
from llmsynthor.shapes.trips.spec import Cancel, Scenario, Shift

runner = CliRunner()
STRIKE = {"mode": "transit", "to": "drive alone", "share": 0.5, "purpose": None, "start": None, "end": None}
LOCKDOWN = {"share": 0.5, "purpose": "work", "mode": None, "start": None, "end": None}


# ---- the text, before any model work

@pytest.mark.parametrize("text, shift", [
    ("a transit strike: half of the transit riders drive alone instead", True),
    ("from 6:00 to 10:00, 30% of drive-alone commuters take transit", True),
    ("a fair in zone 5 from 18:00 to 21:00 draws 6 visitors", False),  # a zone and visitors: an event
    ("a fair downtown from 18:00 to 21:00 draws 6 visitors", False),  # visitors without a zone: an event, refused as one
])
def test_a_text_naming_no_zone_and_no_people_is_a_change_of_modes(text, shift):
    assert (text_kind(text) == "shift") is shift


@pytest.mark.parametrize("text, said", [
    ("a transit strike: half of the transit riders drive alone instead", ((), None)),
    ("from 6:00 to 10:00, 30% of drive-alone commuters take transit", ((6, 9), 0.3)),  # leaving home in hours 6 to 9
    ("between 7 am and 9 am 12.5 percent of walkers cycle", ((7, 8), 0.125)),
    ("from 20:00 to midnight most walkers take transit", ((20, 23), None)),
])
def test_a_change_of_modes_states_its_hours_and_percentage(tmp_path, text, said):
    _, spec = small(tmp_path)
    got = read_shift_text(Scenario(name="x", text=text), spec)
    assert (got.hours, got.share) == said


@pytest.mark.parametrize("text, says", [
    ("at 8:00 half of the transit riders drive alone", "gives 1 time; a change of modes gives none (the whole day) or two"),
    ("from 10:00 to 6:00 half of the transit riders drive alone", "ends at 6:00, not after it starts at 10:00"),
    ("from 8:00 to 8:00 half of the transit riders drive alone", "ends at 8:00, not after it starts at 8:00"),
    ("from 2:00 to 4:00 half of the transit riders drive alone", "'2:00' is outside the day's hours"),
    ("30% of walkers drive and 20% of riders walk", "gives 2 percentages"),
    ("150% of the transit riders drive alone", "150% is not a share of tours"),
])
def test_a_change_of_modes_with_wrong_hours_or_shares_is_refused_before_any_work(tmp_path, text, says):
    _, spec = small(tmp_path)
    with pytest.raises(SpecError) as error:
        read_shift_text(Scenario(name="strike", text=text), spec)
    assert "scenarios: strike" in str(error.value) and says in flat(str(error.value))


def test_a_given_shift_outside_the_spec_is_refused_when_the_spec_is_read(tmp_path):
    with pytest.raises(SpecError) as error:
        small(tmp_path, scenarios=[{"name": "a", "shift": {"mode": "rocket", "to": "rocket", "share": 0.5, "purpose": "home"}},
                                   {"name": "b", "shift": {"mode": "walk", "to": "transit", "share": 0.5, "start": 7}}])
    message = flat(str(error.value))
    assert "scenario 'a': mode 'rocket' is not one of trips.modes" in message and "mode and to are both 'rocket'" in message
    assert "purpose 'home' is not an activity" in message and "scenario 'b': give both start and end" in message
    with pytest.raises(SpecError) as error:
        small(tmp_path / "two", scenarios=[{"name": "c", "text": "half of the transit riders drive alone", "shift": STRIKE}])
    assert "shift (tours moved to another mode), cancel (tours not made) or close" in flat(str(error.value))


def test_a_shift_text_needs_a_model_and_is_checked_with_the_others(tmp_path):
    _, spec = small(tmp_path, scenarios=[{"name": "strike", "text": "half of the transit riders drive alone instead"},
                                         {"name": "rush", "text": "from 9:00 to 7:00 most drivers take transit"}])
    zones = read_inputs(spec).zones
    with pytest.raises(SpecError) as error:
        check_scenarios(spec, zones, model=False)
    message = flat(str(error.value))
    assert "scenarios: strike: is a sentence, and this run has no model to read it" in message and "`shift: {mode, to, share}`" in message
    assert "scenarios: rush: ends at 7:00, not after it starts at 9:00" in message
    one = spec.model_copy(update={"trips": spec.trips.model_copy(update={"modes": ["walk"]})})
    with pytest.raises(SpecError) as error:
        check_scenarios(one, zones, model=True)
    assert "scenarios: strike: reads as a change of modes (no zone, no number of people), and trips.modes has one mode" in flat(
        str(error.value))


# ---- the model's part, with a test double scorer

def test_the_model_chooses_the_modes_the_activity_and_the_share_among_the_specs_words(tmp_path):
    _, spec = small(tmp_path)
    spec = spec.model_copy(update={"trips": spec.trips.model_copy(update={"words": {"drive alone": "car, alone"}})})
    scenario = Scenario(name="strike", text="a transit strike from 6:00 to 10:00: commuters to work drive instead")
    said = read_shift_text(scenario, spec)
    scorer = Scorer({"from": "transit", "to": "car, alone", "scope": "trips for work", "part": "most"})
    seen = []
    shift, asked = ask_shift(scenario, said, spec, scorer, seen.append)
    assert shift == Shift(mode="transit", to="drive alone", share=0.75, purpose="work", start=6, end=9)
    assert len(seen) == 4 and set(asked) == {"from", "to", "scope", "part"}
    assert scorer.asked[1][2] == ["car, alone", "walk"]  # the mode left is not offered again; the spec's words
    assert scorer.asked[2][2] == ["trips of any activity", "trips for work", "trips for school", "trips for shopping"]
    assert scorer.asked[0][0].startswith("Change: a transit strike")
    given = read_shift_text(Scenario(name="s", text="40% of the transit riders drive alone"), spec)
    shift, asked = ask_shift(scenario, given, spec, Scorer({"from": "transit", "to": "car, alone", "scope": "trips of any activity"}))
    assert shift.share == 0.4 and shift.purpose is None and shift.start is None and "part" not in asked  # the text's percentage


def test_a_question_with_one_option_is_not_asked(tmp_path):
    _, spec = small(tmp_path)
    spec = spec.model_copy(update={"trips": spec.trips.model_copy(update={"modes": ["drive alone", "transit"]})})
    scenario = Scenario(name="strike", text="a transit strike: 50% of the transit riders drive alone")
    scorer = Scorer({"from": "transit", "scope": "trips of any activity"})  # asked for "to", the double would fail
    shift, asked = ask_shift(scenario, read_shift_text(scenario, spec), spec, scorer)
    assert shift.to == "drive alone" and asked["to"] == {"drive alone": 1.0} and len(scorer.asked) == 2


# ---- the change applied

def tours(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    """Trips of one-tour persons: (tour, mode, km) per trip; out and back at 8 and 17."""
    frame = pd.DataFrame(rows, columns=["tour_id", "trip_mode", "km"])
    first = ~frame["tour_id"].duplicated()
    return frame.assign(person_id=frame["tour_id"], trip_id=np.arange(1, len(frame) + 1), origin="1", destination="2",
                        depart=np.where(first, 8, 17), purpose=np.where(first, "work", "home"))


def test_whole_tours_change_mode_and_none_of_a_length_the_new_mode_never_travels_or_longer_than_its_longest():
    # walks are 1 km; drive-alone tours of 1 km (1, 2) and of 20 km (3, 4): all drive-alone tours asked to walk
    trips = tours([(1, "drive alone", 1.0), (1, "drive alone", 1.0), (2, "drive alone", 1.0), (2, "drive alone", 1.0),
                   (3, "drive alone", 20.0), (3, "drive alone", 20.0), (4, "drive alone", 20.0), (4, "drive alone", 20.0),
                   *[(t, "walk", 1.0) for t in (5, 5, 6, 6)]])
    shifted = shift_modes(Shift(mode="drive alone", to="walk", share=1.0), trips, np.random.default_rng(0))
    assert (shifted.asked, shifted.in_scope, shifted.plausible, shifted.placed) == (4, 4, 2, 2)
    moved = shifted.trips[shifted.trips["shifted"]]
    assert sorted(moved["tour_id"].unique()) == [1, 2] and (moved["trip_mode"] == "walk").all()  # whole tours, the short ones
    pd.testing.assert_frame_equal(shifted.trips.drop(columns=["shifted", "trip_mode"]), trips.drop(columns="trip_mode"))
    assert (trips["trip_mode"] == "drive alone").sum() == 8  # the baseline's frame is left as it was
    # walks of up to 25 km (the band over 20 km): a drive-alone tour of 60 km is in that band but longer than any walk
    far = tours([(1, "drive alone", 60.0), (1, "drive alone", 60.0), (2, "drive alone", 22.0), (2, "drive alone", 22.0),
                 (3, "walk", 25.0), (3, "walk", 25.0)])
    shifted = shift_modes(Shift(mode="drive alone", to="walk", share=1.0), far, np.random.default_rng(0))
    assert (shifted.plausible, shifted.placed) == (1, 1) and shifted.trips.loc[shifted.trips["shifted"], "tour_id"].unique().tolist() == [2]


def test_only_persons_of_a_kind_that_takes_the_new_mode_are_moved_to_it():
    # persons 1-6 drive alone; of their kind, "no car" (1-3) never drives in the baseline, "car" (4-6, 7) does
    trips = tours([(t, "transit", 5.0) for t in range(1, 7) for _ in range(2)] + [(7, "drive alone", 5.0)] * 2)
    kinds = pd.Series(["no car"] * 3 + ["car"] * 4, index=range(1, 8))
    shifted = shift_modes(Shift(mode="transit", to="drive alone", share=1.0), trips, np.random.default_rng(0), kinds)
    assert (shifted.in_scope, shifted.plausible, shifted.asked, shifted.placed) == (6, 3, 6, 3)
    assert sorted(shifted.trips.loc[shifted.trips["shifted"], "person_id"].unique()) == [4, 5, 6]
    anyone = shift_modes(Shift(mode="transit", to="drive alone", share=1.0), trips, np.random.default_rng(0))
    assert anyone.placed == 6  # without kinds, length alone decides


def test_the_share_of_the_tours_in_scope_moves_exactly():
    trips = tours([(t, "transit", 5.0) for t in range(1, 21) for _ in range(2)] + [(t, "drive alone", 5.0) for t in (30, 30)])
    for share, moved in ((0.5, 10), (0.25, 5), (1.0, 20)):
        shifted = shift_modes(Shift(mode="transit", to="drive alone", share=share), trips, np.random.default_rng(1))
        assert shifted.placed == shifted.asked == moved and shifted.trips["shifted"].sum() == 2 * moved
    late = shift_modes(Shift(mode="transit", to="drive alone", share=1.0, start=9, end=12), trips, np.random.default_rng(1))
    assert late.in_scope == 0 and late.placed == 0  # every tour leaves home at 8
    school = shift_modes(Shift(mode="transit", to="drive alone", share=1.0, purpose="school"), trips, np.random.default_rng(1))
    assert school.in_scope == 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("shift")
    path, spec = small(tmp_path, scenarios=[{"name": "strike", "shift": STRIKE}, {"name": "lockdown", "cancel": LOCKDOWN}])
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    return path, spec, folder, result


def test_a_run_writes_the_change_of_modes_beside_the_baseline_and_the_report_shows_both(run, tmp_path):
    path, spec, folder, result = run
    assert "scenario strike (given in the spec): 50% of the tours by transit go by drive alone instead" in flat(result.output)
    scenario = folder / "scenarios" / "strike"
    manifest = json.loads((scenario / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["shift"] == STRIKE
    assert manifest["only_modes_changed"] and manifest["others_are_the_baseline"]
    tours_ = manifest["tours"]
    assert tours_["moved"] == tours_["asked"] == round(0.5 * tours_["in_scope"]) > 0
    read = dict(dtype={"person_id": str, "household_id": str, "origin": str, "destination": str})
    before, after = pd.read_csv(folder / "trips.csv", **read), pd.read_csv(scenario / "trips.csv", **read)
    assert after["shifted"].sum() == manifest["trips_by_mode"]["moved"]
    assert (after.loc[after["shifted"], "trip_mode"] == "drive alone").all()
    assert ((before["trip_mode"] == "transit").sum() - (after["trip_mode"] == "transit").sum()) == after["shifted"].sum()
    assert flow_changes(before, after.drop(columns="shifted")).empty  # no flow or hour moved, only modes
    assert len(flow_changes(before, after, by_mode=True)) == manifest["flows_moved"]["cells"] > 0
    baseline_fit = json.loads((folder / "manifest.json").read_text())["fit_tvd"]
    fits = manifest["fit_tvd"]
    assert {k: v["baseline"] for k, v in fits.items()} == pytest.approx(baseline_fit, abs=1e-6)
    assert all(f["scenario"] == pytest.approx(f["baseline"], abs=1e-6) for name, f in fits.items() if name != "mode x purpose")
    persons = pd.read_csv(scenario / "persons.csv", dtype=str)
    assert chains_of(spec, persons, after.drop(columns="shifted")).valid.all()
    html = tmp_path / "report.html"
    made = runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)])
    assert made.exit_code == 0, made.output
    page = html.read_text()
    assert "Scenario strike" in page and "trips changed mode" in page and "trips by transit and by drive alone" in page


@pytest.mark.browser
def test_the_report_of_changes_of_modes_and_tours_not_made_renders_every_plot_in_a_browser(run, tmp_path):
    from browser import render

    path, _, folder, _ = run
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)]).exit_code == 0
    seen = render(html)
    assert seen.console_errors == []
    assert seen.declared_plots == seen.rendered_plots == 10  # 4 tables, length, hour, flows; two modes by hour; hours and map


def test_a_change_moving_no_tour_says_so(tmp_path):
    path, _ = small(tmp_path, scenarios=[{"name": "few", "shift": {"mode": "transit", "to": "walk", "share": 0.01}}])
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "scenario few: no tour changes:" in flat(result.output) and "1% of them rounds to none" in flat(result.output)



# ---- tours not made

def test_tours_not_made_go_whole_at_the_share_asked_and_every_day_left_is_a_chain(tmp_path):
    trips = tours([(t, "transit" if t % 2 else "drive alone", 5.0) for t in range(1, 21) for _ in range(2)])
    persons = pd.DataFrame({"person_id": np.arange(1, 22), "trips": [2] * 20 + [0]})
    gone = cancel_tours(Cancel(share=0.5), persons, trips, np.random.default_rng(0))
    assert (gone.in_scope, gone.asked, len(gone.trips), len(gone.removed)) == (20, 10, 20, 20)
    assert gone.removed.groupby("tour_id").size().eq(2).all()  # whole tours
    assert sorted(pd.concat([gone.trips, gone.removed])["trip_id"]) == trips["trip_id"].tolist()
    made = gone.persons.set_index("person_id")["trips"]
    assert made.sum() == 20 and made.loc[gone.removed["person_id"].unique()].eq(0).all() and made.loc[21] == 0
    by = cancel_tours(Cancel(share=1.0, mode="transit"), persons, trips, np.random.default_rng(0))
    assert (by.removed["trip_mode"] == "transit").all() and by.asked == 10
    assert cancel_tours(Cancel(share=1.0, start=9, end=12), persons, trips, np.random.default_rng(0)).asked == 0  # all leave at 8
    assert cancel_tours(Cancel(share=1.0, purpose="school"), persons, trips, np.random.default_rng(0)).asked == 0


def test_a_cancellation_outside_the_spec_is_refused_when_the_spec_is_read(tmp_path):
    with pytest.raises(SpecError) as error:
        small(tmp_path, scenarios=[{"name": "a", "cancel": {"share": 0.5, "mode": "rocket", "purpose": "home", "start": 9, "end": 7}}])
    message = flat(str(error.value))
    assert "mode 'rocket' is not one of trips.modes" in message and "purpose 'home' is not an activity" in message
    assert "hours 9–7" in message
    with pytest.raises(SpecError) as error:
        small(tmp_path / "zero", scenarios=[{"name": "b", "cancel": {"share": 0}}])
    assert "scenarios.0.cancel.share" in flat(str(error.value))


def test_a_run_writes_the_tours_not_made_beside_the_baseline_and_the_report_shows_both(run, tmp_path):
    path, spec, folder, result = run
    assert "scenario lockdown (given in the spec): 50% of the tours for work are not made" in flat(result.output)
    scenario = folder / "scenarios" / "lockdown"
    manifest = json.loads((scenario / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["cancel"] == LOCKDOWN and manifest["others_are_the_baseline"]
    assert manifest["tours"]["not_made"] == round(0.5 * manifest["tours"]["in_scope"]) > 0
    read = dict(dtype={"person_id": str, "household_id": str, "home_zone": str, "origin": str, "destination": str})
    before, after = pd.read_csv(folder / "trips.csv", **read), pd.read_csv(scenario / "trips.csv", **read)
    assert len(before) - len(after) == manifest["trips"]["removed"] > 0
    assert flow_changes(before, after)["change"].sum() == -manifest["trips"]["removed"]
    persons = pd.read_csv(scenario / "persons.csv", **read)
    assert persons["trips"].sum() == len(after) and chains_of(spec, persons, after).valid.all()
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)]).exit_code == 0
    assert "Scenario lockdown" in html.read_text() and "trips by departure hour" in html.read_text()


def test_every_tour_not_made_leaves_an_empty_scenario_written_and_scored(tmp_path):
    path, _ = small(tmp_path, scenarios=[{"name": "all", "cancel": {"share": 1.0}}])
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((folder / "scenarios" / "all" / "manifest.json").read_text())
    assert manifest["trips"]["scenario"] == 0 and manifest["chains"]["persons_with_trips"] == 0
    assert "<population />" in (folder / "scenarios" / "all" / "plans.xml").read_text()
