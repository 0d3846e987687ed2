"""bench/bench_household_knowledge.py asks about real households fairly: each real household the
example's rules accept, a broken copy that one changed value makes break a rule, the asked value
hidden from the question, the margins it is compared with those of the targets."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import ROOT

from llmsynthor.core.rules import parse_rule
from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.spec import load_household_spec

sys.path.insert(0, str(ROOT / "bench"))
import bench_household_knowledge as knowledge  # noqa: E402


@pytest.fixture(scope="module")
def case():
    import semcog_households
    from wheels import wheel_or_skip

    spec = load_household_spec(ROOT / "examples" / "households" / "spec.yaml")
    households, persons = semcog_households.read_households(wheel_or_skip(semcog_households.wheel_path, semcog_households.WHEEL))
    picked = households.iloc[np.random.default_rng(0).choice(len(households), size=80, replace=False)]
    real = knowledge.compositions(spec, picked, persons[persons["household_id"].isin(picked["household_id"])])
    rules = ([parse_rule(r, spec.household_schema) for r in spec.rules.households],
             [parse_rule(r, spec.joined_schema) for r in spec.rules.persons])
    return spec, picked, persons, real, rules


def test_real_households_break_no_rule_and_each_broken_copy_breaks_one_by_one_changed_value(case):
    spec, picked, persons, real, rules = case
    assert [len(c.members) for c in real] == picked["size"].tolist()
    assert not any(knowledge.breaks(spec, c, rules) for c in real)
    rng = np.random.default_rng(1)
    for c in real:
        broken = knowledge.broken_copy(spec, c, rules, rng)
        assert broken is not None and knowledge.breaks(spec, broken, rules)
        changed = sum(a != b for a, b in zip(c.household.values(), broken.household.values()))
        changed += sum(x[n] != y[n] for x, y in zip(c.members, broken.members) for n in spec.person.variables)
        assert changed == 1


def test_a_member_question_hides_the_asked_value_and_lists_the_rest(case):
    spec, _, _, real, _ = case
    c = next(c for c in real if len(c.members) >= 3)
    messages, prefix, options = knowledge.member_question(spec, c, 1, "school")
    text = messages[1]["content"]
    assert "school ?" in text and text.count("school ?") == 1 and f"age {c.members[2]['age']}" in text
    assert prefix == '{"school": "' and options == list(spec.person.variables["school"].values)


def test_the_margins_are_the_target_shares_with_the_householder_left_out_for_others(case):
    spec = case[0]
    targets = load_controls(spec)
    values = list(spec.person.variables["relationship"].values)
    p = knowledge.margin(targets, "persons", "relationship", values, leave_out="householder")
    table = next(t for t in targets if t.variables == ["relationship"])
    counts = dict(zip(table.axes[0].labels, table.region))
    assert p[values.index("householder")] == 0 and p.sum() == pytest.approx(1)
    assert p[values.index("child")] / p[values.index("spouse")] == pytest.approx((counts["child"] + .5) / (counts["spouse"] + .5))


def test_a_server_that_cannot_continue_an_answer_is_asked_by_letter_with_the_same_question(case):
    spec, _, _, real, _ = case
    c = real[0]
    as_text, prefix, options = knowledge.member_question(spec, c, 0, "school")
    by_letter, empty, letters = knowledge.member_question(spec, c, 0, "school", letters=True)
    assert prefix == '{"school": "' and empty == "" and letters == list("ABCDEFGH")
    assert "A) not attending; B) preschool" in by_letter[1]["content"] and "Answer with the letter only" in by_letter[1]["content"]
    assert as_text[1]["content"].split(": ", 1)[1].split(" One of")[0] == by_letter[1]["content"].split(": ", 1)[1].split(" One of")[0]
    assert knowledge.judge_question(spec, c, letters=True)[2] == ["A", "B"]
