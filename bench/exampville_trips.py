"""Exampville as trips: a second mobility case for the trips shape, not tuned on — built from the
example data of the ``larch`` wheel, scored beside the methods of ``bench/mtc_trips.py``.

Data: ``larch/data_warehouse/`` of ``larch-6.0.46-py3-none-any.whl`` (PyPI, ``larch==6.0.46``,
sha256 dccbb0f0…f7f6; fetched with ``pip download --no-deps`` into llmsynthor's dataset cache, or
given with ``--wheel``; read as a zip, never installed): ``exampville_households.csv.gz`` (5,000
households, their home TAZ), ``exampville_persons.csv.gz`` (12,349 persons: age, works),
``exampville_tours.csv.gz`` (20,739 tours: destination TAZ, mode, purpose, number of stops),
``exampville_employment.csv.gz`` and ``exampville_demographics.csv.gz`` (per TAZ: jobs, retail
jobs, households), ``exampville_taz.zip`` (a shapefile of the 40 TAZ polygons, read in pure Python;
1 map unit = 0.01 mile); the skims (``exampville_skims.omx``, HDF5) are not read — llmsynthor
depends on no HDF5 reader, and distances come from the centroids — so the zones have no area type.
Exampville is a made-up town, and its households, persons and tours are
simulated, not survey records.

**Licence.** larch is GPL-3.0. Its data are never committed here: this script builds the case (zone
table, persons, target tables, spec) into the folder given on the command line, by default a
temporary one, each time it runs.

Coding (used by every method alike):

* **trips** — every tour is two trips: out from the home TAZ to the tour's ``DTAZ`` (purpose
  ``work`` for ``TOURPURP`` 1, ``other`` for 2) and back (``DTAZ`` to home, purpose ``home``), both
  by the tour's mode; a person's tours in ``TOURID`` order. The intermediate stops (``N_STOPS``)
  are left out: the data do not say where they are. So every day has 0 or an even number (2–12) of
  trips, every tour is home → destination → home.
* **mode** (``TOURMODE``): 1 drive alone, 2 shared ride, 3 walk, 4 bike, 5 transit.
* **person type** (first that holds): ``worker`` (``WORKS`` = 1, any age); ``child aged 5-15``;
  ``aged 16-17 not working``; ``non-working adult under 65``; ``non-working adult 65+``.
* **trip length** — great-circle kilometres between the zones' centroids (within a zone, half the
  side of a square of its area; :meth:`llmsynthor.declarations.zones.Zones.km`), in bands < 1,
  1–3, 3–5, 5–10, 10–20, 20+ km.

**Invented** (the data have none of these):

* **districts** — the 4 quadrants of the TAZ centroids, split at x = 500 and y = 400 map units (5
  and 4 miles from the map's origin): ``NW``, ``NE``, ``SW``, ``SE``;
* **coordinates** — the map is placed on the equator at longitude 0, linearly, so that kilometres
  come out right: lat = y · 0.01609344 / 111.195, lon = x · 0.01609344 / 111.195 (111.195 km a
  degree on llmsynthor's sphere of radius 6,371 km); areas km² = map units² · 0.01609344²;
* **hours** — there are no times in the data. The spec gives ``first_hour: 5`` and ``last_hour:
  23`` (the shape needs a span) and no table names ``depart``: hours are neither targets nor scored.

Targets, as an agency would publish them: trips by origin district × destination district × purpose
(4 × 4 × 3), by origin TAZ, by destination TAZ, by mode × purpose, and persons by person type × trips
in the day (bins [0,2) [2,3) [3,5) [5,7) [7,12]). Held out (no target crosses them): district OD ×
mode, mode × trip-length band, person type × purpose; trip length in 1-km bins; OD at TAZ level as CPC
(2·Σmin / (ΣT + ΣS)) and cosine similarity.

Methods: the trips shape with ``llm.backend: none`` (the tables alone) on the case; **floor** — half
of the persons with their trips, counted twice; **independent** margins; **gravity + Furness** at TAZ
level (β chosen on the district OD target, distances between centroids), then purpose given the
district pair and mode given the purpose from the target tables; **IPF**, the tables' own joint
(cliques {o district, d district, purpose}, {purpose, mode}, {district, TAZ} at each end), drawn
exactly. The baselines write trips only: their trips' person types are drawn from the trips by
person type the trips-per-person table implies (each bin at the mean of its integers), independently
of the rest — all that table says of trips.

``python bench/exampville_trips.py [--folder DIR] [--seeds N] [--first-seed S] [--scores CSV] [--wheel PATH]
[--no-shape]`` prints the data, the case and the table of methods (medians over seeds S … S+N−1,
default 0, 1, 2). Each seed's run of the shape took 77–89 s on 2 cores (peak 1.3 GB); the
baselines take seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from casefiles import wheel  # noqa: E402
from mtc_trips import _conditional, _draw, _full, compare, counts, gravity_trips, with_band  # noqa: E402

from llmsynthor.core.metrics import cosine, cpc, jsd, tvd  # noqa: E402
from llmsynthor.declarations.zones import EARTH_KM, Zones  # noqa: E402
from llmsynthor.evaluation.chains import ChainCheck, check_days  # noqa: E402

REQUIREMENT = "larch==6.0.46"
WHEEL = "larch-6.0.46-py3-none-any.whl"
WHEEL_SHA256 = "dccbb0f014bd5dc53fef58957801e06da2f06afb0a90c5f6ef60b903b245f7f6"
WAREHOUSE = "larch/data_warehouse/"

UNIT_KM = 0.01 * 1.609344  # one map unit: 0.01 mile
KM_PER_DEGREE = EARTH_KM * math.pi / 180  # 111.195
SPLIT_X, SPLIT_Y = 500.0, 400.0  # the invented districts: quadrants of the centroids
MODES = {1: "drive alone", 2: "shared ride", 3: "walk", 4: "bike", 5: "transit"}
TOUR_PURPOSES = {1: "work", 2: "other"}
PURPOSES = ("home", "work", "other")
CAR_MODES = ("drive alone",)
PERSON_TYPES = ("worker", "non-working adult under 65", "non-working adult 65+", "aged 16-17 not working", "child aged 5-15")
TRIP_BINS = ((0, 2, "[0,2)"), (2, 3, "[2,3)"), (3, 5, "[3,5)"), (5, 7, "[5,7)"), (7, 13, "[7,12]"))
MAX_TRIPS = 12
FIRST_HOUR, LAST_HOUR = 5, 23

TARGETS = {"OD district × purpose": ["o_district", "d_district", "purpose"], "origin TAZ": ["origin"],
           "destination TAZ": ["destination"], "mode × purpose": ["mode", "purpose"]}
HELD_OUT = {"OD district × mode": ["o_district", "d_district", "mode"], "mode × length band": ["mode", "band"],
            "person type × purpose": ["person_type", "purpose"]}


# -- the data ------------------------------------------------------------------------------------------

def wheel_path(given: Path | None = None) -> Path:
    """The larch wheel: ``given`` (checked against the sha256) or llmsynthor's dataset cache (fetched if missing)."""
    if given is None:
        return wheel(REQUIREMENT, WHEEL, WHEEL_SHA256)
    digest = hashlib.sha256(given.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{given}: sha256 {digest}, expected {WHEEL_SHA256} ({WHEEL})")
    return given


def _csv(archive: zipfile.ZipFile, name: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(archive.read(WAREHOUSE + name)), compression="gzip")


def taz_polygons(archive: zipfile.ZipFile) -> pd.DataFrame:
    """Each TAZ's area (map units²) and centroid (area-weighted over its rings) from the shapefile, in
    pure Python: the dBASE file's first field is the TAZ id, records in the order of the shapes."""
    shapes = zipfile.ZipFile(io.BytesIO(archive.read(WAREHOUSE + "exampville_taz.zip")))
    dbf = shapes.read("exampville_taz.dbf")
    records, header, length = struct.unpack("<xxxxIHH", dbf[:12])
    width = dbf[32 + 16]  # the first field's length
    ids = [int(dbf[header + i * length + 1: header + i * length + 1 + width].decode("latin1")) for i in range(records)]
    shp, p, rows = shapes.read("exampville_taz.shp"), 100, []
    while p < len(shp):
        _, words = struct.unpack(">ii", shp[p:p + 8])
        content = shp[p + 8:p + 8 + 2 * words]
        parts, points = struct.unpack("<ii", content[36:44])
        starts = list(struct.unpack(f"<{parts}i", content[44:44 + 4 * parts])) + [points]
        xy = np.array(struct.unpack(f"<{2 * points}d", content[44 + 4 * parts:44 + 4 * parts + 16 * points])).reshape(-1, 2)
        area = cx = cy = 0.0
        for a, b in zip(starts[:-1], starts[1:]):  # rings: outer clockwise, holes counter-clockwise (signed areas add up)
            x, y = xy[a:b, 0], xy[a:b, 1]
            cross = x[:-1] * y[1:] - x[1:] * y[:-1]
            area += cross.sum() / 2
            cx += ((x[:-1] + x[1:]) * cross).sum() / 6
            cy += ((y[:-1] + y[1:]) * cross).sum() / 6
        rows.append((abs(area), cx / area, cy / area))
        p += 8 + 2 * words
    if len(rows) != len(ids):
        raise RuntimeError(f"exampville_taz.zip: {len(rows)} shapes but {len(ids)} dBASE records")
    return pd.DataFrame(rows, columns=["area", "x", "y"], index=pd.Index(ids, name="TAZ"))


def person_type(age: pd.Series, works: pd.Series) -> pd.Series:
    kind = np.select([works == 1, age < 16, age < 18, age < 65],
                     ["worker", "child aged 5-15", "aged 16-17 not working", "non-working adult under 65"], "non-working adult 65+")
    return pd.Series(kind, index=age.index)


def district_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(y >= SPLIT_Y, "N", "S").astype(object) + np.where(x >= SPLIT_X, "E", "W").astype(object)


@dataclass
class Exampville:
    households: pd.DataFrame
    persons: pd.DataFrame  # with person_type, home_zone
    tours: pd.DataFrame
    zones: pd.DataFrame  # by TAZ: district, households, jobs, retail_jobs, lon, lat, km2
    trips: pd.DataFrame  # coded: person_id, tour_id, leg, trip_id, origin, destination, o_district, d_district, purpose, mode, km, person_type

    @property
    def table(self) -> Zones:
        z = self.zones
        return Zones(z.index.astype(str).to_numpy(), district=z["district"].to_numpy(), lon=z["lon"].to_numpy(),
                     lat=z["lat"].to_numpy(), km2=z["km2"].to_numpy())


def distance_km(zones: Zones, origin, destination) -> np.ndarray:
    return zones.km(zones.rows(origin), zones.rows(destination))


def read_exampville(path: Path) -> Exampville:
    with zipfile.ZipFile(path) as archive:
        households, persons = _csv(archive, "exampville_households.csv.gz"), _csv(archive, "exampville_persons.csv.gz")
        tours = _csv(archive, "exampville_tours.csv.gz")
        employment = _csv(archive, "exampville_employment.csv.gz").set_index("TAZ")
        demographics = _csv(archive, "exampville_demographics.csv.gz").set_index("TAZ")
        polygons = taz_polygons(archive)
    ids = polygons.index.sort_values()
    polygons = polygons.loc[ids]
    zones = pd.DataFrame({"district": district_of(polygons["x"].to_numpy(), polygons["y"].to_numpy())}, index=ids)
    zones["households"] = demographics["N_HOUSEHOLDS"].reindex(ids).fillna(0).astype(int).to_numpy()
    zones["jobs"] = employment["TOTAL_EMP"].reindex(ids).fillna(0).astype(int).to_numpy()
    zones["retail_jobs"] = employment["RETAIL_EMP"].reindex(ids).fillna(0).astype(int).to_numpy()
    zones["lon"] = polygons["x"].to_numpy() * UNIT_KM / KM_PER_DEGREE
    zones["lat"] = polygons["y"].to_numpy() * UNIT_KM / KM_PER_DEGREE
    zones["km2"] = polygons["area"].to_numpy() * UNIT_KM ** 2
    home = households.set_index("HHID")["HOMETAZ"]
    persons = persons.assign(home_zone=persons["HHID"].map(home).to_numpy(), person_type=person_type(persons["AGE"], persons["WORKS"]))
    t = tours.sort_values("TOURID")
    base = pd.DataFrame({"person_id": t["PERSONID"].to_numpy(), "tour_id": t["TOURID"].to_numpy(), "mode": t["TOURMODE"].map(MODES).to_numpy()})
    at_home, there = t["HHID"].map(home).to_numpy(), t["DTAZ"].to_numpy()
    out = base.assign(leg=0, origin=at_home, destination=there, purpose=t["TOURPURP"].map(TOUR_PURPOSES).to_numpy())
    back = base.assign(leg=1, origin=there, destination=at_home, purpose="home")
    trips = pd.concat([out, back]).sort_values(["person_id", "tour_id", "leg"], kind="stable").reset_index(drop=True)
    trips.insert(3, "trip_id", np.arange(1, len(trips) + 1))
    case = Exampville(households, persons, tours, zones, trips)
    trips["o_district"] = zones.loc[trips["origin"], "district"].to_numpy()
    trips["d_district"] = zones.loc[trips["destination"], "district"].to_numpy()
    trips["km"] = distance_km(case.table, trips["origin"], trips["destination"])
    trips["person_type"] = trips["person_id"].map(persons.set_index("PERSONID")["person_type"]).to_numpy()
    return case


def chains_of(trips: pd.DataFrame, home: pd.Series, *, mode: str = "mode", tour: str = "tour_id",
              order: tuple[str, ...] = ("tour_id", "leg")) -> ChainCheck:
    """Days checked as chains as the synthesizer checks its own (the tour's first leg's mode is its mode;
    drive alone must come back home). Without times every departure is taken as 0, ordered by ``order``."""
    trips = trips.assign(depart=trips["depart"] if "depart" in trips else 0)
    first = trips.sort_values([tour, *order[1:]], kind="stable").groupby(tour)[mode].transform("first")
    others = tuple(m for m in MODES.values() if m not in CAR_MODES)
    return check_days(trips.assign(tour_mode=first.reindex(trips.index)), order=list(order), home=home, tour=tour, mode=mode,
                      tour_mode="tour_mode", car_modes=CAR_MODES, other_modes=others)


# -- the case ------------------------------------------------------------------------------------------

def _bin_of(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for low, high, label in TRIP_BINS:
        out[(values >= low) & (values < high)] = label
    return out


def trips_per_person(case: Exampville) -> pd.Series:
    return case.persons["PERSONID"].map(case.trips.groupby("person_id").size()).fillna(0).astype(int)


def write_case(folder: Path, case: Exampville | None = None, *, wheel_file: Path | None = None) -> Path:
    """zones.csv, persons.csv, targets/*.csv and spec.yaml of the Exampville trips case in ``folder``; the spec's path.
    The trips themselves are never written: they are the truth the methods are scored against."""
    case = case or read_exampville(wheel_path(wheel_file))
    folder = Path(folder)
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    z = case.zones
    zones = pd.DataFrame({"zone": z.index, "district": z["district"].to_numpy()})
    for column in ("households", "jobs", "retail_jobs"):
        zones[column] = z[column].to_numpy()
    zones["lon"], zones["lat"], zones["km2"] = z["lon"].round(7).to_numpy(), z["lat"].round(7).to_numpy(), z["km2"].round(5).to_numpy()
    zones.to_csv(folder / "zones.csv", index=False)
    p = case.persons
    persons = pd.DataFrame({"person_id": p["PERSONID"], "household_id": p["HHID"], "home_zone": p["home_zone"], "person_type": p["person_type"]})
    persons.to_csv(folder / "persons.csv", index=False)
    t = case.trips.rename(columns={"o_district": "origin_district", "d_district": "destination_district"})
    written = {
        "od_district_purpose": _full(t, ["origin_district", "destination_district", "purpose"], {}),
        "origin_zone": _full(t, ["origin"], {}), "destination_zone": _full(t, ["destination"], {}),
        "mode_purpose": _full(t, ["mode", "purpose"], {}),
        "trips_per_person": _full(persons.assign(trips=_bin_of(trips_per_person(case).to_numpy())), ["person_type", "trips"],
                                  {"trips": tuple(label for *_, label in TRIP_BINS)}),
    }
    for name, frame in written.items():
        frame.to_csv(folder / "targets" / f"{name}.csv", index=False)
    q = json.dumps
    spec = f"""# Exampville (the larch==6.0.46 wheel's example town; GPL-3.0 data: built by bench/exampville_trips.py, never committed).
# Home-based tours as trips (stops left out); districts (quadrants) and coordinates (linear, on the equator) invented; no times.
kind: trips
name: exampville_trips
population: weekday home-based trips of the residents of Exampville, a small made-up town of 40 zones about 15 km across
seed: 0
zones:
  file: zones.csv
  id: zone
  district: district
  households: households
  jobs: jobs
  lon: lon
  lat: lat
  km2: km2
  attractions: {{work: jobs, other: retail_jobs}}
persons:
  file: persons.csv
  id: person_id
  household: household_id
  home: home_zone
  variables:
    person_type:
      type: categorical
      values: {q(list(PERSON_TYPES))}
      description: who the person is, by work and age
trips:
  purposes: {q(list(PURPOSES))}
  home: home
  modes: {q(list(MODES.values()))}
  car_modes: {q(list(CAR_MODES))}
  first_hour: {FIRST_HOUR}
  last_hour: {LAST_HOUR}
  max_trips: {MAX_TRIPS}
llm: {{backend: none}}
targets:
  - {{name: OD district × purpose, variables: [origin_district, destination_district, purpose], file: targets/od_district_purpose.csv}}
  - {{name: origin zone, variables: [origin], file: targets/origin_zone.csv}}
  - {{name: destination zone, variables: [destination], file: targets/destination_zone.csv}}
  - {{name: mode × purpose, variables: [mode, purpose], file: targets/mode_purpose.csv}}
  - {{name: trips per person by type, variables: [person_type, trips], file: targets/trips_per_person.csv}}
"""
    path = folder / "spec.yaml"
    path.write_text(spec, encoding="utf-8")
    return path


def check_case(spec: Path) -> str:
    """``llmsynthor check`` of the case (the installed CLI, in this interpreter); its output, or RuntimeError."""
    done = subprocess.run([sys.executable, "-c", "from llmsynthor.cli import main; main()", "check", str(spec)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"llmsynthor check {spec} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


# -- scores --------------------------------------------------------------------------------------------

def score(truth: pd.DataFrame, synthetic: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float]:
    """TVD on the target tables of trips (mean, max), held-out JS distance (mean and each), trip-length JSD, CPC and cosine at TAZ level."""
    truth, synthetic = with_band(truth), with_band(synthetic)
    on = [tvd(*compare(counts(synthetic, c, weights), counts(truth, c))) for c in TARGETS.values()]
    held = {name: jsd(*compare(counts(synthetic, c, weights), counts(truth, c))) for name, c in HELD_OUT.items()}
    od = compare(counts(synthetic, ["origin", "destination"], weights), counts(truth, ["origin", "destination"]))
    return {"target TVD mean": float(np.mean(on)), "target TVD max": float(np.max(on)), "held-out JSD mean": float(np.mean(list(held.values()))),
            **{f"JSD {name}": value for name, value in held.items()},
            "trip length JSD": jsd(*compare(counts(synthetic, ["km_bin"], weights), counts(truth, ["km_bin"]))),
            "TAZ OD CPC": cpc(*od), "TAZ OD cosine": cosine(*od)}


def per_person_tvd(truth: pd.DataFrame, persons: pd.DataFrame, trips: np.ndarray) -> float:
    """TVD of persons by person type × trips-in-the-day bin, ``persons`` (with ``person_type``) making ``trips``."""
    made = pd.DataFrame({"person_type": persons["person_type"].to_numpy(), "bin": _bin_of(np.asarray(trips))})
    return tvd(*compare(counts(made, ["person_type", "bin"]) * (len(truth) / len(made)), counts(truth, ["person_type", "bin"])))


# -- methods -------------------------------------------------------------------------------------------

def _person_types(truth: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """Trips' person types as the trips-per-person table implies them (each bin at the mean of its integers)."""
    mean = {label: (low + min(high, MAX_TRIPS + 1) - 1) / 2 for low, high, label in TRIP_BINS}
    table = counts(truth, ["person_type", "bin"]).rename("w").reset_index()
    by_type = (table["w"] * table["bin"].map(mean)).groupby(table["person_type"]).sum()
    return _draw(by_type.rename_axis("person_type"), n, rng)["person_type"].to_numpy()


def _finish(trips: pd.DataFrame, case: Exampville, persons_truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    trips = trips.reset_index(drop=True)
    for column in ("origin", "destination"):
        trips[column] = trips[column].astype(int)
    trips["o_district"] = case.zones.loc[trips["origin"], "district"].to_numpy()
    trips["d_district"] = case.zones.loc[trips["destination"], "district"].to_numpy()
    trips["km"] = distance_km(case.table, trips["origin"], trips["destination"])
    trips["person_type"] = _person_types(persons_truth, len(trips), rng)
    return trips


def independent(case: Exampville, persons_truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    truth = case.trips
    trips = pd.DataFrame({c: _draw(counts(truth, [c]), len(truth), rng)[c] for c in ("origin", "destination", "purpose", "mode")})
    return _finish(trips, case, persons_truth, rng)


def ipf(case: Exampville, persons_truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The tables' own joint, drawn: district OD × purpose, each end's TAZ given its district, mode given the purpose."""
    truth, zones = case.trips, case.zones
    trips = _draw(counts(truth, ["o_district", "d_district", "purpose"]), len(truth), rng)
    origin = counts(truth, ["origin"]).rename("w").reset_index().assign(o_district=lambda f: zones.loc[f["origin"], "district"].to_numpy())
    destination = counts(truth, ["destination"]).rename("w").reset_index().assign(
        d_district=lambda f: zones.loc[f["destination"], "district"].to_numpy())
    trips = trips.join(_conditional(trips, origin.set_index(["o_district", "origin"])["w"], ["o_district"], rng))
    trips = trips.join(_conditional(trips, destination.set_index(["d_district", "destination"])["w"], ["d_district"], rng))
    trips = trips.join(_conditional(trips, counts(truth, ["purpose", "mode"]), ["purpose"], rng))
    return _finish(trips, case, persons_truth, rng)


def gravity(case: Exampville, persons_truth: pd.DataFrame, rng: np.random.Generator,
            betas=np.geomspace(0.02, 2.0, 21)) -> pd.DataFrame:
    """A doubly constrained gravity model at TAZ level, β chosen on the district OD target; then purpose
    given the district pair (the OD × purpose table) and mode given the purpose."""
    truth, zones = case.trips, case.zones
    ids = zones.index.to_numpy()
    o, d = np.meshgrid(ids, ids, indexing="ij")
    km = distance_km(case.table, o.ravel(), d.ravel()).reshape(o.shape)
    trips, beta = gravity_trips(truth, ids, km, zones["district"].to_numpy(), betas, rng)
    trips["o_district"], trips["d_district"] = zones.loc[trips["origin"], "district"].to_numpy(), zones.loc[trips["destination"], "district"].to_numpy()
    trips = trips.join(_conditional(trips, counts(truth, ["o_district", "d_district", "purpose"]), ["o_district", "d_district"], rng))
    trips = trips.join(_conditional(trips, counts(truth, ["purpose", "mode"]), ["purpose"], rng))
    out = _finish(trips, case, persons_truth, rng)
    out.attrs["beta"] = beta
    return out


def floor(case: Exampville, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """Half of the persons (with or without trips) and their trips, counted twice: trips, weights, persons, their trips."""
    half = rng.permutation(case.persons["PERSONID"].to_numpy())[: len(case.persons) // 2]
    sample = case.trips[case.trips["person_id"].isin(half)].reset_index(drop=True)
    persons = case.persons[case.persons["PERSONID"].isin(half)]
    made = persons["PERSONID"].map(case.trips.groupby("person_id").size()).fillna(0).to_numpy()
    return sample, np.full(len(sample), len(case.trips) / len(sample)), persons, made


def synthesized(spec_path: Path, seed: int):
    """The trips shape on the case (backend none) with ``seed``: its trips coded as the methods' are, and the run's result."""
    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips.spec import load
    from llmsynthor.shapes.trips.synthesizer import TripSynthesizer

    spec = load(spec_path)
    spec = spec.model_copy(update={"seed": seed, "llm": spec.llm.model_copy(update={"backend": "none"})})
    result = TripSynthesizer(spec, make_backend(spec.llm)).run()
    t = result.trips
    types = result.persons.set_index("person_id")["person_type"]
    coded = pd.DataFrame({"person_id": t["person_id"].to_numpy(), "tour_id": t["tour_id"].to_numpy(), "trip_id": t["trip_id"].to_numpy(),
                          "origin": t["origin"].astype(int).to_numpy(), "destination": t["destination"].astype(int).to_numpy(),
                          "depart": t["depart"].astype(int).to_numpy(), "o_district": t["origin_district"].to_numpy(),
                          "d_district": t["destination_district"].to_numpy(), "purpose": t["purpose"].to_numpy(),
                          "mode": t["trip_mode"].to_numpy(), "km": t["km"].astype(float).to_numpy(),
                          "person_type": t["person_id"].map(types).to_numpy()})
    return coded, result


# -- the script ----------------------------------------------------------------------------------------

def describe(case: Exampville, check: ChainCheck) -> None:
    t, p, z = case.trips, case.persons, case.zones
    n = trips_per_person(case)
    print(f"{WHEEL}: {len(case.households):,} households, {len(p):,} persons, {len(case.tours):,} tours "
          f"({int((case.tours['N_STOPS'] > 0).sum()):,} with stops, {int(case.tours['N_STOPS'].sum()):,} stops left out), "
          f"{len(t):,} home-based trips over {t[['origin', 'destination']].stack().nunique()} of {len(z)} TAZ")
    print(f"  trips per person: {n.value_counts().sort_index().to_dict()} (max {n.max()})")
    print(f"  person types: {p['person_type'].value_counts().to_dict()}")
    print("  districts (zones / households / jobs): " + ", ".join(
        f"{d} {len(g)}/{g['households'].sum():,}/{g['jobs'].sum():,}" for d, g in z.groupby("district")))
    print(f"  trip length km: median {t['km'].median():.2f}, mean {t['km'].mean():.2f}, max {t['km'].max():.2f}; "
          f"intrazonal {(t['origin'] == t['destination']).mean():.1%}; mode: {t['mode'].value_counts().to_dict()}")
    print(f"  chains (check_days, departures all 0, ordered by tour and leg): {int(check.valid.sum()):,} of {len(check.persons):,} valid; "
          + ", ".join(f"{r} {n:,}" for r, n in check.counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--folder", type=Path, help="build the case here (default: a temporary folder, removed at the end)")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3); the table gives medians")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0): seeds first … first+N-1")
    parser.add_argument("--scores", type=Path, help="also write every seed's scores to this CSV (method, seed, score columns)")
    parser.add_argument("--wheel", type=Path, help=f"a local {WHEEL} (sha256 checked) instead of llmsynthor's dataset cache")
    parser.add_argument("--no-shape", action="store_true", help="score the baselines only")
    args = parser.parse_args()
    started = time.perf_counter()
    case = read_exampville(wheel_path(args.wheel))
    describe(case, chains_of(case.trips, case.persons.set_index("PERSONID")["home_zone"]))
    with tempfile.TemporaryDirectory(prefix="exampville_trips_") as scratch:
        folder = args.folder or Path(scratch)
        spec = write_case(folder, case)
        print(f"case in {folder}: {len(case.zones)} zones, {len(case.persons):,} persons, {len(case.trips):,} trips in the tables; "
              f"built in {time.perf_counter() - started:.1f}s")
        print(check_case(spec).rstrip())
        truth = case.trips
        persons_truth = case.persons.assign(bin=_bin_of(trips_per_person(case).to_numpy()))
        rows = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed)
            sample, weights, half, made = floor(case, rng)
            grav = gravity(case, persons_truth, rng)
            methods = {"floor (half the persons, ×2)": (sample, weights, per_person_tvd(persons_truth, half, made)),
                       "independent": (independent(case, persons_truth, rng), None, np.nan),
                       "gravity + Furness": (grav, None, np.nan), "IPF (the tables' joint)": (ipf(case, persons_truth, rng), None, np.nan)}
            print(f"  seed {seed}: gravity β {grav.attrs['beta']:.3f}")
            if not args.no_shape:
                clock = time.perf_counter()
                coded, result = synthesized(spec, seed)
                chains = result.chains
                broken = {r: n for r, n in chains.counts.items() if n}
                print(f"  seed {seed} llmsynthor trips, tables alone: {len(coded):,} trips, chains valid {int(chains.valid.sum()):,}/"
                      f"{len(chains.persons):,}{' broken ' + str(broken) if broken else ''}, fit {result.fit}, "
                      f"rounds {[r['error_chosen'] for r in result.rounds]}, {result.candidates:,} candidate days, "
                      f"{time.perf_counter() - clock:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in result.seconds.items() if v >= 1)})")
                per = per_person_tvd(persons_truth, result.persons, result.persons["trips"].astype(int).to_numpy())
                shape = {"llmsynthor trips, tables alone": (coded, None, per)}
                methods = {**shape, **methods}
                lengths = pd.Series(result.persons["trips"].astype(int)).value_counts().sort_index().to_dict()
                legs = coded.groupby("tour_id").size()
                home = int((coded["purpose"] == "home").sum())
                stop_to_stop = int(((coded["purpose"] != "home") & (coded.groupby("tour_id").cumcount() > 0)).sum())
                print(f"    its trips per person {lengths}; tours {len(legs):,} (truth {truth['tour_id'].nunique():,}), "
                      f"{int((legs != 2).sum()):,} not of 2 trips; trips home {home:,} (truth {int((truth['purpose'] == 'home').sum()):,}); "
                      f"stop-to-stop trips {stop_to_stop:,} (truth 0)")
                work = coded[coded["purpose"] == "work"]
                print(f"    work trips by persons who do not work: {int((work['person_type'] != 'worker').sum()):,} of {len(work):,} "
                      f"(truth {int(((truth['purpose'] == 'work') & (truth['person_type'] != 'worker')).sum())}); departure hours "
                      f"(unscored) {coded['depart'].value_counts().sort_index().to_dict()}")
            for name, (frame, w, per) in methods.items():
                scores = score(truth, frame, w)
                scores["trips per person TVD"] = per
                if name.startswith("llmsynthor"):
                    scores["broken chains"] = float(len(result.chains.persons) - result.chains.valid.sum())
                rows.setdefault(name, []).append({"seed": seed, **scores})
        if args.scores:
            pd.concat([pd.DataFrame(scores).assign(method=name) for name, scores in rows.items()]).to_csv(args.scores, index=False)
        table = pd.DataFrame({name: pd.DataFrame(scores).drop(columns="seed").median() for name, scores in rows.items()}).T
        seeds = f"seed {args.first_seed}" if args.seeds == 1 else f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
        print(f"medians of {args.seeds} seed(s) ({seeds}); JSD = Jensen-Shannon distance, base 2; wall {time.perf_counter() - started:.0f}s")
        main_columns = ["target TVD mean", "target TVD max", "held-out JSD mean", "trip length JSD", "TAZ OD CPC", "TAZ OD cosine",
                        "trips per person TVD", *(["broken chains"] if "broken chains" in table else [])]
        print(table[main_columns].round(4).to_string())
        print(table[[f"JSD {name}" for name in HELD_OUT]].round(4).to_string())


if __name__ == "__main__":
    main()
