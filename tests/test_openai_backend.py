"""The OpenAI-compatible backend against a scripted HTTP server of the tests' own: malformed and
out-of-schema answers, HTTP faults, refused structured output, and secrets kept out of files."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest
from fakes import FakeLLM, ScriptedServer

from llmsynthor import BackendError, Synthesizer, load_spec
from llmsynthor.declarations.spec import with_overrides
from llmsynthor.llm.cache import CachedLLM
from llmsynthor.llm.openai_compat import OpenAICompatibleLLM
from llmsynthor.shapes.flat.manifest import manifest

DOMAINS = {"age": (18, 90), "price": (0, 2000)}


@pytest.fixture(scope="module")
def spec():
    from conftest import EXAMPLE

    # the loop's requests only (the prior's scoring requests are tested below, on their own)
    return with_overrides(load_spec(EXAMPLE / "spec.yaml"), {"n_records": 400, "synthesis.records": "both",
                                                             "synthesis.pairwise_prior": False})


def valid_answers():
    fake = FakeLLM(seed=3, domains=DOMAINS)

    def answer(body):
        schema = body["response_format"]["json_schema"]["schema"] if "response_format" in body else _schema_from_prompt(body)
        return fake.complete_json(body["messages"], schema, max_tokens=0, temperature=0, seed=0).text

    return answer


def _schema_from_prompt(body):
    text = body["messages"][-1]["content"]
    return json.loads(text[text.index("JSON schema:\n") + len("JSON schema:\n"):])


def backend(server, **kw):
    return OpenAICompatibleLLM(server.base_url, "test-model", sleep=lambda s: None, **kw)


def test_malformed_and_out_of_schema_answers_are_retried_counted_and_kept_out(spec):
    bad_items = {"proposals": [{"age": [500, 900], "price": [10, 20], "num": 3},      # age outside the domain
                               {"age": [30, 40], "price": "cheap", "num": 3}]}           # price not a range
    server = ScriptedServer(script=[
        (200, json.dumps({"groups": [["age", "price"]]})),  # dependency step
        (200, "I think the answer is {proposals"),          # plan 1: not JSON
        (200, json.dumps({"plan": []})),                    # no proposals list
        (200, json.dumps(bad_items)),                       # nothing valid
    ], fallback=valid_answers())
    try:
        result = Synthesizer(spec, backend(server)).run()
    finally:
        server.close()
    usage = result.usage
    assert usage.invalid_responses == 3 and usage.failed_steps == 0
    assert usage.rejected["response is not valid JSON"] == 1
    assert usage.rejected["response has no 'proposals' list"] == 1
    assert usage.rejected["age: range outside [18, 90]"] >= 1 and usage.rejected["price: not a [min, max] pair"] >= 1
    assert len(result.records) == 400 and result.records["age"].between(18, 90).all()
    assert usage.prompt_tokens == 11 * usage.calls and usage.completion_tokens == 7 * usage.calls
    # structured output was asked for on every request
    assert all(r["body"]["response_format"]["type"] == "json_schema" for r in server.requests)


def test_transient_http_faults_are_retried_with_backoff():
    delays = []
    server = ScriptedServer(script=[(503, "overloaded"), (429, "slow down"), (500, "oops"), (200, '{"n": 1}')])
    try:
        llm = OpenAICompatibleLLM(server.base_url, "m", sleep=delays.append, backoff=1.0)
        out = llm.complete_json([{"role": "user", "content": "hi"}], {"type": "object"}, max_tokens=5, temperature=0, seed=1)
    finally:
        server.close()
    assert out.text == '{"n": 1}' and llm.transport_retries == 3
    assert len(delays) == 3 and all(0 <= d <= 1.0 * 2**i for i, d in enumerate(delays))  # full jitter under the cap


def test_a_persistent_fault_stops_with_a_retryable_error():
    server = ScriptedServer(script=[(503, "down")] * 4)
    try:
        with pytest.raises(BackendError, match=r"HTTP 503: down, still after 4 attempts") as info:
            backend(server, retries=3).complete_json([{"role": "user", "content": "x"}], {}, max_tokens=5, temperature=0, seed=1)
    finally:
        server.close()
    assert info.value.retryable


def test_an_unreachable_server_is_a_retryable_error():
    llm = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", retries=1, sleep=lambda s: None, timeout=2)
    with pytest.raises(BackendError, match="could not be reached, still after 2 attempts") as info:
        llm.complete_json([{"role": "user", "content": "x"}], {}, max_tokens=5, temperature=0, seed=1)
    assert info.value.retryable


def test_auth_failure_fails_at_once_with_advice():
    server = ScriptedServer(script=[(401, "bad key")])
    try:
        with pytest.raises(BackendError, match="HTTP 401: bad key; check the API key") as info:
            backend(server).complete_json([{"role": "user", "content": "x"}], {}, max_tokens=5, temperature=0, seed=1)
    finally:
        server.close()
    assert not info.value.retryable and len(server.requests) == 1


def test_refused_structured_output_falls_back_to_prompt_and_validate():
    server = ScriptedServer(script=[(400, "response_format json_schema is not supported"),
                                    (500, "body.response_format.type: Input should be 'text' or 'json_object'"),
                                    (200, '{"n": 2}')])
    try:
        llm = backend(server)
        out = llm.complete_json([{"role": "user", "content": "give n"}], {"type": "object", "required": ["n"]},
                                max_tokens=5, temperature=0, seed=1)
    finally:
        server.close()
    assert out.text == '{"n": 2}' and llm.structured == "none" and llm.structured_fallbacks == 2
    first, second, third = (r["body"] for r in server.requests)
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"] == {"type": "json_object", "schema": {"type": "object", "required": ["n"]}}
    assert "response_format" not in third and "JSON schema" in third["messages"][-1]["content"]


def test_the_api_key_never_reaches_cache_or_manifest(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-4711")
    server = ScriptedServer(fallback=valid_answers())
    try:
        llm = CachedLLM(backend(server), tmp_path / "cache.sqlite")
        result = Synthesizer(spec, llm).run()
        data = manifest(spec, result, backend=llm, records_path=None)
    finally:
        server.close()
    assert server.requests[0]["auth"] == "Bearer sk-secret-4711"  # it was used …
    llm.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "cache.sqlite").iterdump())
    assert "sk-secret-4711" not in dump and "sk-secret-4711" not in json.dumps(data)  # … and stored nowhere
    assert data["cache"]["misses"] == result.usage.calls and data["model"]["backend"].startswith("openai:test-model@")


# -- the pairwise prior from logprobs ---------------------------------------------------------------
LETTER_SPEC = {
    "name": "people", "entity": "person", "n_records": 100,
    "variables": {"relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child"]},
                  "sex": {"type": "categorical", "values": ["Male", "Female"]}},
    "targets": [
        {"name": "relationship", "variables": ["relationship"], "cells": [
            {"relationship": "Husband", "count": 40}, {"relationship": "Wife", "count": 40}, {"relationship": "Own-child", "count": 20}]},
        {"name": "sex", "variables": ["sex"], "cells": [{"sex": "Male", "count": 50}, {"sex": "Female", "count": 50}]},
    ],
}


def letter_answers(body):
    """Male records answer A (Husband) or C, female ones B or C; tokens as servers spell them."""
    male = "sex = Male" in body["messages"][-1]["content"]
    top = [("A", -0.3), (" A", -2.0), ("C", -1.6), ("The", -3.0)] if male else [("B", -0.2), ("C", -1.8), ("**", -4.0)]
    return {"content": top[0][0], "top_logprobs": top}


def test_the_prior_is_read_from_the_servers_top_logprobs_options_asked_by_letter(tmp_path):
    from llmsynthor import load_targets
    from llmsynthor.declarations.spec import parse_spec
    from llmsynthor.prior.copula import by_letter, score_prior

    spec = parse_spec(LETTER_SPEC)
    server = ScriptedServer(fallback=letter_answers)
    try:
        llm = backend(server)
        assert by_letter(spec.synthesis, CachedLLM(llm, tmp_path / "r.sqlite"))  # auto: a server cannot continue an answer
        targets = load_targets(spec)
        prior = score_prior(targets, llm, targets.schema, letters=True)
    finally:
        server.close()
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["max_tokens"] == 1 and body["top_logprobs"] == 6
    assert "A) Husband; B) Wife; C) Own-child" in body["messages"][-1]["content"]
    male = np.exp([np.logaddexp(-0.3, -2.0), -3.0, -1.6])  # "A" and " A" add up; B is not listed: the least listed
    female = np.exp([-4.0, -0.2, -1.8])
    conditionals = np.array([male / male.sum(), female / female.sum()])  # P(relationship | sex)
    lift = conditionals / (np.array([0.5, 0.5]) @ conditionals)
    assert np.allclose(prior.lift("sex", "relationship"), lift, rtol=1e-6)


def test_a_server_without_logprobs_gets_a_clear_message_and_the_run_goes_on_without_the_prior():
    spec = parse_letter_spec()
    server = ScriptedServer(fallback=lambda body: "A" if "letter" in body["messages"][-1]["content"] else valid_answers()(body))
    try:
        with pytest.raises(BackendError, match="returned no token probabilities.*pairwise_prior: false"):
            backend(server).option_probabilities([{"role": "user", "content": "letter?"}], "", ["A", "B"])
        result = Synthesizer(spec, backend(server)).run()
    finally:
        server.close()
    assert any(note.startswith("pairwise prior skipped") and "logprobs" in note for note in result.notes)


def parse_letter_spec():
    from llmsynthor.declarations.spec import parse_spec

    return parse_spec(LETTER_SPEC)


def test_option_scorings_go_out_side_by_side_up_to_the_concurrency_and_come_back_in_order():
    import threading

    flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow_letters(body):
        with lock:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])
        time.sleep(0.05)
        with lock:
            flight["now"] -= 1
        return letter_answers(body)

    spec = parse_letter_spec()
    from llmsynthor import load_targets
    from llmsynthor.prior.copula import prior_levels
    from llmsynthor.prior.prompts import option_messages

    targets = load_targets(spec)
    levels = prior_levels(targets)
    requests = [option_messages(targets.schema, "sex", levels["sex"].axis, i, "relationship", levels["relationship"].axis,
                                letters=True) for i in (0, 1, 0, 1, 0, 1)]
    server = ScriptedServer(fallback=slow_letters)
    try:
        together = backend(server, concurrency=3).option_probabilities_batch(requests)
        alone = backend(server).option_probabilities_batch(requests)
    finally:
        server.close()
    assert 2 <= flight["most"] <= 3
    assert [c.probabilities for c in together] == [c.probabilities for c in alone]
    assert together[0].probabilities[0] > 0.5 and together[1].probabilities[1] > 0.5  # male → A (Husband), female → B


def test_a_failing_server_is_asked_once_not_once_per_scoring():
    spec = parse_letter_spec()
    from llmsynthor import load_targets
    from llmsynthor.prior.copula import prior_levels
    from llmsynthor.prior.prompts import option_messages

    targets = load_targets(spec)
    levels = prior_levels(targets)
    requests = [option_messages(targets.schema, "sex", levels["sex"].axis, i % 2, "relationship", levels["relationship"].axis,
                                letters=True) for i in range(8)]
    server = ScriptedServer(fallback=lambda body: "A")  # no logprobs
    try:
        with pytest.raises(BackendError, match="no token probabilities"):
            backend(server, concurrency=4).option_probabilities_batch(requests)
    finally:
        server.close()
    assert len(server.requests) == 1


def test_more_levels_than_letters_is_refused_before_any_question():
    from llmsynthor import load_targets
    from llmsynthor.declarations.spec import parse_spec
    from llmsynthor.prior.copula import score_prior

    many = [f"county {k}" for k in range(30)]
    spec = parse_spec({**LETTER_SPEC, "variables": {**LETTER_SPEC["variables"], "county": {"type": "categorical", "values": many}},
                       "targets": [*LETTER_SPEC["targets"], {"name": "county", "variables": ["county"],
                                                              "cells": [{"county": c, "count": 100 / 30} for c in many]}]})
    targets = load_targets(spec)
    server = ScriptedServer(fallback=letter_answers)
    try:
        with pytest.raises(BackendError, match="county: more than 26 levels"):
            score_prior(targets, backend(server), targets.schema, letters=True)
    finally:
        server.close()
    assert server.requests == []


def test_answers_that_name_no_option_are_counted_and_noted():
    spec = parse_letter_spec()
    server = ScriptedServer(fallback=lambda body: {"content": "The", "top_logprobs": [("The", -0.1), ("**", -2.5)]})
    try:
        result = Synthesizer(spec, backend(server)).run()
    finally:
        server.close()
    assert any(note.startswith("2 of the prior's questions got none of their options") for note in result.notes), result.notes
