"""The run specification (YAML): schema, target tables, size, seed, LLM and loop settings.

``load_spec`` parses the file once into frozen pydantic models (unknown keys rejected) and turns
every parse or validation problem into one :class:`~llmsynthor.core.errors.SpecError` that names the
file, the field and what was expected. Target files are read by :mod:`llmsynthor.declarations.targets`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal, Self

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.errors import Problem, SpecError, os_reason
from ..core.memory import memory_problem
from ..core.schema import Schema, Variable, check_label
from ..core.urls import url_problem
from .kinds import kind_of

MAX_SEED = 2**32 - 1  # numpy's SeedSequence takes any integer >= 0; scikit-learn's random_state (evaluate) needs < 2**32
SPEC_FORMAT_HINT = "`llmsynthor spec-format` lists every field"


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_size(spec: Spec, n_records: int) -> None:
    """Fail before any LLM call when a run of ``n_records`` (the spec's or its tables' total) cannot fit in memory."""
    problem = memory_problem(n_records, len(spec.variables), spec.synthesis.candidates)
    if problem:
        field = "n_records" if spec.n_records is not None else "targets"
        raise SpecError(Problem(f"{spec.source}: field '{field}'", problem))


class TableSpec(FrozenModel):
    """One target: a table of counts (a marginal or a joint table), or a numeric target — the sum or
    mean of a numeric variable, overall or per group (``sum_of`` / ``mean_of``).

    Give the cells either in a CSV ``file`` (one column per variable plus ``count`` or ``share``;
    ``value`` for numeric targets), inline as ``cells``, or from Python as a pandas DataFrame ``data``
    with the same columns. Numeric variables appear as bins written
    ``[a,b)``; the last bin may be closed, ``[a,b]``. Cells left out count as zero (numeric
    targets: no target for that group).
    """

    name: str | None = Field(default=None, description="the table's name in messages and the manifest (default: its variables joined by ×)")
    variables: list[str] = Field(default_factory=list, description="the table's variables; for sum_of/mean_of the groups (may be empty)")
    file: Path | None = Field(default=None, description="a CSV, relative to the spec's folder: one column per variable plus "
                              "'count' or 'share' ('value' for sum_of/mean_of); quote bins: \"[18,35)\"")
    cells: list[dict[str, Any]] | None = Field(default=None, description="the rows inline instead of 'file', e.g. "
                                               "[{gender: Male, share: 0.45}, {gender: Female, share: 0.55}]")
    data: Any = Field(default=None, exclude=True, description="from Python only: a pandas DataFrame with the columns a file "
                      "would have, instead of 'file' or 'cells' (identified by its content, not kept in the spec's dump)")
    sum_of: str | None = Field(default=None, description="a numeric variable whose total per group is the target")
    mean_of: str | None = Field(default=None, description="a numeric variable whose mean per group is the target")
    weight: float = Field(default=1.0, gt=0, description="how much this table counts in a compromise between inconsistent tables")
    tolerance_tvd: float | None = Field(default=None, gt=0, le=1, description="this table's TVD tolerance (default: the spec's own TVD tolerance)")
    tolerance_jsd: float | None = Field(default=None, gt=0, le=1, description="this table's JSD tolerance (default: synthesis.tolerance_jsd)")
    tolerance: float | None = Field(default=None, gt=0, le=1, description="numeric targets: largest relative error (default: synthesis.tolerance_numeric)")

    @model_validator(mode="after")
    def _one_source(self) -> TableSpec:
        if sum(source is not None for source in (self.file, self.cells, self.data)) != 1:
            raise ValueError("give exactly one of 'file' (a CSV path), 'cells' (inline rows) or, from Python, 'data' (a DataFrame)")
        if self.data is not None and not isinstance(self.data, pd.DataFrame):
            raise ValueError(f"'data' must be a pandas DataFrame with the table's columns, got {type(self.data).__name__}")
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"variables must be distinct, got {self.variables}")
        if self.sum_of is not None and self.mean_of is not None:
            raise ValueError("give at most one of 'sum_of' and 'mean_of'")
        if self.statistic == "count" and not self.variables:
            raise ValueError("a table of counts needs at least one variable in 'variables'")
        if self.of is not None and self.of in self.variables:
            raise ValueError(f"'{self.of}' cannot be both the summed variable and a group variable")
        return self

    @property
    def statistic(self) -> Literal["count", "sum", "mean"]:
        return "sum" if self.sum_of is not None else "mean" if self.mean_of is not None else "count"

    @property
    def of(self) -> str | None:
        return self.sum_of or self.mean_of

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.statistic != "count":
            return f"{self.statistic}_{self.of}" + ("_by_" + "_".join(self.variables) if self.variables else "")
        return "×".join(self.variables)


class LLMSettings(FrozenModel):
    """Which model proposes records and how it decodes."""

    backend: Literal["embedded", "openai", "none"] = Field(
        default="embedded", description="embedded: a GGUF model run in-process (no network); openai: any OpenAI-compatible "
        "endpoint (needs base_url and model); none: no model at all — the tables joined by independence, as IPF would (a "
        "baseline; refused where the model must write records)")
    model: str | None = Field(
        default=None,
        description="embedded: 'qwen2.5-coder-1.5b' (default), 'gemma3-270m' or a .gguf path; openai: the served model's name",
    )
    sha256: str | None = Field(default=None, description="expected sha256 of a local .gguf file")
    base_url: str | None = Field(default=None, description="openai: the endpoint, e.g. http://localhost:8000/v1")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="openai: environment variable that holds the key")
    style: Literal["chat", "completion"] = Field(default="chat", description="openai: /chat/completions or /completions with a plain prompt")
    structured: Literal["auto", "json_schema", "json_object", "none"] = Field(
        default="auto",
        description="auto: response_format json_schema (OpenAI, vLLM, Ollama), then the json_object+schema dialect "
        "(llama-cpp-python server), then prompt-and-validate, moving on when the server refuses",
    )
    timeout: float = Field(default=120.0, gt=0, description="openai: seconds per request")
    transport_retries: int = Field(default=5, ge=0, description="openai: retries on timeouts, 429, 5xx, dropped connections")
    concurrency: int = Field(default=1, ge=1, description="requests in flight at once: plans, and the prior's option "
                             "scorings (openai; the embedded model serves one at a time and batches scorings instead)")
    cache: bool = Field(default=True, description="replay answers to identical requests from the on-disk response cache")
    temperature: float = Field(default=0.7, ge=0, le=2, description="sampling temperature of the proposals")
    top_p: float = Field(default=0.95, gt=0, le=1, description="nucleus sampling: keep the likeliest tokens up to this probability")
    top_k: int = Field(default=40, ge=0, description="embedded: sample among this many likeliest tokens (0: all)")
    n_ctx: int = Field(default=4096, ge=512, description="embedded: context window in tokens")
    n_threads: int | None = Field(default=None, ge=1, description="embedded: CPU threads (default: one per CPU)")
    n_batch: int = Field(default=512, ge=32, le=8192,
                         description="embedded: tokens per llama.cpp evaluation call (prompts, and many option scorings at once)")
    n_ubatch: int = Field(default=512, ge=32, le=8192, description="embedded: tokens per compute micro-batch (at most n_batch)")
    max_retries: int = Field(default=3, ge=0, description="retries of a call whose output fails validation")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            problem = url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _endpoint(self) -> LLMSettings:
        if self.backend == "openai" and (not self.base_url or not self.model):
            raise ValueError("backend 'openai' needs both 'base_url' (e.g. http://localhost:8000/v1) and 'model'")
        if self.n_ubatch > self.n_batch:
            raise ValueError(f"n_ubatch ({self.n_ubatch}) must be at most n_batch ({self.n_batch})")
        return self


class SynthesisSettings(FrozenModel):
    """Settings of the discrepancy-guided proposal loop."""

    max_iterations: int = Field(default=25, ge=1, description="iterations of the loop at most (one or more LLM calls each)")
    proposals_per_call: int = Field(default=6, ge=1, le=20, description="proposals asked for in one LLM call, each for its own focus cells")
    guidance_cells: int = Field(default=8, ge=1, description="largest deficits shown to the LLM per call")
    tolerance_tvd: float = Field(default=0.01, gt=0, le=1, description="aligned when every table's TVD is at most this")
    tolerance_jsd: float = Field(default=0.03, gt=0, le=1, description="... and every table's JS distance (base 2) at most this")
    tolerance_numeric: float = Field(default=0.02, gt=0, le=1, description="aligned when every sum/mean target is within this relative error")
    inconsistent_targets: Literal["stop", "proceed"] = Field(
        default="stop",
        description="stop: refuse tables that disagree (different totals, margins or zero cells), naming them; "
        "proceed: fit a compromise weighted by each table's 'weight' and report the disagreement",
    )
    consistency_tolerance: float = Field(
        default=0.005, ge=0, le=1, description="two tables' margins disagree where their shares differ by more than this"
    )
    pin: Literal["targets", "lead"] = Field(
        default="targets",
        description="targets: each requested proposal gets a wanted cell of every target table; "
        "lead: only of the neediest table, the LLM picks the other categoricals (for strong models)",
    )
    max_proposal_share: float = Field(
        default=0.05, gt=0, le=1, description="at most this share of the records may come from one proposal"
    )
    draw: Literal["when_aligned", "every_iteration"] = Field(
        default="when_aligned",
        description="when_aligned: draw all records once the proposal pool fits the targets; "
        "every_iteration: the paper's add-only schedule, n / max_iterations records per iteration",
    )
    pairwise_prior: bool = Field(
        default=True,
        description="score, from the model's token probabilities, how compatible the levels of every pair of variables "
        "that no table crosses are, and combine focus cells accordingly (pin: targets; backends that expose probabilities)",
    )
    within_bin: Literal["smooth", "uniform"] = Field(
        default="smooth",
        description="how numeric values spread inside a proposal's range: smooth (a monotone density through the "
        "targets' bin shares) or uniform (the paper's choice)",
    )
    remove_surplus: bool = Field(
        default=True,
        description="after the last draw, take back records from over-represented cells and redraw them from the "
        "proposal pool where the deficits are (remove and replace; no LLM call; with candidates = 1 only, the "
        "calibration over records does this and more); the paper's loop only adds",
    )
    candidates: float = Field(
        default=3.0, ge=1, le=20,
        description="final calibration over records: besides the n records the loop drew, draw (candidates - 1) * n more "
        "from the same proposals (their categorical values spread, see 'spread') and keep the n that match the targets "
        "best (raking, sampling, an exact-fit linear program, swaps); 1 turns it off (then remove_surplus applies)",
    )
    spread: float = Field(
        default=0.5, ge=0, le=1,
        description="in the extra candidates, the share of a proposal's records whose values (categories, and numeric "
        "bins) follow what the tables' and the model's pairwise lifts say records like it have, instead of the "
        "proposal's own value and range",
    )
    records: Literal["joint", "both", "proposals"] = Field(
        default="joint",
        description="joint: candidate records come from the target tables joined by the model's pairwise prior, "
        "calibrated on the tables that cross variables (a prior-weighted pool raked to the targets); the LLM writes "
        "proposals only where it decides something the joint model cannot (a variable no table mentions, pin: lead); "
        "both: the joint model plus the LLM's proposals in every case (numeric ranges inside the tables' bins); "
        "proposals: the paper's loop of LLM proposals only",
    )
    prior_strength: float | Literal["auto"] = Field(
        default="auto",
        description="records: joint — the exponent on the model's lifts for pairs no table crosses (0 = independence, "
        "1 = the lifts as scored); auto: the exponent under which the lifts best reproduce the joint tables the spec "
        "gives (0.25 when it gives none)",
    )
    prior_phrasing: Literal["plain", "shares", "auto"] = Field(
        default="plain",
        description="how the model is asked about a pair: plain (the options alone), shares (each option with its target "
        "share); auto: both on the pairs the tables cross, then the one that reproduces them best for the rest (on the "
        "bench it chose shares on one census case where plain was better on the other pairs, at about 2.4x the scoring time)",
    )
    prior_directions: Literal["one", "both"] = Field(
        default="one",
        description="one: each pair asked once, the variable with fewer levels as the context; both: also the other way "
        "round, the two lifts combined by their geometric mean (better lifts on the bench, about twice the scoring time)",
    )
    prior_answers: Literal["auto", "text", "letters"] = Field(
        default="auto",
        description="how the model's answer to a pair's question is read: text (the probability of each option's text "
        "as the continuation of an answer begun for it; the embedded backend), letters (the options listed as A), B), … "
        "and the first answer token's probabilities, as OpenAI-compatible servers give them in top_logprobs; at most 26 "
        "options, and an option outside the server's top 20 gets the least probability listed); auto: text where the "
        "backend can continue an answer, letters otherwise",
    )
    joint_pool: int = Field(default=200_000, ge=1000, le=10_000_000,
                            description="records: joint — size of the pool of independent records that is weighted and raked")
    parallel_requests: int = Field(default=1, ge=1, le=16, description="plan requests per iteration, each for its own focus cells")
    infer_dependencies: bool = Field(default=True, description="ask the LLM once which groups of variables depend on each other")
    max_dependency_groups: int = Field(default=3, ge=0, description="at most this many inferred dependency groups")


class SpecFile(FrozenModel):
    """What every record shape's spec model is besides its sections: where it was read from (set by
    its reader, left out of its content), the digest of its content for the manifest, and one
    SpecError naming every problem of a mapping that does not validate."""

    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<inline>", exclude=True)

    def digest(self) -> str:
        """sha256 of the spec's content (not of its location), for the manifest."""
        payload = self.model_dump_json(exclude={"base_dir", "source", "kind"})  # kind: implied by the content
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def validated(cls, data: dict, source: str, base_dir: Path) -> Self:
        """``data`` (a loaded YAML mapping) as this model, read from ``source`` in ``base_dir``."""
        try:
            return cls.model_validate({**data, "base_dir": base_dir, "source": source})
        except ValidationError as exc:
            raise SpecError([Problem(field_location(source, e["loc"]), problem_text(e)) for e in exc.errors()]) from None


