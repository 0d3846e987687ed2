"""``llmsynthor run`` for a household spec: checks first, then compositions, zones and linked outputs.

Everything that can be wrong with the input (the spec, its tables, the output folder, the cache
folder) is found before the model loads. Progress is a bar per stage on a terminal, one line per
step otherwise.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..spec import apply_changes
from .constraints import check_constraints
from .controls import load_controls
from .evaluation import evaluate_households
from .output import check_output_folder, write_outputs
from .spec import HouseholdSpec, parse_household_spec

err = Console(stderr=True)
out = Console()


def overridden(spec: HouseholdSpec, changes: dict) -> HouseholdSpec:
    """The spec with command-line overrides (``{"seed": 3, "llm.model": ...}``; None = keep), validated again."""
    data = apply_changes(spec.model_dump(exclude={"base_dir", "source"}), changes)
    return parse_household_spec(data, source=spec.source, base_dir=spec.base_dir)


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


def run_households(spec: HouseholdSpec, folder: Path, fmt: str, no_cache: bool) -> None:
    """Run a household spec end to end and print what came out (errors propagate to the caller)."""
    from ..api import make_backend
    from ..llm.cache import default_path
    from ..output import check_writable_file
    from .synthesizer import HouseholdSynthesizer

    started = time.perf_counter()
    targets = load_controls(spec)
    check_constraints(spec, targets, spec.seed)
    use_cache = not no_cache and spec.llm.cache
    if spec.llm.backend == "embedded":
        from ..llm.models import check_cache_folder

        check_cache_folder()
    check_output_folder(folder, fmt)
    if use_cache:
        check_writable_file(default_path(), "the response cache", "run with --no-cache to go without it")
    err.print(f"{targets.households:,} households, {targets.persons:,.0f} persons, {len(targets.zones) or 'no'} zones, "
              f"{len(targets.tables)} tables · " + (f"connecting to {spec.llm.base_url} …" if spec.llm.backend == "openai"
                                                  else f"loading model {spec.llm.model or 'qwen2.5-coder-1.5b'} …"))
    backend = make_backend(spec.llm, cache=use_cache)
    with progress_bars() as progress:
        synth = HouseholdSynthesizer(spec, backend, targets=targets, progress=progress, constraints_checked=True)
        result = synth.fit().sample()
    evaluation = evaluate_households(spec, targets, result.households, result.persons)
    paths = write_outputs(spec, result, evaluation, backend, folder, fmt, time.perf_counter() - started, targets=targets)
    summary = evaluation.summary()
    table = Table(title=f"{len(result.households):,} households, {len(result.persons):,} persons → {folder}", show_edge=False)
    for col in ("target table", "TVD region", "TVD zones (mean / max)"):
        table.add_column(col, justify="left" if col == "target table" else "right")
    for name, t in evaluation.on_targets.items():
        zones = f"{t['zones_tvd_mean']:.4f} / {t['zones_tvd_max']:.4f}" if "zones_tvd_mean" in t else "-"
        table.add_row(name, f"{t['tvd']:.4f}", zones)
    out.print(table)
    u = result.usage
    out.print(f"household rejection rate {summary['rejection_rate']:.1%} (rules and structure checks) · "
              f"{result.compositions}/{result.requests} compositions accepted · {u.calls} LLM calls · {u.cache_hits} from cache · "
              f"wall {time.perf_counter() - started:.1f}s (LLM {u.seconds:.1f}s) · manifest {paths['manifest']} · report {paths['report']}", soft_wrap=True)
