"""The run specification (YAML): schema, target tables, size, seed, LLM and loop settings.

``load_spec`` parses the file once into frozen pydantic models (unknown keys rejected) and turns
every parse or validation problem into one :class:`~llmsynthor.errors.SpecError` that names the
file, the field and what was expected. Target files are read by :mod:`llmsynthor.targets`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import Problem, SpecError
from .schema import Schema, Variable


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Frozen):
    """One target: a table of counts (a marginal or a joint table), or a numeric target — the sum or
    mean of a numeric variable, overall or per group (``sum_of`` / ``mean_of``).

    Give the cells either in a CSV ``file`` (one column per variable plus ``count`` or ``share``;
    ``value`` for numeric targets) or inline as ``cells``. Numeric variables appear as bins written
    ``[a,b)``; the last bin may be closed, ``[a,b]``. Cells left out count as zero (numeric
    targets: no target for that group).
    """

    name: str | None = None
    variables: list[str] = Field(default_factory=list, description="the table's variables; for sum_of/mean_of the groups (may be empty)")
    file: Path | None = None
    cells: list[dict[str, Any]] | None = None
    sum_of: str | None = Field(default=None, description="a numeric variable whose total per group is the target")
    mean_of: str | None = Field(default=None, description="a numeric variable whose mean per group is the target")
    weight: float = Field(default=1.0, gt=0)
    tolerance_tvd: float | None = Field(default=None, gt=0, le=1, description="this table's TVD tolerance (default: synthesis.tolerance_tvd)")
    tolerance_jsd: float | None = Field(default=None, gt=0, le=1, description="this table's JSD tolerance (default: synthesis.tolerance_jsd)")
    tolerance: float | None = Field(default=None, gt=0, le=1, description="numeric targets: largest relative error (default: synthesis.tolerance_numeric)")

    @model_validator(mode="after")
    def _one_source(self) -> TableSpec:
        if (self.file is None) == (self.cells is None):
            raise ValueError("give exactly one of 'file' (a CSV path) or 'cells' (inline rows)")
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


class LLMSettings(_Frozen):
    """Which model proposes records and how it decodes."""

    backend: Literal["embedded", "openai"] = "embedded"
    model: str | None = Field(
        default=None,
        description="embedded: 'qwen2.5-coder-1.5b' (default), 'gemma3-270m' or a .gguf path; openai: the served model's name",
    )
    sha256: str | None = Field(default=None, description="expected sha256 of a local .gguf file")
    base_url: str | None = Field(default=None, description="openai: the endpoint, e.g. http://localhost:8000/v1")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="openai: environment variable that holds the key")
    style: Literal["chat", "completion"] = "chat"
    structured: Literal["auto", "json_schema", "json_object", "none"] = Field(
        default="auto",
        description="auto: response_format json_schema (OpenAI, vLLM, Ollama), then the json_object+schema dialect "
        "(llama-cpp-python server), then prompt-and-validate, moving on when the server refuses",
    )
    timeout: float = Field(default=120.0, gt=0, description="openai: seconds per request")
    transport_retries: int = Field(default=5, ge=0, description="openai: retries on timeouts, 429, 5xx, dropped connections")
    concurrency: int = Field(default=1, ge=1, description="requests in flight at once (the embedded model serves one at a time)")
    cache: bool = Field(default=True, description="replay answers to identical requests from the on-disk response cache")
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=40, ge=0)
    n_ctx: int = Field(default=4096, ge=512)
    n_threads: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=3, ge=0, description="retries of a call whose output fails validation")

    @model_validator(mode="after")
    def _endpoint(self) -> LLMSettings:
        if self.backend == "openai" and (not self.base_url or not self.model):
            raise ValueError("backend 'openai' needs both 'base_url' (e.g. http://localhost:8000/v1) and 'model'")
        return self


class SynthesisSettings(_Frozen):
    """Settings of the discrepancy-guided proposal loop."""

    max_iterations: int = Field(default=25, ge=1)
    proposals_per_call: int = Field(default=6, ge=1, le=20)
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
    parallel_requests: int = Field(default=1, ge=1, le=16, description="plan requests per iteration, each for its own focus cells")
    infer_dependencies: bool = True
    max_dependency_groups: int = Field(default=3, ge=0)


class Spec(_Frozen):
    """A complete run: what to synthesize and how."""

    name: str = "synthesis"
    n_records: int | None = Field(default=None, gt=0)
    seed: int = 0
    entity: str = "record"
    variables: dict[str, Variable] = Field(min_length=1)
    targets: list[TableSpec] = Field(default_factory=list)
    rules: list[str] = Field(
        default_factory=list,
        description="realism rules 'condition -> consequence' used by `llmsynthor evaluate` only, never by the generator",
    )
    llm: LLMSettings = LLMSettings()
    synthesis: SynthesisSettings = SynthesisSettings()
    # set by load_spec, not by the user
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<inline>", exclude=True)

    @property
    def record_schema(self) -> Schema:
        return Schema(entity=self.entity, variables=self.variables)

    def digest(self) -> str:
        """sha256 of the spec's content (not of its location), for the manifest."""
        payload = self.model_dump_json(exclude={"base_dir", "source"})
        return hashlib.sha256(payload.encode()).hexdigest()


def _location(source: str, loc: tuple) -> str:
    path = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in {"categorical", "integer", "float"}))
    return f"{source}: field '{path}'" if path else source


def _problem_text(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `llmsynthor run --help` for the spec format)"
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
    try:
        return Spec.model_validate({**data, "base_dir": base_dir, "source": source})
    except ValidationError as exc:
        problems = [Problem(_location(source, e["loc"]), _problem_text(e)) for e in exc.errors()]
        raise SpecError(problems) from None


def with_overrides(spec: Spec, changes: dict[str, Any]) -> Spec:
    """The spec with ``{"seed": 3, "llm.model": "gemma3-270m", ...}`` applied (``None`` = keep),
    validated like the file itself."""
    data = spec.model_dump(exclude={"base_dir", "source"})
    for dotted, value in changes.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if key:
            data[section][key] = value
        else:
            data[section] = value
    return parse_spec(data, source=spec.source, base_dir=spec.base_dir)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file; relative target paths resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(Problem(str(path), "spec file not found; expected a YAML file with 'variables' and 'targets'"))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise SpecError(Problem(str(path), f"malformed YAML{where}: {what}")) from None
    except UnicodeDecodeError as exc:
        raise SpecError(Problem(str(path), f"not a UTF-8 text file ({exc.reason})")) from None
    return parse_spec(data, source=str(path), base_dir=path.parent)
