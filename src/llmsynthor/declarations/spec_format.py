"""The spec format's reference, generated from the spec's own models (`llmsynthor spec-format`):
every field with its type, default, limits and description, so the reference cannot drift from
what the loader accepts."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from ..core.schema import CategoricalVariable, FloatVariable, IntegerVariable
from .spec import LLMSettings, Spec, SynthesisSettings, TableSpec

_REFERENCE_INTRO = """\
llmsynthor spec format
======================

A spec is one YAML file: the variables of a record, the target tables the records must match,
and optional settings. Unknown keys are refused, and so is a key written twice. Every field is
listed below as  name: type = default (constraint)  followed by what it does.

Minimal spec:

  name: shop
  n_records: 1000
  variables:
    age:    {type: integer, min: 18, max: 90, description: age in years}
    gender: {type: categorical, values: [Male, Female], description: gender}
  targets:
    - {name: age, variables: [age], file: targets/age.csv}
    - {name: gender, variables: [gender], cells: [{gender: Male, share: 0.45}, {gender: Female, share: 0.55}]}
"""

_REFERENCE_TABLES = """\
Target tables (CSV files or inline 'cells')
-------------------------------------------
One column per variable of the table plus 'count' (or 'share', summing to 1){numeric}. Cells left out count as zero. Categorical cells are the variable's values.

Numeric variables appear as bins: [a,b) holds a <= x < b. The bins must tile the variable's
range without gaps or overlaps, and the last bin is closed and ends at max: for an integer
variable with max 100, write [80,100] (not [80,100)); for a float with max 2000, [1500,2000].

In a CSV, quote every bin: its comma would otherwise split it into two columns.

  age,gender,count
  "[18,35)",Male,310
  "[18,35)",Female,344
  "[35,90]",Male,590
  "[35,90]",Female,756
"""


def _type_name(annotation) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return "variable"
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin is Union or str(origin) == "<class 'types.UnionType'>":
        names = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" (optional)" if type(None) in args else "")
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation)).replace("Path", "path")


def _constraint(field) -> str:
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least"}
    found = []
    for meta in field.metadata:
        for attr, sign in bounds.items():
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return f" ({', '.join(found)})" if found else ""


def field_lines(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    """One line per field of ``model`` (name: type = default (limits)), its description under it."""
    lines = []
    for name, field in model.model_fields.items():
        if name in skip or field.exclude:
            continue
        if field.is_required():
            default = " (required)"
        elif isinstance(field.default, BaseModel):
            default = ""
        else:
            value = field.default_factory() if field.default_factory is not None else field.default
            default = f" = {value!r}" if value not in (None, "", [], {}) else ""
        lines.append(f"  {name}: {_type_name(field.annotation)}{default}{_constraint(field)}")
        if field.description:
            lines.append(f"      {field.description}")
    return lines


def spec_reference() -> str:
    """Every field of a spec, its type, default and meaning, generated from the models (``llmsynthor spec-format``)."""
    sections = [
        ("Top level", Spec, ()),
        ("variables.<name> with type: categorical", CategoricalVariable, ("type",)),
        ("variables.<name> with type: integer (whole numbers in [min, max])", IntegerVariable, ("type",)),
        ("variables.<name> with type: float (real numbers in [min, max])", FloatVariable, ("type",)),
        ("targets[] (each item)", TableSpec, ()),
        ("llm (all optional)", LLMSettings, ()),
        ("synthesis (all optional)", SynthesisSettings, ()),
    ]
    return render(_REFERENCE_INTRO, sections, tables_reference(),
                  "Households with their persons: `llmsynthor spec-format --households`.\n")


def render(intro: str, sections: list[tuple[str, type[BaseModel], tuple[str, ...]]], *tails: str) -> str:
    """A reference: the intro, one titled section per (title, model, fields left out), then the tails."""
    parts = [intro]
    for title, model, skip in sections:
        parts.append("\n".join([title, "-" * len(title), *field_lines(model, skip)]) + "\n")
    return "\n".join([*parts, *tails])



def tables_reference(numeric: bool = True) -> str:
    """How target files are written (``numeric``: with the sum_of/mean_of targets' 'value' column)."""
    return _REFERENCE_TABLES.format(numeric="; sum_of/mean_of\ntargets have 'value'" if numeric else "")
