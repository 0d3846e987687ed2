"""Proposals: what the LLM returns, how it is checked, and how records are drawn from it.

A proposal fixes one value per categorical variable and one [min, max] range per numeric
variable, plus a suggested count ``num``. The LLM's plan is decoded under a JSON schema; every
proposal is then validated and clamped to the variable domains here, with every correction or
rejection counted by reason. The count actually drawn is decided by the allocator, never by the
model (``num`` is kept as the model's hint).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.schema import CategoricalVariable, IntegerVariable, Schema
from ..core.tables import TargetTable
from ..core.within_bin import ValueShape, value_range
from .focus import Focus

_MAX_NUM_HINT = 10_000
_MIN_PINNED_WIDTH = 0.1  # a range cut to less than this share of its focus bin is replaced by the bin


@dataclass(frozen=True)
class Proposal:
    """A validated proposal: every variable fixed to a value or a range inside its domain."""

    values: dict[str, str]
    ranges: dict[str, tuple[float, float]]
    num: int
    iteration: int = 0
    # variables whose records spread beyond the proposal's own value or range (see
    # llmsynthor.prior.copula.Conditionals.spread): a categorical one maps to probabilities over its
    # values (schema order), a numeric one to ((lo, hi, probability), ...) sub-ranges, its own
    # range among them; the others take ``values[name]`` / ``ranges[name]``
    spread: dict[str, tuple] = field(default_factory=dict, compare=False)

    def parts(self, name: str) -> tuple[tuple[float, float, float], ...]:
        """The (lo, hi, probability) sub-ranges a numeric variable's records are drawn from."""
        return self.spread.get(name) or ((*self.ranges[name], 1.0),)

    def key(self) -> tuple:
        return (tuple(sorted(self.values.items())), tuple(sorted(self.ranges.items())))

    def as_dict(self) -> dict:
        return {**self.values, **{k: list(v) for k, v in self.ranges.items()}, "num": self.num}


@dataclass
class ParseReport:
    """What validation did to one LLM response."""

    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    corrected: Counter = field(default_factory=Counter)


def _uses_integers(var) -> bool:
    return isinstance(var, IntegerVariable) or (var.max - var.min) >= 50


def plan_schema(schema: Schema, max_proposals: int, omit: frozenset[str] = frozenset()) -> dict:
    """JSON schema of a plan: ``{"proposals": [ {var: value or [min, max], ..., "num": k} ]}``.

    Variables in ``omit`` (categoricals the system fixes itself) are left out of the output, so
    the model spends no tokens on them.
    """
    props: dict[str, dict] = {}
    for name, var in schema.variables.items():
        if name in omit:
            continue
        if isinstance(var, CategoricalVariable):
            props[name] = {"type": "string", "enum": list(var.values)}
        else:
            kind = "integer" if _uses_integers(var) else "number"
            props[name] = {"type": "array", "items": {"type": kind}, "minItems": 2, "maxItems": 2}
    props["num"] = {"type": "integer"}
    item = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    return {
        "type": "object",
        "properties": {"proposals": {"type": "array", "items": item, "minItems": 1, "maxItems": max_proposals}},
        "required": ["proposals"],
        "additionalProperties": False,
    }


