"""The methods llmsynthor's households are compared with, each giving linked (households, persons) frames.

Every baseline returns the output format of llmsynthor's households (PopulationSim's): households with
``household_id``, ``zone`` (when the targets have zones), every household variable and the derived
counts (counted from the members); persons with ``household_id``, ``person_id``, ``member`` (0 the
reference person) and every person variable. All are seeded.

* :func:`sample` — a real 5 % sample of households with their persons, drawn in every zone and each
  household repeated (its weight expanded) until the zone has its true number of households: the
  floor, and PopulationSim's seed. Sees micro-data.
* :func:`ipf_households` — "IPF over households with persons drawn independently per household (macro
  only)": the joint of zone × the household variables (the finest bins the household tables give)
  fitted by IPF (:func:`rake`, uniform seed) to every household table over household variables only, per
  zone where the table is per zone; each zone's households are its fitted cells integerized to the
  zone's exact count (unbiased rounding: each cell its floor or one more, with
  probability its fractional part). Tables over derived counts (workers, children) cannot be
  used: the members are drawn afterwards, independently. Each household gets as many members as its
  size; every member's variables are drawn from the person tables at region level — the largest
  tables over person variables only as joints (age × sex × employment), the other variables from
  their margins, each block independent of the others and of the household — the first member from
  the cells meeting ``person.reference``, the others from the cells that do not.
* :func:`independent` — every household variable drawn from its own margin, every person variable
  from its own margin (the first member, again, from the reference cells); households per zone exact.
  Knows nothing of any joint.

Numeric values are uniform inside their bin, except the household size in a bin of several sizes
("5+"): a truncated geometric whose decay makes the zone's persons add up to its person tables' total.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from llmsynthor.core.levels import LevelTable
from llmsynthor.core.rules import holds, parse_condition
from llmsynthor.core.schema import CategoricalVariable, IntegerVariable
from llmsynthor.core.tables import Axis
from llmsynthor.shapes.households.controls import HouseholdTargets
from llmsynthor.shapes.households.spec import HouseholdSpec

ID, PERSON_ID, MEMBER, ZONE = "household_id", "person_id", "member", "zone"


# ---- the linked output -----------------------------------------------------------------------------


def linked(spec: HouseholdSpec, households: pd.DataFrame, persons: pd.DataFrame, owner: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The output format from household rows and persons whose ``owner`` is their household's row (members
    in order, the reference person first): ids from 1, member numbers, derived counts counted."""
    households = households.reset_index(drop=True).copy()
    households.insert(0, ID, np.arange(1, len(households) + 1))
    order = np.argsort(owner, kind="stable")
    persons, owner = persons.iloc[order].reset_index(drop=True), owner[order]
    starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(households)))[:-1]]
    persons.insert(0, ID, owner + 1)
    persons.insert(1, PERSON_ID, np.arange(1, len(persons) + 1))
    persons.insert(2, MEMBER, np.arange(len(persons)) - starts[owner])
    for name, condition in spec.derived.items():
        meets = holds(parse_condition(condition, spec.person_schema), persons)
        households[name] = np.bincount(owner[meets], minlength=len(households)).astype(int)
    return households, persons


# ---- the real sample ---------------------------------------------------------------------------------


def seed_sample(truth: tuple[pd.DataFrame, pd.DataFrame], share: float = 0.05, seed: int = 0,
                zone: str = ZONE) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``share`` of the true households of every zone (at least one) with their persons (members in order),
    and each drawn household's weight: how many households of its zone it stands for (⌊n/k⌋, one more for
    a random n mod k of them; the weights of a zone add up to its households)."""
    households, persons = truth
    persons = persons.sort_values([ID, MEMBER] if MEMBER in persons.columns else [ID], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    groups = households.groupby(zone, sort=True).indices if zone in households.columns else {None: np.arange(len(households))}
    picked, weights = [], []
    for rows in groups.values():
        n = len(rows)
        k = max(1, int(round(share * n)))
        picked.append(rng.choice(rows, size=k, replace=False))
        copies = np.full(k, n // k)
        copies[rng.choice(k, size=n % k, replace=False)] += 1
        weights.append(copies)
    picked = np.concatenate(picked)
    drawn = households.iloc[picked].reset_index(drop=True)
    return drawn, persons[persons[ID].isin(drawn[ID])].reset_index(drop=True), np.concatenate(weights)


def expand(households: pd.DataFrame, persons: pd.DataFrame, copies: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Household ``i`` repeated ``copies[i]`` times with its persons, ids renumbered from 1."""
    rows = np.repeat(np.arange(len(households)), copies)
    out = households.iloc[rows].reset_index(drop=True)
    members = persons.groupby(ID).indices
    listed = [members.get(i, np.zeros(0, dtype=int)) for i in out[ID]]
    owner = np.repeat(np.arange(len(out)), [len(r) for r in listed])
    people = persons.iloc[np.concatenate(listed)].reset_index(drop=True) if listed else persons.iloc[:0].copy()
    new_ids = np.arange(1, len(out) + 1)
    people[ID] = new_ids[owner]
    people[PERSON_ID] = np.arange(1, len(people) + 1)
    out[ID] = new_ids
    return out, people[[ID, PERSON_ID, *[c for c in people.columns if c not in (ID, PERSON_ID)]]]


