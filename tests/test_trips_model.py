"""The trips shape through the real default model (Qwen2.5-Coder-1.5B): ``llmsynthor run`` on the small
trips case of tests/test_trips_inputs.py, the model asked by token probabilities about what it can
know (person type, activity, mode, length), checked on the pair a table crosses, its strength
chosen; and the factors a checked prior becomes, with a test double."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_trips_inputs import spec_dict, write_case

from llmsynthor.core.tables import Axis
from llmsynthor.prior.copula import Levels, PairwisePrior
from llmsynthor.prior.tempering import GRID
from llmsynthor.shapes.trips.days import LENGTH_WORDS
from llmsynthor.shapes.trips.inputs import read_inputs
from llmsynthor.shapes.trips.prior import LENGTH, factors
from llmsynthor.shapes.trips.spec import load


@pytest.mark.slow
@pytest.mark.model
def test_a_day_of_trips_through_the_default_model(tmp_path):
    spec = spec_dict()
    spec["llm"] = {"backend": "embedded"}
    path = write_case(tmp_path / "case", spec=spec)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "llmsynthor.cli", "run", str(path), "--out", str(out), "--no-cache"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    prior = manifest["prior"]
    asked = [set(pair.split(" × ")) for pair in prior["pairs_asked"]]
    assert {"person_type", "purpose"} in asked and {"mode", "length"} in asked  # who does what; modes by length
    assert prior["pairs_checked"] == ["mode × purpose"]  # the one pair a table crosses on the model's levels
    assert prior["check"]["strength"] in GRID
    assert set(prior["check"]["error_bits_by_strength"]) == {f"{g:g}" for g in GRID}
    assert manifest["llm"]["option_scorings"] >= 10 and manifest["llm"]["seconds"] > 0
    assert manifest["model"]["sha256"]  # the embedded model file, checked
    assert manifest["chains"]["valid"] == manifest["chains"]["persons_with_trips"]
    assert sum(manifest["chains"]["broken"].values()) == 0
    trips = pd.read_csv(out / "trips.csv")
    assert len(trips) == manifest["trips"] > 0


def run_scenario(tmp_path, text: str):
    """The small case run through the embedded default model with ``--scenario text``: the output folder and the
    scenario's manifest."""
    spec = spec_dict()
    spec["llm"] = {"backend": "embedded"}
    spec["trips"] |= {"first_hour": 5, "last_hour": 23}
    path = write_case(tmp_path / "case", spec=spec)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "llmsynthor.cli", "run", str(path), "--out", str(out), "--no-cache",
                           "--scenario", text], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "scenarios" / "scenario" / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.model
def test_a_scenario_read_by_the_default_model_adds_its_visits_and_moves_nothing_else(tmp_path):
    """The evening event at one zone, in words: the model picks activity, mode and share among the spec's
    values; the trips arriving there in the stated hours rise by the stated number (within 10 %); every
    other trip is the baseline's, so every table the visits do not touch holds as in the baseline."""
    out, manifest = run_scenario(tmp_path, "a concert in zone 5 from 19:00 to 22:00 draws 8 visitors, most of them by transit")
    event = manifest["event"]
    assert (event["zone"], event["start"], event["end"], event["visitors"]) == ("5", 19, 22, 8)  # as the text states them
    assert event["mode"] == "transit"  # the model's reading, by token probabilities
    assert set(manifest["model_probabilities"]) == {"purpose", "mode", "share"}
    assert manifest["model_probabilities"]["mode"]["transit"] > 0.5 and manifest["llm"]["option_scorings"] == 3
    rise = manifest["arrivals_in_zone_in_hours"]
    assert abs(rise["rise"] - 8) <= 0.1 * 8
    assert manifest["background_is_the_baseline"]
    baseline = json.loads((out / "manifest.json").read_text())["fit_tvd"]
    trips = pd.read_csv(out / "scenarios" / "scenario" / "trips.csv", dtype={"origin": str, "destination": str})
    assert trips["visit"].sum() == 2 * rise["rise"]
    assert {name: f["baseline"] for name, f in manifest["fit_tvd"].items()} == pytest.approx(baseline, abs=1e-6)
    assert manifest["chains"]["valid"] == manifest["chains"]["persons_with_trips"]


