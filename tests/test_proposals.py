"""Proposals: validation and clamping, pinning, profiles agree with draws; allocation arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmsynthor import load_spec, load_targets
from llmsynthor.core.statistics import count
from llmsynthor.fitting.allocation import solve
from llmsynthor.fitting.integerize import round_to_total
from llmsynthor.prior.focus import Focus, plan_focus
from llmsynthor.prior.proposals import ParseReport, Proposal, draw, parse_plan, pin, plan_schema, profile


@pytest.fixture(scope="module")
def targets():
    from conftest import EXAMPLE

    return load_targets(load_spec(EXAMPLE / "spec.yaml"))


@pytest.fixture(scope="module")
def schema(targets):
    return targets.schema


GOOD = {"age": [30, 40], "gender": "Female", "location": "Developed", "category": "Apparel",
        "price": [50, 120], "payment": "Online", "num": 12}


def test_a_valid_plan_parses(schema):
    items, report, error = parse_plan(json.dumps({"proposals": [GOOD]}), schema)
    assert error is None and report.accepted == 1
    (index, p), = items
    assert index == 0 and p.values["gender"] == "Female" and p.ranges["age"] == (30, 40) and p.num == 12


@pytest.mark.parametrize("change, reason", [
    ({"gender": "Other"}, "gender: value not allowed"),
    ({"age": [120, 150]}, "age: range outside [18, 90]"),
    ({"price": "cheap"}, "price: not a [min, max] pair"),
    ({"age": [30.2, 30.8]}, "age: no whole number in range"),
])
def test_invalid_proposals_are_rejected_and_counted(schema, change, reason):
    items, report, error = parse_plan(json.dumps({"proposals": [{**GOOD, **change}, GOOD]}), schema)
    assert [i for i, _ in items] == [1]
    assert report.rejected == {reason: 1} and error is None


def test_missing_field_is_rejected(schema):
    bad = dict(GOOD)
    del bad["payment"]
    items, report, error = parse_plan(json.dumps({"proposals": [bad]}), schema)
    assert items == [] and report.rejected == {"payment: missing": 1}
    assert error.startswith("no proposal in the response passed validation")


def test_out_of_domain_ranges_are_clamped_swapped_and_num_clipped(schema):
    raw = {**GOOD, "age": [95, 10], "price": [-13, 14], "num": 10**15}
    (_, p), = parse_plan(json.dumps({"proposals": [raw]}), schema)[0]
    assert p.ranges["age"] == (18, 90) and p.ranges["price"] == (0, 14) and p.num == 10_000


@pytest.mark.parametrize("text, error", [
    ("{not json", "response is not valid JSON"),
    ('{"proposals": []}', "response has no non-empty 'proposals' list"),
    ('{"other": 1}', "response has no non-empty 'proposals' list"),
])
def test_unusable_responses_say_why(schema, text, error):
    items, _, message = parse_plan(text, schema)
    assert items == [] and message.startswith(error)


def test_fixed_values_fill_omitted_fields(schema):
    omitted = {k: v for k, v in GOOD.items() if k not in ("gender", "category")}
    sch = plan_schema(schema, 3, omit=frozenset({"gender", "category"}))
    assert "gender" not in sch["properties"]["proposals"]["items"]["properties"]
    (_, p), = parse_plan(json.dumps({"proposals": [omitted]}), schema, fixed=[{"gender": "Male", "category": "Electronics"}])[0]
    assert p.values["gender"] == "Male" and p.values["category"] == "Electronics"


def test_pin_moves_a_drifting_proposal_into_its_cell(schema):
    p = Proposal({"gender": "Female", "location": "Developed", "category": "Apparel", "payment": "Online"},
                 {"age": (30.0, 60.0), "price": (0.0, 100.0)}, 5)
    focus = Focus({"gender": "Male"}, {"age": (39.0, 52.0), "price": (921.0, 2000.0)}, 10)
    report = ParseReport()
    q = pin(p, focus, schema, report)
    assert q.values["gender"] == "Male"
    assert q.ranges["age"] == (39, 51)            # integer [39,52) holds 39..51
    assert q.ranges["price"] == (921, 2000)       # no overlap: the whole interval
    assert sum(report.corrected.values()) == 3
    sliver = Proposal(p.values, {"age": (40.0, 40.0), "price": (900.0, 921.0)}, 5)
    r = pin(sliver, focus, schema, ParseReport())
    assert r.ranges["price"] == (921, 2000) and r.ranges["age"] == (39, 51)  # a sliver would clone one value


def test_profile_equals_the_share_of_drawn_records(targets, schema):
    p = Proposal({"gender": "Male", "location": "Developing", "category": "Food & Beverages", "payment": "COD"},
                 {"age": (20.0, 45.0), "price": (100.0, 700.0)}, 1)
    records = draw(p, 5000, schema, np.random.default_rng(0))
    assert records["age"].between(20, 45).all() and records["price"].between(100, 700).all()
    for table in targets:
        observed = count(records, table).ravel() / 5000
        np.testing.assert_allclose(observed, profile(p, table, schema), atol=2e-3, err_msg=table.name)


def test_draws_are_reproducible(schema):
    p = Proposal({"gender": "Male", "location": "Developing", "category": "Apparel", "payment": "COD"},
                 {"age": (20.0, 45.0), "price": (100.0, 700.0)}, 1)
    a = draw(p, 50, schema, np.random.default_rng(4))
    b = draw(p, 50, schema, np.random.default_rng(4))
    assert a.equals(b) and a["age"].dtype.kind == "i"


def test_focus_cells_are_consistent_across_tables(targets):
    rng = np.random.default_rng(0)
    residual = [t.counts.copy() for t in targets]
    focus = plan_focus(targets, residual, 5, rng)
    assert len(focus) == 5
    for f in focus:
        assert set(f.values) == {"gender", "location", "category", "payment"}
        for table in targets:  # the focus lands in exactly one wanted cell of every table
            p = Proposal(f.values, {k: (lo, hi - 1 if k == "age" else hi - 1e-9) for k, (lo, hi) in f.intervals.items()}, 1)
            share = profile(p, table, targets.schema)
            assert share.max() == pytest.approx(1.0)
            assert table.counts.ravel()[share.argmax()] > 0


def test_solve_recovers_known_counts():
    profiles = [np.eye(3), np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])]
    truth = np.array([10.0, 20.0, 30.0])
    fit = solve(profiles, [p @ truth for p in profiles], [1.0, 1.0], 60, np.full(3, 100.0))
    np.testing.assert_allclose(fit.counts, truth, atol=1e-6)


def test_solve_respects_caps():
    fit = solve([np.eye(2)], [np.array([90.0, 10.0])], [1.0], 100, np.array([50.0, 100.0]))
    assert fit.counts[0] <= 50 + 1e-9 and fit.counts.sum() == pytest.approx(100, abs=1e-3)


def test_integerize_sums_exactly():
    out = round_to_total(np.array([0.4, 1.3, 2.3, 0.0]), 4)
    assert out.sum() == 4 and out.dtype.kind == "i" and out[3] == 0
    assert round_to_total(np.array([10.0, 10.0]), 7, caps=np.array([2.0, 10.0])).tolist() == [2, 5]


def test_an_answer_cut_off_at_the_token_limit_keeps_its_complete_proposals():
    from llmsynthor.prior.proposals import _complete_items

    assert _complete_items('{"proposals": [{"a": 1}, {"b": [2, 3]}, {"c": [3') == {"proposals": [{"a": 1}, {"b": [2, 3]}]}
    assert _complete_items('{"proposals": [{"a": 1') is None
    assert _complete_items("not json") is None
