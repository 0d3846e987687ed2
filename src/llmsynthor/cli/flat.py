"""The commands for a flat spec (``kind: records``): ``run`` (checks first, then the model's work,
checkpointed, then the records and their manifest), ``check``, ``evaluate`` and ``report`` of a
records file, and what ``suggest-constraints`` scores.

Errors of ``run`` are reported here (its checkpoint and resume hints need its paths); the others
propagate to :func:`~llmsynthor.cli.common.guarded`.
"""

from __future__ import annotations

import shlex
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..core.errors import LLMSynthorError, Problem, SpecError
from ..core.rules import parse_rules
from ..declarations.spec import load_spec, with_overrides
from ..shapes.flat import KIND as KIND  # the kind this module runs (cli.registry.ShapeCommands)
from ..shapes.flat import checkpoint
from .common import EXIT_BACKEND, backend_fault, err, fail, os_error, out, say_threads, stopped, warn_slow
from .options import FLAGS, OVERRIDES, RunOptions, Suggesting


def run(spec_path: Path, o: RunOptions) -> None:
    """`run` for a flat spec: the records file, its manifest; the table of distances and the summary line."""
    from ..outputs.files import check_run_paths, write_json, write_records
    from ..shapes.flat.manifest import manifest
    from ..shapes.flat.synthesizer import Synthesizer

    out_path, manifest_path, checkpoint_dir, debug = o.out_path, o.manifest_path, o.checkpoint_dir, o.debug
    no_cache, resume = o.no_cache, o.resume
    changes = o.changes()
    given = {"--manifest": manifest_path, "--checkpoint": checkpoint_dir}  # as the user wrote them, for the resume hint
    spec = synth = None  # for the Ctrl-C message, whenever it comes
    try:
        if o.scenario is not None:
            raise SpecError(Problem("--scenario", "not for a flat spec (what-if scenarios are for trips specs)"))
        spec = with_overrides(load_spec(spec_path), changes, _OVERRIDE_OPTIONS)
        parse_rules(spec)  # a broken realism rule is bad input, before any work (constraints: below)
        out_path = out_path or Path(f"{spec.name}.csv")
        manifest_path = manifest_path or out_path.with_suffix(".manifest.json")
        checkpoint_dir = checkpoint_dir or out_path.with_suffix(".checkpoint")
        from ..declarations.targets import load_targets

        targets = load_targets(spec)
        _check_constraints(spec, targets)  # a constraint that contradicts a table, before the model loads
        # every path the run writes, before the model is loaded and before any LLM call
        use_cache = not no_cache and spec.llm.cache
        if spec.llm.backend == "embedded":
            from ..llm.models import check_cache_folder

            check_cache_folder()
        from ..llm.cache import default_path

        check_run_paths(out_path, manifest_path, checkpoint_dir, default_path() if use_cache else None)
        if resume:
            checkpoint.require(checkpoint_dir, spec.digest(), targets.digests())
        from ..api import make_backend

        err.print(f"connecting to {spec.llm.base_url} ({spec.llm.model}) …" if spec.llm.backend == "openai"
                  else f"loading model {spec.llm.model or 'qwen2.5-coder-1.5b'} …")
        backend = make_backend(spec.llm, cache=use_cache, on_slow=warn_slow)
        say_threads(backend)
        with _progress(targets.n, spec.synthesis.max_iterations) as progress:
            synth = Synthesizer(spec, backend, targets=targets, progress=progress, checkpoint_dir=checkpoint_dir)
            try:
                synth.fit(resume=resume)
            except LLMSynthorError as exc:
                if _saved(synth, resume, checkpoint_dir) and not isinstance(exc, SpecError):
                    exc.args = (f"{exc}\nProgress up to the last finished iteration is saved in {checkpoint_dir}; "
                                f"fix the cause and run: {_resume_command(spec_path, out_path, given, changes, no_cache)}",)
                elif backend_fault(exc) and use_cache:
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
        fail(exc, debug, 2)
    except LLMSynthorError as exc:
        fail(exc, debug, EXIT_BACKEND if backend_fault(exc) else 1)
    except OSError as exc:  # disk full, a file removed mid-run …: one line, the traceback only with --debug
        fail(LLMSynthorError(os_error(exc)), debug, 1)
    except MemoryError:
        fail(LLMSynthorError("ran out of memory; lower n_records (or --n) or synthesis.candidates"), debug, 1)

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


def _check_constraints(spec, targets) -> None:
    """The spec's constraints parsed, and none ruling out a cell a table says exists (SpecError)."""
    from ..core.within_bin import shapes_from_targets
    from ..fitting.joint_candidates import check_constraints

    check_constraints(targets, parse_rules(spec, "constraints"), shapes_from_targets(targets, spec.synthesis.within_bin), spec.source)


