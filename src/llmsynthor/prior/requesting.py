"""The LLM request layer: seeded requests with bounded retries, and what they cost.

Every request's decoding seed is fixed by the run seed and the request's place in the run (not by
timing or by how many calls came before), so concurrent, cached and resumed runs agree. An answer
that fails validation is asked again, up to ``llm.max_retries`` times; each attempt and what
validation said of it is charged to the run's :class:`LLMUsage` in request order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..declarations.spec import LLMSettings
from ..llm.base import Choice, Completion, LLMBackend
from .proposals import ParseReport


@dataclass
class LLMUsage:
    """Calls, tokens, time and validation outcomes of every LLM request in a run."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    invalid_responses: int = 0
    failed_steps: int = 0
    accepted_proposals: int = 0
    rejected: Counter = field(default_factory=Counter)
    corrected: Counter = field(default_factory=Counter)
    option_scorings: int = 0  # questions scored for the pairwise prior, one per context level (not in ``calls``)
    option_seconds: float = 0.0  # their model time (part of ``seconds``)
    skipped_plans: int = 0  # plan requests not sent: the focus fixed every variable, the model had nothing to decide
    evaluated_tokens: int = 0  # prompt tokens the model evaluated (reused prefixes and cache hits excluded; servers: as sent)

    def add(self, completion: Completion) -> None:
        self.calls += 1
        self.cache_hits += int(completion.cached)
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.seconds += completion.seconds
        if not completion.cached:
            known = completion.evaluated_tokens
            self.evaluated_tokens += completion.prompt_tokens if known is None else known

    def add_scoring(self, choice: Choice) -> None:
        """One option scoring of the pairwise prior (counted apart from calls and their cache hits)."""
        self.option_scorings += 1
        self.prompt_tokens += choice.prompt_tokens
        self.evaluated_tokens += choice.prompt_tokens
        self.seconds += choice.seconds
        self.option_seconds += choice.seconds

    def absorb(self, report: ParseReport) -> None:
        self.accepted_proposals += report.accepted
        self.rejected.update(report.rejected)
        self.corrected.update(report.corrected)

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "invalid_responses": self.invalid_responses,
            "failed_steps": self.failed_steps,
            "accepted_proposals": self.accepted_proposals,
            "rejected_proposals_by_reason": dict(self.rejected),
            "corrections_by_reason": dict(self.corrected),
            "option_scorings": self.option_scorings,
            "option_scoring_seconds": round(self.option_seconds, 3),
            "skipped_plan_calls": self.skipped_plans,
            "prompt_tokens_evaluated": self.evaluated_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LLMUsage:
        return cls(data["calls"], data["cache_hits"], data["prompt_tokens"], data["completion_tokens"], data["seconds"],
                   data["invalid_responses"], data["failed_steps"], data["accepted_proposals"],
                   Counter(data["rejected_proposals_by_reason"]), Counter(data["corrections_by_reason"]),
                   data.get("option_scorings", 0), data.get("option_scoring_seconds", 0.0), data.get("skipped_plan_calls", 0),
                   data.get("prompt_tokens_evaluated", 0))


@dataclass
class Answer:
    """One LLM step, its attempts and what validation said of each; merged into the usage in order."""

    value: object = None
    failure: tuple | None = None  # (attempts, last response text, last validation error)
    completions: list[Completion] = field(default_factory=list)
    reports: list[ParseReport] = field(default_factory=list)
    skipped: bool = False  # not sent: there was nothing for the model to decide

    def charge(self, usage: LLMUsage) -> None:
        usage.skipped_plans += self.skipped
        for completion in self.completions:
            usage.add(completion)
        for report in self.reports:
            usage.absorb(report)
        usage.invalid_responses += len(self.completions) - (self.failure is None)
        usage.failed_steps += self.failure is not None


Parse = Callable[[str], tuple[object, str | None, ParseReport | None]]  # text -> (value, error, report)


class Requester:
    """Seeded requests with bounded retries through any :class:`LLMBackend`; touches no shared state."""

    def __init__(self, llm: LLMBackend, settings: LLMSettings, seed: int):
        self.llm, self.settings, self.run_seed = llm, settings, seed

    def seed(self, iteration: int, request: int, attempt: int) -> int:
        """Decoding seed of one request, fixed by the run seed and the request's place in the run."""
        return int(np.random.SeedSequence([self.run_seed, iteration, request, attempt]).generate_state(1)[0] % (2**31 - 1))

    def ask(self, messages: list[dict], schema: dict, max_tokens: int, parse: Parse, iteration: int, request: int) -> Answer:
        """One LLM step: ask until ``parse`` accepts the text or the retries are spent."""
        answer = Answer()
        for attempt in range(self.settings.max_retries + 1):
            completion = self.llm.complete_json(messages, schema, max_tokens=max_tokens, temperature=self.settings.temperature,
                                                seed=self.seed(iteration, request, attempt))
            answer.completions.append(completion)
            value, error, report = parse(completion.text)
            if report is not None:
                answer.reports.append(report)
            if error is None:
                answer.value = value
                return answer
        answer.failure = (len(answer.completions), completion.text, error)
        return answer

    def map(self, request: Callable[[int, object], Answer], items: Sequence) -> list[Answer]:
        """``request(index, item)`` for every item, up to ``llm.concurrency`` in flight; answers in item order."""
        workers = min(self.settings.concurrency, len(items))
        if workers <= 1:
            return [request(i, item) for i, item in enumerate(items)]
        with ThreadPoolExecutor(max_workers=workers) as executor:
            return list(executor.map(request, range(len(items)), items))
