"""A trips spec's files read and checked together, before any model loads: the zone table, the
persons, every target table as a table of its level, and whether they agree with one another.

Every problem is named with its file, column, row and value (one :class:`SpecError` listing all
that can be found at once): a person whose home zone the zone table lacks, a table naming a zone
or district the zone table lacks (the one table reader's message), tables of persons that do not
count the persons given, tables of trips that disagree on how many trips there are, or a trip total
the trips-per-person tables cannot give.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ...core.errors import Problem, SpecError
from ...core.levels import Level, LevelTable, chain
from ...core.schema import Schema
from ...core.tables import Listed
from ...declarations.rows import read_rows, repeated_ids
from ...declarations.targets import TableContext, read_cells
from ...declarations.zones import Zones, read_zones
from .spec import TRIPS_PER_PERSON, TripsSpec

PERSONS, TRIPS = LEVELS = chain(Level("persons", id="person_id"), Level("trips", parent="persons", link="day", id="trip_id"))
AGREE = 0.01  # tables of one level must agree on its total within 1 %
UNREAD_TABLE_FIELDS = ("sum_of", "mean_of", "tolerance_jsd", "tolerance")  # fields of a table a trips spec refuses
SPARSE_CELLS = 100_000  # a table of trips with more cells than this (zones × zones) is held on the cells it lists
SIDES = (("origin_district", "origin"), ("origin", "origin"), ("destination_district", "destination"),
         ("destination", "destination"))  # a table's district side: where its trips leave from, else where they go


@dataclass(frozen=True)
class TripInputs:
    """What a trips run starts from: zones, persons (``home`` is each person's zone row), the tables."""

    zones: Zones
    persons: pd.DataFrame  # the persons file's columns as strings, plus 'home_row'
    schema: Schema
    tables: tuple[LevelTable, ...]
    trips: float  # how many trips the tables of trips count
    tolerance: tuple[float, ...]  # each table's TVD tolerance, in the tables' order (its own, else the spec's)
    households: pd.DataFrame | None = None  # the households file as read (strings), when the spec gives one

    def of_level(self, level: str) -> list[LevelTable]:
        return [t for t in self.tables if t.level == level]


def read_persons(spec: TripsSpec, zones: Zones, households: pd.DataFrame | None = None) -> pd.DataFrame:
    """The persons file, checked: the id, home and variable columns present, ids unique, every
    home zone in the zone table and every variable's value declared; with ``households``
    (:func:`read_households`) every person's household among them and its variables joined."""
    p = spec.persons
    path = p.file if p.file.is_absolute() else spec.base_dir / p.file
    where = f"{spec.source}: persons ({path})"
    wanted = {"id": p.id, "home": p.home, **({"household": p.household} if p.household else {}), **{v: v for v in p.variables}}
    frame = read_rows(path, where, "person", wanted)
    problems = repeated_ids(frame, p.id, where, "person")
    home = zones.index.get_indexer(pd.Index(frame[p.home]))
    if (home < 0).any():
        bad = np.flatnonzero(home < 0)
        problems.append(Problem(where, f"column {p.home!r} (home), row {bad[0] + 2}: zone {frame[p.home].iloc[bad[0]]!r} is not in "
                                       f"the zone table ({bad.size} such row(s)); expected a zone id of {spec.zones.file}"))
    _check_values(frame, p.variables, where, problems)
    if households is not None and not problems:
        frame = _join_households(spec, households, frame, where, problems)
    if problems:
        raise SpecError(problems)
    return frame.assign(home_row=home)


def _check_values(frame: pd.DataFrame, variables: dict, where: str, problems: list[Problem]) -> None:
    for name, var in variables.items():
        unknown = ~frame[name].isin(var.values)
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            problems.append(Problem(where, f"column {name!r}, row {row + 2}: {frame[name].iloc[row]!r}; expected one of "
                                           f"{var.values} ({int(unknown.sum())} such row(s))"))


def read_households(spec: TripsSpec) -> pd.DataFrame:
    """The households file, checked: the id and variable columns present, ids unique, every variable's value declared."""
    h = spec.households
    path = h.file if h.file.is_absolute() else spec.base_dir / h.file
    where = f"{spec.source}: households ({path})"
    frame = read_rows(path, where, "household", {"id": h.id, **{v: v for v in h.variables}})
    problems = repeated_ids(frame, h.id, where, "household")
    _check_values(frame, h.variables, where, problems)
    if problems:
        raise SpecError(problems)
    return frame


def _join_households(spec: TripsSpec, households: pd.DataFrame, persons: pd.DataFrame, where: str,
                     problems: list[Problem]) -> pd.DataFrame:
    """The persons with their household's variables; every person's household must be in the households file."""
    households = households.set_index(spec.households.id)
    column = spec.persons.household
    found = households.index.get_indexer(pd.Index(persons[column]))
    if (found < 0).any():
        bad = np.flatnonzero(found < 0)
        problems.append(Problem(where, f"column {column!r} (household), row {bad[0] + 2}: household {persons[column].iloc[bad[0]]!r} "
                                       f"is not in the households file {spec.households.file} ({bad.size} such row(s)); expected "
                                       "every person's household to be a row of it"))
        return persons
    for name in spec.households.variables:
        persons[name] = households[name].to_numpy()[found]
    return persons


def _districts(zones: Zones) -> list[str] | None:
    return None if zones.district is None else sorted(pd.unique(zones.district.astype(str)).tolist())


def read_inputs(spec: TripsSpec) -> TripInputs:
    """Zones, persons and tables of ``spec``, each checked, then checked against one another."""
    zones = read_zones(spec.zones, spec.base_dir, spec.source)
    if zones.lon is None or zones.lat is None:
        raise SpecError(Problem(f"{spec.source}: zones ({spec.zones.file})", "no centroids: a trips run needs the zones' "
                                "'lon' and 'lat' columns (degrees) for distances and the MATSim plans; name them in zones:"))
    households = read_households(spec) if spec.households is not None else None
    persons = read_persons(spec, zones, households)
    schema = spec.schema_with(zones.ids.tolist(), _districts(zones))
    context = TableContext(schema.variables, spec.source, spec.base_dir)
    problems: list[Problem] = []
    read = []
    for i, table in enumerate(spec.targets):
        unread = [name for name in UNREAD_TABLE_FIELDS if getattr(table, name) is not None]
        if unread:
            problems.append(Problem(f"{spec.source}: targets[{i}] ({table.label})", f"{', '.join(map(repr, unread))}: not read in a "
                                    "trips spec, which takes tables of counts or shares, each met within its tolerance_tvd; leave "
                                    f"{'it' if len(unread) == 1 else 'them'} out"))
            continue
        named = [v for v in table.variables if v in ("origin_district", "destination_district")]
        if named and zones.district is None:
            problems.append(Problem(f"{spec.source}: targets[{i}] ({table.label})", f"names {', '.join(named)}, but the zone table "
                                    "gives no districts; add the column of districts to zones: (district: <column>)"))
            continue
        own = [v for v in table.variables if v in spec.traveller_variables or v == TRIPS_PER_PERSON]
        if spec.counts_trips(table) and own:
            problems.append(Problem(f"{spec.source}: targets[{i}] ({table.label})", f"crosses trips with {', '.join(own)}; a table "
                                    "of trips may name origin, destination, their districts, depart, purpose and mode, a table of "
                                    "persons their variables and trips — not both (not supported yet)"))
            continue
        try:
            axes, flat, values, kind, where = read_cells(table, i, context)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        read.append((_placed(table, axes, flat, values, where, TRIPS.name if spec.counts_trips(table) else PERSONS.name), kind))
        if "depart" in table.variables:
            _check_hours(spec, read[-1][0], problems)
    if not any(t.level == TRIPS.name for t, _ in read) and not problems:
        problems.append(Problem(f"{spec.source}: field 'targets'", "no table of trips; expected at least one (origin, destination, "
                                "their districts, depart, purpose or mode): tables of persons alone do not say where anyone goes"))
    if problems:
        raise SpecError(problems)
    _match_persons(read, persons, problems)
    tables, trips = _scaled(read, len(persons), problems)
    if problems:
        raise SpecError(problems)
    tolerance = tuple(float(table.tolerance_tvd or spec.tolerance_tvd) for table in spec.targets)  # every one read: no problems
    return TripInputs(zones, persons, schema, tables, trips, tolerance, households)


def district_side(variables: list[str]) -> tuple[str, str] | None:
    """A table's district side (:data:`SIDES`): the variable naming where its trips leave from, else go to,
    and "origin" or "destination"; None for a table naming neither zones nor districts."""
    return next(((v, side) for v, side in SIDES if v in variables), None)


def cells_in_words(table: LevelTable) -> str:
    """How many cells a table has: "5,780"; a sparse table's, "12,000 listed of 10,570,580"."""
    if table.listed is None:
        return f"{table.cells:,}"
    return f"{len(table.listed.keys):,} listed of {int(np.prod(table.shape, dtype=float)):,}"


def _placed(table, axes, flat: np.ndarray, values: np.ndarray, where: str, level: str) -> LevelTable:
    """A table's cells as read, on every cell of its axes — or, a table of trips with more than
    :data:`SPARSE_CELLS` cells, on those it lists and one cell elsewhere a value of its district side
    (:data:`SIDES`; else its first axis)."""
    shape = tuple(a.size for a in axes)
    if level == TRIPS.name and np.prod(shape, dtype=float) > SPARSE_CELLS:
        side = district_side(table.variables)
        by = table.variables.index(side[0]) if side else 0
        listed = Listed(shape, flat, by)
        return LevelTable(table.label, level, tuple(axes), np.r_[values, np.zeros(shape[by])], None, table.weight, where, listed)
    dense = np.zeros(int(np.prod(shape)))
    dense[flat] = values
    return LevelTable(table.label, level, tuple(axes), dense.reshape(shape), None, table.weight, where)


def _check_hours(spec: TripsSpec, table: LevelTable, problems: list[Problem]) -> None:
    """Trips counted in hours outside first_hour … last_hour could never be met."""
    axis = table.axes[table.variables.index("depart")]
    edges = axis.edges
    outside = (edges[1:] - 1 < spec.trips.first_hour) | (edges[:-1] > spec.trips.last_hour)  # integer bins [a,b) hold a … b-1
    counted = table.margin(["depart"])
    if (counted[outside] > 0).any():
        bin_ = axis.labels[int(np.flatnonzero(outside & (counted > 0))[0])]
        problems.append(Problem(table.source, f"counts {counted[outside].sum():,.0f} trips departing outside first_hour "
                                              f"{spec.trips.first_hour} … last_hour {spec.trips.last_hour} (e.g. in {bin_}); "
                                              "expected trips within the spec's hours"))


def _match_persons(read: list, persons: pd.DataFrame, problems: list[Problem]) -> None:
    """A table of persons over their declared variables must count the persons file's own mix (the
    persons are given: another mix could not be met)."""
    for table, _kind in read:
        if table.level != PERSONS.name:
            continue
        names = [v for v in table.variables if v != TRIPS_PER_PERSON]
        if not names:
            continue
        where = table.source
        margin = table.margin(names)
        margin = margin / max(margin.sum(), 1e-12) * len(persons)
        given = persons.groupby(names).size()
        labels = [table.axes[table.variables.index(v)].labels for v in names]
        have = given.reindex(pd.MultiIndex.from_product(labels, names=names) if len(names) > 1 else pd.Index(labels[0], name=names[0]),
                             fill_value=0).to_numpy(dtype=float).reshape(margin.shape)
        gap = np.abs(margin - have)
        if gap.sum() / 2 > AGREE * len(persons):
            worst = np.unravel_index(int(np.argmax(gap)), gap.shape)
            cell = ", ".join(f"{n} = {lab[k]}" for n, lab, k in zip(names, labels, worst))
            problems.append(Problem(where, f"counts {margin[worst]:,.0f} persons with {cell}; the persons file has {have[worst]:,.0f} "
                                           f"({gap.sum() / 2:,.0f} persons placed otherwise in all). Expected the persons' own "
                                           "mix: their days are synthesized, not who they are"))


def _scaled(read: list, persons: int, problems: list[Problem]) -> tuple[tuple[LevelTable, ...], float]:
    """The tables as counts: persons' tables must count the persons given; trips' tables must agree on
    the number of trips, which the persons' trips-per-person tables must be able to give; a table of
    shares takes its level's total."""
    counted = {PERSONS.name: float(persons)}
    trip_totals = [(float(t.region.sum()), t.source) for t, kind in read if t.level == TRIPS.name and kind == "count"]
    for table, kind in read:
        if table.level == PERSONS.name and kind == "count" and abs(table.region.sum() - persons) > AGREE * persons:
            problems.append(Problem(table.source, f"counts {table.region.sum():,.0f} persons; the persons file has {persons:,}. Expected "
                                                  "the tables of persons to count the persons whose days are synthesized"))
    if trip_totals:
        first, first_where = trip_totals[0]
        for total, where in trip_totals[1:]:
            if abs(total - first) > AGREE * first:
                problems.append(Problem(where, f"counts {total:,.0f} trips; {first_where} counts {first:,.0f}. Expected every "
                                               "table of trips to count the same trips (within 1 %)"))
        counted[TRIPS.name] = first
    else:
        first = next(t.source for t, _ in read if t.level == TRIPS.name)
        problems.append(Problem(first, "every table of trips gives shares; expected at least one to give counts (how many trips)"))
    for table, _kind in read:
        if table.level == PERSONS.name and TRIPS_PER_PERSON in table.variables and TRIPS.name in counted:
            axis = table.axes[table.variables.index(TRIPS_PER_PERSON)]
            margin = table.margin([TRIPS_PER_PERSON])
            scale = persons / max(table.region.sum(), 1e-12)
            low = float(margin @ axis.edges[:-1]) * scale
            high = float(margin @ (axis.edges[1:] - 1)) * scale  # integer bins [a,b) hold a … b-1
            if not low - AGREE * low <= counted[TRIPS.name] <= high + AGREE * high:
                problems.append(Problem(table.source, f"its persons make {low:,.0f} to {high:,.0f} trips; the tables of trips count "
                                                      f"{counted[TRIPS.name]:,.0f}. Expected trips per person to agree with the trips counted"))
    out = tuple(replace(t, region=t.region * (counted.get(t.level, float(t.region.sum())) / max(t.region.sum(), 1e-12)))
                for t, _kind in read)
    return out, counted.get(TRIPS.name, 0.0)
