"""Benchmark: llmsynthor's households with their persons beside the methods population synthesis uses today.

    python bench/bench_households.py [--no-llm] [--no-populationsim] [--no-constraints] [--seed 0] [--share 0.05]

The case is the household example (examples/households: SEMCOG, 14,853 households with 31,074
persons in 46 zones; bench/semcog_households.py). The truth is read from the activitysim==1.6.0 wheel
(fetched into llmsynthor's dataset cache on first use, sha256 checked). Every row is scored by
``llmsynthor.shapes.households.evaluation`` against the example's targets and the truth.

Rows (bench/household_baselines.py, seeded):
  * real 5 % sample (floor) — 5 % of the true households of every zone with their persons, weights
    expanded to the zone's count (sees micro-data; PopulationSim's seed);
  * independent — every household and person variable from its own margin (knows no joint);
  * IPF — households raked by IPF (zone × household variables) to the household tables, persons drawn
    independently for each household's size from the person tables at region level (macro only);
  * PopulationSim 0.10.0 — seeded with the real 5 % sample (see below);
  * llmsynthor — ``HouseholdSynthesizer(spec, backend).run()`` with the example's model (skipped with
    --no-llm; reported as not available when the module cannot be imported);
  * llmsynthor with constraints — the same with the six person constraints a demographer would
    declare (``semcog_households.CONSTRAINTS_PERSONS``: school grades and ages, ages of roommates,
    children and grandchildren), true on the data and disjoint from the scored rules;
  * llmsynthor, household type declared — the same with the census definition of the household type
    declared: the 9 scored rules that name ``household_type`` (``semcog_households.TYPE_DEFINITIONS``)
    as constraints; scored on every rule (those 9 then hold by construction) and, below the table,
    on the rules it did not declare. Below the table: the households breaking a declared constraint
    (0 when enforcement works). --no-constraints skips these two rows.

Columns: target TVD (region) = mean over the 12 target tables of the TVD ½Σ|p−q| of the region's
counts; per zone = mean over the 4 per-zone tables of the mean over the 46 zones; held-out JSD =
mean Jensen–Shannon *distance* (base 2; √divergence) over the 2-way (3-way) tables of household,
derived and person variables that no target covers, against the truth (bins: the targets', else 5
quantile bins of the truth); rejection = share of households that break a household rule, fail a
structure check or have a member breaking a person rule (the spec's 8 + 13 rules, never given to the
generator); structure = structure problems counted by reason (households; orphan persons);
queries = mean relative error |x − truth| / |truth| of the policy queries below.

Policy queries (each from the linked frames, member-level facts taken from the persons listed, not
from the derived columns):
  1. multigenerational — share of households with a member who is the householder's grandchild or parent;
  2. elderly alone, no car — share of households of one person aged 65+ with no car;
  3. child under 5 — share of households with a member aged under 5;
  4. persons by income — mean persons listed per household, per income bin (4 values; their mean error);
  5. two-worker families — among households with a member under 18, the share with 2+ employed members;
  6. young adults at home — share of persons aged 18–24 who are the householder's child;
  7. low income, Black member — among households with a Black member, the share with income under 25k;
  8. children of single parents — share of persons under 18 living in a family household with no spouse
     (household type "family, male/female householder").

PopulationSim: ``populationsim==0.10.0`` needs numpy < 2, so it runs in its own virtual environment,
created on first use in llmsynthor's cache (``python -m venv``, pip from PyPI; about a minute), given
the real 5 % sample as its seed (one PUMA, the drawn households' expansion weights as WGTP) and every
target cell as a control: per-zone tables as TAZ controls, region tables as PUMA controls (the region
is the seed's one PUMA), household counts per zone as ``num_hh``; its default algorithm (list balancing,
simultaneous integerizer, importance 1,000 for every cell). Its expanded households are copies of seed
households with their persons. Like the floor, it sees micro-data (the seed). --no-populationsim skips it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import household_baselines as baselines  # noqa: E402
import semcog_households  # noqa: E402

from llmsynthor.shapes.households.controls import load_controls  # noqa: E402
from llmsynthor.shapes.households.evaluation import HouseholdEvaluation, evaluate_households, prepare_held_out  # noqa: E402
from llmsynthor.shapes.households.spec import load_household_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "households" / "spec.yaml"
ID = "household_id"


# ---- policy queries -------------------------------------------------------------------------------------


def _people(households: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
    """Persons with their household's variables (persons of no household left out)."""
    own = [c for c in households.columns if c not in persons.columns or c == ID]
    return persons.merge(households[own], on=ID, how="inner", validate="many_to_one")


