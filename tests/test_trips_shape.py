"""The trips shape end to end without a model (``llm.backend: none``), through the command line: the small
case of test_trips_inputs gives linked persons and trips (ActivitySim's columns), MATSim plans and a
manifest; every given person once, every day a valid chain, the same seed the same trips."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from test_trips_inputs import HOMES, PERSON_IDS, TYPES, spec_dict, write_case
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.evaluation.chains import REASONS, check_days

runner = CliRunner()
ACTIVITYSIM = ["trip_id", "person_id", "household_id", "tour_id", "origin", "destination", "depart", "trip_mode", "purpose"]


def run(tmp_path, name: str = "out", spec: dict | None = None):
    path = write_case(tmp_path / "case", spec=spec)
    folder = tmp_path / name
    result = runner.invoke(app, ["run", str(path), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    return folder, result


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trips")
    folder, result = run(tmp_path)
    read = dict(dtype={"person_id": str, "household_id": str, "home_zone": str, "origin": str, "destination": str})
    return folder, result, pd.read_csv(folder / "persons.csv", **read), pd.read_csv(folder / "trips.csv", **read)


def test_the_run_writes_persons_trips_plans_and_a_manifest(done):
    folder, result, _, _ = done
    for name in ("persons.csv", "trips.csv", "plans.xml", "manifest.json"):
        assert (folder / name).is_file(), name
    out = " ".join(result.output.split())
    assert "no model (llm.backend: none)" in out and "Traceback" not in result.output


def test_every_given_person_appears_once_with_their_household_home_and_type(done):
    _, _, persons, trips = done
    assert sorted(persons["person_id"]) == sorted(PERSON_IDS) and persons["person_id"].is_unique
    given = pd.DataFrame({"person_id": PERSON_IDS, "household_id": [str(50 + i // 2) for i in range(20)],
                          "home_zone": [str(h) for h in HOMES], "person_type": TYPES}).set_index("person_id")
    mine = persons.set_index("person_id").loc[given.index]
    assert mine["household_id"].tolist() == given["household_id"].tolist()
    assert mine["home_zone"].tolist() == given["home_zone"].tolist()
    assert mine["person_type"].tolist() == given["person_type"].tolist()
    made = trips.groupby("person_id").size().reindex(given.index, fill_value=0)
    assert mine["trips"].tolist() == made.tolist()  # the persons' trip counts are their rows of trips.csv
    assert set(trips["person_id"]) <= set(PERSON_IDS)
    assert ((mine["trips"] == 0) | (mine["trips"] >= 2)).all() and mine["trips"].max() <= 8  # max_trips


def test_trips_have_activitysims_columns_and_declared_values(done):
    _, _, persons, trips = done
    assert list(trips.columns[:len(ACTIVITYSIM)]) == ACTIVITYSIM
    assert len(trips) > 0 and trips["trip_id"].is_unique
    assert set(trips["origin"]) | set(trips["destination"]) <= {"1", "2", "3", "4", "5", "6"}
    assert trips["depart"].between(0, 23).all()
    assert set(trips["trip_mode"]) <= {"drive alone", "walk", "transit"}
    assert set(trips["purpose"]) <= {"home", "work", "school", "shopping"}
    households = persons.set_index("person_id")["household_id"]
    assert (trips["household_id"] == households.reindex(trips["person_id"]).to_numpy()).all()
    assert (trips.groupby("tour_id")["person_id"].nunique() == 1).all()  # a tour is one person's
    assert (trips.groupby("tour_id")["trip_mode"].nunique() == 1).all()  # the whole tour takes its mode
    district = {"1": "D1", "2": "D1", "3": "D1", "4": "D2", "5": "D2", "6": "D2"}
    assert (trips["origin_district"] == trips["origin"].map(district)).all()


def test_no_day_is_a_broken_chain(done):
    _, _, persons, trips = done
    home = persons.set_index("person_id")["home_zone"]
    first_mode = trips.groupby("tour_id")["trip_mode"].transform("first")
    check = check_days(trips.assign(tour_mode=first_mode), order=["tour_id", "trip_id"], home=home, tour="tour_id",
                       mode="trip_mode", tour_mode="tour_mode", car_modes=["drive alone"], other_modes=["walk", "transit"])
    assert check.counts == {reason: 0 for reason in REASONS}
    assert check.valid.all() and len(check.persons) == int((persons["trips"] > 0).sum())
    # and the check sees a broken day: the last trip of someone's day sent elsewhere
    last = trips.sort_values(["person_id", "depart", "tour_id", "trip_id"]).groupby("person_id").tail(1).index[0]
    moved = trips.copy()
    moved.loc[last, "destination"] = "6" if moved.loc[last, "destination"] != "6" else "1"
    assert check_days(moved, order=["tour_id", "trip_id"], home=home, tour="tour_id").counts["not_to_home"] == 1


def test_the_manifest_says_what_was_made(done):
    folder, _, persons, trips = done
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "trips" and manifest["persons"] == 20 and manifest["trips"] == len(trips)
    assert manifest["zones"] == 6 and manifest["candidate_days_per_person_first_round"] == 8
    assert set(manifest["fit_tvd"]) == {"OD by period", "origin", "mode x purpose", "trips per person"}
    assert all(0 <= v <= 1 for v in manifest["fit_tvd"].values())
    assert manifest["chains"]["broken"] == {reason: 0 for reason in REASONS}
    assert manifest["chains"]["persons_with_trips"] == int((persons["trips"] > 0).sum())
    assert manifest["choice"]["error_chosen"] <= manifest["choice"]["error_rounded"]
    assert manifest["llm"]["option_scorings"] == 0
    rounds = manifest["rounds"]
    assert len(rounds) == 4 and rounds[manifest["best_round"]]["tvd_max"] == min(r["tvd_max"] for r in rounds)
    assert rounds[manifest["best_round"]]["error_chosen"] == manifest["choice"]["error_chosen"]
    assert rounds[0]["emphasis"] == [1.0] * 4 and rounds[1]["emphasis"] != rounds[0]["emphasis"]  # the worst-met tables count more
    polish = manifest["polish"]
    assert polish["worst_table_tvd_after"] <= polish["worst_table_tvd_before"]  # the state kept is never worse where it counts
    assert polish["exchanges"] >= 0 and polish["moves"] + polish["exchanges"] > 0
    trip_tables = ("OD by period", "origin", "mode x purpose")  # the polish's worst is the written trips' (TVD of shares,
    assert polish["worst_table_tvd_after"] == pytest.approx(max(manifest["fit_tvd"][t] for t in trip_tables), abs=2e-6)  # not of counts)
    transfers = manifest["transfers"]  # the table of persons' part of the choice's error, before and after the tours handed over
    assert transfers["error_after"] <= transfers["error_before"] <= manifest["choice"]["error_chosen"] + 1e-6


def test_the_plans_are_the_trips_as_matsim_legs(done):
    folder, _, persons, trips = done
    root = ET.parse(folder / "plans.xml").getroot()
    people = root.findall("person")
    assert sorted(p.get("id") for p in people) == sorted(persons.loc[persons["trips"] > 0, "person_id"])
    legs = {p.get("id"): len(p.findall("plan/leg")) for p in people}
    assert legs == trips.groupby("person_id").size().to_dict()
    first = {p.get("id"): p.find("plan/activity") for p in people}
    assert all(a.get("type") == "home" for a in first.values())


def test_the_same_seed_gives_the_same_trips_and_another_seed_others(tmp_path, done):
    folder, _, _, _ = done
    again, _ = run(tmp_path, "again")
    assert (again / "trips.csv").read_text() == (folder / "trips.csv").read_text()
    assert (again / "persons.csv").read_text() == (folder / "persons.csv").read_text()
    spec = spec_dict()
    spec["seed"] = 4
    other, _ = run(tmp_path / "other", spec=spec)
    assert (other / "trips.csv").read_text() != (folder / "trips.csv").read_text()


def test_evaluate_scores_a_folder_on_the_targets_and_against_a_reference(done, tmp_path):
    folder, _, _, _ = done
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = spec_dict()
    spec["seed"] = 11
    reference, _ = run(tmp_path, "reference", spec)  # another seed stands in for real persons and trips
    path = tmp_path / "case" / "spec.yaml"
    result = runner.invoke(app, ["evaluate", str(folder), "--spec", str(path), "--reference", str(reference),
                                 "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "e.json").read_text())
    for name, tvd in manifest["fit_tvd"].items():  # the same TVDs as the run measured on what it wrote
        assert figures["targets"][name]["tvd"] == pytest.approx(tvd, abs=1e-6)
        assert figures["targets"][name]["by_district"] == manifest["fit_by_district"].get(name)  # None: a table naming no zone
    assert figures["chains"]["valid"] == figures["chains"]["persons_with_trips"] > 0
    held = figures["reference"]["held_out_jsd"]
    assert "purpose × length" in held and "purpose × mode" not in held  # a target crosses mode × purpose
    assert 0 < figures["reference"]["zone_od_cpc"] <= 1 and 0 <= figures["reference"]["trip_length_jsd"] <= 1
    assert "chains:" in result.output and "held-out JS distance" in result.output


def test_households_are_written_linked_above_persons_and_trips(tmp_path):
    from test_trips_inputs import with_households

    folder = tmp_path / "out"
    result = runner.invoke(app, ["run", str(with_households(tmp_path)), "--out", str(folder), "--llm", "none", "--no-cache"])
    assert result.exit_code == 0, result.output
    read = dict(dtype=str, keep_default_na=False)
    households = pd.read_csv(folder / "households.csv", **read)
    persons, trips = pd.read_csv(folder / "persons.csv", **read), pd.read_csv(folder / "trips.csv", **read)
    assert list(households.columns) == ["household_id", "cars", "income"] and households["household_id"].is_unique
    assert set(persons["household_id"]) == set(households["household_id"]) and len(households) == 10
    cars = households.set_index("household_id")["cars"]
    assert (persons["cars"] == cars.reindex(persons["household_id"]).to_numpy()).all()  # each member carries its household's
    assert set(trips["household_id"]) <= set(households["household_id"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["households"] == 10 and manifest["fit_tvd"]["persons by cars"] == 0


def test_evaluate_names_a_missing_column(done, tmp_path):
    folder, _, persons, trips = done
    broken = tmp_path / "broken"
    broken.mkdir()
    persons.to_csv(broken / "persons.csv", index=False)
    trips.drop(columns=["trip_mode"]).to_csv(broken / "trips.csv", index=False)
    path = write_case(tmp_path / "case")
    result = runner.invoke(app, ["evaluate", str(broken), "--spec", str(path)])
    assert result.exit_code == 2
    assert "trips.csv" in result.output and "'trip_mode'" in result.output and "Traceback" not in result.output


def test_persons_alike_share_a_pool_of_days_only_beyond_the_budget(tmp_path):
    from llmsynthor.shapes.trips.inputs import read_inputs
    from llmsynthor.shapes.trips.spec import load
    from llmsynthor.shapes.trips.synthesizer import alike_persons

    spec = load(write_case(tmp_path / "case"))  # 20 persons, 8 candidate days each
    inputs = read_inputs(spec)
    members, first, shared = alike_persons(spec, inputs)  # 160 days fit: every person's days are their own
    assert members.tolist() == first.tolist() == list(range(20)) and shared.tolist() == [1] * 20
    keys = list(zip(HOMES, TYPES))
    members, first, shared = alike_persons(spec, inputs, budget=8)  # even one day each is over: s = 1
    for a in range(20):
        for b in range(20):
            assert (members[a] == members[b]) == (keys[a] == keys[b]), (a, b)  # one home zone and type: one pool
    assert members[first].tolist() == list(range(len(first))) and np.all(np.diff(first) > 0)  # numbered as first met
    assert shared.tolist() == [1] * len(first)
    sizes = pd.Series(keys).value_counts()
    assert sizes.max() == 2 and len(first) == len(sizes)


def test_the_work_stops_once_every_table_is_within_its_tolerance(tmp_path, done):
    spec = spec_dict()
    spec["tolerance_tvd"] = 1.0  # every table is met by the first round's choice
    spec["targets"][0]["tolerance_tvd"] = 0.99  # a table's own tolerance comes first
    folder, result = run(tmp_path, spec=spec)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["met_early"] is True and len(manifest["rounds"]) == 1 and manifest["best_round"] == 0
    assert manifest["polish"] is None and "polish" not in manifest["seconds"]
    assert manifest["transfers"] is None and "transfers" not in manifest["seconds"]
    assert manifest["tolerance_tvd"] == {"OD by period": 0.99, "origin": 1.0, "mode x purpose": 1.0, "trips per person": 1.0}
    assert "every table within tolerance after round 0's choice" in result.output
    given = json.loads((done[0] / "manifest.json").read_text())  # the default .01 is not met by 20 persons: every round, the polish
    assert given["met_early"] is False and len(given["rounds"]) == 4 and given["polish"] is not None
    assert set(given["tolerance_tvd"].values()) == {0.01} and any(v > 0.01 for v in given["fit_tvd"].values())


def test_a_table_is_scored_district_by_district_on_its_origin_side_else_its_destination(tmp_path, done):
    from dataclasses import replace

    from llmsynthor.shapes.trips.evaluation import by_district
    from llmsynthor.shapes.trips.inputs import read_inputs
    from llmsynthor.shapes.trips.spec import load

    inputs = read_inputs(load(write_case(tmp_path / "case")))
    tables = {t.name: t for t in inputs.tables}
    origin = tables["origin"]  # zones 1-6, districts as the zone table gives them
    district = inputs.zones.district.astype(str)[inputs.zones.rows(origin.axes[0].labels)]
    assert by_district(origin, origin.region.copy(), inputs.zones, 0.01)["tvd_max"] == 0  # met exactly: every district too
    first = district[0]
    counts = origin.region.copy()
    counts[0] += 4  # more trips from the first zone: its district is missed, the others are not
    fit = by_district(origin, counts, inputs.zones, 0.01)
    inside = origin.region[district == first]
    moved = counts[district == first]
    expected = 0.5 * np.abs(moved / moved.sum() - inside / inside.sum()).sum()
    assert fit["side"] == "origin" and fit["districts"] == len(set(district)) and fit["worst_district"] == first
    assert fit["tvd_max"] == pytest.approx(expected, abs=1e-6) and fit["over_tolerance"] == (1 if expected > 0.01 else 0)
    arriving = replace(origin, axes=(replace(origin.axes[0], variable="destination"),))  # the same counts, of trips' destinations
    assert by_district(arriving, counts, inputs.zones, 0.01) == {**fit, "side": "destination"}
    assert by_district(tables["mode x purpose"], tables["mode x purpose"].region, inputs.zones, 0.01) is None  # names no zone
    assert by_district(tables["trips per person"], tables["trips per person"].region, inputs.zones, 0.01) is None  # counts persons
    manifest = json.loads((done[0] / "manifest.json").read_text())  # the run reports it for its tables naming zones or districts
    assert set(manifest["fit_by_district"]) == {"OD by period", "origin"}
    assert manifest["fit_by_district"]["OD by period"]["side"] == "origin"


def test_spec_format_lists_the_table_fields_a_trips_spec_reads():
    result = runner.invoke(app, ["spec-format", "--trips"])
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].strip() for line in result.output.splitlines() if line.startswith("  ")}
    assert {"tolerance_tvd", "targets[].tolerance_tvd", "targets[].file", "targets[].weight"} <= lines
    assert not lines & {"targets[].sum_of", "targets[].mean_of", "targets[].tolerance_jsd", "targets[].tolerance"}
    assert "synthesis.tolerance_tvd" not in result.output  # a trips spec's tolerance is its own, at the top


def test_a_table_naming_zones_counts_as_the_mean_of_its_districts_errors(tmp_path):
    """district_scale: the choice's and the polish's error of a table naming zones or districts is the mean
    over its districts of their L1 error over their own total (each district as much as any other); a
    table naming none counts as before (its L1 over its total)."""
    from llmsynthor.fitting.choice import cell_targets
    from llmsynthor.shapes.trips.districts import district_cells, district_scale
    from llmsynthor.shapes.trips.inputs import read_inputs
    from llmsynthor.shapes.trips.spec import load

    inputs = read_inputs(load(write_case(tmp_path / "case")))
    rng = np.random.default_rng(0)
    for table in inputs.tables:
        residual = rng.normal(size=table.region.size)
        error = (cell_targets([table])[1] * district_scale([table], inputs.zones)) @ np.abs(residual)
        cells = district_cells(table, inputs.zones)
        if cells is None:
            assert error == pytest.approx(table.weight * np.abs(residual).sum() / table.region.sum())
            continue
        _, names, group = cells
        per = [np.abs(residual[group == g]).sum() / table.region.ravel()[group == g].sum() for g in range(len(names))]
        assert error == pytest.approx(table.weight * np.mean(per)), table.name


def test_cell_groups_are_a_tables_districts_or_the_table(tmp_path):
    """cell_groups: what the polish's stages weigh apart — each district's cells of a table naming zones or districts,
    any other table's cells together; numbered from 0 in the tables' order."""
    from llmsynthor.shapes.trips.districts import cell_groups, district_cells
    from llmsynthor.shapes.trips.inputs import read_inputs
    from llmsynthor.shapes.trips.spec import load

    inputs = read_inputs(load(write_case(tmp_path / "case")))
    group = cell_groups(inputs.tables, inputs.zones)
    assert len(group) == sum(t.region.size for t in inputs.tables)
    start, first = 0, 0
    for table in inputs.tables:
        mine = group[start:start + table.region.size]
        cells = district_cells(table, inputs.zones)
        expected = np.zeros(table.region.size, dtype=int) if cells is None else cells[2]
        assert mine.tolist() == (first + expected).tolist(), table.name
        first, start = first + (1 if cells is None else len(cells[1])), start + table.region.size
    assert group.max() + 1 == 2 + 2 + 1 + 1  # OD by period and origin by D1, D2; mode x purpose; trips per person