class Spec(SpecFile):
    """A complete run: what to synthesize and how."""

    kind: Literal["records"] = Field(default="records", description="the record shape: records (flat records of one "
                                     "entity, this format; the default) — households: llmsynthor spec-format --households")
    name: str = Field(default="synthesis", description="the run's name; the default output is <name>.csv")
    n_records: int | None = Field(default=None, gt=0, description="records to synthesize (default: the total of the count tables)")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description=f"0 to {MAX_SEED}: same spec + seed + model gives the same records")
    entity: str = Field(default="record", description="what one record is, for the prompts: customer, person, trip …")
    variables: dict[str, Variable] = Field(min_length=1, description="name -> {type: categorical, values: [...]} or "
                                           "{type: integer|float, min, max}, each with a 'description' for the prompts")
    targets: list[TableSpec] = Field(default_factory=list, description="the tables the records must match (see 'targets[]')")
    population: str | None = Field(
        default=None,
        description="who or what the records describe, told to the model, e.g. 'all residents of Massachusetts, USA, "
        "2015 American Community Survey, people of every age'",
    )
    constraints: list[str] = Field(
        default_factory=list,
        description="structural zeros enforced in generation, 'condition -> consequence' as in 'rules' (e.g. "
        "'age < 16 -> marital == Never married'): no output record breaks one",
    )
    rules: list[str] = Field(
        default_factory=list,
        description="realism rules 'condition -> consequence' used by `llmsynthor evaluate` only, never by the generator",
    )
    llm: LLMSettings = Field(default=LLMSettings(), description="which model proposes records (see 'llm')")
    synthesis: SynthesisSettings = Field(default=SynthesisSettings(), description="the loop's settings (see 'synthesis')")

    @field_validator("variables")
    @classmethod
    def _names(cls, variables: dict) -> dict:
        for name in variables:
            check_label(name, "variable", f"a variable is named {name!r}; expected a non-empty name",
                        "the target files' columns are matched exactly")
        return variables

    @property
    def record_schema(self) -> Schema:
        return Schema(entity=self.entity, population=self.population, variables=self.variables)

