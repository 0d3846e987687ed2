"""The last step towards the tables: moving a stop to a nearby zone where that lowers the tables' error.

After one day is chosen for every person, the tables of trips are missed by what whole days cannot
fix: a day is a coarse unit (several trips at once). Here the stops of the chosen days (the trips not
going home) are visited in a seeded order, and each may move to one of the zones nearest it — its
own trip and the next one (which leaves from it) change together, so the day stays a chain: it still
starts and ends at home, and modes are kept. Each trip may also move to another hour between its
day's previous and next departures. A move is taken only when it lowers the weighted L1 error over
the tables of trips (each table's L1 over its total times its weight, as the choice counts it), and a stop only
within reach: neither leg may grow beyond 1.5 times the longer of the two legs as chosen (before any
move) plus 1 km, so a walk stays a walk's length. A stage ends when a pass moves nothing; in each
of the :data:`STAGES` stages after the first, the tables still worst met weigh more
(:func:`~llmsynthor.fitting.choice.reweighed`) and moves are judged by those weights; the state kept
is the one whose worst-met table is met best (the aim is every table within tolerance).

Works on arrays of zone rows, hours and value positions (:class:`~llmsynthor.shapes.trips.days.Coder`
maps them to the tables' cells); knows nothing of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.levels import LevelTable
from ...declarations.zones import Zones
from ...fitting.choice import cell_targets, reweighed
from .days import Coder

NEAREST = 80  # a stop may move to one of this many zones nearest it (itself included)
PASSES = 8  # passes per stage on average: the stages share PASSES × STAGES
STAGES = 3  # after the first, each stage weighs every table by how badly it is still met (towards every table within tolerance)


@dataclass(frozen=True)
class Polished:
    """The stops' new zones and what the moves did."""

    destination: np.ndarray  # zone rows, one per trip
    origin: np.ndarray
    depart: np.ndarray
    error_before: float  # in the tables' weights as given (their emphasis included)
    error_after: float
    moves: int
    passes: int
    worst_before: float = 0.0  # the worst-met table's TVD before the moves, and in the state kept
    worst_after: float = 0.0


def _cells(coder: Coder, tables: list[LevelTable], offsets: np.ndarray, raw: dict[str, np.ndarray]) -> np.ndarray:
    """[..., table]: each trip's flat cell in every table (offset into the concatenated tables)."""
    out = []
    for table, start in zip(tables, offsets):
        index = tuple(coder.axis_index(table, v, raw[v]) for v in table.variables)
        out.append(np.ravel_multi_index(np.broadcast_arrays(*index), table.region.shape) + start)
    return np.stack(np.broadcast_arrays(*out), axis=-1)


