"""What-if scenarios of the trips shape without a model: a scenario's text read and checked before any
work (zone, hours, visitors), the event's questions answered by a test double scorer, the visits added
to the baseline's days (the background record for record, the visitors' days still chains, the share
of the main mode exact), the flows that moved, the scenario's folder and the report beside the baseline.
The real model reads a scenario in test_trips_model.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE
from test_trips_inputs import spec_dict, write_case
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.core.errors import SpecError
from llmsynthor.llm.base import Choice
from llmsynthor.shapes.trips.evaluation import chains_of
from llmsynthor.shapes.trips.inputs import read_inputs
from llmsynthor.shapes.trips.scenario import add_visits, ask_event, check_scenarios, flow_changes, into_zone, read_text
from llmsynthor.shapes.trips.spec import Event, Scenario, load

runner = CliRunner()
FAIR = {"zone": "5", "start": 18, "end": 21, "visitors": 6, "purpose": "shopping", "mode": "transit", "share": "half"}


def small(tmp_path, **changes):
    spec = spec_dict()
    spec["trips"] |= {"first_hour": 5, "last_hour": 23}
    spec.update(changes)
    path = write_case(tmp_path / "case", spec=spec)
    return path, load(path)


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- the text, before any model work

@pytest.mark.parametrize("text, said", [
    ("a fair in zone 5 from 18:00 to 21:00 draws 6 visitors", ("5", (18, 21), (6,))),
    ("a game at zone 4 from 7 pm until 10pm with 1,200 fans", ("4", (19, 22), (1200,))),
    ("Zone 6 hosts a market, 8am to noon; 40 people, 10 of them by bike", ("6", (8, 12), (40, 10))),
    ("from 7:30 pm to 10:30 pm the zone of zone 3 draws 12 fans in 2 zones", ("3", (19, 22), (12, 2))),
])
def test_the_text_states_the_zone_hours_and_numbers(tmp_path, text, said):
    _, spec = small(tmp_path)
    got = read_text(Scenario(name="x", text=text), spec, read_inputs(spec).zones)
    assert (got.zone, got.hours, got.numbers) == said


@pytest.mark.parametrize("text, says", [
    ("a fair in zone 99 from 18:00 to 21:00 draws 6 visitors", "names zone '99', not in the zone table"),
    ("a fair downtown from 18:00 to 21:00 draws 6 visitors", "names no zone; say where as 'zone ID'"),
    ("a fair in zone 5 and zone 6 from 18:00 to 21:00, 6 visitors", "names zones ['5', '6']; one event in one zone"),
    ("a fair in zone 5 from 18:00 to 25:00 draws 6 visitors", "'25:00' is not a time of day"),
    ("a fair in zone 5 from 2:00 to 4:00 draws 6 visitors", "'2:00' is outside the day's hours"),
    ("a fair in zone 5 at 18:00 draws 6 visitors", "gives 1 time; say from when to when"),
    ("a fair in zone 5 from 18:00 to 21:00, a break at 19:00, 6 visitors", "gives 3 times; say from when to when"),
    ("a fair in zone 5 from 21:00 to 18:00 draws 6 visitors", "ends at 18:00, before it starts at 21:00"),
    ("a fair in zone 5 from 18:00 to 21:00 draws many", "gives no number of visitors"),
    ("a fair in zone 5 from 18:00 to 21:00 draws 0 visitors", "gives no number of visitors"),
    ("a fair in zone 5 from 18:00 to 21:00 draws 6.5 visitors", "'6.5' is not a whole number of visitors"),
    ("a fair in zone 5 from 18:00 to 21:00 draws 1.5k visitors", "'1.5k' is not a whole number of visitors"),
])
def test_a_text_naming_an_unknown_zone_or_time_is_refused_before_any_work(tmp_path, text, says):
    _, spec = small(tmp_path)
    with pytest.raises(SpecError) as error:
        read_text(Scenario(name="fair", text=text), spec, read_inputs(spec).zones)
    assert "scenarios: fair" in str(error.value) and says in flat(str(error.value))


def test_a_text_needs_a_model_and_a_given_event_a_known_zone(tmp_path):
    _, spec = small(tmp_path, scenarios=[{"name": "fair", "text": "a fair in zone 5 from 18:00 to 21:00, 6 visitors"},
                                         {"name": "expo", "event": {**FAIR, "zone": "77"}}])
    with pytest.raises(SpecError) as error:
        check_scenarios(spec, read_inputs(spec).zones, model=False)
    message = flat(str(error.value))
    assert "scenarios: fair: is a sentence, and this run has no model to read it" in message
    assert "scenarios: expo: event zone '77' is not in the zone table" in message


def test_an_event_outside_the_spec_is_refused_when_the_spec_is_read(tmp_path):
    with pytest.raises(SpecError) as error:
        small(tmp_path, scenarios=[{"name": "fair", "event": {**FAIR, "purpose": "home", "mode": "rocket", "start": 22, "end": 20}}])
    message = flat(str(error.value))
    assert "purpose 'home' is not an activity" in message and "mode 'rocket' is not one of trips.modes" in message
    assert "hours 22–20" in message


# ---- the model's part, with a test double scorer

class Scorer:
    """Answers every question with the option it is told, by token probabilities (a test double)."""

    name = "double"
    continues_answers = True

    def __init__(self, answers: dict[str, str]):
        self.answers, self.asked = answers, []

    def option_probabilities(self, messages, answer_prefix, options):
        self.asked.append((messages[-1]["content"], answer_prefix, list(options)))
        field = answer_prefix.split('"')[1]
        p = np.array([1.0 if o == self.answers[field] else 0.1 for o in options])
        return Choice(tuple(p / p.sum()), 10, 0.01)


def test_the_model_chooses_activity_mode_and_share_among_the_specs_words(tmp_path):
    _, spec = small(tmp_path)
    spec = spec.model_copy(update={"trips": spec.trips.model_copy(update={"words": {"shopping": "buying things"}})})
    scenario = Scenario(name="fair", text="a fair in zone 5 from 18:00 to 21:00 draws 60 visitors, 40 of them by transit")
    said = read_text(scenario, spec, read_inputs(spec).zones)
    scorer = Scorer({"purpose": "buying things", "mode": "transit", "share": "most", "visitors": "60"})
    seen = []
    event, asked = ask_event(scenario, said, spec, scorer, seen.append)
    assert event == Event(zone="5", start=18, end=21, visitors=60, purpose="shopping", mode="transit", share="most")
    assert len(seen) == 4 and set(asked) == {"purpose", "mode", "share", "visitors"}  # two numbers: the model picks one
    assert asked["purpose"]["shopping"] > 0.5 and list(asked["visitors"]) == ["60", "40"]
    assert scorer.asked[0][2] == ["work", "school", "buying things"]  # the spec's words, never 'home'
    assert "a fair in zone 5" in scorer.asked[0][0]


# ---- the visits

@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("scenario")
    path, spec = small(tmp_path, scenarios=[{"name": "fair", "event": FAIR}])
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    read = dict(dtype={"person_id": str, "household_id": str, "home_zone": str, "origin": str, "destination": str})
    return path, spec, folder, result, pd.read_csv(folder / "persons.csv", **read), pd.read_csv(folder / "trips.csv", **read)


def test_visits_add_a_tour_to_persons_free_that_evening_and_change_nobody_else(baseline):
    _, spec, _, _, persons, trips = baseline
    event = Event(**FAIR)
    visits = add_visits(event, spec, read_inputs(spec).zones, persons, trips, np.random.default_rng(0))
    assert visits.placed == 6 and len(visits.trips) == len(trips) + 12
    background = visits.trips[~visits.trips["visit"]].drop(columns="visit").reset_index(drop=True)
    pd.testing.assert_frame_equal(background, trips)  # every other trip is the baseline's
    added = visits.trips[visits.trips["visit"]]
    there, back = added[added["purpose"] == "shopping"], added[added["purpose"] == "home"]
    assert (there["destination"] == "5").all() and (there["depart"] == 18).all() and (back["depart"] == 21).all()
    visitors = set(there["person_id"])
    assert len(visitors) == 6
    last = trips.groupby("person_id")["depart"].max()
    assert all(last.get(p, -1) < 18 for p in visitors)  # only persons whose day was over
    assert visits.modes["transit"] == 3  # half of 6, exactly
    assert into_zone(visits.trips, event, "home") - into_zone(trips, event, "home") == 6
    chains = chains_of(spec, visits.persons, visits.trips)
    assert chains.valid.all()
    made = visits.trips.groupby("person_id").size()
    assert (visits.persons.set_index("person_id")["trips"] == made.reindex(visits.persons["person_id"], fill_value=0).to_numpy()).all()
    moved = flow_changes(trips, visits.trips)
    assert moved["change"].sum() == 12 and (moved["change"] > 0).all()


def test_more_visitors_than_free_persons_places_those_there_are(baseline):
    _, spec, _, _, persons, trips = baseline
    visits = add_visits(Event(**{**FAIR, "visitors": 500}), spec, read_inputs(spec).zones, persons, trips, np.random.default_rng(0))
    assert visits.placed == visits.eligible < 500


def test_a_run_writes_the_scenario_beside_the_baseline_and_the_report_shows_both(baseline, tmp_path):
    path, _, folder, result, _, trips = baseline
    out = flat(result.output)
    assert "scenario fair (given in the spec): 6 visitors to zone 5 for shopping, there in hour 18, back in hour 21" in out
    scenario = folder / "scenarios" / "fair"
    for name in ("persons.csv", "trips.csv", "plans.xml", "flows.csv", "manifest.json"):
        assert (scenario / name).is_file(), name
    manifest = json.loads((scenario / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["event"] == FAIR
    assert manifest["arrivals_in_zone_in_hours"]["rise"] == 6 and manifest["background_is_the_baseline"]
    assert manifest["trips"]["added"] == 12 and manifest["chains"]["valid"] == manifest["chains"]["persons_with_trips"]
    baseline_fit = json.loads((folder / "manifest.json").read_text())["fit_tvd"]
    assert {k: v["baseline"] for k, v in manifest["fit_tvd"].items()} == pytest.approx(baseline_fit, abs=1e-6)
    flows = pd.read_csv(scenario / "flows.csv")
    assert flows["change"].sum() == 12
    html = tmp_path / "report.html"
    made = runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)])
    assert made.exit_code == 0, made.output
    page = html.read_text()
    assert "Scenario fair" in page and "flows between districts" in page and "what the scenario changed" in page
    assert "worst district" in page and " of 2 over" in page  # the tables naming zones, district by district (D1, D2)
    assert "<script src=" not in page  # plotly.js embedded: the page opens offline


@pytest.mark.browser
def test_the_trips_report_renders_every_plot_in_a_browser(baseline, tmp_path):
    from browser import render

    path, _, folder, _, _, _ = baseline
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(folder), "--spec", str(path), "--out", str(html)]).exit_code == 0
    seen = render(html)
    assert seen.console_errors == []
    assert seen.declared_plots == seen.rendered_plots == 9  # 4 tables, length, hour, flows; the scenario's hours and map


def test_an_unknown_zone_in_scenario_is_refused_before_anything_is_written(tmp_path):
    path, _ = small(tmp_path)
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--no-cache", "--llm", "embedded",
                                 "--scenario", "a fair in zone 12 from 18:00 to 21:00 draws 6 visitors"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "scenarios: scenario: names zone '12', not in the zone table" in flat(result.output)
    assert not folder.exists()


def test_scenario_is_refused_for_other_shapes(tmp_path):
    result = runner.invoke(app, ["run", str(EXAMPLE / "spec.yaml"), "--out", str(tmp_path / "x.csv"), "--scenario", "a fair"])
    assert result.exit_code == 2 and "--scenario: not for a flat spec" in flat(result.output)


def test_a_scenario_failing_after_the_baseline_says_the_baseline_is_written(tmp_path, monkeypatch):
    from llmsynthor.core.errors import LLMSynthorError
    from llmsynthor.shapes.trips import scenario

    def fails(*args, **kwargs):
        raise LLMSynthorError("the visits could not be added")

    monkeypatch.setattr(scenario, "add_visits", fails)
    path, _ = small(tmp_path, scenarios=[{"name": "fair", "event": FAIR}])
    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"the visits could not be added The baseline in {folder} was written." in flat(result.output)
    assert (folder / "trips.csv").is_file()


def test_the_report_leaves_out_a_scenario_of_another_baseline(tmp_path):
    path, _ = small(tmp_path, scenarios=[{"name": "fair", "event": FAIR}])
    folder = tmp_path / "out"
    assert runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"]).exit_code == 0
    plain, _ = small(tmp_path / "again")
    assert runner.invoke(app, ["run", str(plain), "--out", str(folder), "--llm", "none", "--no-cache", "--seed", "9"]).exit_code == 0
    made = runner.invoke(app, ["report", str(folder), "--spec", str(plain), "--out", str(tmp_path / "r.html")])
    assert made.exit_code == 0, made.output
    assert "left out of the report: it was added to another run's baseline" in flat(made.output)
    assert "Scenario fair" not in (tmp_path / "r.html").read_text()
