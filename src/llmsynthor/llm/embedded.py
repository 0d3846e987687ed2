"""The embedded backend: a GGUF model run in-process by llama-cpp-python, on the CPU.

The model is loaded once per backend object; decoding is constrained by a grammar built from
the JSON schema (llama.cpp's ``response_format``). ``llama_cpp`` is imported here only, so
``import llmsynthor`` stays light.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..core.errors import BackendError, Unsupported
from .base import Choice, Completion
from .llama_batch import PrefixBatchScorer, common_prefix
from .models import REFERENCE_PACE, ModelFile, resolve
from .threads import PaceWatch, choose_threads

_PATCHED = threading.Lock()


def avoid_amx_buffers() -> bool:
    """Keep llama.cpp off its AMX matrix kernels where the build has them; True if it had to.

    llama-cpp-python compiled on a CPU with AMX (Intel Sapphire Rapids and later) places weights in
    AMX buffers, and its AMX kernel crashes the process (SIGSEGV in ``ggml_backend_amx_mul_mat``)
    where the machine does not give it working AMX tile state — as on the 2-core machines this
    project is built on. Models are then loaded without llama.cpp's extra buffer types (AMX, weight
    repacking), by default for the whole process. Idempotent; nothing changes on other builds.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    if "AMX_INT8 = 1" not in llama_cpp.llama_print_system_info().decode("utf-8", "replace"):
        return False
    with _PATCHED:
        low = llama_module.llama_cpp  # the ctypes bindings the Llama class calls
        if not getattr(low.llama_model_default_params, "_llmsynthor_no_extra_bufts", False):
            original = low.llama_model_default_params

            def without_extra_buffers():
                params = original()
                params.use_extra_bufts = False
                return params

            without_extra_buffers._llmsynthor_no_extra_bufts = True
            low.llama_model_default_params = without_extra_buffers
    return True


