"""The trips shape at scale: ``llmsynthor run`` without a model on synthetic regions of 10⁴ … 10⁶ trips over 2,000 zones.

    python bench/bench_trips_scale.py [--trips 10000 100000] [--candidates 32] [--zone-od [WEIGHT]]

Each size is a synthetic region written to a temporary folder, seeded: 2,000 zones in 40 districts
(random centroids over 60 × 60 km, households and jobs), persons of three types (workers, students,
others) with their days of trips as truth — home-based tours, stops drawn among the 300 nearest zones
by jobs × exp(−0.1·km), departures increasing, a mode per tour — and the tables an agency would
publish of them, as the example has: OD district × period (40 × 40 × 4), origin zone and destination
zone (2,000 each), hour × purpose, mode × purpose, trips per person by type. With ``--zone-od``, each
size runs twice: as above, and with a seventh table, OD zone × period (2,000 × 2,000 × 4 = 16 million
cells, the truth's non-empty ones listed: a table the run holds sparse, on the cells it lists) — what
a table of 10⁵–10⁶ listed cells costs beside the run without it.

Each size runs ``llmsynthor run SPEC --llm none --no-cache`` in a fresh process (started from one of
its own, whose children's max RSS is the run's peak memory): the whole non-LLM
work (reading, candidates, balancing, choice, polish, chains, writing linked CSVs and MATSim plans;
the LLM's questions do not grow with the persons, :mod:`llmsynthor.shapes.trips.prior`). Printed per
size: wall seconds, the stages' seconds from the manifest, peak memory (max RSS of the run), the worst
and mean table TVD; then the growth exponent between sizes, log(time ratio) / log(size ratio) (1: linear).
The run is one process; splitting persons over workers is not built (the closing note of issue 25 says why).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ZONES, DISTRICTS = 2000, 40
PERIODS = (0, 10, 15, 19, 24)  # depart bins: [0,10) [10,15) [15,19) [19,24) (days start at 5)
TYPES = {"worker": (2, 7), "student": (2, 5), "other": (0, 5)}  # trips a day, low and high (exclusive); 1 is moved to 2
PURPOSES, MODES = ["home", "work", "school", "shopping", "other"], ["drive alone", "shared ride", "walk", "transit"]
TRIPS_BINS = (0, 2, 3, 4, 5, 21)


def zone_table(rng: np.random.Generator) -> pd.DataFrame:
    lon = -122.4 + rng.uniform(0, 0.68, ZONES)  # about 60 km east–west at this latitude
    lat = 37.5 + rng.uniform(0, 0.54, ZONES)
    district = np.sort(rng.integers(1, DISTRICTS + 1, ZONES))
    return pd.DataFrame({"zone": np.arange(1, ZONES + 1), "district": [f"D{d:02d}" for d in district],
                         "households": rng.integers(50, 2000, ZONES), "jobs": rng.integers(0, 5000, ZONES),
                         "lon": lon.round(6), "lat": lat.round(6), "km2": rng.uniform(0.2, 5, ZONES).round(3)})


def truth(zones: pd.DataFrame, n_trips: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons and their days (home-based chains) making about ``n_trips`` trips."""
    from llmsynthor.declarations.zones import Zones

    table = Zones(zones["zone"].astype(str).to_numpy(), lon=zones["lon"].to_numpy(), lat=zones["lat"].to_numpy(),
                  km2=zones["km2"].to_numpy())
    near = table.nearest(300)
    neighbours, km = near.indices.reshape(ZONES, 300), near.data.reshape(ZONES, 300)
    persons = int(n_trips / 3.2)
    kind = rng.choice(list(TYPES), persons, p=[0.45, 0.2, 0.35])
    low, high = np.array([TYPES[k][0] for k in kind]), np.array([TYPES[k][1] for k in kind])
    per = rng.integers(low, high)
    per[per == 1] = 2
    home = rng.choice(ZONES, persons, p=zones["households"].to_numpy() / zones["households"].sum())
    owner = np.repeat(np.arange(persons), per)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    last = k == np.repeat(per - 1, per)
    back = last | (rng.random(len(owner)) < 0.25) & (k > 0) & (k < np.repeat(per, per) - 2)  # home at the end, sometimes between
    destination = np.zeros(len(owner), dtype=np.int64)
    weights = zones["jobs"].to_numpy()[neighbours] * np.exp(-0.1 * km) + 1e-9
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    for step in range(int(per.max(initial=0))):
        at = np.flatnonzero(k == step)
        origin = home[owner[at]] if step == 0 else destination[at - 1]
        pick = np.minimum((cumulative[origin] < rng.random(len(at))[:, None]).sum(axis=1), 299)
        destination[at] = np.where(back[at], home[owner[at]], neighbours[origin, pick])
    origin = np.where(k == 0, home[owner], np.r_[0, destination[:-1]])
    depart = np.sort(rng.integers(5, 24, len(owner)) + owner * 100) - owner * 100  # a day's hours ascending
    purpose = np.where(back, "home", rng.choice(PURPOSES[1:], len(owner), p=[0.35, 0.15, 0.25, 0.25]))
    tour = np.cumsum(np.r_[True, back[:-1]] | (k == 0)) - 1
    mode = np.asarray(MODES)[rng.choice(len(MODES), tour.max() + 1, p=[0.5, 0.2, 0.15, 0.15])][tour]
    ids = zones["zone"].to_numpy()
    people = pd.DataFrame({"person_id": np.arange(1, persons + 1), "household_id": np.arange(1, persons + 1),
                           "home_zone": ids[home], "person_type": kind})
    trips = pd.DataFrame({"person": owner, "origin": ids[origin], "destination": ids[destination], "depart": depart,
                          "purpose": purpose, "mode": mode, "trips": per[owner]})
    return people, trips


