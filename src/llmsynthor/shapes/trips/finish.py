"""The last trips, district by district: after the polish, stops of the districts still over their
tolerance trade zones with stops of any district, or move, judged by each district's own TVD.

The polish weighs every table's L1 error against targets scaled to the region's trips, so it cannot
tell a district that lacks the one trip of a cell (a district of 78 trips without its one trip to a far
district in the morning is at TVD 1/78 = .0128) from one that lacks a trip of a cell of thirty (.008),
and its stops stay within reach of their legs, so the far flows of a single trip are never made. Here
the measure is the one reported (:func:`~llmsynthor.shapes.trips.evaluation.by_district`): each
district's TVD of shares within it, and each table's for the region. The error is what exceeds the
tolerance — the sum over districts and tables of max(0, TVD − tolerance) — so nothing already within
its tolerance is worked on for itself. A change may take one district or table over where others fall
by more (forbidding that, the example kept 2 / 1 / 0 districts over on 3 seeds instead of none); the
state at the end is what the run reports.

It runs only once every table within reach is within its tolerance for the region — the last trips
come last: a region whose tables are still over is the rounds' and the polish's work, and trying
stops against every district there took longer than the polish (10⁴ synthetic trips: 35 s more,
nothing met). Only the stops whose trips lie in a district still over are tried, and those that would fill a cell it
lacks were they there, each with stops at zones of every district (a few a district): an exchange (both stops trade zones: every zone keeps its stops, so
the tables of zones stay) or a move to the partner's zone, where the error falls most. A stop's legs may
grow beyond the polish's reach, as far as its mode travels (a quantile of the mode's legs as they are):
the flows left are far ones. A move changes no hour, purpose or mode, and no trip's count: days stay
chains.

Works on arrays of zone rows, hours and value positions as the polish does (its compiled loops find a
trip's cells from :class:`~llmsynthor.shapes.trips.days.CellParts`); knows nothing of models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ...core.metrics import tvd_by_group
from ...declarations.zones import Zones, leg_km
from .days import REACH, CellParts, Coder, listed_cell
from .districts import district_cells
from .polish import _places_of

PASSES = 12  # at most: passes stop as soon as nothing is over or a pass moves nothing
TRIES = 12  # stops tried at each district as partners of a stop
MOST = 2_000  # stops tried in a pass at most (a draw of those that could help): a pass stays within seconds at 10⁵ trips
MODE_REACH = 0.99  # a leg may grow to this quantile of its mode's legs (or the polish's reach, if longer)
SLOW = 0.02  # the passes stop when one lowers the excess by less than this share of it
MARGIN = 1e-4  # aimed under each tolerance by this much: a TVD printed to four places is not "0.0100"


@dataclass(frozen=True)
class Finished:
    """The stops' zones after the last trips were placed, and what that did."""

    origin: np.ndarray
    destination: np.ndarray
    moves: int
    exchanges: int
    passes: int
    over_before: int  # districts (of the tables naming zones or districts) and tables over their tolerance
    over_after: int
    excess_before: float  # the sum of what their TVDs exceed their tolerance by (less MARGIN)
    excess_after: float