@pytest.mark.slow
@pytest.mark.model
def test_a_change_of_modes_read_by_the_default_model_moves_only_that_modes_tours(tmp_path):
    """A strike in words (no zone, no visitors: a change of modes): the model picks the mode left and the
    mode taken among the spec's values; the share of the tours in scope moves as the text's percentage
    says, whole tours, only their modes — every zone, hour and activity and every table that does not
    count modes hold as in the baseline."""
    out, manifest = run_scenario(tmp_path, "a transit strike: 50% of the people who ride transit drive alone instead")
    shift = manifest["shift"]
    assert (shift["mode"], shift["to"], shift["share"]) == ("transit", "drive alone", 0.5)  # the modes: the model's reading
    probabilities = manifest["model_probabilities"]
    assert probabilities["from"]["transit"] > 0.5 and probabilities["to"]["drive alone"] > 0.5
    assert "part" not in probabilities and manifest["llm"]["option_scorings"] == 3  # the share: the text's percentage
    tours = manifest["tours"]
    assert tours["in_scope"] > 0 and tours["moved"] == tours["asked"] == round(0.5 * tours["in_scope"])
    assert manifest["only_modes_changed"] and manifest["others_are_the_baseline"]
    trips = pd.read_csv(out / "scenarios" / "scenario" / "trips.csv", dtype={"origin": str, "destination": str})
    assert (trips.loc[trips["shifted"], "trip_mode"] == "drive alone").all() and trips["shifted"].sum() > 0
    baseline = json.loads((out / "manifest.json").read_text())["fit_tvd"]
    for name, fit in manifest["fit_tvd"].items():
        assert fit["baseline"] == pytest.approx(baseline[name], abs=1e-6)
        if name != "mode x purpose":
            assert fit["scenario"] == pytest.approx(fit["baseline"], abs=1e-6)
    assert manifest["chains"]["valid"] == manifest["chains"]["persons_with_trips"]


@pytest.mark.slow
@pytest.mark.model
def test_a_closure_read_by_the_default_model_makes_the_zones_visits_elsewhere(tmp_path):
    """A closure in words (a zone, a word of closing, no people): the model picks the activity closed among the spec's
    values; every visit for it to the zone is made elsewhere, only the zones of the visits and of the trips leaving them
    change, and every table that counts no zone holds as in the baseline."""
    out, manifest = run_scenario(tmp_path, "the shopping mall in zone 4 is closed all day")
    close = manifest["close"]
    assert (close["zone"], close["start"], close["end"]) == ("4", None, None)  # as the text states them
    assert close["purpose"] == "shopping" and manifest["model_probabilities"]["closed"]["shopping"] > 0.5
    assert manifest["llm"]["option_scorings"] == 1
    rise = manifest["arrivals_in_zone_in_scope"]
    assert rise["baseline"] == manifest["visits"]["in_scope"] > 0 and rise["scenario"] == 0
    assert manifest["only_zones_changed"] and manifest["others_are_the_baseline"]
    for name, fit in manifest["fit_tvd"].items():
        if name in ("mode x purpose", "trips per person"):
            assert fit["scenario"] == pytest.approx(fit["baseline"], abs=1e-6)
    assert manifest["chains"]["valid"] == manifest["chains"]["persons_with_trips"]


