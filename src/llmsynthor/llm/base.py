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
