"""A household spec's targets read as controls: tables of households or persons, per zone or for the region.

A per-zone table is a joint table over the zone column (its file has the spec's ``zones`` column);
its region counts are the sum over zones. Every problem is found here, before any LLM call: unknown
variables (a person table naming a household variable that does not exist), zones that disagree on
their household or person totals, and persons that the households' sizes cannot hold.

:func:`incidence` says what one household of each candidate contributes to every control cell, which
is what list balancing (:mod:`llmsynthor.fitting.balance`) needs; :func:`counts` counts linked
households and persons on a table's cells (evaluation). Knows tables and frames, not LLMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse

from ...core.errors import Problem, SpecError
from ...core.levels import Level, LevelTable, Linked, chain, level_counts
from ...core.levels import incidence as level_incidence
from ...core.rules import parse_condition, parse_rule
from ...core.schema import CategoricalVariable
from ...core.tables import Targets, TargetTable, locate_cell, table_offsets
from ...declarations.targets import TableContext, read_frame, read_table
from ...fitting.integerize import round_to_total
from .spec import UNREAD_TABLE_FIELDS, HouseholdSpec

HOUSEHOLD = "household"  # the column of a persons frame that names its household (a candidate's row)
HOUSEHOLDS, PERSONS = LEVELS = chain(Level("households", id="household_id"),
                                        Level("persons", id="person_id", parent="households", link=HOUSEHOLD))
TOTAL_AGREEMENT = 0.005  # two tables of one level agree on a total within this share


@dataclass(frozen=True)
class HouseholdTargets:
    """Every control of a household run."""

    tables: tuple[LevelTable, ...]
    zones: tuple[str, ...]  # () when no table is given per zone
    households: int  # in the region
    persons: float
    zone_households: np.ndarray | None  # [zone] integers, summing to ``households``

    def __iter__(self):
        return iter(self.tables)

    def offsets(self) -> np.ndarray:
        """Where each table's cells start in the flat vector of controls (and the total at the end)."""
        return table_offsets(self.tables)

    def region_vector(self) -> np.ndarray:
        return np.concatenate([t.region.ravel() for t in self.tables])

    def zone_vectors(self) -> np.ndarray:
        """[zone, control]: the zoned tables' counts, NaN for controls no zone table gives."""
        out = np.full((len(self.zones), int(self.offsets()[-1])), np.nan)
        for t, start in zip(self.tables, self.offsets()):
            if t.zones is not None:
                out[:, start:start + t.region.size] = t.zones.reshape(len(self.zones), -1)
        return out

    def importance(self) -> np.ndarray:
        return np.concatenate([np.full(t.region.size, t.weight) for t in self.tables])


def level_targets(spec: HouseholdSpec, targets: HouseholdTargets, level: Literal["households", "persons"]) -> Targets:
    """The region tables of one level as the flat targets of its records (households over the household
    variables and derived counts; persons over theirs and their household's): what the pairwise prior
    and its constraint suggestions work on for that level."""
    schema = spec.household_schema if level == HOUSEHOLDS.name else spec.joined_schema
    tables = tuple(TargetTable(t.name, t.axes, t.region.astype(float), source=t.source)
                   for t in targets.tables if t.level == level)
    n = targets.households if level == HOUSEHOLDS.name else int(round(targets.persons))
    return Targets(n=n, tables=tables, schema=schema)


