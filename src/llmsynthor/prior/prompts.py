"""Prompt text for the LLM steps: dependency inference, proposal plans and option scoring.

Prompts are short on purpose: small CPU models read them at tens of tokens per second. The
system message (the schema) is identical across calls so llama.cpp reuses its cached prefix.
"""

from __future__ import annotations

import numpy as np

from ..core.schema import CategoricalVariable, Schema
from ..core.tables import Axis


def describe_variables(schema: Schema) -> str:
    lines = []
    for name, var in schema.variables.items():
        if isinstance(var, CategoricalVariable):
            domain = "one of " + ", ".join(var.values)
        else:
            domain = f"{var.type} from {var.min:g} to {var.max:g}"
        desc = f" ({var.description})" if var.description else ""
        lines.append(f"- {name}: {domain}{desc}")
    return "\n".join(lines)


def system_message(schema: Schema) -> str:
    return (
        f"You generate realistic synthetic {schema.entity} records for a statistics tool. "
        + (f"The records describe {schema.population}. " if schema.population else "")
        + f"Each {schema.entity} has these variables:\n{describe_variables(schema)}\n"
        "Answer with JSON only."
    )


def dependency_messages(schema: Schema, given: list[list[str]], max_groups: int) -> list[dict[str, str]]:
    known = "; ".join("(" + ", ".join(g) + ")" for g in given) or "none"
    user = (
        f"Which groups of variables are most likely statistically dependent on each other in real "
        f"{schema.entity} data? Joint tables already known: {known}. "
        f"Return up to {max_groups} other groups of 2 to 4 variables, most important first, as "
        '{"groups": [["a", "b"], ...]}.'
    )
    return [{"role": "system", "content": system_message(schema)}, {"role": "user", "content": user}]


def dependency_schema(schema: Schema, max_groups: int) -> dict:
    name = {"type": "string", "enum": schema.names}
    group = {"type": "array", "items": name, "minItems": 2, "maxItems": 4}
    return {
        "type": "object",
        "properties": {"groups": {"type": "array", "items": group, "minItems": 0, "maxItems": max(max_groups, 1)}},
        "required": ["groups"],
        "additionalProperties": False,
    }


def _format(schema: Schema, free: list[str]) -> str:
    """The shape of one proposal, without example values a weak model would copy."""
    parts = []
    for name in free:
        var = schema[name]
        parts.append(f'"{name}": "<{" | ".join(var.values)}>"' if isinstance(var, CategoricalVariable) else f'"{name}": [min, max]')
    return "{" + ", ".join(parts + ['"num": count']) + "}"


def plan_messages(schema: Schema, focus: list[tuple[str, float]], free: list[str], dependencies: list[list[str]],
                  facts: list[str] = ()) -> list[dict[str, str]]:
    """Ask for one proposal per focus cell, given as (its description, records missing): the model
    writes the ``free`` variables of each. ``facts`` (known averages from sum/mean targets) help it
    place numeric ranges."""
    deps = "; ".join("(" + ", ".join(g) + ")" for g in dependencies)
    wanted = "\n".join(f"{i + 1}. {text} (about {round(missing)} missing)" for i, (text, missing) in enumerate(focus))
    numeric = [v for v in free if schema[v].is_numeric]
    user = (
        f"The synthetic data set still lacks these kinds of {schema.entity}s:\n{wanted}\n\n"
        + (f"Known averages: {'; '.join(facts)}.\n\n" if facts else "")
        + 
        f"Write {len(focus)} proposals, proposal i for line i, giving {', '.join(free)} and num. "
        f"Choose them as a typical {schema.entity} of that line would have them"
        + (f" (keep dependent variables consistent: {deps})" if deps else "")
        + (f"; for {', '.join(numeric)} give a narrow realistic [min, max] range, inside the line's range where it has one" if numeric else "")
        + f". num is how many such records to add. Format: {{\"proposals\": [{_format(schema, free)}, ...]}}"
    )
    return [{"role": "system", "content": system_message(schema)}, {"role": "user", "content": user}]


def level_text(axis: Axis, i: int, schema: Schema) -> str:
    """A level as words: a categorical value, or a bin as 'from a to b' (integers: inclusive)."""
    if not axis.is_numeric:
        return axis.labels[i]
    lo, hi = axis.edges[i], axis.edges[i + 1]
    var = schema[axis.variable]
    last = i == axis.size - 1
    if var.type == "integer":
        hi = hi if last and hi == var.max else hi - 1
    return f"{lo:g} to {hi:g}"


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def option_messages(schema: Schema, context: str, context_axis: Axis, level: int, answer: str,
                    answer_axis: Axis, shares=None, letters: bool = False) -> tuple[list[dict[str, str]], str, list[str]]:
    """Ask which level of ``answer`` a record with ``context`` at ``level`` has; the options are
    scored from token probabilities, so the answer is only begun: ``{"answer": "``. With ``shares``
    (the answer's target shares) each option is listed with its share of all records, so the model
    answers relative to what is known. With ``letters`` the options are listed as A), B), … and the
    answer is one letter, not begun (for servers that give the first token's probabilities but
    cannot continue an answer begun for them); at most 26 options.

    The question and its options come first and the record's value last: the scorings of one pair
    (one per level of ``context``), and of pairs with the same ``answer``, then share all but the
    last few tokens of the prompt, which llama.cpp evaluates once and keeps."""
    options = [level_text(answer_axis, j, schema) for j in range(answer_axis.size)]
    if letters and len(options) > len(LETTERS):
        raise ValueError(f"{answer} has {len(options)} levels; answering by letter allows at most {len(LETTERS)}")
    shown = level_text(context_axis, level, schema)
    has = f"{context} from {shown}" if context_axis.is_numeric else f"{context} = {shown}"
    desc = schema[answer].description
    labels = [f"{LETTERS[j]}) {o}" if letters else o for j, o in enumerate(options)]
    if shares is None:
        listed = f"One of: {'; '.join(labels)}."
    else:
        listed = (f"One of: {'; '.join(f'{o} ({100 * p:.0f}% of all {schema.entity}s)' for o, p in zip(labels, shares))}. "
                  f"The shares are those of all {schema.entity}s; answer for this one.")
    how = "Answer with the letter only" if letters else "Answer as JSON"
    user = (f"{how}: what is the {answer}{f' ({desc})' if desc else ''} of this {schema.entity}? {listed}\n"
            f"The {schema.entity} has {has}.")
    messages = [{"role": "system", "content": system_message(schema)}, {"role": "user", "content": user}]
    if letters:
        return messages, "", list(LETTERS[:len(options)])
    return messages, f'{{"{answer}": "', options


def numeric_facts(targets, sizes: list, limit: int = 10) -> list[str]:
    """Sum and mean targets as averages in words ('mean price where category = Electronics is about 812')."""
    facts = []
    for target, size in zip(targets.numeric, sizes):
        for idx in zip(*np.nonzero(np.isfinite(target.values))) if target.axes else [()]:
            value = float(target.values[idx]) if target.axes else float(target.values)
            if target.statistic == "sum":
                n = float(size[idx]) if target.axes else float(size)
                if n <= 0:
                    continue
                value /= n
            where = " and ".join(f"{a.variable} = {a.labels[i]}" for a, i in zip(target.axes, idx))
            facts.append(f"mean {target.variable}{' where ' + where if where else ''} is about {value:.4g}")
    return facts[:limit]
