"""Option scoring in batches: prompts that share their beginning, scored together."""

from __future__ import annotations

import numpy as np
import pytest

from llmsynthor import load_targets
from llmsynthor.copula import prior_levels, score_prior
from llmsynthor.llm.base import Choice, score_options
from llmsynthor.llm.cache import CachedLLM
from llmsynthor.llm.llama_batch import common_prefix
from llmsynthor.prompts import option_messages
from llmsynthor.spec import parse_spec

SPEC = {
    "name": "people", "entity": "person", "n_records": 1000,
    "variables": {
        "age": {"type": "integer", "min": 0, "max": 99},
        "relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child", "Unmarried"]},
        "sex": {"type": "categorical", "values": ["Male", "Female"]},
        "marital": {"type": "categorical", "values": ["Married-civ-spouse", "Married-spouse-absent", "Never-married", "Divorced"]},
    },
    "targets": [
        {"name": "age", "variables": ["age"], "cells": [{"age": "[0,18)", "count": 200}, {"age": "[18,65)", "count": 600},
                                                         {"age": "[65,99]", "count": 200}]},
        {"name": "relationship", "variables": ["relationship"], "cells": [
            {"relationship": r, "count": c} for r, c in zip(["Husband", "Wife", "Own-child", "Unmarried"], [300, 300, 250, 150])]},
        {"name": "sex", "variables": ["sex"], "cells": [{"sex": "Male", "count": 500}, {"sex": "Female", "count": 500}]},
        {"name": "marital", "variables": ["marital"], "cells": [
            {"marital": m, "count": c}
            for m, c in zip(["Married-civ-spouse", "Married-spouse-absent", "Never-married", "Divorced"], [450, 50, 350, 150])]},
    ],
}

def requests_for(targets, context, answer):
    levels = prior_levels(targets)
    return [option_messages(targets.schema, context, levels[context].axis, i, answer, levels[answer].axis)
            for i in range(levels[context].axis.size)]


def test_the_levels_of_one_question_differ_only_in_the_last_sentence():
    targets = load_targets(parse_spec(SPEC))
    (m1, prefix1, options1), (m2, prefix2, options2) = requests_for(targets, "relationship", "marital")[:2]
    first, second = m1[-1]["content"], m2[-1]["content"]
    assert m1[0] == m2[0] and prefix1 == prefix2 and options1 == options2
    shared = common_prefix(list(first), list(second))
    assert first[:shared].endswith("The person has relationship = ") and first[shared:] == "Husband."
    assert second[shared:] == "Wife." and "Married-spouse-absent" in first[:shared]


class Counting:
    """A scorer with a batch method that says how it was called."""

    name = "counting"

    def __init__(self, batch: bool = True):
        self.batches: list[int] = []
        self.singles = 0
        if not batch:
            self.option_probabilities_batch = None

    def option_probabilities(self, messages, answer_prefix, options):
        self.singles += 1
        first = len(messages[-1]["content"]) % len(options)  # deterministic, differs between questions
        return Choice(tuple(0.9 if j == first else 0.1 / (len(options) - 1) for j in range(len(options))), 7, 0.1)

    def option_probabilities_batch(self, requests):
        self.batches.append(len(requests))
        return [self.option_probabilities(*r) for r in requests]


def test_score_options_uses_the_batch_method_where_there_is_one_and_keeps_the_order():
    targets = load_targets(parse_spec(SPEC))
    requests = requests_for(targets, "relationship", "marital")
    batched, plain = Counting(), Counting(batch=False)
    assert score_options(batched, requests) == score_options(plain, requests)
    assert batched.batches == [4] and plain.singles == 4 and plain.batches == []


def test_the_cache_answers_what_it_has_and_asks_the_rest_in_one_batch(tmp_path):
    targets = load_targets(parse_spec(SPEC))
    requests = requests_for(targets, "relationship", "marital")
    inner = Counting()
    cached = CachedLLM(inner, tmp_path / "r.sqlite")
    first = cached.option_probabilities_batch(requests[:2])
    both = cached.option_probabilities_batch(requests)
    assert inner.batches == [2, 2] and cached.hits == 2 and cached.misses == 4
    assert [c.cached for c in both] == [True, True, False, False]
    assert [c.probabilities for c in both[:2]] == [c.probabilities for c in first]
    assert cached.option_probabilities(*requests[3]).cached  # the one-at-a-time path reads the same entries


def test_the_prior_is_asked_in_one_batch_per_variable_asked_about():
    targets = load_targets(parse_spec(SPEC))
    scorer = Counting()
    prior = score_prior(targets, scorer, targets.schema, check=False)
    answers = {a for _, a in prior.lifts}
    assert len(scorer.batches) == len(answers) and sum(scorer.batches) == scorer.singles
    assert sum(scorer.batches) == sum(prior.levels[c].axis.size for c, _ in prior.lifts)


@pytest.mark.model
def test_batched_scoring_on_the_real_model_equals_one_request_at_a_time_in_fewer_passes():
    """Qwen2.5-Coder-1.5B: four prompts sharing their question, options that branch after a shared
    first token (Married-…) — the same probabilities, batched or not, within llama.cpp's numerical
    noise between batch shapes."""
    from llmsynthor.llm.embedded import EmbeddedLLM

    targets = load_targets(parse_spec(SPEC))
    llm = EmbeddedLLM("qwen2.5-coder-1.5b", n_ctx=1024)
    requests = requests_for(targets, "relationship", "marital")
    batch = llm.option_probabilities_batch(requests)
    passes = llm._scorer.passes
    singles = [llm.option_probabilities(*r) for r in requests]
    assert passes <= 2 and llm._scorer.passes - passes >= len(requests)  # one pass for the shared beginning, one for the rest
    for b, s in zip(batch, singles):
        assert np.isclose(sum(b.probabilities), 1) and np.allclose(b.probabilities, s.probabilities, atol=0.06)
    husband, _, own_child, _ = (np.array(c.probabilities) for c in batch)
    assert husband[0] > 0.5 and own_child[2] > husband[2]  # married husbands, never-married children