def finish_districts(zones: Zones, coder: Coder, origin: np.ndarray, destination: np.ndarray, depart: np.ndarray,
                     purpose: np.ndarray, mode: np.ndarray, home_bound: np.ndarray, day: np.ndarray, tolerance: np.ndarray,
                     rng: np.random.Generator, purposes: int, modes: int, beyond: np.ndarray | None = None,
                     passes: int = PASSES) -> Finished:
    """Stops (trips with ``home_bound`` False; the next trip of the same ``day`` leaves from each) of the districts and
    tables still over their ``tolerance`` (one a table of ``coder.tables``, every one a table of trips) traded with stops
    at zones of any district, or moved to their zones, while that lowers what the districts' and tables' TVDs exceed
    their tolerance by (the module's text) — only once every table is within its tolerance for the region; tables
    ``beyond`` reach (one flag a table) are left out. ``origin`` and ``destination`` are not changed: the new ones are
    returned."""
    tables = coder.tables
    origin, destination = origin.astype(np.int64).copy(), destination.astype(np.int64).copy()
    depart, purpose, mode = depart.astype(np.int64), purpose.astype(np.int64), mode.astype(np.int64)
    codes = CellParts.of(coder, zones, purposes, modes)
    cells = codes.cells(origin, destination, depart, purpose, mode)
    target = np.concatenate([t.region.ravel().astype(float) for t in tables])
    counts = np.bincount(cells.ravel(), minlength=len(target)).astype(float)
    table_of = np.repeat(np.arange(len(tables)), [t.cells for t in tables]).astype(np.int64)
    within = np.ones(len(tables), dtype=bool) if beyond is None else ~np.asarray(beyond, dtype=bool)
    if zones.district is None:
        return Finished(origin, destination, 0, 0, 0, 0, 0, 0.0, 0.0)
    names = np.unique(zones.district.astype(str))
    district = np.searchsorted(names, zones.district.astype(str)).astype(np.int64)  # each zone's, numbered as ``names``
    groups, counted, group_district, zoned = [], [], [], np.zeros(len(tables), dtype=bool)
    for k, table in enumerate(tables):  # each table's districts: one group a district, none (−1) for a table without
        found = district_cells(table, zones)
        zoned[k] = found is not None
        groups.append(found[2] + sum(len(c) for c in counted) if zoned[k] else np.full(table.cells, -1))
        counted.append(np.full(len(found[1]) if zoned[k] else 0, within[k]))
        group_district.append(np.searchsorted(names, found[1]) if zoned[k] else np.zeros(0, dtype=np.int64))
    group = np.concatenate(groups).astype(np.int64)
    counted_group = np.concatenate(counted)
    group_district = np.concatenate(group_district).astype(np.int64)  # each group's district
    if not counted_group.any():
        return Finished(origin, destination, 0, 0, 0, 0, 0, 0.0, 0.0)
    tau_table = np.asarray(tolerance, dtype=float) - MARGIN
    group_table = np.zeros(len(counted_group), dtype=np.int64)
    group_table[group[group >= 0]] = table_of[group >= 0]
    tau_group = tau_table[group_table]
    starts, members, _ = _places_of(np.where(group >= 0, group, len(counted_group)), np.arange(len(group)), len(counted_group))
    state = _State.of(counts, target, group, table_of, len(counted_group), len(tables))
    excess_before, over_before = _excess(state, counted_group, within, tau_group, tau_table)
    if (state.table_tvd[within] > np.asarray(tolerance, dtype=float)[within]).any():  # the last trips come last: with a table
        return Finished(origin, destination, 0, 0, 0, over_before, over_before, excess_before, excess_before)  # over, not yet

    stops = np.flatnonzero(~home_bound & np.r_[day[1:] == day[:-1], False]).astype(np.int64)
    km = zones.km(origin, destination)
    reach = np.zeros(len(origin))
    reach[stops] = REACH[0] * np.maximum(km[stops], km[stops + 1]) + REACH[1]
    cap = np.array([np.quantile(km[mode == m], MODE_REACH) if np.any(mode == m) else 0.0 for m in range(modes)])
    reach = np.maximum(reach, cap[mode])  # as far as the stop's mode travels
    proxy = np.array([np.flatnonzero(district == d)[0] for d in range(len(names))], dtype=np.int64)  # a zone a district
    lon, lat, inside = zones.places()
    trip = (origin, destination, depart, purpose, mode)
    moves = exchanges = done = 0
    last = excess_before
    for done in range(1, passes + 1):
        over_cells = _over_cells(state, counted_group, within, tau_group, tau_table, group, table_of, zoned)
        touching = over_cells[cells[stops]].any(axis=1) | over_cells[cells[stops + 1]].any(axis=1)
        over_districts = np.unique(group_district[counted_group & (state.group_tvd > tau_group)])
        if len(over_districts):  # and the stops that would fill a cell an over district lacks, were they there (of a draw)
            drawn = np.arange(len(stops)) if len(stops) <= 10 * MOST else np.sort(rng.choice(len(stops), 10 * MOST, replace=False))
            touching[drawn] |= _would_fill(stops[drawn], proxy[over_districts], codes.parts, codes.lookup, trip, state.counts,
                                           state.target, group, state.group_total, state.group_target, counted_group,
                                           state.group_tvd, tau_group)
        touching = stops[touching]
        if len(touching) > MOST:
            touching = rng.choice(touching, MOST, replace=False)
        if not len(touching):
            done -= 1
            break
        at_start, at, slot = _places_of(district[destination], stops, len(names))  # the stops by their zone's district
        moved, traded = _finish_pass(rng.permutation(touching), rng.integers(0, 1 << 30, len(touching)), codes.parts, codes.lookup,
                                     cells, trip, reach, lon, lat, inside, at_start, at, slot, TRIES,
                                     state.counts, state.target, group, members, starts, state.group_total, state.group_target,
                                     state.group_tvd, tau_group, counted_group, table_of, state.table_total, state.table_target,
                                     state.table_tvd, tau_table, within)
        moves, exchanges = moves + moved, exchanges + traded
        now, _ = _excess(state, counted_group, within, tau_group, tau_table)
        if not moved + traded or now > (1 - SLOW) * last:  # nothing moved, or too little to be worth a pass
            break
        last = now
    fresh = _State.of(state.counts, target, group, table_of, len(counted_group), len(tables))  # no drift
    excess_after, over_after = _excess(fresh, counted_group, within, tau_group, tau_table)
    return Finished(origin, destination, moves, exchanges, done, over_before, over_after, excess_before, excess_after)


