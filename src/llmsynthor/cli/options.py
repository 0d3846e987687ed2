"""What the commands hand to a record shape: the options of ``run``, and what ``suggest-constraints`` scores."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# option -> the spec field it overrides (None: an option of the run itself, no spec field)
OVERRIDES = {"seed": "seed", "n_records": "n_records", "llm": "llm.backend", "base_url": "llm.base_url", "model": "llm.model",
             "concurrency": "llm.concurrency", "threads": "llm.n_threads", "max_iterations": "synthesis.max_iterations"}
FLAGS = {"out_path": "--out", "manifest_path": "--manifest", "checkpoint_dir": "--checkpoint", "seed": "--seed", "n_records": "--n",
         "llm": "--llm", "base_url": "--base-url", "model": "--model", "concurrency": "--concurrency", "threads": "--threads",
         "max_iterations": "--max-iterations", "no_cache": "--no-cache", "resume": "--resume",
         "scenario": "--scenario"}


@dataclass(frozen=True)
class RunOptions:
    """The options of ``run`` as given (None / False: not given)."""

    out_path: Path | None = None
    manifest_path: Path | None = None
    checkpoint_dir: Path | None = None
    seed: int | None = None
    n_records: int | None = None
    llm: str | None = None
    base_url: str | None = None
    model: str | None = None
    concurrency: int | None = None
    threads: int | None = None
    max_iterations: int | None = None
    no_cache: bool = False
    resume: bool = False
    debug: bool = False
    scenario: str | None = None  # a what-if in words (trips specs)

    def changes(self, fields_: tuple[str, ...] = tuple(OVERRIDES)) -> dict[str, Any]:
        """The spec fields the options override (``{"seed": 3, "llm.model": None, ...}``; None = keep)."""
        return {OVERRIDES[name]: getattr(self, name) for name in fields_}

    def given(self) -> list[str]:
        """The flags given, as the user wrote them (``--resume``, ``--n`` …)."""
        return [FLAGS[f.name] for f in fields(self) if f.name in FLAGS and getattr(self, f.name) not in (None, False)]


@dataclass(frozen=True)
class Suggesting:
    """What ``suggest-constraints`` scores for a spec, level by level (a flat spec: the one level None):
    the targets of each level, its own variables, the constraints it declares already, which pairs
    its suggestions may name (None: any), the prior's phrasings and settings (None: the defaults)."""

    spec: Any
    levels: dict
    own: dict
    known: dict
    keep: dict
    phrasings: tuple[str, ...]
    settings: Any
