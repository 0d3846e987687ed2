"""The SEMCOG synthetic population as households with their persons: the truth and the example's targets.

Data: ``activitysim/examples/production_semcog/data/households.csv`` and ``persons.csv`` from the
``activitysim==1.6.0`` wheel on PyPI (fetched with ``pip download --no-deps`` into llmsynthor's
cache, sha256 checked, read as a zip; never installed, never committed). The wheel holds 19,548
households of 47 zones (TAZ) around Ann Arbor, Michigan; 4,695 of them are group quarters
(``type`` 3) and are left out with their persons. What remains is the truth: 14,853 households
(``type`` 1) with 31,074 persons in 46 zones (zone 2130 holds group quarters only). Every one of
them has exactly one householder (``relate`` 0, always ``member_id`` 1) and as many persons listed
as its ``persons`` says, so none is dropped (:func:`read_households` checks this and drops any that
breaks it, saying how many).

Codes of the ACS PUMS data dictionary mapped to labels:

* household ``size`` — ``persons``, integer 1–12.
* ``household_type`` — ``hht`` (ACS HHT): 1 married couple; 2 family, male householder (no spouse
  present); 3 family, female householder (no spouse present); 4 male living alone; 5 male with
  nonrelatives (a nonfamily household of more than one person: roommates, an unmarried partner);
  6 female living alone; 7 female with nonrelatives.
* ``cars`` — ``cars``, integer 0–6.
* ``income`` — ``hincp`` (household income, US dollars; negative values count as under 25k):
  under 25k, 25k-50k, 50k-100k, 100k+ (the bins of ``semcog.py``).
* person ``age`` (0–99), ``sex`` (1 male, 2 female), ``race`` (SEMCOG ``race_id``: 1 White, 2
  Black, 3 Hispanic, 4 Other), ``employment`` (ACS ESR: 1, 2, 4, 5 employed; 3 unemployed; 6 not
  in labor force; −9 under 16) and ``school`` (ACS SCHG grade attending: −9 not attending; 1
  preschool; 2 kindergarten; 3–6 grades 1-4; 7–10 grades 5-8; 11–14 grades 9-12; 15
  undergraduate; 16 graduate or professional) as in ``semcog.py``, whose mappings are imported.
* ``relationship`` — ``relate`` (ACS RELP) as in ``semcog.py`` without group quarters: 0
  householder; 1 spouse; 2, 3, 4 child; 7 grandchild; 6, 8 parent; 5, 9, 10 other relative; 13
  unmarried partner; 11, 12 roommate or boarder; 14, 15 other nonrelative.
* derived household counts of members: ``children`` (age < 18), ``workers`` (employed), ``adults``
  (age >= 18), ``spouses``, ``partners`` (unmarried partners). The wheel's own ``children`` column
  is not used.

Targets (``examples/households/targets``), counts of every household and person of the truth, as
a census publishes them. Per zone (46 zones): households by size (1, 2, 3, 4, 5+), by income, by
workers (0, 1, 2, 3+), persons by age (0-4, 5-15, 16-17, 18-24, 25-44, 45-64, 65+). For the region:
households by household type, by size × cars (0, 1, 2, 3+), by size × children (0, 1, 2, 3+);
persons by age × sex × employment, by age × household income, by race, by relationship, by school.

Rules (scored only, never given to the generator). Each holds for every one of the truth's
households (persons) meeting its condition — 100 %, of the number in brackets; the threshold is 99.5 %.

Households (over household variables and the derived counts):

* ``household_type == married couple -> spouses == 1 and adults >= 2`` (2,793)
* ``spouses >= 1 -> spouses == 1`` — at most one spouse (2,793)
* ``spouses >= 1 -> household_type == married couple`` — with the one before: married ⇔ a spouse (2,793)
* ``household_type in [male living alone, female living alone] -> size == 1`` (5,646)
* ``size == 1 -> household_type in [male living alone, female living alone]`` (5,646)
* ``partners >= 1 -> household_type not in [male living alone, female living alone]`` (751)
* ``partners >= 1 -> spouses == 0`` (751)
* ``children >= 1 -> adults >= 1`` (1,814)

Persons (over a person's variables and its household's):

* ``age < 5 -> school in [not attending, preschool, kindergarten]`` (1,069)
* ``age < 18 -> school in [not attending, preschool, kindergarten, grades 1-4, grades 5-8, grades 9-12]`` (3,108)
* ``age < 16 -> employment == under 16`` and ``employment == under 16 -> age < 16`` (2,482 each)
* ``relationship == spouse -> age >= 16`` (2,793)
* ``relationship == householder -> age >= 15`` (14,853)
* ``relationship == parent -> age >= 30`` (121)
* ``school == graduate or professional -> age >= 18`` (4,086)
* ``relationship == unmarried partner -> age >= 16`` (751)
* ``relationship == spouse -> household_type == married couple`` (2,793)
* a male householder's household is not a female householder's type (6,869), and the converse (7,984)
* ``relationship in [child, grandchild, parent, other relative] -> household_type not in [...]``: a
  relative of the householder makes a family household (9,034)

Labels with a comma (``family, male householder``) can be named with ``==``/``!=`` only: the rule
language splits ``in [..]`` lists at commas.

The paper's "age < 5: not in school or preschool" is written with kindergarten allowed: 28 of the
truth's 1,069 children under 5 (2.6 %, all aged 4) are in kindergarten, so the strict form holds for
97.4 % only. ``python bench/semcog_households.py`` regenerates the example's spec and targets;
tests/test_household_example.py checks that the truth reproduces them and the rules' rates.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from casefiles import wheel
from semcog import CONSTRAINTS as FLAT_CONSTRAINTS
from semcog import EMPLOYMENT, FOLDER, INCOMES, RACE, RELATIONSHIP, SCHOOL, WHEEL, WHEEL_SHA256
from semcog import VARIABLES as FLAT_VARIABLES

from llmsynthor.core.rules import holds, parse_condition
from llmsynthor.core.schema import IntegerVariable, Schema
from llmsynthor.evaluation.datasets import binned, contingency
from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.spec import load_household_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "households"
POPULATION = ("households of 46 zones of the Detroit region (SEMCOG) around Ann Arbor, Michigan, USA, a university town, "
              "with everyone who lives in them: families with children, couples, students sharing a home, people living "
              "alone; no group quarters such as student dormitories")
ZONES = "zone"

HOUSEHOLD_TYPE = {1: "married couple", 2: "family, male householder", 3: "family, female householder", 4: "male living alone",
                  5: "male with nonrelatives", 6: "female living alone", 7: "female with nonrelatives"}
PERSON_RELATIONSHIP = {code: label for code, label in RELATIONSHIP.items() if label != "group quarters"}

HOUSEHOLD_VARIABLES = {
    "size": {"type": "integer", "min": 1, "max": 12, "description": "number of persons living in the household"},
    "household_type": {
        "type": "categorical", "values": list(HOUSEHOLD_TYPE.values()),
        "description": "census household type: married couple (the householder and a spouse, maybe with others); family, "
                       "male or female householder (no spouse, but relatives such as children or parents); living alone "
                       "(one person); with nonrelatives (no relatives of the householder: roommates or an unmarried partner)"},
    "cars": {"type": "integer", "min": 0, "max": 6, "description": "number of cars the household has available"},
    "income": {"type": "categorical", "values": list(INCOMES), "description": "yearly income of the household in US dollars"},
}
PERSON_VARIABLES = {
    "age": FLAT_VARIABLES["age"],
    "sex": FLAT_VARIABLES["sex"],
    "relationship": {"type": "categorical", "values": list(dict.fromkeys(PERSON_RELATIONSHIP.values())),
                     "description": "relationship to the householder (the person in whose name the home is owned or rented)"},
    "race": FLAT_VARIABLES["race"],
    "employment": FLAT_VARIABLES["employment"],
    "school": FLAT_VARIABLES["school"],
}
REFERENCE = "relationship == householder"
DERIVED = {"children": "age < 18", "workers": "employment == employed", "adults": "age >= 18",
           "spouses": "relationship == spouse", "partners": "relationship == unmarried partner"}
EDGES = {"size": [1, 2, 3, 4, 5, 12], "cars": [0, 1, 2, 3, 6], "workers": [0, 1, 2, 3, 12], "children": [0, 1, 2, 3, 12],
         "age": [0, 5, 16, 18, 25, 45, 65, 99]}
# name -> (variables, per zone); a table counts persons when it names a person variable or is in CROSS_LEVEL
TABLES = {
    "size_by_zone": (["size"], True),
    "income_by_zone": (["income"], True),
    "workers_by_zone": (["workers"], True),
    "age_by_zone": (["age"], True),
    "household_type": (["household_type"], False),
    "size_cars": (["size", "cars"], False),
    "size_children": (["size", "children"], False),
    "age_sex_employment": (["age", "sex", "employment"], False),
    "age_income": (["age", "income"], False),
    "race": (["race"], False),
    "relationship": (["relationship"], False),
    "school": (["school"], False),
}
CROSS_LEVEL = {"age_income"}  # person tables by a household variable: ``count: persons`` said explicitly

ALONE = "[male living alone, female living alone]"
RULES_HOUSEHOLDS = [
    "household_type == married couple -> spouses == 1 and adults >= 2",
    "spouses >= 1 -> spouses == 1",
    "spouses >= 1 -> household_type == married couple",
    f"household_type in {ALONE} -> size == 1",
    f"size == 1 -> household_type in {ALONE}",
    f"partners >= 1 -> household_type not in {ALONE}",
    "partners >= 1 -> spouses == 0",
    "children >= 1 -> adults >= 1",
]
RULES_PERSONS = [
    "age < 5 -> school in [not attending, preschool, kindergarten]",
    "age < 18 -> school in [not attending, preschool, kindergarten, grades 1-4, grades 5-8, grades 9-12]",
    "age < 16 -> employment == under 16",
    "employment == under 16 -> age < 16",
    "relationship == spouse -> age >= 16",
    "relationship == householder -> age >= 15",
    "relationship == parent -> age >= 30",
    "school == graduate or professional -> age >= 18",
    "relationship == unmarried partner -> age >= 16",
    "relationship == spouse -> household_type == married couple",
    "relationship == householder and sex == male -> household_type != family, female householder and "
    "household_type not in [female living alone, female with nonrelatives]",
    "relationship == householder and sex == female -> household_type != family, male householder and "
    "household_type not in [male living alone, male with nonrelatives]",
    "relationship in [child, grandchild, parent, other relative] -> household_type not in "
    "[male with nonrelatives, female with nonrelatives, male living alone, female living alone]",
]
# What a demographer would declare as hard rules (``constraints:``) in the bench's "with constraints" row:
# the flat persons case's (bench/semcog.py), true on the data and disjoint from the scored rules above.
CONSTRAINTS_PERSONS = list(FLAT_CONSTRAINTS)
# The census definition of the household type, which a user would declare rather than leave to the
# model: the scored rules that name household_type, as constraints (the bench's "type declared" row;
# scored on every rule, and on the rules left undeclared).
TYPE_DEFINITIONS = {"households": [r for r in RULES_HOUSEHOLDS if "household_type" in r],
                    "persons": [r for r in RULES_PERSONS if "household_type" in r]}


def wheel_path() -> Path:
    return wheel("activitysim==1.6.0", WHEEL, WHEEL_SHA256)


def person_schema() -> Schema:
    return Schema.model_validate({"entity": "person", "variables": _variables(PERSON_VARIABLES)})


def derived_counts(persons: pd.DataFrame, household_ids: pd.Series, derived: dict[str, str] = DERIVED) -> pd.DataFrame:
    """Per household of ``household_ids`` (in that order), how many of its members meet each derived condition."""
    schema = person_schema()
    out = {}
    for name, condition in derived.items():
        meets = holds(parse_condition(condition, schema), persons)
        out[name] = (pd.Series(meets, index=persons.index).groupby(persons["household_id"]).sum()
                     .reindex(household_ids).fillna(0).astype(int).to_numpy())
    return pd.DataFrame(out, index=household_ids.index)


def read_households(wheel_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth: households of ``type`` 1 (``household_id``, ``zone``, household variables and derived
    counts) and their persons (``household_id``, ``member`` — 0 the householder, then the others in
    ``member_id`` order — and the person variables), with labels (see the module's docstring)."""
    with zipfile.ZipFile(wheel_path) as z:
        raw_households = pd.read_csv(io.BytesIO(z.read(f"{FOLDER}/households.csv")))
        raw_persons = pd.read_csv(io.BytesIO(z.read(f"{FOLDER}/persons.csv")))
    hh = raw_households[raw_households["type"] == 1]
    people = raw_persons[raw_persons["household_id"].isin(hh["household_id"])]
    listed = people.groupby("household_id").size().reindex(hh["household_id"]).fillna(0).to_numpy()
    heads = (people["relate"] == 0).groupby(people["household_id"]).sum().reindex(hh["household_id"]).fillna(0).to_numpy()
    good = (listed == hh["persons"].to_numpy()) & (heads == 1)
    if not good.all():
        print(f"{int((~good).sum())} households dropped: not exactly one householder, or persons listed != persons",
              file=sys.stderr)
        hh = hh[good]
        people = people[people["household_id"].isin(hh["household_id"])]
    households = pd.DataFrame({
        "household_id": hh["household_id"].astype(int),
        ZONES: hh["taz"].astype(int).astype(str),
        "size": hh["persons"].astype(int),
        "household_type": hh["hht"].map(HOUSEHOLD_TYPE),
        "cars": hh["cars"].astype(int),
        "income": np.asarray(INCOMES, dtype=object)[np.searchsorted([25_000, 50_000, 100_000], hh["hincp"], side="right")],
    }).sort_values("household_id").reset_index(drop=True)
    people = people.assign(head=people["relate"] != 0).sort_values(["household_id", "head", "member_id"])
    persons = pd.DataFrame({
        "household_id": people["household_id"].astype(int),
        "member": people.groupby("household_id").cumcount(),
        "age": people["age"].astype(int),
        "sex": people["sex"].map({1: "male", 2: "female"}),
        "relationship": people["relate"].map(PERSON_RELATIONSHIP),
        "race": people["race_id"].map(RACE),
        "employment": people["esr"].map(EMPLOYMENT).fillna("under 16"),
        "school": people["schg"].map(SCHOOL).fillna("not attending"),
    }).reset_index(drop=True)
    for name, frame in (("households", households), ("persons", persons)):
        missing = frame.isna().any(axis=1)
        if missing.any():
            raise RuntimeError(f"{wheel_path}: {int(missing.sum())} {name} with a code not mapped, e.g. "
                               f"{frame.loc[missing].iloc[0].to_dict()}")
    households = pd.concat([households, derived_counts(persons, households["household_id"])], axis=1)
    return households, persons


