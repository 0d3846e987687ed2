"""The schema: which variables a record has and what values each may take.

Kept apart from the targets and from the synthesizer (as SDV keeps metadata apart). A schema
describes one *entity* (a person, an order, a trip); every record of a run is one entity.
Nested entities (households -> persons) attach later as further ``Schema`` objects linked by a
parent key, and per-zone targets are joint tables over a categorical ``zone`` variable, so
neither needs a different variable model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def check_label(text: str, kind: str, empty: str, why: str) -> None:
    """A name or label must be non-empty (else ValueError(``empty``)) and carry no leading or trailing
    spaces (files are read stripped, so it could never match: ``why``)."""
    if not text.strip():
        raise ValueError(empty)
    if text != text.strip():
        raise ValueError(f"{kind} {text!r} has leading or trailing spaces; expected {text.strip()!r} ({why})")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoricalVariable(_Frozen):
    """A variable that takes one of a fixed list of labels."""

    type: Literal["categorical"] = "categorical"
    values: list[str] = Field(min_length=1, description="the labels, as the target files write them")
    description: str = Field(default="", description="what the variable means, for the prompts")

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalVariable:
        for v in self.values:
            check_label(v, "value", f"values must be non-empty labels, got {v!r}", "the target files' cells are read without them")
        seen = set()
        dupes = [v for v in self.values if v in seen or seen.add(v)]
        if dupes:
            raise ValueError(f"values must be distinct, got {dupes[0]!r} more than once")
        return self

    @property
    def is_numeric(self) -> bool:
        return False


class _NumericVariable(_Frozen):
    min: float = Field(allow_inf_nan=False, description="the smallest value")
    max: float = Field(allow_inf_nan=False, description="the largest value, included: a table's last bin is closed, e.g. [80,100]")
    description: str = Field(default="", description="what the variable means and its unit, for the prompts")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min < self.max:
            raise ValueError(f"min must be below max, got min={self.min} and max={self.max}")
        return self

    @property
    def is_numeric(self) -> bool:
        return True


class IntegerVariable(_NumericVariable):
    """A whole number in [min, max]."""

    type: Literal["integer"] = "integer"

    @property
    def top(self) -> float:
        """End of the domain as a half-open interval [min, top): max + 1 for whole numbers."""
        return self.max + 1

    @model_validator(mode="after")
    def _whole(self) -> IntegerVariable:
        if self.min != int(self.min) or self.max != int(self.max):
            raise ValueError(f"min and max of an integer variable must be whole numbers, got {self.min}, {self.max}")
        return self


class FloatVariable(_NumericVariable):
    """A real number in [min, max]."""

    type: Literal["float"] = "float"

    @property
    def top(self) -> float:
        """End of the domain; a bin ending here is closed, so max itself belongs to it."""
        return self.max


Variable = Annotated[CategoricalVariable | IntegerVariable | FloatVariable, Field(discriminator="type")]


class Schema(_Frozen):
    """The variables of one entity, in the order records list them."""

    entity: str = "record"
    population: str | None = None  # who or what the records describe, for the prompts
    variables: dict[str, Variable] = Field(min_length=1)

    @property
    def names(self) -> list[str]:
        return list(self.variables)

    def __getitem__(self, name: str):
        return self.variables[name]
