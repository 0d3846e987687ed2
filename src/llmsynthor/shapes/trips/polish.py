"""The last step towards the tables: stops moved to nearby zones, trips to other hours, exchanges of
zones, hours and modes, and tours' modes changed, where that lowers the tables' error.

After one day is chosen for every person, the tables of trips are missed by what whole days cannot
fix: a day is a coarse unit (several trips at once). Here the stops of the chosen days (the trips not
going home) are visited in a seeded order, and each may move to one of the zones nearest it — its
own trip and the next one (which leaves from it) change together, so the day stays a chain: it still
starts and ends at home. Each trip may also move to another hour between its day's previous and next
departures. A move is taken only when it lowers the weighted L1 error over the tables of trips (each
table's L1 over its total times its weight — a table naming zones or districts, the mean of its
districts' — as the choice counts it; no move changes how many trips there are, so each table's
targets are scaled to the trips there are), and a stop only within reach: neither leg may grow
beyond 1.5 times the longer of the two legs as chosen (before any move) plus 1 km, so a walk stays a
walk's length.

Exchanges follow the moves in every pass, for what a move alone cannot do without undoing a table
already met: two stops trade zones, each within reach (every zone keeps as many stops, so tables of
origin or destination zones stay as they are while the flows between districts change); two trips
of one purpose in different days trade hours, each within its slot (every purpose keeps its trips
each hour); two tours of persons of a kind, in one band of length, trade modes (modes by person and
by length stay as they are, modes by purpose move). Last, a tour may change its whole mode to one
the prior's factors find at least as likely for its traveller and length — a tour keeps one mode,
so a car driven from home comes back home. A stage ends when a pass moves nothing; in each of the
:data:`STAGES` stages after the first, the tables still worst met weigh more
(:func:`~llmsynthor.fitting.choice.reweighed`) — a table naming zones or districts district by
district, each by its own TVD — and moves are judged by those weights; the state kept is the one
whose worst-met table is met best (the aim is every table within tolerance).

Works on arrays of zone rows, hours and value positions (:class:`~llmsynthor.shapes.trips.days.Coder`
maps them to the tables' cells); its passes are compiled loops (numba) that sum as the numpy code they
replaced did (:mod:`llmsynthor.fitting.sums`); knows nothing of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ...declarations.zones import Zones, leg_km
from ...fitting.choice import reweighed
from ...fitting.sums import pairwise_sum
from .days import LENGTH_BANDS, REACH, CellParts, Coder, length_band, listed_cell
from .districts import cell_groups, cell_weights

NEAREST = 80  # a stop may move to one of this many zones nearest it (itself included)
PASSES = 8  # passes per stage on average: the stages share PASSES × STAGES
# a stop may trade zones with stops at SWAP_ZONES of the SWAP_NEAREST zones nearest it: one zone of each band of 10 ranks
# of nearness, at a rank the stop and the pass vary, so that over the passes a stop meets other districts as well as its
# neighbours (the MTC example, seeds 0/1/2, the polish replayed: origin districts over .01 on OD × period 7/9/4 against
# 12/16/8 with the 30 nearest, the polish 20 s against 32 s; with other draws of the ranks 300 zones gave 9/4/3, 150 10/10/5,
# 600 6/6/3, every zone 7/8/7)
SWAP_NEAREST = 300
SWAP_ZONES = 30
TRIES = 6  # an exchange looks at this many stops at each zone near a stop's, or trips of its purpose at each hour of its slot
STAGES = 5  # after the first, each stage weighs every table by how badly it is still met (towards every table within tolerance)


@dataclass(frozen=True)
class Polished:
    """The stops' new zones and what the moves did."""

    destination: np.ndarray  # zone rows, one per trip
    origin: np.ndarray
    depart: np.ndarray
    mode: np.ndarray  # value positions, one per trip
    error_before: float  # in the tables' weights as given (their emphasis included)
    error_after: float
    moves: int  # stops and hours moved, tours' modes changed
    passes: int
    worst_before: float = 0.0  # the worst-met table's TVD before the moves, and in the state kept (of the tables within reach)
    worst_after: float = 0.0
    exchanges: int = 0  # stops that traded zones, trips that traded hours, tours that traded modes (each pair once)


