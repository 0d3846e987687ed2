"""Saving a run's state after every iteration, and reading it back to resume.

A checkpoint is a folder: ``state.json`` (spec digest, iteration, proposal pool with draws,
RNG state, LLM usage, history, inferred dependencies) and, once records exist,
``records.parquet``. Files are written to a temporary name and renamed, so an interruption
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import Problem, SpecError

FORMAT = 1


@dataclass
class RunState:
    """Everything the loop needs to continue exactly where it stopped."""

    spec_digest: str
    iteration: int
    rng_state: dict
    pool: list[dict]
    usage: dict
    history: list[dict]
    inferred: list[list[str]]
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    records: pd.DataFrame | None = None


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(folder: Path, state: RunState) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if state.records is not None and len(state.records):
        _atomic_write(folder / "records.parquet", lambda p: state.records.to_parquet(p, index=False))
    data = {k: v for k, v in state.__dict__.items() if k != "records"}
    data["format"] = FORMAT
    data["has_records"] = state.records is not None and len(state.records) > 0
    _atomic_write(folder / "state.json", lambda p: p.write_text(json.dumps(data, default=int), encoding="utf-8"))


def exists(folder: Path) -> bool:
    return (folder / "state.json").is_file()


def require(folder: Path) -> None:
    """Fail, naming the folder, when there is no checkpoint to resume."""
    if not exists(folder):
        raise SpecError(Problem(str(folder), "no checkpoint to resume here; expected state.json from an interrupted run "
                                             "(run without --resume to start afresh)"))


def load(folder: Path, spec_digest: str) -> RunState:
    """Read a checkpoint; refuse one written for a different spec (or seed, or model)."""
    require(folder)
    path = folder / "state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(Problem(str(path), f"the checkpoint is damaged ({exc.msg}); delete the folder and run without --resume")) from None
    if data.get("format") != FORMAT:
        raise SpecError(Problem(str(path), f"checkpoint format {data.get('format')} is not {FORMAT}; run without --resume"))
    if data["spec_digest"] != spec_digest:
        raise SpecError(Problem(str(path), "the checkpoint belongs to a different spec, seed or model; resume with the same "
                                           "spec and options, or run without --resume"))
    records = pd.read_parquet(folder / "records.parquet") if data.pop("has_records") else None
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