def check_references(spec: HouseholdSpec) -> None:
    """The parts of a household spec written in the rule language, and the tables' variables, checked
    against the schemas: one SpecError listing every problem."""
    problems: list[Problem] = []
    where = spec.source

    def attempt(fn, *args):
        try:
            fn(*args)
        except SpecError as exc:
            problems.extend(exc.problems)

    attempt(parse_condition, spec.person.reference, spec.person_schema, f"{where}: field 'person.reference'")
    for name, cond in spec.derived.items():
        attempt(parse_condition, cond, spec.person_schema, f"{where}: field 'derived.{name}'")
    for i, text in enumerate(spec.rules.households):
        attempt(parse_rule, text, spec.household_schema, f"{where}: rules.households[{i}]")
    for i, text in enumerate(spec.rules.persons):
        attempt(parse_rule, text, spec.joined_schema, f"{where}: rules.persons[{i}]")
    for i, text in enumerate(spec.constraints.households):
        attempt(parse_rule, text, spec.household_schema, f"{where}: constraints.households[{i}]")
    for i, text in enumerate(spec.constraints.persons):
        attempt(parse_rule, text, spec.joined_schema, f"{where}: constraints.persons[{i}]")
    known = spec.joined_schema.variables
    for i, table in enumerate(spec.targets):
        at = f"{where}: targets[{i}] ('{table.label}')"
        for v in [*table.variables, *([table.of] if table.of else [])]:
            if v not in known:
                problems.append(Problem(at, f"unknown variable {v!r}: not a household variable "
                                            f"({', '.join(spec.household.variables)}), a derived count "
                                            f"({', '.join(spec.derived) or 'none declared'}) or a person variable "
                                            f"({', '.join(spec.person.variables)})"))
        if table.statistic != "count":
            problems.append(Problem(at, "household specs take tables of counts only (sum_of / mean_of are not supported yet)"))
        for name in UNREAD_TABLE_FIELDS:
            if getattr(table, name) is not None:
                problems.append(Problem(at, f"'{name}' is not read in a household spec (every table is met within "
                                            "synthesis.tolerance_tvd); leave it out"))
        person_vars = [v for v in table.variables if v in spec.person.variables]
        if table.count == HOUSEHOLDS.name and person_vars:
            problems.append(Problem(at, f"count: households, but {person_vars[0]!r} is a person variable; count persons, "
                                        "or count households by a derived variable"))
    if problems:
        raise SpecError(problems)


def _zone_order(values: list[str]) -> tuple[str, ...]:
    """Zones in numeric order when every label is a number, else as strings."""
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(sorted(values))


def load_controls(spec: HouseholdSpec) -> HouseholdTargets:
    """Read every table of ``spec`` as controls; one SpecError naming each problem found."""
    check_references(spec)
    flat = TableContext(spec.joined_schema.variables, spec.source, spec.base_dir)
    zoned: dict[int, bool] = {}
    zone_values: list[str] = []
    problems: list[Problem] = []
    for i, table in enumerate(spec.targets):
        at = f"{spec.source}: targets[{i}] ('{table.label}')"
        try:
            frame = read_frame(table, flat, at)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        zoned[i] = spec.zones is not None and spec.zones in frame.columns
        if zoned[i]:
            zone_values += [v for v in dict.fromkeys(frame[spec.zones].str.strip()) if v not in zone_values]
    if problems:
        raise SpecError(problems)
    zones = _zone_order(zone_values)
    if zones:
        flat = TableContext({spec.zones: CategoricalVariable(values=list(zones)), **flat.variables}, spec.source, spec.base_dir)
    tables: list[LevelTable] = []
    for i, table in enumerate(spec.targets):
        read = table.model_copy(update={"variables": [spec.zones, *table.variables], "name": table.label}) if zoned[i] else table
        try:
            axes, dense, kind, where = read_table(read, i, flat)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        level = spec.level_of(table)
        if zoned[i]:
            if kind == "share":
                problems.append(Problem(where, "a per-zone table must give counts, not shares (a share does not say how "
                                               "many households a zone has)"))
                continue
            tables.append(LevelTable(table.label, level, axes[1:], dense.sum(axis=0), dense, table.weight, where))
        else:
            tables.append(LevelTable(table.label, level, axes, dense, None, table.weight, where))
    if problems:
        raise SpecError(problems)
    return _totals(spec, tables, zones)


