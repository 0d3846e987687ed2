"""Final calibration over records: from more candidates than needed, keep the n that match the
targets — never a record that is not a candidate — and spread proposals' categorical values by
the tables' and the model's pairwise lifts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import FakeLLM, KnowingFakeLLM
from test_copula import KNOWLEDGE
from test_copula import SPEC as HOUSEHOLDS

from llmsynthor import Synthesizer, load_spec, load_targets
from llmsynthor.core.metrics import tvd
from llmsynthor.core.statistics import count_all, group_sums
from llmsynthor.declarations.spec import parse_spec, with_overrides
from llmsynthor.fitting.calibration import calibrate
from llmsynthor.prior.copula import Conditionals, score_prior
from llmsynthor.prior.proposals import Proposal, draw, profile

SPEC = {
    "name": "people", "entity": "person", "n_records": 500, "seed": 1,
    "variables": {
        "sex": {"type": "categorical", "values": ["Male", "Female"]},
        "work": {"type": "categorical", "values": ["Employed", "Student", "Retired"]},
        "age": {"type": "integer", "min": 0, "max": 99},
    },
    "targets": [
        {"name": "sex", "variables": ["sex"], "cells": [{"sex": "Male", "count": 240}, {"sex": "Female", "count": 260}]},
        {"name": "age_work", "variables": ["age", "work"], "cells": [
            {"age": "[0,20)", "work": "Student", "count": 120}, {"age": "[20,65)", "work": "Employed", "count": 250},
            {"age": "[20,65)", "work": "Student", "count": 30}, {"age": "[65,99]", "work": "Retired", "count": 100}]},
    ],
}


def candidates(m: int, seed: int = 0) -> pd.DataFrame:
    """Records of every kind, in the wrong proportions (uniform), some impossible (retired children)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sex": rng.choice(["Male", "Female"], m, p=[0.7, 0.3]),
                         "work": rng.choice(["Employed", "Student", "Retired"], m),
                         "age": rng.integers(0, 100, m)})


def test_the_kept_records_match_every_table_and_are_distinct_candidates():
    targets = load_targets(parse_spec(SPEC))
    pool = candidates(3000)
    result = calibrate(pool, targets, 500, np.random.default_rng(3))
    kept = pool.iloc[result.keep]
    assert len(kept) == 500 and len(set(result.keep)) == 500 and result.keep.max() < len(pool)
    for table, counts in zip(targets, count_all(kept, targets)):
        assert np.abs(counts - table.counts).sum() <= 2, table.name  # exact but for a record's rounding
    assert not ((kept["work"] == "Retired") & (kept["age"] < 65)).any()  # the table's zero cells stay empty
    assert result.as_dict()["l1_after_swaps"] <= result.as_dict()["l1_after_sampling"]
    # the same candidates unweighted are far off: calibration did the work
    assert tvd(count_all(pool, targets)[1].ravel(), targets.tables[1].counts.ravel()) > 0.5


def test_a_cap_per_source_is_respected():
    targets = load_targets(parse_spec(SPEC))
    pool = candidates(3000, seed=1)
    sources = np.arange(len(pool)) % 30  # 30 "proposals" of 100 candidates each
    result = calibrate(pool, targets, 500, np.random.default_rng(0), sources=sources, cap=20)
    assert np.bincount(sources[result.keep]).max() <= 20


def test_a_mean_target_is_met_among_the_kept_records():
    spec = parse_spec({**SPEC, "targets": SPEC["targets"] + [
        {"name": "mean_age", "variables": ["work"], "mean_of": "age",
         "cells": [{"work": "Employed", "value": 38.0}, {"work": "Retired", "value": 80.0}]}]})
    targets = load_targets(spec)
    result = calibrate(candidates(4000, seed=2), targets, 500, np.random.default_rng(1))
    kept = candidates(4000, seed=2).iloc[result.keep]
    counts, sums = group_sums(kept, targets.numeric[0])
    means = sums / counts
    assert means[0] == pytest.approx(38.0, rel=0.01) and means[2] == pytest.approx(80.0, rel=0.01)
    assert np.abs(count_all(kept, targets)[1] - targets.tables[1].counts).sum() <= 2


def test_too_few_candidates_is_an_error():
    with pytest.raises(ValueError, match="at least n = 500 candidates, got 100"):
        calibrate(candidates(100), load_targets(parse_spec(SPEC)), 500, np.random.default_rng(0))


