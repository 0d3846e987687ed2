"""What a trips run writes: ``households`` (when the spec gives them), ``persons`` and ``trips`` (CSV
or Parquet; trips in ActivitySim's columns), a MATSim population (``plans.xml``) and ``manifest.json``
— every path checked writable before the model loads — and each scenario's folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...outputs.files import (
    backend_facts,
    check_writable_files,
    manifest_head,
    platform_facts,
    run_folder_paths,
    write_json,
    write_linked,
    write_records,
)
from ...outputs.matsim import write_plans
from .days import REACH
from .inputs import LEVELS, PERSONS, TRIPS, TripInputs
from .spec import TripsSpec
from .synthesizer import TripResult


def output_paths(folder: Path, fmt: str = "csv", households: bool = False) -> dict[str, Path]:
    paths = run_folder_paths(folder, LEVELS, fmt, plans="plans.xml", manifest="manifest.json")
    return {"households": Path(folder) / f"households.{fmt}", **paths} if households else paths


def households_out(spec: TripsSpec, inputs: TripInputs, persons: pd.DataFrame) -> pd.DataFrame:
    """The given households that have a person in the run, as the file gives them, the id column named household_id."""
    frame = inputs.households
    kept = frame[frame[spec.households.id].isin(set(persons["household_id"]))]
    return kept.rename(columns={spec.households.id: "household_id"}).reset_index(drop=True)


def scenario_paths(folder: Path, name: str, fmt: str = "csv") -> dict[str, Path]:
    """A scenario's files: ``scenarios/NAME/`` under the run's folder, with the flows that moved."""
    return run_folder_paths(Path(folder) / "scenarios" / name, LEVELS, fmt, plans="plans.xml", flows="flows.csv",
                            manifest="manifest.json")


def check_output_folder(folder: Path, fmt: str = "csv", scenarios: tuple[str, ...] = (), households: bool = False) -> dict[str, Path]:
    """Every file the run writes (the baseline's and each scenario's), checked writable before the model loads."""
    paths = output_paths(folder, fmt, households)
    for name in scenarios:
        paths |= {f"scenario {name} {what}": path for what, path in scenario_paths(folder, name, fmt).items()}
    return check_writable_files(paths)


def write_outputs(spec: TripsSpec, inputs: TripInputs, result: TripResult, backend, folder: Path, fmt: str = "csv",
                  wall_seconds: float | None = None) -> dict[str, Path]:
    """The linked tables (households when given, persons, trips), the MATSim plans and the manifest."""
    paths = output_paths(folder, fmt, inputs.households is not None)
    if inputs.households is not None:
        write_records(households_out(spec, inputs, result.persons), paths["households"])
    _write_days(spec, inputs, result.persons, result.trips, paths)
    write_json(manifest(spec, inputs, result, backend, paths, wall_seconds), paths["manifest"])
    return paths


def _write_days(spec: TripsSpec, inputs: TripInputs, persons: pd.DataFrame, trips: pd.DataFrame, paths: dict[str, Path]) -> None:
    """Persons and trips as linked files, and the trips as a MATSim population."""
    write_linked({PERSONS.name: persons, TRIPS.name: trips}, paths)
    write_plans(paths["plans"], trips, inputs.zones, mode="trip_mode", order=("tour_id", "trip_id"),
                first_activity=spec.trips.home, modes=spec.trips.matsim_modes)


def _change_facts(spec: TripsSpec, scenario, change, how: str, asked: dict) -> dict:
    """What a scenario's manifest opens with: the scenario, its change (under ``event``, ``shift``, ``cancel`` or ``close``,
    its type's name) and where each field came from."""
    key = type(change).__name__.lower()
    return {**manifest_head(spec), "kind": "trips scenario", "seed": spec.seed, "scenario": scenario.name, "text": scenario.text,
            key: change.model_dump(), f"{key}_from": how, "model_probabilities": asked}


def _scenario_files(spec: TripsSpec, inputs: TripInputs, persons: pd.DataFrame, trips: pd.DataFrame, mark: str | None,
                    baseline: TripResult, paths: dict[str, Path], usage, by_mode: bool) -> dict:
    """A scenario's days written (``mark``: the column marking what it changed, kept in trips.csv; None: none), the
    flows that moved (by mode too, ``by_mode``), and what every scenario's manifest says of them beside the baseline."""
    from .evaluation import evaluate_trips
    from .scenario import flow_changes

    _write_days(spec, inputs, persons, trips, paths)
    flows = flow_changes(baseline.trips, trips, by_mode=by_mode)
    flows.to_csv(paths["flows"], index=False)
    after = evaluate_trips(spec, inputs, persons, trips if mark is None else trips.drop(columns=mark))
    return {
        "baseline": baseline_key(spec, baseline.trips),
        "outputs": {name: str(path) for name, path in paths.items() if name != "manifest"},
        "flows_moved": {"cells": len(flows), "trips": int(flows["change"].abs().sum())},
        "fit_tvd": {name: {"baseline": tvd, "scenario": round(after["targets"][name]["tvd"], 6)} for name, tvd in baseline.fit.items()},
        "fit_is": "each target table's TVD: the baseline's against the targets, and the scenario's against the same targets",
        "chains": after["chains"],
        "llm": {"option_scorings": usage.option_scorings, "seconds": round(usage.seconds, 3)},
    }


