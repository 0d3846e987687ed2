"""Whole tours handed from one person to another alike, where that meets the tables of persons better.

After one day is chosen for every person, the tables of persons (trips per person by type) are missed
by what the choice could not exchange: a day is one of a few candidates, and a person's trips come as
one number with the day. Two persons alike — the same value of every variable the tables or the prior
know of them, and homes in one district (one zone where the zones have no districts) — can trade
tours: home → stops → home, its stops, hours, purposes and mode unchanged. A tour handed to someone
living in another zone leaves from and returns to the taker's home: its first and last legs change,
and go only where each keeps its band of length (a walk stays a walk's length); what that costs or
gains the tables of trips (origin and destination zones, say) is weighed with the tables of persons,
as the choice weighs them, each table's targets scaled to the trips there are. Between persons of one
home zone the trips stay as they are.

A person gives one tour or two at once (from 3 trips to 9 takes two tours of someone with many) to the
member of the group whose day has room for them: between their tours (their departures stay in order,
every tour starts and ends at home) and within ``max_trips``. A move is taken when it lowers the
weighted L1 error over the tables; the groups are visited in a seeded order until a pass moves nothing.
Among a large group's members :data:`TAKERS` are looked at for each tour, from a seeded place.

Works on arrays (each person's cell in every table of persons for every number of trips, each tour's
owner, size and first and last departure hours, and each trip's cells in the tables of trips); its
passes are compiled (numba); knows nothing of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ...declarations.zones import Zones, leg_km
from ...evaluation.cells import cell_index
from .days import LENGTH_BANDS, CellParts, listed_cell
from .inputs import PERSONS, TRIPS
from .polish import scaled_to_trips
from .spec import TRIPS_PER_PERSON

PASSES = 20  # at most; a pass that moves nothing ends the work
TAKERS = 64  # members of a group looked at as takers of each tour, at most


@dataclass(frozen=True)
class Transferred:
    """What the transfers did: moves (one tour or two handed over), passes run, the weighted error of the
    tables of persons before and after, the moves to another home zone and the weighted error of the tables
    of trips (against their targets scaled to the trips there are) before and after."""

    moves: int
    passes: int
    error_before: float
    error_after: float
    rehomed: int = 0
    trips_error_before: float = 0.0
    trips_error_after: float = 0.0


@dataclass(frozen=True)
class TripSide:
    """The tables of trips, for tours handed to persons of another home zone: the trips' zone rows, hours,
    purposes and modes (positions), the tables' cell parts (:class:`~llmsynthor.shapes.trips.days.CellParts`),
    their targets and weights over their cells (:func:`~llmsynthor.shapes.trips.districts.cell_weights`),
    and the zones (distances, ids)."""

    zones: Zones
    tables: tuple
    codes: CellParts
    target: np.ndarray
    scale: np.ndarray
    origin: np.ndarray
    destination: np.ndarray
    depart: np.ndarray
    purpose: np.ndarray
    mode: np.ndarray


def transfer_tours(days: pd.DataFrame, trips: pd.DataFrame, tables, targets: np.ndarray, scale: np.ndarray, group: np.ndarray,
                   max_trips: int, rng: np.random.Generator, home: np.ndarray | None = None,
                   side: TripSide | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Transferred]:
    """Hand tours between persons of the same ``group`` (one number a row of ``days``: persons alike)
    while that lowers the error of ``tables`` (tables of persons; ``targets`` and ``scale`` over their
    cells, in order) and, with ``side``, of the tables of trips. ``days`` are the chosen days (one a person,
    :data:`TRIPS_PER_PERSON` their trips), ``trips`` theirs in day order (``PERSONS.id``: the day's number
    from 1, ``tour``: the tour within the day). ``home``: each person's home zone row (None: one for all);
    a tour goes to a person of another home only with ``side``, and then leaves from and returns to theirs.
    Returns the days and trips as they are after the moves (trips in day order again, numbered from 1,
    tours numbered within each day in order; with ``side``, the moved tours' zones and ``km`` updated)."""
    persons = len(days)
    day = trips[PERSONS.id].to_numpy() - 1
    tour_start = np.flatnonzero(np.r_[True, (day[1:] != day[:-1]) | (trips["tour"].to_numpy()[1:] != trips["tour"].to_numpy()[:-1])]) \
        if len(trips) else np.zeros(0, dtype=np.int64)
    depart = trips["depart"].to_numpy().astype(np.int64)
    size = np.diff(np.r_[tour_start, len(trips)]).astype(np.int64)
    owner = day[tour_start].astype(np.int64)
    low, high = depart[tour_start], depart[tour_start + size - 1]
    count = days[TRIPS_PER_PERSON].to_numpy().astype(np.int64)
    cells = _cells_by_count(days, tables, max_trips)  # [person, table, trips]
    now = cells[np.arange(persons)[:, None], np.arange(len(tables))[None, :], count[:, None]].ravel()
    residual = np.bincount(now[now >= 0], minlength=len(targets)).astype(float) - targets
    home = np.zeros(persons, dtype=np.int64) if home is None else np.asarray(home, dtype=np.int64)
    trip, trip_cells, trip_residual, trip_scale, parts, lookup, places = _trip_side(side, len(trips))
    before, trips_before = float(scale @ np.abs(residual)), float(trip_scale @ np.abs(trip_residual))
    order = np.argsort(group, kind="stable")  # persons by group, and each group's tours
    person_start = np.searchsorted(group[order], np.arange(group.max(initial=-1) + 2)).astype(np.int64)
    tours_order = np.argsort(group[owner], kind="stable")
    tour_group_start = np.searchsorted(group[owner][tours_order], np.arange(group.max(initial=-1) + 2)).astype(np.int64)
    moves = rehomed = done = 0
    bands = np.asarray(LENGTH_BANDS[1:-1], dtype=float)
    while done < PASSES:
        done += 1
        moved, moved_home = _pass(rng.permutation(len(person_start) - 1), rng.integers(0, 1 << 30, persons), person_start,
                                  order.astype(np.int64), tour_group_start, tours_order.astype(np.int64), owner, size, low, high,
                                  tour_start.astype(np.int64), count, cells, residual, scale, max_trips, home, side is not None,
                                  trip, trip_cells, trip_residual, trip_scale, parts, lookup, places, bands)
        moves, rehomed = moves + moved, rehomed + moved_home
        if not moved:
            break
    after, trips_after = float(scale @ np.abs(residual)), float(trip_scale @ np.abs(trip_residual))
    if not moves:
        return days, trips, Transferred(0, done, before, after, 0, trips_before, trips_after)
    days = days.copy()
    days[TRIPS_PER_PERSON] = count
    trips = trips.copy()
    if rehomed:
        zones = side.zones
        trips["origin"], trips["destination"] = zones.ids[trip[0]], zones.ids[trip[1]]
        trips["km"] = zones.km(trip[0], trip[1])
    trip_owner = np.repeat(owner, size)
    tour_of = np.repeat(np.arange(len(size)), size)
    ordered = np.lexsort((np.arange(len(trips)), tour_of, np.repeat(high, size), np.repeat(low, size), trip_owner))
    moved_trips = trips.iloc[ordered].reset_index(drop=True)
    new_day = trip_owner[ordered]
    moved_trips[PERSONS.id] = new_day + 1
    tour = tour_of[ordered]
    first = np.r_[True, (new_day[1:] != new_day[:-1]) | (tour[1:] != tour[:-1])]
    day_first = np.r_[True, new_day[1:] != new_day[:-1]]
    tours_so_far = np.cumsum(first)
    moved_trips["tour"] = tours_so_far - tours_so_far[np.flatnonzero(day_first)][np.cumsum(day_first) - 1]
    moved_trips[TRIPS.id] = np.arange(1, len(moved_trips) + 1)
    return days, moved_trips, Transferred(moves, done, before, after, rehomed, trips_before, trips_after)


def _trip_side(side: TripSide | None, trips: int) -> tuple:
    """What the compiled pass reads of the tables of trips: the trips (origin, destination, hour, purpose,
    mode; copies it changes), their cells, the residual against the targets scaled to the trips there are,
    the weights, the cell parts and lookup, the zones' places. Empty arrays without ``side``."""
    if side is None:
        none, empty = np.zeros(trips, dtype=np.int64), np.zeros((1, 1), dtype=np.int64)
        lookup = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), *(np.zeros(1, dtype=np.int64) for _ in range(4)))
        return ((none, none.copy(), none, none, none), np.zeros((trips, 0), dtype=np.int64), np.zeros(0), np.zeros(0),
                (empty,) * 5, lookup, (np.zeros(1), np.zeros(1), np.zeros(1)))
    trip = tuple(np.asarray(a, dtype=np.int64).copy() for a in (side.origin, side.destination, side.depart, side.purpose, side.mode))
    cells = side.codes.cells(*trip)
    counts = np.bincount(cells.ravel(), minlength=len(side.target)).astype(float)
    expected, _ = scaled_to_trips(side.tables, counts, side.target)
    return trip, cells, counts - expected, side.scale, side.codes.parts, side.codes.lookup, side.zones.places()


