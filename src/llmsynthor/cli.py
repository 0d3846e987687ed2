"""The ``llmsynthor`` command.

Exit status: 0 done; 1 runtime failure (a model file, the LLM's output, the file system); 2 bad
input (spec, target files, options); 3 the LLM backend failed or could not be reached before its
work was done (what was done is kept: the checkpoint and the response cache); 130 interrupted
(Ctrl-C) and 143 terminated (SIGTERM), the checkpoint kept in both. Errors are one paragraph on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import checkpoint
from .errors import BackendError, LLMSynthorError, ModelFileError, Problem, SpecError, os_reason
from .rules import parse_rules
from .spec import load_spec, with_overrides
from .tempering import ZERO_LIFT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help=(
        "Synthesize realistic micro-records (people, orders, trips) that match given aggregate tables.\n\n"
        "Write a YAML spec with **variables** and **target tables**, then `llmsynthor run spec.yaml`. "
        "An embedded LLM (Qwen2.5-Coder-1.5B, on the CPU, no network) proposes kinds of records; the loop "
        "compares the synthetic tables with the targets and asks for what is missing until they agree.\n\n"
        "Example: `llmsynthor run examples/ecommerce/spec.yaml --out out/ecommerce.csv`"
    ),
)
err = Console(stderr=True)
out = Console()


EXIT_BACKEND = 3  # the LLM backend failed or could not be reached: its own code, so scripts can tell it apart


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it ends as Ctrl-C does: the checkpoint kept, the
    resume command printed; exit status 143 (128 + 15)."""

    code = 143


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _stopped(exc: BaseException) -> tuple[str, int]:
    """How an interruption is named and its exit status: Ctrl-C 130, SIGTERM 143."""
    return ("terminated (SIGTERM)", Terminated.code) if isinstance(exc, Terminated) else ("interrupted", 130)


def _fail(exc: BaseException, debug: bool, code: int) -> None:
    if debug:
        typer.echo(traceback.format_exc(), err=True)
    kind = ("invalid input" if isinstance(exc, SpecError)
            else "the LLM backend failed" if code == EXIT_BACKEND else "error")
    typer.echo(f"llmsynthor: {kind}: {exc}", err=True)
    raise typer.Exit(code)


def _fail_with_code(exc: BaseException, debug: bool) -> None:
    """:func:`_fail` with the code its kind calls for: 2 for bad input, 3 for a backend that failed, 1
    otherwise (an OSError in one line)."""
    if isinstance(exc, SpecError):
        _fail(exc, debug, 2)
    if _backend_fault(exc):
        _fail(exc, debug, EXIT_BACKEND)
    _fail(LLMSynthorError(_os_error(exc)) if isinstance(exc, OSError) else exc, debug, 1)


def _warn_slow(message: str) -> None:
    """A step of the embedded model ran far slower than its pace: say so as it happens."""
    err.print(escape(f"warning: {message}"), style="yellow", soft_wrap=True)


def _say_threads(backend) -> None:
    """The embedded model's threads when they are not one per core (why, and how to set them)."""
    threads = getattr(backend, "threads", None)
    if threads is not None and threads.limited:
        err.print(escape(f"llama.cpp threads: {threads.reason}"), soft_wrap=True)