def _per_household(households: pd.DataFrame, mask: pd.Series, persons: pd.DataFrame, how: str = "any") -> np.ndarray:
    """Per household of ``households`` (in order): whether any member meets ``mask`` (or how many: ``sum``)."""
    grouped = mask.groupby(persons[ID])
    out = (grouped.any() if how == "any" else grouped.sum()).reindex(households[ID]).fillna(0)
    return out.to_numpy(dtype=float)


def q_multigenerational(households, persons):
    return _per_household(households, persons["relationship"].isin(["grandchild", "parent"]), persons).mean()


def q_elderly_alone_no_car(households, persons):
    members = _per_household(households, pd.Series(True, index=persons.index), persons, "sum")
    elderly = _per_household(households, persons["age"] >= 65, persons)
    return ((members == 1) & (elderly > 0) & (households["cars"].to_numpy() == 0)).mean()


def q_child_under_5(households, persons):
    return _per_household(households, persons["age"] < 5, persons).mean()


def q_persons_by_income(households, persons):
    members = _per_household(households, pd.Series(True, index=persons.index), persons, "sum")
    levels = semcog_households.HOUSEHOLD_VARIABLES["income"]["values"]
    means = pd.Series(members).groupby(households["income"].to_numpy()).mean()
    return means.reindex(levels).to_numpy(dtype=float)


def q_two_worker_families(households, persons):
    children = _per_household(households, persons["age"] < 18, persons) > 0
    workers = _per_household(households, persons["employment"] == "employed", persons, "sum")
    return float((workers[children] >= 2).mean()) if children.any() else np.nan


def q_young_adults_at_home(households, persons):
    young = persons[(persons["age"] >= 18) & (persons["age"] <= 24)]
    return float((young["relationship"] == "child").mean()) if len(young) else np.nan


def q_low_income_black_member(households, persons):
    black = _per_household(households, persons["race"] == "Black", persons) > 0
    return float((households["income"].to_numpy()[black] == "under 25k").mean()) if black.any() else np.nan


def q_children_of_single_parents(households, persons):
    children = _people(households, persons).query("age < 18")
    single = children["household_type"].isin(["family, male householder", "family, female householder"])
    return float(single.mean()) if len(children) else np.nan


QUERIES = {
    "multigenerational households": q_multigenerational,
    "elderly (65+) alone, no car": q_elderly_alone_no_car,
    "households with a child under 5": q_child_under_5,
    "persons per household by income": q_persons_by_income,
    "2+ workers among households with children": q_two_worker_families,
    "persons 18-24 living with a parent": q_young_adults_at_home,
    "income under 25k, households with a Black member": q_low_income_black_member,
    "children in single-parent families": q_children_of_single_parents,
}


def answer_queries(households: pd.DataFrame, persons: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: np.atleast_1d(np.asarray(fn(households, persons), dtype=float)) for name, fn in QUERIES.items()}