def _cells_by_count(days: pd.DataFrame, tables, max_trips: int) -> np.ndarray:
    """[person, table, trips 0 … max_trips]: each person's flat cell (offset into the tables in order) with
    that many trips; −1 where a table has no cell for it."""
    out = np.full((len(days), len(tables), max_trips + 1), -1, dtype=np.int64)
    offset = 0
    for t, table in enumerate(tables):
        for n in range(max_trips + 1):
            flat = cell_index(days.assign(**{TRIPS_PER_PERSON: n}), table)
            out[:, t, n] = np.where(flat >= 0, flat + offset, -1)
        offset += table.cells
    return out


@numba.njit(cache=True)
def _gain(cells, residual, scale, person, before, after) -> float:
    """How much the error falls when ``person`` goes from ``before`` trips to ``after`` (``residual`` kept)."""
    total = 0.0
    for t in range(cells.shape[1]):
        a, b = cells[person, t, before], cells[person, t, after]
        if a == b:
            continue
        if a >= 0:
            r = residual[a]
            total += scale[a] * (abs(r) - abs(r - 1.0))
            residual[a] = r - 1.0
        if b >= 0:
            r = residual[b]
            total += scale[b] * (abs(r) - abs(r + 1.0))
            residual[b] = r + 1.0
    return total