def write_scenario(spec: TripsSpec, inputs: TripInputs, scenario, event, how: str, asked: dict, visits, baseline: TripResult,
                   folder: Path, fmt: str, usage) -> dict[str, Path]:
    """A scenario's persons, trips (``visit`` marks the added ones), MATSim plans, the flows that moved
    (:func:`~llmsynthor.shapes.trips.scenario.flow_changes`) and its manifest: the event, what was placed,
    the trips into the event's zone in its hours before and after, every table beside the baseline's."""
    from .scenario import into_zone

    paths = scenario_paths(folder, scenario.name, fmt)
    common = _scenario_files(spec, inputs, visits.persons, visits.trips, "visit", baseline, paths, usage, by_mode=False)
    background = visits.trips[~visits.trips["visit"]].drop(columns="visit").reset_index(drop=True)
    before_n, after_n = (into_zone(t, event, spec.trips.home) for t in (baseline.trips, visits.trips))
    write_json({
        **_change_facts(spec, scenario, event, how, asked), **common,
        "visitors": {"asked": visits.asked, "placed": visits.placed, "eligible": visits.eligible, "modes": visits.modes,
                     "who": "persons whose day is over before the event starts (or who make no trips), weighed so that their "
                            "distances from home follow the baseline's trips of the event's activity"},
        "arrivals_in_zone_in_hours": {"baseline": before_n, "scenario": after_n, "rise": after_n - before_n,
                                      "rise_over_asked": round((after_n - before_n) / event.visitors, 4)},
        "trips": {"baseline": len(baseline.trips), "scenario": len(visits.trips), "added": int(visits.trips["visit"].sum())},
        "background_is_the_baseline": bool(background.equals(baseline.trips.reset_index(drop=True))),
    }, paths["manifest"])
    return paths


def write_shift(spec: TripsSpec, inputs: TripInputs, scenario, shift, how: str, asked: dict, shifted, baseline: TripResult,
                folder: Path, fmt: str, usage) -> dict[str, Path]:
    """A change of modes' persons (the baseline's), trips (``shifted`` marks the trips of the tours moved), MATSim
    plans, the flows that moved by mode, and its manifest: the shift, the tours asked, in scope, plausible and
    moved, trips by mode before and after, every table beside the baseline's."""
    paths = scenario_paths(folder, scenario.name, fmt)
    trips = shifted.trips
    common = _scenario_files(spec, inputs, baseline.persons, trips, "shifted", baseline, paths, usage, by_mode=True)
    same = trips.drop(columns=["shifted", "trip_mode"]).reset_index(drop=True)
    write_json({
        **_change_facts(spec, scenario, shift, how, asked), **common,
        "tours": {"asked": shifted.asked, "moved": shifted.placed, "in_scope": shifted.in_scope, "plausible": shifted.plausible,
                  "which": "the tours by the mode left (of the activity, leaving home in the hours), weighed so that the "
                           "lengths (longest legs) of those moved follow the baseline's tours of the new mode, and by how often "
                           "each kind of person takes it there; a tour of a band of length the new mode's tours never travel in the "
                           "baseline, longer than the longest of them, or by a person of a kind that never takes it there, is not "
                           "moved"},
        "trips_by_mode": {"baseline": {str(m): int(n) for m, n in baseline.trips["trip_mode"].value_counts().items()},
                          "scenario": {str(m): int(n) for m, n in trips["trip_mode"].value_counts().items()},
                          "moved": int(trips["shifted"].sum())},
        "only_modes_changed": bool(same.equals(baseline.trips.drop(columns="trip_mode").reset_index(drop=True))),
        "others_are_the_baseline": _others_unchanged(trips, "shifted", baseline),
    }, paths["manifest"])
    return paths


