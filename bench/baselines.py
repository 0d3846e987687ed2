"""The methods llmsynthor is compared with, each producing records from the same inputs it would get.

* ``independent``     every variable drawn from its own marginal target (macro-only, no structure);
* ``ipf``             IPF (ipfn) on the full binned joint, uniform seed, all target tables as
                      constraints; cells sampled by weight (the macro-only classic);
* ``direct_prompting`` the same LLM and no loop: the marginal targets are written into the prompt as
                      percentages and the model writes whole records in batches (JSON schema);
* ``gaussian_copula`` SDV's GaussianCopulaSynthesizer fitted on a real micro-sample
                      (privileged: it sees micro-data the others never get).
Numeric values of cell-level methods are uniform inside the cell's bin.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from llmsynthor.core.schema import CategoricalVariable
from llmsynthor.prior.prompts import system_message


def values_in_cells(codes: dict[str, np.ndarray], targets, rng) -> pd.DataFrame:
    """Records from per-variable cell indices: categorical labels, numeric values uniform in bins."""
    axes = {a.variable: a for t in targets for a in t.axes}
    columns = {}
    for name in targets.schema.names:
        axis, idx = axes[name], codes[name]
        if axis.is_numeric:
            lo, hi = axis.edges[idx], axis.edges[idx + 1]
            if targets.schema[name].type == "integer":
                columns[name] = np.floor(lo + rng.random(idx.size) * (hi - lo)).astype(int)
            else:
                columns[name] = lo + rng.random(idx.size) * (hi - lo)
        else:
            columns[name] = np.asarray(axis.labels)[idx]
    return pd.DataFrame(columns)


def independent(targets, n, rng) -> pd.DataFrame:
    marginals = {t.variables[0]: t for t in targets if len(t.variables) == 1}
    codes = {v: rng.choice(t.counts.size, size=n, p=t.counts / t.counts.sum()) for v, t in marginals.items()}
    return values_in_cells(codes, targets, rng)


def ipf(targets, n, rng) -> pd.DataFrame:
    from ipfn import ipfn

    names = targets.schema.names
    axes = {a.variable: a for t in targets for a in t.axes if len(t.variables) == 1}
    shape = tuple(axes[v].size for v in names)
    fitted = ipfn.ipfn(np.ones(shape), [t.counts for t in targets],
                       [[names.index(v) for v in t.variables] for t in targets], convergence_rate=1e-8).iteration()
    flat = fitted.ravel() / fitted.sum()
    cells = np.unravel_index(rng.choice(flat.size, size=n, p=flat), shape)
    return values_in_cells(dict(zip(names, cells)), targets, rng)


def gaussian_copula(micro: pd.DataFrame, schema, n: int, seed: int) -> pd.DataFrame:
    """SDV's Gaussian copula fitted on ``micro`` (categorical columns declared from the schema)."""
    import warnings

    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    metadata = Metadata.load_from_dict({"tables": {"t": {"columns": {
        name: {"sdtype": "categorical"} if isinstance(schema[name], CategoricalVariable)
        else {"sdtype": "numerical"} for name in schema.names}}}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianCopulaSynthesizer(metadata, enforce_min_max_values=True)
        np.random.seed(seed)  # SDV samples with numpy's global generator
        model.fit({"t": micro[schema.names]})
        records = model.sample(num_rows=n)["t"]
    for name in schema.names:
        if schema[name].is_numeric and schema[name].type == "integer":
            records[name] = records[name].round().astype(int)
    return records


# -- direct prompting ---------------------------------------------------------------------------

def record_schema(schema, k: int) -> dict:
    """JSON schema of an answer with exactly ``k`` records."""
    props = {}
    for name in schema.names:
        var = schema[name]
        if isinstance(var, CategoricalVariable):
            props[name] = {"type": "string", "enum": list(var.values)}
        else:
            props[name] = {"type": "integer" if var.type == "integer" else "number", "minimum": var.min, "maximum": var.max}
    item = {"type": "object", "properties": props, "required": schema.names, "additionalProperties": False}
    return {"type": "object", "properties": {"records": {"type": "array", "items": item, "minItems": k, "maxItems": k}},
            "required": ["records"], "additionalProperties": False}


def direct_messages(targets, k: int) -> list[dict[str, str]]:
    """The marginal targets as percentages, and a request for ``k`` records."""
    lines = []
    for t in targets:
        if len(t.variables) == 1:
            shares = t.counts / t.counts.sum()
            lines.append(f"- {t.variables[0]}: " + ", ".join(f"{label} {s:.0%}" for label, s in zip(t.axes[0].labels, shares)))
    user = ("Known statistics of the population (share of records per value or bin):\n" + "\n".join(lines) +
            f"\nWrite {k} realistic, varied {targets.schema.entity} records that follow these statistics, as "
            '{"records": [{...}, ...]}.')
    return [{"role": "system", "content": system_message(targets.schema)}, {"role": "user", "content": user}]


def parse_records(text: str, schema) -> tuple[pd.DataFrame, int]:
    """The valid records of one answer (values outside the schema dropped) and how many were dropped."""
    try:
        rows = json.loads(text).get("records", [])
    except (ValueError, AttributeError):
        return pd.DataFrame(columns=schema.names), 0
    kept, dropped = [], 0
    for row in rows if isinstance(rows, list) else []:
        ok = isinstance(row, dict) and all(name in row for name in schema.names)
        if ok:
            for name in schema.names:
                var, value = schema[name], row[name]
                if isinstance(var, CategoricalVariable):
                    ok &= value in var.values
                else:
                    ok &= isinstance(value, int | float) and var.min <= value <= var.max
        if ok:
            kept.append({name: row[name] for name in schema.names})
        else:
            dropped += 1
    return pd.DataFrame(kept, columns=schema.names), dropped


def direct_prompting(targets, backend, *, calls: int, per_call: int, seed: int, temperature: float = 0.7,
                     tokens_per_record: int = 60):
    """Records written by the LLM itself, ``per_call`` at a time; returns (records, usage dict)."""
    frames, usage = [], {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0, "dropped": 0, "cached": 0}
    messages = direct_messages(targets, per_call)
    schema_json = record_schema(targets.schema, per_call)
    for i in range(calls):
        answer = backend.complete_json(messages, schema_json, max_tokens=tokens_per_record * per_call + 50, temperature=temperature, seed=seed + i)
        records, dropped = parse_records(answer.text, targets.schema)
        frames.append(records)
        usage["calls"] += 1
        usage["prompt_tokens"] += answer.prompt_tokens
        usage["completion_tokens"] += answer.completion_tokens
        usage["seconds"] += answer.seconds
        usage["dropped"] += dropped
        usage["cached"] += int(answer.cached)
    return pd.concat(frames, ignore_index=True), usage
