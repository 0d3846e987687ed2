"""records: joint — the prior is checked on the tables that cross variables, tempered, and joins the
tables through a prior-weighted pool raked to the targets; constraints hold in every record; a
plan that would leave the model nothing to decide is not sent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeLLM, KnowingFakeLLM
from typer.testing import CliRunner

from llmsynthor import Synthesizer, load_targets
from llmsynthor.cli import app
from llmsynthor.core.errors import SpecError
from llmsynthor.core.metrics import tvd
from llmsynthor.core.rules import parse_rule
from llmsynthor.core.statistics import count_all
from llmsynthor.core.within_bin import shapes_from_targets
from llmsynthor.declarations.spec import parse_spec
from llmsynthor.fitting.joint_candidates import build_pool, joint_records
from llmsynthor.prior.copula import PHRASINGS, prior_levels, score_prior
from llmsynthor.prior.tempering import check_prior, true_lift

SEX = ["Male", "Female"]
REL = ["Husband", "Wife", "Child"]
AGE = ["0-17", "18-64", "65+"]
MARITAL = ["Never", "Married", "Widowed"]
# a truth with strong structure; the spec gives sex × relationship and age × marital as tables,
# so the model's knowledge of those two pairs can be checked; relationship × marital is free
SPEC = {
    "name": "people", "entity": "person", "n_records": 1000, "seed": 5,
    "variables": {"sex": {"type": "categorical", "values": SEX}, "relationship": {"type": "categorical", "values": REL},
                  "age": {"type": "categorical", "values": AGE}, "marital": {"type": "categorical", "values": MARITAL}},
    "targets": [
        {"name": "sex_relationship", "variables": ["sex", "relationship"], "cells": [
            {"sex": "Male", "relationship": "Husband", "count": 350}, {"sex": "Male", "relationship": "Wife", "count": 0},
            {"sex": "Male", "relationship": "Child", "count": 150}, {"sex": "Female", "relationship": "Husband", "count": 0},
            {"sex": "Female", "relationship": "Wife", "count": 350}, {"sex": "Female", "relationship": "Child", "count": 150}]},
        {"name": "age_marital", "variables": ["age", "marital"], "cells": [
            {"age": "0-17", "marital": "Never", "count": 300}, {"age": "0-17", "marital": "Married", "count": 0},
            {"age": "0-17", "marital": "Widowed", "count": 0}, {"age": "18-64", "marital": "Never", "count": 50},
            {"age": "18-64", "marital": "Married", "count": 450}, {"age": "18-64", "marital": "Widowed", "count": 0},
            {"age": "65+", "marital": "Never", "count": 0}, {"age": "65+", "marital": "Married", "count": 100},
            {"age": "65+", "marital": "Widowed", "count": 100}]},
    ],
}
RIGHT = {  # what a knowing model says: the tables' own conditionals, and that children are not married
    ("sex = Male", "relationship"): (0.7, 0.0, 0.3), ("sex = Female", "relationship"): (0.0, 0.7, 0.3),
    ("age = 0-17", "marital"): (1.0, 0.0, 0.0), ("age = 18-64", "marital"): (0.1, 0.9, 0.0),
    ("age = 65+", "marital"): (0.0, 0.5, 0.5),
    ("relationship = Husband", "marital"): (0.02, 0.9, 0.08), ("relationship = Wife", "marital"): (0.02, 0.9, 0.08),
    ("relationship = Child", "marital"): (0.96, 0.02, 0.02),
}
WRONG = {  # a confident model that inverts what the tables say
    ("sex = Male", "relationship"): (0.0, 0.7, 0.3), ("sex = Female", "relationship"): (0.7, 0.0, 0.3),
    ("age = 0-17", "marital"): (0.0, 1.0, 0.0), ("age = 18-64", "marital"): (0.9, 0.0, 0.1),
    ("age = 65+", "marital"): (1.0, 0.0, 0.0),
    ("relationship = Husband", "marital"): (0.96, 0.02, 0.02), ("relationship = Child", "marital"): (0.02, 0.96, 0.02),
}


def spec(**synthesis):
    return parse_spec({**SPEC, "synthesis": synthesis})


def synthesize(knowledge, **synthesis):
    llm = KnowingFakeLLM(knowledge, seed=1)
    synth = Synthesizer(spec(**synthesis), llm)
    return synth, synth.run(), llm


def test_the_check_turns_a_wrong_prior_down_and_keeps_a_right_one():
    targets = load_targets(spec())
    axes = {name: lv.axis for name, lv in prior_levels(targets).items()}
    right = score_prior(targets, KnowingFakeLLM(RIGHT), targets.schema)
    wrong = score_prior(targets, KnowingFakeLLM(WRONG), targets.schema)
    assert sorted(right.checked) == [("sex", "relationship"), ("age", "marital")] or len(right.checked) == 2
    good, bad = check_prior(right.checked, targets, axes), check_prior(wrong.checked, targets, axes)
    assert good.strength >= 0.75 and good.zeros and good.correlation > 0.8
    assert bad.strength <= 0.125 and not bad.zeros and bad.correlation < 0
    assert bad.errors[0.0] < bad.errors[1.0]  # the inverted lifts are worse than knowing nothing
    assert good.errors[good.strength] < good.errors[0.0]
    assert "crossed pair" in good.reason and good.as_dict()["pairs_checked"]


def test_no_crossed_table_means_the_conservative_default_said_so():
    data = {**SPEC, "targets": [{"name": v, "variables": [v], "cells": [{v: x, "count": 1000 / len(vals)} for x in vals]}
                                for v, vals in (("sex", SEX), ("relationship", REL))]}
    data["n_records"] = 1200
    targets = load_targets(parse_spec(data))
    check = check_prior({}, targets, {})
    assert check.strength == 0.25 and "conservative default" in check.reason and check.pairs == ()


def test_an_ignorant_model_gets_the_default_not_zero():
    targets = load_targets(spec())
    axes = {name: lv.axis for name, lv in prior_levels(targets).items()}
    flat = score_prior(targets, KnowingFakeLLM({}), targets.schema)  # uniform everywhere: lifts of 1
    check = check_prior(flat.checked, targets, axes)
    assert check.strength == 0.25 and "equally at every strength" in check.reason


def test_joint_records_meet_the_tables_and_follow_a_right_prior():
    synth, result, llm = synthesize(RIGHT)
    targets = load_targets(synth.spec)
    assert result.converged and len(result.records) == 1000
    assert all(tvd(c, t.counts) <= 0.01 for c, t in zip(count_all(result.records, targets), targets))
    r = result.records
    married_children = ((r["relationship"] == "Child") & (r["marital"] == "Married")).mean()
    assert synth.prior_check_.strength >= 0.75 and married_children < 0.02
    # nothing for the model to decide (every variable categorical): scorings only, no plan call
    assert llm.calls == [] and result.usage.calls == 0 and result.usage.option_scorings > 0
    assert result.prior_check["strength"] == synth.prior_check_.strength
    assert any("no plan call" in note for note in result.notes)


def test_a_wrong_prior_is_turned_down_to_near_independence_in_the_records():
    _, wrong, _ = synthesize(WRONG)
    _, independent, _ = synthesize(WRONG, prior_strength=0.0)
    assert wrong.prior_check["strength"] <= 0.125

    def share(r):
        return float(((r["relationship"] == "Child") & (r["marital"] == "Married")).mean())

    # the inverted prior would put married children everywhere; tempered, it stays near independence
    assert abs(share(wrong.records) - share(independent.records)) < 0.05


def test_a_fixed_strength_overrides_the_check_and_says_so():
    synth, result, _ = synthesize(WRONG, prior_strength=1.0)
    assert synth.prior_check_.strength == 1.0 and "set by synthesis.prior_strength" in synth.prior_check_.reason


def test_constraints_hold_in_every_record_and_the_targets_still_do():
    constraints = ["age == 0-17 -> relationship == Child", "relationship == Child -> marital == Never"]
    data = {**SPEC, "constraints": constraints}
    for records in ("joint", "proposals"):
        s = parse_spec({**data, "synthesis": {"records": records, "max_iterations": 12}})
        result = Synthesizer(s, KnowingFakeLLM({}, seed=2)).run()
        rules = [parse_rule(c, s.record_schema) for c in constraints]
        assert sum(int(rule.violations(result.records).sum()) for rule in rules) == 0, records
        if records == "joint":  # the loop's focus cells do not know the constraints: only the joint model meets both
            targets = load_targets(s)
            assert all(tvd(c, t.counts) <= 0.01 for c, t in zip(count_all(result.records, targets), targets))


def test_a_constraint_that_contradicts_a_table_is_named_before_any_llm_call():
    data = {**SPEC, "constraints": ["age == 65+ -> marital == Never"]}  # the table has 200 people of 65+, none never married
    llm = KnowingFakeLLM(RIGHT)
    with pytest.raises(SpecError) as err:
        Synthesizer(parse_spec(data), llm)
    text = str(err.value)
    assert "age_marital" in text and "age = 65+" in text and "'age == 65+ -> marital == Never'" in text
    assert llm.scorings == [] and llm.calls == []


def test_the_pool_keeps_cells_a_table_needs_even_if_the_prior_rules_them_out():
    targets = load_targets(spec())
    axes = targets.finest_axes()
    lift = np.ones((3, 3))  # relationship × marital: the prior rules married children out ...
    zeros = {("relationship", "marital"): np.zeros((3, 3), dtype=bool)}
    zeros[("relationship", "marital")][:, 0] = True  # ... and every never-married record, which the tables need
    pool = build_pool(targets, shapes_from_targets(targets), axes, {("relationship", "marital"): lift}, zeros, [], 20_000,
                      np.random.default_rng(0))
    assert pool.restored > 0 and pool.raked_worst_tvd < 1e-3


def test_joint_records_with_independent_lifts_are_ipf():
    targets = load_targets(spec())
    records, pool, info = joint_records(targets, shapes_from_targets(targets), {}, {}, [], 3.0, 50_000, np.random.default_rng(1))
    assert len(records) == 1000 and info["kept"] == 1000 and info["from_proposals"] == 0
    assert pool.summary()["effective_size"] > 1000
    joint = (records.groupby(["relationship", "marital"]).size() / 1000).unstack(fill_value=0)
    rel, mar = records["relationship"].value_counts(normalize=True), records["marital"].value_counts(normalize=True)
    assert np.allclose(joint.to_numpy(), np.outer(rel[joint.index], mar[joint.columns]), atol=0.04)
    assert np.allclose(true_lift(np.full((2, 2), 0.25)), 1.0)


def test_a_plan_with_nothing_free_makes_no_llm_call(tmp_path):
    llm = FakeLLM(seed=3)  # no token probabilities either: the prior is noted as missing
    result = Synthesizer(spec(records="proposals", max_iterations=10, infer_dependencies=False), llm).run()
    assert llm.calls == [] and result.usage.skipped_plans > 0 and result.converged


def test_the_manifest_has_the_calibration_block(tmp_path, monkeypatch):
    (tmp_path / "spec.yaml").write_text(json.dumps(SPEC))
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: KnowingFakeLLM(RIGHT, seed=1))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "spec.yaml", "--out", "o.csv"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o.manifest.json").read_text())
    block = manifest["prior_calibration"]
    assert block["strength"] >= 0.75 and len(block["pairs_checked"]) == 2 and block["error_independent"] > block["error_chosen"]
    assert manifest["records_from"] == "joint" and manifest["llm"]["skipped_plan_calls"] == 0
    assert "prior: strength" in result.output
    report = CliRunner().invoke(app, ["report", "o.csv", "--spec", "spec.yaml", "--out", "r.html"])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    assert "<h2>The prior</h2>" in page and "sex × relationship" in page and "KL (bits) per strength" in page


def test_a_rare_but_valid_constraint_is_not_taken_for_a_contradiction():
    # 3 soldiers in 10,000 people, 2 % federal workers: independent draws would almost never pair them
    jobs, work = ["Armed", *[f"job{i}" for i in range(12)]], ["Fed", *[f"w{i}" for i in range(7)]]
    job_counts = [3] + [833] * 11 + [10_000 - 3 - 833 * 11]
    work_counts = [200] + [1400] * 6 + [10_000 - 200 - 1400 * 6]
    data = {"n_records": 10_000, "variables": {"job": {"type": "categorical", "values": jobs},
                                               "work": {"type": "categorical", "values": work}},
            "targets": [{"name": "job", "variables": ["job"], "cells": [{"job": j, "count": c} for j, c in zip(jobs, job_counts)]},
                        {"name": "work", "variables": ["work"], "cells": [{"work": w, "count": c} for w, c in zip(work, work_counts)]}],
            "constraints": ["job == Armed -> work == Fed"]}
    result = Synthesizer(parse_spec(data), FakeLLM(seed=1)).run()  # no error before the run
    r = result.records
    assert (r["job"] == "Armed").sum() == 3 and ((r["job"] == "Armed") & (r["work"] != "Fed")).sum() == 0


def test_the_phrasing_the_crossed_tables_prefer_is_used_for_the_rest():
    class KnowsWithShares(KnowingFakeLLM):
        """Right when the options come with their shares, inverted without them."""

        def option_probabilities(self, messages, answer_prefix, options):
            self.knowledge = RIGHT if "% of all" in messages[-1]["content"] else WRONG
            return super().option_probabilities(messages, answer_prefix, options)

    targets = load_targets(spec())
    llm = KnowsWithShares({})
    prior = score_prior(targets, llm, targets.schema, phrasings=PHRASINGS)
    assert prior.phrasing == "shares" and prior.phrasing_errors["shares"] < prior.phrasing_errors["plain"]
    assert prior.lift("relationship", "marital")[2, 1] < 0.1  # the free pair asked with shares: children are not married
    asked_free = [q for q, _ in llm.scorings if "has relationship" in q]
    assert asked_free and all("% of all" in q for q in asked_free)
    synth, result, _ = synthesize(RIGHT, prior_phrasing="auto")  # alike either way: plain, tried first, stays
    assert result.prior_check["phrasing"] == "plain" and set(result.prior_check["least_error_by_phrasing"]) == {"plain", "shares"}
    _, default, llm = synthesize(RIGHT)  # the default asks plainly only
    assert default.prior_check["phrasing"] == "plain" and not any("% of all" in q for q, _ in llm.scorings)


def test_candidates_follow_the_pool_and_numeric_values_are_drawn_afresh_inside_their_bin():
    data = {"n_records": 1000, "variables": {"age": {"type": "integer", "min": 0, "max": 99},
                                             "sex": {"type": "categorical", "values": SEX}},
            "targets": [{"name": "age_sex", "variables": ["age", "sex"], "cells": [
                {"age": "[0,18)", "sex": "Male", "count": 100}, {"age": "[0,18)", "sex": "Female", "count": 100},
                {"age": "[18,65)", "sex": "Male", "count": 300}, {"age": "[18,65)", "sex": "Female", "count": 300},
                {"age": "[65,99]", "sex": "Male", "count": 80}, {"age": "[65,99]", "sex": "Female", "count": 120}]}]}
    targets = load_targets(parse_spec(data))
    pool = build_pool(targets, shapes_from_targets(targets), targets.finest_axes(), {}, {}, [], 2000, np.random.default_rng(0))
    drawn = pool.draw(6000, np.random.default_rng(1))  # three times the pool: records must repeat, their ages need not
    assert len(drawn) == 6000 and drawn["age"].between(0, 99).all() and drawn["age"].dtype.kind == "i"
    assert drawn.duplicated().mean() > 0.9  # 200 distinct (age, sex) pairs at most
    young = (drawn["age"] < 18).mean()
    assert abs(young - 0.2) < 0.02 and abs((drawn["age"] >= 65).mean() - 0.2) < 0.02  # the bins' shares kept
    assert drawn.loc[drawn["age"] >= 65, "sex"].eq("Female").mean() == pytest.approx(0.6, abs=0.03)


def test_the_command_names_a_contradicting_constraint_before_the_model_loads(tmp_path, monkeypatch):
    (tmp_path / "spec.yaml").write_text(json.dumps({**SPEC, "constraints": ["age == 65+ -> marital == Never"]}))
    made = []
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: made.append(1) or KnowingFakeLLM(RIGHT))
    monkeypatch.chdir(tmp_path)
    for args in (["check", "spec.yaml"], ["run", "spec.yaml", "--out", "o.csv"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "age_marital" in result.output and "Traceback" not in result.output
    assert made == []


def test_both_directions_combine_the_two_lifts_by_their_geometric_mean():
    targets = load_targets(spec())
    one = score_prior(targets, KnowingFakeLLM(RIGHT), targets.schema)
    llm = KnowingFakeLLM(RIGHT)  # asked the other way round (marital as the context) it answers uniformly: lifts of 1
    both = score_prior(targets, llm, targets.schema, both_directions=True)
    assert any("has marital = Married" in q for q, _ in llm.scorings)
    pair = ("relationship", "marital")
    assert np.allclose(both.lifts[pair], np.clip(np.sqrt(one.lifts[pair]), 0.02, 50))