def write_cancel(spec: TripsSpec, inputs: TripInputs, scenario, cancel, cancelled, baseline: TripResult, folder: Path, fmt: str,
                 usage) -> dict[str, Path]:
    """A cancellation's persons (their trips counted again), trips (the baseline's less the tours not made), MATSim
    plans, the flows that moved and its manifest: the change, the tours in scope and not made, the trips before and
    after, every table beside the baseline's."""
    paths = scenario_paths(folder, scenario.name, fmt)
    common = _scenario_files(spec, inputs, cancelled.persons, cancelled.trips, None, baseline, paths, usage, by_mode=True)
    write_json({
        **_change_facts(spec, scenario, cancel, "given in the spec", {}), **common,
        "tours": {"in_scope": cancelled.in_scope, "not_made": cancelled.asked,
                  "which": "the share of the tours in scope (by the mode, of the activity, leaving home in the hours), rounded, "
                           "drawn alike; whole tours, so every day left starts and ends at home"},
        "trips": {"baseline": len(baseline.trips), "scenario": len(cancelled.trips), "removed": len(cancelled.removed)},
        "others_are_the_baseline": bool(cancelled.trips.equals(baseline.trips[~cancelled.dropped].reset_index(drop=True))),
    }, paths["manifest"])
    return paths


def write_close(spec: TripsSpec, inputs: TripInputs, scenario, close, how: str, asked: dict, closed, baseline: TripResult,
                folder: Path, fmt: str, usage) -> dict[str, Path]:
    """A closure's persons (the baseline's), trips (``moved`` marks each visit moved and the trip leaving it), MATSim plans,
    the flows that moved and its manifest: the closure, the visits in scope, where they went, the arrivals in the zone
    before and after, every table beside the baseline's."""
    from .scenario import into_closed

    paths = scenario_paths(folder, scenario.name, fmt)
    trips = closed.trips
    common = _scenario_files(spec, inputs, baseline.persons, trips, "moved", baseline, paths, usage, by_mode=False)
    places = [c for c in ("origin", "destination", "origin_district", "destination_district", "km") if c in trips]
    before_n, after_n = (into_closed(t, close, spec.trips.home) for t in (baseline.trips, trips))
    write_json({
        **_change_facts(spec, scenario, close, how, asked), **common,
        "visits": {"in_scope": closed.in_scope, "beyond_reach": closed.beyond_reach, "zones_gone_to": len(closed.to_zones),
                   "to_zones": dict(list(closed.to_zones.items())[:20]),  # the 20 taking most
                   "which": "every trip arriving in the zone for an activity in scope (its activity, departing in its hours) goes "
                            "to another zone, drawn by what draws the activity there times exp(-km from the closed zone / the "
                            "median length of the baseline's trips for the activity), within reach of both of the visit's legs "
                            f"(neither longer than {REACH[0]:g} x the longer of the two + {REACH[1]:g} km; beyond_reach: none was, "
                            "the zone nearest the closed one taken); the trip leaving the visit leaves from the new zone; to_zones: "
                            "the 20 zones taking most"},
        "arrivals_in_zone_in_scope": {"baseline": before_n, "scenario": after_n},
        "trips": {"baseline": len(baseline.trips), "scenario": len(trips), "moved": int(trips["moved"].sum())},
        "only_zones_changed": bool(trips.drop(columns=["moved", *places]).reset_index(drop=True)
                                   .equals(baseline.trips.drop(columns=places).reset_index(drop=True))),
        "others_are_the_baseline": _others_unchanged(trips, "moved", baseline),
    }, paths["manifest"])
    return paths


def _others_unchanged(trips: pd.DataFrame, mark: str, baseline: TripResult) -> bool:
    """Whether every trip a scenario did not ``mark`` is the baseline's, record for record."""
    untouched = trips[~trips[mark]].drop(columns=mark).reset_index(drop=True)
    return bool(untouched.equals(baseline.trips[~trips[mark].to_numpy()].reset_index(drop=True)))


def baseline_key(spec: TripsSpec, trips: pd.DataFrame) -> dict:
    """What ties a scenario to the baseline it was added to: the spec's digest, the seed and the trips written."""
    return {"spec_sha256": spec.digest(), "seed": spec.seed, "trips": len(trips)}


def write_change(path: Path, spec: TripsSpec, scenario, change, how: str, asked: dict) -> None:
    """The change (an event, a shift, a cancellation or a closure) as read or given, written before it is applied (the scenario's
    manifest, replaced once its files are written)."""
    write_json({**_change_facts(spec, scenario, change, how, asked), "status": "change read, not yet applied"}, path)