def polish_stops(zones: Zones, coder: Coder, origin: np.ndarray, destination: np.ndarray, depart: np.ndarray,
                 purpose: np.ndarray, mode: np.ndarray, home_bound: np.ndarray, day: np.ndarray, hours: tuple[int, int],
                 rng: np.random.Generator, passes: int = PASSES, emphasis: np.ndarray | None = None,
                 kind: np.ndarray | None = None, mode_factors: tuple[np.ndarray, np.ndarray] | None = None,
                 beyond: np.ndarray | None = None) -> Polished:
    """Move stops (trips with ``home_bound`` False; the next trip of the same ``day`` follows each) to
    nearby zones, and trips to other hours between their day's previous and next departures (within
    ``hours``, first and last), while that lowers the error of ``coder.tables`` (every one a table of trips),
    each table weighed with its ``emphasis`` (one factor a table; None: 1). With ``kind`` (each trip's
    traveller's kind: persons of a kind are alike to every table and the prior), tours of a kind and of one
    band of length trade modes too. With ``mode_factors`` (the prior's factors of each trip's traveller over
    the modes, [trip, mode], and of the bands of length, [band, mode]), a tour may also change its mode to
    one at least as likely for its traveller and length. Tables ``beyond`` reach (one flag a table; the
    synthesizer's :func:`~llmsynthor.shapes.trips.synthesizer.beyond_reach`) keep their weight through the
    stages and do not decide which state is kept."""
    tables = coder.tables
    sizes = np.array([t.cells for t in tables])
    target, scale = cell_weights(tables, zones, emphasis)  # as the choice weighs them, with the synthesizer's emphasis
    origin, destination = origin.astype(np.int64), destination.astype(np.int64)
    depart, purpose, mode = depart.astype(np.int64), purpose.astype(np.int64), mode.astype(np.int64)
    same_before = np.r_[False, day[1:] == day[:-1]]
    same_after = np.r_[day[1:] == day[:-1], False]
    modes = mode_factors[1].shape[1] if mode_factors is not None else int(mode.max(initial=0)) + 1  # every mode a tour may take
    codes = CellParts.of(coder, zones, int(purpose.max(initial=0)) + 1, modes)
    parts, lookup = codes.parts, codes.lookup
    trip = (origin, destination, depart, purpose, mode)  # what the compiled passes read and change
    cells = codes.cells(origin, destination, depart, purpose, mode)
    counts = np.bincount(cells.ravel(), minlength=len(target)).astype(float)
    table_of = np.repeat(np.arange(len(tables)), sizes)
    totals = np.array([max(t.region.sum(), 1e-12) for t in tables])
    expected, share = scaled_to_trips(tables, counts, target)
    residual = counts - expected
    trips_in = np.maximum(totals * share, 1e-12)  # each table's trips, as no move changes
    given_scale = scale.copy()  # the error is reported in the tables' weights as given, whatever the stages did
    before = float(scale @ np.abs(residual))
    near = zones.nearest(min(NEAREST, len(zones)))
    k = near.indptr[1] - near.indptr[0]
    neighbours = near.indices.reshape(len(zones), k).astype(np.int64)
    swap_near = zones.nearest_first(min(SWAP_NEAREST, len(zones)))
    stops = np.flatnonzero(~home_bound)
    chosen_km = zones.km(origin, destination)
    reach = np.zeros(len(origin))
    reach[stops] = REACH[0] * np.maximum(chosen_km[stops], chosen_km[stops + 1]) + REACH[1]  # fixed once: moves cannot creep
    lon, lat, within = zones.places()
    day = np.asarray(day, dtype=np.int64)
    tour_first = np.flatnonzero(~same_before | np.r_[False, home_bound[:-1]])  # a tour starts a day or follows a trip home
    tour_size = np.diff(np.r_[tour_first, len(day)]).astype(np.int64)
    every, hour_keys = np.arange(len(depart)), (int(purpose.max(initial=0)) + 1) * 24
    moves = exchanges = done = 0

    in_reach = np.ones(len(tables), dtype=bool) if beyond is None or np.all(beyond) else ~np.asarray(beyond)  # tables within reach

    def fit() -> np.ndarray:  # each table's TVD now
        return np.bincount(table_of, weights=np.abs(residual), minlength=len(tables)) / trips_in / 2

    worst_before = float(fit()[in_reach].max())
    kept = (worst_before, destination.copy(), origin.copy(), depart.copy(), mode.copy(), residual.copy())
    group = cell_groups(tables, zones)  # a table's cells, or each district's of a table naming zones or districts
    staged = np.ones(int(group.max(initial=-1)) + 1)  # the stages' own emphasis of each group, on top of the weights as given
    reweigh = np.zeros(len(staged), dtype=bool)  # the groups of the tables within reach: those the stages reweigh
    reweigh[group] = in_reach[table_of]
    wanted = np.maximum(np.bincount(group, weights=expected, minlength=len(staged)), 1e-12)  # each group's trips
    stage, quiet = 0, 0
    chasing = not np.all(in_reach)  # a table beyond reach offers small gains in every pass: a stage may never be quiet
    in_cells = in_reach[table_of]

    def reach_error() -> float:  # the error of the tables within reach, in the stage's weights
        return float(scale[in_cells] @ np.abs(residual[in_cells]))

    last = reach_error()
    while done < passes * STAGES:
        done += 1
        moved = _move_stops(rng.permutation(stops), parts, lookup, cells, residual, scale, trip, neighbours, reach, lon, lat, within)
        moved += _move_hours(rng.permutation(len(depart)), parts, lookup, cells, residual, scale, trip, same_before, same_after,
                             hours[0], hours[1])
        traded = _swap_stops(rng.permutation(stops), rng.integers(0, 1 << 30, len(stops)), parts, lookup, cells, residual, scale,
                             trip, swap_near, SWAP_ZONES, reach, lon, lat, within,
                             *_places_of(destination, stops, len(zones)), TRIES)  # the stops at each zone, as the moves left them
        traded += _swap_hours(rng.permutation(len(depart)), rng.integers(0, 1 << 30, len(depart)), parts, lookup, cells, residual,
                              scale, trip, day, same_before, same_after, hours[0], hours[1],
                              *_places_of(purpose * 24 + depart, every, hour_keys), TRIES)
        if len(tour_first) and (kind is not None or mode_factors is not None):  # the tours' bands of length, as the stops now lie
            band = length_band(np.maximum.reduceat(zones.km(origin, destination), tour_first))
        if kind is not None and len(tour_first):
            traded += _swap_modes(rng.permutation(len(tour_first)), rng.integers(0, 1 << 30, len(tour_first)), parts, lookup, cells,
                                  residual, scale, trip, tour_first, tour_size,
                                  *_mode_places(band, mode, kind, tour_first, codes.mode.shape[1]), TRIES)
        if mode_factors is not None and len(tour_first):
            moved += _change_modes(rng.permutation(len(tour_first)), parts, lookup, cells, residual, scale, trip, tour_first, tour_size,
                                   _plausible(band, mode, tour_first, *mode_factors))
        moves, exchanges = moves + moved, exchanges + traded
        quiet = quiet + 1 if not moved + traded else 0
        if chasing:  # ... so with one, a stage also ends when a pass no longer lowers the error of the tables within reach
            now_error = reach_error()
            quiet, last = (quiet + 1 if now_error >= last else quiet), now_error
        if quiet or done == passes * STAGES:  # a stage ends when a pass moves nothing: keep the state whose worst table is best
            now = fit()[in_reach]
            if now.max() < kept[0]:
                kept = (float(now.max()), destination.copy(), origin.copy(), depart.copy(), mode.copy(), residual.copy())
            if stage + 1 == STAGES:
                break
            stage, quiet = stage + 1, 0  # the tables still worst met count more in the next stage
            tvds = np.bincount(group, weights=np.abs(residual), minlength=len(staged)) / wanted / 2
            staged[reweigh] = reweighed(staged[reweigh], tvds[reweigh])
            scale = given_scale * staged[group]
            last = reach_error()
    worst_after, destination, origin, depart, mode, residual = kept
    return Polished(destination, origin, depart, mode, before, float(given_scale @ np.abs(residual)), moves, done, worst_before, worst_after,
                    exchanges)


