"""One registry maps a spec to its record shape's commands: the only place the CLI tells shapes apart.

A record shape's commands are a module with :class:`ShapeCommands`' members (``flat``,
``households``); adding a shape is adding its module here (``docs`` of the one-core issue).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..declarations.kinds import kind_of
from ..declarations.spec import read_yaml
from . import flat, households, trips
from .options import RunOptions, Suggesting


class ShapeCommands(Protocol):
    """What the CLI asks of a record shape. Each raises SpecError for bad input (before any work),
    LLMSynthorError or OSError for failures; :func:`~llmsynthor.cli.common.guarded` reports them."""

    KIND: str

    def run(self, spec_path: Path, o: RunOptions) -> None: ...
    def check(self, spec_path: Path, debug: bool) -> None: ...
    def evaluate(self, records: Path, spec_path: Path, reference: Path | None, json_path: Path | None, strict: bool,
                 debug: bool) -> None: ...
    def report(self, records: Path, spec_path: Path, reference: Path | None, manifest_path: Path | None,
               html_path: Path | None, strict: bool, debug: bool) -> None: ...
    def suggesting(self, spec_path: Path, changes: dict) -> Suggesting: ...
    def constraints_yaml(self, found: dict, limit: int, model: str) -> str: ...
    def spec_format(self) -> str: ...


SHAPES: dict[str, ShapeCommands] = {flat.KIND: flat, households.KIND: households, trips.KIND: trips}  # type: ignore[dict-item]


def shape_of(spec_path: Path) -> ShapeCommands:
    """The commands of the record shape SPEC declares (``kind:``) or implies (its sections)."""
    return SHAPES[kind_of(read_yaml(spec_path), str(spec_path), tuple(SHAPES))]
