"""Realism rules: structural zeros written as ``condition -> consequence``.

    age < 18 -> education in [Preschool, Elementary, High School]
    category == Electronics -> price >= 20
    relationship == Husband and age >= 18 -> sex == Male

Each side is one or more comparisons joined by ``and``: ``var op value`` with op one of
``< <= > >= == !=``, or ``var in [a, b, …]`` / ``var not in [a, b, …]``. A record violates a rule
when it meets the condition and not the consequence. A spec's ``rules`` *score* realism and are
never shown to the generator; its ``constraints``, in the same language, are enforced in generation
(:func:`allowed`).

A rule's violation rate is given two ways, each with its denominator: among the records that
meet the condition (the rule's own population: 30 % of Obstetrics patients were male) and among
all records (the overall share, which a rare condition makes look small).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import Problem, SpecError
from .schema import CategoricalVariable, Schema

NOT_SCORED = "not scored: no rules in the spec"  # realism without rules: said so, never a rate of 0


def realism_state(rules: int) -> str:
    """What a run's realism figures are: ``NOT_SCORED`` without rules, else how many rules scored them."""
    return f"scored: {rules} rule{'s' if rules != 1 else ''}" if rules else NOT_SCORED


_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
_COMPARISON = re.compile(r"^\s*(\w+)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_MEMBERSHIP = re.compile(r"^\s*(\w+)\s+(not\s+in|in)\s*\[(.*)\]\s*$")


@dataclass(frozen=True)
class Clause:
    variable: str
    op: str  # one of _OPS, "in" or "not in"
    value: object

    def holds(self, records: pd.DataFrame) -> np.ndarray:
        column = records[self.variable]
        if self.op in ("in", "not in"):
            inside = column.isin(self.value).to_numpy()
            return inside if self.op == "in" else ~inside
        return np.asarray(_OPS[self.op](column, self.value), dtype=bool)


@dataclass(frozen=True)
class Rule:
    text: str
    condition: tuple[Clause, ...]
    consequence: tuple[Clause, ...]

    @property
    def variables(self) -> list[str]:
        """The variables the rule names, in order, each once."""
        return list(dict.fromkeys(c.variable for c in (*self.condition, *self.consequence)))

    def meets(self, records: pd.DataFrame) -> np.ndarray:
        """Boolean mask of records that meet the condition (the rule's population)."""
        return np.logical_and.reduce([c.holds(records) for c in self.condition]).reshape(len(records))

    def violations(self, records: pd.DataFrame) -> np.ndarray:
        """Boolean mask of records that meet the condition but not the consequence."""
        follows = np.logical_and.reduce([c.holds(records) for c in self.consequence]).reshape(len(records))
        return self.meets(records) & ~follows

    def rates(self, records: pd.DataFrame) -> dict[str, float | int | None]:
        """Counts and rates: ``records``, ``condition`` (records meeting it), ``violations``,
        ``among_condition`` (violations / condition; None when no record meets it) and
        ``overall`` (violations / records)."""
        n = len(records)
        meets = int(self.meets(records).sum()) if n else 0
        broken = int(self.violations(records).sum()) if n else 0
        return {"records": n, "condition": meets, "violations": broken,
                "among_condition": broken / meets if meets else None, "overall": broken / n if n else 0.0}


def _clause(text: str, schema: Schema, where: str) -> Clause:
    m = _MEMBERSHIP.match(text)
    if m:
        name, op, items = m.group(1), " ".join(m.group(2).split()), [v.strip() for v in m.group(3).split(",") if v.strip()]
    else:
        m = _COMPARISON.match(text)
        if not m:
            raise SpecError(Problem(where, f"cannot read {text.strip()!r}; expected 'var op value' (op: < <= > >= == !=) or 'var in [a, b]'"))
        name, op, items = m.group(1), m.group(2), [m.group(3).strip()]
    if name not in schema.variables:
        raise SpecError(Problem(where, f"unknown variable {name!r}; expected one of: {', '.join(schema.names)}"))
    var = schema[name]
    if isinstance(var, CategoricalVariable):
        unknown = [v for v in items if v not in var.values]
        if unknown:
            raise SpecError(Problem(where, f"{unknown[0]!r} is not one of the values of {name!r} {var.values}"))
        if op not in ("==", "!=", "in", "not in"):
            raise SpecError(Problem(where, f"{name!r} is categorical; expected ==, !=, in or not in, got {op!r}"))
        values = items
    else:
        try:
            values = [float(v) for v in items]
        except ValueError:
            raise SpecError(Problem(where, f"{name!r} is numeric; expected a number in {text.strip()!r}")) from None
    return Clause(name, op, values if op in ("in", "not in") else values[0])


def allowed(records: pd.DataFrame, constraints: list[Rule]) -> np.ndarray:
    """Boolean mask of records that break none of ``constraints``."""
    ok = np.ones(len(records), dtype=bool)
    for rule in constraints:
        ok &= ~rule.violations(records)
    return ok


def parse_rule(text: str, schema: Schema, where: str = "rule") -> Rule:
    """Parse ``condition -> consequence`` against the schema; SpecError naming ``where`` if wrong."""
    if text.count("->") != 1:
        raise SpecError(Problem(where, f"{text!r} must have exactly one '->' between condition and consequence"))
    left, right = text.split("->")
    return Rule(text.strip(), parse_condition(left, schema, where), parse_condition(right, schema, where))


def parse_condition(text: str, schema: Schema, where: str = "condition") -> tuple[Clause, ...]:
    """Parse one side of a rule, comparisons joined by ``and`` (a derived count's condition)."""
    return tuple(_clause(c, schema, where) for c in re.split(r"\s+and\s+", text.strip()))


def holds(clauses: tuple[Clause, ...], records: pd.DataFrame) -> np.ndarray:
    """Boolean mask of records that meet every clause."""
    return np.logical_and.reduce([c.holds(records) for c in clauses]).reshape(len(records))


def parse_rules(spec, field: str = "rules") -> list[Rule]:
    """Every rule of ``spec.rules`` (or of ``spec.constraints`` with ``field="constraints"``) parsed
    against the spec's schema; one ``SpecError`` listing every broken one (``rules[i]`` of the
    spec's file) if any is wrong."""
    rules, problems = [], []
    for i, text in enumerate(getattr(spec, field)):
        try:
            rules.append(parse_rule(text, spec.record_schema, f"{spec.source}: {field}[{i}]"))
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise SpecError(problems)
    return rules
