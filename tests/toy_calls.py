"""A toy third record shape — persons, each with a list of phone calls — made only of the shared core.

It follows docs/architecture.md ("Adding a record shape") step by step, to prove the contract; it is
used by tests/test_toy_shape.py and not shipped. Its candidates come from the tables alone (no model):

1. declare: :class:`CallsSpec` (``kind: calls``, person and call variables, tables, constraints);
2. targets: :func:`read_targets` — every table read by the one reader, as a table of its level;
3. candidates and incidence: :func:`candidates` (linked frames) and ``core.levels.incidence``;
4. constraints checked against the tables (``fitting.constraints``), balanced and integerized
   (``fitting.balance`` / ``fitting.integerize``);
5. evaluation and output: ``core.levels.level_counts``, ``outputs.files.write_linked``;
6. commands: the members of ``cli.registry.ShapeCommands``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from llmsynthor.core.errors import Problem, SpecError
from llmsynthor.core.levels import Level, LevelTable, Linked, chain, incidence, level_counts, repeat_candidates
from llmsynthor.core.metrics import tvd
from llmsynthor.core.rules import parse_rule
from llmsynthor.core.schema import CategoricalVariable, Schema
from llmsynthor.core.tables import name_cell
from llmsynthor.declarations.spec import SpecFile, TableSpec, read_yaml
from llmsynthor.declarations.targets import TableContext, read_table
from llmsynthor.fitting.balance import list_balance
from llmsynthor.fitting.constraints import contradiction_problems, contradictions
from llmsynthor.fitting.integerize import integerize
from llmsynthor.outputs.files import level_paths, write_json, write_linked

KIND = "calls"
PERSONS, CALLS = LEVELS = chain(Level("persons", id="person_id"), Level("calls", parent="persons", link="person", id="call_id"))
CANDIDATES = 400


class CallsSpec(SpecFile):
    """``kind: calls``: persons (``person`` variables), each with 0 to ``max_calls`` calls (``call`` variables)."""

    kind: Literal["calls"]
    name: str = "calls"
    seed: int = 0
    persons: int = Field(gt=0)
    max_calls: int = Field(3, ge=1)
    person: dict[str, CategoricalVariable]
    call: dict[str, CategoricalVariable]
    targets: list[TableSpec]
    constraints: list[str] = []

    @property
    def schema(self) -> Schema:
        return Schema(variables={**self.person, **self.call})

    def level_of(self, table: TableSpec) -> str:
        return CALLS.name if any(v in self.call for v in table.variables) else PERSONS.name


def load(path: Path) -> CallsSpec:
    return CallsSpec.validated(read_yaml(path), str(path), path.parent)


def read_targets(spec: CallsSpec) -> tuple[LevelTable, ...]:
    context = TableContext(spec.schema.variables, spec.source, spec.base_dir)
    tables = []
    for i, table in enumerate(spec.targets):
        axes, dense, kind, where = read_table(table, i, context)
        if kind != "count":
            raise SpecError(Problem(where, "give counts, not shares"))
        tables.append(LevelTable(table.label, spec.level_of(table), axes, dense, None, table.weight, where))
    return tuple(tables)


def candidates(spec: CallsSpec, rng: np.random.Generator, size: int = CANDIDATES) -> Linked:
    """Persons drawn uniformly over their values, each with 0 to ``max_calls`` uniform calls."""
    persons = pd.DataFrame({v: rng.choice(var.values, size) for v, var in spec.person.items()})
    calls_per_person = rng.integers(0, spec.max_calls + 1, size)
    owner = np.repeat(np.arange(size), calls_per_person)
    calls = pd.DataFrame({CALLS.link: owner, **{v: rng.choice(var.values, owner.size) for v, var in spec.call.items()}})
    return Linked(LEVELS, {PERSONS.name: persons, CALLS.name: calls})


def broken(spec: CallsSpec, linked: Linked) -> dict[str, np.ndarray]:
    """Constraint -> mask over the candidates breaking it (a call breaking it breaks its person)."""
    out = {}
    for i, text in enumerate(spec.constraints):
        rule = parse_rule(text, spec.schema, f"{spec.source}: constraints[{i}]")
        level = CALLS.name if any(v in spec.call for v in rule.variables) else PERSONS.name
        mask = np.zeros(len(linked), dtype=bool)
        mask[linked.owners(level)[np.asarray(rule.violations(linked.joined(level)), dtype=bool)]] = True
        out[text] = mask
    return out


def synthesize(spec: CallsSpec) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """The linked records (a frame per level) and each table's TVD."""
    tables = read_targets(spec)
    pool = candidates(spec, np.random.default_rng(spec.seed))
    matrix = incidence(tables, pool)
    wanted = np.concatenate([t.region.ravel() for t in tables])
    masks = broken(spec, pool)
    found = contradictions(matrix, wanted, masks)
    if found:
        raise SpecError(contradiction_problems(found, lambda j: name_cell(tables, j), spec.source, "person"))
    allowed = ~np.logical_or.reduce(list(masks.values())) if masks else np.ones(len(pool), dtype=bool)
    weights = list_balance(matrix, wanted, allowed * (spec.persons / allowed.sum())).weights
    counts = integerize(matrix, wanted, weights, spec.persons, units="persons").counts
    records = repeat_candidates(pool, np.repeat(np.arange(len(pool)), counts))
    return records, {t.name: tvd(level_counts(t, pool, counts).ravel(), t.region.ravel()) for t in tables}


# the commands (cli.registry.ShapeCommands)

def run(spec_path: Path, o) -> None:
    spec = load(spec_path)
    records, fit = synthesize(spec)
    folder = o.out_path or Path(spec.name)
    write_linked(records, level_paths(folder, LEVELS))
    write_json({"kind": KIND, **{level: len(frame) for level, frame in records.items()}, "tvd": fit}, folder / "manifest.json")


def check(spec_path: Path, debug: bool) -> None:
    read_targets(load(spec_path))


def _not_offered(*_args, **_kwargs):
    raise SpecError(Problem("kind: calls", "the toy shape offers run and check only"))


evaluate = report = suggesting = constraints_yaml = spec_format = _not_offered
