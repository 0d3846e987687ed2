"""Evaluation of linked households and persons: structure checks by reason, targets for the region and
per zone, rules with derived counts recomputed, the household rejection rate, held-out tables; on
hand-made frames whose every figure is known, and on the SEMCOG truth when its wheel is cached."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from llmsynthor.core.errors import SpecError
from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.evaluation import evaluate_households, prepare_held_out, tolerance_headline
from llmsynthor.shapes.households.spec import load_household_spec, parse_household_spec

SPEC = {
    "name": "tiny",
    "household": {"size": "size", "variables": {
        "size": {"type": "integer", "min": 1, "max": 4},
        "cars": {"type": "integer", "min": 0, "max": 2},
        "tenure": {"type": "categorical", "values": ["own", "rent"]}}},
    "person": {"reference": "relationship == head", "variables": {
        "age": {"type": "integer", "min": 0, "max": 99},
        "relationship": {"type": "categorical", "values": ["head", "spouse", "child"]},
        "works": {"type": "categorical", "values": ["yes", "no"]}}},
    "derived": {"kids": "age < 18", "workers": "works == yes"},
    "zones": "zone",
    "targets": [
        {"name": "size_by_zone", "variables": ["size"], "cells": [
            {"zone": "A", "size": "[1,2)", "count": 2}, {"zone": "A", "size": "[2,3)", "count": 1},
            {"zone": "B", "size": "[1,2)", "count": 1}, {"zone": "B", "size": "[3,4]", "count": 1}]},
        {"name": "age_by_zone", "variables": ["age"], "cells": [
            {"zone": "A", "age": "[18,99]", "count": 4},
            {"zone": "B", "age": "[0,18)", "count": 2}, {"zone": "B", "age": "[18,99]", "count": 2}]},
        {"name": "tenure", "variables": ["tenure"], "cells": [{"tenure": "own", "count": 3}, {"tenure": "rent", "count": 2}]},
        {"name": "relationship", "variables": ["relationship"], "cells": [
            {"relationship": "head", "count": 5}, {"relationship": "spouse", "count": 1}, {"relationship": "child", "count": 2}]},
    ],
    "rules": {"households": ["tenure == rent -> cars <= 1", "kids >= 1 -> workers >= 1"],
              "persons": ["age < 16 -> works == no", "relationship == spouse -> age >= 16"]},
}

# the population the targets were counted from: (zone, size, cars, tenure, [(age, relationship, works), ...])
TRUTH = [
    ("A", 2, 1, "own", [(40, "head", "yes"), (38, "spouse", "no")]),
    ("A", 1, 0, "rent", [(70, "head", "no")]),
    ("B", 3, 2, "own", [(35, "head", "yes"), (5, "child", "no"), (10, "child", "no")]),
    ("B", 1, 1, "rent", [(25, "head", "yes")]),
    ("A", 1, 1, "own", [(50, "head", "yes")]),
]


def frames(rows=TRUTH) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Linked frames in the output format, derived counts counted from the members."""
    households, persons = [], []
    for i, (zone, size, cars, tenure, members) in enumerate(rows, start=1):
        households.append({"household_id": i, "zone": zone, "size": size, "cars": cars, "tenure": tenure,
                           "kids": sum(age < 18 for age, _, _ in members), "workers": sum(w == "yes" for _, _, w in members)})
        for m, (age, relationship, works) in enumerate(members):
            persons.append({"household_id": i, "person_id": len(persons) + 1, "member": m, "age": age,
                            "relationship": relationship, "works": works})
    return pd.DataFrame(households), pd.DataFrame(persons)


@pytest.fixture(scope="module")
def spec():
    return parse_household_spec(SPEC)


@pytest.fixture(scope="module")
def targets(spec):
    return load_controls(spec)


