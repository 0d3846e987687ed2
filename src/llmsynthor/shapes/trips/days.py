"""Candidate days: for every person, days of trips that are valid chains by construction.

A day is built, vectorized over every candidate at once, as a sequence of tours from home:

1. **how many trips** — drawn from the person's row of a trips-per-person table (uniform within the
   table's bin; a day has 0 trips or at least 2, since it starts and ends at home);
2. **tours** — the trips split into tours of at least two (home → stops → home), as many on average
   as the tables' share of trips going home says;
3. **purposes** — every stop's activity from the tables' purposes (``home`` left out) times the
   prior's factor for the person; a tour's last trip goes home;
4. **departure hours** — each trip's hour from the tables' hour-by-purpose shares, then the day's
   hours sorted into its trips' order (a day's departures never go backwards, and long days do not
   pile up at the last hour as draws truncated at the previous departure would);
5. **destinations** — each stop among the zones nearest the previous one, drawn by what attracts the
   activity (the zone table's ``attractions``; else households and jobs) times exp(−β·km), β drawn
   per day from a grid so that the tables choose how far people go; the last trip of a tour goes home;
6. **a mode per tour** — from the tables' mode-by-purpose shares for the tour's first activity times
   the prior's factors for the tour's longest leg and for the person: the whole tour takes it, so a
   car driven from home comes back home.

Each trip starts where the previous one ended, each day starts and ends at home: the candidates
need no repair, and :func:`llmsynthor.evaluation.chains.check_days` finds nothing to say of them.
Knows tables and zones, not LLMs: the prior's factors come in as arrays (:class:`Factors`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ...core.levels import LevelTable, Linked
from ...core.tables import Listed
from ...declarations.zones import Zones
from ...fitting.sums import pairwise_sum
from .inputs import LEVELS, PERSONS, TRIPS, TripInputs
from .spec import TRIPS_PER_PERSON, TripsSpec

BETAS = (0.0, 0.03, 0.06, 0.12, 0.25, 0.5, 1.0)  # distance decay per km, one per candidate day (0: anywhere in the region)
DEFAULT_MOST = 8  # trips in a day at most when no table says how many
NEIGHBOURS = 300  # destinations are drawn among this many zones nearest the trip's origin
LENGTH_BANDS = (0.0, 1.0, 3.0, 5.0, 10.0, 20.0, np.inf)
REACH = (1.5, 1.0)  # a stop moved stays within reach: neither leg longer than 1.5 × the longer of its two legs as chosen + 1 km
STOP_KNOWN = ("origin", "origin_district", "destination", "destination_district", "depart", "purpose")  # known when a stop is drawn
LENGTH_WORDS = ("under 1 km", "1-3 km", "3-5 km", "5-10 km", "10-20 km", "over 20 km")
OFF_TABLE = 0.01  # a zone-level OD table's ratio for the cells it counts no trips in (:meth:`Guide.toward_zones`)


@dataclass(frozen=True)
class Factors:
    """What the prior multiplies the tables' shares by (1 everywhere: the tables alone).

    ``purpose`` is [person, purpose], ``mode_by_person`` [person, mode], ``mode_by_length``
    [length band, mode] (bands :data:`LENGTH_BANDS`)."""

    purpose: np.ndarray
    mode_by_person: np.ndarray
    mode_by_length: np.ndarray

    @classmethod
    def none(cls, persons: int, purposes: int, modes: int) -> Factors:
        return cls(np.ones((persons, purposes)), np.ones((persons, modes)), np.ones((len(LENGTH_WORDS), modes)))

    def of_persons(self, rows: np.ndarray) -> Factors:
        """The factors of persons ``rows`` only, in that order."""
        return Factors(self.purpose[rows], self.mode_by_person[rows], self.mode_by_length)


@dataclass(frozen=True)
class Guide:
    """Where the tables want more than the candidates give: per table, target / achieved over its cells
    (smoothed, clipped to [1/8, 8]; 1 = as drawn). A draw multiplies its options by the ratios of every
    table whose variables are all known at that step — the destination by the OD-by-period table's
    ratios given the origin and the hour, the hour by the hour-by-purpose table's — so that the next
    candidates cover what the last fit missed (the tables' discrepancies guide the proposals)."""

    ratios: dict[str, np.ndarray]

    @classmethod
    def from_fit(cls, tables: list[LevelTable], achieved: list[np.ndarray]) -> Guide:
        return cls({t.name: np.clip((t.region + 1.0) / (a.reshape(t.region.shape) + 1.0), 1 / 8, 8)
                    for t, a in zip(tables, achieved)})

    @classmethod
    def toward_zones(cls, tables: list[LevelTable]) -> Guide:
        """The tables of trips naming both origin and destination zones (zone-level OD), each as ratios
        towards its own cells: a cell's count over the mean count of the cells with trips, and
        :data:`OFF_TABLE` where it counts none — so that a stop is drawn, near its origin, mostly where
        the table has trips from there at that hour. Without it, candidate days drawn by attraction and
        distance could not cover a table of a trip or two in each of 10⁵ cells."""
        ratios = {}
        for t in tables:
            if t.level == TRIPS.name and {"origin", "destination"} <= set(t.variables):
                positive = t.region > 0
                mean = t.region[positive].mean() if positive.any() else 1.0
                ratios[t.name] = np.where(positive, t.region / mean, OFF_TABLE)
        return cls(ratios)

    def times(self, other: Guide | None) -> Guide:
        """Both guides' ratios multiplied, table by table (a table in one only keeps its own)."""
        if other is None:
            return self
        return Guide({name: self.ratios[name] * other.ratios[name] if name in self.ratios and name in other.ratios
                      else self.ratios.get(name, other.ratios.get(name)) for name in {**self.ratios, **other.ratios}})

    def flat(self, coder: Coder, known: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The ratios of ``coder.tables`` concatenated (1 where a table has none), and the tables (in order)
        whose variables ``known`` all gives: what :meth:`factor` multiplies, for compiled draws."""
        ratios = np.concatenate([self.ratios[t.name].ravel() if t.name in self.ratios else np.ones(t.cells)
                                 for t in coder.tables]) if coder.tables else np.ones(0)
        used = [k for k, t in enumerate(coder.tables) if t.name in self.ratios and all(v in known for v in t.variables)]
        return ratios.astype(float), np.asarray(used, dtype=np.int64)

    def factor(self, coder: Coder, raw: dict[str, np.ndarray]) -> np.ndarray | float:
        """The product of the ratios of every table whose variables ``raw`` gives (raw codes, broadcastable)."""
        out: np.ndarray | float = 1.0
        for table in coder.tables:
            if table.name in self.ratios and all(v in raw for v in table.variables):
                index = tuple(coder.axis_index(table, v, raw[v]) for v in table.variables)
                if table.listed is not None:  # a sparse table: the cell listed, or its cell elsewhere
                    index = table.listed.cell(np.ravel_multi_index(np.broadcast_arrays(*index), table.shape))
                out = out * self.ratios[table.name][index]
        return out


class Coder:
    """Maps the raw codes of trips' values (zone rows for origin, destination and their districts; the
    hour; the purpose's and mode's positions in the spec; a person variable's value position; trips in
    the day) to each table's axis positions."""

    def __init__(self, spec: TripsSpec, zones: Zones, tables: list[LevelTable]):
        self.tables = tables
        district = zones.district.astype(str) if zones.district is not None else None
        self._maps: dict[tuple[str, str], np.ndarray] = {}
        for table in tables:
            for axis in table.axes:
                v = axis.variable
                if axis.edges is not None:
                    top = 24 if v == "depart" else spec.trips.max_trips + 1
                    raw_labels = np.arange(top)
                    mapped = np.clip(np.searchsorted(axis.edges, raw_labels, side="right") - 1, 0, axis.size - 1)
                else:
                    labels = pd.Index(axis.labels)
                    if v in ("origin", "destination"):
                        mapped = labels.get_indexer(zones.ids)
                    elif v in ("origin_district", "destination_district"):
                        mapped = labels.get_indexer(district)
                    elif v == "purpose":
                        mapped = labels.get_indexer(spec.trips.purposes)
                    elif v == "mode":
                        mapped = labels.get_indexer(spec.trips.modes)
                    else:
                        mapped = labels.get_indexer(spec.traveller_variables[v].values)
                self._maps[(table.name, v)] = np.asarray(mapped)

    def axis_index(self, table: LevelTable, variable: str, raw: np.ndarray) -> np.ndarray:
        return self._maps[(table.name, variable)][raw]


@dataclass(frozen=True)
class CellParts:
    """A trip's place in table t of a :class:`Coder` (its flat index in the table's shape) as a sum of
    parts: ``origin[t, o] + destination[t, d] + hour[t, h] + purpose[t, p] + mode[t, m]`` — so that
    compiled loops try other zones and hours by swapping one part — and its cell (offset into the
    concatenated tables' cells) found from that place: ``offset[t]`` plus the place itself, or, in a
    sparse table (:class:`~llmsynthor.core.tables.Listed`), the place's rank among ``keys[start[t]:stop[t]]``
    when listed, else its cell elsewhere (``width[t]`` of them, one per value ``place // stride[t] %
    width[t]``; ``width[t]`` 0 for a dense table). Tables of trips cross no person variable
    (:mod:`~llmsynthor.shapes.trips.inputs` refuses one)."""

    offset: np.ndarray  # [table]
    origin: np.ndarray  # [table, zone row]: origin and origin district
    destination: np.ndarray  # [table, zone row]
    hour: np.ndarray  # [table, hour 0–23]
    purpose: np.ndarray  # [table, purpose position]
    mode: np.ndarray  # [table, mode position]
    keys: np.ndarray  # the sparse tables' listed places, each table's as a hash table (:func:`hashed`), one after the other
    start: np.ndarray  # [table]
    stop: np.ndarray  # [table]
    stride: np.ndarray  # [table]
    width: np.ndarray  # [table]
    listed: tuple[Listed | None, ...] = ()  # each table's listed cells (None: dense), for :meth:`cells`

    @classmethod
    def of(cls, coder: Coder, zones: Zones, purposes: int, modes: int) -> CellParts:
        tables = coder.tables
        raws = {"origin": len(zones), "origin_district": len(zones), "destination": len(zones), "destination_district": len(zones),
                "depart": 24, "purpose": purposes, "mode": modes}
        part = {name: np.zeros((len(tables), n), dtype=np.int64) for name, n in raws.items()}
        for k, table in enumerate(tables):
            strides = np.r_[np.cumprod(table.shape[::-1])[::-1][1:], 1].astype(np.int64)
            for variable, stride in zip(table.variables, strides):
                position = coder.axis_index(table, variable, np.arange(raws[variable]))
                if (position < 0).any():
                    raise AssertionError(f"table {table.name!r}: a value of {variable!r} with no cell")
                part[variable][k] = stride * position
        offset = np.r_[0, np.cumsum([t.cells for t in tables])[:-1]].astype(np.int64)
        listed = [t.listed for t in tables]
        regions = [hashed(x.keys) if x is not None else np.zeros(0, dtype=np.int64) for x in listed]
        sizes = [len(r) for r in regions]
        stop = np.cumsum(sizes).astype(np.int64)
        keys = np.concatenate(regions) if regions else np.zeros(0)
        return cls(offset, part["origin"] + part["origin_district"], part["destination"] + part["destination_district"],
                   part["depart"], part["purpose"], part["mode"], keys.astype(np.int64), stop - np.asarray(sizes, dtype=np.int64), stop,
                   np.array([x.stride if x is not None else 1 for x in listed], dtype=np.int64),
                   np.array([x.shape[x.by] if x is not None else 0 for x in listed], dtype=np.int64), tuple(listed))

    @property
    def lookup(self) -> tuple[np.ndarray, ...]:
        """What a place's cell is found with: ``offset, keys, start, stop, stride, width`` (:func:`listed_cell`)."""
        return self.offset, self.keys, self.start, self.stop, self.stride, self.width

    @property
    def parts(self) -> tuple[np.ndarray, ...]:
        """What a trip's place is the sum of: its origin's, destination's, hour's, purpose's and mode's parts."""
        return self.origin, self.destination, self.hour, self.purpose, self.mode

    def cells(self, origin, destination, depart, purpose, mode) -> np.ndarray:
        """[trip, table]: every trip's cells."""
        place = self.origin[:, origin].T + self.destination[:, destination].T + self.hour[:, depart].T + self.purpose[:, purpose].T \
            + self.mode[:, mode].T
        for t, listed in enumerate(self.listed):  # a sparse table: the place's listed cell, else its cell elsewhere
            if listed is not None:
                place[:, t] = listed.cell(place[:, t])
        return self.offset + place


HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: a place times 2^64 / φ, its high bits the slot


def hashed(keys: np.ndarray) -> np.ndarray:
    """A sparse table's listed places ``keys`` (sorted) as :func:`listed_cell` finds them: how many are listed,
    the slots' mask, then a slot of two numbers (a place, its rank among ``keys``; −1 for none) for each of
    twice as many slots as places, rounded up to a power of two, each place at its hash or the next free
    slot after it. A lookup reads one slot or a few, where a binary search over 750,000 places read twenty:
    a sparse table's lookups took 110–190 ns each, against 15–26 ns."""
    size = 1 << max(1, int(np.ceil(np.log2(max(2 * len(keys), 2)))))
    out = np.full(2 + 2 * size, -1, dtype=np.int64)
    out[0], out[1] = len(keys), size - 1
    _fill(out, np.asarray(keys, dtype=np.int64))
    return out


@numba.njit(cache=True)
def _slot(place, mask):
    return np.int64((np.uint64(place) * HASH) >> np.uint64(32)) & mask


@numba.njit(cache=True)
def _fill(out, keys) -> None:
    mask = out[1]
    for rank in range(keys.shape[0]):
        slot = _slot(keys[rank], mask)
        while out[2 + 2 * slot] >= 0:
            slot = (slot + 1) & mask
        out[2 + 2 * slot] = keys[rank]
        out[3 + 2 * slot] = rank


@numba.njit(cache=True)
def listed_cell(keys, start, stop, stride, width, place):
    """A sparse table's cell of ``place`` (its flat index in the table's shape), counted from the table's
    first cell: its rank among the listed places (the table's :func:`hashed` places, ``keys[start:stop]``),
    else its cell elsewhere. Compiled loops find a cell as ``offset[t] + (place if width[t] == 0 else
    listed_cell(keys, start[t], stop[t], stride[t], width[t], place))`` (:attr:`CellParts.lookup`),
    written out where it is used: a compiled call passing arrays costs some 60 ns however little it does,
    three times the polish's time, so a dense table's cell is found without one. After changing it or
    :func:`hashed`, delete its callers' cached code (``find src -name '*.nb[ic]' -delete``): numba's cache
    does not follow calls across files (:mod:`llmsynthor.fitting.sums`), and a caller compiled with a
    binary search read the hashed places as sorted ones, out of bounds."""
    listed, mask = keys[start], keys[start + 1]
    slot = _slot(place, mask)
    while True:
        at = keys[start + 2 + 2 * slot]
        if at == place:
            return keys[start + 3 + 2 * slot]
        if at < 0:
            return listed + (place // stride) % width
        slot = (slot + 1) & mask


def length_band(km: np.ndarray) -> np.ndarray:
    return np.searchsorted(LENGTH_BANDS, km, side="right") - 1


# -- what the tables say ---------------------------------------------------------------------------------

def shares_over(tables: list[LevelTable], variables: tuple[str, ...], labels: tuple[list, ...]) -> np.ndarray | None:
    """The counts of the first table crossing ``variables`` (in that order), summed over its others;
    None if no table does. Numeric axes are spread over ``labels`` (integers) uniformly within bins."""
    for table in tables:
        if not all(v in table.variables for v in variables):
            continue
        margin = table.margin(variables)
        for k, v in enumerate(variables):
            axis = table.axes[table.variables.index(v)]
            if axis.edges is not None:  # integer bins -> one column per integer
                values = np.asarray(labels[k])
                which = np.searchsorted(axis.edges, values, side="right") - 1
                width = np.diff(axis.edges)[np.clip(which, 0, axis.size - 1)]
                ok = (which >= 0) & (which < axis.size)
                spread = np.take(margin, np.clip(which, 0, axis.size - 1), axis=k) / np.expand_dims(width, [i for i in range(margin.ndim) if i != k])
                margin = np.where(np.expand_dims(ok, [i for i in range(margin.ndim) if i != k]), spread, 0.0)
            else:
                margin = np.take(margin, [axis.labels.index(x) for x in labels[k]], axis=k)
        return margin.astype(float)
    return None


def _rows(p: np.ndarray) -> np.ndarray:
    """Rows normalized to sum to 1 (a row of zeros becomes uniform)."""
    total = p.sum(axis=-1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / p.shape[-1])


def _draw(cumulative: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row i's category for uniform u[i] (``cumulative`` rows end at 1)."""
    return np.minimum((cumulative < u[:, None]).sum(axis=1), cumulative.shape[1] - 1)


# -- the days ----------------------------------------------------------------------------------------------

def _trip_counts(spec: TripsSpec, inputs: TripInputs, who: np.ndarray, rng: np.random.Generator, guide: Guide | None) -> np.ndarray:
    """Trips in each candidate's day, from a persons' table over ``trips`` (without one: uniform over 0 and
    2 … :data:`DEFAULT_MOST`, at most ``max_trips``)."""
    most = spec.trips.max_trips
    feasible = np.r_[0, np.arange(2, most + 1)]
    persons = inputs.persons
    for table in inputs.of_level(PERSONS.name):
        if TRIPS_PER_PERSON not in table.variables:
            continue
        k = table.variables.index(TRIPS_PER_PERSON)
        others = [v for v in table.variables if v != TRIPS_PER_PERSON]
        moved = np.moveaxis(table.region, k, -1)
        index = tuple(pd.Index(table.axes[table.variables.index(v)].labels).get_indexer(persons[v]) for v in others)
        rows = moved[index] if others else np.tile(moved, (len(persons), 1))
        if guide is not None and table.name in guide.ratios:
            rows = rows * np.moveaxis(guide.ratios[table.name], k, -1)[index] if others else rows * np.moveaxis(guide.ratios[table.name], k, -1)
        edges = table.axes[k].edges
        per_bin = [feasible[(feasible >= a) & (feasible < b)] for a, b in zip(edges[:-1], edges[1:])]
        usable = np.array([len(v) > 0 for v in per_bin])
        rows = rows * usable
        rows = _rows(np.where(rows.sum(axis=1, keepdims=True) > 0, rows, usable))  # only bins no day can give: any that one can
        picked = _draw(np.cumsum(rows, axis=1)[who], rng.random(len(who)))
        u = rng.random(len(who))
        sizes = np.array([len(v) for v in per_bin])
        flat = np.concatenate([v for v in per_bin if len(v)])
        offsets = np.cumsum(sizes) - sizes
        return flat[offsets[picked] + np.minimum((u * sizes[picked]).astype(np.int64), sizes[picked] - 1)].astype(np.int64)
    return rng.choice(feasible[feasible <= min(DEFAULT_MOST, most)], size=len(who))


def _tours(n: np.ndarray, home_share: float | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For days of ``n`` trips: per trip its day, its tour within the day, and whether it goes home.
    A day of n trips has n·``home_share`` tours on average (every tour ends with one trip home, so the
    tables' share of trips going home is the tours per trip), rounded at random, at least one and at
    most n/2; without that share, uniform between n/5 and n/2."""
    if home_share is None:
        low = np.maximum(1, -(-n // 5))
        tours = low + np.floor(rng.random(len(n)) * (n // 2 - low + 1)).astype(np.int64)
    else:
        tours = np.floor(n * home_share + rng.random(len(n))).astype(np.int64)
    tours = np.where(n >= 2, np.clip(tours, 1, np.maximum(n // 2, 1)), 0)
    extra = n - 2 * tours  # each lands on one of its day's tours, uniformly: the tours' sizes are 2 + multinomial
    first_tour = np.cumsum(tours) - tours
    extra_day = np.repeat(np.arange(len(n)), extra)
    landing = first_tour[extra_day] + np.floor(rng.random(len(extra_day)) * tours[extra_day]).astype(np.int64)
    sizes = 2 + np.bincount(landing, minlength=int(tours.sum()))
    tour_day = np.repeat(np.arange(len(n)), tours)
    tour_in_day = np.arange(len(tour_day)) - np.repeat(first_tour, tours)
    day = np.repeat(tour_day, sizes)
    tour = np.repeat(tour_in_day, sizes)
    position = np.arange(len(day)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    home_bound = position == np.repeat(sizes, sizes) - 1
    return day, tour, home_bound


def attraction_of(zones: Zones, purposes: list[str], destinations: np.ndarray | None) -> np.ndarray:
    """[purpose, zone]: what draws each activity to a zone (the zone table's attractions; else households + jobs, else the
    trips the tables send there, else 1)."""
    fallback = np.zeros(len(zones))
    for v in (zones.households, zones.jobs):
        if v is not None:
            fallback = fallback + v
    if not fallback.any():
        fallback = destinations if destinations is not None else np.ones(len(zones))
    given = zones.attractions or {}
    out = np.stack([np.asarray(given.get(p, fallback), dtype=float) for p in purposes])
    return out + 1e-3 * out.sum(axis=1, keepdims=True) / len(zones)  # every zone reachable, if barely


def candidate_days(spec: TripsSpec, inputs: TripInputs, factors: Factors, rng: np.random.Generator, per_person: int | np.ndarray,
                   guide: Guide | None = None) -> Linked:
    """``per_person`` days (one number, or one per person) for every person, in person order (a person's days are contiguous);
    ``guide`` steers the draws towards what the tables still want."""
    s, zones = spec.trips, inputs.zones
    purposes, modes = s.purposes, s.modes
    home_purpose = purposes.index(s.home)
    hours = list(range(24))
    trip_tables = inputs.of_level(TRIPS.name)
    coder = Coder(spec, zones, trip_tables)
    who = np.repeat(np.arange(len(inputs.persons)), per_person)
    n = _trip_counts(spec, inputs, who, rng, guide)
    base = shares_over(trip_tables, ("purpose",), (purposes,))
    home_share = None if base is None or base.sum() <= 0 else float(base[home_purpose] / base.sum())
    day, tour, home_bound = _tours(n, home_share, rng)
    first_in_day = np.r_[True, day[1:] != day[:-1]] if len(day) else np.zeros(0, bool)
    person = who[day]
    position = np.arange(len(day)) - np.repeat(np.flatnonzero(first_in_day), np.diff(np.r_[np.flatnonzero(first_in_day), len(day)]))
    steps = int(position.max()) + 1 if len(day) else 0

    # purposes: the tables' shares of activities away from home, times the prior's factor for the person
    base = np.ones(len(purposes)) if base is None else base.copy()
    base[home_purpose] = 0.0
    by_person = np.cumsum(_rows(base[None, :] * factors.purpose), axis=1)
    purpose = np.where(home_bound, home_purpose, _draw(by_person[person], rng.random(len(day))))

    # hours: each trip's from P(hour | purpose) (times the guide's ratios), then the day's hours sorted into its trips' order
    hour_purpose = shares_over(trip_tables, ("depart", "purpose"), (hours, purposes))
    allowed = np.zeros(24)
    allowed[s.first_hour:s.last_hour + 1] = 1
    by_purpose = (hour_purpose.T if hour_purpose is not None else np.ones((len(purposes), 24))) * allowed
    by_purpose = _rows(np.where(by_purpose.sum(axis=1, keepdims=True) > 0, by_purpose, allowed))  # no share in the window: any hour of it
    drawn = np.zeros(len(day), dtype=np.int64)
    all_hours = np.arange(24)[None, :]
    for chunk in np.array_split(np.arange(len(day)), max(1, len(day) // 200_000)):
        rows = by_purpose[purpose[chunk]]
        if guide is not None:
            rows = _rows(rows * guide.factor(coder, {"depart": all_hours, "purpose": purpose[chunk][:, None]}) * allowed)
        drawn[chunk] = _draw(np.cumsum(rows, axis=1), rng.random(len(chunk)))
    depart = drawn[np.lexsort((drawn, day))]  # days are contiguous and in order: each day's hours ascending

    # destinations: near the previous stop, drawn by attraction × exp(-β km) (times a zone-level OD table's own cells and the
    # guide's ratios); home at a tour's end
    destination_table = shares_over(trip_tables, ("destination",), (zones.ids.tolist(),))
    attraction = attraction_of(zones, purposes, destination_table)
    near = zones.nearest(NEIGHBOURS)
    k_near = near.indptr[1] - near.indptr[0]
    neighbours = near.indices.reshape(len(zones), k_near).astype(np.int64)
    decay = np.exp(-np.asarray(BETAS)[:, None, None] * near.data.reshape(len(zones), k_near)[None])  # [β, zone, neighbour]
    beta_index = rng.integers(0, len(BETAS), len(n))
    beta = np.asarray(BETAS)[beta_index]
    home = inputs.persons["home_row"].to_numpy()[person]
    parts = CellParts.of(coder, zones, len(purposes), len(modes))
    steer = Guide.toward_zones(trip_tables).times(guide)  # a zone-level OD table's own cells, and what the last fit missed
    ratios, used = steer.flat(coder, STOP_KNOWN) if steer.ratios else (np.ones(1), np.zeros(0, dtype=np.int64))
    origin = np.zeros(len(day), dtype=np.int64)
    destination = np.zeros(len(day), dtype=np.int64)
    purpose, depart = purpose.astype(np.int64), depart.astype(np.int64)
    trip_beta = beta_index[day]  # each trip's day's decay
    for k in range(steps):
        at = np.flatnonzero(position == k)
        origin[at] = home[at] if k == 0 else destination[at - 1]
        destination[at[home_bound[at]]] = home[at[home_bound[at]]]
        going = at[~home_bound[at]]
        anywhere = beta[day[going]] == 0
        for part, far in ((going[anywhere], True), (going[~anywhere], False)):
            _draw_stops(part, rng.random(len(part)), far, origin, purpose, depart, trip_beta, attraction, neighbours, decay,
                        parts.parts, parts.lookup, ratios, used, destination)
    km = zones.km(origin, destination)

    # a mode per tour: P(mode | its first activity) × the prior's factors for its longest leg and the person (× the guide's)
    tour_key = np.r_[True, (day[1:] != day[:-1]) | (tour[1:] != tour[:-1])] if len(day) else np.zeros(0, bool)
    tour_id = np.cumsum(tour_key) - 1
    starts = np.flatnonzero(tour_key)
    longest = np.maximum.reduceat(km, starts) if len(starts) else np.zeros(0)
    mode_purpose = shares_over(trip_tables, ("purpose", "mode"), (purposes, modes))
    mode_purpose = np.ones((len(purposes), len(modes))) if mode_purpose is None else mode_purpose
    weights = (_rows(mode_purpose)[purpose[starts]] * factors.mode_by_length[length_band(longest)]
               * factors.mode_by_person[person[starts]])
    if guide is not None and len(starts):
        first = starts[:, None]
        weights = weights * guide.factor(coder, {"mode": np.arange(len(modes))[None, :], "purpose": purpose[first],
                                                 "depart": depart[first], "origin": origin[first], "origin_district": origin[first],
                                                 "destination": destination[first], "destination_district": destination[first]})
    tour_mode = _draw(np.cumsum(_rows(weights), axis=1), rng.random(len(starts)))
    mode = tour_mode[tour_id]

    district = zones.district.astype(str) if zones.district is not None else None
    days = pd.DataFrame({"who": who, TRIPS_PER_PERSON: n, "beta": beta})
    for name in spec.traveller_variables:
        days[name] = inputs.persons[name].to_numpy()[who]
    trips = pd.DataFrame({TRIPS.link: day, "tour": tour, "origin": zones.ids[origin], "destination": zones.ids[destination],
                          "depart": depart, "purpose": np.asarray(purposes, dtype=object)[purpose],
                          "mode": np.asarray(modes, dtype=object)[mode], "km": km})
    if district is not None:
        trips["origin_district"], trips["destination_district"] = district[origin], district[destination]
    return Linked(LEVELS, {PERSONS.name: days, TRIPS.name: trips})


@numba.njit(cache=True)
def _draw_stops(trips, u, far: bool, origin, purpose, depart, beta_index, attraction, neighbours, decay, parts, lookup, ratios, used,
                destination) -> None:
    """Each of ``trips`` its destination, drawn with ``u``: among every zone (``far``) or the origin's
    nearest, by what attracts its activity (× exp(−β·km) when near, × the guide's ratios of the ``used``
    tables), as numpy drew them — each row normalized by its pairwise sum, then the first option whose
    cumulative share reaches u."""
    m = attraction.shape[1] if far else neighbours.shape[1]
    row = np.empty(m)
    factor = np.empty(m)  # the product of the used tables' ratios, table by table (a dense table's loop kept tight)
    o_part, d_part, h_part, p_part, _ = parts
    offset, keys, start, stop, stride, width = lookup
    for n in range(len(trips)):
        i = trips[n]
        o = origin[i]
        factor[:] = 1.0
        for e in range(len(used)):
            t = used[e]
            known = o_part[t, o] + h_part[t, depart[i]] + p_part[t, purpose[i]]  # the trip's place but for its destination's part
            if width[t] == 0:
                for q in range(m):
                    factor[q] = factor[q] * ratios[offset[t] + known + d_part[t, q if far else neighbours[o, q]]]
            else:
                for q in range(m):
                    place = known + d_part[t, q if far else neighbours[o, q]]
                    factor[q] = factor[q] * ratios[offset[t] + listed_cell(keys, start[t], stop[t], stride[t], width[t], place)]
        for q in range(m):
            z = q if far else neighbours[o, q]
            w = attraction[purpose[i], z]
            if not far:
                w = w * decay[beta_index[i], o, q]
            if len(used):
                w = w * factor[q]
            row[q] = w
        total = pairwise_sum(row, 0, m)
        pick, cumulative = m - 1, 0.0
        for q in range(m):
            cumulative += row[q] / total if total > 0 else 1.0 / m
            if cumulative >= u[n]:
                pick = q
                break
        destination[i] = pick if far else neighbours[o, pick]


def take_days(pool: Linked, rows: np.ndarray) -> Linked:
    """The candidate days ``rows`` of ``pool`` in that order (a subset, a permutation or both), their
    trips relinked and kept in day order."""
    rows = np.asarray(rows, dtype=np.int64)
    days, trips = pool.frames[PERSONS.name], pool.frames[TRIPS.name]
    new = np.full(len(days), -1, dtype=np.int64)
    new[rows] = np.arange(len(rows))
    link = new[trips[TRIPS.link].to_numpy()]
    keep = np.flatnonzero(link >= 0)
    order = keep[np.argsort(link[keep], kind="stable")]
    kept = trips.iloc[order].assign(**{TRIPS.link: link[order]}).reset_index(drop=True)
    return Linked(LEVELS, {PERSONS.name: days.iloc[rows].reset_index(drop=True), TRIPS.name: kept})


def merge_days(a: Linked, b: Linked) -> Linked:
    """The days of both pools in person order (a's before b's for each person), trips relinked."""
    days = pd.concat([a.frames[PERSONS.name], b.frames[PERSONS.name]], ignore_index=True)
    trips_b = b.frames[TRIPS.name].assign(**{TRIPS.link: b.frames[TRIPS.name][TRIPS.link].to_numpy() + len(a.frames[PERSONS.name])})
    both = Linked(LEVELS, {PERSONS.name: days, TRIPS.name: pd.concat([a.frames[TRIPS.name], trips_b], ignore_index=True)})
    return take_days(both, np.argsort(days["who"].to_numpy(), kind="stable"))
