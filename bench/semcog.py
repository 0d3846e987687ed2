"""The SEMCOG synthetic population (Detroit region, Michigan; PUMS-based) as a census-like case of persons.

Data: ``activitysim/examples/production_semcog/data/persons.csv`` and ``households.csv`` from the
``activitysim==1.6.0`` wheel on PyPI (fetched with ``pip download --no-deps`` into llmsynthor's
cache, sha256 checked, read as a zip; never installed, never committed). 35,769 persons in 19,548
households (4,695 of them group quarters) of 47 zones around Ann Arbor; all of them are the truth.

8 variables, codes of the ACS PUMS data dictionary mapped to labels:

* ``age`` — integer 0–99; target bins 0-4, 5-15, 16-17, 18-24, 25-44, 45-64, 65+.
* ``sex`` — ``sex`` 1 male, 2 female.
* ``relationship`` — ``relate`` (ACS RELP, 2010–2018): 0 householder; 1 spouse; 2 biological, 3
  adopted, 4 stepchild → child; 7 grandchild; 6 parent, 8 parent-in-law → parent; 5 brother or
  sister, 9 son- or daughter-in-law, 10 other relative → other relative; 13 unmarried partner;
  11 roomer or boarder, 12 housemate or roommate → roommate or boarder; 14 foster child, 15 other
  nonrelative → other nonrelative; 16, 17 group quarters → group quarters.
* ``race`` — SEMCOG's ``race_id`` (1–4, not a PUMS code; the ActivitySim example does not document
  it): read as 1 White, 2 Black, 3 Hispanic, 4 Other (Asian and the rest), the order of SEMCOG's
  forecast categories and the only reading that fits the zones' shares (66 / 16 / 5 / 13 %).
* ``employment`` — ``esr``: 1, 2 (civilian, at work / with a job), 4, 5 (armed forces) → employed;
  3 → unemployed; 6 → not in labor force; missing (−9, under 16) → under 16.
* ``school`` — ``schg`` (grade attending): missing → not attending; 1 preschool; 2 kindergarten;
  3–6 grades 1-4; 7–10 grades 5-8; 11–14 grades 9-12; 15 undergraduate; 16 graduate or professional.
* ``household_size`` — ``persons`` of the household: 1 person … 5+ persons; group quarters
  (household ``type`` 3) → group quarters.
* ``household_income`` — the household's ``hincp`` (group quarters residents: their own), in
  four bins: under 25k, 25k-50k, 50k-100k, 100k+.

Targets: the 8 marginals + age × sex, age × employment, sex × employment (what a census
publishes), counts of all persons rescaled to n = 5,000. ``RULES`` are scored only; each holds
for ≥ 99.5 % of the persons meeting its condition (checked by tests/test_bench_baselines.py).
``CONSTRAINTS`` are what a demographer would declare, disjoint from the rules and true on the data;
only the ``with_constraints`` variant of the spec carries them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from casefiles import wheel, write_spec

WHEEL = "activitysim-1.6.0-py3-none-any.whl"
WHEEL_SHA256 = "6b403df14ad1d5ed9800b8db7fd19a84e16bf1da0a3f891a3c43a1160c7524dd"
FOLDER = "activitysim/examples/production_semcog/data"
POPULATION = ("residents of 47 zones of the Detroit region (SEMCOG) around Ann Arbor, Michigan, USA, a university town: "
              "people of every age, including babies and children, living in households or in group quarters "
              "such as student dormitories")
ENTITY = "person"

RELATIONSHIP = {0: "householder", 1: "spouse", 2: "child", 3: "child", 4: "child", 7: "grandchild", 6: "parent", 8: "parent",
                5: "other relative", 9: "other relative", 10: "other relative", 13: "unmarried partner",
                11: "roommate or boarder", 12: "roommate or boarder", 14: "other nonrelative", 15: "other nonrelative",
                16: "group quarters", 17: "group quarters"}
RACE = {1: "White", 2: "Black", 3: "Hispanic", 4: "Other"}
EMPLOYMENT = {1: "employed", 2: "employed", 4: "employed", 5: "employed", 3: "unemployed", 6: "not in labor force"}
SCHOOL = {1: "preschool", 2: "kindergarten", **{g: "grades 1-4" for g in range(3, 7)}, **{g: "grades 5-8" for g in range(7, 11)},
          **{g: "grades 9-12" for g in range(11, 15)}, 15: "undergraduate", 16: "graduate or professional"}
SIZES = ["1 person", "2 persons", "3 persons", "4 persons", "5+ persons", "group quarters"]
INCOMES = ["under 25k", "25k-50k", "50k-100k", "100k+"]

VARIABLES = {
    "age": {"type": "integer", "min": 0, "max": 99, "description": "age of the person in years"},
    "sex": {"type": "categorical", "values": ["male", "female"], "description": "sex of the person"},
    "relationship": {"type": "categorical",
                     "values": ["householder", "spouse", "child", "grandchild", "parent", "other relative", "unmarried partner",
                                "roommate or boarder", "other nonrelative", "group quarters"],
                     "description": "relationship to the householder (the person in whose name the home is owned or "
                                    "rented); group quarters: lives in a dormitory or other group quarters, not a household"},
    "race": {"type": "categorical", "values": ["White", "Black", "Hispanic", "Other"],
             "description": "race and ethnicity (White and Black: not Hispanic; Other: Asian and the rest)"},
    "employment": {"type": "categorical", "values": ["employed", "unemployed", "not in labor force", "under 16"],
                   "description": "employment status (census recode; under 16: not asked, younger than 16)"},
    "school": {"type": "categorical",
               "values": ["not attending", "preschool", "kindergarten", "grades 1-4", "grades 5-8", "grades 9-12",
                          "undergraduate", "graduate or professional"],
               "description": "grade or level of school attended now (not attending: not in school)"},
    "household_size": {"type": "categorical", "values": SIZES,
                       "description": "number of persons in the person's household (group quarters: not a household)"},
    "household_income": {"type": "categorical", "values": INCOMES,
                         "description": "yearly income of the household in US dollars (in group quarters: the person's own)"},
}
EDGES = {"age": [0, 5, 16, 18, 25, 45, 65, 99]}
JOINTS = {"age_sex": ["age", "sex"], "age_employment": ["age", "employment"], "sex_employment": ["sex", "employment"]}
RULES = [
    "age < 16 -> employment == under 16",
    "relationship == spouse -> age >= 18",
    "relationship in [householder, unmarried partner] -> age >= 16",
    "relationship == parent -> age >= 35",
    "school in [preschool, kindergarten] -> age < 7",
    "school == graduate or professional -> age >= 18",
    "household_size == 1 person -> relationship in [householder, group quarters]",
    "relationship == group quarters -> household_size == group quarters",
]
CONSTRAINTS = [
    "school == grades 1-4 -> age >= 5 and age < 12",
    "school == grades 9-12 -> age >= 12",
    "school == undergraduate -> age >= 16",
    "relationship == roommate or boarder -> age >= 16",
    "relationship == child -> age < 70",
    "relationship == grandchild -> age < 40",
]


def wheel_path() -> Path:
    return wheel("activitysim==1.6.0", WHEEL, WHEEL_SHA256)


def read_semcog(wheel: Path) -> pd.DataFrame:
    """Every person, the 8 variables with labels (see the module's docstring)."""
    with zipfile.ZipFile(wheel) as z:
        persons = pd.read_csv(io.BytesIO(z.read(f"{FOLDER}/persons.csv")))
        households = pd.read_csv(io.BytesIO(z.read(f"{FOLDER}/households.csv")))
    data = persons.merge(households[["household_id", "persons", "type", "hincp"]], on="household_id", how="left",
                         validate="many_to_one")
    size = np.where(data["type"] == 3, "group quarters",
                    np.asarray(SIZES[:5], dtype=object)[np.clip(data["persons"].fillna(1).astype(int), 1, 5) - 1])
    income = np.asarray(INCOMES, dtype=object)[np.searchsorted([25_000, 50_000, 100_000], data["hincp"].fillna(0), side="right")]
    out = pd.DataFrame({
        "age": data["age"].astype(int),
        "sex": data["sex"].map({1: "male", 2: "female"}),
        "relationship": data["relate"].map(RELATIONSHIP),
        "race": data["race_id"].map(RACE),
        "employment": data["esr"].map(EMPLOYMENT).fillna("under 16"),
        "school": data["schg"].map(SCHOOL).fillna("not attending"),
        "household_size": size,
        "household_income": income,
    })
    missing = out.isna().any(axis=1)
    if missing.any():
        raise RuntimeError(f"{wheel}: {int(missing.sum())} persons with a code not mapped, e.g. "
                           f"{persons.loc[missing].iloc[0].to_dict()}")
    return out


def write_case(folder: Path, data: pd.DataFrame, n: int, *, with_constraints: bool = False, seed: int = 7) -> Path:
    return write_spec(folder, data, name="semcog", entity=ENTITY, population=POPULATION, variables=VARIABLES, edges=EDGES,
                      joints=JOINTS, rules=RULES, constraints=CONSTRAINTS if with_constraints else [], n=n, seed=seed)
