"""The short path: build the backend a spec asks for, and run a synthesis."""

from __future__ import annotations

from .llm.base import LLMBackend
from .spec import LLMSettings, Spec
from .synthesizer import ProgressCallback, SynthesisResult, Synthesizer


def make_backend(settings: LLMSettings, *, cache: bool | None = None) -> LLMBackend:
    """The backend named by ``settings``, ready to answer; behind the response cache unless
    ``cache`` (default: ``settings.cache``) is false."""
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
                              top_p=settings.top_p, top_k=settings.top_k)
    if settings.cache if cache is None else cache:
        from .llm.cache import CachedLLM, default_path

        backend = CachedLLM(backend, default_path())
    return backend


def synthesize(spec: Spec, llm: LLMBackend | None = None, *, progress: ProgressCallback | None = None) -> SynthesisResult:
    """Run ``spec`` end to end with ``llm`` (default: the backend the spec names)."""
    return Synthesizer(spec, llm if llm is not None else make_backend(spec.llm), progress=progress).run()
