"""A trips folder scored: every target table (TVD, JS distance, trips outside the tables' cells), the
days checked as chains, trip lengths; with a reference folder of real persons and trips, tables no
target crosses, trip lengths and departure hours (JS distance) and flows between zones (CPC, cosine).

Reads what ``llmsynthor run`` wrote (``persons`` and ``trips``, CSV or Parquet) and a reference in
the same columns; a missing file or column is a SpecError naming it.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.errors import Problem, SpecError
from ...core.levels import LevelTable
from ...core.metrics import cosine, cpc, jsd, tvd, tvd_by_group
from ...declarations.zones import Zones
from ...evaluation.cells import cell_counts
from ...evaluation.chains import ChainCheck, check_days
from ...outputs.files import find_level_paths
from .days import LENGTH_WORDS, length_band
from .districts import district_cells
from .inputs import LEVELS, PERSONS, TRIPS, TripInputs
from .spec import TripsSpec

TRIP_COLUMNS = ("trip_id", "person_id", "tour_id", "origin", "destination", "depart", "trip_mode", "purpose")
CROSSED = ("origin_district", "destination_district", "purpose", "mode", "length")  # held-out tables are pairs of these
LONGEST_KM_BIN = 50  # trip lengths in 1-km bins, the last one 50 km and more


def chains_of(spec: TripsSpec, persons: pd.DataFrame, trips: pd.DataFrame) -> ChainCheck:
    """Every person's day checked (:func:`llmsynthor.evaluation.chains.check_days`): trips in tour
    and trip order, days from and to the home zone, a tour leaving home by a car mode kept to it."""
    first_mode = trips.groupby("tour_id")["trip_mode"].transform("first")  # the mode the tour leaves home by
    others = tuple(m for m in spec.trips.modes if m not in spec.trips.car_modes)
    return check_days(trips.assign(tour_mode=first_mode), order=["tour_id", "trip_id"],
                      home=persons.set_index("person_id")["home_zone"], tour="tour_id", mode="trip_mode",
                      tour_mode="tour_mode", car_modes=tuple(spec.trips.car_modes), other_modes=others)


def by_district(table: LevelTable, counts: np.ndarray, zones: Zones, tolerance: float) -> dict | None:
    """A table of trips naming a zone or district, met district by district: for each district, the TVD
    of the table's cells whose origin (else destination) lies in it, ``counts`` against the targets,
    each side normalized within the district — how the worst-met district fares, how many exceed
    ``tolerance``, and the trips-weighted mean. None for a table naming no zone or district, or without
    districts in the zone table."""
    cells = district_cells(table, zones)
    if cells is None:
        return None
    side, names, group = cells
    tvds = tvd_by_group(counts, table.region, group, len(names))  # a district with trips on one side only: 1
    trips = np.bincount(group, weights=table.region.ravel(), minlength=len(names))
    worst = int(np.argmax(tvds))
    return {"side": side, "districts": len(names), "tvd_max": round(float(tvds[worst]), 6), "worst_district": str(names[worst]),
            "over_tolerance": int((tvds > tolerance).sum()),
            "tvd_mean": round(float(tvds @ trips / max(trips.sum(), 1e-12)), 6)}


def read_folder(folder: Path, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons, trips) of a folder ``llmsynthor run`` wrote for a trips spec (or a reference like it)."""
    paths = find_level_paths(folder, LEVELS, what, "trips")
    frames = []
    for level in (PERSONS.name, TRIPS.name):
        path = paths[level]
        if not path.is_file():
            raise SpecError(Problem(str(path), f"not found; expected the {level} of the {what} folder"))
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(frame.astype(str))
    persons, trips = frames
    needed = {PERSONS.name: ("person_id", "home_zone"), TRIPS.name: TRIP_COLUMNS}
    for (level, frame), path in zip(((PERSONS.name, persons), (TRIPS.name, trips)), (paths[PERSONS.name], paths[TRIPS.name])):
        missing = [c for c in needed[level] if c not in frame.columns]
        if missing:
            raise SpecError(Problem(str(path), f"missing column(s) {', '.join(map(repr, missing))}; expected the columns "
                                               f"`llmsynthor run` writes: {', '.join(needed[level])}"))
    bad = pd.to_numeric(trips["depart"], errors="coerce")
    if bad.isna().any():
        row = int(np.flatnonzero(bad.isna())[0])
        raise SpecError(Problem(str(paths[TRIPS.name]), f"row {row + 2}: depart {trips['depart'].iloc[row]!r}; expected an hour 0-23"))
    for column in ("depart", "tour_id", "trip_id"):
        trips[column] = pd.to_numeric(trips[column], errors="coerce").fillna(-1).astype(int)
    return persons, trips


