"""What a trips run writes: ``persons`` and ``trips`` (CSV or Parquet; trips in ActivitySim's
columns), a MATSim population (``plans.xml``) and ``manifest.json`` — every path checked
writable before the model loads."""

from __future__ import annotations

from pathlib import Path

from ...outputs.files import (
    backend_facts,
    check_writable_files,
    manifest_head,
    platform_facts,
    run_folder_paths,
    write_json,
    write_linked,
)
from ...outputs.matsim import write_plans
from .inputs import LEVELS, PERSONS, TRIPS, TripInputs
from .spec import TripsSpec
from .synthesizer import TripResult


def output_paths(folder: Path, fmt: str = "csv") -> dict[str, Path]:
    return run_folder_paths(folder, LEVELS, fmt, plans="plans.xml", manifest="manifest.json")


def check_output_folder(folder: Path, fmt: str = "csv") -> dict[str, Path]:
    """Every file the run writes, checked writable before the model loads."""
    return check_writable_files(output_paths(folder, fmt))


def write_outputs(spec: TripsSpec, inputs: TripInputs, result: TripResult, backend, folder: Path, fmt: str = "csv",
                  wall_seconds: float | None = None) -> dict[str, Path]:
    """The linked tables, the MATSim plans and the manifest."""
    paths = output_paths(folder, fmt)
    write_linked({PERSONS.name: result.persons, TRIPS.name: result.trips}, paths)
    write_plans(paths["plans"], result.trips, inputs.zones, mode="trip_mode", order=("tour_id", "trip_id"),
                first_activity=spec.trips.home, modes=spec.trips.matsim_modes)
    write_json(manifest(spec, inputs, result, backend, paths, wall_seconds), paths["manifest"])
    return paths


def manifest(spec: TripsSpec, inputs: TripInputs, result: TripResult, backend, paths: dict[str, Path],
             wall_seconds: float | None) -> dict:
    u = result.usage
    chains = result.chains
    return {
        **manifest_head(spec),
        "kind": "trips",
        "seed": spec.seed,
        "outputs": {name: str(path) for name, path in paths.items() if name != "manifest"},
        "persons": len(result.persons), "trips": len(result.trips), "zones": len(inputs.zones),
        "candidate_days": result.candidates, "candidate_days_per_person_first_round": spec.candidates,
        "fit_tvd": result.fit,
        "fit_is": "each table's TVD over the written trips and persons (after the polish)",
        "chains": {"persons_with_trips": int(len(chains.persons)), "valid": int(chains.valid.sum()), "broken": chains.counts,
                   "repaired": 0, "left_out": 0,
                   "how": "every candidate day is a chain by construction (tours from home, departures never going back, one "
                          "mode per tour); nothing was repaired or left out"},
        "balancing": {"sweeps": result.balance.iterations, "converged": bool(result.balance.converged),
                      "max_relative_error": round(result.balance.max_error, 6)},
        "rounds": result.rounds,
        "best_round": int(min(range(len(result.rounds)), key=lambda r: result.rounds[r]["error_chosen"])) if result.rounds else None,
        "choice": {"error_rounded": round(result.choice.first_error, 6), "error_chosen": round(result.choice.error, 6),
                   "passes": result.choice.passes, "exchanges": result.choice.moves,
                   "error_is": "the sum over the tables of their weight times their L1 error over their total (2 × TVD)"},
        "polish": None if result.polish is None else {
            "error_before": round(result.polish.error_before, 6), "error_after": round(result.polish.error_after, 6),
            "moves": result.polish.moves, "passes": result.polish.passes},
        "prior": result.prior.as_dict(),
        "llm": {"option_scorings": u.option_scorings, "seconds": round(u.seconds, 3), "cache_hits": u.cache_hits},
        "seconds": {**result.seconds, "wall": None if wall_seconds is None else round(wall_seconds, 3)},
        **backend_facts(spec.llm, backend),
        **platform_facts(),
    }