def sample(truth: tuple[pd.DataFrame, pd.DataFrame], share: float = 0.05, seed: int = 0, zone: str = ZONE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``share`` of the true households (at least one per zone) with their persons, each repeated until its
    zone has its true number of households (weights expanded: ⌊n/k⌋ copies each, one more for a random
    n mod k of them)."""
    households, persons, weights = seed_sample(truth, share, seed, zone)
    return expand(households, persons, weights)


# ---- values from cells ----------------------------------------------------------------------------------


def _axes(targets: HouseholdTargets, level: str, names) -> dict[str, Axis]:
    """The finest axis the tables of ``level`` give each variable of ``names``."""
    best: dict[str, Axis] = {}
    for table in targets:
        if table.level != level:
            continue
        for axis in table.axes:
            if axis.variable in names and (axis.variable not in best or axis.size > best[axis.variable].size):
                best[axis.variable] = axis
    return best


def _whole_axis(name: str, var) -> Axis:
    if isinstance(var, CategoricalVariable):
        return Axis(name, tuple(var.values))
    return Axis(name, ("all",), np.array([var.min, var.top], dtype=float))


def _values(axis: Axis, idx: np.ndarray, var, rng: np.random.Generator) -> np.ndarray:
    """Labels, or numbers uniform inside their bins (whole numbers for integer variables)."""
    if not axis.is_numeric:
        return np.asarray(axis.labels, dtype=object)[idx]
    lo, hi = axis.edges[idx], axis.edges[idx + 1]
    x = lo + rng.random(idx.size) * (hi - lo)
    return np.floor(x).astype(int) if var.type == "integer" else x


def _sizes(axis: Axis, idx: np.ndarray, persons: float, rng: np.random.Generator) -> np.ndarray:
    """Household sizes in their bins: one value per single-size bin; in wider bins a truncated geometric
    p(k) ∝ r^(k − lo), r chosen so that the sizes add up to ``persons`` (as near as the bins allow)."""
    lo, hi = axis.edges[idx].astype(int), axis.edges[idx + 1].astype(int) - 1
    wide = hi > lo
    sizes = lo.copy()
    if not wide.any():
        return sizes
    spans = {(a, b) for a, b in zip(lo[wide], hi[wide])}

    def expected(log_r: float) -> float:
        total = float(lo[~wide].sum())
        for a, b in spans:
            k = np.arange(a, b + 1)
            p = np.exp(log_r * (k - a) - np.max(log_r * (k - a)))
            total += ((lo == a) & (hi == b)).sum() * float((k * p).sum() / p.sum())
        return total

    low, high = -12.0, 12.0
    for _ in range(60):  # the expected total grows with r
        mid = (low + high) / 2
        low, high = (mid, high) if expected(mid) < persons else (low, mid)
    log_r = (low + high) / 2
    for a, b in spans:
        k = np.arange(a, b + 1)
        p = np.exp(log_r * (k - a) - np.max(log_r * (k - a)))
        where = np.flatnonzero((lo == a) & (hi == b))
        sizes[where] = rng.choice(k, size=where.size, p=p / p.sum())
    return sizes


def _margin(table: LevelTable, variable: str, counts: np.ndarray | None = None) -> np.ndarray:
    counts = table.region if counts is None else counts
    i = table.variables.index(variable)
    return counts.sum(axis=tuple(j for j in range(len(table.axes)) if j != i))


def _zone_persons(targets: HouseholdTargets, zone_households: np.ndarray) -> np.ndarray:
    """Persons per zone: a per-zone person table's totals, else the region's persons shared by households."""
    for table in targets:
        if table.level == "persons" and table.zones is not None:
            return table.zones.reshape(len(targets.zones), -1).sum(axis=1)
    return targets.persons * zone_households / max(zone_households.sum(), 1)


def _zone_counts(targets: HouseholdTargets) -> tuple[list[str | None], np.ndarray]:
    if targets.zones and targets.zone_households is not None:
        return list(targets.zones), np.asarray(targets.zone_households)
    return [None], np.array([targets.households])


# ---- persons drawn independently per household ----------------------------------------------------------


def _blocks(spec: HouseholdSpec, targets: HouseholdTargets, joints: bool) -> list[tuple[tuple[Axis, ...], np.ndarray]]:
    """Independent blocks of person variables with their region shares: with ``joints``, the largest tables
    over person variables only first (no variable twice), then margins; every variable once."""
    names = list(spec.person.variables)
    finest = _axes(targets, "persons", names)
    tables = [t for t in targets if t.level == "persons" and all(v in names for v in t.variables)]
    blocks, taken = [], set()
    if joints:
        for table in sorted(tables, key=lambda t: (-len(t.variables), -t.region.size)):
            if len(table.variables) > 1 and not taken & set(table.variables) and \
                    all(a.labels == finest[a.variable].labels for a in table.axes):
                blocks.append((table.axes, table.region))
                taken |= set(table.variables)
    for name in names:
        if name in taken:
            continue
        axis = finest.get(name) or _whole_axis(name, spec.person.variables[name])
        source = next((t for t in targets if t.level == "persons" and name in t.variables
                       and t.axes[t.variables.index(name)].labels == axis.labels), None)
        shares = _margin(source, name) if source is not None else np.ones(axis.size)
        blocks.append(((axis,), shares))
    return blocks


def _reference_cells(spec: HouseholdSpec, axes: tuple[Axis, ...]) -> np.ndarray | None:
    """Which cells of a block meet the reference condition's clauses on its categorical variables (None:
    no clause names them)."""
    clauses = [c for c in parse_condition(spec.person.reference, spec.person_schema)
               if any(a.variable == c.variable and not a.is_numeric for a in axes)]
    if not clauses:
        return None
    grid = np.meshgrid(*[np.arange(a.size) for a in axes], indexing="ij")
    cells = pd.DataFrame({a.variable: np.asarray(a.labels, dtype=object)[g.ravel()] for a, g in zip(axes, grid)})
    return holds(tuple(clauses), cells)


def draw_members(spec: HouseholdSpec, targets: HouseholdTargets, sizes: np.ndarray, rng: np.random.Generator,
                 joints: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """``sizes[h]`` members for every household ``h``, each member's blocks drawn independently; returns
    the persons (members in order) and their household rows."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, dtype=bool)
    columns = {}
    for axes, counts in _blocks(spec, targets, joints):
        p = np.asarray(counts, dtype=float).ravel()
        p = p / p.sum() if p.sum() > 0 else np.full(p.size, 1 / p.size)
        meets = _reference_cells(spec, axes)
        flat = np.empty(len(owner), dtype=np.int64)
        for who, allowed in ((first, meets), (~first, None if meets is None else ~meets)):
            q = p if allowed is None or p[allowed].sum() == 0 else np.where(allowed, p, 0) / p[allowed].sum()
            flat[who] = rng.choice(p.size, size=int(who.sum()), p=q)
        idx = np.unravel_index(flat, tuple(a.size for a in axes))
        for axis, i in zip(axes, idx):
            columns[axis.variable] = _values(axis, i, spec.person.variables[axis.variable], rng)
    return pd.DataFrame({name: columns[name] for name in spec.person.variables}), owner


