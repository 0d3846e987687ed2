"""suggest-constraints: the combinations the model's pairwise prior rules out, written as constraints a
user can paste, with what each costs and how the model's zeros fare where a table knows the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from fakes import FakeLLM, KnowingFakeLLM
from test_copula import SPEC as HOUSEHOLDS  # the households spec of the prior's tests
from typer.testing import CliRunner

from llmsynthor import load_targets
from llmsynthor.cli import app
from llmsynthor.core.rules import parse_rule
from llmsynthor.declarations.spec import parse_spec
from llmsynthor.prior.copula import PairwisePrior, prior_levels, score_prior
from llmsynthor.prior.suggest import format_constraint, suggest

# sex (2 levels) is the context: P(relationship | sex); lifts 0.02 / 0.4 = 0.05 for the crossed-out ones
KNOWLEDGE = {("sex = Male", "relationship"): (0.78, 0.02, 0.2), ("sex = Female", "relationship"): (0.02, 0.78, 0.2)}


def scored(spec: dict = HOUSEHOLDS, knowledge: dict = KNOWLEDGE):
    targets = load_targets(parse_spec(spec))
    return targets, score_prior(targets, KnowingFakeLLM(knowledge), targets.schema)


def record(**values) -> pd.DataFrame:
    return pd.DataFrame([values])


# -- the pure part: suggestions from a prior and the targets --------------------------------------


def test_a_ruled_out_pair_becomes_a_constraint_that_parses_and_that_such_a_record_breaks():
    targets, prior = scored()
    found = suggest(prior, targets)
    texts = [s.constraint for s in found.suggestions]
    assert texts == ["sex == Female -> relationship != Husband", "sex == Male -> relationship != Wife"]
    rule = parse_rule(texts[0], targets.schema)
    assert rule.violations(record(sex="Female", relationship="Husband", age=40))[0]
    assert not rule.violations(record(sex="Male", relationship="Husband", age=40))[0]
    assert not rule.violations(record(sex="Female", relationship="Wife", age=40))[0]
    first = found.suggestions[0]
    assert first.lift == pytest.approx(0.05) and first.share == pytest.approx(0.5 * 0.4)  # P(Female) · P(Husband)


def test_the_threshold_is_respected():
    knowledge = {("sex = Male", "relationship"): (0.76, 0.04, 0.2), ("sex = Female", "relationship"): (0.02, 0.78, 0.2)}
    targets, prior = scored(knowledge=knowledge)  # lifts: Male & Wife 0.04 / 0.41 ≈ 0.098, Female & Husband 0.02 / 0.39 ≈ 0.051
    assert [s.constraint for s in suggest(prior, targets, threshold=0.05).suggestions] == []
    assert [s.constraint for s in suggest(prior, targets, threshold=0.06).suggestions] == ["sex == Female -> relationship != Husband"]
    loose = suggest(prior, targets, threshold=0.1).suggestions
    assert len(loose) == 2 and all(s.lift <= 0.1 for s in loose)


def test_several_ruled_out_values_of_one_level_are_merged_and_the_costliest_come_first():
    spec = {**HOUSEHOLDS, "variables": {**HOUSEHOLDS["variables"],
                                        "relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child", "Unmarried"]}},
            "targets": [{"name": "relationship", "variables": ["relationship"],
                         "cells": [{"relationship": r, "count": 250} for r in ("Husband", "Wife", "Own-child", "Unmarried")]},
                        HOUSEHOLDS["targets"][1]]}
    knowledge = {("sex = Male", "relationship"): (0.5, 0.01, 0.4, 0.09), ("sex = Female", "relationship"): (0.01, 0.6, 0.005, 0.385)}
    targets, prior = scored(spec, knowledge)
    found = suggest(prior, targets)
    assert [s.constraint for s in found.suggestions] == ["sex == Female -> relationship not in [Husband, Own-child]",
                                                         "sex == Male -> relationship != Wife"]
    merged = found.suggestions[0]
    assert merged.values == ("Husband", "Own-child") and merged.share == pytest.approx(0.5 * 0.5)
    assert merged.lift == pytest.approx(max(merged.lifts)) and len(merged.lifts) == 2
    rule = parse_rule(merged.constraint, targets.schema)
    assert list(rule.violations(pd.DataFrame({"sex": ["Female"] * 4, "relationship": ["Husband", "Wife", "Own-child", "Unmarried"]}))) == \
        [True, False, True, False]


def test_a_constraint_the_spec_has_already_is_not_suggested_again():
    targets, prior = scored()
    known = [parse_rule("sex == Female -> relationship != Husband", targets.schema)]
    assert [s.constraint for s in suggest(prior, targets, known=known).suggestions] == ["sex == Male -> relationship != Wife"]


NUMERIC = {
    "name": "people", "n_records": 1000,
    "variables": {
        "age": {"type": "integer", "min": 0, "max": 90},
        "status": {"type": "categorical", "values": ["Child", "Working", "Retired"]},
        "income": {"type": "float", "min": 0, "max": 100},
    },
    "targets": [
        {"name": "age", "variables": ["age"], "cells": [{"age": "[0,18)", "count": 200}, {"age": "[18,65)", "count": 600},
                                                         {"age": "[65,90]", "count": 200}]},
        {"name": "status", "variables": ["status"], "cells": [{"status": "Child", "count": 200}, {"status": "Working", "count": 600},
                                                               {"status": "Retired", "count": 200}]},
        {"name": "income", "variables": ["income"], "cells": [{"income": "[0,10.5)", "count": 300}, {"income": "[10.5,40)", "count": 400},
                                                               {"income": "[40,100]", "count": 300}]},
    ],
}


def numeric_prior(lifts: dict) -> tuple:
    targets = load_targets(parse_spec(NUMERIC))
    return targets, PairwisePrior(prior_levels(targets), {k: np.array(v, dtype=float) for k, v in lifts.items()})


def points(targets, variable: str, level: int) -> list:
    """Values of every part of a level: a category, or a numeric bin's ends and middle."""
    axis = prior_levels(targets)[variable].axis
    if not axis.is_numeric:
        return [axis.labels[level]]
    var = targets.schema[variable]
    lo, hi = float(axis.edges[level]), float(axis.edges[level + 1])
    last = hi - 1 if var.type == "integer" else (hi if hi >= var.top else hi - 1e-9)
    return [lo, (lo + last) / 2, last]