def test_a_checked_prior_becomes_factors_per_person_and_per_length(tmp_path):
    """factors(): a person's activity and mode factors are the lifts of its variables' values; the
    modes' factors by length band are the length × mode lifts (a test double of the scored prior)."""
    spec = load(write_case(tmp_path / "case"))
    inputs = read_inputs(spec)
    types, purposes, modes = ["worker", "student", "other"], spec.trips.purposes, spec.trips.modes
    levels = {"person_type": Levels("person_type", Axis("person_type", tuple(types))),
              "purpose": Levels("purpose", Axis("purpose", tuple(purposes))),
              "mode": Levels("mode", Axis("mode", tuple(modes))),
              LENGTH: Levels(LENGTH, Axis(LENGTH, LENGTH_WORDS))}
    by_purpose = np.arange(1, 13, dtype=float).reshape(3, 4)
    by_length = np.linspace(0.5, 2, 18).reshape(6, 3)
    prior = PairwisePrior(levels, {("person_type", "purpose"): by_purpose, ("mode", LENGTH): by_length.T})
    made = factors(spec, inputs, prior)
    rows = [types.index(t) for t in inputs.persons["person_type"]]
    assert np.array_equal(made.purpose, by_purpose[rows])
    assert np.array_equal(made.mode_by_person, np.ones((len(rows), 3)))  # person × mode not scored: 1
    assert np.array_equal(made.mode_by_length, by_length)  # looked up in either direction
    tempered = factors(spec, inputs, prior.tempered(0.0))
    assert np.array_equal(tempered.purpose, np.ones_like(made.purpose))  # strength 0: the tables alone


def test_a_household_variable_no_table_names_is_asked_but_never_applied(tmp_path):
    """Nothing checks what the model says of a variable no table names (a household's cars with no table of
    cars): its pairs get strength 0, and the manifest's notes say why; named by a table, it is not held back."""
    from fakes import KnowingFakeLLM
    from test_trips_inputs import with_households

    from llmsynthor.shapes.trips.prior import trip_prior
    from llmsynthor.shapes.trips.synthesizer import pilot_lengths

    spec = load(with_households(tmp_path / "untabled"))
    spec = spec.model_copy(update={"targets": [t for t in spec.targets if t.name != "persons by cars"]})
    inputs = read_inputs(spec)
    made = trip_prior(spec, inputs, KnowingFakeLLM({}), pilot_lengths(spec, inputs))
    with_cars = {pair: g for pair, g in made.strengths.items() if "cars" in pair.split(" × ")}
    assert with_cars and set(with_cars.values()) == {0.0}
    assert any(note.startswith("cars: no table names it") for note in made.notes)
    tabled = load(with_households(tmp_path / "tabled"))
    inputs = read_inputs(tabled)
    assert not any("no table names" in note for note in trip_prior(tabled, inputs, KnowingFakeLLM({}), pilot_lengths(tabled, inputs)).notes)


def test_the_model_is_asked_about_activities_and_modes_in_the_specs_words(tmp_path):
    """trips.words: the prior's questions name an activity or a mode in the words given for it (the names the
    tables use are not shown), and the lifts map back by position; two names in the same words are refused."""
    from fakes import KnowingFakeLLM
    from pydantic import ValidationError

    from llmsynthor.shapes.trips.prior import trip_prior
    from llmsynthor.shapes.trips.spec import TripSettings
    from llmsynthor.shapes.trips.synthesizer import pilot_lengths

    raw = spec_dict()
    raw["trips"]["words"] = {"shopping": "buying groceries", "transit": "riding the bus"}
    spec = load(write_case(tmp_path / "case", spec=raw))
    inputs = read_inputs(spec)
    llm = KnowingFakeLLM({})
    made = trip_prior(spec, inputs, llm, pilot_lengths(spec, inputs))
    asked = " ".join(question + " " + " ".join(options) for question, options in llm.scorings)
    assert "buying groceries" in asked and "riding the bus" in asked
    assert "shopping" not in asked and "transit" not in asked
    assert made.factors.purpose.shape == (len(inputs.persons), len(spec.trips.purposes))  # in the spec's order
    with pytest.raises(ValidationError, match=r"'errands'\] twice"):
        TripSettings(purposes=["home", "shopping", "maintenance"], modes=["walk"], words={"shopping": "errands", "maintenance": "errands"})
