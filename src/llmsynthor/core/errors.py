"""Errors raised by llmsynthor.

The tree says who is at fault::

    LLMSynthorError
    ├── SpecError            the user's spec or target files are wrong (CLI exit status 2)
    ├── BackendError         the LLM backend failed: not reached, died, refused (CLI exit status 3)
    │   ├── Unsupported      it works, but cannot do what was asked (no token probabilities …)
    │   └── ModelFileError   a model file is missing or its checksum does not match (exit status 1)
    └── ProposalError        the LLM gave no valid output within the retry budget

Library code raises these; only the CLI turns them into exit codes and messages.
"""

from __future__ import annotations

from dataclasses import dataclass


def os_reason(exc: BaseException) -> str:
    """What an OS error says, without the errno noise: 'No space left on device'."""
    return getattr(exc, "strerror", None) or str(exc)


class LLMSynthorError(Exception):
    """Base class of every error llmsynthor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input: where, what is wrong, what was expected."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class SpecError(LLMSynthorError):
    """The spec or one of its target files is invalid. Carries every problem found."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class BackendError(LLMSynthorError):
    """The LLM backend could not answer. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False):
        self.retryable = retryable
        super().__init__(message)


class Unsupported(BackendError):
    """The backend works but cannot answer this kind of request (no token probabilities, an answer it
    cannot continue, more options than letters, a question longer than its context). A step that can
    go on without it says so in a note; any other :class:`BackendError` ends the run."""


class ModelFileError(BackendError):
    """A model file is missing, incomplete or does not match its expected sha256."""


class ProposalError(LLMSynthorError):
    """The LLM produced no valid plan of proposals within the retry budget."""

    def __init__(self, message: str, *, attempts: int, last_response: str | None):
        self.attempts = attempts
        self.last_response = last_response
        super().__init__(message)
