"""Whole tours handed from one person to another alike, where that meets the tables of persons better.

After one day is chosen for every person, the tables of persons (trips per person by type) are missed
by what the choice could not exchange: a day is one of a few candidates, and a person's trips come as
one number with the day. Two persons alike — the same home zone and the same value of every variable
the tables or the prior know of them — can trade a tour: home → stops → home, its zones, hours,
purposes and mode unchanged. Every table of trips is then met exactly as before (the same trips, from
the same home), and only how many trips each of the two makes changes. A tour goes to a person whose
day has room for it: between two of their tours (their departures stay in order, every tour starts
and ends at home) and within ``max_trips``. A move is taken when it lowers the weighted L1 error over
the tables of persons; the groups are visited in a seeded order until a pass moves nothing.

Works on arrays (each person's cell in every table for every number of trips, each tour's owner,
size and first and last departure hours); its passes are compiled (numba); knows nothing of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ...evaluation.cells import cell_index
from .inputs import PERSONS, TRIPS
from .spec import TRIPS_PER_PERSON

PASSES = 20  # at most; a pass that moves nothing ends the work


@dataclass(frozen=True)
class Transferred:
    """What the transfers did: tours handed over, passes run, the tables' weighted error before and after."""

    moves: int
    passes: int
    error_before: float
    error_after: float


def transfer_tours(days: pd.DataFrame, trips: pd.DataFrame, tables, targets: np.ndarray, scale: np.ndarray, group: np.ndarray,
                   max_trips: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, Transferred]:
    """Hand tours between persons of the same ``group`` (one number a row of ``days``: persons alike)
    while that lowers the error of ``tables`` (tables of persons; ``targets`` and ``scale`` over their
    cells, in order). ``days`` are the chosen days (one a person, :data:`TRIPS_PER_PERSON` their trips),
    ``trips`` theirs in day order (``PERSONS.id``: the day's number from 1, ``tour``: the tour within the
    day). Returns the days and trips as they are after the moves (trips in day order again, numbered
    from 1, tours numbered within each day in order)."""
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
    before = float(scale @ np.abs(residual))
    order = np.argsort(group, kind="stable")  # persons by group, and each group's tours
    person_start = np.searchsorted(group[order], np.arange(group.max(initial=-1) + 2)).astype(np.int64)
    tours_order = np.argsort(group[owner], kind="stable")
    tour_group_start = np.searchsorted(group[owner][tours_order], np.arange(group.max(initial=-1) + 2)).astype(np.int64)
    moves = done = 0
    while done < PASSES:
        done += 1
        moved = _pass(rng.permutation(len(person_start) - 1), person_start, order.astype(np.int64), tour_group_start,
                      tours_order.astype(np.int64), owner, size, low, high, count, cells, residual, scale, max_trips)
        moves += moved
        if not moved:
            break
    after = float(scale @ np.abs(residual))
    if not moves:
        return days, trips, Transferred(0, done, before, after)
    days = days.copy()
    days[TRIPS_PER_PERSON] = count
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
    return days, moved_trips, Transferred(moves, done, before, after)


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
def _pass(groups, person_start, persons, tour_start, tours, owner, size, low, high, count, cells, residual, scale,
          max_trips) -> int:
    """One pass over the ``groups``: each of a group's tours goes to the member it most lowers the error
    for, if any does. The number of tours handed over."""
    moved = 0
    for g in groups:
        a, b = person_start[g], person_start[g + 1]
        if b - a < 2:
            continue
        for n in range(tour_start[g], tour_start[g + 1]):
            tour = tours[n]
            giver = owner[tour]
            s = size[tour]
            best_gain, best = 1e-12, -1
            given = _gain(cells, residual, scale, giver, count[giver], count[giver] - s)  # the same whoever takes it
            for m in range(a, b):
                taker = persons[m]
                if taker == giver or count[taker] + s > max_trips:
                    continue
                gain = given + _gain(cells, residual, scale, taker, count[taker], count[taker] + s)
                _undo(cells, residual, taker, count[taker], count[taker] + s)
                if gain > best_gain and _fits(tour, taker, tours, tour_start[g], tour_start[g + 1], owner, low, high):
                    best_gain, best = gain, taker
            _undo(cells, residual, giver, count[giver], count[giver] - s)
            if best >= 0:
                _gain(cells, residual, scale, giver, count[giver], count[giver] - s)
                _gain(cells, residual, scale, best, count[best], count[best] + s)
                count[giver] -= s
                count[best] += s
                owner[tour] = best
                moved += 1
    return moved