def polish_stops(zones: Zones, coder: Coder, origin: np.ndarray, destination: np.ndarray, depart: np.ndarray,
                 purpose: np.ndarray, mode: np.ndarray, home_bound: np.ndarray, day: np.ndarray, hours: tuple[int, int],
                 rng: np.random.Generator, passes: int = PASSES, emphasis: np.ndarray | None = None) -> Polished:
    """Move stops (trips with ``home_bound`` False; the next trip of the same ``day`` follows each) to
    nearby zones, and trips to other hours between their day's previous and next departures (within
    ``hours``, first and last), while that lowers the error of ``coder.tables`` (every one a table of trips),
    each table weighed with its ``emphasis`` (one factor a table; None: 1)."""
    tables = coder.tables
    sizes = np.array([t.region.size for t in tables])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    target, scale = cell_targets(tables, emphasis)  # each table's weight times its emphasis (the synthesizer's rounds')
    origin, destination, depart = origin.copy(), destination.copy(), depart.copy()
    same_before = np.r_[False, day[1:] == day[:-1]]
    same_after = np.r_[day[1:] == day[:-1], False]

    def raw(o, d, i):
        return {"origin": o, "origin_district": o, "destination": d, "destination_district": d, "depart": depart[i],
                "purpose": purpose[i], "mode": mode[i]}

    cells = _cells(coder, tables, offsets, raw(origin, destination, np.arange(len(origin))))
    residual = np.bincount(cells.ravel(), minlength=len(target)).astype(float) - target
    given_scale = scale.copy()  # the error is reported in the tables' weights as given, whatever the stages did
    before = float(scale @ np.abs(residual))
    near = zones.nearest(min(NEAREST, len(zones)))
    k = near.indptr[1] - near.indptr[0]
    neighbours = near.indices.reshape(len(zones), k)
    stops = np.flatnonzero(~home_bound)
    chosen_km = zones.km(origin, destination)
    reach = np.zeros(len(origin))
    reach[stops] = 1.5 * np.maximum(chosen_km[stops], chosen_km[stops + 1]) + 1.0  # fixed once: moves cannot creep
    moves = done = 0
    table_of = np.repeat(np.arange(len(tables)), sizes)
    totals = np.array([max(t.region.sum(), 1e-12) for t in tables])

    def fit() -> np.ndarray:  # each table's TVD now
        return np.bincount(table_of, weights=np.abs(residual), minlength=len(tables)) / totals / 2

    worst_before = float(fit().max())
    kept = (worst_before, destination.copy(), origin.copy(), depart.copy(), residual.copy())
    staged = np.ones(len(tables))  # the stages' own emphasis, on top of the weights as given
    stage, quiet = 0, 0
    while done < passes * STAGES:
        done += 1
        moved = 0
        for i in rng.permutation(stops):
            j = i + 1  # the trip leaving the stop (a stop is never a day's last trip)
            old = np.r_[cells[i], cells[j]]
            np.subtract.at(residual, old, 1.0)
            options = neighbours[destination[i]]
            first = _cells(coder, tables, offsets, raw(np.full(k, origin[i]), options, np.full(k, i)))
            second = _cells(coder, tables, offsets, raw(options, np.full(k, destination[j]), np.full(k, j)))
            both = np.concatenate([first, second], axis=1)  # [option, 2 × tables]
            repeat = np.zeros(both.shape, dtype=float)  # how often a cell came earlier in the row (a trip pair in one OD cell)
            for c in range(1, both.shape[1]):
                repeat[:, c] = (both[:, :c] == both[:, c:c + 1]).sum(axis=1)
            r = residual[both] + repeat
            cost = (scale[both] * (np.abs(r + 1) - np.abs(r))).sum(axis=1)
            far = (zones.km(np.full(k, origin[i]), options) > reach[i]) | (zones.km(options, np.full(k, destination[j])) > reach[i])
            cost[far] = np.inf
            here = int(np.flatnonzero(options == destination[i])[0]) if (options == destination[i]).any() else None
            best = int(np.argmin(cost))
            if np.isfinite(cost[best]) and (here is None or cost[best] < cost[here] - 1e-12):
                destination[i] = origin[j] = options[best]
                cells[i], cells[j] = first[best], second[best]
                moved += 1
            np.add.at(residual, np.r_[cells[i], cells[j]], 1.0)
        for i in rng.permutation(len(depart)):
            low = depart[i - 1] if same_before[i] else hours[0]
            high = depart[i + 1] if same_after[i] else hours[1]
            if low == high:
                continue
            if not low <= depart[i] <= high:
                raise AssertionError(f"trip {i} departs at {depart[i]}, outside its slot {low}-{high}")
            np.subtract.at(residual, cells[i], 1.0)
            options = np.arange(low, high + 1)
            n = len(options)
            saved = depart[i]
            depart[i] = 0  # raw() reads depart[i]: the options are passed instead
            new = _cells(coder, tables, offsets, {**raw(np.full(n, origin[i]), np.full(n, destination[i]), np.full(n, i)),
                                                  "depart": options})
            depart[i] = saved
            r = residual[new]
            cost = (scale[new] * (np.abs(r + 1) - np.abs(r))).sum(axis=1)
            best = int(np.argmin(cost))
            if cost[best] < cost[saved - low] - 1e-12:
                depart[i] = options[best]
                cells[i] = new[best]
                moved += 1
            np.add.at(residual, cells[i], 1.0)
        moves += moved
        quiet = quiet + 1 if not moved else 0
        if quiet or done == passes * STAGES:  # a stage ends when a pass moves nothing: keep the state whose worst table is best
            now = fit()
            if now.max() < kept[0]:
                kept = (float(now.max()), destination.copy(), origin.copy(), depart.copy(), residual.copy())
            if stage + 1 == STAGES:
                break
            stage, quiet = stage + 1, 0  # the tables still worst met count more in the next stage
            staged = reweighed(staged, now)
            scale = given_scale * staged[table_of]
    worst_after, destination, origin, depart, residual = kept
    return Polished(destination, origin, depart, before, float(given_scale @ np.abs(residual)), moves, done, worst_before, worst_after)