@numba.njit(cache=True)
def _undo(cells, residual, person, before, after) -> None:
    for t in range(cells.shape[1]):
        a, b = cells[person, t, before], cells[person, t, after]
        if a == b:
            continue
        if a >= 0:
            residual[a] += 1.0
        if b >= 0:
            residual[b] -= 1.0


@numba.njit(cache=True)
def _fits(tour, taker, tours, first, last, owner, low, high) -> bool:
    """Whether ``tour`` fits between the tours ``taker`` already has (among the group's ``tours[first:last]``)."""
    for n in range(first, last):
        other = tours[n]
        if owner[other] == taker and not (high[other] <= low[tour] or high[tour] <= low[other]):
            return False
    return True


@numba.njit(cache=True)
def _band(km, bands) -> int:
    return np.searchsorted(bands, km, side="right")


@numba.njit(cache=True)
def _rehome(tour, home, apply, tour_start, size, trip, trip_cells, trip_residual, trip_scale, parts, lookup, places, bands,
            new_cells) -> float:
    """How much the error of the tables of trips falls when ``tour`` leaves from and returns to zone row
    ``home`` instead (its first and last trips' cells changed in ``trip_residual``, and with ``apply`` in
    ``trip_cells`` and the trips too; else undone); −inf when a leg would leave its band of length."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup
    lon, lat, within = places
    f = tour_start[tour]
    last = f + size[tour] - 1
    if last > f:
        if _band(leg_km(home, destination[f], lon, lat, within), bands) != _band(leg_km(origin[f], destination[f], lon, lat, within), bands):
            return -np.inf
        if _band(leg_km(origin[last], home, lon, lat, within), bands) != _band(leg_km(origin[last], destination[last], lon, lat, within), bands):
            return -np.inf
    tables = trip_cells.shape[1]
    gain = 0.0
    for k in range(2):
        i = f if k == 0 else last
        if k == 1 and last == f:
            break
        o = home if i == f else origin[i]
        d = home if i == last else destination[i]
        for t in range(tables):
            place = o_part[t, o] + d_part[t, d] + h_part[t, depart[i]] + p_part[t, purpose[i]] + m_part[t, mode[i]]
            new_cells[k, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
        for t in range(tables):
            a, b = trip_cells[i, t], new_cells[k, t]
            if a == b:
                continue
            r = trip_residual[a]
            gain += trip_scale[a] * (abs(r) - abs(r - 1.0))
            trip_residual[a] = r - 1.0
            r = trip_residual[b]
            gain += trip_scale[b] * (abs(r) - abs(r + 1.0))
            trip_residual[b] = r + 1.0
    for k in range(2):
        i = f if k == 0 else last
        if k == 1 and last == f:
            break
        for t in range(tables):
            a, b = trip_cells[i, t], new_cells[k, t]
            if apply:
                trip_cells[i, t] = b
            elif a != b:
                trip_residual[a] += 1.0
                trip_residual[b] -= 1.0
    if apply:
        origin[f] = home
        destination[last] = home
    return gain


@numba.njit(cache=True)
def _pair(k, n):
    """The k-th pair (u < v) of n, in order."""
    u = 0
    while k >= n - 1 - u:
        k -= n - 1 - u
        u += 1
    return u, u + 1 + k


@numba.njit(cache=True)
def _pass(groups, seeds, person_start, persons, tour_start_of_group, tours, owner, size, low, high, tour_start, count, cells,
          residual, scale, max_trips, home, rehoming, trip, trip_cells, trip_residual, trip_scale, parts, lookup, places, bands):
    """One pass over the ``groups``: each member gives one of their tours or two (whichever, to whichever
    member of the group — at most :data:`TAKERS` of them, from a seeded place — most lowers the error), if
    any does. The number of moves, and of those to another home zone (only with ``rehoming``)."""
    moved = moved_home = 0
    new_cells = np.empty((2, trip_cells.shape[1]), dtype=np.int64)
    mine = np.empty(max_trips + 1, dtype=np.int64)
    for g in groups:
        a, b = person_start[g], person_start[g + 1]
        if b - a < 2:
            continue
        first, last = tour_start_of_group[g], tour_start_of_group[g + 1]
        for m in range(a, b):
            giver = persons[m]
            n = 0
            for x in range(first, last):
                if owner[tours[x]] == giver and n < len(mine):
                    mine[n] = tours[x]
                    n += 1
            best_gain, best, best_x, best_y = 1e-12, -1, -1, -1
            for w in range(n * (n + 1) // 2):  # each tour alone, then (where none gains) each two
                if w == n and best >= 0:
                    break
                u, v = (w, w) if w < n else _pair(w - n, n)
                x, y = mine[u], mine[v]
                s = size[x] + (size[y] if v != u else 0)
                given = _gain(cells, residual, scale, giver, count[giver], count[giver] - s)  # the same whoever takes it
                looked = min(TAKERS, b - a)
                offset = seeds[giver] % (b - a)
                for q in range(looked):
                    taker = persons[a + (offset + q) % (b - a)]
                    if taker == giver or count[taker] + s > max_trips:
                        continue
                    if home[taker] != home[giver] and not rehoming:
                        continue
                    gain = given + _gain(cells, residual, scale, taker, count[taker], count[taker] + s)
                    _undo(cells, residual, taker, count[taker], count[taker] + s)
                    if gain <= best_gain or not _fits(x, taker, tours, first, last, owner, low, high) or (
                            v != u and not _fits(y, taker, tours, first, last, owner, low, high)):
                        continue
                    if home[taker] != home[giver]:
                        moved_x = _rehome(x, home[taker], False, tour_start, size, trip, trip_cells, trip_residual, trip_scale,
                                          parts, lookup, places, bands, new_cells)
                        if v != u and moved_x > -np.inf:  # the second tour's change on top of the first's
                            _rehome(x, home[taker], True, tour_start, size, trip, trip_cells, trip_residual, trip_scale, parts,
                                    lookup, places, bands, new_cells)
                            moved_y = _rehome(y, home[taker], False, tour_start, size, trip, trip_cells, trip_residual,
                                              trip_scale, parts, lookup, places, bands, new_cells)
                            _rehome(x, home[giver], True, tour_start, size, trip, trip_cells, trip_residual, trip_scale, parts,
                                    lookup, places, bands, new_cells)
                            moved_x += moved_y
                        gain += moved_x
                    if gain > best_gain:
                        best_gain, best, best_x, best_y = gain, taker, x, (y if v != u else -1)
                _undo(cells, residual, giver, count[giver], count[giver] - s)
            if best < 0:
                continue
            s = size[best_x] + (size[best_y] if best_y >= 0 else 0)
            _gain(cells, residual, scale, giver, count[giver], count[giver] - s)
            _gain(cells, residual, scale, best, count[best], count[best] + s)
            count[giver] -= s
            count[best] += s
            for x in (best_x, best_y):
                if x < 0:
                    continue
                if home[best] != home[giver]:
                    _rehome(x, home[best], True, tour_start, size, trip, trip_cells, trip_residual, trip_scale, parts, lookup, places,
                            bands, new_cells)
                owner[x] = best
            moved += 1
            if home[best] != home[giver]:
                moved_home += 1
    return moved, moved_home
