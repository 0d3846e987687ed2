"""Evaluation: metric definitions, held-out tables, realism rules, C2ST, diversity and privacy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE
from typer.testing import CliRunner

from llmsynthor import SpecError, load_spec, load_targets
from llmsynthor.cli import app
from llmsynthor.core.rules import parse_rule
from llmsynthor.evaluation.cells import hellinger, srmse
from llmsynthor.evaluation.datasets import ecommerce_sample
from llmsynthor.evaluation.scoring import evaluate


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
    data = json.loads(out.read_text())
    assert data["on_targets"]["age"]["tvd"] == 0 and data["held_out"]["age × location"]["jsd"] == 0
    missing = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope.csv"), "--spec", str(EXAMPLE / "spec.yaml")])
    assert missing.exit_code == 2 and "nope.csv" in missing.output


# --- an evaluator that never flatters -----------------------------------------------------------

SPEC = EXAMPLE / "spec.yaml"


def _evaluate_cli(*args):
    return CliRunner().invoke(app, ["evaluate", *map(str, args), "--spec", str(SPEC)])


def _text(result) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(result.output.split())


def _dirty(reference, share=0.05, seed=3):
    """``reference`` with ``share`` of its records given one value outside the domain: half a
    category that does not exist, half an age of 200."""
    rng = np.random.default_rng(seed)
    bad = rng.choice(len(reference), int(share * len(reference)), replace=False)
    dirty = reference.copy()
    dirty["age"] = dirty["age"].astype(object)
    dirty.loc[bad[: len(bad) // 2], "category"] = "Toys"
    dirty.loc[bad[len(bad) // 2:], "age"] = 200
    return dirty, bad


def test_values_outside_the_domain_are_reported_and_score_worse(tmp_path, targets, reference):
    dirty, bad = _dirty(reference)
    assert len(bad) == 100
    clean_result = evaluate(reference, targets, reference=reference)
    dirty_result = evaluate(dirty, targets, reference=reference)
    assert clean_result.outside_domain == {} and clean_result.records_outside_domain == 0
    assert dirty_result.outside_domain["category"] == {"count": 50, "missing": 0, "share": 0.025, "example": "Toys"}
    assert dirty_result.outside_domain["age"]["count"] == 50 and dirty_result.outside_domain["age"]["example"] == 200
    assert dirty_result.records_outside_domain == 100
    # 50 of 2,000 records in a cell whose target is 0: TVD .025, not the ~.001 of renormalising
    assert clean_result.on_targets["category"]["tvd"] == 0
    assert dirty_result.on_targets["category"]["tvd"] == pytest.approx(0.025)
    assert dirty_result.on_targets["age"]["tvd"] == pytest.approx(0.025)
    assert dirty_result.on_targets["age_gender_category"]["tvd"] == pytest.approx(0.05)
    assert dirty_result.outside_cells["age_gender_category"] == 100 and "gender" not in dirty_result.outside_cells
    for metric in ("tvd", "jsd", "hellinger", "srmse"):
        assert dirty_result.on_targets["category"][metric] > clean_result.on_targets["category"][metric] + 0.01
    assert dirty_result.summary()["target_tvd_mean"] > clean_result.summary()["target_tvd_mean"] + 0.01
    assert dirty_result.summary()["heldout_jsd_mean"] > clean_result.summary()["heldout_jsd_mean"]
    assert dirty_result.held_out["age × location"]["tvd"] == pytest.approx(0.025)
    # the reference side likewise: its own out-of-domain records fill the extra cell on its side
    against_dirty = evaluate(reference, targets, reference=dirty)
    assert against_dirty.reference_outside_domain["category"]["count"] == 50
    assert against_dirty.held_out["location × category"]["tvd"] == pytest.approx(0.025)

    # through the command line: reported per variable, in the output and the JSON
    path = tmp_path / "dirty.csv"
    dirty.to_csv(path, index=False)
    cli = _evaluate_cli(path, "--reference", EXAMPLE / "reference.csv", "--json", tmp_path / "dirty.json")
    assert cli.exit_code == 0, cli.output
    assert "values outside the domain" in _text(cli) and "'Toys'" in cli.output and "50 values of 'category'" in _text(cli)
    data = json.loads((tmp_path / "dirty.json").read_text())
    assert data["outside_domain"]["category"]["count"] == 50 and data["outside_domain"]["age"]["example"] == 200
    assert data["summary"]["records_outside_domain"] == 100
    assert data["on_targets"]["category"]["tvd"] == pytest.approx(0.025)


def test_every_kind_of_out_of_domain_value_is_counted(targets):
    from llmsynthor.core.records import outside_domain

    frame = pd.DataFrame({"age": [30, 30.5, 17, np.nan, 90], "gender": ["Male", "Female", None, "male", "Female"],
                          "location": ["Developed"] * 5, "category": ["Apparel"] * 5,
                          "price": [10.0, -1.0, 2000.0, 2000.01, np.inf], "payment": ["COD"] * 5})
    found = outside_domain(frame, targets.schema)
    assert found["age"] == {"count": 3, "missing": 1, "share": 0.6, "example": 30.5}  # 30.5 not whole, 17 < min, NaN
    assert found["gender"]["count"] == 2 and found["gender"]["missing"] == 1 and found["gender"]["example"] == "male"
    assert found["price"]["count"] == 3 and found["price"]["example"] == -1  # -1, 2000.01, inf; 2000 is the closed max
    assert set(found) == {"age", "gender", "price"}
    result = evaluate(frame, targets)
    assert result.records_outside_domain == 4 and result.outside_cells["age"] == 3


def test_strict_fails_naming_variable_count_and_example(tmp_path, reference):
    dirty, _ = _dirty(reference)
    path = tmp_path / "dirty.csv"
    dirty.to_csv(path, index=False)
    cli = _evaluate_cli(path, "--strict")
    assert cli.exit_code == 2
    assert "50 values of 'category' outside the domain (e.g. 'Toys')" in _text(cli)
    assert "50 values of 'age'" in _text(cli) and "e.g. 200" in cli.output and "Traceback" not in cli.output
    clean = _evaluate_cli(EXAMPLE / "reference.csv", "--strict")
    assert clean.exit_code == 0, clean.output
    report = CliRunner().invoke(app, ["report", str(path), "--spec", str(SPEC), "--strict", "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 2 and "'Toys'" in report.output and not (tmp_path / "r.html").exists()


def _write(path, content):
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "the file is empty"),
    ("header.csv", "age,gender,location,category,price,payment\n", "no records (only a header)"),
    ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00binary", "cannot read the CSV"),
    ("ragged.csv", "age,gender,location,category,price,payment\n30,Male,Developed,Apparel,10,COD\n30,Male,Developed,Apparel,10,COD,1,2\n",
     "cannot read the CSV"),
    ("columns.csv", "age,sex,location,category,price\n30,Male,Developed,Apparel,10\n", "missing columns ['gender', 'payment']"),
    ("text.csv", "age,gender,location,category,price,payment\n30,Male,Developed,Apparel,10,COD\nthirty,Male,Developed,Apparel,10,COD\n",
     "column 'age' is numeric but row 2 (line 3 of the file) holds 'thirty'"),
    ("corrupt.parquet", b"PAR1 this is not really parquet", "cannot read the Parquet file"),
    ("empty.parquet", b"", "the file is empty"),
    ("records.xlsx", "x", "unknown extension '.xlsx'"),
])
def test_unreadable_records_are_named_not_tracebacks(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    cli = _evaluate_cli(path)
    assert cli.exit_code == 2, cli.output
    assert message in _text(cli) and name in cli.output
    assert "Traceback" not in cli.output and isinstance(cli.exception, SystemExit)
    as_reference = _evaluate_cli(EXAMPLE / "reference.csv", "--reference", path)
    assert as_reference.exit_code == 2 and message in _text(as_reference)


def test_parquet_records_read_like_csv(tmp_path, reference, targets):
    from llmsynthor.core.records import load_records

    path = tmp_path / "records.parquet"
    reference.to_parquet(path, index=False)
    loaded = load_records(path, targets.schema)
    assert loaded.outside == {} and loaded.frame["age"].dtype == np.int64
    pd.testing.assert_frame_equal(loaded.frame, load_records(EXAMPLE / "reference.csv", targets.schema).frame)
    cli = _evaluate_cli(path)
    assert cli.exit_code == 0, cli.output


def test_an_unwritable_json_path_fails_before_any_work(tmp_path, monkeypatch):
    import llmsynthor.evaluation.scoring

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated before checking --json")

    monkeypatch.setattr(llmsynthor.evaluation.scoring, "evaluate", no_work)
    blocker = _write(tmp_path / "file.txt", "not a folder")
    for target, message in [(blocker / "eval.json", "is a file, not a folder"), (tmp_path, "is an existing folder")]:
        cli = _evaluate_cli(EXAMPLE / "reference.csv", "--json", target)
        assert cli.exit_code == 2, cli.output
        assert "--json" in cli.output and message in _text(cli) and "Traceback" not in cli.output
        assert len(cli.output.strip().splitlines()) == 1


def test_a_json_path_in_a_new_folder_is_written(tmp_path):
    target = tmp_path / "new" / "folder" / "eval.json"
    cli = _evaluate_cli(EXAMPLE / "reference.csv", "--json", target)
    assert cli.exit_code == 0, cli.output
    data = json.loads(target.read_text())
    definitions = data["definitions"]
    assert "outside the domain" in definitions and "meet the condition" in definitions
    assert "shared/docs" not in definitions and ".md" not in definitions  # no file the user does not have


def test_no_user_facing_text_names_files_outside_the_package():
    from llmsynthor.evaluation import scoring as evaluation

    source = Path(evaluation.__file__).parent
    offenders = [p.name for p in source.rglob("*.py") if "shared/docs" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_rule_rates_are_given_among_the_condition_with_denominators(tmp_path, targets, reference):
    records = reference.copy()
    electronics = np.flatnonzero(records["category"].to_numpy() == "Electronics")
    cheap = electronics[: int(0.3 * len(electronics))]
    records.loc[cheap, "price"] = 5.0
    rule = parse_rule("category == Electronics -> price >= 20", targets.schema)
    result = evaluate(records, targets, reference=reference, rules=[rule])
    rates = result.rules[rule.text]
    already = int((reference["category"].eq("Electronics") & reference["price"].lt(20)).sum())
    violations = len(set(cheap) | set(np.flatnonzero((reference["category"].eq("Electronics") & reference["price"].lt(20)).to_numpy())))
    assert rates["synthetic_condition_records"] == len(electronics) and rates["synthetic_records"] == 2000
    assert rates["synthetic_violations"] == violations
    assert rates["synthetic_among_condition"] == pytest.approx(violations / len(electronics))
    assert rates["synthetic"] == pytest.approx(violations / 2000)  # the overall share, kept for callers
    assert rates["reference_violations"] == already and rates["reference_condition_records"] == len(electronics)
    assert rates["synthetic_among_condition"] > 0.29 and rates["synthetic"] < 0.1
    nobody = parse_rule("age > 89 and category == Electronics and price > 1999 -> gender == Male", targets.schema)
    assert evaluate(reference, targets, rules=[nobody]).rules[nobody.text]["synthetic_among_condition"] is None

    path = tmp_path / "cheap.csv"
    records.to_csv(path, index=False)
    cli = _evaluate_cli(path, "--reference", EXAMPLE / "reference.csv", "--json", tmp_path / "e.json")
    assert cli.exit_code == 0, cli.output
    text = _text(cli)
    line = text[text.index("rule category == Electronics -> price >= 20"):][:300]
    share = violations / len(electronics)
    assert f"{share:.1%} of {len(electronics):,} records with category == Electronics violate it" in line
    assert "of all 2,000" in line and "reference:" in line
    data = json.loads((tmp_path / "e.json").read_text())["rules"][rule.text]
    assert data["synthetic_condition_records"] == len(electronics) and data["synthetic_violations"] == violations


def test_without_rules_evaluate_run_and_manifest_say_realism_is_not_scored(tmp_path, monkeypatch, reference):
    import yaml
    from fakes import FakeLLM

    import llmsynthor.api

    shutil.copytree(EXAMPLE / "targets", tmp_path / "targets")
    data = yaml.safe_load(SPEC.read_text())
    del data["rules"]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert "realism" not in _evaluate_cli(EXAMPLE / "reference.csv", "--json", tmp_path / "e.json").output  # it has rules
    cli = CliRunner().invoke(app, ["evaluate", str(EXAMPLE / "reference.csv"), "--spec", str(tmp_path / "spec.yaml"),
                                   "--json", str(tmp_path / "none.json")])
    assert cli.exit_code == 0, cli.output
    assert "realism not scored: no rules in the spec" in cli.output.splitlines() and "rule " not in cli.output
    summary = json.loads((tmp_path / "none.json").read_text())["summary"]
    assert summary["realism"] == "not scored: no rules in the spec" and summary["rule_violations"] is None
    assert json.loads((tmp_path / "e.json").read_text())["summary"]["realism"] == "scored: 4 rules"
    # run: the line before the summary, and the manifest
    monkeypatch.setattr(llmsynthor.api, "make_backend", lambda *args, **kwargs: FakeLLM(domains={"age": (18, 90), "price": (0, 2000)}))
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(app, ["run", "spec.yaml", "--out", "o.csv", "--n", "300", "--no-cache"])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[-2] == "realism not scored: no rules in the spec" and "LLM calls" in lines[-1]
    assert json.loads((tmp_path / "o.manifest.json").read_text())["realism"] == "not scored: no rules in the spec"
    shutil.copy(SPEC, tmp_path / "spec.yaml")  # with its 4 rules: run says nothing of realism, the manifest who scores them
    run = CliRunner().invoke(app, ["run", "spec.yaml", "--out", "r.csv", "--n", "300", "--no-cache"])
    assert run.exit_code == 0, run.output
    assert "realism" not in run.output
    assert json.loads((tmp_path / "r.manifest.json").read_text())["realism"] == ("scored by `llmsynthor evaluate` (4 rules), "
                                                                                "not by run")


def _spec_with_rules(tmp_path, rules):
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("reference.csv"))
    spec = folder / "spec.yaml"
    text = spec.read_text()
    head, tail = text.split("rules:\n", 1)
    tail = tail[tail.index("\n\n"):]  # drop the example's rules
    spec.write_text(head + "rules:\n" + "".join(f"  - {r}\n" for r in rules) + tail)
    return spec


def test_check_and_run_reject_a_broken_rule_before_any_work(tmp_path, monkeypatch):
    import llmsynthor.api

    def no_model(*args, **kwargs):
        raise AssertionError("a backend was made before the rules were checked")

    monkeypatch.setattr(llmsynthor.api, "make_backend", no_model)
    good = _spec_with_rules(tmp_path / "good", ["category == Electronics -> price >= 20"])
    assert CliRunner().invoke(app, ["check", str(good)]).exit_code == 0
    spec = _spec_with_rules(tmp_path / "bad", ["category == Electronics -> price >= 20", "category == Toys -> price > 1",
                                               "agee < 18 -> price > 1"])
    for command in (["check", str(spec)], ["run", str(spec), "--out", str(tmp_path / "out.csv")],
                    ["evaluate", str(EXAMPLE / "reference.csv"), "--spec", str(spec)]):
        cli = CliRunner().invoke(app, command)
        assert cli.exit_code == 2, (command, cli.output)
        assert "rules[1]" in cli.output and "'Toys' is not one of the values of 'category'" in _text(cli)
        assert "rules[2]" in cli.output and "unknown variable 'agee'" in _text(cli)
        assert "Traceback" not in cli.output
    assert not (tmp_path / "out.csv").exists()


def test_missing_values_of_a_summed_variable_count_as_error_not_nan(tmp_path, reference):
    import yaml

    shutil.copytree(EXAMPLE / "targets", tmp_path / "targets")
    data = yaml.safe_load(SPEC.read_text())
    means = reference.groupby("category")["price"].mean()
    data["targets"].append({"name": "mean_price", "variables": ["category"], "mean_of": "price",
                            "cells": [{"category": c, "value": float(v)} for c, v in means.items()]})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    targets = load_targets(load_spec(tmp_path / "spec.yaml"))
    clean = evaluate(reference, targets).numeric_targets["mean_price"]
    holes = reference.copy()
    holes.loc[holes.index[:100], "price"] = np.nan
    dirty = evaluate(holes, targets)
    assert clean["max_relative_error"] < 1e-9
    assert np.isfinite(dirty.numeric_targets["mean_price"]["max_relative_error"])
    assert dirty.numeric_targets["mean_price"]["max_relative_error"] > 0.02
    assert dirty.outside_domain["price"] == {"count": 100, "missing": 100, "share": 0.05, "example": None}
    assert dirty.wasserstein == {}  # no reference: no Wasserstein; with one, the missing values are left out
    assert np.isfinite(evaluate(holes, targets, reference=reference).wasserstein["price"])


def test_a_reference_too_small_to_compare_is_named_not_a_traceback(tmp_path):
    from llmsynthor.cli import app

    pd.read_csv(EXAMPLE / "reference.csv").head(3).to_csv(tmp_path / "tiny.csv", index=False)
    cli = CliRunner().invoke(app, ["evaluate", str(EXAMPLE / "reference.csv"), "--spec", str(EXAMPLE / "spec.yaml"),
                                   "--reference", str(tmp_path / "tiny.csv")])
    assert cli.exit_code == 2 and "Traceback" not in cli.output, cli.output
    assert "3 records" in cli.output and "at least 10 on each side" in cli.output