def scaled_to_trips(tables, counts: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each table's ``target`` (over the cells of ``tables``, in order) scaled to the trips ``counts`` holds
    in it, and each table's share (its trips over its targets' total). No move of the polish or the transfers
    changes how many trips there are, so against these targets a table's L1 over its trips is the TVD of
    shares that is reported, and trips missing from every cell are not counted as error cell by cell."""
    table_of = np.repeat(np.arange(len(tables)), [t.cells for t in tables])
    totals = np.array([max(t.region.sum(), 1e-12) for t in tables])
    share = np.bincount(table_of, weights=counts, minlength=len(tables)) / totals
    return target * share[table_of], share


@numba.njit(cache=True)
def _move_stops(order, parts, lookup, cells, residual, scale, trip, neighbours, reach, lon, lat, within) -> int:
    """One pass of stop moves (the trips in ``order``, each with the next trip of its day, to the option of
    their nearest zones that most lowers the weighted error, within reach); the number moved. ``trip``:
    every trip's origin, destination, hour, purpose and mode (:class:`~llmsynthor.shapes.trips.days.CellParts`
    finds their cells)."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    k = neighbours.shape[1]
    first = np.empty((k, tables), dtype=np.int64)
    second = np.empty((k, tables), dtype=np.int64)
    both = np.empty(2 * tables, dtype=np.int64)
    gains = np.empty(2 * tables)
    cost = np.empty(k)
    fixed_first = np.empty(tables, dtype=np.int64)  # each table's place of the two trips but for the stop's part
    fixed_second = np.empty(tables, dtype=np.int64)
    moved = 0
    for i in order:
        j = i + 1  # the trip leaving the stop (a stop is never a day's last trip)
        for t in range(tables):
            residual[cells[i, t]] -= 1.0
        for t in range(tables):
            residual[cells[j, t]] -= 1.0
        for t in range(tables):
            fixed_first[t] = o_part[t, origin[i]] + h_part[t, depart[i]] + p_part[t, purpose[i]] + m_part[t, mode[i]]
            fixed_second[t] = d_part[t, destination[j]] + h_part[t, depart[j]] + p_part[t, purpose[j]] + m_part[t, mode[j]]
        here = -1
        for q in range(k):
            option = neighbours[destination[i], q]
            if here < 0 and option == destination[i]:
                here = q
            if leg_km(origin[i], option, lon, lat, within) > reach[i] or leg_km(option, destination[j], lon, lat, within) > reach[i]:
                cost[q] = np.inf  # out of reach: not weighed
                continue
            for t in range(tables):
                place = fixed_first[t] + d_part[t, option]
                first[q, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                place = fixed_second[t] + o_part[t, option]
                second[q, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                both[t], both[tables + t] = first[q, t], second[q, t]
            for c in range(2 * tables):
                repeat = 0.0  # how often the cell came earlier in the row (a trip pair in one OD cell)
                for e in range(c):
                    if both[e] == both[c]:
                        repeat += 1.0
                r = residual[both[c]] + repeat
                gains[c] = scale[both[c]] * (abs(r + 1) - abs(r))
            cost[q] = pairwise_sum(gains, 0, 2 * tables)
        best = int(np.argmin(cost))
        if np.isfinite(cost[best]) and (here < 0 or cost[best] < cost[here] - 1e-12):
            option = neighbours[destination[i], best]
            destination[i] = option
            origin[j] = option
            cells[i] = first[best]
            cells[j] = second[best]
            moved += 1
        for t in range(tables):
            residual[cells[i, t]] += 1.0
        for t in range(tables):
            residual[cells[j, t]] += 1.0
    return moved


@numba.njit(cache=True)
def _move_hours(order, parts, lookup, cells, residual, scale, trip, same_before, same_after, first_hour, last_hour) -> int:
    """One pass of hour moves (the trips in ``order``, each to the hour between its day's previous and next
    departures that most lowers the weighted error); the number moved."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    new = np.empty((24, tables), dtype=np.int64)
    gains = np.empty(tables)
    cost = np.empty(24)
    fixed = np.empty(tables, dtype=np.int64)  # each table's place of the trip but for its hour's part
    moved = 0
    for i in order:
        low = depart[i - 1] if same_before[i] else first_hour
        high = depart[i + 1] if same_after[i] else last_hour
        if low == high:
            continue
        if not low <= depart[i] <= high:
            raise AssertionError("a trip departs outside its slot between its day's neighbours")
        for t in range(tables):
            residual[cells[i, t]] -= 1.0
        n = high - low + 1
        for t in range(tables):
            fixed[t] = o_part[t, origin[i]] + d_part[t, destination[i]] + p_part[t, purpose[i]] + m_part[t, mode[i]]
        for q in range(n):
            for t in range(tables):
                place = fixed[t] + h_part[t, low + q]
                new[q, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                r = residual[new[q, t]]
                gains[t] = scale[new[q, t]] * (abs(r + 1) - abs(r))
            cost[q] = pairwise_sum(gains, 0, tables)
        best = int(np.argmin(cost[:n]))
        if cost[best] < cost[depart[i] - low] - 1e-12:
            depart[i] = low + best
            cells[i] = new[best]
            moved += 1
        for t in range(tables):
            residual[cells[i, t]] += 1.0
    return moved


@numba.njit(cache=True)
def _added(cells, rows, residual, scale) -> float:
    """The weighted error the rows' cells add to ``residual`` when they are counted one after the other (a
    cell counted twice adds its second time on top of the first); ``residual`` is left as it was."""
    tables = cells.shape[1]
    total = 0.0
    for n in range(rows.shape[0]):
        for t in range(tables):
            c = cells[rows[n], t]
            r = residual[c]
            total += scale[c] * (abs(r + 1.0) - abs(r))
            residual[c] = r + 1.0
    for n in range(rows.shape[0]):
        for t in range(tables):
            residual[cells[rows[n], t]] -= 1.0
    return total


@numba.njit(cache=True)
def _gain_of(cells, rows, out, new, index, residual, scale) -> float:
    """How much the weighted error falls when the trips ``rows`` leave their cells for ``new[index]`` (one row
    of cells a trip, in the same order). The first ``out`` rows are already out of ``residual`` (the trip
    whose options are weighed: taken out once, not for each option); the others are taken out and put back."""
    partners = rows[out:]
    _count(cells, partners, residual, -1.0)
    before = _added(cells, rows, residual, scale)
    after = _added(new, index, residual, scale)
    _count(cells, partners, residual, 1.0)
    return before - after


@numba.njit(cache=True)
def _recount(cells, rows, new, residual) -> None:
    """The trips ``rows`` move to the cells ``new`` (one row a trip, in the same order), ``residual`` with them."""
    _count(cells, rows, residual, -1.0)
    for r in range(rows.shape[0]):
        cells[rows[r]] = new[r]
    _count(cells, rows, residual, 1.0)


@numba.njit(cache=True)
def _trade_places(at, slot, a, b) -> None:
    """An index's members ``a`` and ``b`` trade places (each now listed under the other's key)."""
    x, y = slot[a], slot[b]
    at[x], at[y] = b, a
    slot[a], slot[b] = y, x


@numba.njit(cache=True)
def _tour_rows(rows, first, size, a, b) -> int:
    """Tour ``a``'s trips then tour ``b``'s into ``rows``; how many."""
    count = 0
    for tour in (a, b):
        for r in range(size[tour]):
            rows[count] = first[tour] + r
            count += 1
    return count


@numba.njit(cache=True)
def _count(cells, rows, residual, sign) -> None:
    for n in range(rows.shape[0]):
        for t in range(cells.shape[1]):
            residual[cells[rows[n], t]] += sign


@numba.njit(cache=True)
def _swap_stops(order, jitter, parts, lookup, cells, residual, scale, trip, neighbours, tried, reach, lon, lat, within, at_start, at,
                slot, tries) -> int:
    """One pass of stop exchanges: each stop i in ``order`` trades zones with the stop k that most lowers the
    weighted error — k at one of ``tried`` zones near i's, one of each band of ranks of nearness over
    ``neighbours`` (each zone's nearest, nearest first), at a rank ``jitter`` varies; both within reach,
    neither the other's neighbour in its day. Every zone keeps as many stops, so tables of origin or destination zones stay as they
    are while the flows between districts move. ``at[at_start[z]:at_start[z+1]]`` are the stops
    at zone z (``slot``: each stop's place there, kept as zones are traded); ``tries`` stops a zone are
    looked at, from a place ``jitter`` varies. The number of exchanges."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    ranks = neighbours.shape[1]
    k_near = min(tried, ranks)  # the ranks of nearness in k_near bands, the nearest first: band q is ranks q·ranks//k_near …
    rows = np.empty(4, dtype=np.int64)
    four = np.arange(4)
    new = np.empty((4, tables), dtype=np.int64)
    best_new = np.empty((4, tables), dtype=np.int64)
    moved = 0
    for n in range(order.shape[0]):
        i = order[n]
        j = i + 1
        x = destination[i]
        rows[0], rows[1] = i, j
        _count(cells, rows[:2], residual, -1.0)
        best_gain, best_k = 1e-12, -1
        for q in range(k_near):
            low = q * ranks // k_near
            y = neighbours[x, low + ((jitter[n] >> 15) + q) % ((q + 1) * ranks // k_near - low)]  # a rank the stop and pass vary
            if y == x:
                continue
            if leg_km(origin[i], y, lon, lat, within) > reach[i] or leg_km(y, destination[j], lon, lat, within) > reach[i]:
                continue
            there = at_start[y + 1] - at_start[y]
            if there == 0:
                continue
            for t in range(tables):
                for r in range(2):  # i to y, the trip leaving i from y: the same whichever stop at y is traded with
                    row = rows[r]
                    o = y if r == 1 else origin[row]
                    d = y if r == 0 else destination[row]
                    place = o_part[t, o] + d_part[t, d] + h_part[t, depart[row]] + p_part[t, purpose[row]] + m_part[t, mode[row]]
                    new[r, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
            for s in range(min(tries, there)):
                k = at[at_start[y] + (jitter[n] + s) % there]
                if k == j or k + 1 == i:
                    continue
                if leg_km(origin[k], x, lon, lat, within) > reach[k] or leg_km(x, destination[k + 1], lon, lat, within) > reach[k]:
                    continue
                rows[2], rows[3] = k, k + 1
                for t in range(tables):
                    for r in range(2, 4):  # k to x, the trip leaving k from x
                        row = rows[r]
                        o = x if r == 3 else origin[row]
                        d = x if r == 2 else destination[row]
                        place = o_part[t, o] + d_part[t, d] + h_part[t, depart[row]] + p_part[t, purpose[row]] + m_part[t, mode[row]]
                        new[r, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                gain = _gain_of(cells, rows, 2, new, four, residual, scale)
                if gain > best_gain:
                    best_gain, best_k = gain, k
                    best_new[:] = new
        _count(cells, rows[:2], residual, 1.0)
        if best_k >= 0:
            k = best_k
            y = destination[k]
            rows[2], rows[3] = k, k + 1
            _recount(cells, rows, best_new, residual)
            destination[i], origin[j], destination[k], origin[k + 1] = y, y, x, x
            _trade_places(at, slot, i, k)
            moved += 1
    return moved


@numba.njit(cache=True)
def _swap_hours(order, jitter, parts, lookup, cells, residual, scale, trip, day, same_before, same_after, first_hour, last_hour,
                at_start, at, slot, tries) -> int:
    """One pass of hour exchanges: each trip i in ``order`` trades departure hours with the trip k of the same
    purpose, at another hour of i's slot between its day's neighbours and of another day whose slot holds
    i's hour, that most lowers the weighted error. Every purpose keeps as many trips each hour, so tables
    of hour by purpose stay as they are while what they cross (zones, districts) moves.
    ``at[at_start[c]:at_start[c+1]]`` are the trips of purpose and hour c = purpose·24 + hour (``slot``:
    each trip's place there); ``tries`` trips an hour are looked at. The number of exchanges."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    rows = np.empty(2, dtype=np.int64)
    two = np.arange(2)
    new = np.empty((2, tables), dtype=np.int64)
    best_new = np.empty((2, tables), dtype=np.int64)
    moved = 0
    for n in range(order.shape[0]):
        i = order[n]
        h = depart[i]
        low = depart[i - 1] if same_before[i] else first_hour
        high = depart[i + 1] if same_after[i] else last_hour
        rows[0] = i
        _count(cells, rows[:1], residual, -1.0)
        best_gain, best_k = 1e-12, -1
        for g in range(low, high + 1):
            if g == h:
                continue
            c = purpose[i] * 24 + g
            there = at_start[c + 1] - at_start[c]
            if there == 0:
                continue
            for t in range(tables):  # i at g: the same whichever trip at g is traded with
                place = o_part[t, origin[i]] + d_part[t, destination[i]] + h_part[t, g] + p_part[t, purpose[i]] + m_part[t, mode[i]]
                new[0, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
            for s in range(min(tries, there)):
                k = at[at_start[c] + (jitter[n] + s) % there]
                if day[k] == day[i]:
                    continue
                k_low = depart[k - 1] if same_before[k] else first_hour
                k_high = depart[k + 1] if same_after[k] else last_hour
                if not k_low <= h <= k_high:
                    continue
                rows[1] = k
                for t in range(tables):  # k at h
                    place = o_part[t, origin[k]] + d_part[t, destination[k]] + h_part[t, h] + p_part[t, purpose[k]] + m_part[t, mode[k]]
                    new[1, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                gain = _gain_of(cells, rows, 1, new, two, residual, scale)
                if gain > best_gain:
                    best_gain, best_k = gain, k
                    best_new[:] = new
        _count(cells, rows[:1], residual, 1.0)
        if best_k >= 0:
            k = best_k
            g = depart[k]
            rows[1] = k
            _recount(cells, rows, best_new, residual)
            depart[i], depart[k] = g, h
            _trade_places(at, slot, i, k)
            moved += 1
    return moved


def _plausible(band, mode, tour_first, by_person: np.ndarray, by_length: np.ndarray) -> np.ndarray:
    """[tour, mode]: the modes a tour may change to — those whose prior factor for its traveller (``by_person``,
    one row a trip: its first trip's) and the ``band`` of its longest leg (``by_length``) is at least its own mode's."""
    weight = by_person[tour_first, :] * by_length[band, :]
    own = weight[np.arange(len(tour_first)), mode[tour_first]]
    return weight >= own[:, None] * (1 - 1e-9)


def _mode_places(band, mode, kind, tour_first, modes: int):
    """What :func:`_swap_modes` takes of the tours as they are: each tour's key (its traveller's ``kind`` and
    the ``band`` of its longest leg), the number of modes, and the index of the tours by key and mode."""
    key = pd.factorize(kind[tour_first].astype(np.int64) * len(LENGTH_BANDS) + band)[0].astype(np.int64)
    return (key, modes, *_places_of(key * modes + mode[tour_first], np.arange(len(tour_first)), (int(key.max()) + 1) * modes))


def _places_of(keys: np.ndarray, members: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An index of ``members`` by their ``keys`` (0 … size−1): (starts, members in key order, each trip's
    place there — −1 for trips not among the members), as the exchanges keep it."""
    ordered = members[np.argsort(keys[members], kind="stable")]
    starts = np.searchsorted(keys[ordered], np.arange(size + 1)).astype(np.int64)
    slot = np.full(len(keys), -1, dtype=np.int64)
    slot[ordered] = np.arange(len(ordered))
    return starts, ordered.astype(np.int64), slot



@numba.njit(cache=True)
def _swap_modes(order, jitter, parts, lookup, cells, residual, scale, trip, first, size, key, modes, at_start, at, slot, tries) -> int:
    """One pass of mode exchanges: each tour in ``order`` (its trips ``first[tour]`` … + ``size[tour]``) trades
    its mode with the tour of the same ``key`` (the traveller's kind and the band of the tour's longest leg)
    and another mode that most lowers the weighted error. Every key keeps as many tours of each mode, so
    what is known of modes by person and by length stays as it is while modes by purpose move.
    ``at[at_start[c]:at_start[c+1]]`` are the tours of c = key·modes + mode (``slot``: each tour's place
    there); ``tries`` tours of each other mode are looked at. The number of exchanges."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    most = 2 * (size.max() if size.shape[0] else 0)
    rows = np.empty(most, dtype=np.int64)
    new = np.empty((most, tables), dtype=np.int64)
    best_new = np.empty((most, tables), dtype=np.int64)
    index = np.arange(most)
    moved = 0
    for n in range(order.shape[0]):
        a = order[n]
        m = mode[first[a]]
        own = np.arange(first[a], first[a] + size[a])
        _count(cells, own, residual, -1.0)
        best_gain, best_b = 1e-12, -1
        for c in range(modes):
            if c == m:
                continue
            bucket = key[a] * modes + c
            there = at_start[bucket + 1] - at_start[bucket]
            for s in range(min(tries, there)):
                b = at[at_start[bucket] + (jitter[n] + s) % there]
                count = _tour_rows(rows, first, size, a, b)
                used = rows[:count]
                for r in range(count):
                    other = c if r < size[a] else m
                    x = rows[r]
                    for t in range(tables):
                        place = o_part[t, origin[x]] + d_part[t, destination[x]] + h_part[t, depart[x]] + p_part[t, purpose[x]] + m_part[t, other]
                        new[r, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
                gain = _gain_of(cells, used, size[a], new, index[:count], residual, scale)
                if gain > best_gain:
                    best_gain, best_b = gain, b
                    best_new[:count] = new[:count]
        _count(cells, own, residual, 1.0)
        if best_b >= 0:
            b = best_b
            c = mode[first[b]]
            count = _tour_rows(rows, first, size, a, b)
            used = rows[:count]
            _recount(cells, used, best_new, residual)
            for r in range(count):
                mode[rows[r]] = c if r < size[a] else m
            _trade_places(at, slot, a, b)
            moved += 1
    return moved


@numba.njit(cache=True)
def _change_modes(order, parts, lookup, cells, residual, scale, trip, first, size, plausible) -> int:
    """One pass of mode changes: each tour in ``order`` takes the mode that most lowers the weighted error among
    those ``plausible[tour]`` allows (at least as likely as its own for its traveller and length, by the
    prior's factors); the whole tour takes it, so a car driven from home still comes back home. The
    number of tours changed."""
    origin, destination, depart, purpose, mode = trip
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup  # a cell: offset[t] + the place, or its rank among a sparse table's keys
    tables = cells.shape[1]
    most = size.max() if size.shape[0] else 0
    new = np.empty((most, tables), dtype=np.int64)
    best_new = np.empty((most, tables), dtype=np.int64)
    index = np.arange(most)
    moved = 0
    for n in range(order.shape[0]):
        a = order[n]
        m = mode[first[a]]
        rows = np.arange(first[a], first[a] + size[a])
        _count(cells, rows, residual, -1.0)
        here = _added(cells, rows, residual, scale)
        best_gain, best_c = 1e-12, -1
        for c in range(plausible.shape[1]):
            if c == m or not plausible[a, c]:
                continue
            for r in range(size[a]):
                x = rows[r]
                for t in range(tables):
                    place = o_part[t, origin[x]] + d_part[t, destination[x]] + h_part[t, depart[x]] + p_part[t, purpose[x]] + m_part[t, c]
                    new[r, t] = offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))
            gain = here - _added(new, index[:size[a]], residual, scale)
            if gain > best_gain:
                best_gain, best_c = gain, c
                best_new[:size[a]] = new[:size[a]]
        if best_c >= 0:
            for r in range(size[a]):
                cells[rows[r]] = best_new[r]
                mode[rows[r]] = best_c
            moved += 1
        _count(cells, rows, residual, 1.0)
    return moved
