"""An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, llama.cpp server) as a backend.

Uses the official ``openai`` client with its own retries off, so that every fault is handled
here: timeouts, HTTP 429 and 5xx and dropped connections are retried with exponential backoff
and full jitter; anything else (401, 404, …) fails at once with advice. Structured output uses
``response_format`` with the JSON schema; when a server refuses it, the backend falls back to
prompt-and-validate (the schema written into the prompt) and the loop's validation and retries
do the rest. The API key is read from an environment variable and never stored anywhere.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from ..core.errors import BackendError, Unsupported
from ..core.urls import url_problem
from .base import Choice, Completion

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatibleLLM:
    """A model behind an OpenAI-compatible HTTP API.

    Parameters
    ----------
    base_url:
        e.g. ``https://api.openai.com/v1``, ``http://localhost:8000/v1`` (vLLM),
        ``http://localhost:11434/v1`` (Ollama), ``http://localhost:8080/v1`` (llama.cpp server).
    model:
        The model name the server knows.
    api_key_env:
        Name of the environment variable holding the key (local servers accept any value).
    style:
        ``chat`` (``/chat/completions``) or ``completion`` (``/completions`` with a plain prompt).
    structured:
        ``auto``: OpenAI's ``response_format={"type": "json_schema", ...}`` (OpenAI, vLLM, Ollama);
        if the server refuses it, the ``{"type": "json_object", "schema": ...}`` dialect of
        llama-cpp-python's server; if that is refused too, prompt-and-validate. ``json_schema``
        or ``json_object`` force one dialect, ``none`` prompt-and-validate.
    timeout, retries, backoff, max_backoff:
        Per-request timeout (s); transport retries; first and largest backoff (s).
    concurrency:
        Option scorings in flight at once (:meth:`option_probabilities_batch`); a server with
        several slots (vLLM, llama.cpp's ``llama-server --parallel N``) answers them side by side.
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", style: str = "chat",
                 structured: str = "auto", timeout: float = 120.0, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 20.0, top_p: float = 0.95, concurrency: int = 1,
                 sleep: Callable[[float], None] = time.sleep, jitter: random.Random | None = None):
        try:
            import openai
        except ImportError:
            raise BackendError("the OpenAI-compatible backend needs the openai package: pip install openai") from None
        if problem := url_problem(base_url):  # a malformed URL would be retried as "could not be reached"
            raise BackendError(f"base_url {base_url!r}: {problem}")
        if style not in ("chat", "completion"):
            raise ValueError(f"style must be 'chat' or 'completion', got {style!r}")
        if structured not in ("auto", "json_schema", "json_object", "none"):
            raise ValueError(f"structured must be 'auto', 'json_schema', 'json_object' or 'none', got {structured!r}")
        self._openai = openai
        self.base_url, self.model, self.style, self.top_p = base_url.rstrip("/"), model, style, top_p
        self.structured = structured if style == "chat" else "none"
        self._auto = self.structured == "auto"
        if self._auto:
            self.structured = "json_schema"  # first choice; see _refused_structured
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.concurrency = max(1, int(concurrency))
        self._sleep, self._jitter = sleep, jitter or random.Random(0)
        self._lock = threading.Lock()
        self.transport_retries = 0
        self.structured_fallbacks = 0
        self.unlisted_answers = 0  # option scorings whose options were all missing from the top logprobs (read as uniform)
        key = os.environ.get(api_key_env) or "not-needed"  # local servers accept any key
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=timeout, max_retries=0)

    @property
    def name(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    @property
    def cache_identity(self) -> dict:
        """What, besides the request, decides the answer (never the key)."""
        # the configured mode, not the dialect found at run time, so a rerun meets its cache
        return {"backend": "openai", "base_url": self.base_url, "model": self.model, "style": self.style,
                "structured": "auto" if self._auto else self.structured, "top_p": self.top_p}

    # -- requests ----------------------------------------------------------------------------
    def _with_schema_in_prompt(self, messages, schema):
        note = "\nAnswer with one JSON document that follows this JSON schema:\n" + json.dumps(schema, separators=(",", ":"))
        return [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + note}]

    def _request(self, messages, schema, *, max_tokens, temperature, seed):
        if self.style == "completion":
            prompt = _completion_prompt(self._with_schema_in_prompt(messages, schema))
            out = self._client.completions.create(model=self.model, prompt=prompt, max_tokens=max_tokens,
                                                  temperature=temperature, top_p=self.top_p, seed=seed)
            return out.choices[0].text or "", out.usage
        kwargs = {}
        if self.structured == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        elif self.structured == "json_object":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        else:
            messages = self._with_schema_in_prompt(messages, schema)
        out = self._client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_tokens,
                                                   temperature=temperature, top_p=self.top_p, seed=seed, **kwargs)
        return out.choices[0].message.content or "", out.usage

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed) -> Completion:
        started = time.perf_counter()
        text, usage = self._with_retries(lambda: self._request(messages, schema, max_tokens=max_tokens,
                                                               temperature=temperature, seed=seed))
        return Completion(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=time.perf_counter() - started,
        )

    # -- option scoring from logprobs ------------------------------------------------------------
    continues_answers = False  # an answer cannot be begun for the model: options are asked for by letter

    def option_probabilities(self, messages, answer_prefix, options) -> Choice:
        """The probability of each option as the answer's first token, from the server's
        ``top_logprobs`` (at most 20) over one generated token, renormalized over the options. Options
        must be single tokens such as letters, and ``answer_prefix`` empty (a chat endpoint cannot
        continue an answer begun for it). Variants of an option's token (" A", "A", "A)") are added up; an
        option absent from the top 20 is given the least probability listed (it has at most that).
        Through ``style: completion`` at most 5 are listed (OpenAI's limit)."""
        if answer_prefix:
            raise Unsupported(f"{self.name} cannot continue an answer begun for it; ask for options by letter")
        started = time.perf_counter()
        top, usage = self._with_retries(lambda: self._first_token_logprobs(messages, min(20, max(5, 2 * len(options)))))
        if not top:
            raise Unsupported(f"{self.name} returned no token probabilities (logprobs); the pairwise prior needs a server "
                               "that returns them (OpenAI, vLLM, llama.cpp's server), or set synthesis.pairwise_prior: false")
        wanted = {option.strip(): j for j, option in enumerate(options)}
        found = [[] for _ in options]
        for token, logprob in top:
            j = wanted.get(token.strip().rstrip(".):"))
            if j is not None:
                found[j].append(logprob)
        if not any(found):
            with self._lock:
                self.unlisted_answers += 1
        floor = min(logprob for _, logprob in top)
        log_p = np.array([np.logaddexp.reduce(values) if values else floor for values in found])
        p = np.exp(log_p - log_p.max())
        return Choice(tuple(float(x) for x in p / p.sum()), int(getattr(usage, "prompt_tokens", 0) or 0),
                      time.perf_counter() - started)

    def option_probabilities_batch(self, requests) -> list[Choice]:
        """:meth:`option_probabilities` for each request, up to ``concurrency`` in flight; in request order."""
        if self.concurrency == 1 or len(requests) < 2:
            return [self.option_probabilities(*request) for request in requests]
        from concurrent.futures import ThreadPoolExecutor

        first = self.option_probabilities(*requests[0])  # a server that fails (no logprobs, a bad key) fails once
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests) - 1))
        try:
            futures = [pool.submit(self.option_probabilities, *request) for request in requests[1:]]
            return [first] + [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on a failure, what has not started is not sent

    def _first_token_logprobs(self, messages, k: int):
        """[(token, logprob)] of the ``k`` likeliest first tokens of the answer, and the usage."""
        if self.style == "completion":
            out = self._client.completions.create(model=self.model, prompt=_completion_prompt(messages), max_tokens=1, temperature=0.0,
                                                  logprobs=min(k, 5), seed=0)  # OpenAI's /completions lists at most 5
            logprobs = out.choices[0].logprobs
            top = (getattr(logprobs, "top_logprobs", None) or [None])[0] if logprobs else None
            return list((top or {}).items()), out.usage
        out = self._client.chat.completions.create(model=self.model, messages=messages, max_tokens=1, temperature=0.0,
                                                   logprobs=True, top_logprobs=k, seed=0)
        content = getattr(out.choices[0].logprobs, "content", None) if out.choices[0].logprobs else None
        top = getattr(content[0], "top_logprobs", None) if content else None
        return [(t.token, float(t.logprob)) for t in top or []], out.usage

    def _with_retries(self, request):
        """``request()`` with transport retries, structured-output fallbacks and errors in one line."""
        openai = self._openai
        attempt = 0
        while True:
            try:
                return request()
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                reason = "timed out" if isinstance(exc, openai.APITimeoutError) else "could not be reached"
                attempt = self._backoff_or_raise(attempt, f"{self.name} {reason}")
            except openai.APIStatusError as exc:
                if self._refused_structured(exc):
                    continue  # try the next dialect (some servers answer 500 for an unknown response_format)
                if exc.status_code in _RETRYABLE_STATUS:
                    attempt = self._backoff_or_raise(attempt, f"{self.name} answered HTTP {exc.status_code}: {_detail(exc)}")
                    continue
                advice = {401: "check the API key in the environment variable the spec names (llm.api_key_env)",
                          403: "the key may lack access to this model",
                          404: f"check llm.base_url ({self.base_url}) and llm.model ({self.model!r})"}.get(exc.status_code, "")
                raise BackendError(f"{self.name} answered HTTP {exc.status_code}: {_detail(exc)}" + (f"; {advice}" if advice else "")) from None

    def _refused_structured(self, exc) -> bool:
        """On a refusal that names response_format, move to the next structured-output dialect."""
        if not self._auto or self.structured == "none" or "response_format" not in _detail(exc).lower():
            return False
        with self._lock:
            self.structured = {"json_schema": "json_object", "json_object": "none"}[self.structured]
            self.structured_fallbacks += 1
        return True

    def _backoff_or_raise(self, attempt: int, what: str) -> int:
        if attempt >= self.retries:
            raise BackendError(f"{what}, still after {attempt + 1} attempts", retryable=True)
        with self._lock:
            self.transport_retries += 1
            delay = self._jitter.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))  # full jitter
        self._sleep(delay)
        return attempt + 1


def _completion_prompt(messages) -> str:
    """Chat messages as one plain prompt for ``/completions`` (``style: completion``), ending where the answer begins."""
    return "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages) + "\n\nASSISTANT:"


def _detail(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    return str(body or exc)[:300]
