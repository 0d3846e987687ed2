"""The CLI's commands read household specs as such: `check` lists both levels' tables and finds bad
input before any work; `spec-format --households` documents every field; `evaluate` and `run` (with
the schema-driven fake) say what they scored — realism not scored without rules, the zones over the
tolerance, the control cells no candidate reaches."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from conftest import ROOT
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.shapes.households.spec import (
    UNREAD_TABLE_FIELDS,
    HouseholdConstraints,
    HouseholdLevel,
    HouseholdRules,
    HouseholdSpec,
    HouseholdSynthesis,
    HouseholdTable,
    PersonLevel,
    parse_household_spec,
)

runner = CliRunner()
EXAMPLE = ROOT / "examples" / "households"


@pytest.fixture
def example_copy(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "households")
    return tmp_path / "households"


def test_check_lists_the_tables_of_both_levels_per_zone_and_for_the_region():
    result = runner.invoke(app, ["check", str(EXAMPLE / "spec.yaml")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "12 target tables, 14,853 households, 31,074 persons, 46 zones" in text
    assert re.search(r"size_by_zone\W+households\W+size\W+per zone\W+5", result.output)
    assert re.search(r"age_income\W+persons\W+age × income\W+region\W+28", result.output)
    assert "rules (scored only): 8 household, 13 person" in text and "constraints (enforced): 0 household, 0 person" in text


def test_check_names_a_table_variable_no_level_has_and_exits_2(example_copy):
    spec = yaml.safe_load((example_copy / "spec.yaml").read_text())
    spec["targets"][5]["variables"] = ["size", "vehicles"]
    (example_copy / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = runner.invoke(app, ["check", str(example_copy / "spec.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "vehicles" in result.output and "size_cars" in result.output
    assert "field 'variables': this field is required" not in result.output  # not read as a flat spec


def test_check_refuses_a_constraint_that_contradicts_a_table(example_copy):
    spec = yaml.safe_load((example_copy / "spec.yaml").read_text())
    spec["constraints"] = {"persons": ["age < 5 -> employment == employed"]}
    (example_copy / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = runner.invoke(app, ["check", str(example_copy / "spec.yaml")])
    assert result.exit_code == 2 and "constraints" in result.output and "age < 5 -> employment == employed" in result.output


def test_spec_format_for_households_lists_every_field_in_its_own_section_and_its_minimal_spec_parses():
    result = runner.invoke(app, ["spec-format", "--households"])
    assert result.exit_code == 0, result.output
    text = result.output
    sections = dict(re.findall(r"\n([^\n]+)\n-+\n(.*?)(?=\n[^\n]+\n-+\n|\Z)", text, flags=re.S))
    for title, model, skip in [("Top level", HouseholdSpec, ()), ("household", HouseholdLevel, ()), ("person", PersonLevel, ()),
                               ("targets[] (each item)", HouseholdTable, ("sum_of", "mean_of", *UNREAD_TABLE_FIELDS)),
                               ("rules (scored only)", HouseholdRules, ()), ("constraints (enforced)", HouseholdConstraints, ()),
                               ("synthesis (all optional)", HouseholdSynthesis, ())]:
        for name, field in model.model_fields.items():
            if not field.exclude and name not in skip:
                assert f"\n  {name}: " in "\n" + sections[title], f"{model.__name__}.{name} missing from {title!r}"
    for refused in ("sum_of", "mean_of", *UNREAD_TABLE_FIELDS):  # household tables refuse them: not documented
        assert f"\n  {refused}: " not in sections["targets[] (each item)"]
    minimal = text.split("Minimal spec:\n", 1)[1].split("\nA table counts", 1)[0]
    spec = parse_household_spec(yaml.safe_load(minimal))
    assert spec.zones == "zone" and spec.household.size == "size" and list(spec.derived) == ["children"]
    assert [spec.level_of(t) for t in spec.targets] == ["households", "households", "persons", "persons"]
    assert "spec-format --households" in runner.invoke(app, ["spec-format"]).output


def test_check_refuses_a_table_tolerance_a_household_spec_does_not_read(example_copy):
    spec = yaml.safe_load((example_copy / "spec.yaml").read_text())
    spec["targets"][0]["tolerance_tvd"] = 0.05
    (example_copy / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = runner.invoke(app, ["check", str(example_copy / "spec.yaml")])
    assert result.exit_code == 2 and "size_by_zone" in result.output and "'tolerance_tvd' is not read" in result.output


@pytest.fixture(scope="module")
def baseline_folders(tmp_path_factory):
    """The independent and the IPF baselines' households and persons, written as `run` writes them."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import household_baselines

    from llmsynthor.shapes.households.controls import load_controls
    from llmsynthor.shapes.households.spec import load_household_spec

    spec = load_household_spec(EXAMPLE / "spec.yaml")
    targets = load_controls(spec)
    root = tmp_path_factory.mktemp("outputs")
    frames = {}
    for name, make in (("independent", household_baselines.independent), ("ipf", household_baselines.ipf_households)):
        households, persons = make(spec, targets, seed=0)
        (root / name).mkdir()
        households.to_csv(root / name / "households.csv", index=False)
        persons.to_csv(root / name / "persons.csv", index=False)
        frames[name] = (households, persons)
    return spec, targets, root, frames


