"""Option scoring in batches: prompts that share their beginning, scored together."""

from __future__ import annotations

import numpy as np
import pytest

from llmsynthor import load_targets
from llmsynthor.declarations.spec import parse_spec
from llmsynthor.llm.base import Choice, score_options
from llmsynthor.llm.cache import CachedLLM
from llmsynthor.llm.llama_batch import common_prefix
from llmsynthor.prior.copula import prior_levels, score_prior
from llmsynthor.prior.prompts import option_messages

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


# -- the batch scorer's bookkeeping, on a fake llama.cpp context ----------------------------------
class _FakeMemory:
    """llama.cpp's KV memory as {sequence: {position: token}}, with the calls the scorer makes."""

    def __init__(self):
        self.seqs: dict[int, dict[int, int]] = {}

    def llama_memory_seq_keep(self, memory, seq):
        self.seqs = {seq: self.seqs.get(seq, {})}

    def llama_memory_seq_rm(self, memory, seq, p0, p1):
        self.seqs[seq] = {p: t for p, t in self.seqs.get(seq, {}).items() if p < p0}

    def llama_memory_seq_cp(self, memory, source, target, p0, p1):
        self.seqs[target] = dict(self.seqs.get(source, {}))

    def llama_memory_clear(self, memory, data):
        self.seqs = {}


VOCAB = 50


def _fake_logits(history) -> np.ndarray:
    """Deterministic logits for a token history (what a model would compute from the whole sequence)."""
    import zlib

    return np.random.default_rng(zlib.crc32(bytes(str(list(history)), "ascii"))).normal(size=VOCAB)


def fake_scorer(n_batch: int, n_seq_max: int, n_ctx: int = 4096):
    """A PrefixBatchScorer whose decode checks every row against the memory (each sequence's positions
    continue what it holds, sequence ids and batch size within the limits) and computes logits from
    the sequence's whole history."""
    import types

    from llmsynthor.llm.llama_batch import PrefixBatchScorer

    scorer = PrefixBatchScorer.__new__(PrefixBatchScorer)
    memory = _FakeMemory()
    batch = types.SimpleNamespace(token=[0] * n_batch, pos=[0] * n_batch, n_seq_id=[0] * n_batch, logits=[False] * n_batch,
                                  seq_id=[[0] * n_seq_max for _ in range(n_batch)], n_tokens=0)
    outputs = {}

    def decode(_):
        outputs.clear()
        assert batch.n_tokens <= n_batch
        for i in range(batch.n_tokens):
            seqs = [batch.seq_id[i][k] for k in range(batch.n_seq_id[i])]
            for seq in seqs:
                assert 0 <= seq < n_seq_max
                held = memory.seqs.setdefault(seq, {})
                assert sorted(held) == list(range(batch.pos[i])), "a sequence's positions must continue what it holds"
                held[batch.pos[i]] = batch.token[i]
            if batch.logits[i]:
                held = memory.seqs[seqs[0]]
                outputs[i] = _fake_logits(held[p] for p in range(batch.pos[i] + 1))

    scorer._lib, scorer._ctx = memory, types.SimpleNamespace(memory=None, decode=decode)
    scorer._batch = types.SimpleNamespace(batch=batch)
    scorer._logits = lambda row: outputs[row]
    scorer.n_vocab, scorer.n_ctx, scorer.n_batch, scorer.n_seq_max = VOCAB, n_ctx, n_batch, n_seq_max
    scorer._shared, scorer.passes = [], 0
    return scorer


def trie_walk(prompt, paths) -> np.ndarray:
    """The reference: one request, every branching point on its own."""
    from llmsynthor.llm.llama_batch import _Request

    out = np.zeros(len(paths))
    for prefix, members in _Request(prompt, paths).branches().items():
        tokens = sorted({paths[i][len(prefix)] for i in members})
        logits = _fake_logits(list(prompt) + list(prefix))[tokens]
        z = logits - np.logaddexp.reduce(logits)
        for i in members:
            out[i] += z[tokens.index(paths[i][len(prefix)])]
    return out