def assert_forbids_exactly(targets, text: str, c: str, i: int, a: str, ruled: set[int]):
    """The constraint breaks a record with c at level i and a in a ruled-out level, and no other record of the pair."""
    rule = parse_rule(text, targets.schema)
    levels = prior_levels(targets)
    for ci in range(levels[c].axis.size):
        for aj in range(levels[a].axis.size):
            frame = pd.DataFrame([{c: x, a: y} for x in points(targets, c, ci) for y in points(targets, a, aj)])
            broken = rule.violations(frame)
            assert broken.all() if (ci == i and aj in ruled) else not broken.any(), (text, ci, aj)


def test_numeric_bins_are_written_with_their_bounds():
    ones = np.ones((3, 3))
    age_status = ones.copy()
    age_status[0, 1] = age_status[0, 2] = 0.02  # a child neither works nor is retired
    age_status[1, 0] = 0.02  # [18,65): no Child
    age_status[2, 0] = 0.02  # [65,90]: no Child
    status_income = ones.copy()
    status_income[0, 1] = status_income[0, 2] = 0.02  # a Child earns under 10.5
    status_income[2, 1] = 0.02  # Retired: not the middle bin [10.5,40)
    age_income = ones.copy()
    age_income[1, 1] = 0.02  # [18,65) × [10.5,40): both middle ranges
    targets, prior = numeric_prior({("age", "status"): age_status, ("status", "income"): status_income, ("age", "income"): age_income})
    found = {(s.context, s.level, s.answer): s for s in suggest(prior, targets).suggestions}
    expected = {
        ("age", "[0,18)", "status"): "age < 18 -> status not in [Working, Retired]",
        ("age", "[18,65)", "status"): "age >= 18 and age < 65 -> status != Child",
        ("age", "[65,90]", "status"): "age >= 65 -> status != Child",  # the integer's closed last bin: no upper bound
        ("status", "Child", "income"): "status == Child -> income < 10.5",  # two adjacent bins merged: the float's top
        ("status", "Retired", "income"): "income >= 10.5 and income < 40 -> status != Retired",  # a middle range: turned round
        ("age", "[18,65)", "income"): "age >= 18 and age < 65 and income >= 10.5 -> income >= 40",
    }
    assert {k: s.constraint for k, s in found.items()} == expected
    for (c, _, a), s in found.items():
        axes = prior_levels(targets)
        i = axes[c].axis.labels.index(s.level)
        assert_forbids_exactly(targets, s.constraint, c, i, a, {axes[a].axis.labels.index(v) for v in s.values})
    assert format_constraint(targets.schema, "age", prior_levels(targets)["age"].axis, 0, "income",
                             prior_levels(targets)["income"].axis, [2]) == "age < 18 -> income < 40"