@dataclass
class _State:
    """The counts of every cell, and each district's and table's total and TVD as they change."""

    counts: np.ndarray
    target: np.ndarray
    group_total: np.ndarray
    group_target: np.ndarray
    group_tvd: np.ndarray
    table_total: np.ndarray
    table_target: np.ndarray
    table_tvd: np.ndarray

    @classmethod
    def of(cls, counts, target, group, table_of, groups: int, tables: int) -> _State:
        grouped = group >= 0
        total = np.bincount(group[grouped], weights=counts[grouped], minlength=groups)
        wanted = np.bincount(group[grouped], weights=target[grouped], minlength=groups)
        group_tvd = tvd_by_group(counts[grouped], target[grouped], group[grouped], groups)
        table_total = np.bincount(table_of, weights=counts, minlength=tables)
        table_target = np.bincount(table_of, weights=target, minlength=tables)
        table_tvd = tvd_by_group(counts, target, table_of, tables)
        return cls(counts, target, total, wanted, group_tvd, table_total, table_target, table_tvd)


def _excess(state: _State, counted_group, within, tau_group, tau_table) -> tuple[float, int]:
    """What the districts' and tables' TVDs exceed their tolerance by, summed, and how many do."""
    over_g = np.maximum(state.group_tvd - tau_group, 0.0)[counted_group]
    over_t = np.maximum(state.table_tvd - tau_table, 0.0)[within]
    return float(over_g.sum() + over_t.sum()), int((over_g > 0).sum() + (over_t > 0).sum())


def _over_cells(state: _State, counted_group, within, tau_group, tau_table, group, table_of, zoned) -> np.ndarray:
    """Each cell: whether its district is over, or its table (one naming zones or districts: ``zoned``, a flag a table)."""
    over_group = counted_group & (state.group_tvd > tau_group)
    over_table = within & zoned & (state.table_tvd > tau_table)
    return np.where(group >= 0, over_group[np.maximum(group, 0)], False) | over_table[table_of]


@numba.njit(cache=True)
def _would_fill(stops, proxies, parts, lookup, trip, counts, target, group, group_total, group_target, counted_group, group_tvd,
                tau_group):
    """Each stop: whether, at a zone of one of the districts ``proxies`` stands for, its trip or the next would fall in a
    cell that a district over its tolerance lacks (fewer trips there, as a share of the district's, than its target)."""
    out = np.zeros(stops.shape[0], dtype=np.bool_)
    for n in range(stops.shape[0]):
        out[n] = _fills(stops[n], proxies, parts, lookup, trip, counts, target, group, group_total, group_target, counted_group,
                        group_tvd, tau_group)
    return out


@numba.njit(cache=True)
def _fills(i, proxies, parts, lookup, trip, counts, target, group, group_total, group_target, counted_group, group_tvd,
           tau_group) -> bool:
    """Whether stop ``i``, at one of the zones ``proxies``, would put its trip or the next in a cell a district over lacks."""
    origin, destination, depart, purpose, mode = trip
    j = i + 1
    for z in proxies:
        for t in range(parts[0].shape[0]):
            for c in (_cell(t, origin[i], z, depart[i], purpose[i], mode[i], parts, lookup),
                      _cell(t, z, destination[j], depart[j], purpose[j], mode[j], parts, lookup)):
                g = group[c]
                if g >= 0 and counted_group[g] and group_tvd[g] > tau_group[g] and counts[c] * group_target[g] < target[c] * group_total[g]:
                    return True
    return False


@numba.njit(cache=True)
def _cell(t, o, d, h, p, m, parts, lookup) -> int:
    o_part, d_part, h_part, p_part, m_part = parts
    offset, keys, start, stop, stride, width = lookup
    place = o_part[t, o] + d_part[t, d] + h_part[t, h] + p_part[t, p] + m_part[t, m]
    return offset[t] + (place if width[t] == 0 else listed_cell(keys, start[t], stop[t], stride[t], width[t], place))


