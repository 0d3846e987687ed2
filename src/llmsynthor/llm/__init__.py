"""LLM backends behind one small protocol (:class:`LLMBackend`)."""

from .base import Completion, LLMBackend

__all__ = ["Completion", "LLMBackend"]