def _agreeing_total(tables: list[LevelTable], level: str, zones: tuple[str, ...]) -> tuple[float | None, np.ndarray | None]:
    """The region total of ``level`` from its count tables, and the per-zone totals from its zoned
    tables; SpecError when two disagree (naming both, and the zone)."""
    region = [(t, float(t.region.sum())) for t in tables if t.level == level and not _is_share(t)]
    problems = []
    for (a, x), (b, y) in zip(region, region[1:]):
        if abs(x - y) > TOTAL_AGREEMENT * max(x, y):
            problems.append(Problem(f"{a.source} and {b.source}", f"'{a.name}' counts {x:,.0f} {level} and '{b.name}' "
                                                                  f"{y:,.0f}; expected the same total"))
    zoned = [t for t in tables if t.level == level and t.zones is not None]
    per_zone = None
    if zoned:
        per_zone = zoned[0].zones.reshape(len(zones), -1).sum(axis=1)
        for other in zoned[1:]:
            theirs = other.zones.reshape(len(zones), -1).sum(axis=1)
            bad = np.flatnonzero(np.abs(theirs - per_zone) > np.maximum(TOTAL_AGREEMENT * np.maximum(theirs, per_zone), 0.5))
            if bad.size:
                z = bad[0]
                problems.append(Problem(f"{zoned[0].source} and {other.source}",
                                        f"zone {zones[z]}: '{zoned[0].name}' counts {per_zone[z]:,.0f} {level} and "
                                        f"'{other.name}' {theirs[z]:,.0f}; expected the same total in every zone "
                                        f"({bad.size} zone(s) disagree)"))
    if problems:
        raise SpecError(problems)
    return (region[0][1] if region else None), per_zone


def _is_share(table: LevelTable) -> bool:
    return table.zones is None and abs(float(table.region.sum()) - 1.0) < 1e-3


def _totals(spec: HouseholdSpec, tables: list[LevelTable], zones: tuple[str, ...]) -> HouseholdTargets:
    households, zone_households = _agreeing_total(tables, HOUSEHOLDS.name, zones)
    persons, zone_persons = _agreeing_total(tables, PERSONS.name, zones)
    if households is None:
        if spec.n_households is None:
            raise SpecError(Problem(f"{spec.source}: field 'targets'", "no table counts households; expected at least one "
                                                                       "(e.g. households by size), or set n_households"))
        households = float(spec.n_households)
    if persons is None:
        raise SpecError(Problem(f"{spec.source}: field 'targets'", "no table counts persons; expected at least one (e.g. "
                                                                   "persons by age)"))
    _check_sizes(spec, tables, zones, zone_households, zone_persons)
    scale = 1.0 if spec.n_households is None else spec.n_households / households
    total = int(round(households * scale))
    scaled = []
    for t in tables:
        k = (total if t.level == HOUSEHOLDS.name else persons * scale) / float(t.region.sum()) if _is_share(t) else scale
        scaled.append(LevelTable(t.name, t.level, t.axes, t.region * k, None if t.zones is None else t.zones * k, t.weight, t.source))
    if zone_households is not None:
        zone_households = round_to_total(zone_households * scale, total)
    return HouseholdTargets(tuple(scaled), zones, total, persons * scale, zone_households)


def _check_sizes(spec: HouseholdSpec, tables: list[LevelTable], zones, zone_households, zone_persons) -> None:
    """Persons must fit the households' sizes: between Σ households × smallest size of their bin and Σ × largest."""
    size = spec.household.size
    by_size = next((t for t in tables if t.level == HOUSEHOLDS.name and t.variables == [size] and not _is_share(t)), None)
    persons = [t for t in tables if t.level == PERSONS.name and not _is_share(t)]
    if by_size is None or not persons:
        return
    axis = by_size.axes[0]
    lo = axis.edges[:-1] if axis.is_numeric else np.array([float(v) for v in axis.labels])
    hi = np.append(axis.edges[1:-1] - 1, spec.size_variable.max) if axis.is_numeric else lo
    if by_size.zones is not None and zone_persons is not None and persons[0].zones is not None:
        counts, people, names = by_size.zones.reshape(len(zones), -1), zone_persons, [f"zone {z}" for z in zones]
    else:
        counts, people, names = by_size.region[None, :], np.array([persons[0].region.sum()]), ["the region"]
    least, most = counts @ lo, counts @ hi
    bad = np.flatnonzero((people < least - 0.5) | (people > most + 0.5))
    if bad.size:
        i = bad[0]
        raise SpecError(Problem(f"{by_size.source} and {persons[0].source}",
                                f"{names[i]}: '{persons[0].name}' counts {people[i]:,.0f} persons, but the {counts[i].sum():,.0f} "
                                f"households of '{by_size.name}' hold between {least[i]:,.0f} and {most[i]:,.0f} by their "
                                f"sizes; the member counts disagree with the sizes ({bad.size} place(s))"))


