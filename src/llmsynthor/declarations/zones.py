"""A zone table: what the model can be told about a zone, and how far apart zones are — never zones².

Trips go between zones the model cannot know by number ("zone 1,217") but can know by kind ("a
downtown office district", "a residential suburb"). A zone table (one row a zone) gives each zone's
id as the target tables write it and, where known, its district, area type, households, jobs and
centroid (longitude and latitude, degrees) — the ``zones:`` section of a trips spec
(:mod:`llmsynthor.shapes.trips`), with what attracts each activity to a zone. :func:`read_zones` checks it before any work and names
the file, column, row and value of every problem.

Distances are great-circle kilometres between centroids (within a zone: half the side of a square of
the zone's area where an area is given, else 0), computed for the pairs asked for
(:meth:`Zones.km`) or as a sparse graph of each zone's nearest neighbours
(:meth:`Zones.nearest`) — no dense zones × zones array is ever made, so a table of thousands of zones
stays small. Knows frames and files, not LLMs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse
from scipy.spatial import cKDTree

from ..core.errors import Problem, SpecError
from .rows import read_rows

EARTH_KM = 6371.0
OPTIONAL = ("district", "area_type", "households", "jobs", "lon", "lat", "km2")
NUMERIC = ("households", "jobs", "lon", "lat", "km2")


class ZoneTableSpec(BaseModel):
    """Where the zone table is and which of its columns say what (only ``file`` and ``id`` are required)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file: Path = Field(description="a CSV, relative to the spec's folder: one row a zone")
    id: str = Field(default="zone", description="the column of zone ids, as the target tables write them")
    district: str | None = Field(default=None, description="the column of districts (groups of zones)")
    area_type: str | None = Field(default=None, description="the column of area types, as words: 'downtown', 'suburban', …")
    households: str | None = Field(default=None, description="the column of households per zone")
    jobs: str | None = Field(default=None, description="the column of jobs per zone")
    lon: str | None = Field(default=None, description="the column of centroid longitudes (degrees)")
    lat: str | None = Field(default=None, description="the column of centroid latitudes (degrees)")
    km2: str | None = Field(default=None, description="the column of zone areas (km²), for trips within a zone")
    attractions: dict[str, str] = Field(default_factory=dict, description="activity -> the column of what draws it to a zone "
                                        "(work: jobs, shopping: retail jobs, school: school places); an activity not named is "
                                        "drawn by households and jobs together")