def test_conditionals_keep_the_tables_zeros_and_the_models_knowledge():
    targets = load_targets(parse_spec(HOUSEHOLDS))
    prior = score_prior(targets, KnowingFakeLLM(KNOWLEDGE), targets.schema)
    conditionals = Conditionals.build(targets, prior)
    # age × relationship is a table: a child is Own-child and nothing else
    child = conditionals.conditional("relationship", {"sex": "Female"}, {"age": (5.0, 10.0)})
    assert child.tolist() == pytest.approx([0.0, 0.0, 1.0])
    # sex × relationship is the model's: a husband is almost always male
    husband = conditionals.conditional("sex", {"relationship": "Husband"}, {"age": (30.0, 40.0)})
    assert husband[0] > 0.95
    spread = conditionals.spread({"relationship": "Wife", "sex": "Female"}, {"age": (30.0, 40.0)}, share=0.5)
    assert spread["sex"][0] == 0.0  # under the floor: a male wife is not spread to
    assert sum(spread["relationship"]) == pytest.approx(1.0) and spread["relationship"][1] >= 0.5
    assert spread["relationship"][2] == 0.0  # no adult Own-child: the table has none


def test_a_run_calibrates_over_records_and_spreads_values(example_spec_path):
    spec = with_overrides(load_spec(example_spec_path), {"synthesis.records": "proposals"})
    domains = {"age": (18, 90), "price": (0, 2000)}
    plain = Synthesizer(with_overrides(spec, {"synthesis.candidates": 1}), FakeLLM(seed=1, domains=domains)).run()
    calibrated = Synthesizer(spec, FakeLLM(seed=1, domains=domains)).run()
    assert calibrated.calibration["kept"] == 2000 and calibrated.calibration["candidates"] == 6000
    assert plain.calibration is None
    for result in (plain, calibrated):
        assert result.converged and len(result.records) == 2000
    mean = {name: np.mean([d["tvd"] for d in r.distances.values()]) for name, r in (("plain", plain), ("calibrated", calibrated))}
    assert mean["calibrated"] < mean["plain"], mean
    # every kept record comes from a proposal of the pool, within its cap
    assert sum(p["drawn"] for p in calibrated.proposals) == 2000
    assert max(p["drawn"] for p in calibrated.proposals) <= max(100, max(p["drawn"] for p in plain.proposals))
    # spread: the records combine the categorical values in more ways than the proposals named
    combos = {name: len(r.records[["gender", "location", "category", "payment"]].drop_duplicates())
              for name, r in (("plain", plain), ("calibrated", calibrated))}
    assert combos["calibrated"] > combos["plain"], combos


def test_a_numeric_spread_reaches_other_bins_and_draws_keep_the_profiles_arithmetic():
    spec = parse_spec(SPEC)
    targets = load_targets(spec)
    conditionals = Conditionals.build(targets)
    # age × work is a table: a student is 0-19 (80 %) or 20-64 (20 %), never 65+
    parts = conditionals.spread({"sex": "Male", "work": "Student"}, {"age": (12.0, 15.0)}, share=0.5)["age"]
    assert parts[0][:2] == (12.0, 15.0) and parts[0][2] == pytest.approx(0.5 + 0.5 * 0.8)
    assert [p[:2] for p in parts[1:]] == [(20.0, 64.0)] and parts[1][2] == pytest.approx(0.5 * 0.2)
    proposal = Proposal({"sex": "Male", "work": "Student"}, {"age": (12.0, 15.0)}, 1,
                        spread={"age": parts, "sex": (0.5, 0.5)})
    records = draw(proposal, 1000, spec.record_schema, np.random.default_rng(0))
    inside_own = records["age"].between(12, 15).mean()
    assert inside_own == pytest.approx(0.9, abs=0.002) and records["age"].between(20, 64).mean() == pytest.approx(0.1, abs=0.002)
    assert (records["sex"] == "Male").mean() == pytest.approx(0.5, abs=0.002)
    expected = profile(proposal, targets.tables[1], spec.record_schema) * 1000
    assert np.abs(count_all(records, targets)[1].ravel() - expected).max() <= 1.0


def test_the_rounding_program_is_bounded_by_work_never_by_the_clock(monkeypatch, example_spec_path):
    """The records must not depend on the machine's speed or load: every HiGHS call of the calibration
    runs without a time limit, and the integer program that rounds the LP stops after a node count.
    (A 1 s time limit once made a resumed run through a server differ from an uninterrupted one on CI.)"""
    import llmsynthor.fitting.calibration as calibration

    calls = []

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            calls.append((name, dict(kwargs.get("options") or {})))  # a copy: milp empties its options dict
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(calibration, "linprog", spy("linprog", calibration.linprog))
    monkeypatch.setattr(calibration, "milp", spy("milp", calibration.milp))
    spec = with_overrides(load_spec(example_spec_path), {"n_records": 3000, "synthesis.records": "joint"})
    first = Synthesizer(spec, FakeLLM(seed=1, domains={"age": (18, 90), "price": (0, 2000)})).run()
    assert {name for name, _ in calls} == {"linprog", "milp"}  # this case has fractional moves to round
    for name, options in calls:
        assert "time_limit" not in options, (name, options)
        if name == "milp":
            assert options == {"node_limit": calibration.ROUNDING_NODES}
    again = Synthesizer(spec, FakeLLM(seed=1, domains={"age": (18, 90), "price": (0, 2000)})).run()
    assert again.records.equals(first.records)