def _backend_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the LLM backend failing (not reached, died, refused), not a model file or bad input."""
    return isinstance(exc, BackendError) and not isinstance(exc, ModelFileError)


def _print_numeric(errors: dict[str, dict[str, float]]) -> None:
    """One line per sum/mean target: its largest and mean relative error over the groups."""
    for name, e in errors.items():
        out.print(f"{name}: relative error max {e['max_relative_error']:.2%}, mean {e['mean_relative_error']:.2%}")


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="YAML spec: variables, target tables, n_records, seed, llm, synthesis."),
    out_path: Path | None = typer.Option(None, "--out", "-o", help="Records file; .csv or .parquet. Default: the spec's name + .csv, in the current folder. Household specs: a folder for households.csv, persons.csv and manifest.json (name it DIR.parquet for Parquet files); default: the spec's name."),
    manifest_path: Path | None = typer.Option(None, "--manifest", help="Run manifest (JSON). Default: the records path with .manifest.json."),
    seed: int | None = typer.Option(None, help="Override the spec's seed: same spec + seed + model gives the same records."),
    n_records: int | None = typer.Option(None, "--n", help="Override the spec's number of records."),
    llm: str | None = typer.Option(None, "--llm", help="Override llm.backend: embedded (default), openai (any OpenAI-compatible endpoint) or none (no model: the tables joined by independence, as IPF would; a baseline, named as such in the output and the manifest)."),
    base_url: str | None = typer.Option(None, "--base-url", help="Override llm.base_url, e.g. http://localhost:8000/v1 (the key comes from $OPENAI_API_KEY or llm.api_key_env)."),
    model: str | None = typer.Option(None, help="Override llm.model: qwen2.5-coder-1.5b (default), gemma3-270m or a .gguf path; with --llm openai the served model's name."),
    concurrency: int | None = typer.Option(None, help="Override llm.concurrency: requests in flight at once."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Override llm.n_threads: CPU threads of the embedded model. Default: one per core that is free when the model loads (beside a busy core llama.cpp's threads spin: measured 3× slower at 2 threads than at 1 beside another llama.cpp job)."),
    max_iterations: int | None = typer.Option(None, help="Override synthesis.max_iterations."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not answer from, or write to, the response cache."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run whose checkpoint is in --checkpoint."),
    checkpoint_dir: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint folder, saved after every iteration. Default: the records path with .checkpoint."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Synthesize records for SPEC and write them with a run manifest.

    The run's state is saved after every iteration; if it stops (a server goes away, Ctrl-C,
    SIGTERM), run the same command with `--resume` to finish it: the records equal those of an
    uninterrupted run. Answers are cached on disk, so re-running a spec replays them.

    A backend that cannot be reached or fails ends the run with exit status 3 (never records
    made without the model); `--llm none` is a run without a model, asked for: the tables
    joined by independence, as IPF would, named so in the output and the manifest.

    The manifest records the spec's hash, seed, model and its sha256, the dependency groups
    the LLM inferred, every iteration's worst discrepancy, LLM calls, cache hits and tokens,
    and the wall time split into LLM and non-LLM time.
    """
    from .output import check_run_paths, manifest, write_json, write_records
    from .synthesizer import Synthesizer

    if _is_households(spec_path, debug):
        return _run_households(spec_path, out_path, seed, llm, base_url, model, concurrency, threads, no_cache, debug)
    changes = {"seed": seed, "n_records": n_records, "llm.backend": llm, "llm.base_url": base_url, "llm.model": model,
               "llm.concurrency": concurrency, "llm.n_threads": threads, "synthesis.max_iterations": max_iterations}
    given = {"--manifest": manifest_path, "--checkpoint": checkpoint_dir}  # as the user wrote them, for the resume hint
    spec = synth = None  # for the Ctrl-C message, whenever it comes
    try:
        spec = with_overrides(load_spec(spec_path), changes, _OVERRIDE_OPTIONS)
        parse_rules(spec)  # a broken realism rule is bad input, before any work (constraints: below)
        out_path = out_path or Path(f"{spec.name}.csv")
        manifest_path = manifest_path or out_path.with_suffix(".manifest.json")
        checkpoint_dir = checkpoint_dir or out_path.with_suffix(".checkpoint")
        from .targets import load_targets

        targets = load_targets(spec)
        _check_constraints(spec, targets)  # a constraint that contradicts a table, before the model loads
        # every path the run writes, before the model is loaded and before any LLM call
        use_cache = not no_cache and spec.llm.cache
        if spec.llm.backend == "embedded":
            from .llm.models import check_cache_folder

            check_cache_folder()
        from .llm.cache import default_path

        check_run_paths(out_path, manifest_path, checkpoint_dir, default_path() if use_cache else None)
        if resume:
            checkpoint.require(checkpoint_dir, spec.digest(), targets.digests())
        from .api import make_backend

        err.print(f"connecting to {spec.llm.base_url} ({spec.llm.model}) …" if spec.llm.backend == "openai"
                  else f"loading model {spec.llm.model or 'qwen2.5-coder-1.5b'} …")
        backend = make_backend(spec.llm, cache=use_cache, on_slow=_warn_slow)
        _say_threads(backend)
        with _progress(targets.n, spec.synthesis.max_iterations) as progress:
            synth = Synthesizer(spec, backend, targets=targets, progress=progress, checkpoint_dir=checkpoint_dir)
            try:
                synth.fit(resume=resume)
            except LLMSynthorError as exc:
                if _saved(synth, resume, checkpoint_dir) and not isinstance(exc, SpecError):
                    exc.args = (f"{exc}\nProgress up to the last finished iteration is saved in {checkpoint_dir}; "
                                f"fix the cause and run: {_resume_command(spec_path, out_path, given, changes, no_cache)}",)
                elif _backend_fault(exc) and use_cache:
                    exc.args = (f"{exc}\nNo iteration had finished, so there is no checkpoint; the answers received so far "
                                "are in the response cache: fix the cause and run the same command again (they are replayed).",)
                raise
        err.print(f"drawing {targets.n} records from {len(synth.pool_)} proposals"
                  + (" and calibrating them over records …" if spec.synthesis.candidates > 1 else " …"))
        result = synth.sample()
        write_records(result.records, out_path)
        data = manifest(spec, result, backend=backend, records_path=out_path)
        write_json(data, manifest_path)
        checkpoint.clear(checkpoint_dir)
    except KeyboardInterrupt as exc:
        _interrupted(exc, _saved(synth, resume, checkpoint_dir), checkpoint_dir,
                     _resume_command(spec_path, out_path, given, changes, no_cache), cached=not no_cache and spec is not None and spec.llm.cache)
    except SpecError as exc:
        _fail(exc, debug, 2)
    except LLMSynthorError as exc:
        _fail(exc, debug, EXIT_BACKEND if _backend_fault(exc) else 1)
    except OSError as exc:  # disk full, a file removed mid-run …: one line, the traceback only with --debug
        _fail(LLMSynthorError(_os_error(exc)), debug, 1)
    except MemoryError:
        _fail(LLMSynthorError("ran out of memory; lower n_records (or --n) or synthesis.candidates"), debug, 1)

    table = Table(title=f"{len(result.records)} records → {out_path}", show_edge=False)
    for col in ("target table", "TVD", "JSD (distance)"):
        table.add_column(col, justify="right" if col != "target table" else "left")
    for name, d in result.distances.items():
        table.add_row(name, f"{d['tvd']:.4f}", f"{d['jsd']:.4f}")
    out.print(table)
    _print_numeric(result.numeric)
    if spec.llm.backend == "none":
        out.print("run without a model (--llm none / llm.backend: none, asked for): the tables are joined by independence, "
                  "as IPF would; a baseline, not the model's prior", soft_wrap=True)
    if result.prior_check is not None:
        p = result.prior_check
        out.print(f"prior: strength {p['strength']:g} on the pairs no table crosses — {p['reason']}", soft_wrap=True)
    if result.calibration:
        c = result.calibration
        where = (f"{c['from_loop']} drawn by the loop" if "from_loop" in c
                 else f"{c['from_proposals']} from the LLM's proposals, the rest from the prior-weighted pool")
        out.print(f"calibration over records: kept {c['kept']} of {c['candidates']} candidates ({where}); "
                  f"discrepancy {c['l1_after_sampling']:g} → {c['l1_after_swaps']:g} records", soft_wrap=True)
    if not spec.rules:  # realism is evaluate's; without rules it cannot be scored at all
        out.print(f"realism {data['realism']}")
    out.print(_summary(result.converged, data, manifest_path), soft_wrap=True)  # one line, also in logs