@numba.njit(cache=True)
def _group_tvd(g, counts, target, members, starts, total, wanted) -> float:
    """A district's TVD of shares within it (1 when it has trips on one side only, as the report counts it)."""
    if total <= 0 or wanted <= 0:
        return 1.0 if total > 0 or wanted > 0 else 0.0
    s = 0.0
    for q in range(starts[g], starts[g + 1]):
        c = members[q]
        s += abs(counts[c] / total - target[c] / wanted)
    return s / 2


@numba.njit(cache=True)
def _change(changed, delta, count, counts, target, group, members, starts, group_total, group_target, group_tvd, tau_group,
            counted_group, table_of, table_total, table_target, table_tvd, tau_table, within, new_group_tvd, new_table_tvd,
            touched_groups, touched_tables) -> tuple[float, int, int]:
    """Apply the net ``delta`` of the ``count`` cells ``changed`` to ``counts`` (left applied) and say how much the error
    changes: the districts touched get their TVD again, the tables by the cells changed. Returns (the change, how many
    districts and tables were touched: their new TVDs in ``new_*``, their ids in ``touched_*``)."""
    n_groups = 0
    n_tables = 0
    d_error = 0.0
    for q in range(count):  # the tables' TVD: their totals do not change
        c = changed[q]
        t = table_of[c]
        total, wanted = max(table_total[t], 1e-12), max(table_target[t], 1e-12)
        before = abs(counts[c] / total - target[c] / wanted)
        after = abs((counts[c] + delta[q]) / total - target[c] / wanted)
        found = _place(touched_tables, n_tables, t)
        if found < 0:
            touched_tables[n_tables] = t
            new_table_tvd[n_tables] = table_tvd[t]
            found = n_tables
            n_tables += 1
        new_table_tvd[found] += (after - before) / 2
    for q in range(count):
        c = changed[q]
        counts[c] += delta[q]
        g = group[c]
        if g >= 0:
            group_total[g] += delta[q]
            if _place(touched_groups, n_groups, g) < 0:
                touched_groups[n_groups] = g
                n_groups += 1
    for r in range(n_groups):
        g = touched_groups[r]
        if counted_group[g]:  # a table beyond reach: its districts are not weighed (nor worked out)
            new_group_tvd[r] = _group_tvd(g, counts, target, members, starts, group_total[g], group_target[g])
            d_error += max(new_group_tvd[r] - tau_group[g], 0.0) - max(group_tvd[g] - tau_group[g], 0.0)
        else:
            new_group_tvd[r] = group_tvd[g]
    for r in range(n_tables):
        t = touched_tables[r]
        if within[t]:
            d_error += max(new_table_tvd[r] - tau_table[t], 0.0) - max(table_tvd[t] - tau_table[t], 0.0)
    return d_error, n_groups, n_tables


@numba.njit(cache=True)
def _place(ids, count, x) -> int:
    """Where ``x`` is among the first ``count`` of ``ids``, or −1."""
    for r in range(count):
        if ids[r] == x:
            return r
    return -1


@numba.njit(cache=True)
def _undo(changed, delta, count, counts, group, group_total) -> None:
    for q in range(count):
        c = changed[q]
        counts[c] -= delta[q]
        if group[c] >= 0:
            group_total[group[c]] -= delta[q]


@numba.njit(cache=True)
def _net(old, new, rows, tables, changed, delta) -> int:
    """The net change of counts when ``rows`` trips leave the cells ``old`` for ``new`` ([row, table]): the cells whose
    count changes (``changed``) and by how much (``delta``); how many."""
    count = 0
    for r in range(rows):
        for t in range(tables):
            for c, d in ((old[r, t], -1.0), (new[r, t], 1.0)):
                found = _place(changed, count, c)
                if found < 0:
                    changed[count] = c
                    delta[count] = d
                    count += 1
                else:
                    delta[found] += d
    kept = 0
    for q in range(count):
        if delta[q] != 0.0:
            changed[kept] = changed[q]
            delta[kept] = delta[q]
            kept += 1
    return kept