def manifest(spec: TripsSpec, inputs: TripInputs, result: TripResult, backend, paths: dict[str, Path],
             wall_seconds: float | None) -> dict:
    u = result.usage
    chains = result.chains
    return {
        **manifest_head(spec),
        "kind": "trips",
        "seed": spec.seed,
        "outputs": {name: str(path) for name, path in paths.items() if name != "manifest"},
        "households": None if inputs.households is None else int(result.persons["household_id"].nunique()),
        "persons": len(result.persons), "trips": len(result.trips), "zones": len(inputs.zones),
        "candidate_days": result.candidates, "candidate_days_per_person_first_round": spec.candidates,
        "fit_tvd": result.fit,
        "fit_is": "each table's TVD over the written trips and persons (after the polish)",
        "fit_by_district": result.by_district,
        "fit_by_district_is": "each table of trips naming a zone or district, district by district: the TVD of its cells whose "
                              "origin (else destination) lies in the district, normalized within it; the worst district, how many "
                              "exceed the table's tolerance, the trips-weighted mean",
        "chains": {"persons_with_trips": int(len(chains.persons)), "valid": int(chains.valid.sum()), "broken": chains.counts,
                   "repaired": 0, "left_out": 0,
                   "how": "every candidate day is a chain by construction (tours from home, departures never going back, one "
                          "mode per tour); nothing was repaired or left out"},
        "balancing": {"sweeps": result.balance.iterations, "converged": bool(result.balance.converged),
                      "max_relative_error": round(result.balance.max_error, 6)},
        "tolerance_tvd": dict(zip((t.name for t in inputs.tables), inputs.tolerance)),
        "met_early": result.met_early,
        "met_early_is": "every table within reach was within its tolerance after the kept round's choice: the rounds after it, the "
                        "choice's further passes and the polish were not run",
        "beyond_reach": result.beyond_reach,
        "beyond_reach_is": "tables the first round met more than 10 times worse than their tolerance and than the median table "
                           "— a zone-level OD table of a trip or two a cell, say: they keep their weight (no emphasis), and the "
                           "round and the polish's state kept, and whether the work stops early, are judged on the other tables",
        "rounds": result.rounds,
        "best_round": result.best_round,
        "best_is": "the round whose worst-met table is met best (tvd_max; of the tables within reach, when some are beyond it); "
                   "each round weighs the tables by its emphasis, which grows for the tables the round before met worst",
        "choice": {"error_rounded": round(result.choice.first_error, 6), "error_chosen": round(result.choice.error, 6),
                   "passes": result.choice.passes, "exchanges": result.choice.moves,
                   "error_is": "the sum over the tables of their weight times the kept round's emphasis times their L1 error over "
                               "their total (2 × TVD) — for a table naming zones or districts, the mean over its districts of "
                               "their L1 error over their own total; each round's errors are in its own emphasis"},
        "polish": None if result.polish is None else {
            "error_before": round(result.polish.error_before, 6), "error_after": round(result.polish.error_after, 6),
            "worst_table_tvd_before": round(result.polish.worst_before, 6), "worst_table_tvd_after": round(result.polish.worst_after, 6),
            "moves": result.polish.moves, "exchanges": result.polish.exchanges, "passes": result.polish.passes,
            "error_is": "as the choice's error, over the tables of trips, against each table's targets scaled to the trips "
                        "there are (no move changes their number); the worst table's TVD is of the tables within reach"},
        "finish": None if result.finish is None else {
            "moves": result.finish.moves, "exchanges": result.finish.exchanges, "passes": result.finish.passes,
            "over_before": result.finish.over_before, "over_after": result.finish.over_after,
            "excess_before": round(result.finish.excess_before, 6), "excess_after": round(result.finish.excess_after, 6),
            "is": "after the polish, once every table was within its tolerance for the region: stops of the districts (of "
                  "tables naming zones or districts) still over theirs traded zones with stops of any district, or moved to their "
                  "zones, legs as long as the stop's mode travels, where that lowered the excess — the sum over districts and "
                  "tables of their TVD (of shares within each) above their tolerance less 0.0001 — and took none within it "
                  "over; over: how many were above it"},
        "transfers": None if result.transfers is None else {
            "moves": result.transfers.moves, "to_another_home_zone": result.transfers.rehomed, "passes": result.transfers.passes,
            "error_before": round(result.transfers.error_before, 6), "error_after": round(result.transfers.error_after, 6),
            "trips_error_before": round(result.transfers.trips_error_before, 6),
            "trips_error_after": round(result.transfers.trips_error_after, 6),
            "error_is": "the tables of persons' part of the choice's error (the kept round's emphasis); trips_error: the tables "
                        "of trips', against their targets scaled to the trips there are, as the polish counts it. A move hands "
                        "one tour or two to a person of the same kind and home district (zone, where the zones have none); a "
                        "tour handed to another home zone leaves from and returns to the taker's home"},
        "prior": result.prior.as_dict(),
        "llm": {"option_scorings": u.option_scorings, "seconds": round(u.seconds, 3), "cache_hits": u.cache_hits},
        "seconds": {**result.seconds, "wall": None if wall_seconds is None else round(wall_seconds, 3)},
        **backend_facts(spec.llm, backend),
        **platform_facts(),
    }
