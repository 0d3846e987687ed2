"""The household baselines of bench/bench_households.py: linked frames in the output format, seeded, households
per zone exact; IPF meets the household tables it can use; the real sample keeps its households whole."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.evaluation import evaluate_households
from llmsynthor.shapes.households.spec import load_household_spec

sys.path.insert(0, str(ROOT / "bench"))
import household_baselines as baselines  # noqa: E402

HOUSEHOLD_COLUMNS = ["household_id", "zone", "size", "household_type", "cars", "income", "children", "workers", "adults",
                     "spouses", "partners"]
PERSON_COLUMNS = ["household_id", "person_id", "member", "age", "sex", "relationship", "race", "employment", "school"]


@pytest.fixture(scope="module")
def spec():
    return load_household_spec(ROOT / "examples" / "households" / "spec.yaml")


@pytest.fixture(scope="module")
def targets(spec):
    return load_controls(spec)


@pytest.fixture(scope="module")
def ipf(spec, targets):
    return baselines.ipf_households(spec, targets, seed=0)


def per_zone(households, targets) -> np.ndarray:
    return households["zone"].value_counts().reindex(list(targets.zones)).fillna(0).to_numpy()


def check_format(households: pd.DataFrame, persons: pd.DataFrame) -> None:
    assert list(households.columns) == HOUSEHOLD_COLUMNS and list(persons.columns) == PERSON_COLUMNS
    assert households["household_id"].is_unique and persons["person_id"].is_unique
    members = persons.groupby("household_id")["member"]
    assert np.array_equal(members.size().reindex(households["household_id"]).to_numpy(), households["size"].to_numpy())
    assert (members.min() == 0).all() and (members.max() + 1).equals(members.size())
    heads = persons["relationship"] == "householder"
    assert heads.sum() == len(households) and (persons.loc[heads, "member"] == 0).all()


def test_ipf_meets_the_household_tables_it_can_use_with_households_per_zone_exact(spec, targets, ipf):
    households, persons = ipf
    check_format(households, persons)
    assert np.array_equal(per_zone(households, targets), targets.zone_households)
    result = evaluate_households(spec, targets, households, persons)
    assert sum(result.structure.values()) == 0
    tvd = {name: f["tvd"] for name, f in result.on_targets.items()}
    assert tvd["size_by_zone"] < 1e-9 and result.on_targets["size_by_zone"]["zones_tvd_max"] < 1e-9
    assert max(tvd["income_by_zone"], tvd["household_type"], tvd["size_cars"]) < 0.01
    assert tvd["age_sex_employment"] < 0.02 and tvd["relationship"] < 0.01  # persons from the person tables
    assert tvd["size_children"] > 0.05  # members drawn independently: what IPF over households cannot know
    assert abs(len(persons) - targets.persons) < 0.01 * targets.persons  # "5+" sizes matched to the persons' total


def test_the_baselines_are_seeded(spec, targets, ipf):
    again = baselines.ipf_households(spec, targets, seed=0)
    assert ipf[0].equals(again[0]) and ipf[1].equals(again[1])
    other = baselines.ipf_households(spec, targets, seed=1)
    assert not ipf[1]["age"].equals(other[1]["age"])
    a, b = baselines.independent(spec, targets, seed=3), baselines.independent(spec, targets, seed=3)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_independent_margins_know_no_joint(spec, targets, ipf):
    households, persons = baselines.independent(spec, targets, seed=0)
    check_format(households, persons)
    assert np.array_equal(per_zone(households, targets), targets.zone_households)
    mine = evaluate_households(spec, targets, households, persons)
    raked = evaluate_households(spec, targets, *ipf)
    assert mine.on_targets["household_type"]["tvd"] < 0.03 and mine.on_targets["race"]["tvd"] < 0.03
    assert mine.on_targets["size_cars"]["tvd"] > 5 * raked.on_targets["size_cars"]["tvd"]
    assert mine.on_targets["age_sex_employment"]["tvd"] > 5 * raked.on_targets["age_sex_employment"]["tvd"]


def test_the_real_sample_keeps_households_whole_and_each_zone_its_count():
    rng = np.random.default_rng(0)
    zones = ["A"] * 40 + ["B"] * 25
    sizes = rng.integers(1, 4, size=len(zones))
    households = pd.DataFrame({"household_id": np.arange(101, 101 + len(zones)), "zone": zones, "size": sizes})
    persons = pd.DataFrame({"household_id": np.repeat(households["household_id"], sizes),
                            "member": np.concatenate([np.arange(s) for s in sizes])})
    persons["age"] = persons["household_id"] * 10 + persons["member"]  # which household and member a person was
    persons = persons.sample(frac=1, random_state=1)  # listed in any order
    out, people = baselines.sample((households, persons), share=0.1, seed=0)
    assert out["zone"].value_counts().to_dict() == {"A": 40, "B": 25}
    assert out["household_id"].tolist() == list(range(1, 66)) and people["person_id"].tolist() == list(range(1, len(people) + 1))
    listed = people.groupby("household_id")["member"].apply(list)
    assert all(m == list(range(s)) for m, s in zip(listed.reindex(out["household_id"]), out["size"]))
    source = (people["age"] // 10).groupby(people["household_id"]).nunique()
    assert (source == 1).all()  # every copy holds the persons of one true household
    copies = (people.loc[people["member"] == 0, "age"] // 10).value_counts()
    assert sorted(copies.tolist()) == [10, 10, 10, 10, 12, 13]  # A: 4 drawn, 10 copies each; B: 2 drawn, 25 = 12 + 13


def test_unbiased_rounding_keeps_the_total_and_the_expected_counts():
    values = np.array([0.3, 1.5, 2.2, 0.0, 4.0])
    draws = np.array([baselines.unbiased_round(values, 8, np.random.default_rng(s)) for s in range(4000)])
    assert (draws.sum(axis=1) == 8).all()
    assert ((draws == np.floor(values)) | (draws == np.floor(values) + 1)).all()
    assert np.allclose(draws.mean(axis=0), values, atol=0.03)


def test_rake_meets_consistent_margins():
    fitted = baselines.rake(np.ones((2, 3)), [np.array([4.0, 6.0]), np.array([5.0, 0.0, 5.0])], [[0], [1]])
    assert np.allclose(fitted.sum(axis=1), [4, 6]) and np.allclose(fitted.sum(axis=0), [5, 0, 5])


def test_populationsim_controls_count_what_the_targets_count(spec, targets, ipf, tmp_path):
    """Every control's expression, evaluated on the seed as PopulationSim does (households.<column>, persons
    summed per household), counts what llmsynthor counts on the table's cell."""
    from llmsynthor.shapes.households.controls import HOUSEHOLD, counts

    households, persons = ipf[0].iloc[:300], ipf[1][ipf[1]["household_id"] <= 300]
    weights = np.arange(1, 301) % 7 + 1.0
    baselines.populationsim_inputs(spec, targets, households, persons, weights, tmp_path)
    controls = pd.read_csv(tmp_path / "configs" / "controls.csv")
    seed_h = pd.read_csv(tmp_path / "data" / "seed_households.csv").set_index("hh_id")
    seed_p = pd.read_csv(tmp_path / "data" / "seed_persons.csv")
    taz, puma = pd.read_csv(tmp_path / "data" / "control_totals_taz.csv"), pd.read_csv(tmp_path / "data" / "control_totals_puma.csv")
    assert len(controls) == 1 + sum(t.region.size for t in targets) and controls["target"].is_unique
    assert taz["HHBASE"].tolist() == targets.zone_households.tolist() and len(puma) == 1
    people = persons.assign(**{HOUSEHOLD: persons["household_id"].to_numpy() - 1})
    row = 1
    for table in targets:
        ours = counts(table, households, people, weights).ravel()
        for j in range(table.region.size):
            spec_row = controls.iloc[row]
            frame = seed_h if spec_row["seed_table"] == "households" else seed_p
            incidence = pd.Series(eval(spec_row["expression"], {"np": np, spec_row["seed_table"]: frame}) * 1, index=frame.index)
            if spec_row["seed_table"] == "persons":
                incidence = incidence.groupby(seed_p["hh_id"]).sum().reindex(seed_h.index, fill_value=0)
            assert float((incidence.to_numpy() * weights).sum()) == pytest.approx(ours[j]), (table.name, j)
            wanted = taz[spec_row["control_field"]].sum() if table.zones is not None else puma[spec_row["control_field"]][0]
            assert wanted == pytest.approx(table.region.ravel()[j])
            row += 1