def _binned(frame: pd.DataFrame, variables: list[str]) -> pd.DataFrame:
    """``frame``'s ``variables`` with every integer variable replaced by its bin label (spec format)."""
    out = frame[variables].copy()
    for name in variables:
        if name in EDGES:
            top = EDGES[name][-1]
            out[name] = binned(frame[name], IntegerVariable(type="integer", min=EDGES[name][0], max=top), EDGES[name])
    return out


class _Flow(list):
    """A list written on one line in the spec (a variable's values, a table's variables)."""


class _FlowMap(dict):
    """A mapping written on one line in the spec (a target table)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))


def _variables(variables: dict) -> dict:
    return {name: {k: _Flow(v) if isinstance(v, list) else v for k, v in var.items()} for name, var in variables.items()}


def write_example(folder: Path = EXAMPLE, truth: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> Path:
    """spec.yaml and targets/*.csv of the household example in ``folder``, from the truth (read from the
    wheel when not given); the spec is loaded with its controls before returning its path."""
    households, persons = truth if truth is not None else read_households(wheel_path())
    people = persons.merge(households, on="household_id", how="left", validate="many_to_one")
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    targets = []
    for name, (variables, zoned) in TABLES.items():
        level = people if any(v in PERSON_VARIABLES for v in variables) or name in CROSS_LEVEL else households
        columns = [ZONES, *variables] if zoned else variables
        frame = pd.concat([level[[ZONES]], _binned(level, variables)], axis=1)[columns]
        contingency(frame, columns).to_csv(folder / "targets" / f"{name}.csv", index=False)
        entry = {"name": name, "variables": _Flow(variables)}
        if name in CROSS_LEVEL:
            entry["count"] = "persons"
        targets.append(_FlowMap(entry | {"file": f"targets/{name}.csv"}))
    spec = {
        "name": "households",
        "population": POPULATION,
        "seed": 0,
        "household": {"entity": "household", "size": "size", "variables": _variables(HOUSEHOLD_VARIABLES)},
        "person": {"entity": "person", "reference": REFERENCE, "variables": _variables(PERSON_VARIABLES)},
        "derived": DERIVED,
        "zones": ZONES,
        "targets": targets,
        "rules": {"households": RULES_HOUSEHOLDS, "persons": RULES_PERSONS},
    }
    header = ("# Households with their persons: the SEMCOG synthetic population (ActivitySim's production_semcog example),\n"
              "# group quarters left out. Written by `python bench/semcog_households.py`; see README.md.\n"
              "# Rules are scored by evaluation only, never shown to the generator.\n")
    path = folder / "spec.yaml"
    path.write_text(header + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True), encoding="utf-8")
    load_controls(load_household_spec(path))  # fails loudly if anything above is off
    return path


if __name__ == "__main__":
    written = write_example(Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE)
    print(f"wrote {written} and {written.parent / 'targets'}")