def bins(edges) -> list[str]:
    return [f"[{a},{b})" for a, b in zip(edges[:-1], edges[1:])]


def write_case(folder: Path, n_trips: int, candidates: int, zone_od: float = 0.0) -> Path:
    rng = np.random.default_rng(2026)
    zones = zone_table(rng)
    people, trips = truth(zones, n_trips, rng)
    (folder / "targets").mkdir(parents=True)
    zones.to_csv(folder / "zones.csv", index=False)
    people.to_csv(folder / "persons.csv", index=False)
    district = dict(zip(zones["zone"], zones["district"]))
    period = pd.cut(trips["depart"], PERIODS, right=False, labels=bins(PERIODS)).astype(str)
    hour = pd.cut(trips["depart"], range(25), right=False, labels=bins(range(25))).astype(str)

    def count(frame: pd.DataFrame, name: str, every: list | None = None) -> None:  # every: the cells to list, zeros too
        counts = frame.value_counts().rename("count")
        if every is not None:
            counts = counts.reindex(pd.MultiIndex.from_product(every, names=list(frame.columns)), fill_value=0)
        counts.reset_index().to_csv(folder / "targets" / name, index=False)

    count(pd.DataFrame({"origin_district": trips["origin"].map(district), "destination_district": trips["destination"].map(district),
                        "depart": period}), "od.csv")
    if zone_od:
        count(pd.DataFrame({"origin": trips["origin"], "destination": trips["destination"], "depart": period}), "zone_od.csv")
    count(trips[["origin"]], "origin.csv")
    count(trips[["destination"]], "destination.csv")
    count(pd.DataFrame({"depart": hour, "purpose": trips["purpose"]}), "hour_purpose.csv", [bins(range(25)), PURPOSES])
    count(trips[["mode", "purpose"]], "mode_purpose.csv")
    per_person = people["person_id"].map(trips.groupby("person").size().rename(lambda p: p + 1)).fillna(0).astype(int)
    count(pd.DataFrame({"person_type": people["person_type"],
                        "trips": pd.cut(per_person, TRIPS_BINS, right=False, labels=bins(TRIPS_BINS)).astype(str)}), "trips_per_person.csv")
    spec = {"kind": "trips", "name": f"scale-{n_trips}", "seed": 0,
            "zones": {"file": "zones.csv", "id": "zone", "district": "district", "households": "households", "jobs": "jobs",
                      "lon": "lon", "lat": "lat", "km2": "km2", "attractions": {"work": "jobs"}},
            "persons": {"file": "persons.csv", "id": "person_id", "household": "household_id", "home": "home_zone",
                        "variables": {"person_type": {"type": "categorical", "values": list(TYPES)}}},
            "trips": {"purposes": PURPOSES, "home": "home", "modes": MODES, "car_modes": ["drive alone"], "first_hour": 5,
                      "last_hour": 23, "max_trips": 20},
            "candidates": candidates,
            "targets": [{"name": "OD district × period", "variables": ["origin_district", "destination_district", "depart"],
                         "file": "targets/od.csv"},
                        {"name": "origin zone", "variables": ["origin"], "file": "targets/origin.csv"},
                        {"name": "destination zone", "variables": ["destination"], "file": "targets/destination.csv"},
                        {"name": "hour × purpose", "variables": ["depart", "purpose"], "file": "targets/hour_purpose.csv"},
                        {"name": "mode × purpose", "variables": ["mode", "purpose"], "file": "targets/mode_purpose.csv"},
                        {"name": "trips per person by type", "variables": ["person_type", "trips"], "file": "targets/trips_per_person.csv"}],
            "llm": {"backend": "none"}}
    if zone_od:
        spec["targets"].insert(1, {"name": "OD zone × period", "variables": ["origin", "destination", "depart"], "file": "targets/zone_od.csv",
                                   "weight": zone_od})
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return folder / "spec.yaml"


