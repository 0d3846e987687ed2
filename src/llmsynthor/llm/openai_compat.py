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

from ..errors import BackendError
from .base import Completion

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
        ``auto`` (try ``response_format``, fall back if refused), ``json_schema`` (always) or
        ``none`` (prompt-and-validate only).
    timeout, retries, backoff, max_backoff:
        Per-request timeout (s); transport retries; first and largest backoff (s).
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", style: str = "chat",
                 structured: str = "auto", timeout: float = 120.0, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 20.0, top_p: float = 0.95, sleep: Callable[[float], None] = time.sleep,
                 jitter: random.Random | None = None):
        try:
            import openai
        except ImportError:
            raise BackendError("the OpenAI-compatible backend needs the openai package: pip install openai") from None
        if style not in ("chat", "completion"):
            raise ValueError(f"style must be 'chat' or 'completion', got {style!r}")
        if structured not in ("auto", "json_schema", "none"):
            raise ValueError(f"structured must be 'auto', 'json_schema' or 'none', got {structured!r}")
        self._openai = openai
        self.base_url, self.model, self.style, self.top_p = base_url.rstrip("/"), model, style, top_p
        self.structured = structured if style == "chat" else "none"
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._sleep, self._jitter = sleep, jitter or random.Random(0)
        self._lock = threading.Lock()
        self.transport_retries = 0
        self.structured_fallbacks = 0
        key = os.environ.get(api_key_env) or "not-needed"  # local servers accept any key
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=timeout, max_retries=0)

    @property
    def name(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    @property
    def cache_identity(self) -> dict:
        """What, besides the request, decides the answer (never the key)."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model, "style": self.style,
                "structured": self.structured, "top_p": self.top_p}

    # -- requests ----------------------------------------------------------------------------
    def _with_schema_in_prompt(self, messages, schema):
        note = "\nAnswer with one JSON document that follows this JSON schema:\n" + json.dumps(schema, separators=(",", ":"))
        return [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + note}]

    def _request(self, messages, schema, *, max_tokens, temperature, seed):
        if self.style == "completion":
            prompt = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in self._with_schema_in_prompt(messages, schema))
            out = self._client.completions.create(model=self.model, prompt=prompt + "\n\nASSISTANT:", max_tokens=max_tokens,
                                                  temperature=temperature, top_p=self.top_p, seed=seed)
            return out.choices[0].text or "", out.usage
        kwargs = {}
        if self.structured != "none":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        else:
            messages = self._with_schema_in_prompt(messages, schema)
        out = self._client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_tokens,
                                                   temperature=temperature, top_p=self.top_p, seed=seed, **kwargs)
        return out.choices[0].message.content or "", out.usage

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed) -> Completion:
        openai = self._openai
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                text, usage = self._request(messages, schema, max_tokens=max_tokens, temperature=temperature, seed=seed)
                break
            except openai.BadRequestError as exc:
                if self.structured == "auto" and "response_format" in str(exc).lower() + str(getattr(exc, "body", "")).lower():
                    with self._lock:
                        self.structured = "none"
                        self.structured_fallbacks += 1
                    continue  # the server does not do structured output: prompt and validate instead
                raise BackendError(f"{self.name} rejected the request (HTTP 400): {_detail(exc)}") from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                reason = "timed out" if isinstance(exc, openai.APITimeoutError) else "could not be reached"
                attempt = self._backoff_or_raise(attempt, f"{self.name} {reason}")
            except openai.APIStatusError as exc:
                if exc.status_code in _RETRYABLE_STATUS:
                    attempt = self._backoff_or_raise(attempt, f"{self.name} answered HTTP {exc.status_code}: {_detail(exc)}")
                    continue
                advice = {401: "check the API key in the environment variable the spec names (llm.api_key_env)",
                          403: "the key may lack access to this model",
                          404: f"check llm.base_url ({self.base_url}) and llm.model ({self.model!r})"}.get(exc.status_code, "")
                raise BackendError(f"{self.name} answered HTTP {exc.status_code}: {_detail(exc)}" + (f"; {advice}" if advice else "")) from None
        return Completion(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=time.perf_counter() - started,
        )

    def _backoff_or_raise(self, attempt: int, what: str) -> int:
        if attempt >= self.retries:
            raise BackendError(f"{what}, still after {attempt + 1} attempts", retryable=True)
        with self._lock:
            self.transport_retries += 1
            delay = self._jitter.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))  # full jitter
        self._sleep(delay)
        return attempt + 1


def _detail(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body
    return str(body or exc)[:300]