def test_the_population_the_targets_came_from_scores_zero_everywhere(spec, targets):
    households, persons = frames()
    result = evaluate_households(spec, targets, households, persons, truth=frames())
    assert result.structure == {"empty": 0, "size_mismatch": 0, "reference_count": 0, "reference_not_first": 0,
                                "derived_mismatch": 0, "outside_domain": 0, "unknown_zone": 0, "duplicate_id": 0,
                                "orphan_persons": 0}
    assert result.rejection["rate"] == 0 and result.structure_households == 0
    for name, figures in result.on_targets.items():
        assert figures["tvd"] == 0 and figures["jsd"] == 0, name
    assert result.on_targets["size_by_zone"]["zones_tvd_max"] == 0 and result.on_targets["age_by_zone"]["zones_tvd_max"] == 0
    assert "zones_tvd_mean" not in result.on_targets["tenure"]
    assert result.targets_over_tolerance == []
    assert result.counts == {"households": 5, "persons": 8, "zones": 2, "persons_per_household": 1.6, "target_households": 5,
                             "target_persons": 8.0}
    assert result.zone_households == {"zones_off": 0, "max_abs_difference": 0, "households_in_unknown_zones": 0}
    assert result.held_out and all(f["jsd"] == 0 for f in result.held_out.values())
    summary = result.summary()
    assert summary["target_tvd_mean"] == 0 and summary["zone_tvd_mean"] == 0 and summary["heldout_jsd_mean"] == 0
    assert summary["truth_rejection_rate"] == 0 and summary["realism"] == "scored: 4 rules"
    json.dumps(result.as_dict())  # plain values only


def test_structure_problems_are_counted_by_reason(spec, targets):
    rows = [list(r) for r in TRUTH]
    rows[0][4] = [(40, "head", "yes"), (38, "head", "no")]  # two reference persons
    rows[1][1] = 2  # size 2, one member listed
    rows[2][4] = [(5, "child", "no"), (35, "head", "yes"), (10, "child", "no")]  # the reference person listed second
    households, persons = frames([tuple(r) for r in rows])
    households.loc[4, "workers"] = 0  # its one member works: the written count is wrong
    orphan = pd.DataFrame([{"household_id": 99, "person_id": 100, "member": 0, "age": 30, "relationship": "head", "works": "no"}])
    empty = pd.DataFrame([{"household_id": 6, "zone": "B", "size": 1, "cars": 0, "tenure": "own", "kids": 0, "workers": 0}])
    result = evaluate_households(spec, targets, pd.concat([households, empty], ignore_index=True),
                                 pd.concat([persons, orphan], ignore_index=True))
    assert result.structure == {"empty": 1, "size_mismatch": 1, "reference_count": 1, "reference_not_first": 1,
                                "derived_mismatch": 1, "outside_domain": 0, "unknown_zone": 0, "duplicate_id": 0,
                                "orphan_persons": 1}
    assert result.structure_households == 5  # every household but the fourth
    assert result.rejection["rate"] == pytest.approx(5 / 6) and result.rejection["households"] == 5
    assert result.counts["persons"] == 8 and result.counts["households"] == 6  # the orphan is left out


def test_rules_see_derived_counts_recounted_and_the_rejection_rate_is_the_union(spec, targets):
    rows = [list(r) for r in TRUTH]
    rows[2][4] = [(35, "head", "no"), (5, "child", "no"), (10, "child", "yes")]  # a working 10-year-old
    rows[3][2] = 2  # renting with 2 cars
    households, persons = frames([tuple(r) for r in rows])
    households.loc[2, "workers"] = 0  # written wrong: the rule 'kids >= 1 -> workers >= 1' must count the members
    result = evaluate_households(spec, targets, households, persons)
    works = result.rules["age < 16 -> works == no"]
    assert (works["level"], works["records"], works["condition"], works["violations"]) == ("persons", 8, 2, 1)
    assert works["among_condition"] == 0.5 and works["overall"] == 1 / 8
    rent = result.rules["tenure == rent -> cars <= 1"]
    assert (rent["level"], rent["records"], rent["condition"], rent["violations"]) == ("households", 5, 2, 1)
    assert result.rules["kids >= 1 -> workers >= 1"]["violations"] == 0
    assert result.structure["derived_mismatch"] == 1
    # household 3: a person rule and a wrong derived column; household 4: a household rule
    assert result.rejection == {"rate": 2 / 5, "households": 2, "household_rules": 1 / 5, "person_rules": 1 / 5,
                                "structure": 1 / 5, "constraint_households": 0}  # the spec declares no constraint


