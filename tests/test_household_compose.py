"""What the LLM is asked about households and what its answers become: the composition schema, the
validation of answers, candidates drawn from compositions, clear errors for bad nested input, and a
whole household run on a tiny two-zone spec with a fake LLM that writes random schema-valid JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from scipy import sparse

from llmsynthor.core.errors import SpecError
from llmsynthor.fitting.balance import list_balance
from llmsynthor.llm.base import Choice, Completion
from llmsynthor.shapes.households.candidates import COMPOSITION, MEMBER, combine, derive, expand, fillers, independent
from llmsynthor.shapes.households.compose import (
    Composition,
    Kind,
    composition_schema,
    parse_composition,
    reference_marker,
    value_question,
)
from llmsynthor.shapes.households.controls import HOUSEHOLD, incidence, load_controls
from llmsynthor.shapes.households.spec import load_household_spec, parse_household_spec
from llmsynthor.shapes.households.synthesizer import HouseholdSynthesizer, deficit_kinds

EXAMPLE = ROOT / "examples" / "households" / "spec.yaml"
PERSON_VARIABLES = ["age", "sex", "relationship", "race", "employment", "school"]


@pytest.fixture(scope="module")
def example():
    return load_household_spec(EXAMPLE)


@pytest.fixture(scope="module")
def example_targets(example):
    return load_controls(example)


def tiny(**changes) -> dict:
    """A small household spec (its targets are files the tests write); ``changes`` replace sections."""
    data = {
        "name": "tiny",
        "household": {"size": "size", "variables": {
            "size": {"type": "integer", "min": 1, "max": 4},
            "tenure": {"type": "categorical", "values": ["own", "rent"]}}},
        "person": {"reference": "relationship == head", "variables": {
            "age": {"type": "integer", "min": 0, "max": 99},
            "relationship": {"type": "categorical", "values": ["head", "spouse", "child"]},
            "works": {"type": "categorical", "values": ["yes", "no"]}}},
        "derived": {"kids": "age < 18"},
        "zones": "zone",
        "targets": [{"name": "size_by_zone", "variables": ["size"], "file": "size_by_zone.csv"},
                    {"name": "age_by_zone", "variables": ["age"], "file": "age_by_zone.csv"}],
    }
    data.update(changes)
    return data


def write(folder, name: str, text: str) -> None:
    (folder / name).write_text(text.strip() + "\n", encoding="utf-8")


def consistent_files(folder) -> None:
    """Zone A: 2 single households and 1 of 2-4 persons (4 to 6 persons); zone B: 1 and 1 (3 to 5)."""
    write(folder, "size_by_zone.csv", 'zone,size,count\nA,"[1,2)",2\nA,"[2,4]",1\nB,"[1,2)",1\nB,"[2,4]",1')
    write(folder, "age_by_zone.csv", 'zone,age,count\nA,"[0,18)",1\nA,"[18,99]",4\nB,"[0,18)",1\nB,"[18,99]",3')


def tiny_spec(folder, **changes):
    return parse_household_spec(tiny(**changes), source=str(folder / "spec.yaml"), base_dir=folder)


def with_members_reference(reference: str):
    data = tiny()
    data["person"] = {**data["person"], "reference": reference}
    return parse_household_spec(data)


# ---------------------------------------------------------------------------------------------------------------------
# composition_schema


def test_schema_with_a_reference_marker_has_the_reference_apart_and_size_minus_one_others(example):
    assert reference_marker(example) == ("relationship", "householder")
    schema = composition_schema(example, 3)
    props = schema["properties"]
    assert list(props) == ["reference", "others", "household_type", "cars", "income"]
    assert schema["required"] == list(props) and schema["additionalProperties"] is False
    reference = props["reference"]
    assert "relationship" not in reference["properties"]
    assert set(reference["properties"]) == set(PERSON_VARIABLES) - {"relationship"}
    assert reference["required"] == list(reference["properties"])
    others = props["others"]
    assert others["type"] == "array" and others["minItems"] == 2 and others["maxItems"] == 2
    member = others["items"]["properties"]
    assert list(member)[0] == "relationship"  # who lives together is decided first
    assert set(member) == set(PERSON_VARIABLES)
    relationships = example.person.variables["relationship"].values
    assert member["relationship"]["enum"] == [v for v in relationships if v != "householder"]
    assert member["age"] == {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
    assert props["income"] == {"type": "string", "enum": ["under 25k", "25k-50k", "50k-100k", "100k+"]}


def test_schema_of_a_single_person_household_has_no_others(example):
    props = composition_schema(example, 1)["properties"]
    assert "others" not in props
    assert "reference" in props and "relationship" not in props["reference"]["properties"]


@pytest.mark.parametrize("size", [1, 2, 5, 12])
def test_schema_leaves_out_the_size_and_the_household_values_a_kind_fixes(example, size):
    props = composition_schema(example, size, frozenset({"income", "cars"}))["properties"]
    assert "size" not in props
    assert "income" not in props and "cars" not in props
    assert "household_type" in props
    assert "size" not in composition_schema(example, size)["properties"]
    if size > 1:
        assert props["others"]["minItems"] == props["others"]["maxItems"] == size - 1


@pytest.mark.parametrize(("reference", "first"), [("age >= 18", "age"), ("relationship == head and age >= 16", "relationship"),
                                                   ("relationship in [head]", "relationship")])
def test_schema_without_a_single_categorical_equality_lists_exactly_size_members(reference, first):
    spec = with_members_reference(reference)
    assert reference_marker(spec) is None
    props = composition_schema(spec, 3)["properties"]
    assert list(props) == ["members", "tenure"]
    members = props["members"]
    assert members["minItems"] == members["maxItems"] == 3
    assert list(members["items"]["properties"])[0] == first
    assert set(members["items"]["properties"]) == {"age", "relationship", "works"}
    assert members["items"]["properties"]["relationship"]["enum"] == ["head", "spouse", "child"]  # nothing excluded


# ---------------------------------------------------------------------------------------------------------------------
# parse_composition


def person(age, sex="female", race="White", employment="employed", school="not attending", **more) -> dict:
    return {"age": age, "sex": sex, "race": race, "employment": employment, "school": school, **more}


def answer() -> dict:
    """A valid answer for a household of 3 in the example spec."""
    return {"reference": person([40, 44], sex="male"),
            "others": [person([8, 10], employment="under 16", school="grades 1-4", relationship="child"),
                       person([38, 42], relationship="spouse")],
            "household_type": "married couple", "cars": [1, 2], "income": "50k-100k"}


def test_a_valid_answer_becomes_a_composition_with_the_householder_first(example):
    kind = Kind(3)
    composition, error, report = parse_composition(json.dumps(answer()), example, kind, request=7)
    assert error is None
    assert report.accepted == 1 and not report.rejected and not report.corrected
    assert composition.household == {"size": (3.0, 3.0), "household_type": "married couple", "cars": (1.0, 2.0),
                                     "income": "50k-100k"}
    assert [m["relationship"] for m in composition.members] == ["householder", "child", "spouse"]
    assert composition.members[0] == {"age": (40.0, 44.0), "sex": "male", "relationship": "householder", "race": "White",
                                      "employment": "employed", "school": "not attending"}
    assert composition.members[1]["age"] == (8.0, 10.0)
    assert composition.request == 7 and composition.kind == kind


def test_household_values_a_kind_fixes_are_taken_from_the_kind(example):
    raw = answer()
    del raw["income"]
    composition, error, report = parse_composition(json.dumps(raw), example, Kind(3, household=(("income", "100k+"),)))
    assert error is None and report.accepted == 1
    assert composition.household["income"] == "100k+"
    raw["income"] = "under 25k"  # the kind wins over what the model wrote anyway
    composition, _, _ = parse_composition(json.dumps(raw), example, Kind(3, household=(("income", "100k+"),)))
    assert composition.household["income"] == "100k+"


def test_too_wide_ranges_are_narrowed_around_their_middle_and_counted(example):
    raw = answer()
    raw["reference"]["age"] = [0, 99]  # middle 49.5, at most 9.9 wide
    raw["cars"] = [0, 6]  # middle 3
    composition, error, report = parse_composition(json.dumps(raw), example, Kind(3))
    assert error is None and report.accepted == 1
    assert composition.members[0]["age"] == (45.0, 54.0)
    assert composition.household["cars"] == (3.0, 3.0)
    assert report.corrected == Counter({"age: range too wide, narrowed to its middle": 1,
                                        "cars: range too wide, narrowed to its middle": 1})
    assert composition.members[2]["age"] == (38.0, 42.0)  # a range as narrow as asked for is kept


def test_a_narrowed_integer_range_is_never_inverted(example):
    raw = answer()
    raw["cars"] = [0, 5]  # middle 2.5, at most 0.6 wide: [2.2, 2.8] holds no whole number
    composition, error, report = parse_composition(json.dumps(raw), example, Kind(3))
    assert error is None
    lo, hi = composition.household["cars"]
    assert lo <= hi and lo == int(lo) and hi == int(hi)


def test_a_range_reaching_out_of_the_domain_is_clamped_and_counted(example):
    raw = answer()
    raw["reference"]["age"] = [95, 103]
    composition, error, report = parse_composition(json.dumps(raw), example, Kind(3))
    assert error is None
    assert composition.members[0]["age"] == (95.0, 99.0)
    assert report.corrected["age: clamped to domain"] == 1


def _fewer_others(raw):
    raw["others"] = raw["others"][:1]


def _no_income(raw):
    del raw["income"]


def _member_without_race(raw):
    del raw["others"][0]["race"]


def _unknown_sex(raw):
    raw["reference"]["sex"] = "other"


def _unknown_income(raw):
    raw["income"] = "lots"


def _age_not_a_pair(raw):
    raw["others"][1]["age"] = "forty"


def _second_householder(raw):
    raw["others"][1]["relationship"] = "householder"


def _others_not_a_list(raw):
    raw["others"] = {"relationship": "child"}


@pytest.mark.parametrize(("mutate", "reason", "says"), [
    (_fewer_others, "member count is not the size", "2 members listed for a household of 3"),
    (_no_income, "income: missing", "'income' missing"),
    (_member_without_race, "member race: missing", "'race' missing"),
    (_unknown_sex, "sex: 'other' is not a value", "'sex' invalid"),
    (_unknown_income, "income: 'lots' is not a value", "'income' invalid"),
    (_age_not_a_pair, "age: not a [min, max] pair", "'age' invalid"),
    (_second_householder, "more than one reference person", "more than one reference person"),
    (_others_not_a_list, "others is not a list", "'others' to be a list"),
])
def test_a_bad_answer_is_rejected_with_its_reason_counted(example, mutate, reason, says):
    raw = answer()
    mutate(raw)
    composition, error, report = parse_composition(json.dumps(raw), example, Kind(3))
    assert composition is None
    assert says in error
    assert report.accepted == 0
    assert report.rejected == Counter({reason: 1})


def test_an_answer_that_is_not_json_is_rejected(example):
    composition, error, report = parse_composition('{"reference": {"age": [40, 4', example, Kind(3))
    assert composition is None and error.startswith("not JSON")
    assert report.accepted == 0


def test_an_answer_that_is_not_json_is_counted_in_the_report(example):
    _, _, report = parse_composition("Sure! Here is a household:", example, Kind(3))
    assert report.rejected == Counter({"response is not valid JSON": 1})


def test_members_style_answer_puts_the_reference_person_first():
    spec = with_members_reference("age >= 18")
    raw = {"members": [{"age": [5, 8], "relationship": "child", "works": "no"},
                       {"age": [30, 35], "relationship": "head", "works": "yes"},
                       {"age": [2, 3], "relationship": "child", "works": "no"}], "tenure": "rent"}
    composition, error, report = parse_composition(json.dumps(raw), spec, Kind(3))
    assert error is None and report.accepted == 1
    assert [m["age"] for m in composition.members] == [(30.0, 35.0), (5.0, 8.0), (2.0, 3.0)]
    assert composition.household == {"size": (3.0, 3.0), "tenure": "rent"}


@pytest.mark.parametrize(("ages", "reason"), [([[5, 8], [10, 12]], "no reference person"),
                                              ([[30, 35], [40, 44]], "more than one reference person"),
                                              ([[15, 25], [3, 4]], "no reference person")])  # a range meets it only if all of it does
def test_members_style_answer_needs_exactly_one_reference_person(ages, reason):
    spec = with_members_reference("age >= 18")
    raw = {"members": [{"age": a, "relationship": "child", "works": "no"} for a in ages], "tenure": "own"}
    composition, error, report = parse_composition(json.dumps(raw), spec, Kind(2))
    assert composition is None
    assert error.startswith(reason) and "age >= 18" in error
    assert report.rejected == Counter({reason: 1})


# ---------------------------------------------------------------------------------------------------------------------
# candidates


def member(age, relationship, employment="employed", sex="female") -> dict:
    return {"age": age, "sex": sex, "relationship": relationship, "race": "Black", "employment": employment,
            "school": "not attending"}


FAMILY = Composition({"size": (3.0, 3.0), "household_type": "married couple", "cars": (1.0, 2.0), "income": "50k-100k"},
                     (member((40.0, 44.0), "householder", sex="male"), member((16.0, 19.0), "spouse"),
                      member((0.0, 4.0), "child", employment="under 16")))
SINGLE = Composition({"size": (1.0, 1.0), "household_type": "female living alone", "cars": (0.0, 0.0), "income": "under 25k"},
                     (member((70.0, 75.0), "householder", employment="not in labor force"),))


def test_expand_draws_variants_of_every_composition_inside_its_ranges(example):
    pool = expand(example, [FAMILY, SINGLE], 40, np.random.default_rng(3))
    assert len(pool) == 80
    h, p = pool.households, pool.persons
    assert h[COMPOSITION].tolist() == [0] * 40 + [1] * 40
    assert h["size"].tolist() == [3] * 40 + [1] * 40
    assert h["cars"].iloc[:40].between(1, 2).all() and (h["cars"].iloc[40:] == 0).all()
    assert set(h["cars"].iloc[:40]) == {1, 2}
    assert (h["household_type"].iloc[:40] == "married couple").all() and (h["income"].iloc[40:] == "under 25k").all()
    assert p.groupby(HOUSEHOLD).size().tolist() == h["size"].tolist()
    assert (p.groupby(HOUSEHOLD)[MEMBER].apply(list) == h["size"].map(lambda s: list(range(s)))).all()
    assert np.issubdtype(p["age"].dtype, np.integer)
    for i, composition in enumerate([FAMILY, SINGLE]):
        mine = p[h[COMPOSITION].to_numpy()[p[HOUSEHOLD].to_numpy()] == i]
        for m, values in enumerate(composition.members):
            rows = mine[mine[MEMBER] == m]
            lo, hi = values["age"]
            assert rows["age"].between(lo, hi).all()
            assert (rows["relationship"] == values["relationship"]).all()
    assert p.loc[(p[MEMBER] == 0) & (p[HOUSEHOLD] < 40), "age"].nunique() > 1  # drawn, not one value per composition


def test_expand_counts_the_derived_values_from_each_candidates_members(example):
    pool = expand(example, [FAMILY, SINGLE], 40, np.random.default_rng(4))
    h, p = pool.households, pool.persons
    by = p.groupby(HOUSEHOLD)
    np.testing.assert_array_equal(h["children"], by["age"].apply(lambda a: int((a < 18).sum())))
    np.testing.assert_array_equal(h["adults"], by["age"].apply(lambda a: int((a >= 18).sum())))
    assert set(h["children"].iloc[:40]) == {1, 2}  # the spouse is 16 to 19: counted per candidate
    assert h["workers"].tolist() == [2] * 40 + [0] * 40
    assert h["spouses"].tolist() == [1] * 40 + [0] * 40
    assert (h["partners"] == 0).all()


def test_expand_gives_every_composition_a_prior_of_one(example):
    pool = expand(example, [FAMILY, SINGLE, FAMILY], 7, np.random.default_rng(0))
    sums = pd.Series(pool.prior).groupby(pool.households[COMPOSITION]).sum()
    np.testing.assert_allclose(sums.to_numpy(), [1.0, 1.0, 1.0])
    assert (pool.source == "composition").all()


def test_derive_recounts_stale_counts_from_the_members(example):
    households = pd.DataFrame({"size": [2, 1], "children": [9, 9], "workers": [9, 9]})
    persons = pd.DataFrame({HOUSEHOLD: [0, 0, 1], "age": [30, 10, 80], "employment": ["employed", "under 16", "employed"],
                            "relationship": ["householder", "child", "householder"]})
    out = derive(example, households, persons)
    assert out["children"].tolist() == [1, 0]
    assert out["workers"].tolist() == [1, 1]
    assert out["adults"].tolist() == [1, 1]
    assert out["spouses"].tolist() == [0, 0]
    assert households["children"].tolist() == [9, 9]  # the input is left alone


def test_fillers_keep_members_and_size_but_draw_household_values_from_the_margins(example, example_targets):
    rng = np.random.default_rng(5)
    base = expand(example, [FAMILY, SINGLE], 1, rng)
    extra = fillers(example, example_targets, base, 3000, 0.3, rng)
    h, p = extra.households, extra.persons
    assert len(extra) == 3000 and (extra.source == "filler").all()
    assert extra.prior.sum() == pytest.approx(0.3)
    assert set(h["size"]) == {1, 3}
    columns = [MEMBER, *PERSON_VARIABLES]
    family = base.persons[base.persons[HOUSEHOLD] == 0][columns].reset_index(drop=True)
    single = base.persons[base.persons[HOUSEHOLD] == 1][columns].reset_index(drop=True)
    for k in [0, 1, 2, 10, 2999]:
        own = p[p[HOUSEHOLD] == k][columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(own, family if h["size"].iloc[k] == 3 else single)
    assert p.groupby(HOUSEHOLD).size().tolist() == h["size"].tolist()
    np.testing.assert_array_equal(h["children"], p.groupby(HOUSEHOLD)["age"].apply(lambda a: int((a < 18).sum())))
    # household values other than the size come from the tables' margins, whatever the members
    income = next(t for t in example_targets if t.variables == ["income"])
    expected = income.region / income.region.sum()
    observed = h["income"].value_counts(normalize=True).reindex(list(income.axes[0].labels), fill_value=0.0)
    np.testing.assert_allclose(observed.to_numpy(), expected, atol=0.04)
    assert h["household_type"].nunique() >= 5
    assert h["cars"].between(0, 6).all() and h["cars"].nunique() >= 4
    assert np.issubdtype(h["cars"].dtype, np.integer)


def test_independent_candidates_follow_the_margins_with_the_reference_person_first(example, example_targets):
    rng = np.random.default_rng(6)
    base = expand(example, [FAMILY, SINGLE], 1, rng)
    extra = independent(example, example_targets, base, 4000, 0.1, rng)
    h, p = extra.households, extra.persons
    assert len(extra) == 4000 and (extra.source == "independent").all() and extra.prior.sum() == pytest.approx(0.1)
    assert p.groupby(HOUSEHOLD).size().tolist() == h["size"].tolist()  # every household its size in members
    assert h["size"].nunique() >= 5  # sizes from the size table, not only those of the compositions (1 and 3)
    first = p[MEMBER] == 0
    assert (p.loc[first, "relationship"] == "householder").all() and (p.loc[~first, "relationship"] != "householder").all()
    ages = next(t for t in example_targets if t.variables == ["age"])
    observed = np.histogram(p["age"], bins=np.append(ages.axes[0].edges[:-1], 100))[0] / len(p)
    np.testing.assert_allclose(observed, ages.region / ages.region.sum(), atol=0.03)
    np.testing.assert_array_equal(h["workers"], p.groupby(HOUSEHOLD)["employment"].apply(lambda e: int((e == "employed").sum())))


def test_two_compositions_reach_every_control_with_independent_candidates_only(example, example_targets):
    """Two compositions (sizes 1 and 3) cannot meet the example's tables; with independent candidates
    (as many as the synthesizer's four rounds draw at most) every control is in reach but the rarest,
    and every table is met within .02 TVD."""
    rng = np.random.default_rng(7)
    base = expand(example, [FAMILY, SINGLE], 30, rng)
    alone = list_balance(incidence(example_targets, base.households, base.persons), example_targets.region_vector(),
                         base.prior, example_targets.importance())
    pool = combine([base, independent(example, example_targets, base, 12_000, 0.01, rng)])
    both = list_balance(incidence(example_targets, pool.households, pool.persons), example_targets.region_vector(),
                        pool.prior, example_targets.importance())
    assert len(alone.unreachable) >= 10 and len(both.unreachable) <= 1
    assert example_targets.region_vector()[both.unreachable].sum() <= 30  # of 14,853 households and 31,074 persons
    offsets = example_targets.offsets()
    for k, table in enumerate(example_targets.tables):  # every table within .01 TVD at the region
        got, want = both.achieved[offsets[k]:offsets[k + 1]], example_targets.region_vector()[offsets[k]:offsets[k + 1]]
        assert 0.5 * np.abs(got / got.sum() - want / want.sum()).sum() < 0.02, table.name


# ---------------------------------------------------------------------------------------------------------------------
# bad nested input


def test_a_table_naming_a_variable_of_neither_level_is_named_with_its_file(tmp_path):
    consistent_files(tmp_path)
    spec = tiny_spec(tmp_path, targets=[*tiny()["targets"], {"name": "pets", "variables": ["age", "pets"], "file": "pets.csv"}])
    with pytest.raises(SpecError) as caught:
        load_controls(spec)
    text = str(caught.value)
    assert str(tmp_path / "spec.yaml") in text and "targets[2] ('pets')" in text
    assert "unknown variable 'pets'" in text
    assert "household variable (size, tenure)" in text and "person variable (age, relationship, works)" in text


@pytest.mark.parametrize(("size", "says"), [("age", "'age' is not a household variable"),
                                            ("tenure", "'tenure' must be an integer variable")])
def test_household_size_must_name_an_integer_household_variable(tmp_path, size, says):
    data = tiny()
    data["household"] = {**data["household"], "size": size}
    with pytest.raises(SpecError) as caught:
        parse_household_spec(data, source="households.yaml", base_dir=tmp_path)
    text = str(caught.value)
    assert text.startswith("households.yaml") and "household.size" in text and says in text


@pytest.mark.parametrize("where", ["household", "derived"])
def test_a_name_used_at_two_levels_is_refused(tmp_path, where):
    data = tiny()
    if where == "household":
        data["household"] = {**data["household"], "variables": {**data["household"]["variables"],
                                                                "works": {"type": "categorical", "values": ["yes", "no"]}}}
    else:
        data["derived"] = {"works": "age >= 16"}
    with pytest.raises(SpecError) as caught:
        parse_household_spec(data, source="households.yaml", base_dir=tmp_path)
    assert "the name 'works' is used at two levels" in str(caught.value)
    assert str(caught.value).startswith("households.yaml")


def test_the_tiny_targets_are_consistent(tmp_path):
    consistent_files(tmp_path)
    targets = load_controls(tiny_spec(tmp_path))
    assert targets.zones == ("A", "B")
    assert targets.households == 5 and targets.persons == 9
    assert targets.zone_households.tolist() == [3, 2]


def test_persons_a_zones_households_cannot_hold_are_refused_naming_the_zone(tmp_path):
    consistent_files(tmp_path)
    write(tmp_path, "age_by_zone.csv", 'zone,age,count\nA,"[0,18)",1\nA,"[18,99]",4\nB,"[0,18)",5\nB,"[18,99]",4')
    with pytest.raises(SpecError) as caught:
        load_controls(tiny_spec(tmp_path))
    text = str(caught.value)
    assert "size_by_zone.csv" in text and "age_by_zone.csv" in text
    assert "zone B: 'age_by_zone' counts 9 persons" in text
    assert "the 2 households of 'size_by_zone' hold between 3 and 5" in text
    assert "member counts disagree with the sizes" in text


def test_too_few_persons_for_the_regions_households_are_refused(tmp_path):
    write(tmp_path, "size.csv", 'size,count\n"[1,2)",10\n"[2,3)",10\n"[3,4]",5')  # 45 to 50 persons
    write(tmp_path, "age.csv", 'age,count\n"[0,18)",10\n"[18,99]",30')
    spec = tiny_spec(tmp_path, zones=None, targets=[{"name": "size", "variables": ["size"], "file": "size.csv"},
                                                    {"name": "age", "variables": ["age"], "file": "age.csv"}])
    with pytest.raises(SpecError) as caught:
        load_controls(spec)
    text = str(caught.value)
    assert "the region: 'age' counts 40 persons" in text
    assert "25 households of 'size' hold between 45 and 50" in text


def test_a_per_zone_table_of_shares_is_refused(tmp_path):
    consistent_files(tmp_path)
    write(tmp_path, "size_by_zone.csv", 'zone,size,share\nA,"[1,2)",0.4\nA,"[2,4]",0.2\nB,"[1,2)",0.2\nB,"[2,4]",0.2')
    with pytest.raises(SpecError) as caught:
        load_controls(tiny_spec(tmp_path))
    text = str(caught.value)
    assert "size_by_zone.csv" in text
    assert "a per-zone table must give counts, not shares" in text


def _disagreeing_persons(folder) -> dict:
    consistent_files(folder)
    write(folder, "age_by_zone.csv", 'zone,age,count\nA,"[0,18)",10\nA,"[18,99]",40\nB,"[0,18)",1\nB,"[18,99]",3')
    return tiny()


def _two_levels(folder) -> dict:
    consistent_files(folder)
    return tiny(derived={"age": "works == yes"})


@pytest.mark.parametrize(("bad", "says"), [(_disagreeing_persons, "zone A: 'age_by_zone' counts 50 persons"),
                                           (_two_levels, "the name 'age' is used at two levels")])
def test_run_refuses_a_bad_household_spec_with_exit_code_2_before_any_model(tmp_path, monkeypatch, bad, says):
    from typer.testing import CliRunner

    import llmsynthor.api
    from llmsynthor.cli import app

    started = []

    def no_backend(*args, **kwargs):
        started.append(args)
        raise AssertionError("a backend was made for a spec that is bad input")

    monkeypatch.setattr(llmsynthor.api, "make_backend", no_backend)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(bad(tmp_path), sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "invalid input" in result.output and says in result.output
    assert "Traceback" not in result.output
    assert started == []
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# a whole run with a fake LLM


class SchemaLLM:
    """An LLM backend that answers with random JSON valid for the schema it is given (objects, arrays
    with minItems/maxItems, string enums, [low, high] integer/number pairs); the answer depends on the
    request's seed only. ``domains``: property name -> (min, max) of its pairs (default (0, 10))."""

    name = "fake-schema"

    def __init__(self, domains: dict | None = None, width: int = 5):
        self.domains, self.width = domains or {}, width
        self.calls: list[dict] = []

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed):
        self.calls.append({"messages": messages, "schema": schema, "seed": seed, "max_tokens": max_tokens})
        text = json.dumps(self._value(schema, "", np.random.default_rng(seed)))
        return Completion(text=text, prompt_tokens=100, completion_tokens=len(text) // 4, seconds=0.0)

    def _value(self, schema: dict, name: str, rng: np.random.Generator):
        if "enum" in schema:
            return str(rng.choice(schema["enum"]))
        kind = schema.get("type")
        if kind == "object":
            return {key: self._value(sub, key, rng) for key, sub in schema.get("properties", {}).items()}
        if kind == "array":
            items, least = schema.get("items", {}), int(schema.get("minItems", 0))
            most = int(schema.get("maxItems", least + 3))
            if items.get("type") in ("integer", "number") and least == most == 2:
                lo_d, hi_d = self.domains.get(name, (0, 10))
                lo = int(rng.integers(lo_d, hi_d + 1))
                pair = [lo, min(hi_d, lo + int(rng.integers(0, self.width + 1)))]
                return pair if items["type"] == "integer" else [float(v) for v in pair]
            return [self._value(items, name, rng) for _ in range(int(rng.integers(least, most + 1)))]
        if kind == "integer":
            return int(rng.integers(*self.domains.get(name, (0, 10)), endpoint=True))
        if kind == "number":
            return float(rng.uniform(*self.domains.get(name, (0, 10))))
        if kind == "boolean":
            return bool(rng.integers(0, 2))
        if kind == "string":
            return "x"
        raise AssertionError(f"schema the fake cannot answer: {schema}")


def two_zones(seed: int = 0):
    return parse_household_spec(tiny_two_zones(seed))


def tiny_two_zones(seed: int = 0) -> dict:
    def cells(variable, rows):
        return [{**({"zone": z} if z else {}), variable: v, "count": c} for z, v, c in rows]

    data = tiny(seed=seed, targets=[
        {"name": "size_by_zone", "variables": ["size"], "cells": cells("size", [
            ("A", "[1,2)", 5), ("A", "[2,3)", 4), ("A", "[3,4]", 3),  # 22 to 25 persons
            ("B", "[1,2)", 3), ("B", "[2,3)", 3), ("B", "[3,4]", 2)])},  # 15 to 17 persons
        {"name": "tenure", "variables": ["tenure"], "cells": cells("tenure", [(None, "own", 12), (None, "rent", 8)])},
        {"name": "age", "variables": ["age"], "cells": cells("age", [(None, "[0,18)", 10), (None, "[18,99]", 29)])},
    ], synthesis={"compositions": 12, "variants": 8, "filler_households": 100})
    return data


def synthesize(seed: int = 0):
    llm = SchemaLLM(domains={"age": (0, 99)})
    result = HouseholdSynthesizer(two_zones(seed), llm).fit().sample()
    return result, llm


def test_a_household_run_gives_each_zone_its_households_with_linked_members():
    result, llm = synthesize()
    h, p = result.households, result.persons
    assert len(llm.calls) == result.requests == 12
    assert result.compositions == 12 and not result.usage.rejected  # every schema-valid answer was accepted
    for call in llm.calls:
        size = int(call["messages"][-1]["content"].split("exactly ")[1].split()[0])
        others = call["schema"]["properties"].get("others")
        assert (others is None and size == 1) or others["minItems"] == others["maxItems"] == size - 1
    assert h["zone"].value_counts().to_dict() == {"A": 12, "B": 8}
    assert h["household_id"].tolist() == list(range(1, 21))
    assert set(p["household_id"]) == set(h["household_id"])
    sizes = h.set_index("household_id")["size"]
    np.testing.assert_array_equal(p.groupby("household_id").size().reindex(sizes.index), sizes)
    assert p["person_id"].tolist() == list(range(1, len(p) + 1))
    assert (p.groupby("household_id")[MEMBER].apply(list) == sizes.map(lambda s: list(range(s)))).all()
    assert (p.loc[p[MEMBER] == 0, "relationship"] == "head").all()
    assert (p.loc[p[MEMBER] > 0, "relationship"] != "head").all()
    kids = p.groupby("household_id")["age"].apply(lambda a: int((a < 18).sum())).reindex(sizes.index)
    np.testing.assert_array_equal(h.set_index("household_id")["kids"], kids)
    assert list(p.columns) == ["household_id", "person_id", MEMBER, "age", "relationship", "works"]


def test_a_household_run_is_the_same_for_the_same_seed():
    first, _ = synthesize(seed=3)
    again, _ = synthesize(seed=3)
    pd.testing.assert_frame_equal(first.households, again.households)
    pd.testing.assert_frame_equal(first.persons, again.persons)
    other, _ = synthesize(seed=4)
    assert not (len(other.persons) == len(first.persons) and other.persons.equals(first.persons))


class ScoringSchemaLLM(SchemaLLM):
    """SchemaLLM that also scores options: a household with a child rents (P = .95), one without owns."""

    name = "fake-schema-scoring"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.questions: list[tuple[list[dict], str, list[str]]] = []

    def option_probabilities(self, messages, answer_prefix, options):
        self.questions.append((messages, answer_prefix, options))
        child = "relationship child" in messages[-1]["content"]
        rent = 0.95 if child else 0.05
        return Choice(probabilities=tuple(rent if o == "rent" else 1 - rent for o in options), prompt_tokens=50, seconds=0.0)


def test_value_question_lists_the_options_first_and_every_member(example):
    composition, _, _ = parse_composition(json.dumps(answer()), example, Kind(3))
    messages, prefix, options = value_question(example, composition, "household_type")
    user = messages[-1]["content"]
    assert options == list(example.household.variables["household_type"].values) and prefix == '{"household_type": "'
    assert user.index("One of: married couple") < user.index("person 1: age")  # the question first, the household last
    assert user.count("\n- person ") == 3 and "relationship householder" in user.split("person 1:")[1].split("\n")[0]
    assert "household_type married couple" not in user  # the value asked about is not told
    _, prefix, letters = value_question(example, composition, "income", letters=True)
    assert prefix == "" and letters == ["A", "B", "C", "D"] and "A) under 25k" in value_question(example, composition, "income", True)[0][-1]["content"]


def test_scored_household_values_are_drawn_from_the_models_probabilities(example):
    scored = replace(FAMILY, scores={"household_type": tuple(1.0 if v == "female living alone" else 0.0
                                                             for v in example.household.variables["household_type"].values)})
    pool = expand(example, [scored, FAMILY], 50, np.random.default_rng(8))
    types = pool.households["household_type"]
    assert (types.iloc[:50] == "female living alone").all() and (types.iloc[50:] == "married couple").all()


def scored_two_zones(values: str = "scored"):
    data = tiny_two_zones()
    return parse_household_spec({**data, "synthesis": {**data["synthesis"], "household_values": values}})


def test_a_run_reads_household_values_from_token_probabilities():
    llm = ScoringSchemaLLM(domains={"age": (0, 99)})
    synth = HouseholdSynthesizer(scored_two_zones(), llm).fit()
    scored = [c for c in synth.compositions_ if c.scores]
    assert len(scored) >= 8 and synth.usage_.option_scorings == len(scored) == len(llm.questions)
    pool = synth.candidates_
    own = pool.source == "composition"
    child = pool.persons.groupby(HOUSEHOLD)["relationship"].apply(lambda r: (r == "child").any()).to_numpy()
    rent = (pool.households["tenure"] == "rent").to_numpy()
    assert rent[own & child].mean() > 0.85 and rent[own & ~child].mean() < 0.15  # 50/50 if the written values were kept
    written = HouseholdSynthesizer(two_zones(), ScoringSchemaLLM(domains={"age": (0, 99)})).fit()  # the default
    assert written.usage_.option_scorings == 0 and not any(c.scores for c in written.compositions_)


def test_a_backend_that_cannot_score_keeps_the_written_values_and_says_so():
    synth = HouseholdSynthesizer(scored_two_zones(), SchemaLLM(domains={"age": (0, 99)})).fit()
    assert synth.usage_.option_scorings == 0 and any("cannot score options" in n for n in synth.notes_)


def test_a_deficit_request_for_a_member_who_is_not_the_reference_person_never_asks_for_one_person(example, example_targets):
    nothing = sparse.csr_matrix((1, int(example_targets.offsets()[-1])))  # a pool that supplies no cell at all
    kinds = deficit_kinds(example, example_targets, nothing, np.ones(1), 300, np.random.default_rng(0))
    others = [k for k in kinds if any(dict(m).get("relationship", "householder") != "householder" for m in k.members)]
    assert len(others) >= 10  # roommates, spouses, children … were asked for
    assert all(k.size >= 2 for k in others), sorted({(k.size, dict(k.members[0])["relationship"]) for k in others if k.size < 2})
    assert any(k.size == 1 for k in kinds)  # the others may still be single