# ---- control cells named


def control_cells(targets: HouseholdTargets, indices) -> list[dict]:
    """The control cells at ``indices`` of the flat vector of controls, each named as its table names it:
    ``table``, ``level``, ``cell`` (variable -> the table's own label), ``target`` (the region's count),
    ``given`` ("per zone" or "region") and, for a per-zone table, ``zones``: the zones whose target in
    the cell is positive."""
    offsets = targets.offsets()
    out = []
    for j in np.asarray(indices, dtype=np.int64).ravel():
        t, index = locate_cell(targets.tables, j, offsets)
        table = targets.tables[t]
        flat = int(j - offsets[t])
        cell = {"table": table.name, "level": table.level,
                "cell": {a.variable: a.labels[i] for a, i in zip(table.axes, index)},
                "target": float(table.region.ravel()[flat]), "given": "per zone" if table.zones is not None else "region"}
        if table.zones is not None:
            wanted = table.zones.reshape(len(targets.zones), -1)[:, flat]
            cell["zones"] = [targets.zones[z] for z in np.flatnonzero(wanted > 0)]
        out.append(cell)
    return out


SHOWN_ZONES = 5  # zones named with a per-zone cell, the rest counted
SHOWN_CELLS = 10  # cells named in a printed list, the rest counted (the manifest holds them all)


def describe_cells(cells: list[dict], shown: int = SHOWN_CELLS) -> list[str]:
    """One line per cell (:func:`describe_cell`), the first ``shown``, then ``… and N more``."""
    lines = [describe_cell(c) for c in cells[:shown]]
    return lines + ([f"… and {len(cells) - shown} more"] if len(cells) > shown else [])


def cell_parts(cell: dict) -> tuple[str, str, str]:
    """(``size=[6,12]``, ``12 households``, ``per zone (3 zones: 2101, 2102, 2112)`` or ``region``) of
    one of :func:`control_cells`."""
    target = cell["target"]
    amount = f"{target:,.0f}" if abs(target - round(target)) < 1e-9 else f"{target:,.2f}"
    where = "region"
    if cell["given"] == "per zone":
        zones = cell.get("zones", [])
        named = ", ".join(zones[:SHOWN_ZONES]) + (f", … {len(zones) - SHOWN_ZONES} more" if len(zones) > SHOWN_ZONES else "")
        where = f"per zone ({len(zones)} zone{'s' if len(zones) != 1 else ''}: {named})"
    return ", ".join(f"{variable}={label}" for variable, label in cell["cell"].items()), f"{amount} {cell['level']}", where


def describe_cell(cell: dict) -> str:
    """``size_by_zone: size=[6,12] — target 12 households, per zone (3 zones: 2101, 2102, 2112)``."""
    pairs, target, where = cell_parts(cell)
    return f"{cell['table']}: {pairs} — target {target}, {where}"


# ---- candidates on the controls' cells


def linked(households: pd.DataFrame, persons: pd.DataFrame) -> Linked:
    """Households and their persons as linked frames (``persons[HOUSEHOLD]`` is the household's row)."""
    return Linked(LEVELS, {HOUSEHOLDS.name: households, PERSONS.name: persons})


def joined(households: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """Every person with its household's variables."""
    return linked(households, persons).joined(PERSONS.name)


def incidence(targets: HouseholdTargets, households: pd.DataFrame, persons: pd.DataFrame) -> sparse.csr_matrix:
    """[household, control]: what one household of each row contributes to every control cell — 1 in
    its cell of a household table, the number of its members in each cell of a person table."""
    return level_incidence(targets.tables, linked(households, persons))


def counts(table: LevelTable, households: pd.DataFrame, persons: pd.DataFrame, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts of households (or persons) on ``table``'s cells, households weighted by ``weights``."""
    return level_counts(table, linked(households, persons), weights)