def relative_errors(answers: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """|answer − truth| / |truth| per query (mean over a query's values; a missing answer counts 100 %)."""
    out = {}
    for name, true in truth.items():
        got = np.nan_to_num(answers[name], nan=0.0)
        out[name] = float(np.mean(np.abs(got - true) / np.maximum(np.abs(true), 1e-12)))
    return out


# ---- rows -----------------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    households: pd.DataFrame | None
    persons: pd.DataFrame | None
    wall: float
    note: str = ""
    evaluation: HouseholdEvaluation | None = None
    answers: dict[str, np.ndarray] = field(default_factory=dict)
    spec: object = None  # the spec the row ran with, when not the example's (its constraints are counted)


def with_constraints(spec, households: list[str], persons: list[str], drop_rules: bool = False):
    """The example's spec with these constraints (and, with ``drop_rules``, without the rules they declare)."""
    from llmsynthor.cli.households import overridden

    changes = {"constraints": {"households": list(households), "persons": list(persons)}}
    if drop_rules:
        changes["rules"] = {"households": [r for r in spec.rules.households if r not in households],
                            "persons": [r for r in spec.rules.persons if r not in persons]}
    return overridden(spec, changes)


def llmsynthor_row(spec, suffix: str = "") -> Row:
    name = "llmsynthor" + suffix
    try:
        from llmsynthor.shapes.households.synthesizer import HouseholdSynthesizer
    except ImportError as exc:
        return Row(name, None, None, 0.0, f"not available yet ({type(exc).__name__}: {exc})")
    from llmsynthor.api import make_backend

    start = time.perf_counter()
    try:
        backend = make_backend(spec.llm)
        result = HouseholdSynthesizer(spec, backend).run()
    except Exception as exc:  # a row that cannot run is reported, the others go on
        return Row(name, None, None, time.perf_counter() - start,
                   f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    usage = getattr(result, "usage", None)
    label = f"llmsynthor, {backend.name.split(':')[-1]}{suffix}"
    if usage is not None:
        label += f" ({usage.cache_hits}/{usage.calls} calls cached)"
    return Row(label, result.households, result.persons, time.perf_counter() - start, spec=spec)


def populationsim_row(spec, targets, truth, seed: int, share: float) -> Row:
    name = f"PopulationSim 0.10.0 (real {share:.0%} seed)"
    start = time.perf_counter()
    try:
        python = baselines.populationsim_python()
        start = time.perf_counter()  # the run, not the one-off install
        with tempfile.TemporaryDirectory() as folder:
            households, persons = baselines.populationsim(spec, targets, baselines.seed_sample(truth, share, seed),
                                                          Path(folder), python)
    except Exception as exc:  # a row that cannot run is reported, the others go on
        return Row(name, None, None, time.perf_counter() - start, f"failed: {type(exc).__name__}: {str(exc)[:200]}")
    return Row(name, households, persons, time.perf_counter() - start)


def run_rows(spec, targets, truth, *, with_llm: bool, with_populationsim: bool, seed: int, share: float,
             constraints: bool = True) -> list[Row]:
    rows = []

    def timed(name, make):
        start = time.perf_counter()
        households, persons = make()
        rows.append(Row(name, households, persons, time.perf_counter() - start))

    timed(f"real {share:.0%} sample (floor)", lambda: baselines.sample(truth, share, seed))
    timed("independent margins", lambda: baselines.independent(spec, targets, seed))
    timed("IPF households + independent persons", lambda: baselines.ipf_households(spec, targets, seed))
    rows.append(populationsim_row(spec, targets, truth, seed, share) if with_populationsim
                else Row("PopulationSim 0.10.0", None, None, 0.0, "skipped (--no-populationsim)"))
    rows.append(llmsynthor_row(spec) if with_llm else Row("llmsynthor", None, None, 0.0, "skipped (--no-llm)"))
    if with_llm and constraints:
        rows.append(llmsynthor_row(with_constraints(spec, [], semcog_households.CONSTRAINTS_PERSONS),
                                   f", {len(semcog_households.CONSTRAINTS_PERSONS)} person constraints"))
        defined = semcog_households.TYPE_DEFINITIONS
        rows.append(llmsynthor_row(with_constraints(spec, defined["households"], defined["persons"]),
                                   f", household type declared ({len(defined['households']) + len(defined['persons'])} "
                                   "rules as constraints)"))
    return rows


def _fmt(x, spec=".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def print_tables(rows: list[Row], truth_answers: dict[str, np.ndarray], targets) -> None:
    columns = ["households", "persons", "target TVD (region)", "target TVD (per zone)", "held-out JSD 2-way", "held-out JSD 3-way",
               "rejection", "structure problems", "queries rel. error", "wall s"]
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for row in rows:
        if row.evaluation is None:
            print(f"| {row.name} | {row.note} |" + " |" * (len(columns) - 2) + f" {row.wall:.1f} |")
            continue
        s = row.evaluation.summary()
        errors = relative_errors(row.answers, truth_answers)
        structure = row.evaluation.structure
        problems = ", ".join(f"{k} {v}" for k, v in structure.items() if v) or "0"
        cells = [f"{s['households']:,}", f"{s['persons']:,}", _fmt(s["target_tvd_mean"]), _fmt(s["zone_tvd_mean"]),
                 _fmt(s["heldout_jsd_mean"]), _fmt(s["heldout3_jsd_mean"]), _fmt(s["rejection_rate"], ".1%"), problems,
                 _fmt(float(np.mean(list(errors.values()))), ".1%"), f"{row.wall:.1f}"]
        print(f"| {row.name} | " + " | ".join(cells) + " |")
    scored = [r for r in rows if r.evaluation is not None]
    for row in scored:
        declared = row.spec.constraints if row.spec is not None else None
        if declared is not None and (declared.households or declared.persons):
            rest = with_constraints(row.spec, declared.households, declared.persons, drop_rules=True)
            left = evaluate_households(rest, targets, row.households, row.persons).rejection["rate"]
            print(f"\n{row.name}: {row.evaluation.rejection['constraint_households']} households break one of its "
                  f"constraints; rejection over the {len(rest.rules.households) + len(rest.rules.persons)} rules it did "
                  f"not declare: {_fmt(left, '.1%')}")  # – when it declared every rule: no rate
    first = scored[0].evaluation
    print(f"\nTarget TVD (region) = mean over the {len(first.on_targets)} target tables of ½Σ|p−q| of the region's counts; "
          f"per zone = mean over the {sum('zones_tvd_mean' in f for f in first.on_targets.values())} per-zone tables of "
          f"the mean over the {len(targets.zones)} zones. Held-out JSD = mean Jensen–Shannon distance (base 2) over the "
          f"{sum(f['way'] == 2 for f in first.held_out.values())} two-way and "
          f"{sum(f['way'] == 3 for f in first.held_out.values())} three-way tables of household, derived and person "
          "variables no target covers, against the truth (numeric variables in the targets' finest bins, else 5 quantile "
          "bins of the truth). Rejection = share of households breaking a household rule, failing a structure check or with "
          "a member breaking a person rule. Queries rel. error = mean over the 8 policy queries of |x − truth| / |truth|.")

    print("\n#### per table: TVD for the region (per-zone tables: mean / max over zones)\n")
    print("| method | " + " | ".join(first.on_targets) + " |")
    print("|---|" + "---:|" * len(first.on_targets))
    for row in scored:
        cells = []
        for f in row.evaluation.on_targets.values():
            cells.append(f"{f['tvd']:.3f}" + (f" ({f['zones_tvd_mean']:.3f} / {f['zones_tvd_max']:.2f})" if "zones_tvd_mean" in f else ""))
        print(f"| {row.name} | " + " | ".join(cells) + " |")

    print("\n#### policy queries: the truth and each method (relative error)\n")
    print("| query | truth | " + " | ".join(r.name for r in scored) + " |")
    print("|---|---:|" + "---:|" * len(scored))
    for name, true in truth_answers.items():
        cells = []
        for row in scored:
            got = row.answers[name]
            err = relative_errors({name: got}, {name: true})[name]
            cells.append(f"{' / '.join(_fmt(g, '.3f') for g in got)} ({err:.0%})")
        print(f"| {name} | {' / '.join(_fmt(t, '.3f') for t in true)} | " + " | ".join(cells) + " |")
    print("\n(persons per household by income: under 25k / 25k-50k / 50k-100k / 100k+.)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-llm", action="store_true", help="rows without an LLM only; llmsynthor is listed as skipped")
    parser.add_argument("--no-populationsim", action="store_true",
                        help="skip PopulationSim (its first run creates its virtual environment: pip from PyPI)")
    parser.add_argument("--no-constraints", action="store_true",
                        help="skip the llmsynthor row with the person constraints of semcog_households.CONSTRAINTS_PERSONS")
    parser.add_argument("--seed", type=int, default=0, help="seed of the baselines (default 0)")
    parser.add_argument("--share", type=float, default=0.05, help="share of households in the real sample (default .05)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"## bench_households — {date.today()}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
          f"Python {platform.python_version()}{'; no LLM' if args.no_llm else ''}\n")
    spec = load_household_spec(EXAMPLE)
    targets = load_controls(spec)
    truth = semcog_households.read_households(semcog_households.wheel_path())
    held_out = prepare_held_out(spec, targets, truth)
    truth_answers = answer_queries(*truth)
    print(f"SEMCOG households: {len(truth[0]):,} households, {len(truth[1]):,} persons, {len(targets.zones)} zones; "
          f"{len(targets.tables)} target tables; the truth itself scores rejection {_fmt(held_out.truth['rejection_rate'], '.1%')}, "
          f"{sum(held_out.truth['structure'].values())} structure problems.\n")
    rows = run_rows(spec, targets, truth, with_llm=not args.no_llm, with_populationsim=not args.no_populationsim, seed=args.seed,
                    share=args.share, constraints=not args.no_constraints)
    for row in rows:
        if row.households is not None:
            row.evaluation = evaluate_households(row.spec or spec, targets, row.households, row.persons, held_out=held_out)
            row.answers = answer_queries(row.households, row.persons)
    print_tables(rows, truth_answers, targets)
    print(f"\nwhole bench: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
