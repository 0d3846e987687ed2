"""How good are synthetic households with their persons: structure, the targets, realism, held-out tables.

The input is the linked output, as PopulationSim writes it: ``households`` (``household_id``, the zone
column when the spec has zones, every household variable, the derived counts) and ``persons``
(``household_id``, ``person_id``, ``member`` — 0 the reference person — and every person variable).
Reported separately, as for flat records (:mod:`llmsynthor.evaluation.scoring`):

1. **Structure** — built-in checks, not spec rules, each counted by reason over households (a
   household may have several): ``empty`` (no persons), ``size_mismatch`` (members listed ≠ the size
   variable), ``reference_count`` (not exactly one member meets ``person.reference``),
   ``reference_not_first`` (exactly one does, and it is not listed first: smallest ``member``, else
   first in the frame), ``derived_mismatch`` (a derived column differs from the count of its members
   meeting the condition), ``outside_domain`` (a household value, or a member's value, outside its
   variable's domain), ``unknown_zone`` (a zone no target names), ``duplicate_id`` (a ``household_id``
   seen before; its persons belong to the first). The checks on members (size, reference, derived)
   apply to households with at least one person. Plus ``orphan_persons``: persons whose
   ``household_id`` names no household (a count of persons; they belong to no household and are left
   out of everything else).
2. **On the targets** — every target table: TVD, JS distance, Hellinger, SRMSE for the region and,
   for per-zone tables, their mean and max over the zones; which tables' region TVD exceeds
   ``synthesis.tolerance_tvd``, and for each per-zone table how many zones' TVD exceeds it (the
   headline, :func:`tolerance_headline`, counts both). Tables over derived counts use counts
   recomputed from the members.
3. **Realism** — every household rule over households with their derived counts recomputed from the
   members (the derived columns are not trusted), every person rule over persons joined with their
   household's variables, with :meth:`Rule.rates`' figures; and the **household rejection rate**
   (the paper's headline figure): the share of households that break a household rule, fail a
   structure check, or have a member breaking a person rule. A spec without rules at either level
   leaves realism unscored: the rate is None and ``summary()["realism"]`` says
   :data:`~llmsynthor.core.rules.NOT_SCORED` (structure checks alone are no realism score); a level
   without rules has its share None.
4. **Off the targets** (with the truth) — every 2-way table (and 3-way, ``max_way=3``) over the
   household variables, derived counts and person variables that no target table covers (covered:
   some target table, at either level, names all its variables), compared with the truth on the same
   bins: households counted when every variable is a household variable or a derived count, persons
   (joined with their household) otherwise. Numeric variables take the finest bins the targets use
   for them, else about 5 quantile bins of the truth (an integer variable with at most 6 distinct
   values in the truth gets one bin per value). The truth's side is computed once
   (:func:`prepare_held_out`) and can be passed to every evaluation against it.

Definitions (those of :mod:`llmsynthor.core.metrics` and :mod:`llmsynthor.evaluation.scoring`): TVD = ½Σ|p−q|;
JSD = Jensen–Shannon *distance*, base 2; Hellinger = √(½Σ(√p−√q)²); SRMSE = RMSE of cell shares /
mean target cell share. A record whose value for one of a table's variables is outside the domain
falls in an extra "outside the domain" cell whose target is 0 (added only when a side has one).
Knows frames and tables, not LLMs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ...core.errors import Problem, SpecError
from ...core.levels import LevelTable
from ...core.records import inside_domain, outside_domain
from ...core.rules import holds, parse_condition, parse_rule, realism_state
from ...core.schema import CategoricalVariable, IntegerVariable, Schema
from ...core.tables import Axis, interval_label
from ...evaluation.cells import cell_index, combinations_held_out, region_counts, score_counts, zone_scores
from .constraints import broken as breaches
from .controls import HOUSEHOLD, HOUSEHOLDS, PERSONS, HouseholdTargets, joined
from .spec import HouseholdSpec

ID = HOUSEHOLDS.id
MEMBER = "member"
QUANTILE_BINS = 5  # held-out bins of a numeric variable no target bins
DISTINCT_BINS = 6  # an integer variable with at most this many distinct true values gets one bin per value
REASONS = ("empty", "size_mismatch", "reference_count", "reference_not_first", "derived_mismatch", "outside_domain",
           "unknown_zone", "duplicate_id")


# ---- the frames linked -----------------------------------------------------------------------------


@dataclass
class Linked:
    """Households and persons as evaluation reads them: households in rows 0..H-1 with the derived counts
    recomputed from their members, persons attached to a row (``HOUSEHOLD``), orphans left out."""

    households: pd.DataFrame
    persons: pd.DataFrame  # sorted by household row, then as listed (member)
    people: pd.DataFrame  # persons joined with their household's variables
    zone: np.ndarray | None  # households' zone index into targets.zones, -1 for an unknown zone
    problems: dict[str, np.ndarray]  # reason -> mask over households
    orphan_persons: int
    inside_households: np.ndarray  # households with every household variable in its domain
    inside_people: dict[str, np.ndarray]  # variable -> mask over people (person and household variables)
    outside: dict[str, dict]  # "households"/"persons" -> variable -> records.outside_domain figures

    @property
    def members(self) -> np.ndarray:
        return np.bincount(self.persons[HOUSEHOLD].to_numpy(), minlength=len(self.households))


def _missing_columns(frame: pd.DataFrame, names, what: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise SpecError(Problem(what, f"missing column(s) {', '.join(map(repr, missing))}; expected {ID} and every "
                                      f"variable of the spec at this level"))


def _coerced(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """A copy with numeric variables as floats (text that is no number becomes missing: outside the domain)."""
    out = frame.copy()
    for name in schema.names:
        if schema[name].is_numeric and not pd.api.types.is_numeric_dtype(out[name]):
            out[name] = pd.to_numeric(out[name], errors="coerce")
    return out


def zone_column(spec: HouseholdSpec, households: pd.DataFrame) -> str | None:
    """The households' zone column: the spec's ``zones`` name, else ``zone``; None without zones."""
    if spec.zones is None:
        return None
    return spec.zones if spec.zones in households.columns else "zone"


def link(spec: HouseholdSpec, targets: HouseholdTargets | None, households: pd.DataFrame, persons: pd.DataFrame) -> Linked:
    """Attach persons to households, recompute the derived counts and run the structure checks."""
    h_schema = Schema(entity=spec.household.entity, variables=dict(spec.household.variables))
    p_schema = spec.person_schema
    _missing_columns(households, [ID, *h_schema.names], HOUSEHOLDS.name)
    _missing_columns(persons, [ID, *p_schema.names], PERSONS.name)
    zoned = targets is not None and bool(targets.zones)
    column = zone_column(spec, households) if zoned else None
    if column is not None and column not in households.columns:
        raise SpecError(Problem(HOUSEHOLDS.name, f"missing the zone column {column!r}; the targets are given per zone"))

    hh = _coerced(households, h_schema).reset_index(drop=True)
    ids = hh[ID].to_numpy()
    duplicate = hh[ID].duplicated().to_numpy()
    first_rows = np.flatnonzero(~duplicate)
    row = pd.Index(ids[first_rows]).get_indexer(persons[ID].to_numpy())
    row = np.where(row >= 0, first_rows[np.maximum(row, 0)], -1)
    orphans = int((row < 0).sum())

    people = _coerced(persons, p_schema).assign(**{HOUSEHOLD: row})[row >= 0]
    order = [HOUSEHOLD, MEMBER] if MEMBER in people.columns else [HOUSEHOLD]
    people = people.sort_values(order, kind="stable").reset_index(drop=True)
    owner = people[HOUSEHOLD].to_numpy()
    n = len(hh)
    members = np.bincount(owner, minlength=n)
    has = members > 0

    problems = {reason: np.zeros(n, dtype=bool) for reason in REASONS}
    problems["empty"] = ~has
    problems["duplicate_id"] = duplicate
    size = hh[spec.household.size].to_numpy(dtype=float)
    problems["size_mismatch"] = has & (members != size)
    reference = holds(parse_condition(spec.person.reference, p_schema), people)
    references = np.bincount(owner, weights=reference, minlength=n)
    problems["reference_count"] = has & (references != 1)
    first = np.r_[True, owner[1:] != owner[:-1]] if len(owner) else np.zeros(0, dtype=bool)
    first_is_reference = np.zeros(n, dtype=bool)
    first_is_reference[owner[first]] = reference[first]
    problems["reference_not_first"] = has & (references == 1) & ~first_is_reference

    for name, condition in spec.derived.items():
        count = np.bincount(owner, weights=holds(parse_condition(condition, p_schema), people), minlength=n).astype(int)
        if name in hh.columns:
            written = pd.to_numeric(hh[name], errors="coerce").to_numpy(dtype=float)
            problems["derived_mismatch"] |= has & (written != count)
        hh[name] = count

    inside_h = inside_domain(hh, h_schema)
    inside_p = inside_domain(people, p_schema)
    person_ok = np.logical_and.reduce([*inside_p.values(), np.ones(len(people), dtype=bool)])
    household_ok = np.logical_and.reduce([*inside_h.values(), np.ones(n, dtype=bool)])
    members_ok = np.bincount(owner, weights=~person_ok, minlength=n) == 0
    problems["outside_domain"] = ~household_ok | ~members_ok
    outside = {HOUSEHOLDS.name: outside_domain(hh, h_schema, inside_h), PERSONS.name: outside_domain(people, p_schema, inside_p)}

    zone = None
    if column is not None:
        hh[column] = hh[column].astype(str).str.strip()
        zone = pd.Index(list(targets.zones)).get_indexer(hh[column].to_numpy())
        problems["unknown_zone"] = zone < 0

    everyone = joined(hh, people)
    inside_people = dict(inside_p)
    derived_ok = np.ones(n, dtype=bool)  # recomputed: always in the domain
    for name in spec.household_schema.names:
        inside_people[name] = (inside_h[name] if name in inside_h else derived_ok)[owner]
    for name in spec.derived:
        inside_h[name] = derived_ok
    return Linked(hh, people, everyone, zone, problems, orphans, inside_h, inside_people, outside)


# ---- counting on tables -------------------------------------------------------------------------------


def _level_frame(linked: Linked, level: str) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray | None]:
    if level == HOUSEHOLDS.name:
        return linked.households, linked.inside_households, linked.zone
    zone = None if linked.zone is None else linked.zone[linked.persons[HOUSEHOLD].to_numpy()]
    return linked.people, linked.inside_people, zone


def level_cells(linked: Linked, table: LevelTable, caches: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """Every record's flat cell in ``table`` (-1: outside the domain or every bin), and its zone."""
    frame, inside, zone = _level_frame(linked, table.level)
    return cell_index(frame, table, inside, caches.setdefault(table.level, {})), zone