def test_per_zone_tvd_sees_a_household_in_the_wrong_zone(spec, targets):
    households, persons = frames()
    households.loc[4, "zone"] = "B"  # the fifth household, one adult, moved from A to B
    result = evaluate_households(spec, targets, households, persons)
    size, age = result.on_targets["size_by_zone"], result.on_targets["age_by_zone"]
    assert size["tvd"] == 0 and age["tvd"] == 0  # the region is unchanged
    assert size["zones_tvd"] == pytest.approx([1 / 6, 1 / 6]) and size["zones_tvd_mean"] == pytest.approx(1 / 6)
    assert age["zones_tvd"] == pytest.approx([0, 0.1]) and age["zones_tvd_max"] == pytest.approx(0.1)
    assert age["worst_zone"] == "B" and size["zones_over_tolerance"] == 2
    assert result.zone_households == {"zones_off": 2, "max_abs_difference": 1, "households_in_unknown_zones": 0}
    assert result.summary()["zone_tvd_mean"] == pytest.approx((1 / 6 + 0.05) / 2)
    households.loc[4, "zone"] = "C"
    unknown = evaluate_households(spec, targets, households, persons)
    assert unknown.structure["unknown_zone"] == 1 and unknown.zone_households["households_in_unknown_zones"] == 1


def test_zones_over_tolerance_are_counted_per_table_in_the_headline(spec, targets):
    households, persons = frames()
    households.loc[3, "zone"] = "A"  # the fourth household, one adult, moved from B to A: B keeps only its 3 persons
    result = evaluate_households(spec, targets, households, persons)
    size, age = result.on_targets["size_by_zone"], result.on_targets["age_by_zone"]
    assert size["zones_tvd"] == pytest.approx([1 / 12, 0.5]) and age["zones_tvd"] == pytest.approx([0, 1 / 6])
    assert result.zones_over() == {"size_by_zone": {"zones": 2, "of": 2, "worst_zone": "B", "worst_tvd": pytest.approx(0.5)},
                                   "age_by_zone": {"zones": 1, "of": 2, "worst_zone": "B", "worst_tvd": pytest.approx(1 / 6)}}
    summary = result.summary()
    assert (summary["target_tables"], summary["targets_over_tolerance"]) == (4, 0)  # the region is unchanged
    assert (summary["zone_tables_over_tolerance"], summary["zones_over_tolerance"]) == (2, 2)
    assert summary["over_tolerance"] == ("tables over tolerance (region TVD > 0.01): 0 of 4 · zones over tolerance "
                                         "(zone TVD > 0.01): 2 of 2 in size_by_zone (worst zone B, TVD 0.500); "
                                         "1 of 2 in age_by_zone (worst zone B, TVD 0.167)")
    assert json.loads(json.dumps(result.as_dict()))["summary"]["over_tolerance"] == summary["over_tolerance"]
    age["zones_over_tolerance"] = 0  # as if every zone met it: named at the end
    assert tolerance_headline(result).endswith("2 of 2 in size_by_zone (worst zone B, TVD 0.500); 0 of 2 in age_by_zone")
    rows = [list(r) for r in TRUTH]
    rows[0][3] = "rent"  # tenure off at the region, every zone met
    met = evaluate_households(spec, targets, *frames([tuple(r) for r in rows])).summary()
    assert met["over_tolerance"] == ("tables over tolerance (region TVD > 0.01): 1 of 4 (tenure) · zones over tolerance "
                                     "(zone TVD > 0.01): 0 of 2 in each of size_by_zone, age_by_zone")
    assert (met["zone_tables_over_tolerance"], met["zones_over_tolerance"]) == (0, 0)


