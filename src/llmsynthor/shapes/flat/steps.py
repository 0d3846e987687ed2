"""The LLM steps of a run: dependency inference, the pairwise prior, and plans of proposals.

Each step builds its prompt (:mod:`llmsynthor.prior.prompts`), asks through a
:class:`~llmsynthor.prior.requesting.Requester` (seeded, bounded retries), validates what comes back and
charges the run's usage. Nothing here decides counts: the pool and the allocator do.
"""

from __future__ import annotations

import json

import numpy as np

from ...core.errors import Unsupported
from ...core.tables import Targets
from ...declarations.spec import SynthesisSettings
from ...llm.base import can_score_options
from ...llm.none import without_model
from ...prior import prompts
from ...prior.copula import PHRASINGS, PairwisePrior, by_letter, score_prior
from ...prior.focus import Focus, plan_focus
from ...prior.proposals import ParseReport, Proposal, parse_plan, pin, plan_schema
from ...prior.requesting import Answer, LLMUsage, Requester
from .proposal_pool import ProposalPool


def infer_dependencies(requester: Requester, targets: Targets, given: list[list[str]], settings: SynthesisSettings,
                       usage: LLMUsage) -> list[list[str]]:
    """Groups of variables the model thinks depend on each other, beyond the ``given`` joint tables."""
    if not settings.infer_dependencies or settings.max_dependency_groups == 0:
        return []
    schema = targets.schema
    given_sets = [frozenset(g) for g in given]

    def parse(text):
        try:
            groups = json.loads(text).get("groups", [])
        except (json.JSONDecodeError, AttributeError):
            return None, "not a JSON object with 'groups'", None
        out, seen = [], set(given_sets)
        for g in groups if isinstance(groups, list) else []:
            if not isinstance(g, list):
                continue
            names = [v for v in dict.fromkeys(g) if v in schema.variables]
            key = frozenset(names)
            if len(names) >= 2 and key not in seen:
                seen.add(key)
                out.append(names)
        return out[: settings.max_dependency_groups], None, None

    messages = prompts.dependency_messages(schema, given, settings.max_dependency_groups)
    answer = requester.ask(messages, prompts.dependency_schema(schema, settings.max_dependency_groups), 120, parse, 0, 0)
    answer.charge(usage)
    return answer.value or []


def pairwise_prior(requester: Requester, targets: Targets, settings: SynthesisSettings, usage: LLMUsage,
                   notes: list[str]) -> PairwisePrior | None:
    """The pairwise prior (:mod:`llmsynthor.prior.copula`), if asked for and the backend can score options;
    otherwise None, with a note saying why."""
    if not settings.pairwise_prior or (settings.pin != "targets" and settings.records == "proposals"):
        return None
    llm = requester.llm
    if not can_score_options(llm):
        if without_model(llm):
            note = "run without a model (llm.backend: none, asked for): no pairwise prior, the tables are joined by independence"
        else:
            note = (f"{llm.name} gives no token probabilities: focus cells of different tables are combined "
                    "by deficit alone (no pairwise prior)")
        if note not in notes:  # a resumed run has it already
            notes.append(note)
        return None
    try:
        joint = settings.records != "proposals"
        phrasings = PHRASINGS if settings.prior_phrasing == "auto" else (settings.prior_phrasing,)
        unlisted = getattr(llm, "unlisted_answers", 0)
        prior = score_prior(targets, llm, targets.schema, on_call=usage.add_scoring, check=joint,
                            phrasings=phrasings if joint else ("plain",), both_directions=settings.prior_directions == "both",
                            letters=by_letter(settings, llm))
        if missed := getattr(llm, "unlisted_answers", 0) - unlisted:
            notes.append(f"{missed} of the prior's questions got none of their options among {llm.name}'s top logprobs "
                         "and were read as uniform (the model answered something else than a letter)")
        return prior
    except Unsupported as exc:  # the backend works but cannot do this; any other fault ends the run
        if not any(n.startswith("pairwise prior skipped") for n in notes):
            notes.append(f"pairwise prior skipped: {exc}")
        return None


def extend_pool(requester: Requester, pool: ProposalPool, residual: list[np.ndarray], iteration: int, rng: np.random.Generator,
                settings: SynthesisSettings, dependencies: list[list[str]], facts: list[str], usage: LLMUsage):
    """Ask for proposals that fill the largest residual deficits and add them to the pool.

    One focus cell per requested proposal (:func:`llmsynthor.prior.focus.plan_focus`); with
    ``parallel_requests`` > 1 several plans, each for its own focus cells, are in flight at once
    (up to ``llm.concurrency``); their answers are applied in request order.
    Returns (proposals added, failure of the first request or None).
    """
    targets = pool.targets
    shaped = [r.reshape(t.shape) for r, t in zip(residual, targets)]
    focus = plan_focus(targets, shaped, settings.proposals_per_call * settings.parallel_requests, rng, settings.pin, pool.prior)
    chunks = [focus[i:i + settings.proposals_per_call] for i in range(0, len(focus), settings.proposals_per_call)]
    if not chunks:
        return 0, None
    answers = requester.map(lambda index, chunk: _ask_plan(requester, targets, chunk, iteration, index, dependencies, facts), chunks)

    added, report = 0, ParseReport()  # what pinning and de-duplication changed
    for answer, chunk in zip(answers, chunks):
        answer.charge(usage)
        for index, proposal in answer.value or []:
            if index < len(chunk):
                proposal = pin(proposal, chunk[index], targets.schema, report)
            if pool.add(proposal):
                added += 1
            else:
                report.corrected["duplicate of an earlier proposal, skipped"] += 1
    usage.absorb(report)
    return added, answers[0].failure


def _ask_plan(requester: Requester, targets: Targets, chunk: list[Focus], iteration: int, index: int,
              dependencies: list[list[str]], facts: list[str]) -> Answer:
    """One plan request: a proposal per focus cell; categoricals every focus fixes are set by the
    system, not generated."""
    schema = targets.schema
    fixed_vars = frozenset.intersection(*(frozenset(f.values) for f in chunk))
    fixed = [dict(f.values) for f in chunk]
    free = [v for v in schema.names if v not in fixed_vars]
    if not free:  # every variable is categorical and fixed by the focus: the proposals are the focus cells themselves
        return Answer([(i, Proposal(dict(f.values), {}, max(1, int(round(f.missing))), iteration)) for i, f in enumerate(chunk)],
                      skipped=True)

    def parse(text):
        items, report, error = parse_plan(text, schema, iteration, fixed)
        return items, error, report

    lines = [(f.describe(schema), f.missing) for f in chunk]
    return requester.ask(prompts.plan_messages(schema, lines, free, dependencies, facts),
                         plan_schema(schema, len(chunk), omit=fixed_vars),
                         30 + len(chunk) * (12 + 12 * len(free)), parse, iteration, index)
