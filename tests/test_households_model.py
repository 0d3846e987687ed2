"""Households with their persons through the real default model (Qwen2.5-Coder-1.5B), end to end:
``llmsynthor run`` on a two-zone household spec cut from the SEMCOG example (its per-zone tables
for two zones), linked households and persons written for both zones. A few minutes on 2 cores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.evaluation import evaluate_households
from llmsynthor.shapes.households.spec import load_household_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "households"
ZONED = ("size_by_zone", "income_by_zone", "workers_by_zone", "age_by_zone")
COMPOSITIONS = 6
CONSTRAINTS = {"households": ["children >= 1 -> adults >= 1"],
               "persons": ["relationship == child -> age < 70", "relationship == spouse -> age >= 16"]}


def two_zone_spec(folder: Path, zones: tuple[int, int]) -> Path:
    """The example's spec with its per-zone tables cut to ``zones`` (region tables left out: they count
    the whole region)."""
    spec = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    (folder / "targets").mkdir()
    tables = []
    for table in spec["targets"]:
        if table["name"] not in ZONED:
            continue
        frame = pd.read_csv(EXAMPLE / table["file"])
        column = table["variables"][0]
        cells = pd.MultiIndex.from_product([zones, frame[column].unique()], names=["zone", column])
        cut = frame.set_index(["zone", column])["count"].reindex(cells, fill_value=0)  # every bin, zeros too
        cut.reset_index().to_csv(folder / table["file"], index=False)
        tables.append(table)
    spec["targets"] = tables
    spec["synthesis"] = {"compositions": COMPOSITIONS, "variants": 20, "filler_households": 500}
    spec["constraints"] = CONSTRAINTS
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.model
def test_two_zones_through_the_default_model(tmp_path):
    sizes = pd.read_csv(EXAMPLE / "targets" / "size_by_zone.csv").groupby("zone")["count"].sum().sort_values()
    zones = tuple(int(z) for z in sizes.index[:2])  # the two smallest zones
    spec_path = two_zone_spec(tmp_path, zones)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "llmsynthor.cli", "run", str(spec_path), "--out", str(out), "--no-cache"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr

    households = pd.read_csv(out / "households.csv")
    persons = pd.read_csv(out / "persons.csv")
    spec = load_household_spec(spec_path)
    targets = load_controls(spec)
    # every zone has its households, every person a household, every household its size in members
    assert households.groupby("zone").size().to_dict() == {z: int(sizes[z]) for z in zones}
    assert persons["household_id"].isin(households["household_id"]).all()
    members = persons.groupby("household_id").size().reindex(households["household_id"]).to_numpy()
    assert (members == households["size"].to_numpy()).all()
    first = persons.sort_values(["household_id", "member"]).groupby("household_id").head(1)
    assert (first["relationship"] == "householder").all()
    assert (persons["relationship"] == "householder").sum() == len(households)

    # measured from the written files, not taken from the manifest
    evaluation = evaluate_households(spec, targets, households, persons)
    assert sum(evaluation.structure.values()) == 0, evaluation.structure
    assert evaluation.rejection["constraint_households"] == 0  # the constraints hold in every household written
    for name, figures in evaluation.on_targets.items():
        assert figures["tvd"] <= 0.05, (name, figures["tvd"])

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "embedded:qwen2.5-coder-1.5b"
    assert manifest["model"]["sha256"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert manifest["compositions"]["requested"] == COMPOSITIONS
    assert 1 <= manifest["compositions"]["accepted"] <= COMPOSITIONS  # the real model's answers, validated
    assert manifest["llm"]["calls"] >= COMPOSITIONS and manifest["llm"]["cache_hits"] == 0
    assert manifest["zones"]["count"] == 2 and manifest["households"] == len(households)
    assert manifest["evaluation"]["summary"]["households"] == len(households)
    constraints = manifest["constraints"]
    assert constraints["households"] == CONSTRAINTS["households"] and constraints["persons"] == CONSTRAINTS["persons"]
    assert sum(constraints["left_out"].values()) > 0  # the real model's candidates and the drawn ones met them only in part