def coded_trips(inputs: TripInputs, trips: pd.DataFrame) -> pd.DataFrame:
    """The trips with the variables the tables name: mode, districts, length (km and band)."""
    zones = inputs.zones
    index = zones.index
    o, d = index.get_indexer(trips["origin"]), index.get_indexer(trips["destination"])
    out = trips.assign(mode=trips["trip_mode"])
    known = (o >= 0) & (d >= 0)
    km = np.full(len(trips), np.nan)
    km[known] = zones.km(o[known], d[known])
    out["km"] = km
    out["length"] = np.where(known, np.asarray(LENGTH_WORDS, dtype=object)[np.clip(length_band(np.nan_to_num(km)), 0, len(LENGTH_WORDS) - 1)], "")
    if zones.district is not None:
        district = np.append(zones.district.astype(str), "")
        out["origin_district"], out["destination_district"] = district[o], district[d]
    return out


def with_trip_counts(persons: pd.DataFrame, trips: pd.DataFrame) -> pd.DataFrame:
    """The persons with ``trips`` as numbers: their own column, or counted from the trips."""
    if "trips" in persons:
        return persons.assign(trips=pd.to_numeric(persons["trips"], errors="coerce").fillna(0).astype(int))
    return persons.assign(trips=persons["person_id"].map(trips.groupby("person_id").size()).fillna(0).astype(int))


def evaluate_trips(spec: TripsSpec, inputs: TripInputs, persons: pd.DataFrame, trips: pd.DataFrame,
                   reference: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> dict:
    """Every figure as a dict (the JSON of ``llmsynthor evaluate --json``)."""
    coded = coded_trips(inputs, trips)
    joined = with_trip_counts(persons, trips)
    targets = {}
    for table, tolerance in zip(inputs.tables, inputs.tolerance):
        frame = coded if table.level == TRIPS.name else joined
        counts, outside = cell_counts(frame, table)
        targets[table.name] = {"counts": table.level, "tvd": tvd(counts.ravel(), table.region.ravel()),
                               "jsd": jsd(counts.ravel(), table.region.ravel()), "outside_the_cells": int(outside),
                               "by_district": by_district(table, counts, inputs.zones, tolerance)}
    check = chains_of(spec, persons, trips)
    out = {"persons": len(persons), "trips": len(trips), "targets": targets,
           "chains": {"persons_with_trips": int(len(check.persons)), "valid": int(check.valid.sum()), "broken": check.counts},
           "trip_length_km": {q: float(np.nanquantile(coded["km"], p)) for q, p in (("p10", .1), ("median", .5), ("p90", .9))}
           if len(coded) else {}}
    if reference is not None:
        out["reference"] = _against(inputs, coded, coded_trips(inputs, reference[1]))
    return out


def _shares(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return frame.groupby(columns).size()


def _jsd(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> float:
    x, y = _shares(a, columns), _shares(b, columns)
    both = x.index.union(y.index)
    return jsd(x.reindex(both, fill_value=0).to_numpy(float), y.reindex(both, fill_value=0).to_numpy(float))


def _against(inputs: TripInputs, synthetic: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Held-out pairs (no target crosses them), trip length (1-km bins) and departure hour JS distances, zone-level CPC and cosine."""
    crossed = {frozenset(p) for t in inputs.tables for p in combinations(t.variables, 2)}
    names = [c for c in CROSSED if c in synthetic and c in truth]
    held = {f"{u} × {v}": _jsd(synthetic, truth, [u, v]) for u, v in combinations(names, 2) if frozenset((u, v)) not in crossed}
    kms = [frame.assign(km_bin=np.minimum(np.floor(frame["km"].fillna(0)), LONGEST_KM_BIN).astype(int)) for frame in (synthetic, truth)]
    od = [_shares(frame, ["origin", "destination"]) for frame in (synthetic, truth)]
    both = od[0].index.union(od[1].index)
    flows = [s.reindex(both, fill_value=0).to_numpy(float) for s in od]
    return {"held_out_jsd": held, "held_out_jsd_mean": float(np.mean(list(held.values()))) if held else None,
            "trip_length_jsd": _jsd(*kms, ["km_bin"]), "departure_hour_jsd": _jsd(synthetic, truth, ["depart"]),
            "zone_od_cpc": cpc(*flows), "zone_od_cosine": cosine(*flows)}