def test_a_label_the_list_syntax_cannot_hold_is_suggested_value_by_value():
    spec = {**HOUSEHOLDS, "variables": {**HOUSEHOLDS["variables"],
                                        "relationship": {"type": "categorical", "values": ["Husband, spouse", "Wife, spouse", "Own-child"]}},
            "targets": [{"name": "relationship", "variables": ["relationship"],
                         "cells": [{"relationship": "Husband, spouse", "count": 500}, {"relationship": "Wife, spouse", "count": 250},
                                   {"relationship": "Own-child", "count": 250}]},
                        HOUSEHOLDS["targets"][1]]}
    knowledge = {("sex = Male", "relationship"): (0.45, 0.45, 0.1), ("sex = Female", "relationship"): (0.005, 0.005, 0.99)}
    targets, prior = scored(spec, knowledge)
    texts = [s.constraint for s in suggest(prior, targets).suggestions]
    assert texts == ["sex == Female -> relationship != Husband, spouse", "sex == Female -> relationship != Wife, spouse"]
    for text in texts:
        parse_rule(text, targets.schema)


def test_a_model_zero_where_the_table_has_records_is_reported_as_contradicted():
    targets, prior = scored()
    checked = np.ones((2, 3))  # age × relationship, which the table age_relationship crosses
    checked[1, 2] = 0.02  # adults are no Own-child: the table agrees (0 records)
    checked[1, 0] = 0.03  # adults are no Husband: the table has 400
    prior.checked = {("age", "relationship"): checked}
    found = suggest(prior, targets)
    assert [(z.constraint, z.contradicted) for z in found.checked] == [("age >= 18 -> relationship != Husband", True),
                                                                        ("age >= 18 -> relationship != Own-child", False)]
    assert found.checked[0].verdict().startswith("contradicted by table age_relationship (400 records")
    assert found.checked[1].verdict() == "confirmed by table age_relationship (0 records)"
    assert found.summary().startswith("of the model's 2 zeros on crossed pairs, 1 are confirmed by the tables")
    assert [s.constraint for s in found.suggestions] == ["sex == Female -> relationship != Husband", "sex == Male -> relationship != Wife"]


def test_the_yaml_block_pastes_into_a_spec():
    targets, prior = scored()
    found = suggest(prior, targets)
    block = found.as_yaml(model="fake")
    assert "confirm each one before use" in block
    pasted = parse_spec({**HOUSEHOLDS, **yaml.safe_load(block)})
    assert pasted.constraints == [s.constraint for s in found.suggestions]
    assert yaml.safe_load(found.as_yaml(limit=1))["constraints"] == [found.suggestions[0].constraint]


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "households.yaml"
    path.write_text(yaml.safe_dump(HOUSEHOLDS, sort_keys=False))
    return path


def backend(monkeypatch, make):
    made = []

    def factory(settings, cache=None):
        made.append(make())
        return made[-1]

    monkeypatch.setattr("llmsynthor.api.make_backend", factory)
    return made


