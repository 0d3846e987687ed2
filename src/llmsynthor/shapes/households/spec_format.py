"""The household spec format's reference, generated from its models (`llmsynthor spec-format --households`),
as :mod:`llmsynthor.declarations.spec_format` does for flat specs: it cannot drift from what the loader accepts."""

from __future__ import annotations

from ...core.schema import CategoricalVariable, FloatVariable, IntegerVariable
from ...declarations.spec import LLMSettings
from ...declarations.spec_format import render, tables_reference
from .spec import (
    UNREAD_TABLE_FIELDS,
    HouseholdConstraints,
    HouseholdLevel,
    HouseholdRules,
    HouseholdSpec,
    HouseholdSynthesis,
    HouseholdTable,
    PersonLevel,
)

_INTRO = """\
llmsynthor household spec format
================================

A household spec is one YAML file with a 'household' and a 'person' section: households (the
outer records) with their persons (the inner records), the tables both must match — per zone or
for the region, of households, of persons, or crossing the two — and optional settings. It is
read by the same commands as a flat spec (run, check, evaluate, report, suggest-constraints). Unknown keys are refused. Every field is
listed below as  name: type = default (constraint)  followed by what it does.

Minimal spec:

  name: town
  zones: zone                  # the zone column of the per-zone target files (omit: region only)
  household:
    size: size
    variables:
      size: {type: integer, min: 1, max: 8, description: number of persons living in the household}
      cars: {type: integer, min: 0, max: 4, description: cars available}
  person:
    reference: relationship == householder
    variables:
      age:          {type: integer, min: 0, max: 99, description: age in years}
      relationship: {type: categorical, values: [householder, spouse, child, other]}
  derived:                     # household counts of members, usable in tables and rules
    children: age < 18
  targets:
    - {name: size_by_zone, variables: [size], file: targets/size_by_zone.csv}   # has a 'zone' column
    - {name: size_children, variables: [size, children], file: targets/size_children.csv}
    - {name: age, variables: [age], file: targets/age.csv}                     # counts persons
    - {name: age_cars, variables: [age, cars], count: persons, file: targets/age_cars.csv}
  rules:                       # scored by evaluation only, never shown to the generator
    households: ['children >= 1 -> size >= 2']
    persons: ['relationship == spouse -> age >= 16']
  constraints:                 # enforced: no household written breaks one
    persons: ['relationship == child -> age < 70']

A table counts persons when it names a person variable (or says 'count: persons'), else
households; a file with the spec's zone column is a per-zone control, without it a region total.
Outputs: households.csv and persons.csv linked by household_id (with the zone), a manifest and an
HTML report, in the folder `run --out` names.
"""


def household_spec_reference() -> str:
    """Every field of a household spec, its type, default and meaning."""
    sections = [
        ("Top level", HouseholdSpec, ()),
        ("household", HouseholdLevel, ()),
        ("person", PersonLevel, ()),
        ("variables.<name> with type: categorical (either level)", CategoricalVariable, ("type",)),
        ("variables.<name> with type: integer (whole numbers in [min, max])", IntegerVariable, ("type",)),
        ("variables.<name> with type: float (real numbers in [min, max])", FloatVariable, ("type",)),
        ("targets[] (each item)", HouseholdTable, ("sum_of", "mean_of", *UNREAD_TABLE_FIELDS)),
        ("rules (scored only)", HouseholdRules, ()),
        ("constraints (enforced)", HouseholdConstraints, ()),
        ("llm (all optional)", LLMSettings, ()),
        ("synthesis (all optional)", HouseholdSynthesis, ()),
    ]
    return render(_INTRO, sections, tables_reference(numeric=False)
                  + "\nA per-zone file has one column more: the zone, under the name 'zones' gives.\n")