def field_location(source: str, loc: tuple) -> str:
    path = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in {"categorical", "integer", "float"}))
    return f"{source}: field '{path}'" if path else source


def problem_text(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field (check the spelling; {SPEC_FORMAT_HINT})"
    if kind == "missing":
        return "this field is required"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if kind.startswith("union_tag") or kind == "model_attributes_type":
        return msg
    if got is not None and not isinstance(got, (dict, list)):
        return f"{msg} (got {got!r})"
    return msg


def parse_spec(data: Any, *, source: str = "<inline>", base_dir: Path = Path(".")) -> Spec:
    """Validate an already-loaded mapping as a spec."""
    if not isinstance(data, dict):
        raise SpecError(Problem(source, f"expected a YAML mapping with 'variables' and 'targets', got {type(data).__name__}"))
    if kind_of(data, source) != "records":
        raise SpecError(Problem(source, "a household spec (it has 'household' and 'person' sections); expected a flat spec "
                                "here — read it with llmsynthor.shapes.households.spec.load_household_spec (the CLI does by itself)"))
    spec = Spec.validated(data, source, base_dir)
    if spec.n_records is not None:
        check_size(spec, spec.n_records)
    return spec


def apply_changes(data: dict, changes: dict[str, Any]) -> dict:
    """``data`` (a dumped spec) with ``{"seed": 3, "llm.model": ...}`` set in place (``None`` = keep)."""
    for dotted, value in changes.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if key:
            data[section][key] = value
        else:
            data[section] = value
    return data


def with_overrides(spec: Spec, changes: dict[str, Any], options: dict[str, str] | None = None) -> Spec:
    """The spec with ``{"seed": 3, "llm.model": "gemma3-270m", ...}`` applied (``None`` = keep),
    validated like the file itself. ``options`` ({"seed": "--seed"}) names where a change came from,
    so that a problem with it names the option rather than the spec's field."""
    data = spec.model_dump(exclude={"base_dir", "source"})
    for table, dumped in zip(spec.targets, data["targets"]):
        if table.data is not None:  # DataFrames are not dumped: carry them over
            dumped["data"] = table.data
    apply_changes(data, changes)
    try:
        return parse_spec(data, source=spec.source, base_dir=spec.base_dir)
    except SpecError as exc:
        given = {f"{spec.source}: field '{dotted}'": f"option {options[dotted]}"
                 for dotted, value in changes.items() if value is not None and dotted in (options or {})}
        if not given:
            raise
        raise SpecError([Problem(given.get(p.location, p.location), p.message) for p in exc.problems]) from None


class _DuplicateKey(yaml.YAMLError):
    """A mapping names the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *anchor' merges may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: SafeLoader reports it
                if first is not None:
                    raise _DuplicateKey(f"line {line}: the key {key!r} appears twice (lines {first} and {line}); expected "
                                        "each key once (YAML would silently keep the last)")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML mapping of a spec file (a key written twice refused), or one SpecError naming the file."""
    if not path.is_file():
        raise SpecError(Problem(str(path), "spec file not found; expected a YAML file with 'variables' and 'targets'"))
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as exc:
        raise SpecError(Problem(str(path), str(exc))) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise SpecError(Problem(str(path), f"malformed YAML{where}: {what}")) from None
    except UnicodeDecodeError as exc:
        raise SpecError(Problem(str(path), f"not a UTF-8 text file ({exc.reason})")) from None
    except OSError as exc:
        raise SpecError(Problem(str(path), f"cannot read the spec ({os_reason(exc)})")) from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file; relative target paths resolve against its folder."""
    path = Path(path)
    return parse_spec(read_yaml(path), source=str(path), base_dir=path.parent)