def _is_households(spec_path: Path, debug: bool) -> bool:
    """Whether SPEC is a household spec (a 'household' or 'person' section); a file that cannot be read
    is bad input, said once."""
    from .households.spec import is_household_spec
    from .spec import read_yaml

    try:
        return is_household_spec(read_yaml(spec_path))
    except SpecError as exc:
        _fail(exc, debug, 2)
    return False


def _households(command, debug: bool, *args) -> None:
    """A household command of :mod:`.households.command`, its errors reported as every command's are."""
    try:
        command(*args)
    except (SpecError, LLMSynthorError, OSError) as exc:
        _fail_with_code(exc, debug)


def _run_households(spec_path: Path, out_path: Path | None, seed, llm, base_url, model, concurrency, threads, no_cache: bool,
                    debug: bool) -> None:
    """`run` for a household spec: linked households and persons in the folder --out (default: the spec's name)."""
    from .households.command import overridden, run_households
    from .households.spec import load_household_spec

    try:
        spec = overridden(load_household_spec(spec_path), {"seed": seed, "llm.backend": llm, "llm.base_url": base_url,
                                                            "llm.model": model, "llm.concurrency": concurrency,
                                                            "llm.n_threads": threads})
        folder = out_path or Path(spec.name)
        fmt = "parquet" if folder.suffix.lower() == ".parquet" else "csv"
        run_households(spec, folder.with_suffix("") if fmt == "parquet" else folder, fmt, no_cache)
    except KeyboardInterrupt as exc:
        how, code = _stopped(exc)
        typer.echo(f"llmsynthor: {how}: nothing was written (compositions answered so far are in the response cache, so "
                   "running the same command again replays them)", err=True)
        raise typer.Exit(code) from None
    except (SpecError, LLMSynthorError, OSError) as exc:
        if _backend_fault(exc) and not no_cache:
            exc.args = (f"{exc}\nNothing was written; the compositions answered so far are in the response cache: fix the cause "
                        "and run the same command again (they are replayed).",)
        _fail_with_code(exc, debug)


def _check_constraints(spec, targets) -> None:
    """The spec's constraints parsed, and none ruling out a cell a table says exists (SpecError)."""
    from .joint import check_constraints
    from .within_bin import shapes_from_targets

    check_constraints(targets, parse_rules(spec, "constraints"), shapes_from_targets(targets, spec.synthesis.within_bin), spec.source)


