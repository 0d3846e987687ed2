"""Evaluation: metric definitions, held-out tables, realism rules, C2ST, diversity and privacy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE
from typer.testing import CliRunner

from llmsynthor import SpecError, load_spec, load_targets
from llmsynthor.cli import app
from llmsynthor.datasets import ecommerce_sample
from llmsynthor.evaluation import evaluate, hellinger, srmse
from llmsynthor.rules import parse_rule


@pytest.fixture(scope="module")
def targets():
    return load_targets(load_spec(EXAMPLE / "spec.yaml"))


@pytest.fixture(scope="module")
def reference():
    return pd.read_csv(EXAMPLE / "reference.csv")


def test_metric_definitions():
    assert hellinger(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert hellinger(np.array([2, 2]), np.array([1, 1])) == 0
    # proportions (.75, .25) vs (.5, .5): RMSE .25 over mean .5
    assert srmse(np.array([3, 1]), np.array([1, 1])) == pytest.approx(0.5)


def test_rules_parse_and_count_violations(targets):
    schema = targets.schema
    rule = parse_rule("category == Electronics and age >= 60 -> price < 1500", schema)
    frame = pd.DataFrame({"age": [70, 70, 30], "gender": ["Male"] * 3, "location": ["Developed"] * 3,
                          "category": ["Electronics", "Electronics", "Electronics"],
                          "price": [1800.0, 100.0, 1900.0], "payment": ["COD"] * 3})
    assert rule.violations(frame).tolist() == [True, False, False]
    member = parse_rule("age < 25 -> category not in [Furniture & Appliances]", schema)
    assert member.consequence[0].value == ["Furniture & Appliances"]


@pytest.mark.parametrize("text, message", [
    ("age < 18", "exactly one '->'"),
    ("agee < 18 -> price > 1", "unknown variable 'agee'"),
    ("category == Toys -> price > 1", "'Toys' is not one of the values of 'category'"),
    ("category < Apparel -> price > 1", "'category' is categorical; expected ==, !=, in or not in"),
    ("age < young -> price > 1", "'age' is numeric; expected a number"),
    ("age ~ 3 -> price > 1", "cannot read 'age ~ 3'"),
])
def test_bad_rules_are_named(targets, text, message):
    with pytest.raises(SpecError, match=message):
        parse_rule(text, targets.schema, where="spec.yaml: rules[0]")


def test_a_real_sample_scores_near_the_floor_and_a_shuffled_one_does_not(targets, reference):
    rules = [parse_rule("category == Electronics -> price >= 20", targets.schema)]
    real = evaluate(ecommerce_sample(2000, seed=99), targets, reference=reference, rules=rules)
    # break every dependency: each column shuffled on its own (marginals kept)
    rng = np.random.default_rng(0)
    shuffled = reference.apply(lambda c: c.sample(frac=1, random_state=int(rng.integers(1e9))).to_numpy())
    broken = evaluate(shuffled, targets, reference=reference, rules=rules)
    assert set(real.on_targets) == {t.name for t in targets}
    assert len(real.held_out) == 15 + 20 - 3  # all 2- and 3-way tables but the 3 target joints
    assert "age × gender × category" not in real.held_out and "age × location" in real.held_out
    assert real.summary()["heldout_jsd_mean"] < broken.summary()["heldout_jsd_mean"]
    assert broken.on_targets["age"]["tvd"] < 1e-9  # shuffling keeps marginals exactly
    assert broken.on_targets["category_price"]["jsd"] > 3 * real.on_targets["category_price"]["jsd"]
    assert real.c2st < broken.c2st
    assert 0 <= real.rules["category == Electronics -> price >= 20"]["synthetic"] < 0.1
    assert real.distinct_share > 0.9 and real.dcr_median is not None and real.dcr_reference_median > 0
    assert set(real.wasserstein) == {"age", "price"}


def test_duplicates_are_counted(targets):
    records = pd.concat([ecommerce_sample(50, seed=1)] * 2, ignore_index=True)
    result = evaluate(records, targets)
    assert result.duplicates == 50 and result.distinct_share == pytest.approx(0.5)
    assert result.held_out == {} and result.c2st is None


def test_evaluate_command(tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", str(EXAMPLE / "reference.csv"), "--spec", str(EXAMPLE / "spec.yaml"),
                                      "--reference", str(EXAMPLE / "reference.csv"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "held-out" in result.output and "C2ST" in result.output
    import json

    data = json.loads(out.read_text())
    assert data["on_targets"]["age"]["tvd"] == 0 and data["held_out"]["age × location"]["jsd"] == 0
    missing = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope.csv"), "--spec", str(EXAMPLE / "spec.yaml")])
    assert missing.exit_code == 2 and "nope.csv" in missing.output