@dataclass(frozen=True)
class Zones:
    """Zones in the order of their table; ``index`` maps an id to its row. Optional facts are None
    when the table does not give them."""

    ids: np.ndarray  # str
    district: np.ndarray | None = None
    area_type: np.ndarray | None = None
    households: np.ndarray | None = None
    jobs: np.ndarray | None = None
    lon: np.ndarray | None = None
    lat: np.ndarray | None = None
    km2: np.ndarray | None = None
    attractions: dict[str, np.ndarray] | None = None  # activity -> what draws it to each zone (≥ 0)
    _near: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # nearest(k), made once per k

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> pd.Index:
        return pd.Index(self.ids)

    def rows(self, ids) -> np.ndarray:
        """The rows of zone ``ids``; SpecError naming the first id the table does not have."""
        found = self.index.get_indexer(pd.Index(np.asarray(ids).astype(str)))
        if (found < 0).any():
            missing = pd.unique(np.asarray(ids).astype(str)[found < 0])
            raise SpecError(Problem("zones", f"{len(missing)} zone id(s) not in the zone table, e.g. {str(missing[0])!r}; "
                                             "expected every zone a table names to be a row of the zone table"))
        return found

    def km(self, origin: np.ndarray, destination: np.ndarray) -> np.ndarray:
        """Kilometres between zone rows ``origin[i]`` and ``destination[i]`` (great circle between
        centroids; within a zone half the side of a square of its area, else 0)."""
        origin, destination = np.asarray(origin, dtype=np.int64), np.asarray(destination, dtype=np.int64)
        out = np.empty(np.broadcast_shapes(origin.shape, destination.shape))
        _legs_km(*np.broadcast_arrays(origin, destination), *self.places(), out)
        return out

    def places(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The centroids' longitudes and latitudes in radians and the distance within each zone (half the
        side of a square of its area, else 0): what :func:`leg_km` takes."""
        if self.lon is None or self.lat is None:
            raise SpecError(Problem("zones", "no centroids: distances need the zone table's 'lon' and 'lat' columns"))
        within = 0.5 * np.sqrt(self.km2) if self.km2 is not None else np.zeros(len(self))
        return np.radians(self.lon).astype(float), np.radians(self.lat).astype(float), np.asarray(within, dtype=float)

    def nearest(self, k: int) -> sparse.csr_array:
        """[zone, zone]: the distance (km) from each zone to its ``k`` nearest (itself included),
        sparse — k entries a row however many zones there are."""
        if self.lon is None or self.lat is None:
            raise SpecError(Problem("zones", "no centroids: distances need the zone table's 'lon' and 'lat' columns"))
        k = min(k, len(self))
        if k not in self._near:
            self._near[k] = self._nearest(k)
        return self._near[k]

    def nearest_first(self, k: int) -> np.ndarray:
        """[zone, k]: each zone's ``k`` nearest zones (rows), nearest first — :meth:`nearest` keeps a row's
        zones in the order of their rows, not of their distance."""
        near = self.nearest(k)
        width = near.indptr[1] - near.indptr[0]
        order = np.argsort(near.data.reshape(len(self), width), axis=1, kind="stable")
        return np.take_along_axis(near.indices.reshape(len(self), width).astype(np.int64), order, axis=1)

    def _nearest(self, k: int) -> sparse.csr_array:
        lat0 = np.radians(np.mean(self.lat))
        points = np.column_stack([np.radians(self.lon) * np.cos(lat0), np.radians(self.lat)]) * EARTH_KM  # near-equal-area plane
        _, neighbours = cKDTree(points).query(points, k=k)
        neighbours = neighbours.reshape(len(self), k)
        rows = np.repeat(np.arange(len(self)), k)
        km = self.km(rows, neighbours.ravel())
        return sparse.csr_array((np.maximum(km, 1e-9), (rows, neighbours.ravel())), shape=(len(self), len(self)))

    def describe(self, row: int) -> str:
        """A zone as the model can know it: its area type, district, jobs and households — never its id."""
        kind = f"a {self.area_type[row]} zone" if self.area_type is not None else "a zone"
        where = f" in district {self.district[row]}" if self.district is not None else ""
        facts = [f"{int(v[row]):,} {what}" for v, what in ((self.jobs, "jobs"), (self.households, "households")) if v is not None]
        return kind + where + (f" with {' and '.join(facts)}" if facts else "")


@numba.njit(cache=True)
def leg_km(o: int, d: int, lon: np.ndarray, lat: np.ndarray, within: np.ndarray) -> float:
    """Kilometres from zone row o to d, given :meth:`Zones.places` (great circle between centroids): the
    one formula, for :meth:`Zones.km` and for compiled loops (after changing it, delete its callers'
    cached code: :mod:`llmsynthor.fitting.sums` says why)."""
    if o == d:
        return within[o]
    a = math.sin((lat[d] - lat[o]) / 2) ** 2 + math.cos(lat[o]) * math.cos(lat[d]) * math.sin((lon[d] - lon[o]) / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


@numba.njit(cache=True)
def _legs_km(origin, destination, lon, lat, within, out) -> None:
    flat_o, flat_d, flat_out = origin.ravel(), destination.ravel(), out.reshape(-1)
    for i in range(flat_out.size):
        flat_out[i] = leg_km(flat_o[i], flat_d[i], lon, lat, within)


def read_zones(spec: ZoneTableSpec, base_dir: Path, source: str) -> Zones:
    """The zone table of ``spec`` (relative to ``base_dir``), checked: one SpecError naming every problem."""
    path = spec.file if spec.file.is_absolute() else base_dir / spec.file
    where = f"{source}: zones ({path})"
    columns = {"id": spec.id, **{name: getattr(spec, name) for name in OPTIONAL if getattr(spec, name) is not None}}
    attracting = {f"attractions.{activity}": column for activity, column in spec.attractions.items()}
    frame = read_rows(path, where, "zone", {**columns, **attracting})
    problems = []
    ids = frame[spec.id].str.strip()
    if (ids == "").any():
        problems.append(Problem(where, f"row {int(np.flatnonzero(ids == '')[0]) + 2}: an empty zone id in column {spec.id!r}"))
    repeated = ids[ids.duplicated() & (ids != "")]
    if len(repeated):
        problems.append(Problem(where, f"zone id {repeated.iloc[0]!r} is given {int((ids == repeated.iloc[0]).sum())} times "
                                       f"({len(pd.unique(repeated))} id(s) repeated); expected each zone once"))
    facts: dict[str, np.ndarray] = {}
    for name, column in {**columns, **attracting}.items():
        if name == "id":
            continue
        text = frame[column].str.strip()
        if name not in NUMERIC and name not in attracting:
            facts[name] = text.to_numpy(dtype=object)
            continue
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | ((values < 0) if name not in ("lon", "lat") else False))
        bounds = {"lon": 180, "lat": 90}.get(name)
        if bounds is not None:
            bad = np.union1d(bad, np.flatnonzero(np.abs(values) > bounds))
        if bad.size:
            expected = f"a number within ±{bounds}" if bounds else "a number ≥ 0"
            problems.append(Problem(where, f"column {column!r} ({name}), row {int(bad[0]) + 2}: {text.iloc[bad[0]]!r}; "
                                           f"expected {expected} ({bad.size} such row(s))"))
        facts[name] = values
    if (("lon" in facts) != ("lat" in facts)):
        problems.append(Problem(where, "a centroid needs both 'lon' and 'lat'; only one is given"))
    if problems:
        raise SpecError(problems)
    drawn = {name.split(".", 1)[1]: facts.pop(name) for name in attracting}
    return Zones(ids.to_numpy(dtype=str), **facts, attractions=drawn or None)
