"""The embedded backend: a GGUF model run in-process by llama-cpp-python, on the CPU.

The model is loaded once per backend object; decoding is constrained by a grammar built from
the JSON schema (llama.cpp's ``response_format``). ``llama_cpp`` is imported here only, so
``import llmsynthor`` stays light.
"""

from __future__ import annotations

import os
import threading
import time

from ..errors import BackendError
from .base import Completion
from .models import ModelFile, resolve


class EmbeddedLLM:
    """A local GGUF model (default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M).

    Parameters
    ----------
    model:
        ``"qwen2.5-coder-1.5b"``, ``"gemma3-270m"`` or a path to a ``.gguf`` file.
    sha256:
        Expected checksum of a local file (the embedded models carry their own).
    n_ctx, n_threads, top_p, top_k:
        Passed to llama.cpp; ``n_threads`` defaults to the number of CPUs.
    """

    def __init__(self, model: str = "qwen2.5-coder-1.5b", *, sha256: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, top_p: float = 0.95, top_k: int = 40):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError("the embedded backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36") from None
        self.model_file: ModelFile = resolve(model, sha256)
        self.top_p, self.top_k = top_p, top_k
        self._lock = threading.Lock()
        started = time.perf_counter()
        try:
            self._llm = Llama(
                model_path=str(self.model_file.path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {self.model_file.path}: {exc}") from None
        self.load_seconds = time.perf_counter() - started

    @property
    def name(self) -> str:
        return f"embedded:{self.model_file.name}"

    @property
    def cache_identity(self) -> dict:
        """What, besides the request, decides the answer: the exact weights and sampling knobs."""
        return {"backend": "embedded", "sha256": self.model_file.sha256, "top_p": self.top_p, "top_k": self.top_k}

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed) -> Completion:
        started = time.perf_counter()
        try:
            with self._lock:  # one llama.cpp context serves one request at a time
                out = self._llm.create_chat_completion(
                    messages=messages,
                    response_format={"type": "json_object", "schema": schema},
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=self.top_p,
                    top_k=self.top_k,
                    seed=seed,
                )
        except ValueError as exc:  # e.g. the prompt does not fit the context
            raise BackendError(f"llama.cpp rejected the request: {exc}") from None
        usage = out.get("usage") or {}
        return Completion(
            text=out["choices"][0]["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - started,
        )