def test_without_rules_realism_is_not_scored_rather_than_a_rate_of_zero():
    bare = parse_household_spec({k: v for k, v in SPEC.items() if k != "rules"})
    rows = [list(r) for r in TRUTH]
    rows[1][1] = 2  # size 2, one member listed: a structure problem, which is no realism score
    result = evaluate_households(bare, load_controls(bare), *frames([tuple(r) for r in rows]), truth=frames())
    assert result.rules == {} and result.structure_households == 1
    assert result.rejection == {"rate": None, "households": None, "household_rules": None, "person_rules": None,
                                "structure": 1 / 5, "constraint_households": 0}
    summary = result.summary()
    assert summary["realism"] == "not scored: no rules in the spec"
    assert summary["rejection_rate"] is None and summary["truth_rejection_rate"] is None
    written = json.loads(json.dumps(result.as_dict()))
    assert written["summary"]["realism"] == "not scored: no rules in the spec" and written["summary"]["rejection_rate"] is None
    assert written["rejection"]["rate"] is None and written["truth"]["rejection_rate"] is None
    # person rules only: the rate is scored, the household rules' share is not
    persons_only = parse_household_spec({**SPEC, "rules": {"persons": SPEC["rules"]["persons"]}})
    scored = evaluate_households(persons_only, load_controls(persons_only), *frames())
    assert scored.rejection["rate"] == 0 and scored.rejection["person_rules"] == 0
    assert scored.rejection["household_rules"] is None and scored.summary()["realism"] == "scored: 2 rules"


def test_held_out_tables_are_the_pairs_no_target_covers_and_see_what_the_targets_miss(spec, targets):
    truth = frames()
    held = prepare_held_out(spec, targets, truth, max_way=2)
    names = {t.name: t for t in held.tables}
    assert len(names) == 28 and "size × tenure" in names and "tenure × age" in names  # 8 variables, no 2-way target
    assert names["size × tenure"].level == "households" and names["kids × age"].level == "persons"
    assert names["size × tenure"].axes[0].labels == ("[1,2)", "[2,3)", "[3,4]")  # the targets' bins
    rows = [list(r) for r in TRUTH]
    rows[0][3], rows[1][3] = "rent", "own"  # tenure swapped between two households: margins kept
    result = evaluate_households(spec, targets, *frames([tuple(r) for r in rows]), held_out=held)
    assert result.on_targets["tenure"]["tvd"] == 0
    assert result.held_out["size × tenure"]["tvd"] == pytest.approx(0.4)
    assert result.held_out["size × tenure"]["way"] == 2 and result.held_out["age × relationship"]["jsd"] == 0


def test_values_outside_the_domain_are_counted_and_scored(spec, targets):
    households, persons = frames()
    households.loc[1, "tenure"] = "squat"
    persons.loc[0, "age"] = 140
    result = evaluate_households(spec, targets, households, persons)
    assert result.structure["outside_domain"] == 2
    assert result.outside_domain["households"]["tenure"]["count"] == 1 and result.outside_domain["persons"]["age"]["count"] == 1
    assert result.on_targets["tenure"]["tvd"] == pytest.approx(0.2) and result.on_targets["tenure"]["outside"] == 1


def test_a_missing_column_is_named(spec, targets):
    households, persons = frames()
    with pytest.raises(SpecError, match="'tenure'"):
        evaluate_households(spec, targets, households.drop(columns="tenure"), persons)


# -- the SEMCOG truth (the activitysim wheel from PyPI, fetched when missing) ---------------------------


@pytest.fixture(scope="module")
def semcog():
    sys.path.insert(0, str(ROOT / "bench"))
    import semcog_households
    from wheels import wheel_or_skip

    spec = load_household_spec(ROOT / "examples" / "households" / "spec.yaml")
    return spec, load_controls(spec), semcog_households.read_households(wheel_or_skip(semcog_households.wheel_path,
                                                                                      semcog_households.WHEEL))


def test_the_semcog_truth_scores_no_structure_problem_no_rejection_and_meets_every_target(semcog):
    spec, targets, truth = semcog
    result = evaluate_households(spec, targets, *truth, truth=truth)
    assert sum(result.structure.values()) == 0 and result.rejection["rate"] == 0
    assert all(f["tvd"] == 0 and f.get("zones_tvd_max", 0) == 0 for f in result.on_targets.values())
    assert result.counts["zones"] == 46 and result.zone_households["zones_off"] == 0
    summary = result.summary()
    assert summary["heldout_jsd_mean"] == 0 and summary["truth_rejection_rate"] == 0
    assert sum(f["way"] == 2 for f in result.held_out.values()) == 99  # 105 pairs of 15 variables, 6 covered
    shuffled = truth[1].assign(age=np.random.default_rng(0).permutation(truth[1]["age"].to_numpy()))
    broken = evaluate_households(spec, targets, truth[0], shuffled)
    assert broken.rejection["rate"] > 0.2 and broken.on_targets["age_sex_employment"]["tvd"] > 0.1
