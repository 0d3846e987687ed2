"""Writing what a run made: records (CSV or Parquet, by extension) and JSON files, output paths checked
before any work, and the model facts every manifest carries."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..core.errors import LLMSynthorError, Problem, SpecError, os_reason
from ..core.levels import Level
from ..core.records import check_suffix
from ..core.version import __version__


def check_output_path(path: Path) -> None:
    """Fail before a run, not after it, when records could not be written to ``path`` (.csv or .parquet)."""
    check_suffix(path, "records")


class _PathCheck:
    """Problems with one path the run will write: ``what 'path': message[; hint]``."""

    def __init__(self, what: str, path: Path, hint: str = ""):
        self.what, self.path, self.hint = what, Path(path), hint

    def fail(self, message: str) -> SpecError:
        return SpecError(Problem(f"{self.what} '{self.path}'", message + (f" ({self.hint})" if self.hint else "")))

    def folder(self, folder: Path) -> None:
        """Create ``folder`` if needed, then create and delete a probe file in it: the one sure test."""
        if folder.exists() and not folder.is_dir():
            raise self.fail(f"{folder} is a file, not a folder; expected a folder to write in")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.fail(f"cannot create the folder {folder} ({os_reason(exc)})") from None
        probe = folder / f".{self.path.name}.llmsynthor-probe-{os.getpid()}"
        try:
            with open(probe, "x", encoding="utf-8"):
                pass
        except OSError as exc:
            raise self.fail(f"cannot write in {folder} ({os_reason(exc)}); expected a writable folder") from None
        probe.unlink(missing_ok=True)


def check_writable_file(path: Path, what: str, hint: str = "") -> None:
    """Fail with one line naming ``path`` unless a file can be written there: not an existing folder, its
    folder created if needed and writable (tried with a probe file, removed again), an existing file writable."""
    check = _PathCheck(what, path, hint)
    if check.path.is_dir():
        raise check.fail("is an existing folder; expected a file name")
    check.folder(check.path.parent)
    if check.path.exists() and not os.access(check.path, os.W_OK):
        raise check.fail("exists and is not writable; expected a file that can be replaced")


def check_writable_folder(folder: Path, what: str, hint: str = "") -> None:
    """Fail with one line naming ``folder`` unless files can be written in it (folders created for the
    test are removed again, so nothing is left behind)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        _PathCheck(what, folder, hint).folder(folder)
    finally:
        for p in missing:  # innermost first
            try:
                p.rmdir()
            except OSError:
                break


def check_run_paths(records: Path, manifest: Path, checkpoint_dir: Path, cache: Path | None) -> None:
    """Every path a run writes (records, manifest, checkpoint folder, response cache), checked before the
    model is loaded and before any LLM call; one SpecError naming the first path that cannot be written."""
    check_output_path(records)
    seen: dict[str, str] = {}
    for what, p in {"records path": records, "manifest path": manifest, "checkpoint folder": checkpoint_dir}.items():
        key = os.path.abspath(p)
        if key in seen:
            raise SpecError(Problem(f"{what} '{p}'", f"is also the {seen[key]}; expected distinct paths"))
        seen[key] = what
    check_writable_file(records, "records path")
    check_writable_file(manifest, "manifest path")
    check_writable_folder(checkpoint_dir, "checkpoint folder")
    if cache is not None:
        check_writable_file(cache, "response cache", "set LLMSYNTHOR_CACHE to a writable folder, or pass --no-cache")


def write_records(records: pd.DataFrame, path: Path) -> Path:
    check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            records.to_csv(path, index=False)
        else:
            records.to_parquet(path, index=False)
    except OSError as exc:
        raise LLMSynthorError(f"could not write the records to {path}: {os_reason(exc)}") from exc
    return path


FORMATS = ("csv", "parquet")  # of linked tables, one file per level


def level_paths(folder: Path, levels: Sequence[Level], fmt: str = "csv") -> dict[str, Path]:
    """Where each level's file goes in a run's folder: ``<level>.<fmt>`` (households.csv, persons.csv)."""
    return {level.name: Path(folder) / f"{level.name}.{fmt}" for level in levels}


def run_folder_paths(folder: Path, levels: Sequence[Level], fmt: str = "csv", **files: str) -> dict[str, Path]:
    """Every file a run writes into its folder: the levels' (:func:`level_paths`) and the named ones
    (``manifest="manifest.json"``)."""
    return {**level_paths(folder, levels, fmt), **{what: Path(folder) / name for what, name in files.items()}}