_OVERRIDE_OPTIONS = {"seed": "--seed", "n_records": "--n", "llm.backend": "--llm", "llm.base_url": "--base-url", "llm.model": "--model",
                     "llm.concurrency": "--concurrency", "llm.n_threads": "--threads", "synthesis.max_iterations": "--max-iterations"}


def _summary(converged: bool, data: dict, manifest_path: Path) -> str:
    """The run's last line: convergence, LLM calls and option scorings, cache, tokens, time."""
    llm, t = data["llm"], data["time"]
    scorings = llm.get("option_scorings", 0)
    if scorings:
        seconds = llm.get("option_scoring_seconds")  # part of the LLM time
        scored = f" + {scorings} option scorings" + (f" ({seconds:.1f}s)" if seconds is not None else " (time within LLM)")
    else:
        scored = ""
    return (f"{'converged' if converged else 'NOT converged (see manifest)'} · {llm['calls']} LLM calls{scored} · "
            f"{llm['cache_hits']} from cache · {llm['prompt_tokens']}+{llm['completion_tokens']} tokens"
            + (f" ({llm['prompt_tokens_evaluated']} prompt tokens evaluated)" if "prompt_tokens_evaluated" in llm else "") + " · "
            f"wall {t['wall_seconds']:.1f}s (LLM {t['llm_seconds']:.1f}s) · manifest {manifest_path}")


