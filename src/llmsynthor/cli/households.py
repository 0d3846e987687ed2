"""The commands for a household spec: ``run`` (checks first, then compositions, zones and linked
outputs), ``check``, and ``evaluate`` / ``report`` of the folder a run wrote.

Everything that can be wrong with the input (the spec, its tables, the output folder, the cache
folder) is found before the model loads. Progress is a bar per stage on a terminal, one line per
step otherwise. Errors propagate (SpecError for bad input); the CLI reports them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.table import Table

from ..core.records import describe_outside
from ..declarations.spec import apply_changes
from ..shapes.households import KIND as KIND  # the kind this module runs (cli.registry.ShapeCommands)
from ..shapes.households.constraints import check_constraints
from ..shapes.households.controls import HOUSEHOLDS, LEVELS, PERSONS, describe_cells, load_controls
from ..shapes.households.evaluation import evaluate_households
from ..shapes.households.output import check_output_folder, linked_paths, read_linked, write_outputs
from ..shapes.households.report import build_household_report
from ..shapes.households.spec import HouseholdSpec, load_household_spec, parse_household_spec
from .common import err, out, progress_bars, run_into_folder, say_threads, warn_slow
from .options import RunOptions, Suggesting

SHOWN_RULES = 10  # rules printed by evaluate, the most broken first


def overridden(spec: HouseholdSpec, changes: dict) -> HouseholdSpec:
    """The spec with command-line overrides (``{"seed": 3, "llm.model": ...}``; None = keep), validated again."""
    data = apply_changes(spec.model_dump(exclude={"base_dir", "source"}), changes)
    return parse_household_spec(data, source=spec.source, base_dir=spec.base_dir)


def run_households(spec: HouseholdSpec, folder: Path, fmt: str, no_cache: bool) -> None:
    """Run a household spec end to end and print what came out (errors propagate to the caller)."""
    from ..api import make_backend
    from ..llm.cache import default_path
    from ..outputs.files import check_writable_file
    from ..shapes.households.synthesizer import HouseholdSynthesizer, require_model

    require_model(spec)
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
    backend = make_backend(spec.llm, cache=use_cache, on_slow=warn_slow)
    say_threads(backend)
    with progress_bars() as progress:
        synth = HouseholdSynthesizer(spec, backend, targets=targets, progress=progress, constraints_checked=True)
        result = synth.fit().sample()
    evaluation = evaluate_households(spec, targets, result.households, result.persons)
    paths = write_outputs(spec, result, evaluation, backend, folder, fmt, time.perf_counter() - started, targets=targets)
    summary = evaluation.summary()
    out.print(_on_targets(evaluation, targets, f"{len(result.households):,} households, {len(result.persons):,} persons → {folder}"))
    out.print(escape(summary["over_tolerance"]), soft_wrap=True)
    _print_unreachable(result.unreachable)
    u = result.usage
    out.print(f"{realism_headline(evaluation, 'rules and structure checks')} · "
              f"{result.compositions}/{result.requests} compositions accepted · {u.calls} LLM calls · {u.cache_hits} from cache · "
              f"wall {time.perf_counter() - started:.1f}s (LLM {u.seconds:.1f}s) · manifest {paths['manifest']} · report {paths['report']}", soft_wrap=True)


def realism_headline(evaluation, causes: str) -> str:
    """``household rejection rate 71.3% (causes)`` with rules; without any, that realism is not scored,
    and the structure checks' own count beside (they are no realism score)."""
    summary = evaluation.summary()
    if summary["rejection_rate"] is not None:
        return f"household rejection rate {summary['rejection_rate']:.1%} ({causes})"
    n, failed = evaluation.counts[HOUSEHOLDS.name], evaluation.structure_households
    return (f"realism {summary['realism']} · structure checks failed by {failed:,} of {n:,} households"
            + (f" ({failed / n:.1%})" if n else ""))


def _print_unreachable(cells: list[dict]) -> None:
    """The control cells no candidate household reaches, named (the first ten; the manifest has all)."""
    if not cells:
        return
    out.print(f"control cells no candidate household reaches (they stay short): {len(cells)}")
    for line in describe_cells(cells):
        out.print(escape(f"  {line}"), soft_wrap=True)


def _on_targets(evaluation, targets, title: str) -> Table:
    """Every target table with what it counts and its TVD, for the region and over the zones."""
    table = Table(title=title, show_edge=False)
    for col in ("target table", "counts", "TVD region", "TVD zones (mean / max)"):
        table.add_column(col, justify="left" if col in ("target table", "counts") else "right")
    for t in targets.tables:
        f = evaluation.on_targets[t.name]
        zones = f"{f['zones_tvd_mean']:.4f} / {f['zones_tvd_max']:.4f}" if "zones_tvd_mean" in f else "-"
        table.add_row(t.name, t.level, f"{f['tvd']:.4f}", zones)
    return table


