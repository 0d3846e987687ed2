"""A third record shape added as docs/architecture.md says — persons with their phone calls
(tests/toy_calls.py) — runs through the one command line and the shared core."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import toy_calls
from typer.testing import CliRunner

from llmsynthor.cli import app, registry

SPEC = """
kind: calls
name: calls
seed: 3
persons: 200
max_calls: 3
person:
  age: {values: [child, adult, senior]}
call:
  purpose: {values: [family, business, school]}
targets:
  - {name: persons_by_age, variables: [age], cells: [{age: child, count: 40}, {age: adult, count: 110}, {age: senior, count: 50}]}
  - {name: calls_by_purpose, variables: [purpose], cells: [{purpose: family, count: 150}, {purpose: business, count: 120},
     {purpose: school, count: 30}]}
  - name: calls_by_age_purpose
    variables: [age, purpose]
    cells: [{age: child, purpose: family, count: 30}, {age: child, purpose: school, count: 20},
            {age: adult, purpose: family, count: 90}, {age: adult, purpose: business, count: 100},
            {age: senior, purpose: family, count: 30}, {age: senior, purpose: business, count: 20},
            {age: senior, purpose: school, count: 10}]
constraints:
  - "age == child -> purpose != business"
"""


@pytest.fixture
def calls_shape(monkeypatch):
    monkeypatch.setitem(registry.SHAPES, toy_calls.KIND, toy_calls)


def write(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "calls.yaml"
    path.write_text(text)
    return path


def test_the_toy_shape_runs_through_the_command_line_and_meets_its_tables(tmp_path, calls_shape):
    spec = write(tmp_path)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    persons = pd.read_csv(tmp_path / "out" / "persons.csv")
    calls = pd.read_csv(tmp_path / "out" / "calls.csv")
    assert list(persons.columns[:1]) == ["person_id"] and list(calls.columns[:2]) == ["person_id", "call_id"]
    assert len(persons) == 200 and persons["person_id"].tolist() == list(range(1, 201))
    assert set(calls["person_id"]) <= set(persons["person_id"])
    assert persons["age"].value_counts().to_dict() == {"adult": 110, "senior": 50, "child": 40}
    joined = calls.merge(persons, on="person_id")
    assert not ((joined["age"] == "child") & (joined["purpose"] == "business")).any()  # the constraint holds
    by_purpose = calls["purpose"].value_counts()
    assert abs(by_purpose.sum() - 300) <= 6 and abs(by_purpose["family"] - 150) <= 6  # list balanced, then whole persons
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tvd"] == {"persons_by_age": 0.0, "calls_by_purpose": 0.0, "calls_by_age_purpose": 0.0}  # met exactly
    assert manifest["persons"] == 200 and manifest["calls"] == len(calls) == 300


def test_a_constraint_the_tables_contradict_is_named_before_any_work(tmp_path, calls_shape):
    spec = write(tmp_path, SPEC.replace("age == child -> purpose != business", "age == adult -> purpose != family"))
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "calls_by_age_purpose" in text and "age = adult, purpose = family" in text and "'age == adult -> purpose != family'" in text
    assert not (tmp_path / "out").exists()


def test_check_dispatches_to_the_toy_and_what_it_does_not_offer_is_said(tmp_path, calls_shape):
    spec = write(tmp_path)
    assert CliRunner().invoke(app, ["check", str(spec)]).exit_code == 0
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "x.csv"), "--spec", str(spec)])
    assert result.exit_code == 2 and "offers run and check only" in " ".join(result.output.split())


def test_an_unregistered_kind_is_refused_naming_the_known_ones(tmp_path):
    result = CliRunner().invoke(app, ["check", str(write(tmp_path))])
    assert result.exit_code == 2 and "'calls' is no record shape" in " ".join(result.output.split())


def test_the_toy_shape_stays_small():
    assert len(Path(toy_calls.__file__).read_text().splitlines()) < 300