def one_size(n_trips: int, candidates: int, zone_od: float = 0.0) -> dict:
    """One size, run from a process of its own (so that the peak memory of its run is its own)."""
    done = subprocess.run([sys.executable, __file__, "--one", str(n_trips), "--candidates", str(candidates),
                           *(["--zone-od", str(zone_od)] if zone_od else [])], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_size(n_trips: int, candidates: int, zone_od: float = 0.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_case(Path(tmp) / "case", n_trips, candidates, zone_od)
        listed = sum(1 for _ in open(Path(tmp) / "case" / "targets" / "zone_od.csv")) - 1 if zone_od else 0
        start = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).with_name("llmsynthor")), "run", str(spec), "--llm", "none", "--no-cache",
                               "--out", str(Path(tmp) / "out")], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text())
    seconds = manifest["seconds"]
    fit = manifest["fit_tvd"]
    stage = {"candidates": sum(v for k, v in seconds.items() if k.startswith(("candidate days", "pilot"))),
             "balancing": sum(v for k, v in seconds.items() if k.startswith("balancing")),
             "choice": sum(v for k, v in seconds.items() if k.startswith("choice")), "polish": seconds.get("polish", 0.0)}
    zone_fit = {"zone_od_cells": listed, "zone_od_tvd": round(fit["OD zone × period"], 4)} if zone_od else {}
    others = [v for k, v in fit.items() if k != "OD zone × period"]
    return {"trips": manifest["trips"], "persons": manifest["persons"], **zone_fit, "wall_s": round(wall, 1), **{k: round(v, 1) for k, v in stage.items()},
            "peak_mb": round(peak / 1024), "worst_tvd": round(max(others), 4),  # of the district-level and other tables
            "mean_tvd": round(float(np.mean(others)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--candidates", type=int, default=32, help="candidate days per person in the first round (the example's 32)")
    parser.add_argument("--zone-od", type=float, nargs="?", const=1.0, default=0.0, metavar="WEIGHT",
                        help="each size also with an OD zone × period table (16 million cells, held sparse) of this weight (1 if "
                        "not given), beside the run without it")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, run from this process (one_size's subprocess)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.candidates, args.zone_od)))
        return
    rows, zoned = [], []
    for n in args.trips:
        rows.append(one_size(n, args.candidates))
        print(json.dumps(rows[-1]), flush=True)
        if args.zone_od:
            zoned.append(one_size(n, args.candidates, zone_od=args.zone_od))
            print(json.dumps(zoned[-1]), flush=True)
    frame = pd.DataFrame(rows).set_index("trips")
    print(frame.to_string())
    if zoned:
        with_od = pd.DataFrame(zoned).set_index("trips")
        print("\nwith OD zone × period (sparse):")
        print(with_od.to_string())
        print("ratio wall (with / without):", ", ".join(f"{a['trips']:,}: {b['wall_s'] / a['wall_s']:.2f}" for a, b in zip(rows, zoned)),
              "· ratio peak memory:", ", ".join(f"{b['peak_mb'] / a['peak_mb']:.2f}" for a, b in zip(rows, zoned)))
    for a, b in zip(rows[:-1], rows[1:]):
        ratio = np.log(b["trips"] / a["trips"])
        print(f"growth exponent {a['trips']:,} → {b['trips']:,} trips: wall {np.log(b['wall_s'] / a['wall_s']) / ratio:.2f}, "
              f"memory {np.log(b['peak_mb'] / a['peak_mb']) / ratio:.2f}")


if __name__ == "__main__":
    main()