def check_households(spec_path: Path) -> None:
    """``check``: the spec, its controls and rules, its constraints against the tables; the tables listed."""
    spec = load_household_spec(spec_path)
    targets = load_controls(spec)  # every table at its level and per zone, the rules and constraints parsed
    check_constraints(spec, targets, spec.seed)
    zones = f"{len(targets.zones)} zones" if targets.zones else "no zones"
    table = Table(title=f"{spec.source}: {len(targets.tables)} target tables, {targets.households:,.0f} households, "
                        f"{targets.persons:,.0f} persons, {zones}", show_edge=False)
    for col in ("table", "counts", "variables", "where", "cells"):
        table.add_column(col, justify="right" if col == "cells" else "left")
    for t in targets.tables:
        table.add_row(t.name, t.level, " × ".join(t.variables), "per zone" if t.zones is not None else "region",
                      str(t.region.size))
    out.print(table)
    rules, constraints = spec.rules, spec.constraints
    out.print(f"rules (scored only): {len(rules.households)} household, {len(rules.persons)} person · constraints "
              f"(enforced): {len(constraints.households)} household, {len(constraints.persons)} person")


def _evaluated(folder: Path, spec_path: Path, reference: Path | None, strict: bool = False):
    """The spec, its controls, the folder's linked tables and their evaluation (the reference folder's
    households and persons as the truth)."""
    spec = load_household_spec(spec_path)
    targets = load_controls(spec)
    households, persons = read_linked(folder, spec, strict=strict)
    truth = read_linked(reference, spec, "reference", strict=strict) if reference is not None else None
    return spec, targets, households, persons, evaluate_households(spec, targets, households, persons, truth=truth)


def evaluate_folder(folder: Path, spec_path: Path, reference: Path | None = None, json_path: Path | None = None,
                    strict: bool = False) -> None:
    """``evaluate``: the folder a run wrote, on both levels' targets, the rules and (with a reference
    folder alike) the held-out tables; every figure as JSON with ``json_path``. Values outside the
    spec's domains are scored as error and listed (``strict``: an error)."""
    from ..outputs.files import check_writable_file, write_json

    if json_path:
        check_writable_file(json_path, "--json")  # before the evaluation's work
    spec, targets, _, _, result = _evaluated(folder, spec_path, reference, strict)
    out.print(_on_targets(result, targets, f"on the targets ({result.counts[HOUSEHOLDS.name]:,} households, "
                                           f"{result.counts[PERSONS.name]:,} persons)"))
    summary = result.summary()
    out.print(escape(summary["over_tolerance"]), soft_wrap=True)  # the region's tables, and the zones of per-zone tables
    if result.zone_households is not None and result.zone_households["zones_off"]:
        z = result.zone_households
        out.print(f"households per zone: {z['zones_off']} zones off their total (at most {z['max_abs_difference']}), "
                  f"{z['households_in_unknown_zones']} households in a zone no table names")
    schemas = {HOUSEHOLDS.name: spec.household_schema, PERSONS.name: spec.person_schema}
    for level, variables in result.outside_domain.items():
        for name, info in variables.items():  # scored as error: the household fails a structure check
            out.print(escape(f"{level}: {describe_outside(name, info, schemas[level])} — {info['count']:,} "
                             f"({info['share']:.2%}), scored as error"), soft_wrap=True)
    problems = {k: v for k, v in result.structure.items() if v}
    out.print(realism_headline(result, "a household rule broken, a member breaking a person rule, or a structure check failed")
              + " · structure problems: " + (", ".join(f"{k} {v:,}" for k, v in problems.items()) or "none"), soft_wrap=True)
    broken = [(text, f) for text, f in sorted(result.rules.items(), key=lambda kv: -kv[1]["overall"]) if f["violations"]]
    for text, f in broken[:SHOWN_RULES]:
        truth = f" (reference {f['truth_overall']:.2%})" if f.get("truth_overall") is not None else ""
        out.print(escape(f"rule {text}: broken by {f['violations']:,} {f['level']}, {f['overall']:.2%}{truth}"), soft_wrap=True)
    if len(broken) > SHOWN_RULES:
        out.print(f"… and {len(broken) - SHOWN_RULES} more rules broken (--json lists every figure)")
    for way in (2, 3):
        values = [f["jsd"] for f in result.held_out.values() if f["way"] == way]
        if values:
            out.print(f"held-out {way}-way tables: {len(values)}, mean JS distance {np.mean(values):.4f}")
    if json_path:
        write_json(result.as_dict(), json_path, "the evaluation")