def _on_target(linked: Linked, table: LevelTable, targets: HouseholdTargets, caches: dict, tolerance: float) -> dict:
    size = int(np.prod(table.shape))
    flat, zone = level_cells(linked, table, caches)
    counts, outside = region_counts(flat, size)
    figures: dict = {"level": table.level, **score_counts(counts, outside, table.region), "outside": outside}
    if table.zones is not None and zone is not None:
        figures.update(zone_scores(flat, zone, size, table.zones, targets.zones, tolerance))
    return figures


# ---- held-out tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    """The truth's side of the held-out tables, computed once for every method scored against it:
    each table (a LevelTable whose ``region`` holds the truth's counts), the truth's records outside
    its cells, and the truth's own structure and rule figures."""

    tables: tuple[LevelTable, ...]
    outside: tuple[int, ...]
    truth: dict  # the truth's rejection rate, structure problems and rule rates


def _held_out_axis(name: str, var, axes: dict[str, Axis], values: np.ndarray) -> Axis:
    if name in axes:
        return axes[name]
    if isinstance(var, CategoricalVariable):
        return Axis(name, tuple(var.values))
    x = values[np.isfinite(values)]
    x = x[(x >= var.min) & (x <= var.max)]
    if isinstance(var, IntegerVariable) and 0 < len(np.unique(x)) <= DISTINCT_BINS:
        inner = np.unique(x)
    elif len(x):
        inner = np.unique(np.quantile(x, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
        inner = np.unique(np.ceil(inner)) if isinstance(var, IntegerVariable) else inner
    else:
        inner = np.linspace(var.min, var.max, QUANTILE_BINS + 1)[1:-1]
    edges = np.array([var.min, *[e for e in inner if var.min < e < var.top], var.top], dtype=float)
    return Axis(name, tuple(interval_label(a, b, var) for a, b in zip(edges[:-1], edges[1:])), edges)


def _finest_axes(targets: HouseholdTargets) -> dict[str, Axis]:
    best: dict[str, Axis] = {}
    for table in targets:
        for axis in table.axes:
            if axis.variable not in best or axis.size > best[axis.variable].size:
                best[axis.variable] = axis
    return best


def held_out_tables(spec: HouseholdSpec, targets: HouseholdTargets, truth: Linked, max_way: int = 3) -> list[LevelTable]:
    """Every 2- to ``max_way``-way table no target covers, with its level and axes (counts still zero)."""
    household_level = [*spec.household.variables, *spec.derived]
    names = [*household_level, *spec.person.variables]
    schema = spec.joined_schema
    finest = _finest_axes(targets)
    axes = {}
    for name in names:
        frame = truth.households if name in household_level else truth.persons
        axes[name] = _held_out_axis(name, schema[name], finest, pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
                                    if schema[name].is_numeric else np.zeros(0))
    covered = [frozenset(t.variables) for t in targets]
    tables = []
    for combo in combinations_held_out(names, lambda c: any(c <= t for t in covered), max_way):
        level = HOUSEHOLDS.name if all(v in household_level for v in combo) else PERSONS.name
        shape = tuple(axes[v].size for v in combo)
        tables.append(LevelTable(" × ".join(combo), level, tuple(axes[v] for v in combo), np.zeros(shape), None))
    return tables


def prepare_held_out(spec: HouseholdSpec, targets: HouseholdTargets, truth: tuple[pd.DataFrame, pd.DataFrame],
                     max_way: int = 3) -> HeldOut:
    """The truth's counts on every held-out table, and its own structure and rule figures."""
    linked = link(spec, targets, *truth)
    caches: dict = {}
    tables, outside = [], []
    for table in held_out_tables(spec, targets, linked, max_way):
        flat, _ = level_cells(linked, table, caches)
        counts, out = region_counts(flat, int(np.prod(table.shape)))
        tables.append(LevelTable(table.name, table.level, table.axes, counts.reshape(table.shape), None))
        outside.append(out)
    realism = _realism(spec, linked)
    figures = {HOUSEHOLDS.name: len(linked.households), PERSONS.name: len(linked.persons),
               "rejection_rate": realism["rejection"]["rate"], "structure": _structure(linked),
               "rules": realism["rules"]}
    return HeldOut(tuple(tables), tuple(outside), figures)


# ---- realism ----------------------------------------------------------------------------------------


def _structure(linked: Linked) -> dict[str, int]:
    out = {reason: int(mask.sum()) for reason, mask in linked.problems.items()}
    out["orphan_persons"] = linked.orphan_persons
    return out


def _realism(spec: HouseholdSpec, linked: Linked) -> dict:
    n = len(linked.households)
    owner = linked.persons[HOUSEHOLD].to_numpy()
    rules, by_household, by_person = {}, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for text in spec.rules.households:
        rule = parse_rule(text, spec.household_schema)
        rules[text] = {"level": HOUSEHOLDS.name, **rule.rates(linked.households)}
        by_household |= rule.violations(linked.households)
    for text in spec.rules.persons:
        rule = parse_rule(text, spec.joined_schema)
        rules[text] = {"level": PERSONS.name, **rule.rates(linked.people)}
        broken = rule.violations(linked.people)
        by_person[owner[broken]] = True
    structural = np.logical_or.reduce([*linked.problems.values(), np.zeros(n, dtype=bool)])
    rejected = by_household | by_person | structural
    # households breaking a declared constraint (the generator enforces them)
    constrained = np.logical_or.reduce([*breaches(spec, linked.households, linked.persons).values(), np.zeros(n, dtype=bool)])

    def share(mask, scored=True):
        return None if not scored else float(mask.mean()) if n else 0.0

    scored = bool(spec.rules.households or spec.rules.persons)  # no rules: no rejection rate, never a 0 %
    rejection = {"rate": share(rejected, scored), "households": int(rejected.sum()) if scored else None,
                 "household_rules": share(by_household, bool(spec.rules.households)),
                 "person_rules": share(by_person, bool(spec.rules.persons)), "structure": share(structural),
                 "constraint_households": int(constrained.sum())}
    return {"rules": rules, "rejection": rejection, "structure_households": int(structural.sum())}


# ---- the evaluation -----------------------------------------------------------------------------------


@dataclass
class HouseholdEvaluation:
    """Every figure of one evaluation of linked households and persons; ``summary()`` gives a table row's."""

    counts: dict[str, float | int]  # households, persons, zones, persons_per_household, ...
    structure: dict[str, int]  # reason -> households (orphan_persons: persons)
    structure_households: int  # households failing at least one structure check
    on_targets: dict[str, dict]  # table -> figures (region, and per zone for zoned tables)
    targets_over_tolerance: list[str]
    tolerance_tvd: float
    rules: dict[str, dict]  # rule text -> level and Rule.rates figures (truth_* with the truth)
    rejection: dict[str, float | int]  # rate, households, and the shares rejected by each cause
    outside_domain: dict[str, dict]  # "households"/"persons" -> variable -> figures
    zone_households: dict | None = None  # households per zone against the targets' zone totals
    held_out: dict[str, dict] = field(default_factory=dict)  # table -> level, way and metrics against the truth
    truth: dict | None = None  # the truth's own rejection rate, structure problems and rule rates

    def summary(self) -> dict[str, float | int | None]:
        def mean(values):
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else None

        zoned = [f for f in self.on_targets.values() if "zones_tvd_mean" in f]
        two = [f["jsd"] for f in self.held_out.values() if f["way"] == 2]
        three = [f["jsd"] for f in self.held_out.values() if f["way"] == 3]
        return {
            HOUSEHOLDS.name: self.counts[HOUSEHOLDS.name], PERSONS.name: self.counts[PERSONS.name],
            "target_tvd_mean": mean(f["tvd"] for f in self.on_targets.values()),
            "target_tvd_max": max((f["tvd"] for f in self.on_targets.values()), default=None),
            "target_jsd_mean": mean(f["jsd"] for f in self.on_targets.values()),
            "zone_tvd_mean": mean(f["zones_tvd_mean"] for f in zoned),
            "zone_tvd_max": max((f["zones_tvd_max"] for f in zoned), default=None),
            "target_tables": len(self.on_targets), "targets_over_tolerance": len(self.targets_over_tolerance),
            "zone_tables_over_tolerance": sum(f["zones"] > 0 for f in self.zones_over().values()) if zoned else None,
            "zones_over_tolerance": self._zones_over_any(),
            "over_tolerance": tolerance_headline(self),
            "heldout_jsd_mean": mean(two), "heldout3_jsd_mean": mean(three),
            "realism": realism_state(len(self.rules)),
            "rejection_rate": self.rejection["rate"], "structure_households": self.structure_households,
            "structure_problems": int(sum(self.structure.values())),
            "truth_rejection_rate": None if self.truth is None else self.truth["rejection_rate"],
        }

    def zones_over(self) -> dict[str, dict]:
        """Every per-zone table: how many of its zones' TVD exceeds the tolerance (``zones`` of ``of``),
        its worst zone and that zone's TVD."""
        return {name: {"zones": f["zones_over_tolerance"], "of": len(f["zones_tvd"]), "worst_zone": f["worst_zone"],
                       "worst_tvd": f["zones_tvd_max"]}
                for name, f in self.on_targets.items() if "zones_tvd" in f}

    def _zones_over_any(self) -> int | None:
        """Zones over the tolerance in at least one per-zone table (None without per-zone tables)."""
        tvds = [np.asarray(f["zones_tvd"]) for f in self.on_targets.values() if "zones_tvd" in f]
        return int(np.logical_or.reduce([t > self.tolerance_tvd for t in tvds]).sum()) if tvds else None

    def as_dict(self) -> dict:
        """Plain JSON-ready values (the manifest's)."""
        return _plain({**asdict(self), "summary": self.summary()})


def tolerance_headline(evaluation: HouseholdEvaluation) -> str:
    """``tables over tolerance (region TVD > 0.01): 0 of 12 · zones over tolerance (zone TVD > 0.01): 8
    of 46 in size_by_zone (worst zone 2112, TVD 0.112)``: the region's tables and, for every per-zone
    table, its zones (the region's tables named when some miss; the per-zone tables whose every zone
    meets it, named together at the end)."""
    tolerance, over = evaluation.tolerance_tvd, evaluation.targets_over_tolerance
    line = (f"tables over tolerance (region TVD > {tolerance:g}): {len(over)} of {len(evaluation.on_targets)}"
            + (f" ({', '.join(over)})" if over else ""))
    zoned = evaluation.zones_over()
    if not zoned:
        return line
    missing = sorted(((name, z) for name, z in zoned.items() if z["zones"]), key=lambda kv: -kv[1]["zones"])
    parts = [f"{z['zones']} of {z['of']} in {name} (worst zone {z['worst_zone']}, TVD {z['worst_tvd']:.3f})" for name, z in missing]
    met = [name for name, z in zoned.items() if not z["zones"]]
    if met:
        every = zoned[met[0]]["of"]
        parts.append(f"0 of {every} in {'each of ' if len(met) > 1 else ''}{', '.join(met)}")
    return line + f" · zones over tolerance (zone TVD > {tolerance:g}): " + "; ".join(parts)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def evaluate_households(spec: HouseholdSpec, targets: HouseholdTargets, households: pd.DataFrame, persons: pd.DataFrame, *,
                        truth: tuple[pd.DataFrame, pd.DataFrame] | None = None, held_out: HeldOut | None = None,
                        max_way: int = 3) -> HouseholdEvaluation:
    """Score linked ``households`` and ``persons`` (see the module's docstring).

    ``truth`` (households, persons of the real population, in the same format) adds the held-out
    tables and the truth's own rule figures; ``held_out`` (:func:`prepare_held_out`) gives the truth's
    side already computed, for scoring several outputs against one truth (``truth`` is then not read)."""
    if held_out is None and truth is not None:
        held_out = prepare_held_out(spec, targets, truth, max_way)
    linked = link(spec, targets, households, persons)
    n = len(linked.households)
    tolerance = spec.synthesis.tolerance_tvd
    caches: dict = {}
    on_targets = {t.name: _on_target(linked, t, targets, caches, tolerance) for t in targets}
    over = [name for name, f in on_targets.items() if f["tvd"] > tolerance]
    realism = _realism(spec, linked)
    column = zone_column(spec, linked.households) if linked.zone is not None else None
    counts = {HOUSEHOLDS.name: n, PERSONS.name: len(linked.persons),
              "zones": int(linked.households[column].nunique()) if column else 0,
              "persons_per_household": len(linked.persons) / n if n else 0.0,
              "target_households": targets.households, "target_persons": float(targets.persons)}
    zone_households = None
    if linked.zone is not None and targets.zone_households is not None:
        got = np.bincount(linked.zone[linked.zone >= 0], minlength=len(targets.zones))
        diff = got - targets.zone_households
        zone_households = {"zones_off": int((diff != 0).sum()), "max_abs_difference": int(np.abs(diff).max()),
                           "households_in_unknown_zones": int((linked.zone < 0).sum())}
    result = HouseholdEvaluation(counts=counts, structure=_structure(linked), structure_households=realism["structure_households"],
                                 on_targets=on_targets, targets_over_tolerance=over, tolerance_tvd=tolerance,
                                 rules=realism["rules"], rejection=realism["rejection"], outside_domain=linked.outside,
                                 zone_households=zone_households)
    if held_out is None:
        return result
    cache: dict = {}
    for table, truth_outside in zip(held_out.tables, held_out.outside):
        flat, _ = level_cells(linked, table, cache)
        synthetic, out = region_counts(flat, int(np.prod(table.shape)))
        result.held_out[table.name] = {"level": table.level, "way": len(table.axes),
                                       **score_counts(synthetic, out, table.region, truth_outside)}
    result.truth = held_out.truth
    for text, figures in result.rules.items():
        theirs = held_out.truth["rules"].get(text)
        if theirs is not None:
            figures.update({f"truth_{k}": v for k, v in theirs.items() if k != "level"})
    return result
