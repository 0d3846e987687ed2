"""The MTC travel survey in the activitysim wheel as trips: the truth, its chains checked, the tables
an agency would publish, and the baselines a trips shape must beat — measured before it is built.

Data: ``activitysim/examples/example_estimation/data_full/`` from the ``activitysim==1.6.0`` wheel on
PyPI (fetched with ``pip download --no-deps`` into llmsynthor's dataset cache, sha256 checked, read
as a zip; never installed, never committed): ``survey_data/survey_{households,persons,tours,trips}.csv``
(2,000 households, 5,269 persons, 6,982 tours, 17,606 trips; a model-generated example, not real
diaries), ``land_use.csv`` (1,454 TAZ: district, area type, households, jobs) and the zones'
geometry ``prototype_mtc/output/summarize/taz1454.geojson`` (centroids for distances).

Coding (documented here, used by every method alike):

* ``period`` of the departure hour (5–23): EA ≤ 5, AM 6–9, MD 10–14, PM 15–18, EV ≥ 19;
* ``purpose`` (8): home; work (``work``, ``Work`` — back to work from a work-based subtour —,
  ``atwork``); school (``school``, ``univ``); escort; shopping; maintenance (``othmaint``); eat out
  (``eatout``); discretionary (``social``, ``othdiscr``);
* ``mode`` (6): drive alone; shared ride; walk; bike; transit (walk or drive to any transit);
  taxi/TNC;
* trip length: great-circle distance between the zones' centroids (an intrazonal trip: half the
  side of a square of the zone's area), in bands < 1, 1–3, 3–5, 5–10, 10–20, 20+ km.

Targets, as an agency publishes them: trips by origin district × destination district × period
(34 × 34 × 5), by origin TAZ and by destination TAZ, by departure hour × purpose, by mode ×
purpose. Held out: district OD × mode, purpose × destination district × period, mode × trip-length
band, trip length (1-km bins) and departure hour by purpose; OD fit at TAZ level as CPC (common
part of commuters, 2·Σmin / (ΣT + ΣS)) and cosine similarity.

Methods, trips only (none of them writes persons or chains):

* **floor** — half of the survey's persons with their trips, counted twice;
* **independent** — every variable from its own margin;
* **gravity + Furness** — a doubly constrained gravity model at TAZ level (origins and destinations
  the targets' TAZ totals, deterrence exp(−β·km) with β the one whose district OD is closest to the
  target's), then period | district pair, departure hour and purpose | period, mode | purpose from
  the target tables;
* **IPF** — the tables' own joint: the target tables are a decomposable model (cliques {origin
  district, destination district, period}, {period, hour, purpose}, {purpose, mode}, {district,
  TAZ} at each end), whose IPF fixpoint is the product of their conditionals, drawn exactly.

``python bench/mtc_trips.py`` prints the chain check of the survey and the table of methods.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from semcog_households import WHEEL, wheel_path  # noqa: E402  (the same activitysim wheel)

from llmsynthor.core.metrics import cosine, cpc, jsd, tvd, tvd_by_group  # noqa: E402
from llmsynthor.declarations.zones import Zones  # noqa: E402
from llmsynthor.evaluation.chains import ChainCheck, check_days  # noqa: E402
from llmsynthor.outputs.matsim import write_plans  # noqa: E402

BASE = "activitysim/examples/example_estimation/data_full/"
GEOMETRY = "activitysim/examples/prototype_mtc/output/summarize/taz1454.geojson"
PERIODS = ("EA", "AM", "MD", "PM", "EV")
PERIOD_STARTS = (0, 6, 10, 15, 19)  # the first departure hour of each period
PURPOSES = {"Home": "home", "work": "work", "Work": "work", "atwork": "work", "school": "school", "univ": "school",
            "escort": "escort", "shopping": "shopping", "othmaint": "maintenance", "eatout": "eat out",
            "social": "discretionary", "othdiscr": "discretionary"}
LENGTH_BANDS = (0, 1, 3, 5, 10, 20, np.inf)
LENGTH_LABELS = ("<1 km", "1-3 km", "3-5 km", "5-10 km", "10-20 km", "20+ km")


def mode_of(code: str) -> str:
    if code.startswith("DRIVEALONE"):
        return "drive alone"
    if code.startswith("SHARED"):
        return "shared ride"
    if code in ("TAXI",) or code.startswith("TNC"):
        return "taxi/TNC"
    if code in ("WALK", "BIKE"):
        return code.lower()
    if code.startswith(("WALK_", "DRIVE_")):
        return "transit"
    raise ValueError(f"unknown trip mode {code!r}")


@dataclass
class Survey:
    households: pd.DataFrame
    persons: pd.DataFrame
    tours: pd.DataFrame
    trips: pd.DataFrame  # coded: origin, destination (TAZ), o_district, d_district, depart, period, purpose, mode, km
    zones: pd.DataFrame  # land use with centroid lon/lat, indexed by TAZ


def _csv(archive: zipfile.ZipFile, name: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(archive.read(BASE + name)))


def _centroids(archive: zipfile.ZipFile) -> pd.DataFrame:
    """Each TAZ's centroid (area-weighted over its polygons' outer rings, lon/lat) and area in km²."""
    rows = []
    for feature in json.loads(archive.read(GEOMETRY))["features"]:
        polygons = feature["geometry"]["coordinates"]
        polygons = [polygons] if feature["geometry"]["type"] == "Polygon" else polygons
        total, cx, cy = 0.0, 0.0, 0.0
        lat0 = np.radians(np.asarray(polygons[0][0])[:, 1].mean())
        for rings in polygons:
            x, y = np.asarray(rings[0])[:, 0], np.asarray(rings[0])[:, 1]
            cross = x[:-1] * y[1:] - x[1:] * y[:-1]
            area = cross.sum() / 2
            total += area
            cx += ((x[:-1] + x[1:]) * cross).sum() / 6
            cy += ((y[:-1] + y[1:]) * cross).sum() / 6
        km2 = abs(total) * (111.32 ** 2) * np.cos(lat0)
        rows.append((int(feature["properties"]["TAZ1454"]), cx / total, cy / total, km2))
    return pd.DataFrame(rows, columns=["zone", "lon", "lat", "km2"]).set_index("zone")


AREA_TYPES = {0: "regional core", 1: "central business district", 2: "urban business", 3: "urban", 4: "suburban", 5: "rural"}


def zone_table(zones: pd.DataFrame) -> Zones:
    """The land use as a zone table (:class:`llmsynthor.declarations.zones.Zones`), area types in words."""
    return Zones(zones.index.astype(str).to_numpy(), district=zones["DISTRICT"].to_numpy(),
                 area_type=zones["area_type"].map(AREA_TYPES).to_numpy(dtype=object), households=zones["TOTHH"].to_numpy(dtype=float),
                 jobs=zones["TOTEMP"].to_numpy(dtype=float), lon=zones["lon"].to_numpy(), lat=zones["lat"].to_numpy(),
                 km2=zones["km2"].to_numpy())


def distance_km(zones: pd.DataFrame, origin: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """Kilometres between TAZ ``origin[i]`` and ``destination[i]`` (:meth:`Zones.km`)."""
    table = zone_table(zones)
    return table.km(table.rows(origin), table.rows(destination))  # an id the land use lacks is named, not guessed


def code_trips(trips: pd.DataFrame, zones: pd.DataFrame) -> pd.DataFrame:
    """The coded trip variables every method is scored on (the module's docstring)."""
    out = pd.DataFrame({"origin": trips["origin"].to_numpy(), "destination": trips["destination"].to_numpy(),
                        "depart": trips["depart"].astype(int).to_numpy()})
    out["o_district"] = zones.loc[out["origin"], "DISTRICT"].to_numpy()
    out["d_district"] = zones.loc[out["destination"], "DISTRICT"].to_numpy()
    out["period"] = np.asarray(PERIODS)[np.searchsorted(PERIOD_STARTS, out["depart"], side="right") - 1]
    if "purpose" in trips:
        out["purpose"] = trips["purpose"].map(PURPOSES).to_numpy()
        out["mode"] = trips["trip_mode"].map(mode_of).to_numpy()
    out["km"] = distance_km(zones, out["origin"].to_numpy(), out["destination"].to_numpy())
    return out


def read_survey(path: Path) -> Survey:
    with zipfile.ZipFile(path) as archive:
        zones = _csv(archive, "land_use.csv").set_index("zone_id").join(_centroids(archive))
        households, persons = _csv(archive, "survey_data/survey_households.csv"), _csv(archive, "survey_data/survey_persons.csv")
        tours, trips = _csv(archive, "survey_data/survey_tours.csv"), _csv(archive, "survey_data/survey_trips.csv")
    coded = code_trips(trips, zones)
    coded.insert(0, "person_id", trips["person_id"].to_numpy())
    coded.insert(1, "tour_id", trips["tour_id"].to_numpy())
    coded.insert(2, "trip_id", trips["trip_id"].to_numpy())
    coded["tour_mode"] = trips["tour_id"].map(tours.set_index("tour_id")["tour_mode"]).to_numpy()
    return Survey(households, persons, tours, coded, zones)


def checked_days(survey: Survey) -> tuple[pd.DataFrame, ChainCheck]:
    """The survey's trips (with their tour's start hour) and their days checked as chains
    (:func:`llmsynthor.evaluation.chains.check_days`): trips in departure order; departures are whole
    hours, so ties go by the tour's start hour, then the trip id (ordered by trip id alone, 794 trips
    would seem to jump)."""
    home = survey.persons.set_index("person_id")["household_id"].map(survey.households.set_index("household_id")["home_zone_id"])
    trips = survey.trips.assign(start=survey.trips["tour_id"].map(survey.tours.set_index("tour_id")["start"]).to_numpy())
    return trips, check_days(trips, order=["start", "trip_id"], home=home, tour="tour_id", mode="mode", tour_mode="tour_mode",
                             car_modes=("DRIVEALONEFREE", "DRIVEALONEPAY"), other_modes=("walk", "bike", "transit"))


def check_chains(survey: Survey) -> dict[str, int]:
    """What :func:`checked_days` finds, counted."""
    _, check = checked_days(survey)
    return {"persons with trips": len(check.persons), "trips": check.trips,
            "trips not starting where the previous ended": check.jumping_trips,
            **{f"persons: {CHAIN_REASONS[r]}": n for r, n in check.counts.items()},
            "persons whose day is a valid chain": int(check.valid.sum())}


CHAIN_REASONS = {"jump": "a trip not starting where the previous ended", "not_from_home": "day not starting at home",
                 "not_to_home": "day not ending at home", "backwards": "a tour whose departures go backwards",
                 "car_left_behind": "a drive-alone tour with a walk, bike or transit leg"}


# -- tables ------------------------------------------------------------------------------------------

TARGETS = {"OD district × period": ["o_district", "d_district", "period"], "origin TAZ": ["origin"],
           "destination TAZ": ["destination"], "hour × purpose": ["depart", "purpose"], "mode × purpose": ["mode", "purpose"]}
HELD_OUT = {"OD district × mode": ["o_district", "d_district", "mode"],
            "purpose × destination district × period": ["purpose", "d_district", "period"],
            "mode × length band": ["mode", "band"]}


def counts(frame: pd.DataFrame, columns: list[str], weights: np.ndarray | None = None) -> pd.Series:
    """Weighted counts of the combinations present (sparse: only the cells with records)."""
    w = np.ones(len(frame)) if weights is None else weights
    return pd.Series(w, index=pd.MultiIndex.from_frame(frame[columns]) if len(columns) > 1 else frame[columns[0]]).groupby(level=list(range(len(columns)))).sum()


def compare(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    both = a.index.union(b.index)
    return a.reindex(both, fill_value=0).to_numpy(dtype=float), b.reindex(both, fill_value=0).to_numpy(dtype=float)


def with_band(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(band=pd.cut(frame["km"], LENGTH_BANDS, labels=LENGTH_LABELS, right=False).astype(str),
                        km_bin=np.minimum(np.floor(frame["km"]), 50).astype(int))


def score(truth: pd.DataFrame, synthetic: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float]:
    """TVD on the targets (mean, max), held-out JS distance (mean), trip-length and departure-time JSD, CPC and cosine at TAZ level."""
    truth, synthetic = with_band(truth), with_band(synthetic)
    on = [tvd(*compare(counts(synthetic, c, weights), counts(truth, c))) for c in TARGETS.values()]
    held = [jsd(*compare(counts(synthetic, c, weights), counts(truth, c))) for c in HELD_OUT.values()]
    od = compare(counts(synthetic, ["origin", "destination"], weights), counts(truth, ["origin", "destination"]))
    return {"target TVD mean": float(np.mean(on)), "target TVD max": float(np.max(on)), "held-out JSD mean": float(np.mean(held)),
            "trip length JSD": jsd(*compare(counts(synthetic, ["km_bin"], weights), counts(truth, ["km_bin"]))),
            "departure hour × purpose JSD": jsd(*compare(counts(synthetic, ["depart", "purpose"], weights), counts(truth, ["depart", "purpose"]))),
            "TAZ OD CPC": cpc(*od), "TAZ OD cosine": cosine(*od), **by_origin_district(truth, synthetic, weights)}


def by_origin_district(truth: pd.DataFrame, synthetic: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float]:
    """The OD × period table origin district by origin district (each normalized within it, as
    ``llmsynthor.shapes.trips.evaluation.by_district`` scores a run): the worst district's TVD and how many exceed .01."""
    columns = TARGETS["OD district × period"]
    a, b = counts(synthetic, columns, weights), counts(truth, columns)
    x, y = compare(a, b)
    origin, districts = pd.factorize(a.index.union(b.index).get_level_values(0))
    per = tvd_by_group(x, y, origin, len(districts))
    return {"OD × period by origin district: worst TVD": float(per.max()), "districts over .01": int((per > 0.01).sum())}


# -- methods -----------------------------------------------------------------------------------------

def _draw(table: pd.Series, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` draws of the index of a table of counts."""
    pick = rng.choice(len(table), size=n, p=table.to_numpy() / table.sum())
    return table.index[pick].to_frame(index=False) if isinstance(table.index, pd.MultiIndex) else pd.DataFrame({table.index.name: table.index[pick]})


def _conditional(given: pd.DataFrame, table: pd.Series, by: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """For each row of ``given``, the remaining variables of ``table`` drawn given its ``by`` columns
    (from their margin where the table has no record with those ``by`` values)."""
    frame = table.rename("w").reset_index()
    rest = [c for c in frame.columns if c not in by and c != "w"]
    margin = frame.groupby(rest, as_index=False)["w"].sum()
    out = pd.DataFrame(index=given.index, columns=rest)
    for key, rows in given.groupby(by if len(by) > 1 else by[0]).groups.items():
        key = key if isinstance(key, tuple) else (key,)
        options = frame[np.logical_and.reduce([frame[c] == k for c, k in zip(by, key)])]
        options = options if len(options) else margin
        pick = rng.choice(len(options), size=len(rows), p=options["w"].to_numpy() / options["w"].sum())
        out.loc[rows, rest] = options[rest].to_numpy()[pick]
    return out


def _times_purposes_modes(trips: pd.DataFrame, truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Departure hour and purpose given the period, mode given the purpose, from the target tables."""
    hour_purpose = counts(truth, ["depart", "purpose"]).rename("w").reset_index()
    hour_purpose["period"] = np.asarray(PERIODS)[np.searchsorted(PERIOD_STARTS, hour_purpose["depart"], side="right") - 1]
    trips = trips.join(_conditional(trips, hour_purpose.set_index(["period", "depart", "purpose"])["w"], ["period"], rng))
    trips["depart"] = trips["depart"].astype(int)
    return trips.join(_conditional(trips, counts(truth, ["purpose", "mode"]), ["purpose"], rng))


def ipf(truth: pd.DataFrame, zones: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The tables' own joint (a decomposable model, so IPF's fixpoint), drawn: district OD and period,
    then each end's TAZ given its district, then hour, purpose and mode."""
    trips = _draw(counts(truth, ["o_district", "d_district", "period"]), len(truth), rng)
    origin = counts(truth, ["origin"]).rename("w").reset_index().assign(o_district=lambda f: zones.loc[f["origin"], "DISTRICT"].to_numpy())
    destination = counts(truth, ["destination"]).rename("w").reset_index().assign(d_district=lambda f: zones.loc[f["destination"], "DISTRICT"].to_numpy())
    trips = trips.join(_conditional(trips, origin.set_index(["o_district", "origin"])["w"], ["o_district"], rng))
    trips = trips.join(_conditional(trips, destination.set_index(["d_district", "destination"])["w"], ["d_district"], rng))
    return _finish(_times_purposes_modes(trips, truth, rng), zones)


def furness(production: np.ndarray, attraction: np.ndarray, deterrence: np.ndarray, iterations: int = 100,
            tolerance: float = 1e-6) -> np.ndarray:
    """Doubly constrained balancing of ``deterrence`` to row sums ``production`` and column sums
    ``attraction`` (equal totals), until the rows are within ``tolerance`` of theirs."""
    t = deterrence.copy()
    for _ in range(iterations):
        t *= (production / np.maximum(t.sum(axis=1), 1e-300))[:, None]
        t *= attraction / np.maximum(t.sum(axis=0), 1e-300)
        if np.abs(t.sum(axis=1) - production).max() <= tolerance * production.max():
            break
    return t


def gravity_trips(truth: pd.DataFrame, ids: np.ndarray, km: np.ndarray, district: np.ndarray, betas, rng: np.random.Generator
                  ) -> tuple[pd.DataFrame, float]:
    """Origin and destination zones of ``len(truth)`` trips from a doubly constrained gravity model at zone
    level (origins and destinations the truth's zone totals, deterrence exp(−β·km) over ``km`` [zone, zone]),
    β the one of ``betas`` whose district OD is closest to the truth's; and that β."""
    production = counts(truth, ["origin"]).reindex(ids, fill_value=0).to_numpy(dtype=float)
    attraction = counts(truth, ["destination"]).reindex(ids, fill_value=0).to_numpy(dtype=float)
    target = counts(truth, ["o_district", "d_district"])
    pairs = pd.MultiIndex.from_arrays([np.repeat(district, len(ids)), np.tile(district, len(ids))])
    best = None
    for beta in betas:
        flows = furness(production, attraction, np.exp(-beta * km))
        error = tvd(*compare(pd.Series(flows.ravel(), index=pairs).groupby(level=[0, 1]).sum(), target))
        if best is None or error < best[0]:
            best = (error, beta, flows)
    flows = best[2].ravel()
    pick = rng.choice(flows.size, size=len(truth), p=flows / flows.sum())
    return pd.DataFrame({"origin": np.repeat(ids, len(ids))[pick], "destination": np.tile(ids, len(ids))[pick]}), float(best[1])


def gravity(truth: pd.DataFrame, zones: pd.DataFrame, rng: np.random.Generator, betas=np.geomspace(0.02, 1.0, 13)) -> pd.DataFrame:
    """A doubly constrained gravity model at TAZ level (:func:`gravity_trips`); then the period given the
    district pair, hour and purpose given the period, mode given the purpose."""
    ids = zones.index.to_numpy()
    o, d = np.meshgrid(ids, ids, indexing="ij")
    km = distance_km(zones, o.ravel(), d.ravel()).reshape(o.shape)
    trips, beta = gravity_trips(truth, ids, km, zones["DISTRICT"].to_numpy(), betas, rng)
    trips["o_district"], trips["d_district"] = zones.loc[trips["origin"], "DISTRICT"].to_numpy(), zones.loc[trips["destination"], "DISTRICT"].to_numpy()
    trips = trips.join(_conditional(trips, counts(truth, ["o_district", "d_district", "period"]), ["o_district", "d_district"], rng))
    out = _finish(_times_purposes_modes(trips, truth, rng), zones)
    out.attrs["beta"] = beta
    return out


def independent(truth: pd.DataFrame, zones: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    trips = pd.DataFrame({c: _draw(counts(truth, [c]), len(truth), rng)[c] for c in ("origin", "destination", "depart", "purpose", "mode")})
    trips["o_district"], trips["d_district"] = zones.loc[trips["origin"], "DISTRICT"].to_numpy(), zones.loc[trips["destination"], "DISTRICT"].to_numpy()
    trips["period"] = np.asarray(PERIODS)[np.searchsorted(PERIOD_STARTS, trips["depart"], side="right") - 1]
    return _finish(trips, zones)


def _finish(trips: pd.DataFrame, zones: pd.DataFrame) -> pd.DataFrame:
    trips = trips.reset_index(drop=True)
    for column in ("origin", "destination", "o_district", "d_district", "depart"):
        trips[column] = trips[column].astype(int)
    trips["km"] = distance_km(zones, trips["origin"].to_numpy(), trips["destination"].to_numpy())
    return trips


def floor(survey: Survey, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    persons = survey.trips["person_id"].unique()
    half = rng.permutation(persons)[: len(persons) // 2]
    sample = survey.trips[survey.trips["person_id"].isin(half)].reset_index(drop=True)
    return sample, np.full(len(sample), len(survey.trips) / len(sample))


MATSIM_MODES = {"drive alone": "car", "shared ride": "ride", "transit": "pt", "taxi/TNC": "taxi"}


def write_survey_plans(survey: Survey, path: Path) -> int:
    """The survey's days that are valid chains (:func:`checked_days`) as MATSim plans
    (:func:`llmsynthor.outputs.matsim.write_plans`); how many persons."""
    trips, check = checked_days(survey)
    valid = trips[trips["person_id"].isin(check.persons[check.valid])]
    valid = valid.assign(origin=valid["origin"].astype(str), destination=valid["destination"].astype(str))
    write_plans(path, valid, zone_table(survey.zones), order=("start", "trip_id"), modes=MATSIM_MODES)
    return int(check.valid.sum())


# -- the flat trips case of bench_methods.py: what the model knows about trips, zones left out ------------

PERSON_TYPES = {1: "full-time worker", 2: "part-time worker", 3: "university student", 4: "non-worker", 5: "retired",
                6: "student aged 16+", 7: "student aged 6-15", 8: "child under 6"}
PERIOD_WORDS = {"EA": "before 6 am", "AM": "6-10 am", "MD": "10 am-3 pm", "PM": "3-7 pm", "EV": "after 7 pm"}
LENGTH_WORDS = dict(zip(LENGTH_LABELS, ("under 1 km", "1-3 km", "3-5 km", "5-10 km", "10-20 km", "over 20 km")))
FLAT_VARIABLES = {
    "person_type": {"type": "categorical", "values": list(PERSON_TYPES.values()), "description": "who makes the trip"},
    "departure": {"type": "categorical", "values": list(PERIOD_WORDS.values()), "description": "when the trip leaves"},
    "purpose": {"type": "categorical", "values": ["home", "work", "school", "escort", "shopping", "maintenance", "eat out",
                                                   "discretionary"], "description": "the activity at the trip's destination"},
    "mode": {"type": "categorical", "values": ["drive alone", "shared ride", "walk", "bike", "transit", "taxi/TNC"],
             "description": "how the trip is made"},
    "length": {"type": "categorical", "values": list(LENGTH_WORDS.values()), "description": "the trip's straight-line length"},
    "destination_area": {"type": "categorical", "values": list(AREA_TYPES.values()), "description": "the kind of area the trip goes to"},
}
FLAT_JOINTS = {"departure_purpose": ["departure", "purpose"], "mode_purpose": ["mode", "purpose"]}  # as an agency publishes them
FLAT_RULES = [  # scored only; each holds for at least 99.8 % of the survey's trips meeting its condition
    "person_type in [child under 6, student aged 6-15] -> mode != drive alone",
    "mode == walk -> length in [under 1 km, 1-3 km, 3-5 km]",
    "mode == bike -> length != over 20 km",
    "purpose == school -> person_type != retired",
    "purpose == work -> person_type not in [child under 6, student aged 6-15]",
]


def flat_trips(survey: Survey) -> pd.DataFrame:
    """The survey's trips as flat records of the case's variables (no zone ids: the model cannot know them)."""
    t = with_band(survey.trips)
    return pd.DataFrame({
        "person_type": t["person_id"].map(survey.persons.set_index("person_id")["ptype"]).map(PERSON_TYPES).to_numpy(),
        "departure": t["period"].map(PERIOD_WORDS).to_numpy(), "purpose": t["purpose"].to_numpy(), "mode": t["mode"].to_numpy(),
        "length": t["band"].map(LENGTH_WORDS).to_numpy(),
        "destination_area": survey.zones.loc[t["destination"], "area_type"].map(AREA_TYPES).to_numpy()})


def cars_mode_jsd(survey: Survey, trips: pd.DataFrame | None, weights: np.ndarray | None = None) -> float:
    """JS distance of cars × mode between ``trips`` (with person ids; None: the product of the survey's own
    cars and mode shares, what independence gives) and the survey's trips."""
    cars = cars_of(survey)
    truth = counts(survey.trips.assign(cars=survey.trips["person_id"].map(cars).to_numpy()), ["cars", "mode"])
    if trips is None:
        margins = truth.groupby(level=0).sum(), truth.groupby(level=1).sum()
        made = pd.Series(np.outer(*margins).ravel(), index=pd.MultiIndex.from_product([m.index for m in margins]))
    else:
        made = counts(trips.assign(cars=pd.to_numeric(trips["person_id"]).map(cars).to_numpy()), ["cars", "mode"], weights)
    return jsd(*compare(made, truth))


CARS = ("no car", "one car", "two cars", "three or more cars")  # the example's words for a household's cars


def cars_of(survey: Survey, by: str = "person_id") -> pd.Series:
    """person_id (or household_id) -> the cars of the person's household, as the example's households.csv words them."""
    cars = survey.households.set_index("household_id")["auto_ownership"].map(lambda n: CARS[min(n, 3)])
    return cars if by == "household_id" else survey.persons.set_index("person_id")["household_id"].map(cars)


def write_case(folder: Path, data: pd.DataFrame, n: int, *, seed: int = 7) -> Path:
    """A flat spec of trips for bench_methods.py: every variable's margin and the agency's two joints."""
    from casefiles import write_spec

    return write_spec(folder, data, name="mtc_trips", entity="trip", population="weekday trips of residents of the San "
                      "Francisco Bay Area", variables=FLAT_VARIABLES, edges={}, joints=FLAT_JOINTS, rules=FLAT_RULES,
                      constraints=[], n=n, seed=seed)


# -- the trips example: what an agency publishes, from the survey ---------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trips"
PERIOD_BINS = ("[0,6)", "[6,10)", "[10,15)", "[15,19)", "[19,23]")
HOUR_BINS = tuple(f"[{h},{h + 1})" for h in range(23)) + ("[23,23]",)
TRIP_BINS = ((0, 2, "[0,2)"), (2, 3, "[2,3)"), (3, 4, "[3,4)"), (4, 5, "[4,5)"), (5, 6, "[5,6)"), (6, 7, "[6,7)"), (7, 9, "[7,9)"),
             (9, 21, "[9,20]"))


def _bin_of(values: np.ndarray, edges: list[tuple[int, int, str]]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for low, high, label in edges:
        out[(values >= low) & (values < high)] = label
    return out


def _full(frame: pd.DataFrame, columns: list[str], values: dict[str, tuple]) -> pd.DataFrame:
    """Counts of ``frame`` over ``columns``; the columns in ``values`` get every listed label (0 where none)."""
    table = frame.groupby(columns).size().rename("count")
    if values:
        levels = [values.get(c, table.index.get_level_values(c).unique() if len(columns) > 1 else table.index.unique()) for c in columns]
        table = table.reindex(pd.MultiIndex.from_product(levels, names=columns) if len(columns) > 1 else pd.Index(levels[0], name=columns[0]),
                              fill_value=0)
    return table.reset_index()


INCOME_BANDS = ["under $30k", "$30k-60k", "$60k-100k", "$100k and more"]  # the example's household income bands


def write_example(folder: Path = EXAMPLE, survey: Survey | None = None) -> Path:
    """zones.csv, households.csv (cars, income), persons.csv and targets/*.csv of the trips example in ``folder`` (spec.yaml is written by hand and
    names them): the land use as a zone table, the survey's persons (home zone, person type) and the tables an agency
    publishes of the survey's trips — never the trips themselves."""
    survey = survey or read_survey(wheel_path())
    z = survey.zones
    zones = pd.DataFrame({"zone": z.index, "district": z["DISTRICT"].map(lambda d: f"D{d:02d}"), "area_type": z["area_type"].map(AREA_TYPES),
                          "households": z["TOTHH"], "jobs": z["TOTEMP"], "retail_jobs": z["RETEMPN"],
                          "service_jobs": z["FPSEMPN"] + z["HEREMPN"] + z["OTHEMPN"],
                          "school_places": z["AGE0519"] + z["HSENROLL"] + z["COLLFTE"] + z["COLLPTE"],
                          "lon": z["lon"].round(6), "lat": z["lat"].round(6), "km2": z["km2"].round(4)})
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    zones.to_csv(folder / "zones.csv", index=False)
    home = survey.households.set_index("household_id")["home_zone_id"]
    trips_of = survey.trips.groupby("person_id").size()
    persons = pd.DataFrame({"person_id": survey.persons["person_id"], "household_id": survey.persons["household_id"],
                            "home_zone": survey.persons["household_id"].map(home), "person_type": survey.persons["ptype"].map(PERSON_TYPES)})
    persons.to_csv(folder / "persons.csv", index=False)
    h = survey.households
    households = pd.DataFrame({"household_id": h["household_id"], "home_zone": h["home_zone_id"], "persons": h["hhsize"],
                               "cars": h["household_id"].map(cars_of(survey, by="household_id")),
                               "income": pd.cut(h["income"], [-np.inf, 30_000, 60_000, 100_000, np.inf], right=False,
                                                labels=INCOME_BANDS).astype(str)})
    households.to_csv(folder / "households.csv", index=False)
    district = dict(zip(zones["zone"], zones["district"]))
    t = survey.trips
    trips = pd.DataFrame({"origin_district": t["origin"].map(district), "destination_district": t["destination"].map(district),
                          "origin": t["origin"], "destination": t["destination"], "purpose": t["purpose"], "mode": t["mode"],
                          "period": _bin_of(t["depart"].to_numpy(), [(a, b, lab) for (a, b), lab in zip(
                              zip((0, 6, 10, 15, 19), (6, 10, 15, 19, 24)), PERIOD_BINS)]),
                          "hour": _bin_of(t["depart"].to_numpy(), [(h, h + 1, lab) for h, lab in enumerate(HOUR_BINS)])})
    written = {
        "od_district_period": _full(trips, ["origin_district", "destination_district", "period"], {"period": PERIOD_BINS}),
        "origin_zone": _full(trips, ["origin"], {}), "destination_zone": _full(trips, ["destination"], {}),
        "hour_purpose": _full(trips, ["hour", "purpose"], {"hour": HOUR_BINS}),
        "mode_purpose": _full(trips, ["mode", "purpose"], {}),
    }
    written["od_district_period"] = written["od_district_period"][written["od_district_period"]["count"] > 0]  # sparse: cells left out are 0
    written["od_district_period"] = written["od_district_period"].rename(columns={"period": "depart"})
    written["hour_purpose"] = written["hour_purpose"].rename(columns={"hour": "depart"})
    per_person = persons.assign(trips=_bin_of(persons["person_id"].map(trips_of).fillna(0).to_numpy(), list(TRIP_BINS)))
    written["trips_per_person"] = _full(per_person, ["person_type", "trips"], {"trips": tuple(lab for _, _, lab in TRIP_BINS)})
    for name, frame in written.items():
        frame.to_csv(folder / "targets" / f"{name}.csv", index=False)
    return folder


def synthesized(seed: int, backend: str = "none"):
    """The trips shape on the example (``examples/trips/spec.yaml``, built from this survey) with seed ``seed``:
    its trips coded as the methods' are, and the run's result (fit, prior, chains, timings)."""
    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips.spec import load
    from llmsynthor.shapes.trips.synthesizer import TripSynthesizer

    spec = load(EXAMPLE / "spec.yaml")
    spec = spec.model_copy(update={"seed": seed, "llm": spec.llm.model_copy(update={"backend": backend})})
    result = TripSynthesizer(spec, make_backend(spec.llm)).run()
    t = result.trips
    coded = pd.DataFrame({"person_id": t["person_id"], "origin": t["origin"].astype(int), "destination": t["destination"].astype(int),
                          "depart": t["depart"].astype(int), "o_district": t["origin_district"].str[1:].astype(int),
                          "d_district": t["destination_district"].str[1:].astype(int), "purpose": t["purpose"], "mode": t["trip_mode"],
                          "km": t["km"].astype(float)})
    coded["period"] = np.asarray(PERIODS)[np.searchsorted(PERIOD_STARTS, coded["depart"], side="right") - 1]
    return coded, result


def model_knowledge(seed: int = 0) -> pd.DataFrame:
    """What the embedded model's lifts say of the survey's own trips, pair by pair — the pairs it was
    asked (the tables do not cross them, so the run cannot check them) and those it was checked on.
    The same questions as the run with ``seed`` (answers from the response cache after a run)."""
    from llmsynthor.api import make_backend
    from llmsynthor.prior.tempering import GRID, log_lift_correlation, pair_error
    from llmsynthor.shapes.trips.inputs import read_inputs
    from llmsynthor.shapes.trips.prior import trip_prior
    from llmsynthor.shapes.trips.spec import load
    from llmsynthor.shapes.trips.synthesizer import pilot_lengths

    survey = read_survey(wheel_path())
    words = flat_trips(survey).assign(cars=survey.trips["person_id"].map(cars_of(survey)).to_numpy())
    spec = load(EXAMPLE / "spec.yaml").model_copy(update={"seed": seed})
    inputs = read_inputs(spec)
    prior = trip_prior(spec, inputs, make_backend(spec.llm), pilot_lengths(spec, inputs))
    scored = prior.scored
    rows = []
    for checked, pairs in ((False, scored.lifts), (True, scored.checked)):
        for (c, a), lift in pairs.items():
            labels = [list(scored.levels[v].axis.labels) for v in (c, a)]
            joint = pd.crosstab(words[c], words[a]).reindex(index=labels[0], columns=labels[1], fill_value=0).to_numpy(dtype=float)
            joint = joint / joint.sum()
            errors = {g: pair_error(lift, joint, g) for g in GRID}
            rows.append({"pair": f"{c} × {a}", "checked by the tables": checked,
                         "log-lift correlation with the survey": log_lift_correlation([(lift, joint)]),
                         "error at 0 (bits)": errors[0.0], "error at 1": errors[1.0],
                         "best strength on the survey": min(errors, key=errors.get)})
    out = pd.DataFrame(rows)
    out.attrs["strength chosen"] = prior.check.strength if prior.check else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matsim", type=Path, help="also write the survey's valid days as MATSim plans to this file")
    parser.add_argument("--llmsynthor", choices=("none", "embedded"), action="append", default=[],
                        help="also run the trips shape on examples/trips with this backend (none: the tables alone; embedded: "
                             "the default model's checked lifts); may be given twice")
    parser.add_argument("--knowledge", action="store_true", help="print what the embedded model's lifts say of the survey's "
                        "trips, pair by pair, beside the strength the run chose, and stop")
    parser.add_argument("--example", type=Path, nargs="?", const=EXAMPLE, help="write the trips example's data files "
                        "(zones, households, persons, targets) to this folder (default examples/trips) and stop")
    args = parser.parse_args()
    survey = read_survey(wheel_path())
    if args.knowledge:
        table = model_knowledge()
        print(f"strength the run chose (checked pairs only): {table.attrs['strength chosen']}")
        print(table.round(3).to_string(index=False))
        return
    if args.example:
        print(f"wrote the trips example's data files to {write_example(args.example, survey)}")
        return
    print(f"{WHEEL}: {len(survey.households):,} households, {len(survey.persons):,} persons, {len(survey.tours):,} tours, "
          f"{len(survey.trips):,} trips over {survey.trips[['origin', 'destination']].stack().nunique():,} of {len(survey.zones):,} TAZ")
    for what, n in check_chains(survey).items():
        print(f"  {what}: {n:,}")
    truth = survey.trips
    rows, by_cars = {}, {}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        sample, weights = floor(survey, rng)
        made = {"floor (half the survey's persons, ×2)": (sample, weights), "independent": (independent(truth, survey.zones, rng), None),
                "gravity + Furness": (gravity(truth, survey.zones, rng), None), "IPF (the tables' joint)": (ipf(truth, survey.zones, rng), None)}
        for backend in args.llmsynthor:
            coded, result = synthesized(seed, backend)
            check = result.prior.check
            label = "llmsynthor trips, tables alone" if backend == "none" else "llmsynthor trips, embedded model"
            made[label] = (coded, None)
            print(f"  seed {seed} {label}: {len(coded):,} trips, chains valid {int(result.chains.valid.sum()):,}/{len(result.chains.persons):,}, "
                  f"fit {result.fit}, prior strength {check.strength if check else 'none'}, "
                  f"{result.usage.option_scorings} scorings ({result.usage.seconds:.0f}s), non-LLM {sum(result.seconds.values()) - result.usage.seconds:.0f}s")
        for name, (frame, w) in made.items():
            rows.setdefault(name, []).append(score(truth, frame, w))
            if "person_id" in frame:
                by_cars.setdefault(name, []).append(cars_mode_jsd(survey, frame, w))
        by_cars.setdefault("independence (cars' and modes' shares)", []).append(cars_mode_jsd(survey, None))
    table = pd.DataFrame({name: pd.DataFrame(scores).median() for name, scores in rows.items()}).T
    print("medians of 3 seeds; JSD = Jensen-Shannon distance, base 2")
    print(table.round(4).to_string())
    print("cars × mode, a pair no table crosses (the persons' households' cars; methods without persons have no cars):")
    print(pd.Series({name: float(np.median(v)) for name, v in by_cars.items()}, name="JSD, median of 3 seeds").round(4).to_string())
    if args.matsim:
        print(f"MATSim plans of {write_survey_plans(survey, args.matsim):,} persons' days → {args.matsim}")


if __name__ == "__main__":
    main()