def report_folder(folder: Path, spec_path: Path, reference: Path | None = None, manifest_path: Path | None = None,
                  html_path: Path | None = None, strict: bool = False) -> None:
    """``report``: the HTML report of the folder a run wrote (with its manifest.json when there)."""
    from ..outputs.files import check_writable_file, read_manifest

    linked_paths(folder)  # the folder is there, before the report path (whose folder would be made) is checked
    html_path = html_path or folder / "report.html"
    check_writable_file(html_path, "report path")
    manifest_path = manifest_path or (folder / "manifest.json" if (folder / "manifest.json").is_file() else None)
    manifest = read_manifest(manifest_path) if manifest_path is not None else None
    spec, targets, households, persons, result = _evaluated(folder, spec_path, reference, strict)
    page = build_household_report(spec, targets, result, manifest, households=households, persons=persons,
                                  title=f"llmsynthor household report: {spec.name}")
    html_path.write_text(page, encoding="utf-8")
    out.print(f"report → {html_path} ({len(page) / 1e6:.1f} MB, self-contained)")


def suggestion_levels(spec: HouseholdSpec):
    """What ``suggest-constraints`` scores for a household spec, level by level: the flat targets of
    each level's region tables, the level's own variables, the constraints it declares already, and
    which pairs its suggestions may name (a person constraint names a person variable; two household
    variables are the household level's business)."""
    from ..shapes.households.constraints import parsed
    from ..shapes.households.controls import level_targets

    controls = load_controls(spec)  # rules and constraints parsed with the tables
    levels = {level.name: level_targets(spec, controls, level.name) for level in LEVELS}
    own = {HOUSEHOLDS.name: spec.household_schema.names, PERSONS.name: spec.person_schema.names}
    known = dict(zip((level.name for level in LEVELS), parsed(spec)))
    person = set(spec.person.variables)
    keep = {HOUSEHOLDS.name: None, PERSONS.name: lambda c, a: c in person or a in person}
    return levels, own, known, keep


def constraints_yaml(found: dict, limit: int, model: str) -> str:
    """A household spec's ``constraints:`` block from each level's
    :class:`~llmsynthor.prior.suggest.Suggestions`: one list per level, each item with its evidence."""
    first = next(iter(found.values()))
    lines = [*first.header(model), "constraints:"]
    for level, suggestions in found.items():
        items = suggestions.items(limit)
        lines += [f"  # {level}: {suggestions.summary()}", f"  {level}:" + ("" if items else " []"), *(f"    {i}" for i in items)]
    return "\n".join(lines) + "\n"


# ---- the record shape's commands (llmsynthor.cli.registry)

_NOT_FOR_HOUSEHOLDS = {"n_records": "set n_households in the spec", "manifest_path": "the manifest is manifest.json in the --out folder",
                       "checkpoint_dir": "a household run keeps its compositions in the response cache, not a checkpoint",
                       "resume": "a household run keeps its compositions in the response cache: run the same command again",
                       "max_iterations": "a household run has no loop of iterations (synthesis.compositions sets the model's work)",
                       "scenario": "what-if scenarios are for trips specs"}


def run(spec_path: Path, o: RunOptions) -> None:
    """`run` for a household spec: linked households and persons in the folder --out (default: the spec's name)."""
    run_into_folder(spec_path, o, shape="household", not_for=_NOT_FOR_HOUSEHOLDS, run_body=run_households,
                    load=lambda path, changes: overridden(load_household_spec(path), changes),
                    answers="the compositions answered so far")


def check(spec_path: Path, debug: bool) -> None:
    check_households(spec_path)


def evaluate(folder: Path, spec_path: Path, reference: Path | None, json_path: Path | None, strict: bool, debug: bool) -> None:
    evaluate_folder(folder, spec_path, reference, json_path, strict)


def report(folder: Path, spec_path: Path, reference: Path | None, manifest_path: Path | None, html_path: Path | None,
           strict: bool, debug: bool) -> None:
    report_folder(folder, spec_path, reference, manifest_path, html_path, strict)


def suggesting(spec_path: Path, changes: dict) -> Suggesting:
    """What `suggest-constraints` scores for a household spec: each level (:func:`suggestion_levels`);
    household specs have no prior settings (the defaults, the plain phrasing)."""
    spec = overridden(load_household_spec(spec_path), changes)
    return Suggesting(spec, *suggestion_levels(spec), ("plain",), None)


def spec_format() -> str:
    from ..shapes.households.spec_format import household_spec_reference

    return household_spec_reference()