# ---- households ---------------------------------------------------------------------------------------------


def _household_values(spec: HouseholdSpec, axes: list[Axis], cells: np.ndarray, persons: float,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Household rows from cell indices (one column per axis), the size matched to ``persons``."""
    out = {}
    for axis, idx in zip(axes, cells.T):
        var = spec.household.variables[axis.variable]
        out[axis.variable] = (_sizes(axis, idx, persons, rng) if axis.variable == spec.household.size and axis.is_numeric
                              else _values(axis, idx, var, rng))
    return pd.DataFrame({name: out[name] for name in spec.household.variables})


def _finish(spec: HouseholdSpec, parts: list[tuple[str | None, pd.DataFrame]], targets: HouseholdTargets,
            rng: np.random.Generator, joints: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for zone, frame in parts:
        frames.append(frame if zone is None else frame.assign(**{ZONE: zone})[[ZONE, *frame.columns]])
    households = pd.concat(frames, ignore_index=True)
    sizes = households[spec.household.size].to_numpy(dtype=int)
    persons, owner = draw_members(spec, targets, sizes, rng, joints)
    return linked(spec, households, persons, owner)


def independent(spec: HouseholdSpec, targets: HouseholdTargets, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every household variable from its own region margin, persons likewise; households per zone exact."""
    rng = np.random.default_rng(seed)
    names = list(spec.household.variables)
    finest = _axes(targets, "households", names)
    axes = [finest.get(n) or _whole_axis(n, spec.household.variables[n]) for n in names]
    shares = []
    for axis in axes:
        source = next((t for t in targets if t.level == "households" and axis.variable in t.variables
                       and t.axes[t.variables.index(axis.variable)].labels == axis.labels), None)
        m = _margin(source, axis.variable) if source is not None else np.ones(axis.size)
        shares.append(m / m.sum())
    zones, counts = _zone_counts(targets)
    persons = _zone_persons(targets, counts) if zones != [None] else np.array([targets.persons])
    parts = []
    for zone, n, people in zip(zones, counts, persons):
        cells = np.column_stack([rng.choice(axis.size, size=int(n), p=p) for axis, p in zip(axes, shares)])
        parts.append((zone, _household_values(spec, axes, cells, float(people), rng)))
    return _finish(spec, parts, targets, rng, joints=False)


def rake(seed: np.ndarray, aggregates: list[np.ndarray], dimensions: list[list[int]], tolerance: float = 1e-8,
         max_sweeps: int = 2000) -> np.ndarray:
    """IPF: ``seed`` scaled until its margin over every ``dimensions[i]`` (ascending axes) is ``aggregates[i]``.

    Numpy, vectorized; a cell whose margin is 0 stays 0. Stops when every margin is within ``tolerance``
    (relative to its largest cell) or after ``max_sweeps``."""
    fitted = np.asarray(seed, dtype=float).copy()
    for _ in range(max_sweeps):
        worst = 0.0
        for target, dims in zip(aggregates, dimensions):
            others = tuple(i for i in range(fitted.ndim) if i not in dims)
            margin = fitted.sum(axis=others, keepdims=True)
            wanted = np.asarray(target, dtype=float).reshape(margin.shape)
            ratio = np.divide(wanted, margin, out=np.zeros_like(margin), where=margin > 0)
            worst = max(worst, float(np.max(np.abs(margin - wanted)) / max(float(wanted.max()), 1e-12)))
            fitted *= ratio
        if worst < tolerance:
            break
    return fitted


def unbiased_round(values: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Whole numbers summing to ``total``, each the floor of its (rescaled) value or one more, one more with a
    probability equal to its fractional part (systematic sampling): expected counts are the values.
    Largest remainders would give a small zone's few households to the largest cells only."""
    values = np.asarray(values, dtype=float) * (total / max(float(np.sum(values)), 1e-12))
    base = np.floor(values).astype(np.int64)
    extra = total - int(base.sum())
    if extra > 0:
        edges = np.cumsum(values - base)
        points = rng.random() + np.arange(extra)
        base += np.bincount(np.searchsorted(edges, points, side="right"), minlength=len(values))[:len(values)]
    return base


def ipf_households(spec: HouseholdSpec, targets: HouseholdTargets, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IPF over households (zone × household variables) with persons drawn independently per household."""
    rng = np.random.default_rng(seed)
    names = list(spec.household.variables)
    finest = _axes(targets, "households", names)
    axes = [finest.get(n) or _whole_axis(n, spec.household.variables[n]) for n in names]
    zones, counts = _zone_counts(targets)
    zoned = zones != [None]
    shape = (len(zones), *(a.size for a in axes))
    aggregates, dimensions = [np.asarray(counts, dtype=float)], [[0]]
    for table in targets:
        if table.level != "households" or not all(v in names for v in table.variables) \
                or any(a.labels != finest[a.variable].labels for a in table.axes):
            continue
        dims = [1 + names.index(v) for v in table.variables]
        counts_ = table.zones if zoned and table.zones is not None else table.region
        dims = [0, *dims] if zoned and table.zones is not None else dims
        order = np.argsort(dims)  # the table's axes in the joint's order
        aggregates.append(np.transpose(np.asarray(counts_, dtype=float), order))
        dimensions.append(sorted(dims))
    fitted = rake(np.ones(shape), aggregates, dimensions)
    persons = _zone_persons(targets, counts) if zoned else np.array([targets.persons])
    parts = []
    for z, (zone, n) in enumerate(zip(zones, counts)):
        whole = unbiased_round(fitted[z].ravel(), int(n), rng)
        flat = rng.permutation(np.repeat(np.arange(whole.size), whole))
        cells = np.column_stack(np.unravel_index(flat, shape[1:])) if len(flat) else np.zeros((0, len(axes)), dtype=int)
        parts.append((zone, _household_values(spec, axes, cells, float(persons[z]), rng)))
    return _finish(spec, parts, targets, rng, joints=True)


# ---- PopulationSim ------------------------------------------------------------------------------------------

POPULATIONSIM = "populationsim==0.10.0"  # needs numpy < 2: run in its own virtual environment


def populationsim_python(folder: Path | None = None) -> Path:
    """The python of a virtual environment with ``populationsim==0.10.0``, created (``python -m venv``, pip
    from PyPI) in llmsynthor's cache on first use."""
    from llmsynthor.llm.models import cache_dir

    folder = folder or cache_dir().parent / "venvs" / "populationsim-0.10.0"
    python = folder / "bin" / "python"
    done = folder / ".installed"
    if not done.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", POPULATIONSIM], check=True)
        done.write_text(POPULATIONSIM + "\n")
    return python


def _coded(frame: pd.DataFrame, variables: dict, names: dict[str, str]) -> pd.DataFrame:
    """``frame``'s variables under safe column names, categories as their 1-based position (0: unknown)."""
    out = {}
    for name, column in names.items():
        var = variables[name]
        if isinstance(var, CategoricalVariable):
            out[column] = pd.Index(var.values).get_indexer(frame[name].astype(object)) + 1
        else:
            out[column] = pd.to_numeric(frame[name], errors="coerce").to_numpy()
    return pd.DataFrame(out, index=frame.index)


def _expression(table: LevelTable, cell: tuple[int, ...], names: dict[str, str]) -> str:
    level = "households" if table.level == "households" else "persons"
    parts = []
    for axis, k in zip(table.axes, cell):
        column = f"{level}.{names[axis.variable]}"
        if axis.is_numeric:
            parts.append(f"({column} >= {axis.edges[k]:g}) & ({column} < {axis.edges[k + 1]:g})")
        else:
            parts.append(f"({column} == {k + 1})")
    return " & ".join(parts)


def populationsim_inputs(spec: HouseholdSpec, targets: HouseholdTargets, households: pd.DataFrame, persons: pd.DataFrame,
                         weights: np.ndarray, folder: Path) -> None:
    """A PopulationSim project in ``folder`` (configs/, data/, output/): the seed (``households``, ``persons``
    with their ``weights``) in one PUMA, every cell of a per-zone table a TAZ control and every cell of a
    region table a PUMA control (the seed geography: the region is one PUMA; as REGION meta controls, a cell
    no seed household falls in makes meta_control_factoring divide 0 by 0 and fail); household counts per
    zone as ``num_hh``."""
    household_level = {**spec.household.variables, **{d: IntegerVariable(type="integer", min=0, max=spec.size_variable.max)
                                                      for d in spec.derived}}
    names = {name: f"v{i}" for i, name in enumerate([*household_level, *spec.person.variables])}
    for sub in ("configs", "data", "output"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    seed_h = pd.concat([pd.DataFrame({"hh_id": households[ID].to_numpy(), "PUMA": 1, "WGTP": np.asarray(weights, dtype=float)}),
                        _coded(households, household_level, {n: names[n] for n in household_level}).reset_index(drop=True)],
                       axis=1)
    people = persons.merge(households, on=ID, how="left", suffixes=("", "_household"))
    seed_p = pd.concat([pd.DataFrame({"hh_id": people[ID].to_numpy(), "per_num": people[MEMBER].to_numpy() + 1}),
                        _coded(people, {**household_level, **spec.person.variables}, names).reset_index(drop=True)], axis=1)
    seed_h.to_csv(folder / "data" / "seed_households.csv", index=False)
    seed_p.to_csv(folder / "data" / "seed_persons.csv", index=False)
    zones = list(targets.zones) or ["1"]
    zone_households = targets.zone_households if targets.zone_households is not None else np.array([targets.households])
    pd.DataFrame({"TAZ": np.arange(1, len(zones) + 1), "PUMA": 1, "REGION": 1}).to_csv(folder / "data" / "geo_cross_walk.csv",
                                                                                      index=False)
    rows = [("num_hh", "TAZ", "households", 1_000_000_000, "HHBASE", "(households.WGTP > 0) & (households.WGTP < np.inf)")]
    taz = {"TAZ": np.arange(1, len(zones) + 1), "HHBASE": zone_households}
    puma = {"PUMA": [1]}  # the region is the seed's one PUMA: its tables are seed-level controls
    for i, table in enumerate(targets):
        seed_table = "households" if table.level == "households" else "persons"
        for j, cell in enumerate(np.ndindex(*table.shape)):
            field_ = f"T{i}C{j}"
            rows.append((field_.lower(), "TAZ" if table.zones is not None else "PUMA", seed_table, 1000, field_,
                         _expression(table, cell, names)))
            if table.zones is not None:
                taz[field_] = table.zones[(slice(None), *cell)]
            else:
                puma[field_] = [table.region[cell]]
    pd.DataFrame(rows, columns=["target", "geography", "seed_table", "importance", "control_field", "expression"]).to_csv(
        folder / "configs" / "controls.csv", index=False)
    pd.DataFrame(taz).to_csv(folder / "data" / "control_totals_taz.csv", index=False)
    pd.DataFrame(puma).to_csv(folder / "data" / "control_totals_puma.csv", index=False)
    settings = {
        "INTEGERIZE_WITH_BACKSTOPPED_CONTROLS": True, "SUB_BALANCE_WITH_FLOAT_SEED_WEIGHTS": False,
        "GROUP_BY_INCIDENCE_SIGNATURE": True, "USE_SIMUL_INTEGERIZER": True, "USE_CVXPY": False, "max_expansion_factor": 30,
        "geographies": ["REGION", "PUMA", "TAZ"], "seed_geography": "PUMA", "data_dir": "data",
        "input_table_list": [
            {"tablename": "households", "filename": "seed_households.csv", "index_col": "hh_id"},
            {"tablename": "persons", "filename": "seed_persons.csv"},
            {"tablename": "geo_cross_walk", "filename": "geo_cross_walk.csv"},
            {"tablename": "TAZ_control_data", "filename": "control_totals_taz.csv"},
            {"tablename": "PUMA_control_data", "filename": "control_totals_puma.csv"}],
        "household_weight_col": "WGTP", "household_id_col": "hh_id", "total_hh_control": "num_hh",
        "control_file_name": "controls.csv",
        "output_tables": {"action": "include", "tables": ["expanded_household_ids"]},
        "output_synthetic_population": {"household_id": "household_id",
                                        "households": {"filename": "synthetic_households.csv", "columns": ["WGTP"]},
                                        "persons": {"filename": "synthetic_persons.csv", "columns": ["per_num"]}},
        "models": ["input_pre_processor", "setup_data_structures", "initial_seed_balancing", "meta_control_factoring",
                   "final_seed_balancing", "integerize_final_seed_weights", "sub_balancing.geography=TAZ", "expand_households",
                   "write_tables", "write_synthetic_population"],
    }
    (folder / "configs" / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))


def populationsim(spec: HouseholdSpec, targets: HouseholdTargets, seed_frames: tuple[pd.DataFrame, pd.DataFrame, np.ndarray],
                  folder: Path, python: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PopulationSim 0.10.0 run on ``seed_frames`` (households, persons, weights: :func:`seed_sample`) with the
    spec's targets as controls, in its own virtual environment; its expanded households back in the output
    format (each synthetic household a copy of its seed household and persons, in its zone)."""
    households, persons, weights = seed_frames
    populationsim_inputs(spec, targets, households, persons, weights, folder)
    python = python or populationsim_python()
    done = subprocess.run([str(python), "-m", "populationsim", "-w", str(folder)], capture_output=True, text=True)
    expanded_path = folder / "output" / "final_expanded_household_ids.csv"  # write_tables' prefix: final_
    if done.returncode != 0 or not expanded_path.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"populationsim failed (exit {done.returncode}): {' | '.join(tail)}")
    expanded = pd.read_csv(expanded_path)
    zones = list(targets.zones) or [None]
    where = households.reset_index(drop=True).reset_index().set_index(ID)["index"]
    copies = np.bincount(where.loc[expanded["hh_id"]].to_numpy(), minlength=len(households))
    order = np.argsort(where.loc[expanded["hh_id"]].to_numpy(), kind="stable")
    out, people = expand(households, persons, copies)
    zone = np.asarray(zones, dtype=object)[expanded["TAZ"].to_numpy()[order] - 1]
    if targets.zones:
        out[ZONE] = zone.astype(str)
    return out, people