def parse_range(raw, var, name: str, report: ParseReport) -> tuple[float, float] | None:
    """A numeric value or [min, max] pair checked against ``var``: swapped, clamped to the domain and
    to whole numbers where it must be (each correction counted in ``report``), or None when unusable."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = [raw, raw]
    if not (isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)):
        report.rejected[f"{name}: not a [min, max] pair"] += 1
        return None
    lo, hi = float(raw[0]), float(raw[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        report.rejected[f"{name}: not finite"] += 1
        return None
    if lo > hi:
        lo, hi = hi, lo
        report.corrected[f"{name}: min > max, swapped"] += 1
    if hi < var.min or lo > var.max:
        report.rejected[f"{name}: range outside [{var.min:g}, {var.max:g}]"] += 1
        return None
    if lo < var.min or hi > var.max:
        lo, hi = max(lo, var.min), min(hi, var.max)
        report.corrected[f"{name}: clamped to domain"] += 1
    if isinstance(var, IntegerVariable):
        lo, hi = float(np.ceil(lo)), float(np.floor(hi))
        if lo > hi:
            report.rejected[f"{name}: no whole number in range"] += 1
            return None
    return lo, hi


def validate_proposal(raw, schema: Schema, report: ParseReport, iteration: int = 0) -> Proposal | None:
    """Check one raw proposal against the schema; clamp ranges; ``None`` if unusable."""
    if not isinstance(raw, dict):
        report.rejected["proposal is not an object"] += 1
        return None
    values, ranges = {}, {}
    for name, var in schema.variables.items():
        if name not in raw:
            report.rejected[f"{name}: missing"] += 1
            return None
        if isinstance(var, CategoricalVariable):
            value = raw[name]
            if value not in var.values:
                report.rejected[f"{name}: value not allowed"] += 1
                return None
            values[name] = value
        else:
            rng = parse_range(raw[name], var, name, report)
            if rng is None:
                return None
            ranges[name] = rng
    num = raw.get("num", 1)
    num = int(num) if isinstance(num, (int, float)) and not isinstance(num, bool) and np.isfinite(num) else 1
    if not 1 <= num <= _MAX_NUM_HINT:
        report.corrected["num: outside [1, 10000], clipped"] += 1
        num = int(np.clip(num, 1, _MAX_NUM_HINT))
    report.accepted += 1
    return Proposal(values, ranges, num, iteration)


def _complete_items(text: str) -> dict | None:
    """The complete proposal objects at the start of an answer that was cut off mid-way
    (``{"proposals": [{…}, {…}, {"age": [3`` → the first two), or None."""
    start = text.find("[")
    if start < 0 or not text[:start].replace(" ", "").startswith('{"proposals":'):
        return None
    decoder, items, pos = json.JSONDecoder(), [], start + 1
    while True:
        while pos < len(text) and text[pos] in " \n\r\t,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        items.append(item)
    return {"proposals": items} if items else None


def parse_plan(text: str, schema: Schema, iteration: int = 0, fixed: list[dict[str, str]] | None = None
               ) -> tuple[list[tuple[int, Proposal]], ParseReport, str | None]:
    """Parse an LLM response into (position in the plan, proposal) pairs.

    ``fixed[i]`` holds values the system sets for item i itself (left out of the model's output).

    Returns (proposals, report, error); ``error`` is set when the response as a whole is unusable
    (not JSON, no valid proposal), which the caller may retry.
    """
    report = ParseReport()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        data = _complete_items(text)
        if data is None:
            report.rejected["response is not valid JSON"] += 1
            return [], report, f"response is not valid JSON ({exc.msg} at position {exc.pos})"
        report.corrected["answer cut off (token limit); its complete proposals kept"] += 1
    items = data.get("proposals") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        report.rejected["response has no 'proposals' list"] += 1
        return [], report, "response has no non-empty 'proposals' list"
    fixed = fixed or []
    merged = [({**raw, **fixed[i]} if isinstance(raw, dict) and i < len(fixed) else raw) for i, raw in enumerate(items)]
    checked = [(i, validate_proposal(raw, schema, report, iteration)) for i, raw in enumerate(merged)]
    out = [(i, p) for i, p in checked if p is not None]
    if not out:
        return [], report, "no proposal in the response passed validation: " + ", ".join(report.rejected)
    return out, report, None


def pin(proposal: Proposal, focus: Focus, schema: Schema, report: ParseReport) -> Proposal:
    """Make the proposal fall inside the focus it was asked for (a weak model may drift)."""
    values, ranges = dict(proposal.values), dict(proposal.ranges)
    for name, label in focus.values.items():
        if values[name] != label:
            values[name] = label
            report.corrected[f"{name}: moved into the requested cell"] += 1
    for name, (lo_b, hi_b) in focus.intervals.items():
        var = schema[name]
        if isinstance(var, IntegerVariable):
            hi_b -= 1  # integer intervals are [a, b): the largest member is b - 1
        elif hi_b < var.max:
            hi_b = float(np.nextafter(hi_b, -np.inf))
        lo, hi = ranges[name]
        new = (max(lo, lo_b), min(hi, hi_b))
        if new[0] > new[1] or new[1] - new[0] < _MIN_PINNED_WIDTH * (hi_b - lo_b):
            new = (lo_b, hi_b)  # no overlap, or a sliver (e.g. [921, 921]) that would clone one value
        if new != (lo, hi):
            ranges[name] = (float(new[0]), float(new[1]))
            report.corrected[f"{name}: moved into the requested cell"] += 1
    return Proposal(values, ranges, proposal.num, proposal.iteration)


def _bin_fractions(lo: float, hi: float, edges: np.ndarray, integer: bool, shape: ValueShape | None = None) -> np.ndarray:
    """Share of a proposal's draws on [lo, hi] (integers lo..hi if ``integer``) falling in each bin,
    values following ``shape`` inside the range (uniform without one)."""
    if not integer and hi == lo:
        idx = min(int(np.searchsorted(edges, lo, side="right")) - 1, len(edges) - 2)
        out = np.zeros(len(edges) - 1)
        out[idx] = 1.0
        return out
    start, stop = value_range(lo, hi, integer)
    left, right = np.maximum(edges[:-1], start), np.minimum(edges[1:], stop)
    if shape is not None:
        mass = np.where(right > left, shape.mass(left, np.maximum(left, right)), 0.0)
        if mass.sum() > 1e-12:
            return mass / mass.sum()
    return np.clip(right - left, 0, None) / (stop - start)


def profile(proposal: Proposal, table: TargetTable, schema: Schema, shapes: dict[str, ValueShape] | None = None) -> np.ndarray:
    """Expected share of a proposal's records in each cell of ``table`` (flattened)."""
    out = np.ones(1)
    for axis in table.axes:
        if axis.is_numeric:
            integer, shape = isinstance(schema[axis.variable], IntegerVariable), (shapes or {}).get(axis.variable)
            vec = sum(w * _bin_fractions(lo, hi, axis.edges, integer, shape) for lo, hi, w in proposal.parts(axis.variable))
        elif axis.variable in proposal.spread:
            vec = np.asarray(proposal.spread[axis.variable], dtype=float)
        else:
            vec = np.zeros(axis.size)
            vec[axis.labels.index(proposal.values[axis.variable])] = 1.0
        out = np.outer(out, vec).ravel()
    return out


def expected_value(proposal: Proposal, variable: str, schema: Schema, shapes: dict[str, ValueShape] | None = None) -> float:
    """The mean of ``variable`` over records drawn from ``proposal`` (as :func:`draw` draws them)."""
    shape = (shapes or {}).get(variable)
    return float(sum(w * _range_mean(lo, hi, schema[variable], shape) for lo, hi, w in proposal.parts(variable)))


def _range_mean(lo: float, hi: float, var, shape: ValueShape | None) -> float:
    if isinstance(var, IntegerVariable):
        ks = np.arange(lo, hi + 1)
        mass = shape.mass(ks, ks + 1) if shape is not None else np.ones(ks.size)
        return float(ks @ mass / mass.sum()) if mass.sum() > 1e-12 else float(ks.mean())
    if hi == lo:
        return float(lo)
    return shape.mean(lo, hi) if shape is not None else 0.5 * (lo + hi)


def _stratified(k: int, rng: np.random.Generator) -> np.ndarray:
    """One point per 1/k slice of [0, 1), shuffled."""
    return (rng.permutation(k) + rng.random(k)) / max(k, 1)


def _pick(probabilities, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn stratified over the cumulative ``probabilities`` (shares kept close to them)."""
    cut = np.cumsum(probabilities)
    return np.minimum(np.searchsorted(cut / cut[-1], _stratified(k, rng), side="right"), len(cut) - 1)


def _values(lo: float, hi: float, k: int, var, shape: ValueShape | None, rng: np.random.Generator) -> np.ndarray:
    integer = isinstance(var, IntegerVariable)
    start, stop = value_range(lo, hi, integer)
    u = _stratified(k, rng)
    x = shape.sample(start, stop, u) if shape is not None and stop > start else start + u * (stop - start)
    return np.minimum(np.floor(x), hi).astype(np.int64) if integer else np.minimum(x, hi)


def draw(proposal: Proposal, k: int, schema: Schema, rng: np.random.Generator,
         shapes: dict[str, ValueShape] | None = None) -> pd.DataFrame:
    """``k`` records from a proposal: fixed categories, stratified values inside ranges, spread by
    ``shapes`` (uniform without them; see :mod:`llmsynthor.core.within_bin`); a variable in
    ``proposal.spread`` first picks its value or sub-range by those probabilities.

    Stratified (one draw per 1/k slice of probability, shuffled) keeps the share in each bin close
    to its expectation, so the allocator's arithmetic holds for small k too.
    """
    columns = {}
    for name, var in schema.variables.items():
        if isinstance(var, CategoricalVariable):
            if name in proposal.spread:
                columns[name] = np.asarray(var.values, dtype=object)[_pick(proposal.spread[name], k, rng)]
            else:
                columns[name] = np.repeat(proposal.values[name], k)
            continue
        shape, parts = (shapes or {}).get(name), proposal.parts(name)
        if len(parts) == 1:
            columns[name] = _values(*parts[0][:2], k, var, shape, rng)
            continue
        which = _pick([w for *_, w in parts], k, rng)
        out = np.zeros(k, dtype=np.int64 if isinstance(var, IntegerVariable) else float)
        for c, (lo, hi, _) in enumerate(parts):
            rows = np.flatnonzero(which == c)
            if rows.size:
                out[rows] = _values(lo, hi, rows.size, var, shape, rng)
        columns[name] = out
    return pd.DataFrame(columns, columns=schema.names)
