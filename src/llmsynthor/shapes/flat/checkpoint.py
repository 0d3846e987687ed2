"""Saving a run's state after every iteration, and reading it back to resume.

A checkpoint is a folder: ``state.json`` (spec digest, iteration, proposal pool with draws,
RNG state, LLM usage, history, inferred dependencies) and, once records exist,
``records.parquet``. Files are written to a temporary name and renamed, so an interruption
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import pandas as pd

from ...core.errors import LLMSynthorError, Problem, SpecError, os_reason

FORMAT = 1


@dataclass
class RunState:
    """Everything the loop needs to continue exactly where it stopped."""

    spec_sha256: str  # the spec (seed and options included): Spec.digest()
    iteration: int
    rng_state: dict
    pool: list[dict]
    usage: dict
    history: list[dict]
    inferred: list[list[str]]
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    records: pd.DataFrame | None = None
    fitted: bool = False  # the loop has finished: the pool is complete, only sampling is left
    targets: dict = field(default_factory=dict)  # sha256 of every target's content, by name
    model: str = ""  # sha256 of what decides the backend's answers (llm.base.identity)


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(folder: Path, state: RunState) -> None:
    """Write ``state`` into ``folder``; a file-system failure (disk full …) raises LLMSynthorError naming the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if state.records is not None and len(state.records):
            _atomic_write(folder / "records.parquet", lambda p: state.records.to_parquet(p, index=False))
        data = {k: v for k, v in state.__dict__.items() if k != "records"}
        data["format"] = FORMAT
        data["has_records"] = state.records is not None and len(state.records) > 0
        _atomic_write(folder / "state.json", lambda p: p.write_text(json.dumps(data, default=int), encoding="utf-8"))
    except OSError as exc:
        raise LLMSynthorError(f"could not save the checkpoint in {folder}: {os_reason(exc)}") from exc


def exists(folder: Path) -> bool:
    return (folder / "state.json").is_file()


_FIELDS = {f.name for f in fields(RunState) if f.name != "records"}
_REQUIRED = {f.name for f in fields(RunState) if f.default is MISSING and f.default_factory is MISSING}


def _read_state(folder: Path) -> dict:
    """state.json checked to be a checkpoint of this version with every field (SpecError naming the file)."""
    if not exists(folder):
        raise SpecError(Problem(str(folder), "no checkpoint to resume here; expected state.json from an interrupted run "
                                             "(run without --resume to start afresh)"))
    path = folder / "state.json"
    fresh = "; delete the folder and run without --resume to start afresh"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(Problem(str(path), f"the checkpoint is damaged ({exc.msg}){fresh}")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem(str(path), f"cannot read the checkpoint ({os_reason(exc)}){fresh}")) from None
    if not isinstance(data, dict) or "format" not in data:
        raise SpecError(Problem(str(path), f"is not a checkpoint written by llmsynthor (no 'format'){fresh}"))
    if data["format"] != FORMAT:
        raise SpecError(Problem(str(path), f"checkpoint format {data['format']!r} is not {FORMAT}{fresh}"))
    missing = sorted(_REQUIRED - set(data)) + ([] if "has_records" in data else ["has_records"])
    unknown = sorted(set(data) - _FIELDS - {"format", "has_records"})
    if missing or unknown:
        what = f"lacks {missing}" if missing else f"has unknown fields {unknown}"
        raise SpecError(Problem(str(path), f"the checkpoint is incomplete or foreign: it {what}{fresh}"))
    if data["has_records"] and not (folder / "records.parquet").is_file():
        raise SpecError(Problem(str(path), f"the checkpoint says it has records but {folder / 'records.parquet'} is missing{fresh}"))
    return data


def _refuse_another_run(data: dict, folder: Path, spec_sha256: str, targets: dict[str, str], model: str | None) -> None:
    if data["spec_sha256"] != spec_sha256 or (model is not None and data["model"] != model):
        raise SpecError(Problem(str(folder / "state.json"), "the checkpoint belongs to a different spec, seed, size or model; "
                                                            "resume with the same spec and options, or run without --resume"))
    _refuse_changed_targets(targets, data["targets"], folder)


def require(folder: Path, spec_sha256: str, targets: dict[str, str]) -> None:
    """Fail, naming the file, when there is no complete checkpoint to resume, or one made for another
    spec or for targets of other content — what can be told before any model is loaded."""
    _refuse_another_run(_read_state(folder), folder, spec_sha256, targets, None)


def load(folder: Path, spec_sha256: str, targets: dict[str, str], model: str) -> RunState:
    """Read a checkpoint; refuse a foreign or incomplete one, and one made for another spec (seed and
    size included), other targets (``targets``: sha256 by name) or another model."""
    data = _read_state(folder)
    _refuse_another_run(data, folder, spec_sha256, targets, model)
    records = None
    if data.pop("has_records"):
        try:
            records = pd.read_parquet(folder / "records.parquet")
        except Exception as exc:  # pyarrow raises its own error types for a damaged file
            raise SpecError(Problem(str(folder / "records.parquet"), f"the checkpoint's records cannot be read ({exc}); "
                                                                     "delete the folder and run without --resume")) from None
    data.pop("format")
    return RunState(**data, records=records)


def clear(folder: Path) -> None:
    """Remove a finished run's checkpoint."""
    for name in ("state.json", "records.parquet"):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _refuse_changed_targets(current: dict[str, str], saved: dict[str, str], folder: Path) -> None:
    """Refuse to resume when a target's content (sha256 of its cells, by name) differs from the one the
    checkpoint was made for: the records would fit partly old and partly new targets."""
    changed = [name for name in current if name in saved and current[name] != saved[name]]
    added = [name for name in current if name not in saved]
    removed = [name for name in saved if name not in current]
    if changed or added or removed:
        what = "; ".join(part for part in (
            f"changed: {', '.join(repr(n) for n in changed)}" if changed else "",
            f"new: {', '.join(repr(n) for n in added)}" if added else "",
            f"gone: {', '.join(repr(n) for n in removed)}" if removed else "") if part)
        raise SpecError(Problem(str(folder), f"the target tables differ from those this checkpoint was made for ({what}); "
                                             "restore them, or run without --resume to start afresh"))
