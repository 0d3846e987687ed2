"""The household spec (YAML): households with their persons, derived counts, zones, targets at both levels.

A household spec reads like a flat spec with two levels of variables, as a PopulationSim or SDV
multi-table user would expect::

    name: households
    household:                      # the outer entity
      entity: household
      size: size                    # the integer household variable that counts the members
      variables: {size: {type: integer, min: 1, max: 12}, cars: ..., income: ...}
    person:                         # the inner entity; each household lists size members
      entity: person
      reference: relationship == householder   # exactly one member meets this; listed first
      variables: {age: ..., sex: ..., relationship: ..., employment: ...}
    derived:                        # household integers counted from the members
      children: age < 18
      workers: employment == employed
    zones: zone                     # target files with this column are per-zone controls
    targets:
      - {name: size, variables: [size], file: targets/size.csv}        # counts households
      - {name: age_sex, variables: [age, sex], file: targets/age.csv}  # counts persons
      - {name: age_income, variables: [age, income]}                   # persons, with their household's income

A table counts persons when it names a person variable, households otherwise (``count:`` says it
explicitly, e.g. persons by household income). Rules are scored by evaluation only: person rules
see the person's variables and its household's; household rules see household and derived variables.

Knows the declarations only; reading the target files is :mod:`llmsynthor.shapes.households.controls`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ...core.errors import Problem, SpecError
from ...core.schema import IntegerVariable, Schema, Variable, check_label
from ...declarations.spec import MAX_SEED, FrozenModel, LLMSettings, SpecFile, TableSpec, read_yaml


class HouseholdLevel(FrozenModel):
    """The outer entity: its variables and the one that counts its members."""

    entity: str = Field(default="household", description="what one outer record is, for the prompts")
    size: str = Field(description="the integer household variable that is the number of members (persons listed)")
    variables: dict[str, Variable] = Field(min_length=1, description="name -> variable, as in a flat spec")


class PersonLevel(FrozenModel):
    """The inner entity: its variables and which member is the reference person."""

    entity: str = Field(default="person", description="what one member is, for the prompts")
    reference: str = Field(description="the condition exactly one member of every household meets, e.g. "
                           "'relationship == householder' (listed first)")
    variables: dict[str, Variable] = Field(min_length=1, description="name -> variable, as in a flat spec")


UNREAD_TABLE_FIELDS = ("tolerance_tvd", "tolerance_jsd", "tolerance")  # fields of a flat spec's tables that household specs refuse


class HouseholdTable(TableSpec):
    """A target table of a household spec: counts households or persons, for the region or per zone
    (a file with the spec's ``zones`` column)."""

    count: Literal["households", "persons"] | None = Field(
        default=None, description="what the table counts (default: persons when it names a person variable, else households)")


class HouseholdRules(FrozenModel):
    """Realism rules scored by evaluation only, never shown to the generator."""

    households: list[str] = Field(default_factory=list, description="over household and derived variables, "
                                  "e.g. 'household_type == married couple -> spouses == 1'")
    persons: list[str] = Field(default_factory=list, description="over a person's variables and its household's, "
                               "e.g. 'age < 5 -> school in [not attending, preschool]'")


class HouseholdConstraints(HouseholdRules):
    """Hard rules the generator enforces: no household written breaks one (same language as rules)."""


class HouseholdSynthesis(FrozenModel):
    """How compositions are gathered and zones balanced."""

    compositions: int = Field(default=48, ge=1, le=5000, description="households the LLM proposes for the whole region "
                              "(one call each; the response cache replays them)")
    variants: int = Field(default=30, ge=1, le=1000, description="concrete candidate households drawn from each "
                          "composition (ages within its ranges, household values the tables allow)")
    filler: float = Field(default=0.02, ge=0, le=1, description="prior weight, relative to the LLM's compositions, of "
                          "candidates that copy a composition's members with the household values (other than the size) "
                          "drawn from the household tables' margins (every household cell reachable with the model's "
                          "members; list balancing leans on them only where the compositions cannot meet a target)")
    filler_households: int = Field(default=4000, ge=0, le=1_000_000, description="how many such candidates to draw")
    independent: float = Field(default=0.005, ge=0, le=1, description="prior weight, relative to the LLM's compositions, "
                               "of candidates that know no joint (size, household values and every member's values from "
                               "the tables' margins, the reference person first): they keep every control reachable "
                               "whatever the model answered, and balancing uses them only where nothing else can meet a target")
    independent_households: int = Field(default=2000, ge=0, le=1_000_000, description="how many such candidates to draw")
    household_values: Literal["written", "scored"] = Field(
        default="written", description="categorical household values the model decides (type, income …): 'written' keeps "
        "the one the model wrote with its members; 'scored' reads each again from the model's token probabilities given "
        "the members listed (one option scoring per composition and variable; each candidate draws its value from them; "
        "a backend that cannot score options keeps the written ones). Measured on the SEMCOG example with Qwen 1.5B, "
        "scored values broke the household rules far more often (70 % of the compositions' households against 28 %), "
        "so they are not the default; try them with a stronger model")
    executor: Literal["local", "processes", "ray"] = Field(default="local", description="where zones are balanced: "
                                                            "in this process, in worker processes, or on Ray")
    workers: int = Field(default=1, ge=1, le=256, description="zones balanced at once (processes, ray)")
    ray_address: str | None = Field(default=None, description="ray: a cluster address (default: a local Ray started "
                                    "for the run)")
    tolerance_tvd: float = Field(default=0.01, gt=0, le=1, description="a table is met when its TVD is at most this")


class HouseholdSpec(SpecFile):
    """A complete household run."""

    kind: Literal["households"] = Field(default="households", description="the record shape: households (with their "
                                        "persons, this format); it may be left out where 'household' and 'person' are given")
    name: str = Field(default="households", description="the run's name: the default output folder of `run` "
                      "(households.csv, persons.csv, manifest.json, report.html in it) and the report's title")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="same spec + seed + model gives the same output")
    population: str | None = Field(default=None, description="who the households are, told to the model, e.g. "
                                   "'households of the Detroit region, Michigan, 2015'")
    household: HouseholdLevel = Field(description="the households' variables and the size variable")
    person: PersonLevel = Field(description="the persons' variables and the reference person")
    derived: dict[str, str] = Field(default_factory=dict, description="household integer name -> a condition on a "
                                    "person; the household's value is how many of its members meet it")
    zones: str | None = Field(default=None, description="the column of target files that names the zone; tables "
                              "without it are region totals")
    n_households: int | None = Field(default=None, gt=0, description="households to synthesize in all (default: "
                                     "the total of the household tables)")
    targets: list[HouseholdTable] = Field(min_length=1, description="tables of households or persons (see 'targets[]')")
    rules: HouseholdRules = Field(default=HouseholdRules(), description="realism rules, scored by evaluation only")
    constraints: HouseholdConstraints = Field(
        default=HouseholdConstraints(), description="hard rules, enforced: every candidate household that breaks one "
        "(a household constraint, or a member breaking a person constraint) is left out before balancing, so no "
        "household written breaks one; checked against the tables before any LLM call. Same language and levels as "
        "rules; not shown to the model")
    llm: LLMSettings = Field(default=LLMSettings(), description="which model proposes compositions")
    synthesis: HouseholdSynthesis = Field(default=HouseholdSynthesis(), description="compositions and zones")

    @field_validator("derived")
    @classmethod
    def _derived_names(cls, derived: dict) -> dict:
        for name in derived:
            check_label(name, "derived variable", f"a derived variable is named {name!r}; expected a non-empty name",
                        "the target files' columns are matched exactly")
        return derived

    @model_validator(mode="after")
    def _levels(self) -> HouseholdSpec:
        names = [*self.household.variables, *self.person.variables, *self.derived]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"the name {twice[0]!r} is used at two levels (household, person or derived); expected "
                             "each variable name once")
        if self.zones is not None and self.zones in names:
            raise ValueError(f"zones: {self.zones!r} is also a variable's name; expected the name of the target files' "
                             "zone column")
        size = self.household.variables.get(self.household.size)
        if size is None:
            raise ValueError(f"household.size: {self.household.size!r} is not a household variable; expected one of "
                             f"{list(self.household.variables)}")
        if not isinstance(size, IntegerVariable) or size.min < 1:
            raise ValueError(f"household.size: {self.household.size!r} must be an integer variable with min >= 1 "
                             "(the number of persons listed)")
        return self

    # the schemas each level's records follow
    @property
    def size_variable(self) -> IntegerVariable:
        return self.household.variables[self.household.size]

    @property
    def household_schema(self) -> Schema:
        """Household variables and the derived counts (integers from 0 to the largest size)."""
        top = int(self.size_variable.max)
        derived = {name: IntegerVariable(type="integer", min=0, max=top, description=f"members with {cond}")
                   for name, cond in self.derived.items()}
        return Schema(entity=self.household.entity, population=self.population,
                      variables={**self.household.variables, **derived})

    @property
    def person_schema(self) -> Schema:
        return Schema(entity=self.person.entity, population=self.population, variables=dict(self.person.variables))

    @property
    def joined_schema(self) -> Schema:
        """A person with its household's variables: what person tables and person rules see."""
        return Schema(entity=self.person.entity, population=self.population,
                      variables={**self.person.variables, **self.household_schema.variables})

    def level_of(self, table: HouseholdTable) -> Literal["households", "persons"]:
        if table.count is not None:
            return table.count
        return "persons" if any(v in self.person.variables for v in table.variables) else "households"

def parse_household_spec(data: Any, *, source: str = "<inline>", base_dir: Path = Path(".")) -> HouseholdSpec:
    """Validate an already-loaded mapping as a household spec; one SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(Problem(source, f"expected a YAML mapping with 'household', 'person' and 'targets', got "
                                        f"{type(data).__name__}"))
    return HouseholdSpec.validated(data, source, base_dir)


def load_household_spec(path: str | Path) -> HouseholdSpec:
    """Read and validate a household spec; relative target paths resolve against its folder."""
    path = Path(path)
    return parse_household_spec(read_yaml(path), source=str(path), base_dir=path.parent)
