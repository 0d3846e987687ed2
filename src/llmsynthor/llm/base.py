"""The one protocol the synthesis loop knows an LLM by.

A backend turns chat messages plus a JSON schema into a JSON text, and says what it cost.
Backends constrain decoding to the schema where they can (grammar, ``response_format``); the
loop validates every answer anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Completion:
    """One answer of a backend and its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached: bool = False
    evaluated_tokens: int | None = None  # prompt tokens the model had to evaluate (the rest reused); None: unknown


@dataclass(frozen=True)
class Choice:
    """How likely a backend finds each option as the continuation of an answer."""

    probabilities: tuple[float, ...]  # renormalized over the options
    prompt_tokens: int  # tokens evaluated for it (embedded: its share of a batch) or sent (servers)
    seconds: float
    cached: bool = False


def identity(backend) -> dict:
    """What, besides the request, decides a backend's answers (model sha256, or endpoint and
    model; never a key): part of response-cache keys and of checkpoint digests."""
    return getattr(backend, "cache_identity", None) or {"name": backend.name}


@runtime_checkable
class LLMBackend(Protocol):
    """What the synthesis loop needs from an LLM."""

    @property
    def name(self) -> str:
        """Backend and model, e.g. ``embedded:qwen2.5-coder-1.5b``; goes into the manifest."""
        ...

    def complete_json(
        self,
        messages: list[dict[str, str]],
        schema: dict,
        *,
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> Completion:
        """Answer ``messages`` with a JSON document that should follow ``schema``."""
        ...


def can_score_options(backend) -> bool:
    """Whether ``backend`` (or the backend a cache wraps) implements :class:`ChoiceScorer`."""
    return callable(getattr(getattr(backend, "inner", backend), "option_probabilities", None))


def continues_answers(backend) -> bool:
    """Whether ``backend`` (or the backend a cache wraps) scores options as the continuation of an
    answer begun for it (the embedded backend); servers read the first answer token's probabilities
    only (``continues_answers = False``), so options are asked for by letter."""
    return bool(getattr(getattr(backend, "inner", backend), "continues_answers", True))


@runtime_checkable
class ChoiceScorer(Protocol):
    """Optional: backends that expose next-token probabilities (the pairwise prior needs it)."""

    def option_probabilities(self, messages: list[dict[str, str]], answer_prefix: str, options: list[str]) -> Choice:
        """Probability of each of ``options`` as the text that follows ``answer_prefix`` at the start
        of the assistant's answer, as a sampler restricted to the options would pick them."""
        ...


def score_options(scorer, requests: list[tuple[list[dict[str, str]], str, list[str]]]) -> list[Choice]:
    """:meth:`ChoiceScorer.option_probabilities` for each ``(messages, answer_prefix, options)``, in one
    call where the scorer takes many at once (``option_probabilities_batch``: the embedded backend
    evaluates what their prompts share once), else one by one."""
    batch = getattr(scorer, "option_probabilities_batch", None)
    if callable(batch) and requests:
        return list(batch(requests))
    return [scorer.option_probabilities(*request) for request in requests]
