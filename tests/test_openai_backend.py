"""The OpenAI-compatible backend against a scripted HTTP server of the tests' own: malformed and
out-of-schema answers, HTTP faults, refused structured output, and secrets kept out of files."""

from __future__ import annotations

import json
import sqlite3

import pytest
from fakes import FakeLLM, ScriptedServer

from llmsynthor import BackendError, Synthesizer, load_spec
from llmsynthor.llm.cache import CachedLLM
from llmsynthor.llm.openai_compat import OpenAICompatibleLLM
from llmsynthor.output import manifest
from llmsynthor.spec import with_overrides

DOMAINS = {"age": (18, 90), "price": (0, 2000)}


@pytest.fixture(scope="module")
def spec():
    from conftest import EXAMPLE

    return with_overrides(load_spec(EXAMPLE / "spec.yaml"), {"n_records": 400, "synthesis.records": "both"})  # the loop's requests


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
