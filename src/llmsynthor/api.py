"""The short path: build the backend a spec asks for, and run a synthesis."""

from __future__ import annotations

from collections.abc import Callable

from .declarations.spec import LLMSettings, Spec
from .llm.base import LLMBackend
from .shapes.flat.synthesizer import ProgressCallback, SynthesisResult, Synthesizer


def make_backend(settings: LLMSettings, *, cache: bool | None = None,
                 on_slow: Callable[[str], None] | None = None) -> LLMBackend:
    """The backend named by ``settings``, ready to answer; behind the response cache unless
    ``cache`` (default: ``settings.cache``) is false. ``on_slow`` hears of a step of the embedded
    model that ran far slower than its pace (another process competing for the cores)."""
    if settings.backend == "none":  # a run without a model, asked for: nothing to answer, nothing to cache
        from .llm.none import NoModel

        return NoModel()
    if settings.backend == "openai":
        from .llm.openai_compat import OpenAICompatibleLLM

        backend = OpenAICompatibleLLM(settings.base_url, settings.model, api_key_env=settings.api_key_env, style=settings.style,
                                      structured=settings.structured, timeout=settings.timeout,
                                      retries=settings.transport_retries, top_p=settings.top_p,
                                      concurrency=settings.concurrency)
    else:
        from .llm.embedded import EmbeddedLLM
        from .llm.models import DEFAULT_MODEL

        backend = EmbeddedLLM(settings.model or DEFAULT_MODEL, sha256=settings.sha256, n_ctx=settings.n_ctx,
                              n_threads=settings.n_threads, n_batch=settings.n_batch, n_ubatch=settings.n_ubatch,
                              top_p=settings.top_p, top_k=settings.top_k, on_slow=on_slow)
    if settings.cache if cache is None else cache:
        from .llm.cache import CachedLLM, default_path

        backend = CachedLLM(backend, default_path())
    return backend


def synthesize(spec: Spec, llm: LLMBackend | None = None, *, progress: ProgressCallback | None = None) -> SynthesisResult:
    """Run ``spec`` end to end with ``llm`` (default: the backend the spec names)."""
    return Synthesizer(spec, llm if llm is not None else make_backend(spec.llm), progress=progress).run()