@numba.njit(cache=True)
def _finish_pass(order, jitter, parts, lookup, cells, trip, reach, lon, lat, inside, at_start, at, slot, tries,
                 counts, target, group, members, starts, group_total, group_target, group_tvd, tau_group, counted_group,
                 table_of, table_total, table_target, table_tvd, tau_table, within):
    """One pass over the stops in ``order``: each takes the exchange with a stop at a zone of any district (``tries`` of them
    a district), or the move to such a stop's zone, that lowers the error most; (moves, exchanges). A stop's next trip is
    of its tour, so of its mode: ``reach`` of the stop holds for both legs."""
    origin, destination, depart, purpose, mode = trip
    tables = cells.shape[1]
    regions = at_start.shape[0] - 1
    old = np.empty((4, tables), dtype=np.int64)
    new = np.empty((4, tables), dtype=np.int64)
    best_new = np.empty((4, tables), dtype=np.int64)
    changed = np.empty(8 * tables, dtype=np.int64)
    delta = np.empty(8 * tables)
    new_group_tvd = np.empty(8 * tables)
    new_table_tvd = np.empty(8 * tables)
    touched_groups = np.empty(8 * tables, dtype=np.int64)
    touched_tables = np.empty(8 * tables, dtype=np.int64)
    moved = 0
    traded = 0
    for n in range(order.shape[0]):
        i = order[n]
        j = i + 1
        x = destination[i]
        best, best_k, best_rows = -1e-12, -1, 0
        for g in range(regions):
            there = at_start[g + 1] - at_start[g]
            for s in range(min(tries, there)):
                k = at[at_start[g] + (jitter[n] + s * 7919) % there]
                y = destination[k]
                if y == x or k == i or k == j or k + 1 == i:
                    continue
                if leg_km(origin[i], y, lon, lat, inside) > reach[i] or leg_km(y, destination[j], lon, lat, inside) > reach[i]:
                    continue
                for exchange in (False, True):
                    rows = 4 if exchange else 2
                    if exchange and (leg_km(origin[k], x, lon, lat, inside) > reach[k]
                                     or leg_km(x, destination[k + 1], lon, lat, inside) > reach[k]):
                        continue
                    for t in range(tables):
                        old[0, t], old[1, t] = cells[i, t], cells[j, t]
                        new[0, t] = _cell(t, origin[i], y, depart[i], purpose[i], mode[i], parts, lookup)
                        new[1, t] = _cell(t, y, destination[j], depart[j], purpose[j], mode[j], parts, lookup)
                        if exchange:
                            old[2, t], old[3, t] = cells[k, t], cells[k + 1, t]
                            new[2, t] = _cell(t, origin[k], x, depart[k], purpose[k], mode[k], parts, lookup)
                            new[3, t] = _cell(t, x, destination[k + 1], depart[k + 1], purpose[k + 1], mode[k + 1], parts, lookup)
                    count = _net(old, new, rows, tables, changed, delta)
                    if count == 0:
                        continue
                    gain, _, _ = _change(changed, delta, count, counts, target, group, members, starts, group_total, group_target,
                                         group_tvd, tau_group, counted_group, table_of, table_total, table_target, table_tvd,
                                         tau_table, within, new_group_tvd, new_table_tvd, touched_groups, touched_tables)
                    _undo(changed, delta, count, counts, group, group_total)
                    if gain < best:
                        best, best_k, best_rows = gain, k, rows
                        best_new[:rows] = new[:rows]
        if best_k < 0:
            continue
        k = best_k
        y = destination[k]
        for t in range(tables):
            old[0, t], old[1, t] = cells[i, t], cells[j, t]
            if best_rows == 4:
                old[2, t], old[3, t] = cells[k, t], cells[k + 1, t]
        count = _net(old, best_new, best_rows, tables, changed, delta)
        _, n_groups, n_tables = _change(changed, delta, count, counts, target, group, members, starts, group_total, group_target,
                                        group_tvd, tau_group, counted_group, table_of, table_total, table_target, table_tvd,
                                        tau_table, within, new_group_tvd, new_table_tvd, touched_groups, touched_tables)
        for r in range(n_groups):
            group_tvd[touched_groups[r]] = new_group_tvd[r]
        for r in range(n_tables):
            table_tvd[touched_tables[r]] = new_table_tvd[r]
        cells[i] = best_new[0]
        cells[j] = best_new[1]
        destination[i], origin[j] = y, y
        if best_rows == 4:
            cells[k] = best_new[2]
            cells[k + 1] = best_new[3]
            destination[k], origin[k + 1] = x, x
            sx, sk = slot[i], slot[k]  # the two stops trade places in the index by district
            at[sx], at[sk] = k, i
            slot[i], slot[k] = sk, sx
            traded += 1
        else:
            moved += 1  # the index by district keeps the stop where it was: a partner's zone is read afresh each time
    return moved, traded
