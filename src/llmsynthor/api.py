"""The short path: build the backend a spec asks for, and run a synthesis."""

from __future__ import annotations

from .llm.base import LLMBackend
from .spec import LLMSettings, Spec
from .synthesizer import ProgressCallback, SynthesisResult, Synthesizer


def make_backend(settings: LLMSettings) -> LLMBackend:
    """The backend named by ``settings`` (only ``embedded`` so far), loaded and ready."""
    from .llm.embedded import EmbeddedLLM

    return EmbeddedLLM(settings.model, sha256=settings.sha256, n_ctx=settings.n_ctx,
                       n_threads=settings.n_threads, top_p=settings.top_p, top_k=settings.top_k)


def synthesize(spec: Spec, llm: LLMBackend | None = None, *, progress: ProgressCallback | None = None) -> SynthesisResult:
    """Run ``spec`` end to end with ``llm`` (default: the backend the spec names)."""
    return Synthesizer(spec, llm if llm is not None else make_backend(spec.llm), progress=progress).run()
