"""What the LLM is asked about households, and what its answers become: compositions.

A *composition* is one household as the model writes it: the household's values (numeric ones as
[low, high] ranges) and its members, each with every person variable (numeric ones as ranges). The
system fixes what it needs fixed (a request's *kind*: the number of members, and any values a
deficit calls for); the model decides who lives together — relationships, ages, who works, who
goes to school — which is where its knowledge matters and where the tables say nothing.

Decoding is constrained by a JSON schema with exactly ``size`` members; every answer is validated
anyway and every problem is counted by reason (``ParseReport``): a member count that is not the size,
no or several reference persons, values outside their domain (clamped where a range overlaps it).
The reference person is moved to the front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...core.rules import Clause, parse_condition
from ...core.schema import CategoricalVariable, IntegerVariable, Schema
from ...prior.prompts import LETTERS
from ...prior.proposals import ParseReport, parse_range
from .candidates import reference_marker
from .spec import HouseholdSpec

Value = str | tuple[float, float]  # a categorical label, or a numeric [low, high] range
WIDEST = 0.1  # a range wider than this share of its variable's domain is narrowed around its middle (counted)


@dataclass(frozen=True)
class Kind:
    """What a request fixes: the number of members, household values, and members that must be present
    (each a dict of person values, e.g. {"age": (16, 17), "employment": "employed"})."""

    size: int
    household: tuple[tuple[str, Value], ...] = ()
    members: tuple[tuple[tuple[str, Value], ...], ...] = ()

    def describe(self, spec: HouseholdSpec) -> str:
        parts = [f"exactly {self.size} {spec.person.entity}{'s' if self.size > 1 else ''}"]
        parts += [f"{name} = {_show(value)}" for name, value in self.household]
        text = f"A {spec.household.entity} with " + ", ".join(parts) + "."
        for member in self.members:
            text += (f" One of its {spec.person.entity}s has " + ", ".join(f"{n} = {_show(v)}" for n, v in member) + ".")
        return text


@dataclass(frozen=True)
class Composition:
    """One household as the model proposed it, validated: the reference person first."""

    household: dict[str, Value]
    members: tuple[dict[str, Value], ...]
    request: int = 0  # the request it answered (its place in the run)
    kind: Kind | None = field(default=None, compare=False)
    scores: dict[str, tuple[float, ...]] = field(default_factory=dict, compare=False)  # household variable -> P(value | members)


def _show(value: Value) -> str:
    if isinstance(value, tuple):
        lo, hi = value
        return f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}"
    return str(value)


def _field(var) -> dict:
    if isinstance(var, CategoricalVariable):
        return {"type": "string", "enum": list(var.values)}
    kind = "integer" if isinstance(var, IntegerVariable) else "number"
    return {"type": "array", "items": {"type": kind}, "minItems": 2, "maxItems": 2}


def _member(spec: HouseholdSpec, first: str, drop: str | None = None, exclude: str | None = None) -> dict:
    order = [first, *(n for n in spec.person.variables if n != first)]
    props = {}
    for n in order:
        if n == drop:
            continue
        field = _field(spec.person.variables[n])
        if n == first and exclude is not None:
            field = {**field, "enum": [v for v in field["enum"] if v != exclude]}
        props[n] = field
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def composition_schema(spec: HouseholdSpec, size: int, fixed: frozenset[str] = frozenset()) -> dict:
    """JSON schema of one answer: the members first, then the household values the system leaves free.

    With a reference marker (``relationship == householder``) the answer is ``{"reference": {its
    values but the marker}, "others": [exactly size − 1 members, the marker's value not allowed], …}``,
    so every answer has exactly one reference person; otherwise ``{"members": [exactly size], …}``.
    The variable of the reference condition comes first in each member, so the model decides who
    lives together before anything else, and names the household's type, cars or income in the light
    of its members. The size and the values the system fixes are left out."""
    marker = reference_marker(spec)
    first = parse_condition(spec.person.reference, spec.person_schema)[0].variable
    if marker is not None:
        props = {"reference": _member(spec, first, drop=marker[0])}
        if size > 1:
            props["others"] = {"type": "array", "items": _member(spec, first, exclude=marker[1]), "minItems": size - 1, "maxItems": size - 1}
    else:
        props = {"members": {"type": "array", "items": _member(spec, first), "minItems": size, "maxItems": size}}
    props.update({n: _field(v) for n, v in spec.household.variables.items() if n != spec.household.size and n not in fixed})
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _describe(schema: Schema, skip: set[str] = frozenset()) -> str:
    lines = []
    for name, var in schema.variables.items():
        if name in skip:
            continue
        domain = ("one of " + ", ".join(var.values)) if isinstance(var, CategoricalVariable) else \
            f"[low, high] range of whole numbers from {var.min:g} to {var.max:g}" if isinstance(var, IntegerVariable) \
            else f"[low, high] range from {var.min:g} to {var.max:g}"
        lines.append(f"- {name}: {domain}" + (f" ({var.description})" if var.description else ""))
    return "\n".join(lines)


def system_message(spec: HouseholdSpec) -> str:
    """Identical for every request of a run (llama.cpp reuses its evaluated prefix)."""
    h, p = spec.household, spec.person
    return (f"You write realistic {h.entity}s with their {p.entity}s for a statistics tool"
            + (f"; they are {spec.population}" if spec.population else "") + ".\n"
            f"A {h.entity} has:\n{_describe(spec.household_schema, {h.size, *spec.derived})}\n"
            f"Each {p.entity} has:\n{_describe(spec.person_schema)}\n"
            + (f"'reference' is the {p.entity} with {marker[0]} {marker[1]}; 'others' are the other {p.entity}s. "
               if (marker := reference_marker(spec)) else f"List the {p.entity} with {p.reference} first. ")
            + f"Give numbers as [low, high] ranges at most {int(100 * WIDEST)} % of their scale wide (an age: 10 years at "
            "most). Answer with JSON only.")


def composition_messages(spec: HouseholdSpec, kind: Kind) -> list[dict[str, str]]:
    fixed = {name for name, _ in kind.household}
    free = [n for n in spec.household.variables if n != spec.household.size and n not in fixed]
    ask = (f"Write one realistic {spec.household.entity}. {kind.describe(spec)} "
           f"List its {kind.size} {spec.person.entity}{'s' if kind.size > 1 else ''}"
           + (f", then its {', '.join(free)} as they fit those {spec.person.entity}s" if free else "") + ".")
    return [{"role": "system", "content": system_message(spec)}, {"role": "user", "content": ask}]


def max_tokens(spec: HouseholdSpec, size: int) -> int:
    """Enough for a household of ``size`` members written compactly."""
    per_member = 12 + 10 * len(spec.person.variables)
    return 40 + 10 * len(spec.household.variables) + per_member * size


def _value(raw, var, name: str, report: ParseReport) -> Value | None:
    if isinstance(var, CategoricalVariable):
        if raw not in var.values:
            report.rejected[f"{name}: {raw!r} is not a value"] += 1
            return None
        return raw
    got = parse_range(raw, var, name, report)
    if got is None:
        return None
    lo, hi = got
    widest = WIDEST * (var.max - var.min)
    if hi - lo > max(widest * 1.5, 2.0):  # a vague answer ([0, 99]): its middle, at the widest asked for
        middle = (lo + hi) / 2
        lo, hi = max(var.min, middle - widest / 2), min(var.max, middle + widest / 2)
        if isinstance(var, IntegerVariable):  # whole numbers inside; the one nearest the middle when none is
            lo, hi = float(np.ceil(lo)), float(np.floor(hi))
            if lo > hi:
                lo = hi = float(np.clip(np.floor(middle + 0.5), var.min, var.max))
        report.corrected[f"{name}: range too wide, narrowed to its middle"] += 1
    return lo, hi


def scored_variables(spec: HouseholdSpec, composition: Composition) -> list[str]:
    """The categorical household values the model wrote itself (not fixed by the request): read again
    from its token probabilities, given the members (:func:`value_question`)."""
    fixed = {name for name, _ in composition.kind.household} if composition.kind is not None else set()
    return [name for name, var in spec.household.variables.items()
            if isinstance(var, CategoricalVariable) and name != spec.household.size and name not in fixed]


def household_text(spec: HouseholdSpec, composition: Composition, leave_out: str | None = None,
                   hide: tuple[int, str] | None = None) -> str:
    """A composition in the words the option questions use: its member count and household values (the
    size and ``leave_out`` not shown), then one line per member; ``hide`` = (member, variable) is shown
    as ``?`` (the value asked about)."""
    h, p = spec.household, spec.person
    others = [f"{n} {_show(v)}" for n, v in composition.household.items() if n not in (leave_out, h.size)]
    members = "\n".join(f"- {p.entity} {i + 1}: " + ", ".join(f"{n} {'?' if hide == (i, n) else _show(m[n])}" for n in p.variables)
                        for i, m in enumerate(composition.members))
    count = len(composition.members)
    return (f"The {h.entity} has {count} {p.entity}{'s' if count > 1 else ''}"
            + (f" ({', '.join(others)})" if others else "") + f":\n{members}")


def option_request(spec: HouseholdSpec, question: str, answer: str, options: list[str], text: str,
                   letters: bool = False) -> tuple[list[dict[str, str]], str, list[str]]:
    """A question about a household whose options are scored from token probabilities: the question
    and its options first, ``text`` (the household) last, the answer begun as ``{"answer": "`` — or
    (``letters``, for servers that cannot continue an answer) the options as A), B), …"""
    h, p = spec.household, spec.person
    labels = [f"{LETTERS[j]}) {o}" if letters else o for j, o in enumerate(options)]
    user = f"{'Answer with the letter only' if letters else 'Answer as JSON'}: {question} One of: {'; '.join(labels)}.\n{text}"
    system = (f"You describe realistic {h.entity}s with their {p.entity}s for a statistics tool"
              + (f"; they are {spec.population}" if spec.population else "") + ". Answer with JSON only.")
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if letters:
        return messages, "", list(LETTERS[:len(labels)])
    return messages, f'{{"{answer}": "', list(options)


def value_question(spec: HouseholdSpec, composition: Composition, name: str,
                   letters: bool = False) -> tuple[list[dict[str, str]], str, list[str]]:
    """Ask which value of household variable ``name`` a composition has, its members listed: options
    scored from token probabilities, as :func:`llmsynthor.prior.prompts.option_messages` asks for records.
    The question and its options open the prompt and the household closes it, so the questions about
    one variable share all but their last lines (llama.cpp evaluates the shared part once)."""
    var = spec.household.variables[name]
    question = f"what is the {name}{f' ({var.description})' if var.description else ''} of this {spec.household.entity}?"
    return option_request(spec, question, name, list(var.values), household_text(spec, composition, leave_out=name), letters)


def _meets(clauses: tuple[Clause, ...], values: dict[str, Value]) -> bool:
    """Whether a member meets every clause (a numeric range meets a comparison when all of it does)."""
    for c in clauses:
        v = values[c.variable]
        points = list(v) if isinstance(v, tuple) else [v]
        if not bool(c.holds(pd.DataFrame({c.variable: points})).all()):
            return False
    return True


def _values(raw: dict, variables: dict, what: str, reason: str, report: ParseReport) -> tuple[dict[str, Value], str | None]:
    """Every one of ``variables`` read from ``raw`` (one household's or member's answer), or what was
    wrong with the first that is missing or invalid (counted in ``report`` as ``{reason}{name}: …``)."""
    values = {}
    for name, var in variables.items():
        if name not in raw:
            report.rejected[f"{reason}{name}: missing"] += 1
            return {}, f"{what} value {name!r} missing"
        value = _value(raw[name], var, name, report)
        if value is None:
            return {}, f"{what} value {name!r} invalid: {raw[name]!r}"
        values[name] = value
    return values, None


def parse_composition(text: str, spec: HouseholdSpec, kind: Kind, request: int = 0) -> tuple[Composition | None, str | None, ParseReport]:
    """Validate one answer: (composition, None, report), or (None, what was wrong, report)."""
    report = ParseReport()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        report.rejected["response is not valid JSON"] += 1
        return None, f"not JSON ({exc.msg})", report
    marker = reference_marker(spec)
    if marker is not None and isinstance(raw, dict) and isinstance(raw.get("reference"), dict):
        others = raw.get("others", [])
        if not isinstance(others, list):
            report.rejected["others is not a list"] += 1
            return None, "expected 'others' to be a list of members", report
        raw = {**raw, "members": [{**raw["reference"], marker[0]: marker[1]}, *others]}
    if not isinstance(raw, dict) or not isinstance(raw.get("members"), list):
        report.rejected["no members list"] += 1
        return None, "expected an object with the members", report
    household: dict[str, Value] = {spec.household.size: (float(kind.size), float(kind.size))}
    fixed = dict(kind.household)
    others = [name for name in spec.household.variables if name != spec.household.size]
    values, error = _values(raw, {name: spec.household.variables[name] for name in others if name not in fixed}, "household", "", report)
    if error:
        return None, error, report
    household.update({name: fixed[name] if name in fixed else values[name] for name in others})  # in the spec's order
    if len(raw["members"]) != kind.size:
        report.rejected["member count is not the size"] += 1
        return None, f"{len(raw['members'])} members listed for a household of {kind.size}", report
    members = []
    for m in raw["members"]:
        if not isinstance(m, dict):
            report.rejected["member is not an object"] += 1
            return None, "a member is not an object", report
        values, error = _values(m, spec.person.variables, "member", "member ", report)
        if error:
            return None, error, report
        members.append(values)
    reference = parse_condition(spec.person.reference, spec.person_schema)
    refs = [i for i, m in enumerate(members) if _meets(reference, m)]
    if len(refs) != 1:
        reason = "no reference person" if not refs else "more than one reference person"
        report.rejected[reason] += 1
        return None, f"{reason} ({spec.person.reference})", report
    members.insert(0, members.pop(refs[0]))
    report.accepted += 1
    return Composition(household, tuple(members), request, kind), None, report