def check_writable_files(paths: Mapping[str, Path]) -> dict[str, Path]:
    """Every one of ``paths`` (what -> path) checked writable (:func:`check_writable_file`), before any work."""
    for what, path in paths.items():
        check_writable_file(path, f"the {what} file")
    return dict(paths)


def find_level_paths(folder: Path, levels: Sequence[Level], what: str, shape: str) -> dict[str, Path]:
    """The level files of a run's folder, in the format found there; SpecError naming the folder when
    it, or its top level's file, is missing (``shape``: whose folder, "household")."""
    folder = Path(folder)
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "is not there"
        files = " and ".join(f"{level.name}.csv" for level in levels)
        raise SpecError(Problem(str(folder), f"the {what} folder {state}; expected the folder `llmsynthor run` wrote "
                                             f"for a {shape} spec, with {files} (or .parquet)"))
    top = levels[0].name
    found = [fmt for fmt in FORMATS if (folder / f"{top}.{fmt}").is_file()]
    if not found:
        raise SpecError(Problem(str(folder), f"no {top}.csv or {top}.parquet in the {what} folder; expected the "
                                             f"linked tables `llmsynthor run` writes for a {shape} spec"))
    return level_paths(folder, levels, found[0])


def write_linked(frames: Mapping[str, pd.DataFrame], paths: Mapping[str, Path]) -> None:
    """Every level's frame to its file (:func:`level_paths`)."""
    for level, frame in frames.items():
        write_records(frame, paths[level])


def manifest_head(spec) -> dict:
    """What every manifest opens with: the version that wrote it, its status and the spec (name, file, digest)."""
    return {"llmsynthor_version": __version__, "status": "completed",
            "spec": {"name": spec.name, "source": spec.source, "sha256": spec.digest()}}


def platform_facts() -> dict:
    """What every manifest closes with: the Python and the machine."""
    return {"platform": {"python": platform.python_version(), "machine": platform.machine()}}


def backend_facts(settings, backend) -> dict:
    """The manifest's model, response-cache and transport blocks (``settings``: the spec's llm)."""
    model_file = getattr(backend, "model_file", None)
    return {
        "model": {"backend": backend.name, "sha256": model_file.sha256 if model_file else None,
                  "load_seconds": getattr(backend, "load_seconds", None),
                  "llama_cpp_extra_buffers_off": getattr(backend, "avoided_amx", None),  # AMX kernels avoided (llm.embedded)
                  **_threads(backend),
                  "temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k},
        "cache": {"hits": backend.hits, "misses": backend.misses, "path": str(backend.path)} if hasattr(backend, "hits") else None,
        "transport": {"retries": getattr(backend, "transport_retries", 0),
                      "structured_output_fallbacks": getattr(backend, "structured_fallbacks", 0)},
    }


def _threads(backend) -> dict:
    """llama.cpp's threads and why, and the steps that ran far slower than the model's pace (embedded only)."""
    threads, pace = getattr(backend, "threads", None), getattr(backend, "pace", None)
    if threads is None:
        return {}
    return {"threads": threads.count, "threads_reason": threads.reason,
            "slow_steps": pace.slow_steps if pace else 0, "slowest_step_ratio": round(pace.worst, 1) if pace and pace.worst else None}


def read_manifest(path: Path, lists: tuple[str, ...] = ()) -> dict:
    """A run manifest written by ``llmsynthor run`` (SpecError naming the file when it cannot be read or
    is other JSON): a mapping with 'llm', and each of ``lists`` a list where present."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(Problem(str(path), f"cannot read the run manifest ({exc}); expected the JSON written by `llmsynthor run`")) from exc
    if not isinstance(data, dict) or "llm" not in data or any(not isinstance(data.get(k, []), list) for k in lists):
        needed = " and ".join(repr(k) for k in ("llm", *lists))
        raise SpecError(Problem(str(path), f"is JSON but not a run manifest (no {needed}); expected the manifest "
                                           "written by `llmsynthor run`"))
    return data


def write_json(data: dict, path: Path, what: str = "the manifest") -> Path:
    """``data`` as indented JSON (numpy numbers as floats); a file-system failure is one LLMSynthorError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
    except OSError as exc:
        raise LLMSynthorError(f"could not write {what} to {path}: {os_reason(exc)}") from exc
    return path