def test_the_command_prints_the_suggestions_and_the_check(spec_file, monkeypatch):
    made = backend(monkeypatch, lambda: KnowingFakeLLM(KNOWLEDGE))
    result = CliRunner().invoke(app, ["suggest-constraints", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "suggested constraints: 2 of 2" in result.stdout
    assert "sex == Female -> relationship != Husband" in result.stdout
    assert "20.00%" in result.stdout  # P(Female) · P(Husband)
    assert "nothing to check its zeros against" in result.stdout  # the fake rules out nothing of age × relationship
    assert "pair 1/3 age × relationship" in result.stderr and "pair 3/3" in result.stderr
    assert len(made) == 1 and len(made[0].scorings) == 6  # 2 levels of the context in each of 3 pairs


def test_the_yaml_option_prints_a_block_ready_to_paste(spec_file, monkeypatch):
    backend(monkeypatch, lambda: KnowingFakeLLM(KNOWLEDGE))
    result = CliRunner().invoke(app, ["suggest-constraints", str(spec_file), "--yaml", "--max", "1"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == {"constraints": ["sex == Female -> relationship != Husband"]}
    assert "suggested constraints: 1 of 2" in result.stderr


def test_a_bad_spec_fails_before_any_model_is_made(spec_file, monkeypatch):
    made = backend(monkeypatch, lambda: KnowingFakeLLM(KNOWLEDGE))
    bad = {**HOUSEHOLDS, "targets": [{**HOUSEHOLDS["targets"][0], "cells": [{"relationship": "Wfe", "count": 400}]},
                                     *HOUSEHOLDS["targets"][1:]]}
    spec_file.write_text(yaml.safe_dump(bad, sort_keys=False))
    result = CliRunner().invoke(app, ["suggest-constraints", str(spec_file)])
    assert result.exit_code == 2, result.output
    assert str(spec_file) in result.output and "'Wfe'" in result.output and "Traceback" not in result.output
    assert made == []


def test_a_broken_constraint_in_the_spec_fails_before_any_model_is_made(spec_file, monkeypatch):
    made = backend(monkeypatch, lambda: KnowingFakeLLM(KNOWLEDGE))
    spec_file.write_text(yaml.safe_dump({**HOUSEHOLDS, "constraints": ["sex == Femal -> relationship != Husband"]}))
    result = CliRunner().invoke(app, ["suggest-constraints", str(spec_file)])
    assert result.exit_code == 2 and "constraints[0]" in result.output and made == []


def test_a_backend_without_token_probabilities_is_one_line_exit_2(spec_file, monkeypatch):
    backend(monkeypatch, FakeLLM)
    result = CliRunner().invoke(app, ["suggest-constraints", str(spec_file)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("llmsynthor: invalid input:")
    assert "gives no token probabilities" in result.stderr and "Traceback" not in result.output


@pytest.mark.model
def test_the_command_on_the_default_model(tmp_path, monkeypatch):
    """Through the real Qwen2.5-Coder-1.5B: a spec of three categorical variables, marginals only."""
    monkeypatch.chdir(tmp_path)
    spec = {"name": "people", "entity": "person", "n_records": 1000,
            "variables": {"relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child"]},
                          "sex": {"type": "categorical", "values": ["Male", "Female"]},
                          "marital": {"type": "categorical", "values": ["Married", "Never married"]}},
            "targets": [{"name": "relationship", "variables": ["relationship"],
                         "cells": [{"relationship": "Husband", "count": 400}, {"relationship": "Wife", "count": 400},
                                   {"relationship": "Own-child", "count": 200}]},
                        {"name": "sex", "variables": ["sex"], "cells": [{"sex": "Male", "count": 500}, {"sex": "Female", "count": 500}]},
                        {"name": "marital", "variables": ["marital"],
                         "cells": [{"marital": "Married", "count": 800}, {"marital": "Never married", "count": 200}]}]}
    path = tmp_path / "people.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = CliRunner().invoke(app, ["suggest-constraints", str(path), "--no-cache"])  # the model itself, not stored answers
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "suggested constraints:" in result.stdout and "no target table crosses two scored variables" in result.stdout
