"""The trips shape's building blocks at scale, before the shape: 10⁵ and 10⁶ trips over 2,000 zones.

    python bench/bench_trips_scale.py [--trips 100000 1000000]

Synthetic, seeded: 2,000 zones in 40 districts (random centroids over 60 × 60 km, households and
jobs), persons with 2–6 trips each in home-based chains (home → … → home, departures increasing).
Each size runs in a fresh subprocess, so peak memory (max RSS) is the size's own. Timed, in seconds:

* ``chains`` — :func:`llmsynthor.evaluation.chains.check_days` over every day;
* ``incidence`` — :func:`llmsynthor.core.levels.incidence` of persons (candidates) on the trip tables
  a trips spec would give: district OD × period (40 × 40 × 5), origin zone, destination zone (2,000 each);
* ``balance`` — :func:`llmsynthor.fitting.balance.list_balance` of the persons to those tables (their
  own counts ×1.1 for district pairs, so the weights must move), 50 sweeps. Integerizing one
  region-wide problem of this size is left out: at 20,000 trips (about 5,000 persons, 4,000+
  controls) :func:`~llmsynthor.fitting.integerize.integerize` took 104 s (the LP relaxation 46 s, the
  MILP 58 s), so a trips shape must integerize per zone or district, as households do;
* ``nearest`` — :meth:`llmsynthor.declarations.zones.Zones.nearest` with k = 20;
* ``matsim`` — :func:`llmsynthor.outputs.matsim.write_plans` to a temporary file.

The growth exponent is log(time ratio) / log(size ratio) between the two sizes (1: linear).
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

ZONES, DISTRICTS, PERIODS = 2000, 40, ("EA", "AM", "MD", "PM", "EV")


def zones(rng: np.random.Generator):
    from llmsynthor.declarations.zones import Zones

    lon = -122.4 + rng.uniform(0, 0.68, ZONES)  # about 60 km east–west at this latitude
    lat = 37.5 + rng.uniform(0, 0.54, ZONES)
    return Zones(np.array([str(z + 1) for z in range(ZONES)]), district=np.sort(rng.integers(1, DISTRICTS + 1, ZONES)),
                 households=rng.integers(50, 2000, ZONES).astype(float), jobs=rng.integers(0, 5000, ZONES).astype(float),
                 lon=lon, lat=lat, km2=rng.uniform(0.2, 5, ZONES))


def days(n_trips: int, rng: np.random.Generator) -> pd.DataFrame:
    """Persons with 2–6 trips each, home-based chains: home → stops → home, departures increasing."""
    per = rng.integers(2, 7, size=n_trips // 2)
    per = per[: np.searchsorted(np.cumsum(per), n_trips) + 1]
    persons = len(per)
    owner = np.repeat(np.arange(persons), per)
    home = rng.integers(0, ZONES, persons)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)  # trip number within the day
    last = k == np.repeat(per - 1, per)
    stop = rng.integers(0, ZONES, len(owner))
    destination = np.where(last, home[owner], stop)
    origin = np.where(k == 0, home[owner], np.r_[0, destination[:-1]])
    depart = 6 + k * 16 // np.repeat(per, per) + rng.integers(0, 2, len(owner))  # hours, increasing within a day
    period = np.asarray(PERIODS)[np.searchsorted((0, 6, 10, 15, 19), depart, side="right") - 1]
    return pd.DataFrame({"person": owner, "trip": np.arange(len(owner)), "origin": origin, "destination": destination,
                         "depart": depart, "period": period, "mode": rng.choice(["car", "pt", "walk"], len(owner)),
                         "purpose": rng.choice(["work", "shop", "home"], len(owner))}), home


def one_size(n_trips: int) -> dict:
    from llmsynthor.core.levels import Level, LevelTable, Linked, chain, incidence
    from llmsynthor.core.tables import Axis
    from llmsynthor.evaluation.chains import check_days
    from llmsynthor.fitting.balance import list_balance
    from llmsynthor.outputs.matsim import write_plans

    rng = np.random.default_rng(2026)
    table = zones(rng)
    trips, home = days(n_trips, rng)
    out, clock = {"trips": len(trips), "persons": int(trips["person"].nunique())}, time.perf_counter
    start = clock()
    check = check_days(trips, person="person", order=["trip"], home=pd.Series(home))
    out["chains"], out["valid"] = clock() - start, int(check.valid.sum())

    district = table.district
    codes = pd.DataFrame({"person": trips["person"], "o_district": district[trips["origin"]].astype(str),
                          "d_district": district[trips["destination"]].astype(str), "period": trips["period"],
                          "origin": trips["origin"].astype(str), "destination": trips["destination"].astype(str)})
    levels = chain(Level("persons", id="person_id"), Level("trips", id="trip_id", parent="persons", link="person"))
    linked = Linked(levels, {"persons": pd.DataFrame(index=pd.RangeIndex(out["persons"])), "trips": codes})
    names = tuple(str(d) for d in range(1, DISTRICTS + 1))
    ids = tuple(table.ids)
    tables = [LevelTable("od_period", "trips", (Axis("o_district", names), Axis("d_district", names), Axis("period", PERIODS)),
                         np.zeros((DISTRICTS, DISTRICTS, 5)), None),
              LevelTable("origins", "trips", (Axis("origin", ids),), np.zeros(ZONES), None),
              LevelTable("destinations", "trips", (Axis("destination", ids),), np.zeros(ZONES), None)]
    start = clock()
    matrix = incidence(tables, linked)
    out["incidence"] = clock() - start
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    wanted = counts.copy()
    wanted[: DISTRICTS * DISTRICTS * 5] *= 1.1  # the OD table asks for more than the persons have: the weights must move
    start = clock()
    list_balance(matrix, wanted, np.ones(out["persons"]), max_iterations=50)
    out["balance"] = clock() - start
    start = clock()
    table.nearest(20)
    out["nearest"] = clock() - start
    with tempfile.TemporaryDirectory() as folder:
        start = clock()
        plans = trips.assign(origin=trips["origin"].map(lambda z: ids[z]), destination=trips["destination"].map(lambda z: ids[z]))
        write_plans(Path(folder) / "plans.xml", plans, table, person="person", order=("trip",))
        out["matsim"] = clock() - start
        out["matsim_mb"] = (Path(folder) / "plans.xml").stat().st_size / 1e6
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in this process (the subprocess)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    rows = []
    for n in args.trips:
        done = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    frame = pd.DataFrame(rows).set_index("trips")
    steps = ["chains", "incidence", "balance", "nearest", "matsim"]
    frame["non-LLM total"] = frame[steps].sum(axis=1)
    print(frame.round(2).to_string())
    if len(rows) > 1:
        ratio = rows[-1]["trips"] / rows[0]["trips"]
        exponents = {s: np.log(frame[s].iloc[-1] / frame[s].iloc[0]) / np.log(ratio) for s in [*steps, "non-LLM total"]}
        print("growth exponents:", ", ".join(f"{s} {e:.2f}" for s, e in exponents.items()))


if __name__ == "__main__":
    main()
