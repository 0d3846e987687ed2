"""The loop with a test double for the LLM: alignment, reproducibility, retries, bad output kept out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import FakeLLM

from llmsynthor import ProposalError, Synthesizer, load_spec
from llmsynthor.core.metrics import tvd
from llmsynthor.core.statistics import count_all
from llmsynthor.declarations.spec import with_overrides

DOMAINS = {"age": (18, 90), "price": (0, 2000)}


@pytest.fixture(scope="module")
def spec():
    from conftest import EXAMPLE

    return with_overrides(load_spec(EXAMPLE / "spec.yaml"), {"synthesis.records": "proposals"})  # the loop's own tests


def run(spec, llm, **overrides):
    if overrides:
        spec = with_overrides(spec, overrides)
    seen = []
    result = Synthesizer(spec, llm, progress=seen.append).run()
    return result, seen


def test_the_loop_aligns_all_tables(spec):
    result, seen = run(spec, FakeLLM(seed=1, domains=DOMAINS))
    assert result.converged and len(result.records) == 2000
    assert result.worst_tvd <= spec.synthesis.tolerance_tvd
    assert all(d["jsd"] <= spec.synthesis.tolerance_jsd for d in result.distances.values())
    # distances in the result are recomputed from the records themselves
    from llmsynthor import load_targets

    targets = load_targets(spec)
    for t, c in zip(targets, count_all(result.records, targets)):
        assert tvd(c, t.counts) == pytest.approx(result.distances[t.name]["tvd"])
    assert [s.iteration for s in seen] == list(range(1, len(seen) + 1))
    # fit draws nothing by default (draw: when_aligned): it stops once the pool's plan fits, and sample draws
    assert seen[-1].records == 0 and seen[-1].predicted_worst_tvd <= spec.synthesis.tolerance_tvd and result.history == seen
    assert result.usage.calls == len(seen) + 1  # + the dependency step
    assert result.dependencies["given"] == [["age", "gender", "category"], ["category", "price"], ["location", "payment"]]
    assert result.dependencies["inferred"] == [["age", "gender"]]
    assert sum(p["drawn"] for p in result.proposals) == 2000


def test_same_seed_same_records_and_another_seed_differs(spec):
    a, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS))
    b, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS))
    c, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS), seed=8)
    assert a.records.equals(b.records)
    assert not a.records.equals(c.records)


def test_every_call_gets_a_seed_fixed_by_the_run_seed_and_its_place(spec):
    seeds = []
    for run_seed in (7, 7, 8):
        llm = FakeLLM(seed=1, domains=DOMAINS)
        run(spec, llm, seed=run_seed)
        seeds.append([c["seed"] for c in llm.calls])
    assert len(set(seeds[0])) == len(seeds[0]) and all(0 <= s < 2**31 for s in seeds[0])
    assert seeds[0] == seeds[1] and seeds[0][0] != seeds[2][0]


def test_the_paper_schedule_adds_a_batch_every_iteration(spec):
    result, seen = run(spec, FakeLLM(seed=1, domains=DOMAINS), **{"synthesis.draw": "every_iteration", "synthesis.max_iterations": 10})
    assert len(result.records) == 2000
    assert [s.records for s in seen][:3] == [200, 400, 600]


@pytest.mark.parametrize("schedule", ["every_iteration", "when_aligned"])
def test_remove_and_replace_takes_back_over_represented_records(spec, schedule):
    # remove and replace is the path without calibration over records (candidates = 1)
    settings = {"synthesis.draw": schedule, "synthesis.max_iterations": 10, "synthesis.candidates": 1}
    add_only, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS), **settings, **{"synthesis.remove_surplus": False})
    replaced, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS), **settings)
    assert len(replaced.records) == len(add_only.records) == 2000
    assert list(replaced.records.columns) == spec.record_schema.names  # the bookkeeping column is gone
    assert any(note.startswith("remove and replace") for note in replaced.notes)
    assert not any(note.startswith("remove and replace") for note in add_only.notes)
    mean_tvd = {name: np.mean([d["tvd"] for d in r.distances.values()]) for name, r in (("add", add_only), ("replaced", replaced))}
    assert mean_tvd["replaced"] < mean_tvd["add"], mean_tvd
    # every record still comes from a proposal, within the caps
    assert sum(p["drawn"] for p in replaced.proposals) == 2000
    assert max(p["drawn"] for p in replaced.proposals) <= spec.synthesis.max_proposal_share * 2000


def test_malformed_output_is_retried_counted_and_never_reaches_the_records(spec):
    bad_plan = {"proposals": [{"age": [30, 40], "price": [10, 20], "gender": "Alien", "num": 5}]}
    script = [
        json.dumps({"groups": [["age", "price"]]}),   # dependency step
        "{this is not json",                            # plan 1, attempt 1
        json.dumps({"proposals": []}),                  # attempt 2
        json.dumps(bad_plan),                           # attempt 3: gender is not allowed... but fixed by focus
    ]
    llm = FakeLLM(script=script, seed=2, domains=DOMAINS)
    result, _ = run(spec, llm)
    usage = result.usage
    assert usage.invalid_responses == 2
    assert usage.rejected["response is not valid JSON"] == 1
    assert usage.rejected["response has no 'proposals' list"] == 1
    assert set(result.records["gender"]) <= {"Male", "Female"}
    assert result.records["age"].between(18, 90).all() and result.records["price"].between(0, 2000).all()


def test_a_value_outside_the_schema_is_rejected(spec):
    # with pin="lead" only the lead table (age x gender x category) is fixed: location comes from the model
    plan = {"proposals": [{"age": [30, 40], "gender": "Male", "location": "Mars", "category": "Apparel",
                           "price": [10, 20], "payment": "COD", "num": 5}] * 6}
    script = [json.dumps({"groups": []})] + [json.dumps(plan)] * 4
    with pytest.raises(ProposalError) as info:
        run(spec, FakeLLM(script=script, domains=DOMAINS), **{"synthesis.pin": "lead"})
    assert info.value.attempts == 4 and "location: value not allowed" in str(info.value)
    assert "Mars" in info.value.last_response


def test_output_that_never_validates_stops_the_run_with_evidence(spec):
    script = [json.dumps({"groups": []})] + ["nonsense"] * 4
    with pytest.raises(ProposalError) as info:
        run(spec, FakeLLM(script=script, domains=DOMAINS))
    assert info.value.attempts == 4 and info.value.last_response == "nonsense"
    assert "not valid JSON" in str(info.value)


def test_the_result_reports_diversity(spec):
    result, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS))
    d = result.diversity
    assert 0.9 < d["distinct_share"] <= 1 and d["largest_proposal_share"] <= spec.synthesis.max_proposal_share
    assert d["proposals_used"] >= 1 / spec.synthesis.max_proposal_share
    # aligned tables have about the target's entropy
    for name, h in d["entropy_bits"].items():
        assert abs(h["synthetic"] - h["target"]) < 0.05, name


def test_fit_then_sample_is_run_and_the_fitted_pool_samples_again(spec):
    ran, _ = run(spec, FakeLLM(seed=1, domains=DOMAINS))
    llm = FakeLLM(seed=1, domains=DOMAINS)
    synth = Synthesizer(spec, llm).fit()
    calls = len(llm.calls)
    first = synth.sample()
    assert first.records.equals(ran.records) and first.usage.calls == ran.usage.calls
    assert synth.sample(n=700).records.shape == (700, 6)
    assert synth.sample().records.equals(first.records)  # sampling leaves the fitted state as it was
    # a fitted pool gives more records without the LLM: any size, reproducible from a seed
    small, again, other = synth.sample(n=500, seed=3), synth.sample(n=500, seed=3), synth.sample(n=500, seed=4)
    assert len(llm.calls) == calls
    assert len(small.records) == 500 and small.records.equals(again.records) and not small.records.equals(other.records)
    assert sum(p["drawn"] for p in small.proposals) == 500
    # the targets are rescaled to n (at 500 records, rounding 48 cells alone costs a TVD near .016)
    assert small.worst_tvd <= 0.03, small.distances
    for n in (1000, 5000):
        other = synth.sample(n=n, seed=3)
        assert len(other.records) == n and other.converged, other.distances


def test_sample_needs_a_fit_and_a_whole_positive_size(spec):
    from llmsynthor import SpecError

    synth = Synthesizer(spec, FakeLLM(script=[json.dumps({"groups": []})] + ["nonsense"] * 4, domains=DOMAINS))
    with pytest.raises(RuntimeError, match="fit"):
        synth.sample()
    with pytest.raises(ProposalError):
        synth.fit()
    with pytest.raises(RuntimeError, match="stopped with an error"):
        synth.sample()  # a half-grown pool is not a fitted one
    synth = Synthesizer(spec, FakeLLM(seed=1, domains=DOMAINS)).fit()
    for bad in (0, -5, 2.5, "10"):
        with pytest.raises(SpecError, match="whole number of records"):
            synth.sample(n=bad)
