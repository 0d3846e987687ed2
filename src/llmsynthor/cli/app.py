"""The ``llmsynthor`` command: one entry point per command, dispatched once to the spec's record
shape (:mod:`llmsynthor.cli.registry`). Exit statuses: :mod:`llmsynthor.cli.common`.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from ..core.errors import LLMSynthorError, Problem, SpecError
from ..prior.tempering import ZERO_LIFT
from .common import err, fail_with_code, guarded, on_sigterm, out, stopped
from .options import RunOptions
from .registry import SHAPES, shape_of

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
    scenario: str | None = typer.Option(None, "--scenario", help="Trips specs: a what-if in words, run beside the baseline (same seed) into OUT/scenarios/scenario, e.g. \"a concert in zone 1210 from 20:00 to 23:00 draws 500 visitors, most by transit\": name the zone as 'zone ID', the hours and the number of visitors; the model reads the activity and modes. A text naming no zone and no number of people changes modes, e.g. \"a transit strike: half of the transit riders drive alone instead\" (optionally two times: the hours tours leave home in; a percentage: the share); the model reads which modes. A text naming a zone and a word of closing closes it, e.g. \"the shopping mall in zone 1122 is closed from 10:00 to 20:00\": its visits are made elsewhere; the model reads which activity. The spec's own `scenarios:` run too."),
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
    o = RunOptions(out_path, manifest_path, checkpoint_dir, seed, n_records, llm, base_url, model, concurrency, threads,
                   max_iterations, no_cache, resume, debug, scenario)
    guarded(lambda: shape_of(spec_path).run(spec_path, o), debug)


@app.command()
def check(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="YAML spec to check."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Check SPEC and its target files without running anything; list the tables.

    A household spec (a 'household' and a 'person' section) is checked as `run` would check it:
    its tables at both levels and per zone, its rules, and its constraints against the tables."""
    guarded(lambda: shape_of(spec_path).check(spec_path, debug), debug)


@app.command("spec-format")
def spec_format(
    households: bool = typer.Option(False, "--households", help="The household spec format (households with their persons, zones)."),
    trips: bool = typer.Option(False, "--trips", help="The trips spec format (given persons' days of trips between zones)."),
) -> None:
    """Print the spec format: every field with its type, default, limits and meaning, and how to write target files."""
    typer.echo(SHAPES["households" if households else "trips" if trips else "records"].spec_format())


_RECORDS = typer.Argument(..., metavar="RECORDS", help="Synthetic records, .csv or .parquet; for a household or trips spec, the folder `run` wrote (households and persons; persons and trips).")
_SPEC_OF_RECORDS = typer.Option(..., "--spec", help="The spec the records were made for (schema, targets, rules).")
_STRICT = typer.Option(False, "--strict", help="Fail (exit 2) if any value lies outside the spec's domains, instead of scoring it as error.")


@app.command()
def evaluate(
    records_path: Path = _RECORDS,
    spec_path: Path = _SPEC_OF_RECORDS,
    reference_path: Path | None = typer.Option(None, "--reference", help="A real micro-dataset (.csv/.parquet): enables held-out tables, Wasserstein, C2ST and privacy. For a household spec, a folder of real households and persons like the one run writes: held-out tables of both levels and the truth's own rule rates. For a trips spec, a folder of real persons and trips: held-out pairs, trip lengths, hours, zone flows (CPC)."),
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

    guarded(lambda: shape_of(spec_path).evaluate(records_path, spec_path, reference_path, json_path, strict, debug), debug)


@app.command()
def report(
    records_path: Path = _RECORDS,
    spec_path: Path = _SPEC_OF_RECORDS,
    reference_path: Path | None = typer.Option(None, "--reference", help="A real micro-dataset: adds held-out tables, numeric marginals, C2ST. For a household spec, a folder of real households and persons: held-out tables of both levels. For a trips spec, a folder of real persons and trips: held-out figures, lengths and hours beside them."),
    manifest_path: Path | None = typer.Option(None, "--manifest", help="The run's manifest (adds convergence and LLM usage). Default: RECORDS with .manifest.json, if it exists (a household or trips folder: its manifest.json)."),
    html_path: Path | None = typer.Option(None, "--out", "-o", help="Where to write the page. Default: RECORDS with .report.html (a household or trips folder: its report.html)."),
    strict: bool = _STRICT,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write a self-contained HTML report for RECORDS: one file that opens offline in a browser.

    It shows target vs synthetic bars for every target table, the convergence of the worst
    discrepancy and the LLM calls, tokens and time (from the manifest), held-out tables and
    numeric marginals against --reference, and the realism rules. For a trips folder: trip
    lengths and hours, the flows between districts by period on a map of the zones, and every
    scenario the run wrote (OUT/scenarios/*) beside the baseline.

    Example: `llmsynthor report out/ecommerce.csv --spec examples/ecommerce/spec.yaml --reference examples/ecommerce/reference.csv`
    """

    guarded(lambda: shape_of(spec_path).report(records_path, spec_path, reference_path, manifest_path, html_path, strict, debug),
            debug)


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
    from ..llm.base import can_score_options
    from ..prior.copula import asking_order, by_letter, pairs_to_score, prior_levels
    from ..prior.suggest import Suggestions, score_and_suggest

    changes = {"llm.backend": llm, "llm.base_url": base_url, "llm.model": model}
    try:
        shape = shape_of(spec_path)
        s = shape.suggesting(spec_path, changes)
        spec, levels, own, known, keep, phrasings, settings = s.spec, s.levels, s.own, s.known, s.keep, s.phrasings, s.settings
        use_cache = not no_cache and spec.llm.cache
        if spec.llm.backend == "embedded":
            from ..llm.models import check_cache_folder

            check_cache_folder()
        from ..api import make_backend

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
        fail_with_code(exc, debug)

    console = err if as_yaml else out
    for level, (suggestions, any_free, unscored) in found.items():
        _print_suggestions(console, suggestions, level, max_shown, threshold, any_free, unscored)
    console.print(f"{seen['n']} option scorings ({seen['cached']} from cache) · {time.monotonic() - started:.1f}s · {backend.name}",
                  soft_wrap=True)
    if as_yaml:
        typer.echo(shape.constraints_yaml({level: f[0] for level, f in found.items()}, max_shown, backend.name), nl=False)



def _pair_lines(levels, free, crossed, phrasings, seen: dict, started: float, level: str | None):
    """The ``on_call`` of :func:`~llmsynthor.prior.copula.score_prior` that prints one line per pair once its
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
    signal.signal(signal.SIGTERM, on_sigterm)  # ended as Ctrl-C ends a run: checkpoint kept, resume hint, exit 143
    try:
        app()
    except KeyboardInterrupt as exc:  # `run` reports its own (checkpoint and resume command); this is any other moment
        how, code = stopped(exc)
        typer.echo(f"llmsynthor: {how}", err=True)
        sys.exit(code)