@contextmanager
def _progress(n: int, iterations: int):
    """Yield the loop's progress callback: a live bar over the iterations on a terminal (the loop stops
    early once the pool fits), else one complete plain line per iteration (logs and pipes keep every
    figure; a bar would be cut off there)."""

    def fields(stats):
        drawn = stats.records > 0  # before drawing, show how well the pool's best plan fits
        return (stats.worst_tvd if drawn else stats.predicted_worst_tvd, stats.worst_table if drawn else "all tables",
                "drawn" if drawn else "planned")

    if not err.is_terminal:
        started = time.monotonic()

        def line(stats):
            worst, table, state = fields(stats)
            typer.echo(f"iteration {stats.iteration}/{iterations}: {stats.records}/{n} records drawn · worst TVD {worst:.4f} ({table}, {state}) · "
                       f"{stats.pool} proposals · {time.monotonic() - started:.1f}s", err=True)

        yield line
        return
    with Progress(
        TextColumn("[bold]iteration"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("· {task.fields[pool]} proposals · worst TVD {task.fields[worst]:.4f} ({task.fields[table]}, {task.fields[state]})"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("synthesis", total=iterations, pool=0, worst=1.0, table="-", state="planned")

        def update(stats):
            worst, table, state = fields(stats)
            bar.update(task, completed=stats.iteration, pool=stats.pool, table=table, worst=worst, state=state)

        yield update


def _os_error(exc: OSError) -> str:
    """``file system error on /x/y.csv: No space left on device`` from an OSError, without the errno noise."""
    name = f" on {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"file system error{name}: {os_reason(exc)}"


def _resume_command(spec_path: Path, out_path: Path | None, given: dict, changes: dict, no_cache: bool) -> str:
    """The exact command that resumes this run: the same spec, paths and overrides, plus --resume."""
    words = ["llmsynthor", "run", str(spec_path)]
    for option, value in (("--out", out_path), *given.items(), *((_OVERRIDE_OPTIONS[k], v) for k, v in changes.items())):
        if value is not None:
            words += [option, str(value)]
    if no_cache:
        words.append("--no-cache")
    return shlex.join([*words, "--resume"])


def _saved(synth, resume: bool, checkpoint_dir: Path | None) -> bool:
    """Whether this run's progress is in ``checkpoint_dir`` (not a stale checkpoint of an earlier run)."""
    ours = resume or (synth is not None and bool(getattr(synth, "history_", None)))
    return ours and checkpoint_dir is not None and checkpoint.exists(checkpoint_dir)


def _interrupted(exc: KeyboardInterrupt, saved: bool, checkpoint_dir: Path | None, command: str, cached: bool) -> None:
    """Ctrl-C or SIGTERM: say where the progress is and the exact command that finishes the run; exit 130 or 143."""
    how, code = _stopped(exc)
    if saved:
        typer.echo(f"llmsynthor: {how}. Progress up to the last finished iteration is saved in {checkpoint_dir}; "
                   f"to finish the run: {command}", err=True)
    else:
        kept = " (LLM answers so far are in the response cache)" if cached else ""
        typer.echo(f"llmsynthor: {how} before the first iteration finished; nothing to resume{kept}: "
                   "run the same command again", err=True)
    raise typer.Exit(code)


@app.command()
def check(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="YAML spec to check."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Check SPEC and its target files without running anything; list the tables.

    A household spec (a 'household' and a 'person' section) is checked as `run` would check it:
    its tables at both levels and per zone, its rules, and its constraints against the tables."""
    from .targets import load_targets

    if _is_households(spec_path, debug):
        from .households.command import check_households

        return _households(check_households, debug, spec_path)
    try:
        spec = load_spec(spec_path)
        targets = load_targets(spec)
        parse_rules(spec)  # realism rules and constraints, checked against the schema and the tables
        _check_constraints(spec, targets)
    except SpecError as exc:
        _fail(exc, debug, 2)
    table = Table(title=f"{spec.source}: {len(targets)} target tables, n = {targets.n}", show_edge=False)
    table.add_column("table")
    table.add_column("variables")
    table.add_column("cells", justify="right")
    for t in targets:
        table.add_row(t.name, " × ".join(t.variables), str(t.counts.size))
    out.print(table)
    for d in targets.inconsistencies:  # only here when synthesis.inconsistent_targets is 'proceed'
        out.print(f"[yellow]targets that disagree or cannot be met (synthesis.inconsistent_targets: proceed):[/] {escape(d.describe())}")


@app.command("spec-format")
def spec_format(
    households: bool = typer.Option(False, "--households", help="The household spec format (households with their persons, zones)."),
) -> None:
    """Print the spec format: every field with its type, default, limits and meaning, and how to write target files."""
    if households:
        from .households.spec_format import household_spec_reference

        typer.echo(household_spec_reference())
        return
    from .spec_format import spec_reference

    typer.echo(spec_reference())


_RECORDS = typer.Argument(..., metavar="RECORDS", help="Synthetic records, .csv or .parquet; for a household spec, the folder `run` wrote (households and persons).")
_SPEC_OF_RECORDS = typer.Option(..., "--spec", help="The spec the records were made for (schema, targets, rules).")
_STRICT = typer.Option(False, "--strict", help="Fail (exit 2) if any value lies outside the spec's domains, instead of scoring it as error.")


def _evaluated(records_path: Path, spec_path: Path, reference_path: Path | None, strict: bool = False):
    """Load a spec, its targets and rules, the records and the reference; evaluate. Raises SpecError.

    With ``strict``, values outside the spec's domains are an error naming variable, count and an
    example; otherwise they are scored as error by the evaluation (and reported)."""
    from .evaluation import evaluate as run_evaluation
    from .records import describe_outside, load_records
    from .targets import load_targets

    spec = load_spec(spec_path)
    targets = load_targets(spec)
    rules = parse_rules(spec)
    schema = spec.record_schema
    records = load_records(records_path, schema, "records")
    reference = load_records(reference_path, schema, "reference") if reference_path else None
    if strict:
        problems = [Problem(str(r.path), "; ".join(describe_outside(name, info, schema) for name, info in r.outside.items())
                            + " (--strict)") for r in (records, reference) if r is not None and r.outside]
        if problems:
            raise SpecError(problems)
    reference_frame = reference.frame if reference is not None else None
    result = run_evaluation(records.frame, targets, reference=reference_frame, rules=rules, seed=spec.seed)
    return spec, targets, records.frame, reference_frame, result


def _print_outside(outside: dict[str, dict], n: int, schema, side: str) -> None:
    """One line per variable with values outside the domain (they count as error in the tables)."""
    from .records import describe_outside

    if not outside:
        return
    out.print(f"[yellow]{side}: values outside the domain[/] (scored as error: a record with one falls in an extra cell "
              "'outside the domain', target 0, of every table over that variable):")
    for name, info in outside.items():
        out.print(escape(f"  {describe_outside(name, info, schema)} — {info['count']:,} of {n:,} records ({info['share']:.2%})"))


def _rule_line(text: str, rates: dict, side: str) -> str:
    """``30.0 % of 120 records with <condition> violate it (1.8 % of all 2,000)`` for one side."""
    condition = text.split("->")[0].strip()
    meets, n, broken = rates[f"{side}_condition_records"], rates[f"{side}_records"], rates[f"{side}_violations"]
    if not meets:
        return f"no record of {n:,} has {condition}"
    return (f"{rates[f'{side}_among_condition']:.1%} of {meets:,} records with {condition} violate it "
            f"({broken:,} records, {rates[side]:.2%} of all {n:,})")


@app.command()
def evaluate(
    records_path: Path = _RECORDS,
    spec_path: Path = _SPEC_OF_RECORDS,
    reference_path: Path | None = typer.Option(None, "--reference", help="A real micro-dataset (.csv/.parquet): enables held-out tables, Wasserstein, C2ST and privacy. For a household spec, a folder of real households and persons like the one run writes: held-out tables of both levels and the truth's own rule rates."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write every figure as JSON here."),
    strict: bool = _STRICT,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Score RECORDS on the targets, off the targets (with --reference) and on the spec's realism rules.

    Realism rules (`rules:` in the spec, e.g. `age < 18 -> education in [Preschool, Elementary]`)
    are used only here, never by the generator; each rate is given among the records that meet
    the rule's condition and among all records. Values outside the spec's domains are reported
    per variable and scored as error (an extra cell "outside the domain" whose target is 0);
    `--strict` fails on them instead. Metric definitions are in the JSON output.
    """

    from .output import check_writable_file, write_json

    if _is_households(spec_path, debug):
        from .households.command import evaluate_folder

        return _households(evaluate_folder, debug, records_path, spec_path, reference_path, json_path, strict)
    try:
        if json_path:
            check_writable_file(json_path, "--json")  # before the evaluation's work
        spec, targets, records, reference, result = _evaluated(records_path, spec_path, reference_path, strict)
    except SpecError as exc:
        _fail(exc, debug, 2)

    table = Table(title=f"on the targets ({len(records)} records)", show_edge=False)
    for col in ("table", "TVD", "JSD", "Hellinger", "SRMSE"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, m in result.on_targets.items():
        table.add_row(name, *(f"{m[k]:.4f}" for k in ("tvd", "jsd", "hellinger", "srmse")))
    out.print(table)
    _print_outside(result.outside_domain, len(records), spec.record_schema, "records")
    _print_numeric(result.numeric_targets)
    summary = result.summary()
    if reference is not None:
        _print_outside(result.reference_outside_domain, len(reference), spec.record_schema, "reference")
        worst = sorted(result.held_out.items(), key=lambda kv: -kv[1]["jsd"])[:5]
        out.print(f"held-out tables: {len(result.held_out)}, mean JSD {summary['heldout_jsd_mean']:.4f}, "
                  f"mean SRMSE {summary['heldout_srmse_mean']:.3f}; worst: " + ", ".join(f"{k} {v['jsd']:.3f}" for k, v in worst))
        out.print("Wasserstein: " + ", ".join(f"{k} {v:.3g}" if v is not None else f"{k} – (no values)" for k, v in result.wasserstein.items()) +
                  f" · C2ST |acc−0.5| {result.c2st:.3f} · distance to closest reference record (median) "
                  f"{result.dcr_median:.3f} (reference to itself {result.dcr_reference_median:.3f})")
    for text, rates in result.rules.items():
        ref = f"; reference: {_rule_line(text, rates, 'reference')}" if rates["reference"] is not None else ""
        out.print(escape(f"rule {text}: {_rule_line(text, rates, 'synthetic')}{ref}"))
    if not result.rules:
        out.print(f"realism {summary['realism']}")
    out.print(f"distinct records {result.distinct_share:.1%} ({result.duplicates} duplicates)")
    if json_path:
        from dataclasses import asdict

        from .evaluation import __doc__ as definitions

        try:
            write_json({**asdict(result), "summary": summary, "definitions": definitions}, json_path, "the evaluation")
        except LLMSynthorError as exc:  # the path was checked before: a runtime fault
            _fail(exc, debug, 1)


@app.command()
def report(
    records_path: Path = _RECORDS,
    spec_path: Path = _SPEC_OF_RECORDS,
    reference_path: Path | None = typer.Option(None, "--reference", help="A real micro-dataset: adds held-out tables, numeric marginals, C2ST. For a household spec, a folder of real households and persons: held-out tables of both levels."),
    manifest_path: Path | None = typer.Option(None, "--manifest", help="The run's manifest (adds convergence and LLM usage). Default: RECORDS with .manifest.json, if it exists (a household folder: its manifest.json)."),
    html_path: Path | None = typer.Option(None, "--out", "-o", help="Where to write the page. Default: RECORDS with .report.html (a household folder: its report.html, which run wrote, written again)."),
    strict: bool = _STRICT,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write a self-contained HTML report for RECORDS: one file that opens offline in a browser.

    It shows target vs synthetic bars for every target table, the convergence of the worst
    discrepancy and the LLM calls, tokens and time (from the manifest), held-out tables and
    numeric marginals against --reference, and the realism rules.

    Example: `llmsynthor report out/ecommerce.csv --spec examples/ecommerce/spec.yaml --reference examples/ecommerce/reference.csv`
    """

    from .output import check_writable_file, read_manifest
    from .report import build_report

    if _is_households(spec_path, debug):
        from .households.command import report_folder

        return _households(report_folder, debug, records_path, spec_path, reference_path, manifest_path, html_path, strict)
    try:
        html_path = html_path or records_path.with_suffix(".report.html")
        check_writable_file(html_path, "report path")  # before any work
        spec, targets, records, reference, result = _evaluated(records_path, spec_path, reference_path, strict)
        default_manifest = records_path.with_suffix(".manifest.json")
        if manifest_path is None and default_manifest.is_file():
            manifest_path = default_manifest
        manifest = read_manifest(manifest_path, ("iterations",)) if manifest_path is not None else None
    except SpecError as exc:
        _fail(exc, debug, 2)
    page = build_report(records, targets, result, manifest=manifest, reference=reference, title=f"llmsynthor report: {spec.name}")
    try:
        html_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        _fail(LLMSynthorError(_os_error(exc)), debug, 1)
    out.print(f"report → {html_path} ({len(page) / 1e6:.1f} MB, self-contained)")


@app.command("suggest-constraints")
def suggest_constraints(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="YAML spec: variables and target tables."),
    max_shown: int = typer.Option(20, "--max", min=1, help="Show (and write with --yaml) at most this many suggestions, the costliest first (a household spec: per level)."),
    threshold: float = typer.Option(ZERO_LIFT, "--threshold", min=0.02, max=1.0,
                                    help="Suggest a combination when the model's lift P(a|c)/P(a) is at most this (lifts are floored at 0.02)."),
    as_yaml: bool = typer.Option(False, "--yaml", help="Print a `constraints:` block ready to paste into the spec on stdout (the tables go to stderr)."),
    llm: str | None = typer.Option(None, "--llm", help="Override llm.backend; it must give token probabilities (embedded does)."),
    base_url: str | None = typer.Option(None, "--base-url", help="Override llm.base_url."),
    model: str | None = typer.Option(None, help="Override llm.model: qwen2.5-coder-1.5b (default), gemma3-270m or a .gguf path."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not answer from, or write to, the response cache."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Suggest constraints for SPEC: combinations of values the model rules out where no table says anything.

    For every pair of variables no target table crosses, the model scores, from its token
    probabilities, how likely each value of one is given each value of the other (the pairwise
    prior `run` uses). Combinations whose lift P(a | c) / P(a) is at most `--threshold` are
    written as constraints in the rules language, ready to paste under `constraints:` (with
    `--yaml`), e.g. `relationship == Husband -> sex != Female`. Each shows the model's lift and
    the share of records it would remove if the two variables were independent (what it costs
    if the model is wrong); the costliest come first.

    **A small model does not know everything: confirm every suggestion before you use it.** To
    help, the model's zeros on the pairs a table *does* cross are checked against that table:
    confirmed (the table has them nearly empty) or contradicted (the table has records there).

    A household spec is scored level by level: pairs of household variables (and derived counts)
    for household constraints, pairs of a person's variables and its household's for person
    constraints; `--yaml` writes both under `constraints:`.

    Example: `llmsynthor suggest-constraints examples/ecommerce/spec.yaml --yaml > suggested.yaml`
    """
    from .copula import PHRASINGS, asking_order, pairs_to_score, prior_levels
    from .llm.base import can_score_options
    from .steps import by_letter
    from .suggest import Suggestions, score_and_suggest

    changes = {"llm.backend": llm, "llm.base_url": base_url, "llm.model": model}
    try:
        if _is_households(spec_path, debug):
            from .households.command import overridden, suggestion_levels
            from .households.spec import load_household_spec

            spec = overridden(load_household_spec(spec_path), changes)
            levels, own, known, keep = suggestion_levels(spec)
            phrasings, settings = ("plain",), None  # household specs have no prior settings: the defaults
        else:
            spec = with_overrides(load_spec(spec_path), changes, _OVERRIDE_OPTIONS)
            parse_rules(spec)
            from .targets import load_targets

            levels = {None: load_targets(spec)}
            own = {None: spec.record_schema.names}
            known = {None: parse_rules(spec, "constraints")}
            keep = {None: None}
            setting = spec.synthesis.prior_phrasing
            phrasings = PHRASINGS if setting == "auto" else (setting,)
            settings = spec.synthesis
        use_cache = not no_cache and spec.llm.cache
        if spec.llm.backend == "embedded":
            from .llm.models import check_cache_folder

            check_cache_folder()
        from .api import make_backend

        err.print(f"connecting to {spec.llm.base_url} ({spec.llm.model}) …" if spec.llm.backend == "openai"
                  else f"loading model {spec.llm.model or 'qwen2.5-coder-1.5b'} …")
        backend = make_backend(spec.llm, cache=use_cache)
        if not can_score_options(backend):
            raise SpecError(Problem(f"{spec.source}: field 'llm'", f"{backend.name} gives no token probabilities, which suggest-constraints "
                                    "reads; use the embedded backend (--llm embedded)"))
        letters = by_letter(settings, backend)
        started, seen = time.monotonic(), {"n": 0, "cached": 0}
        found: dict[str | None, tuple[Suggestions, bool, list[str]]] = {}
        for level, targets in levels.items():
            prior_levels_ = prior_levels(targets)
            free, crossed = (asking_order(pairs, prior_levels_) for pairs in pairs_to_score(targets, prior_levels_))
            on_call = _pair_lines(prior_levels_, free, crossed, phrasings, seen, started, level)
            suggestions = score_and_suggest(targets, backend, threshold, known[level], keep[level], phrasings=phrasings,
                                            letters=letters, on_call=on_call)
            unscored = [v for v in own[level] if v not in prior_levels_]  # a level's own variables only
            found[level] = (suggestions, bool(free), unscored)
    except (SpecError, LLMSynthorError, OSError) as exc:
        _fail_with_code(exc, debug)

    console = err if as_yaml else out
    for level, (suggestions, any_free, unscored) in found.items():
        _print_suggestions(console, suggestions, level, max_shown, threshold, any_free, unscored)
    console.print(f"{seen['n']} option scorings ({seen['cached']} from cache) · {time.monotonic() - started:.1f}s · {backend.name}",
                  soft_wrap=True)
    if as_yaml:
        if None in found:
            typer.echo(found[None][0].as_yaml(max_shown, backend.name), nl=False)
        else:
            from .households.command import constraints_yaml

            typer.echo(constraints_yaml({level: f[0] for level, f in found.items()}, max_shown, backend.name), nl=False)


def _pair_lines(levels, free, crossed, phrasings, seen: dict, started: float, level: str | None):
    """The ``on_call`` of :func:`~llmsynthor.copula.score_prior` that prints one line per pair once its
    last question is answered (the pairs in the order it asks them), and counts scorings in ``seen``."""
    asked = [f"{c} × {a}" + (f" ({ph})" if len(phrasings) > 1 else "") for ph in phrasings for c, a in crossed]
    questions = [(name, levels[name.split(" × ")[0]].axis.size) for name in asked] + \
                [(f"{c} × {a}", levels[c].axis.size) for c, a in free]
    where = f"{level}: " if level else ""
    err.print(f"{where}scoring {len(free)} pairs no table crosses and {len(crossed)} a table crosses "
              f"({sum(k for _, k in questions)} questions) …")
    bounds = np.cumsum([k for _, k in questions])
    offset = seen["n"]

    def on_call(choice) -> None:
        seen["n"] += 1
        seen["cached"] += bool(getattr(choice, "cached", False))
        done = int(np.searchsorted(bounds, seen["n"] - offset))
        if done < len(questions) and seen["n"] - offset == bounds[done]:
            typer.echo(f"{where}pair {done + 1}/{len(questions)} {questions[done][0]}: {questions[done][1]} questions · "
                       f"{time.monotonic() - started:.1f}s", err=True)

    return on_call


def _print_suggestions(console, found, level: str | None, max_shown: int, threshold: float, any_free: bool,
                       unscored: list[str]) -> None:
    """The suggestions of one level (a flat spec: the only one) and the model's zeros where tables know the truth."""
    shown = found.suggestions[:max_shown]
    under = f"constraints.{level}" if level else "constraints"
    table = Table(title=f"suggested {level[:-1] + ' ' if level else ''}constraints: {len(shown)} of {len(found.suggestions)} "
                        f"(model lift ≤ {threshold:g}) — confirm each before use",
                  caption="share removed: of the records, if the two variables were independent (P(c) · P(a) from the targets)",
                  show_edge=False)
    table.add_column("#", justify="right")
    table.add_column(f"constraint (paste under {under}:)", no_wrap=True, overflow="fold")
    table.add_column("model lift", justify="right")
    table.add_column("share removed", justify="right")
    for k, s in enumerate(shown, 1):
        table.add_row(str(k), escape(s.constraint), f"{s.lift:.3f}", f"{s.share:.2%}")
    console.print(table)
    if not any_free:
        console.print("every pair of variables is crossed by a target table: the tables say all there is, nothing to suggest")
    if unscored:
        console.print(escape(f"not scored (no target table gives them two levels or more): {', '.join(unscored)}"))
    if found.checked:
        zeros = Table(title="the model's zeros on pairs a table crosses (where the tables know the truth)", show_edge=False)
        zeros.add_column("combination ruled out by the model", overflow="fold")
        zeros.add_column("model lift", justify="right")
        zeros.add_column("the table says")
        for z in found.checked[:max_shown]:
            zeros.add_row(escape(z.constraint), f"{z.lift:.3f}", escape(z.verdict()))
        console.print(zeros)
        if len(found.checked) > max_shown:
            console.print(f"… and {len(found.checked) - max_shown} more (--max)")
    for note in found.notes:
        console.print(escape(f"note: {note}"))
    console.print((f"{level}: " if level else "") + found.summary(), soft_wrap=True)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # ended as Ctrl-C ends a run: checkpoint kept, resume hint, exit 143
    try:
        app()
    except KeyboardInterrupt as exc:  # `run` reports its own (checkpoint and resume command); this is any other moment
        how, code = _stopped(exc)
        typer.echo(f"llmsynthor: {how}", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
