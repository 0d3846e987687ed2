"""What every command shares: the consoles, exit statuses, error lines, interruptions (Ctrl-C, SIGTERM).

Exit status: 0 done; 1 runtime failure (a model file, the LLM's output, the file system); 2 bad
input (spec, target files, options); 3 the LLM backend failed or could not be reached before its
work was done (what was done is kept: the checkpoint and the response cache); 130 interrupted
(Ctrl-C) and 143 terminated (SIGTERM), the checkpoint kept in both. Errors are one paragraph on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..core.errors import BackendError, LLMSynthorError, ModelFileError, SpecError, os_reason

err = Console(stderr=True)
out = Console()

EXIT_BACKEND = 3  # the LLM backend failed or could not be reached: its own code, so scripts can tell it apart


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it ends as Ctrl-C does: the checkpoint kept, the
    resume command printed; exit status 143 (128 + 15)."""

    code = 143


def on_sigterm(signum, frame) -> None:
    raise Terminated()


def stopped(exc: BaseException) -> tuple[str, int]:
    """How an interruption is named and its exit status: Ctrl-C 130, SIGTERM 143."""
    return ("terminated (SIGTERM)", Terminated.code) if isinstance(exc, Terminated) else ("interrupted", 130)


def fail(exc: BaseException, debug: bool, code: int) -> None:
    if debug:
        typer.echo(traceback.format_exc(), err=True)
    kind = ("invalid input" if isinstance(exc, SpecError)
            else "the LLM backend failed" if code == EXIT_BACKEND else "error")
    typer.echo(f"llmsynthor: {kind}: {exc}", err=True)
    raise typer.Exit(code)


def fail_with_code(exc: BaseException, debug: bool) -> None:
    """:func:`fail` with the code its kind calls for: 2 for bad input, 3 for a backend that failed, 1
    otherwise (an OSError in one line)."""
    if isinstance(exc, SpecError):
        fail(exc, debug, 2)
    if backend_fault(exc):
        fail(exc, debug, EXIT_BACKEND)
    fail(LLMSynthorError(os_error(exc)) if isinstance(exc, OSError) else exc, debug, 1)


def warn_slow(message: str) -> None:
    """A step of the embedded model ran far slower than its pace: say so as it happens."""
    err.print(escape(f"warning: {message}"), style="yellow", soft_wrap=True)


def say_threads(backend) -> None:
    """The embedded model's threads when they are not one per core (why, and how to set them)."""
    threads = getattr(backend, "threads", None)
    if threads is not None and threads.limited:
        err.print(escape(f"llama.cpp threads: {threads.reason}"), soft_wrap=True)


def backend_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the LLM backend failing (not reached, died, refused), not a model file or bad input."""
    return isinstance(exc, BackendError) and not isinstance(exc, ModelFileError)


def os_error(exc: OSError) -> str:
    """``file system error on /x/y.csv: No space left on device`` from an OSError, without the errno noise."""
    name = f" on {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"file system error{name}: {os_reason(exc)}"


def guarded(command, debug: bool, *args) -> None:
    """A shape's command, its errors reported as every command's are (exit 2, 3 or 1)."""
    try:
        command(*args)
    except (SpecError, LLMSynthorError, OSError) as exc:
        fail_with_code(exc, debug)


@contextmanager
def progress_bars():
    """Yield a ``progress(stage, done, total)`` callback: rich bars on a terminal, plain lines otherwise."""
    if not err.is_terminal:
        started = time.monotonic()

        def line(stage: str, done: int, total: int) -> None:
            typer.echo(f"{stage}: {done}/{total} · {time.monotonic() - started:.1f}s", err=True)

        yield line
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def run_into_folder(spec_path, o, *, shape: str, not_for: dict[str, str], load: Callable, run_body: Callable,
                    answers: str) -> None:
    """``run`` of a shape that writes a folder of linked tables (households, trips): options the shape does not
    take refused (``not_for``: option -> why), the spec loaded (``load``) with the options' overrides, the folder
    (``--out``, default the spec's name; ``.parquet`` for Parquet files) handed to ``run_body(spec, folder, fmt,
    no_cache)``; Ctrl-C / SIGTERM and backend faults say that ``answers`` are kept in the response cache, and
    what was written when ``run_body`` set it on the exception (``exc.written``, e.g. "the baseline in out/")."""
    from pathlib import Path

    from ..core.errors import Problem
    from .options import FLAGS

    try:
        refused = [Problem(FLAGS[name], f"not for a {shape} spec ({why})") for name, why in not_for.items()
                   if getattr(o, name) not in (None, False)]
        if refused:
            raise SpecError(refused)
        spec = load(spec_path, o.changes(("seed", "llm", "base_url", "model", "concurrency", "threads")))
        folder = o.out_path or Path(spec.name)
        fmt = "parquet" if folder.suffix.lower() == ".parquet" else "csv"
        run_body(spec, folder.with_suffix("") if fmt == "parquet" else folder, fmt, o.no_cache)
    except KeyboardInterrupt as exc:
        how, code = stopped(exc)
        written = getattr(exc, "written", None)  # what run_body had written when it stopped (None: nothing)
        typer.echo(f"llmsynthor: {how}: {written or 'nothing'} was written ({answers} are in the response cache, so running "
                   "the same command again replays them)", err=True)
        raise typer.Exit(code) from None
    except Exception as exc:
        written = getattr(exc, "written", None)
        if backend_fault(exc) and not o.no_cache:
            exc.args = (f"{exc}\n{(written or 'nothing').capitalize()} was written; {answers} are in the response cache: fix "
                        "the cause and run the same command again (they are replayed).",)
        elif written:
            exc.args = (f"{exc}\n{written.capitalize()} was written.",)
        raise
