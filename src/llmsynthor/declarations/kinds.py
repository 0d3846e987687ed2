"""What record shape a spec declares: ``kind:`` — or, where it is left out, what its sections say.

A spec is one of the record shapes llmsynthor synthesizes (the registry of what each shape's
commands do is :mod:`llmsynthor.cli.registry`):

* ``records`` — flat records of one entity (``variables`` and ``targets``): the default;
* ``households`` — households with their persons (``household`` and ``person`` sections).

``kind:`` may be written to say it; without it, a spec with a ``household`` or ``person`` section
is a household spec and any other a flat one. A ``kind`` that is no shape, or that contradicts the
sections, is bad input named before anything else is read.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..core.errors import Problem, SpecError

KINDS = ("records", "households")
_LEVEL_SECTIONS = ("household", "person")


def kind_of(data: Any, source: str, known: Collection[str] = KINDS) -> str:
    """The record shape of a loaded YAML mapping: its ``kind:``, checked against its sections, or the
    one its sections imply. ``known``: the kinds there are (the registry's; a shape registered beside
    the built-in ones is taken at its word, its own reader checks the rest)."""
    if not isinstance(data, dict):
        return "records"  # the flat spec's reader names what a spec must be
    sections = [s for s in _LEVEL_SECTIONS if s in data]
    implied = "households" if sections else "records"
    if "kind" not in data:
        return implied
    kind = data["kind"]
    if kind not in known:
        raise SpecError(Problem(f"{source}: field 'kind'", f"{kind!r} is no record shape; expected one of {', '.join(known)} "
                                "(or leave it out: a spec with 'household' and 'person' sections is a household spec)"))
    if kind in KINDS and kind != implied:
        found = f"it has {' and '.join(repr(s) for s in sections)} section(s)" if sections else "it has no 'household' or 'person' section"
        raise SpecError(Problem(f"{source}: field 'kind'", f"{kind!r}, but {found}; expected kind: {implied}, or the sections of "
                                f"a {kind} spec (llmsynthor spec-format{' --households' if kind == 'households' else ''})"))
    return kind