def test_evaluate_scores_a_household_folder_as_the_evaluation_does_with_the_reference_as_truth(baseline_folders, tmp_path):
    from llmsynthor.shapes.households.evaluation import evaluate_households

    spec, targets, root, frames = baseline_folders
    result = runner.invoke(app, ["evaluate", str(root / "independent"), "--spec", str(EXAMPLE / "spec.yaml"),
                                 "--reference", str(root / "ipf"), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    direct = evaluate_households(spec, targets, *frames["independent"], truth=frames["ipf"])
    written = __import__("json").loads((tmp_path / "e.json").read_text())
    assert written["summary"]["rejection_rate"] == pytest.approx(direct.summary()["rejection_rate"])
    assert written["summary"]["heldout3_jsd_mean"] == pytest.approx(direct.summary()["heldout3_jsd_mean"])
    text = " ".join(result.output.split())
    assert f"household rejection rate {direct.summary()['rejection_rate']:.1%}" in text
    assert re.search(r"size_cars\W+households\W+0\.\d{4}", result.output) and "held-out 3-way tables: 454" in text


def test_evaluate_without_rules_says_realism_is_not_scored_and_counts_zones_over_tolerance(baseline_folders, example_copy,
                                                                                              tmp_path):
    from llmsynthor.shapes.households.evaluation import evaluate_households

    spec, targets, root, frames = baseline_folders
    data = yaml.safe_load((example_copy / "spec.yaml").read_text())
    del data["rules"]
    (example_copy / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = runner.invoke(app, ["evaluate", str(root / "independent"), "--spec", str(example_copy / "spec.yaml"),
                                 "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    direct = evaluate_households(spec, targets, *frames["independent"])  # with the example's rules: the same structure
    failed, n = direct.structure_households, direct.counts["households"]
    assert (f"realism not scored: no rules in the spec · structure checks failed by {failed:,} of {n:,} households "
            f"({failed / n:.1%}) · structure problems: ") in text
    assert "rejection rate" not in text
    written = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert written["realism"] == "not scored: no rules in the spec" and written["rejection_rate"] is None
    # the headline over the tolerance: every table for the region, and the zones of the 4 per-zone tables
    zones = direct.zones_over()
    assert len(zones) == 4 and all(z["of"] == 46 for z in zones.values())
    assert written["over_tolerance"] == direct.summary()["over_tolerance"] and written["over_tolerance"] in text
    assert text.count("tables over tolerance (region TVD > 0.01): ") == 1
    assert f"tables over tolerance (region TVD > 0.01): {len(direct.targets_over_tolerance)} of 12" in text
    worst = max(zones, key=lambda k: zones[k]["zones"])
    z = zones[worst]
    assert z["zones"] > 0  # independent margins miss zones
    assert f"{z['zones']} of 46 in {worst} (worst zone {z['worst_zone']}, TVD {z['worst_tvd']:.3f})" in text
    with_rules = runner.invoke(app, ["evaluate", str(root / "independent"), "--spec", str(EXAMPLE / "spec.yaml")])
    assert f"household rejection rate {direct.summary()['rejection_rate']:.1%} (a household rule broken" in \
        " ".join(with_rules.output.split()) and "realism not scored" not in with_rules.output


def test_run_names_the_cells_no_candidate_reaches_and_says_realism_is_not_scored(tmp_path, monkeypatch):
    from test_household_compose import SchemaLLM, tiny_two_zones

    import llmsynthor.api

    data = tiny_two_zones()  # no rules
    data["synthesis"] = {**data["synthesis"], "independent": 0}  # no candidate drawn from the tables alone
    monkeypatch.setattr(llmsynthor.api, "make_backend", lambda *args, **kwargs: SchemaLLM(domains={"age": (30, 99)}))
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    cell = {"table": "age", "level": "persons", "cell": {"age": "[0,18)"}, "target": 10.0, "given": "region"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    region = manifest["region_balance"]
    assert region["unreachable_controls"] == 1 and region["unreachable_cells"] == [cell]  # no member under 30
    at = lines.index("control cells no candidate household reaches (they stay short): 1")
    assert lines[at + 1] == "  age: age=[0,18) — target 10 persons, region"
    assert "1 control cell(s) no candidate household reaches (they stay short): age: age=[0,18) — target 10 persons, " \
           "region" in manifest["notes"]
    summary = manifest["evaluation"]["summary"]
    assert summary["realism"] == "not scored: no rules in the spec" and summary["rejection_rate"] is None
    assert [line for line in lines if line.startswith("tables over tolerance")] == [summary["over_tolerance"]]
    over = manifest["evaluation"]["targets_over_tolerance"]
    assert "age" in over and summary["over_tolerance"].startswith(
        f"tables over tolerance (region TVD > 0.01): {len(over)} of 3 ({', '.join(over)}) · zones over tolerance (zone TVD > "
        "0.01): ")  # the one per-zone table's zones follow
    last = lines[-1]
    assert last.startswith("realism not scored: no rules in the spec · structure checks failed by 0 of 20 households "
                           "(0.0%) · ") and "compositions accepted" in last and "rejection" not in last


def test_report_writes_the_household_report_of_a_folder(baseline_folders, tmp_path):
    _, _, root, _ = baseline_folders
    page = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(root / "independent"), "--spec", str(EXAMPLE / "spec.yaml"), "--out", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "llmsynthor household report: households" in html and "size_children" in html


def test_strict_refuses_a_value_outside_the_domain_and_without_it_the_value_is_listed(baseline_folders, tmp_path):
    _, _, root, frames = baseline_folders
    households, persons = (frame.copy() for frame in frames["independent"])
    households.loc[3, "cars"] = 9
    (tmp_path / "out").mkdir()
    households.to_csv(tmp_path / "out" / "households.csv", index=False)
    persons.to_csv(tmp_path / "out" / "persons.csv", index=False)
    args = ["evaluate", str(tmp_path / "out"), "--spec", str(EXAMPLE / "spec.yaml")]
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 2 and "households.csv" in strict.output and "'cars'" in strict.output and "(--strict)" in strict.output
    lenient = runner.invoke(app, args)
    assert lenient.exit_code == 0 and "values of 'cars' outside the domain (e.g. 9)" in " ".join(lenient.output.split())
    assert "outside_domain 1" in lenient.output


def test_a_reference_without_household_id_is_named_with_its_file(baseline_folders, tmp_path):
    _, _, root, frames = baseline_folders
    households, persons = frames["ipf"]
    (tmp_path / "truth").mkdir()
    households.drop(columns=["household_id"]).to_csv(tmp_path / "truth" / "households.csv", index=False)
    persons.to_csv(tmp_path / "truth" / "persons.csv", index=False)
    result = runner.invoke(app, ["evaluate", str(root / "independent"), "--spec", str(EXAMPLE / "spec.yaml"),
                                 "--reference", str(tmp_path / "truth")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(tmp_path / "truth" / "households.csv") in result.output and "'household_id'" in result.output


@pytest.mark.parametrize("command", ["evaluate", "report"])
def test_a_folder_without_the_linked_tables_is_named_with_what_is_expected(tmp_path, command):
    (tmp_path / "empty").mkdir()
    (tmp_path / "households.csv").write_text("household_id\n")
    for folder, fragment in ((tmp_path / "empty", "no households.csv or households.parquet"),
                             (tmp_path / "missing", "folder is not there"),
                             (tmp_path / "households.csv", "is a file, not a folder")):
        result = runner.invoke(app, [command, str(folder), "--spec", str(EXAMPLE / "spec.yaml")])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert str(folder) in result.output and fragment in " ".join(result.output.split())


# -- suggest-constraints for a household spec -------------------------------------------------------

SMALL = {
    "name": "small",
    "household": {"size": "size", "variables": {
        "size": {"type": "integer", "min": 1, "max": 4, "description": "persons in the household"},
        "kind": {"type": "categorical", "values": ["alone", "family"], "description": "who lives there"}}},
    "person": {"reference": "relationship == head", "variables": {
        "age": {"type": "integer", "min": 0, "max": 99, "description": "age in years"},
        "relationship": {"type": "categorical", "values": ["head", "spouse", "child"], "description": "to the head"}}},
    "targets": [{"name": "size", "variables": ["size"], "file": "size.csv"},
                {"name": "kind", "variables": ["kind"], "file": "kind.csv"},
                {"name": "age", "variables": ["age"], "file": "age.csv"},
                {"name": "relationship", "variables": ["relationship"], "file": "relationship.csv"}],
}
# the knowing fake's answers, keyed by the question's context and the variable asked about
KNOWLEDGE = {("age from 0 to 17", "relationship"): (0.0, 0.0, 1.0),  # a child is never the head or a spouse
             ("size from 2 to 4", "kind"): (0.0, 1.0)}  # a household of several persons is no one living alone


@pytest.fixture
def small_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    files = {"size.csv": 'size,count\n"[1,2)",40\n"[2,4]",60', "kind.csv": "kind,count\nalone,40\nfamily,60",
             "age.csv": 'age,count\n"[0,18)",50\n"[18,99]",150', "relationship.csv": "relationship,count\nhead,100\nspouse,50\nchild,50"}
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n")
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    return path


def test_suggest_constraints_scores_each_level_and_writes_both_under_constraints(small_spec, monkeypatch):
    from fakes import KnowingFakeLLM

    made = []
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None: made.append(KnowingFakeLLM(KNOWLEDGE)) or made[-1])
    result = runner.invoke(app, ["suggest-constraints", str(small_spec), "--yaml"])
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.stdout)["constraints"]
    assert block == {"households": ["size >= 2 -> kind != alone"],
                     "persons": ["age < 18 -> relationship not in [head, spouse]"]}
    assert "suggested household constraints: 1 of 1" in result.stderr and "suggested person constraints: 1 of 1" in result.stderr
    assert "households: scoring 1 pairs" in result.stderr and "persons: scoring 1 pairs" in result.stderr
    spec = parse_household_spec({**SMALL, "constraints": block})  # pasted into the spec, it is read as constraints
    assert spec.constraints.persons == block["persons"]


def test_suggest_constraints_leaves_out_what_a_household_spec_declares_already(small_spec, monkeypatch):
    from fakes import KnowingFakeLLM

    small_spec.write_text(yaml.safe_dump({**SMALL, "constraints": {"persons": ["age < 18 -> relationship == child"]}}, sort_keys=False))
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None: KnowingFakeLLM(KNOWLEDGE))
    result = runner.invoke(app, ["suggest-constraints", str(small_spec), "--yaml"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["constraints"] == {"households": ["size >= 2 -> kind != alone"], "persons": []}


def test_suggest_constraints_names_bad_household_input_before_any_model_is_made(small_spec, monkeypatch):
    made = []
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None: made.append(1))
    small_spec.write_text(yaml.safe_dump({**SMALL, "constraints": {"persons": ["relationship == chld -> age < 30"]}}))
    result = runner.invoke(app, ["suggest-constraints", str(small_spec)])
    assert result.exit_code == 2 and "constraints.persons[0]" in result.output and "'chld'" in result.output
    assert made == [] and "field 'variables': this field is required" not in result.output


@pytest.mark.model
def test_suggest_constraints_for_a_household_spec_on_the_default_model(small_spec):
    """Through the real Qwen2.5-Coder-1.5B: both levels scored, the constraint tables printed."""
    result = runner.invoke(app, ["suggest-constraints", str(small_spec), "--no-cache"])
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "suggested household constraints:" in result.stdout and "suggested person constraints:" in result.stdout
    assert re.search(r"\d+ option scorings \(0 from cache\)", result.stdout)


def test_a_person_constraint_names_a_person_variable_two_household_variables_stay_at_the_household_level(small_spec, monkeypatch):
    from fakes import KnowingFakeLLM

    folder = small_spec.parent
    (folder / "age_kind.csv").write_text('age,kind,count\n"[0,18)",alone,0\n"[0,18)",family,50\n"[18,99]",alone,40\n"[18,99]",family,110\n')
    (folder / "age_size.csv").write_text('age,size,count\n"[0,18)","[1,2)",0\n"[0,18)","[2,4]",50\n"[18,99]","[1,2)",40\n"[18,99]","[2,4]",110\n')
    data = {**SMALL, "targets": [*SMALL["targets"], {"name": "age_kind", "variables": ["age", "kind"], "count": "persons", "file": "age_kind.csv"},
                                 {"name": "age_size", "variables": ["age", "size"], "count": "persons", "file": "age_size.csv"}]}
    small_spec.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None: KnowingFakeLLM(KNOWLEDGE))
    result = runner.invoke(app, ["suggest-constraints", str(small_spec), "--yaml"])
    assert result.exit_code == 0, result.output
    block = yaml.safe_load(result.stdout)["constraints"]
    assert block["households"] == ["size >= 2 -> kind != alone"]
    assert all("relationship" in c or "age" in c for c in block["persons"]) and "size >= 2 -> kind != alone" not in block["persons"]


def test_a_backend_that_dies_ends_a_household_run_with_exit_3_and_writes_nothing(tmp_path, monkeypatch):
    from test_household_compose import SchemaLLM, tiny_two_zones

    import llmsynthor.api
    from llmsynthor.core.errors import BackendError

    class Dying(SchemaLLM):
        def complete_json(self, *args, **kwargs):
            if len(self.calls) >= 2:  # two compositions answered, then the server is gone
                raise BackendError("openai:local could not be reached, still after 6 attempts", retryable=True)
            return super().complete_json(*args, **kwargs)

    monkeypatch.setattr(llmsynthor.api, "make_backend", lambda *args, **kwargs: Dying(domains={"age": (0, 99)}))
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_two_zones(), sort_keys=False), encoding="utf-8")
    result = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3, result.output
    assert "llmsynthor: the LLM backend failed: openai:local could not be reached, still after 6 attempts" in result.output
    assert "the compositions answered so far are in the response cache" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "households.csv").exists()