class EmbeddedLLM:
    """A local GGUF model (default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M).

    Parameters
    ----------
    model:
        ``"qwen2.5-coder-1.5b"``, ``"gemma3-270m"`` or a path to a ``.gguf`` file.
    sha256:
        Expected checksum of a local file (the embedded models carry their own).
    n_ctx, top_p, top_k:
        Passed to llama.cpp.
    n_threads:
        CPU threads for generation and prompt evaluation; by default one per core that is free when
        the model loads (:func:`~llmsynthor.llm.threads.choose_threads`), so another CPU-bound process
        does not make llama.cpp's spinning threads wait for each other.
    on_slow:
        Called with a message when a step runs far slower than the model's reference pace
        (:class:`~llmsynthor.llm.threads.PaceWatch`); the count is in ``pace.slow_steps``.
    n_batch, n_ubatch:
        Tokens per llama.cpp evaluation call and per compute micro-batch (prompts and option scoring).
    """

    def __init__(self, model: str = "qwen2.5-coder-1.5b", *, sha256: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, n_batch: int = 512, n_ubatch: int = 512, top_p: float = 0.95,
                 top_k: int = 40, on_slow: Callable[[str], None] | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError("the embedded backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36") from None
        self.model_file: ModelFile = resolve(model, sha256)
        self.top_p, self.top_k = top_p, top_k
        self.n_batch, self.n_ubatch = n_batch, n_ubatch
        self._scorer = None  # the option-scoring context, made on first use
        self._lock = threading.Lock()
        self.threads = choose_threads(n_threads)
        self.pace = PaceWatch(reference=REFERENCE_PACE.get(self.model_file.sha256), threads=self.threads.count)
        self.on_slow = on_slow
        started = time.perf_counter()
        self.avoided_amx = avoid_amx_buffers()
        try:
            self._llm = Llama(
                model_path=str(self.model_file.path),
                n_ctx=n_ctx,
                n_threads=self.threads.count,
                n_threads_batch=self.threads.count,  # llama-cpp-python would take every core for prompts
                n_batch=n_batch,
                n_ubatch=n_ubatch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {self.model_file.path}: {exc}") from None
        self.load_seconds = time.perf_counter() - started
        self._format = None  # the model's own chat template, built on first use
        self._slow_said = -1e9

    def _prompt_tokens(self, messages, answer_prefix: str) -> list[int]:
        """``messages`` in the model's own chat template, the assistant's answer begun with ``answer_prefix``."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        if self._format is None:
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise Unsupported(f"{self.model_file.path} has no chat template; option scoring needs one")
            text = lambda token: llm._model.token_get_text(token) if token != -1 else ""  # noqa: E731
            self._format = Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))
        prompt = self._format(messages=messages).prompt + answer_prefix
        return llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def option_probabilities(self, messages, answer_prefix, options) -> Choice:
        """Probability of each option after ``answer_prefix``: at every point where the options' tokens
        branch, a softmax over the branches' next tokens; an option's probability is the product along
        its path, as constrained decoding would pick it."""
        return self.option_probabilities_batch([(messages, answer_prefix, options)])[0]

    def option_probabilities_batch(self, requests) -> list[Choice]:
        """:meth:`option_probabilities` for many ``(messages, answer_prefix, options)`` at once: what
        their prompts share is evaluated once, their differing ends together in few passes
        (:class:`~llmsynthor.llm.llama_batch.PrefixBatchScorer`). Each request's prompt tokens and
        seconds are its share of the batch's."""
        import numpy as np

        if not requests:
            return []
        started = time.perf_counter()
        llm = self._llm
        with self._lock:
            prompts = [self._prompt_tokens(m, prefix) for m, prefix, _ in requests]
            paths = [[llm.tokenize(o.encode("utf-8"), add_bos=False, special=False) for o in options]
                     for _, _, options in requests]
            if self._scorer is None:
                self._scorer = PrefixBatchScorer(llm, n_batch=self.n_batch, n_ubatch=self.n_ubatch)
            log_ps, evaluated = self._scorer.score(prompts, paths)
        self._watch(time.perf_counter() - started, evaluated, 0, f"scoring {len(requests)} option question(s)")
        seconds = (time.perf_counter() - started) / len(requests)
        out = []
        for k, log_p in enumerate(log_ps):
            p = np.exp(log_p - log_p.max())
            share = evaluated // len(requests) + (k < evaluated % len(requests))
            out.append(Choice(tuple(float(x) for x in p / p.sum()), share, seconds))
        return out

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
                held = self._llm.input_ids[: self._llm.n_tokens].tolist()  # llama.cpp keeps the longest common prefix
                out = self._llm.create_chat_completion(
                    messages=messages,
                    response_format={"type": "json_object", "schema": schema},
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=self.top_p,
                    top_k=self.top_k,
                    seed=seed,
                )
                usage = out.get("usage") or {}
                sent = int(usage.get("prompt_tokens", 0))
                reused = min(common_prefix(held, self._llm.input_ids[:sent].tolist()), max(sent - 1, 0))
        except ValueError as exc:  # e.g. the prompt does not fit the context
            raise BackendError(f"llama.cpp rejected the request: {exc}") from None
        completion = Completion(
            text=out["choices"][0]["message"]["content"] or "",
            prompt_tokens=sent,
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - started,
            evaluated_tokens=sent - reused,
        )
        self._watch(completion.seconds, completion.evaluated_tokens, completion.completion_tokens, "an answer")
        return completion

    def _watch(self, seconds: float, evaluated: int, generated: int, what: str) -> None:
        """Tell ``on_slow`` when a step ran far slower than the model's pace (once a minute at most)."""
        ratio = self.pace.observe(seconds, evaluated, generated)
        if ratio is None or self.on_slow is None or time.monotonic() - self._slow_said < 60:
            return
        self._slow_said = time.monotonic()
        hint = ("another process may be competing for the cores: try --threads 1" if self.threads.count > 1
                else "another process may be competing for the core")
        self.on_slow(f"{what} took {seconds:.0f} s, {ratio:.0f}× longer than {self.model_file.name}'s pace on "
                     f"{self.threads.count} thread(s) ({evaluated} prompt tokens, {generated} generated); {hint}")