@pytest.mark.parametrize("n_batch, n_seq_max", [(512, 64), (64, 8), (16, 4)])
def test_batched_scores_equal_the_trie_walk_whatever_the_limits(n_batch, n_seq_max):
    rng = np.random.default_rng(n_batch)
    scorer = fake_scorer(n_batch, n_seq_max)
    for _ in range(40):
        base = list(rng.integers(1, VOCAB, rng.integers(5, 40)))
        prompts = [(base if rng.random() < 0.8 else list(rng.integers(1, VOCAB, 20))) + list(rng.integers(1, VOCAB, rng.integers(1, 8)))
                   for _ in range(rng.integers(1, 12))]
        paths = [[list(rng.integers(1, 4, rng.integers(1, 4))) for _ in range(rng.integers(2, 7))] for _ in prompts]
        scores, _ = scorer.score(prompts, paths)
        for prompt, options, got in zip(prompts, paths, scores):
            assert np.allclose(got, trie_walk(prompt, options))


def test_a_request_with_more_branching_points_than_sequences_is_spread_over_passes():
    rng = np.random.default_rng(7)
    prompt = list(rng.integers(1, VOCAB, 30))
    paths = [[int(a), int(b), int(c)] for a, b, c in rng.integers(1, 6, (100, 3))]  # 100 options, dozens of branching points
    scorer = fake_scorer(512, 8)
    (got,), _ = scorer.score([prompt], [paths])
    assert scorer.passes > 3 and np.allclose(got, trie_walk(prompt, paths))


def test_the_questions_about_one_variable_share_two_passes():
    rng = np.random.default_rng(3)
    base = list(rng.integers(1, VOCAB, 200))
    prompts = [base + [int(level), 7, 8] for level in range(1, 8)]
    paths = [[[1], [2, 3], [2, 4]]] * len(prompts)
    scorer = fake_scorer(512, 64)
    scores, evaluated = scorer.score(prompts, paths)
    assert scorer.passes == 2 and evaluated == 200 + 7 * (3 + 1)  # the shared beginning once; each tail and its deeper branch
    again, evaluated = scorer.score(prompts, paths)  # the shared beginning is still held
    assert scorer.passes == 3 and evaluated == 7 * 4 and all(np.allclose(a, b) for a, b in zip(scores, again))


def test_the_cache_keeps_the_chunks_scored_before_a_failure(tmp_path):
    from llmsynthor import BackendError

    targets = load_targets(parse_spec(SPEC))
    requests = requests_for(targets, "relationship", "marital") + requests_for(targets, "relationship", "sex")

    class FailsOnTheSecondChunk(Counting):
        def option_probabilities_batch(self, requests):
            if self.batches:
                raise BackendError("gone")
            return super().option_probabilities_batch(requests)

    inner = FailsOnTheSecondChunk()
    cached = CachedLLM(inner, tmp_path / "r.sqlite")
    cached.chunk = 3
    with pytest.raises(BackendError):
        cached.option_probabilities_batch(requests)
    again = CachedLLM(Counting(), tmp_path / "r.sqlite")
    assert [c.cached for c in again.option_probabilities_batch(requests)] == [True] * 3 + [False] * 5


def test_n_ubatch_above_n_batch_is_refused():
    from llmsynthor import SpecError

    with pytest.raises(SpecError, match="n_ubatch"):
        parse_spec({**SPEC, "llm": {"n_batch": 128, "n_ubatch": 512}})


def test_usage_counts_the_prompt_tokens_evaluated_apart_from_those_sent():
    from llmsynthor.llm.base import Completion
    from llmsynthor.prior.requesting import LLMUsage

    usage = LLMUsage()
    usage.add(Completion("{}", prompt_tokens=300, completion_tokens=5, seconds=1.0, evaluated_tokens=40))  # prefix reused
    usage.add(Completion("{}", prompt_tokens=300, completion_tokens=5, seconds=0.0, cached=True))  # from the cache
    usage.add(Completion("{}", prompt_tokens=120, completion_tokens=5, seconds=1.0))  # a server: as sent
    usage.add_scoring(Choice((0.5, 0.5), 25, 0.1))
    assert usage.prompt_tokens == 745 and usage.evaluated_tokens == 40 + 120 + 25
    assert LLMUsage.from_dict(usage.as_dict()).evaluated_tokens == 185
    assert LLMUsage.from_dict({k: v for k, v in usage.as_dict().items() if k != "prompt_tokens_evaluated"}).evaluated_tokens == 0
