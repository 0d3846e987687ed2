"""A household run's outputs: linked tables in a folder, as PopulationSim writes them, and the manifest.

``OUT/households.csv`` (household_id, zone, household variables, derived counts),
``OUT/persons.csv`` (household_id, person_id, member, person variables) — or ``.parquet`` — and
``OUT/manifest.json``: the spec's hash, seed, model, LLM usage, compositions and why any were
rejected, the region and zone balances (with every control cell no candidate reaches, named), and
the evaluation of both levels against the targets;
``OUT/report.html``: the self-contained report of both levels (:mod:`.report`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...core.errors import LLMSynthorError, Problem, SpecError, os_reason
from ...core.records import describe_outside, load_records
from ...core.schema import Schema
from ...outputs.files import (
    backend_facts,
    check_writable_files,
    find_level_paths,
    manifest_head,
    platform_facts,
    run_folder_paths,
    write_json,
    write_linked,
)
from .controls import HOUSEHOLDS, LEVELS, PERSONS, HouseholdTargets, load_controls
from .evaluation import ID, MEMBER, HouseholdEvaluation, zone_column
from .report import build_household_report
from .spec import HouseholdSpec
from .synthesizer import HouseholdResult


def output_paths(folder: Path, fmt: str = "csv") -> dict[str, Path]:
    return run_folder_paths(folder, LEVELS, fmt, manifest="manifest.json", report="report.html")


def linked_paths(folder: Path, what: str = "output") -> dict[str, Path]:
    """The paths of a run folder's linked tables, in the format found there (SpecError when the folder
    or its households file is missing)."""
    found = find_level_paths(folder, LEVELS, what, "household")
    return output_paths(Path(folder), found[HOUSEHOLDS.name].suffix[1:])


def read_linked(folder: Path, spec: HouseholdSpec, what: str = "output", strict: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The linked households and persons of a run's folder (``households.csv`` and ``persons.csv``, or
    ``.parquet``), each checked for the spec's variables at its level, ``household_id`` (and the zone
    column of a zoned spec) — SpecError naming the file. With ``strict``, a value outside the spec's
    domains is an error too (otherwise the evaluation scores it as error)."""
    paths = linked_paths(folder, what)
    schemas = {HOUSEHOLDS.name: Schema(entity=spec.household.entity, variables=dict(spec.household.variables)),
               PERSONS.name: spec.person_schema}
    frames, problems = {}, []
    for level, schema in schemas.items():
        records = load_records(paths[level], schema, f"{what} {level}")
        zone = zone_column(spec, records.frame) if level == HOUSEHOLDS.name else None  # the spec's name, else 'zone'
        missing = [c for c in (ID, zone) if c is not None and c not in records.frame.columns]
        if missing:
            problems.append(Problem(str(paths[level]), f"missing column(s) {', '.join(map(repr, missing))}; expected "
                                                       f"the {ID} that links persons to households"
                                                       + (f" and the zone ({spec.zones!r} or 'zone')" if zone else "")))
        if strict and records.outside:
            problems.append(Problem(str(paths[level]), "; ".join(describe_outside(name, info, schema) for name, info in records.outside.items())
                                    + " (--strict)"))
        frames[level] = records.frame
    if problems:
        raise SpecError(problems)
    persons = frames[PERSONS.name]
    if MEMBER in persons.columns:  # read as text from a CSV: numbered again as numbers, for the order
        persons[MEMBER] = pd.to_numeric(persons[MEMBER], errors="coerce")
    return frames[HOUSEHOLDS.name], persons


def check_output_folder(folder: Path, fmt: str = "csv") -> dict[str, Path]:
    """Every file the run writes, checked writable before the model loads."""
    return check_writable_files(output_paths(folder, fmt))


def write_outputs(spec: HouseholdSpec, result: HouseholdResult, evaluation: HouseholdEvaluation, backend, folder: Path,
                  fmt: str = "csv", wall_seconds: float | None = None, *, targets: HouseholdTargets | None = None) -> dict[str, Path]:
    """The linked tables, the manifest and the HTML report (``targets``: the run's controls, read from the spec when omitted)."""
    paths = output_paths(folder, fmt)
    write_linked({HOUSEHOLDS.name: result.households, PERSONS.name: result.persons}, paths)
    run = household_manifest(spec, result, evaluation, backend, paths, wall_seconds)
    write_json(run, paths["manifest"])
    page = build_household_report(spec, targets if targets is not None else load_controls(spec), evaluation, run,
                                  households=result.households, persons=result.persons,
                                  title=f"llmsynthor household report: {spec.name}")
    try:
        paths["report"].write_text(page, encoding="utf-8")
    except OSError as exc:
        raise LLMSynthorError(f"could not write the report to {paths['report']}: {os_reason(exc)}") from exc
    return paths


def household_manifest(spec: HouseholdSpec, result: HouseholdResult, evaluation: HouseholdEvaluation, backend,
                       paths: dict[str, Path], wall_seconds: float | None = None) -> dict:
    usage = result.usage
    households = len(result.households)
    zones = result.zones
    return {
        **manifest_head(spec),
        "seed": spec.seed,
        HOUSEHOLDS.name: households,
        PERSONS.name: len(result.persons),
        "paths": {k: str(v) for k, v in paths.items()},
        **backend_facts(spec.llm, backend),
        "llm": usage.as_dict(),
        "compositions": {"requested": result.requests, "accepted": result.compositions,
                         "rejected_by_reason": dict(usage.rejected), "corrected_by_reason": dict(usage.corrected),
                         "variants_each": spec.synthesis.variants, "filler_households": spec.synthesis.filler_households,
                         "independent_households": spec.synthesis.independent_households},
        "households_by_source": result.sources,
        "constraints": result.constraints,
        "llm_calls_per_1000_households": round(1000 * usage.calls / households, 3) if households else None,
        "region_balance": {"converged": result.region.converged, "iterations": result.region.iterations,
                           "max_relative_error": round(result.region.max_error, 6),
                           "unreachable_controls": int(len(result.region.unreachable)),
                           "unreachable_cells": result.unreachable},  # every one: table, cell, target, zones
        "zones": {"count": len(zones), "executor": spec.synthesis.executor, "workers": spec.synthesis.workers,
                  "integerized_by": {m: sum(z.integer.method == m for z in zones.values()) for m in ("floor", "milp", "rounding")},
                  "max_abs_error": float(max((np.nanmax(z.integer.absolute_errors) if np.isfinite(z.integer.absolute_errors).any()
                                              else 0.0) for z in zones.values())) if zones else None},
        "evaluation": evaluation.as_dict(),
        "time": {**{k: round(v, 3) for k, v in result.seconds.items()},
                 "llm_seconds": round(usage.seconds, 3),
                 **({"wall_seconds": round(wall_seconds, 3)} if wall_seconds is not None else {})},
        "notes": result.notes,
        **platform_facts(),
    }