_OVERRIDE_OPTIONS = {field: FLAGS[option] for option, field in OVERRIDES.items()}  # spec field -> its option


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
    how, code = stopped(exc)
    if saved:
        typer.echo(f"llmsynthor: {how}. Progress up to the last finished iteration is saved in {checkpoint_dir}; "
                   f"to finish the run: {command}", err=True)
    else:
        kept = " (LLM answers so far are in the response cache)" if cached else ""
        typer.echo(f"llmsynthor: {how} before the first iteration finished; nothing to resume{kept}: "
                   "run the same command again", err=True)
    raise typer.Exit(code)


def _print_numeric(errors: dict[str, dict[str, float]]) -> None:
    """One line per sum/mean target: its largest and mean relative error over the groups."""
    for name, e in errors.items():
        out.print(f"{name}: relative error max {e['max_relative_error']:.2%}, mean {e['mean_relative_error']:.2%}")


def check(spec_path: Path, debug: bool) -> None:
    """`check` for a flat spec: the spec, its targets, rules and constraints; the tables listed."""
    from ..declarations.targets import load_targets

    try:
        spec = load_spec(spec_path)
        targets = load_targets(spec)
        parse_rules(spec)  # realism rules and constraints, checked against the schema and the tables
        _check_constraints(spec, targets)
    except SpecError as exc:
        fail(exc, debug, 2)
    table = Table(title=f"{spec.source}: {len(targets)} target tables, n = {targets.n}", show_edge=False)
    table.add_column("table")
    table.add_column("variables")
    table.add_column("cells", justify="right")
    for t in targets:
        table.add_row(t.name, " × ".join(t.variables), str(t.counts.size))
    out.print(table)
    for d in targets.inconsistencies:  # only here when synthesis.inconsistent_targets is 'proceed'
        out.print(f"[yellow]targets that disagree or cannot be met (synthesis.inconsistent_targets: proceed):[/] {escape(d.describe())}")


def _evaluated(records_path: Path, spec_path: Path, reference_path: Path | None, strict: bool = False):
    """Load a spec, its targets and rules, the records and the reference; evaluate. Raises SpecError.

    With ``strict``, values outside the spec's domains are an error naming variable, count and an
    example; otherwise they are scored as error by the evaluation (and reported)."""
    from ..core.records import describe_outside, load_records
    from ..declarations.targets import load_targets
    from ..evaluation.scoring import evaluate as run_evaluation

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
    from ..core.records import describe_outside

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


def evaluate(records_path: Path, spec_path: Path, reference_path: Path | None, json_path: Path | None, strict: bool,
             debug: bool) -> None:
    """`evaluate` of a records file made for a flat spec."""
    from ..outputs.files import check_writable_file, write_json

    try:
        if json_path:
            check_writable_file(json_path, "--json")  # before the evaluation's work
        spec, targets, records, reference, result = _evaluated(records_path, spec_path, reference_path, strict)
    except SpecError as exc:
        fail(exc, debug, 2)

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

        from ..evaluation.scoring import __doc__ as definitions

        try:
            write_json({**asdict(result), "summary": summary, "definitions": definitions}, json_path, "the evaluation")
        except LLMSynthorError as exc:  # the path was checked before: a runtime fault
            fail(exc, debug, 1)


def report(records_path: Path, spec_path: Path, reference_path: Path | None, manifest_path: Path | None,
           html_path: Path | None, strict: bool, debug: bool) -> None:
    """`report` of a records file made for a flat spec: one self-contained HTML page."""
    from ..outputs.files import check_writable_file, read_manifest
    from ..outputs.report import build_report

    try:
        html_path = html_path or records_path.with_suffix(".report.html")
        check_writable_file(html_path, "report path")  # before any work
        spec, targets, records, reference, result = _evaluated(records_path, spec_path, reference_path, strict)
        default_manifest = records_path.with_suffix(".manifest.json")
        if manifest_path is None and default_manifest.is_file():
            manifest_path = default_manifest
        manifest = read_manifest(manifest_path, ("iterations",)) if manifest_path is not None else None
    except SpecError as exc:
        fail(exc, debug, 2)
    page = build_report(records, targets, result, manifest=manifest, reference=reference, title=f"llmsynthor report: {spec.name}")
    try:
        html_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(LLMSynthorError(os_error(exc)), debug, 1)
    out.print(f"report → {html_path} ({len(page) / 1e6:.1f} MB, self-contained)")


def suggesting(spec_path: Path, changes: dict) -> Suggesting:
    """What `suggest-constraints` scores for a flat spec: its one level, the spec's prior settings."""
    from ..declarations.targets import load_targets
    from ..prior.copula import PHRASINGS

    spec = with_overrides(load_spec(spec_path), changes, _OVERRIDE_OPTIONS)
    parse_rules(spec)
    setting = spec.synthesis.prior_phrasing
    return Suggesting(spec, {None: load_targets(spec)}, {None: spec.record_schema.names}, {None: parse_rules(spec, "constraints")},
                      {None: None}, PHRASINGS if setting == "auto" else (setting,), spec.synthesis)


def constraints_yaml(found: dict, limit: int, model: str) -> str:
    """The `constraints:` block of a flat spec (its one level)."""
    return found[None].as_yaml(limit, model)


def spec_format() -> str:
    from ..declarations.spec_format import spec_reference

    return spec_reference()
