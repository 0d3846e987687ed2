"""The commands for a trips spec: ``run`` (every file checked first, then the model's checked lifts,
candidate days, balancing and one day per person; linked persons and trips, MATSim plans, manifest;
then every scenario beside the baseline), ``check``, ``evaluate`` (the targets and chains of a folder
``run`` wrote; held-out figures against a reference folder) and ``report`` (one offline page, scenarios
beside the baseline).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..core.errors import Problem, SpecError
from ..declarations.spec import apply_changes
from ..shapes.trips import KIND as KIND  # the kind this module runs (cli.registry.ShapeCommands)
from ..shapes.trips.districts import described
from ..shapes.trips.inputs import cells_in_words, read_inputs
from ..shapes.trips.spec import Cancel, Close, Shift, TripsSpec, load
from .common import err, out, progress_bars, run_into_folder, say_threads, warn_slow
from .options import RunOptions, Suggesting

_NOT_FOR_TRIPS = {"n_records": "the persons file says who travels", "manifest_path": "the manifest is manifest.json in the --out folder",
                  "checkpoint_dir": "a trips run keeps the model's answers in the response cache, not a checkpoint",
                  "resume": "a trips run keeps the model's answers in the response cache: run the same command again",
                  "max_iterations": "a trips run has no loop of iterations"}


def overridden(spec: TripsSpec, changes: dict) -> TripsSpec:
    """The spec with command-line overrides (None = keep), validated again."""
    data = apply_changes(spec.model_dump(exclude={"base_dir", "source"}), changes)
    return TripsSpec.validated(data, spec.source, spec.base_dir)


def with_scenario(spec: TripsSpec, text: str | None) -> TripsSpec:
    """The spec with ``--scenario TEXT`` added as the scenario named ``scenario`` (None: as it is)."""
    if text is None:
        return spec
    if any(sc.name == "scenario" for sc in spec.scenarios):
        raise SpecError(Problem("--scenario", "the spec already has a scenario named 'scenario', the name --scenario's goes "
                                              "by; rename the spec's"))
    data = spec.model_dump(exclude={"base_dir", "source"})
    data["scenarios"] = [*data["scenarios"], {"name": "scenario", "text": text}]
    return TripsSpec.validated(data, spec.source, spec.base_dir)


def run_trips(spec: TripsSpec, folder: Path, fmt: str, no_cache: bool) -> None:
    """Run a trips spec end to end, then its scenarios, and print what came out (errors propagate to the caller)."""
    from ..api import make_backend
    from ..llm.cache import default_path
    from ..outputs.files import check_writable_file
    from ..shapes.trips.output import check_output_folder, write_outputs
    from ..shapes.trips.scenario import check_reader, check_scenarios
    from ..shapes.trips.synthesizer import TripSynthesizer

    started = time.perf_counter()
    inputs = read_inputs(spec)
    said = check_scenarios(spec, inputs.zones, model=spec.llm.backend != "none")
    use_cache = not no_cache and spec.llm.cache
    if spec.llm.backend == "embedded":
        from ..llm.models import check_cache_folder

        check_cache_folder()
    check_output_folder(folder, fmt, tuple(sc.name for sc in spec.scenarios), households=inputs.households is not None)
    if use_cache:
        check_writable_file(default_path(), "the response cache", "run with --no-cache to go without it")
    err.print(f"{len(inputs.persons):,} persons, {inputs.trips:,.0f} trips in the tables, {len(inputs.zones):,} zones, "
              f"{len(inputs.tables)} tables · " + ("no model (llm.backend: none)" if spec.llm.backend == "none" else
                                                   f"connecting to {spec.llm.base_url} …" if spec.llm.backend == "openai"
                                                   else f"loading model {spec.llm.model or 'qwen2.5-coder-1.5b'} …"))
    backend = make_backend(spec.llm, cache=use_cache, on_slow=warn_slow)
    for scenario in spec.scenarios:
        if scenario.text is not None:
            check_reader(scenario, backend)  # before the baseline's work, not after
    say_threads(backend)
    with progress_bars() as progress:
        result = TripSynthesizer(spec, backend, inputs=inputs, progress=progress).run()
    paths = write_outputs(spec, inputs, result, backend, folder, fmt, time.perf_counter() - started)
    table = Table(title=f"{len(result.persons):,} persons, {len(result.trips):,} trips → {folder}", show_edge=False)
    table.add_column("target table")
    table.add_column("TVD", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("worst district", justify="right")
    for (name, value), tolerance in zip(result.fit.items(), inputs.tolerance):
        d = result.by_district.get(name)
        table.add_row(escape(name), f"{value:.4f}", f"{tolerance:g}" + ("" if value <= tolerance else " [yellow]over[/yellow]"),
                      escape(described(d)))
    out.print(table)
    if result.beyond_reach:
        out.print(f"beyond reach (met far worse than the other tables after the first round: fitted at their weight, without "
                  f"emphasis, and not waited for): {escape(', '.join(result.beyond_reach))}", soft_wrap=True)
    if result.met_early:
        within = "every table within reach" if result.beyond_reach else "every table"
        out.print(f"{within} within tolerance after round {result.best_round}'s choice: no further rounds, passes or polish")
    check = result.prior.check
    prior = (f"the model's lifts at strength {check.strength:g} ({escape(check.reason)})" if check is not None
             else escape("; ".join(result.prior.notes)))
    out.print(f"prior: {prior}", soft_wrap=True)
    chains = result.chains
    out.print(f"chains: {int(chains.valid.sum()):,} of {len(chains.persons):,} days valid · {result.usage.option_scorings} option "
              f"scorings ({result.usage.seconds:.1f}s) · wall {time.perf_counter() - started:.1f}s · manifest {paths['manifest']}",
              soft_wrap=True)
    for i, scenario in enumerate(spec.scenarios):
        try:
            run_scenario(spec, inputs, result, backend, scenario, said[scenario.name], i, folder, fmt)
        except (Exception, KeyboardInterrupt) as exc:  # the baseline and the scenarios before are on disk: say so
            done = ", ".join(sc.name for sc in spec.scenarios[:i])
            exc.written = f"the baseline in {folder}" + (f" and the scenario(s) {done}" if done else "")
            raise


def run_scenario(spec: TripsSpec, inputs, baseline, backend, scenario, said, index: int, folder: Path, fmt: str) -> None:
    """One scenario beside the written baseline: its change read (the model, checked) or given, shown and written
    before it is applied, then applied (visits added, tours' modes shifted, tours not made, a zone's visits made
    elsewhere), and the scenario's folder written."""
    import numpy as np

    from ..prior.requesting import LLMUsage
    from ..shapes.trips.output import scenario_paths, write_change
    from ..shapes.trips.scenario import SaidClose, SaidShift, ask_close, ask_event, ask_shift

    usage, asked = LLMUsage(), {}
    if scenario.change is not None:
        change, how = scenario.change, "given in the spec"
    else:
        err.print(f"scenario {escape(scenario.name)}: the model reads {escape(repr(scenario.text))} …", soft_wrap=True)
        if isinstance(said, SaidShift):
            change, asked = ask_shift(scenario, said, spec, backend, usage.add_scoring)
            how = "hours and percentage as the text states them; modes, activity and share chosen by the model"
        elif isinstance(said, SaidClose):
            change, asked = ask_close(scenario, said, spec, backend, usage.add_scoring)
            how = "zone and hours as the text states them; the activity chosen by the model"
        else:
            change, asked = ask_event(scenario, said, spec, backend, usage.add_scoring)
            how = "zone, hours and visitors as the text states them; activity, mode and share chosen by the model"
    paths = scenario_paths(folder, scenario.name, fmt)
    write_change(paths["manifest"], spec, scenario, change, how, asked)
    rng = np.random.default_rng([spec.seed, 2, index])
    if isinstance(change, Shift):
        _apply_shift(spec, inputs, baseline, scenario, change, how, asked, rng, folder, fmt, usage, paths)
    elif isinstance(change, Cancel):
        _apply_cancel(spec, inputs, baseline, scenario, change, rng, folder, fmt, usage, paths)
    elif isinstance(change, Close):
        _apply_close(spec, inputs, baseline, scenario, change, how, asked, rng, folder, fmt, usage, paths)
    else:
        _apply_event(spec, inputs, baseline, scenario, change, how, asked, rng, folder, fmt, usage, paths)


def _apply_event(spec, inputs, baseline, scenario, event, how, asked, rng, folder, fmt, usage, paths) -> None:
    from ..shapes.trips.output import write_scenario
    from ..shapes.trips.scenario import add_visits

    out.print(f"scenario {escape(scenario.name)} ({how}): {event.visitors:,} visitors to zone {escape(event.zone)} for "
              f"{escape(event.purpose)}, there in hour {event.start}, back in hour {event.end}, {event.share} by "
              f"{escape(event.mode)}", soft_wrap=True)
    visits = add_visits(event, spec, inputs.zones, baseline.persons, baseline.trips, rng)
    if visits.placed < visits.asked:
        err.print(f"[yellow]scenario {escape(scenario.name)}: only {visits.placed:,} of the {visits.asked:,} visitors could go: "
                  f"{visits.eligible:,} persons are free (their day over before {event.start}:00, room for two more trips "
                  f"within trips.max_trips)[/yellow]", soft_wrap=True)
    write_scenario(spec, inputs, scenario, event, how, asked, visits, baseline, folder, fmt, usage)
    out.print(f"  → {paths['manifest'].parent}: {visits.placed:,} visitors placed, {2 * visits.placed:,} trips added "
              f"(flows that moved: {paths['flows']})", soft_wrap=True)


def _apply_shift(spec, inputs, baseline, scenario, shift, how, asked, rng, folder, fmt, usage, paths) -> None:
    import pandas as pd

    from ..shapes.trips.output import write_shift
    from ..shapes.trips.scenario import shift_modes
    from ..shapes.trips.synthesizer import kinds_of

    scope = escape(shift.in_words())
    out.print(f"scenario {escape(scenario.name)} ({how}): {100 * shift.share:g}% of the tours{scope} go by {escape(shift.to)} "
              "instead", soft_wrap=True)
    people = baseline.persons
    shifted = shift_modes(shift, baseline.trips, rng, pd.Series(kinds_of(spec, people), index=people["person_id"].to_numpy()))
    if shifted.asked == 0:
        err.print(f"[yellow]scenario {escape(scenario.name)}: no tour changes: {shifted.in_scope:,} tours are in scope "
                  f"({scope.strip()}), and {100 * shift.share:g}% of them rounds to none[/yellow]", soft_wrap=True)
    elif shifted.placed < shifted.asked:
        err.print(f"[yellow]scenario {escape(scenario.name)}: only {shifted.placed:,} of the {shifted.asked:,} tours asked could "
                  f"change: {shifted.plausible:,} of the {shifted.in_scope:,} tours in scope are of a band of length the baseline's "
                  f"tours by {escape(shift.to)} travel, no longer than the longest of them, and by persons of a kind that "
                  f"takes {escape(shift.to)} there[/yellow]", soft_wrap=True)
    write_shift(spec, inputs, scenario, shift, how, asked, shifted, baseline, folder, fmt, usage)
    out.print(f"  → {paths['manifest'].parent}: {shifted.placed:,} tours moved to {escape(shift.to)}, "
              f"{int(shifted.trips['shifted'].sum()):,} trips (flows that moved, by mode: {paths['flows']})", soft_wrap=True)


def _apply_cancel(spec, inputs, baseline, scenario, cancel, rng, folder, fmt, usage, paths) -> None:
    from ..shapes.trips.output import write_cancel
    from ..shapes.trips.scenario import cancel_tours

    out.print(f"scenario {escape(scenario.name)} (given in the spec): {100 * cancel.share:g}% of the tours"
              f"{escape(cancel.in_words())} are not made", soft_wrap=True)
    cancelled = cancel_tours(cancel, baseline.persons, baseline.trips, rng)
    if cancelled.asked == 0:
        err.print(f"[yellow]scenario {escape(scenario.name)}: no tour goes: {cancelled.in_scope:,} tours are in scope, and "
                  f"{100 * cancel.share:g}% of them rounds to none[/yellow]", soft_wrap=True)
    write_cancel(spec, inputs, scenario, cancel, cancelled, baseline, folder, fmt, usage)
    out.print(f"  → {paths['manifest'].parent}: {cancelled.asked:,} of {cancelled.in_scope:,} tours not made, "
              f"{len(cancelled.removed):,} trips fewer (flows that moved: {paths['flows']})", soft_wrap=True)


def _apply_close(spec, inputs, baseline, scenario, close, how, asked, rng, folder, fmt, usage, paths) -> None:
    from ..shapes.trips.output import write_close
    from ..shapes.trips.scenario import close_zone

    out.print(f"scenario {escape(scenario.name)} ({how}): {escape(close.in_words())}; they are made elsewhere", soft_wrap=True)
    closed = close_zone(close, spec, inputs.zones, baseline.trips, rng)
    if closed.in_scope == 0:
        err.print(f"[yellow]scenario {escape(scenario.name)}: no visit moves: the baseline has no trip into zone "
                  f"{escape(close.zone)} in the closure's scope[/yellow]", soft_wrap=True)
    elif closed.beyond_reach:
        err.print(f"[yellow]scenario {escape(scenario.name)}: {closed.beyond_reach:,} of the {closed.in_scope:,} visits had no other zone "
                  "within reach of both legs: they went to the zone nearest the closed one[/yellow]", soft_wrap=True)
    write_close(spec, inputs, scenario, close, how, asked, closed, baseline, folder, fmt, usage)
    out.print(f"  → {paths['manifest'].parent}: {closed.in_scope:,} visits made elsewhere, in {len(closed.to_zones):,} zones "
              f"(flows that moved: {paths['flows']})", soft_wrap=True)


# ---- the record shape's commands (llmsynthor.cli.registry)

def run(spec_path: Path, o: RunOptions) -> None:
    """`run` for a trips spec: linked persons and trips in the folder --out (default: the spec's name)."""
    run_into_folder(spec_path, o, shape="trips", not_for=_NOT_FOR_TRIPS, run_body=run_trips,
                    load=lambda path, changes: with_scenario(overridden(load(path), changes), o.scenario),
                    answers="the model's answers so far")


def check(spec_path: Path, debug: bool) -> None:
    """Read and check every file of a trips spec, and say what it holds."""
    spec = load(spec_path)
    inputs = read_inputs(spec)
    table = Table(title=f"{spec.source}: {len(inputs.persons):,} persons, {inputs.trips:,.0f} trips, {len(inputs.zones):,} zones",
                  show_edge=False)
    for column in ("table", "counts", "cells", "total"):
        table.add_column(column)
    for t in inputs.tables:
        table.add_row(escape(t.name), t.level, cells_in_words(t), f"{t.region.sum():,.0f}")
    out.print(table)
    out.print("ok: every file read and checked against the others")


def _not_yet(what: str, meanwhile: str):
    def refuse(*_args, **_kwargs):
        raise SpecError(Problem(f"kind: {KIND}", f"`llmsynthor {what}` is not offered for a trips spec yet; {meanwhile}"))
    return refuse


def evaluate(folder: Path, spec_path: Path, reference: Path | None, json_path: Path | None, strict: bool, debug: bool) -> None:
    """`evaluate` of a trips folder: every target table, the chains, trip lengths; with --reference (a folder of real
    persons.csv and trips.csv in the same columns) held-out pairs, trip length and hour JSD, zone-level CPC and cosine."""
    from ..outputs.files import write_json
    from ..shapes.trips.evaluation import evaluate_trips, read_folder

    spec = load(spec_path)
    inputs = read_inputs(spec)
    persons, trips = read_folder(folder, "output")
    truth = read_folder(reference, "reference") if reference is not None else None
    result = evaluate_trips(spec, inputs, persons, trips, truth)
    table = Table(title=f"{folder}: {result['persons']:,} persons, {result['trips']:,} trips", show_edge=False)
    for column in ("target table", "counts", "TVD", "JS distance", "outside its cells", "worst district"):
        table.add_column(column, justify="left" if column in ("target table", "counts") else "right")
    for name, figures in result["targets"].items():
        table.add_row(escape(name), figures["counts"], f"{figures['tvd']:.4f}", f"{figures['jsd']:.4f}", f"{figures['outside_the_cells']:,}",
                      escape(described(figures["by_district"])))
    out.print(table)
    chains = result["chains"]
    broken = ", ".join(f"{reason} {n}" for reason, n in chains["broken"].items() if n) or "none broken"
    out.print(f"chains: {chains['valid']:,} of {chains['persons_with_trips']:,} days valid ({broken})")
    if "reference" in result:
        r = result["reference"]
        out.print(f"against {reference}: held-out JS distance mean {r['held_out_jsd_mean']:.4f} over {len(r['held_out_jsd'])} pairs · "
                  f"trip length {r['trip_length_jsd']:.4f} · departure hour {r['departure_hour_jsd']:.4f} · zone OD CPC "
                  f"{r['zone_od_cpc']:.3f}, cosine {r['zone_od_cosine']:.3f}", soft_wrap=True)
    if json_path is not None:
        write_json(result, json_path, "the evaluation")
        out.print(f"every figure → {json_path}")


def report(folder: Path, spec_path: Path, reference: Path | None, manifest_path: Path | None, html_path: Path | None,
           strict: bool, debug: bool) -> None:
    """`report` of a trips folder: one offline page — the targets, lengths and hours, flows by period on a map of the
    zones, and every scenario beside the baseline (OUT/scenarios/*); with --reference, the held-out figures too."""
    from ..outputs.files import check_writable_file, read_manifest
    from ..shapes.trips.evaluation import evaluate_trips, read_folder
    from ..shapes.trips.output import baseline_key
    from ..shapes.trips.report import build_trips_report

    spec = load(spec_path)
    inputs = read_inputs(spec)
    persons, trips = read_folder(folder, "output")
    html_path = html_path or folder / "report.html"
    check_writable_file(html_path, "report path")
    manifest_path = manifest_path or (folder / "manifest.json" if (folder / "manifest.json").is_file() else None)
    manifest = read_manifest(manifest_path) if manifest_path is not None else None
    truth = read_folder(reference, "reference") if reference is not None else None
    scenarios = []
    ours = baseline_key(spec, trips) if manifest is None else {"spec_sha256": manifest["spec"]["sha256"], "seed": manifest["seed"],
                                                               "trips": len(trips)}
    for path in sorted((folder / "scenarios").glob("*/manifest.json")):
        try:
            facts = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            facts = {"status": f"unreadable manifest ({exc})"}
        why = (f"its manifest says {facts.get('status')!r}, not 'completed'" if facts.get("status") != "completed"
               else "it was added to another run's baseline (spec, seed or trips differ)" if facts.get("baseline") != ours else None)
        if why:
            err.print(f"[yellow]{escape(str(path.parent))}: left out of the report: {why}; run it again[/yellow]", soft_wrap=True)
            continue
        scenarios.append((facts, read_folder(path.parent, f"scenario {path.parent.name}")[1]))
    result = evaluate_trips(spec, inputs, persons, trips, truth)
    page = build_trips_report(spec, inputs, result, persons, trips, manifest, scenarios, truth)
    html_path.write_text(page, encoding="utf-8")
    out.print(f"report → {html_path} ({len(page) / 1e6:.1f} MB, self-contained"
              + (f"; {len(scenarios)} scenario(s) beside the baseline" if scenarios else "") + ")")


suggesting = _not_yet("suggest-constraints", "a trips spec takes no constraints yet")


def constraints_yaml(found: dict, limit: int, model: str) -> str:
    raise SpecError(Problem(f"kind: {KIND}", "a trips spec takes no constraints yet"))


def spec_format() -> str:
    """The trips spec's reference: the module's example, then every field of every section with its description."""
    from pydantic import BaseModel

    from ..declarations.spec import TableSpec
    from ..declarations.zones import ZoneTableSpec
    from ..shapes.trips import spec as module
    from ..shapes.trips.inputs import UNREAD_TABLE_FIELDS

    lines = [(module.__doc__ or "").split("Knows the declarations only")[0].rstrip(), "", "Every field:"]
    sections = {"": module.TripsSpec, "zones.": ZoneTableSpec, "persons.": module.PersonsFile,
                "households.": module.HouseholdsFile, "trips.": module.TripSettings, "targets[].": TableSpec,
                "scenarios[].": module.Scenario, "scenarios[].event.": module.Event,
                "scenarios[].shift.": module.Shift, "scenarios[].cancel.": module.Cancel, "scenarios[].close.": module.Close}
    for prefix, model in sections.items():
        for name, field in model.model_fields.items():
            if name in ("base_dir", "source", "kind") or field.exclude or (prefix == "targets[]." and name in UNREAD_TABLE_FIELDS):
                continue
            value = None if field.is_required() else field.get_default(call_default_factory=True)
            default = "" if field.is_required() or isinstance(value, BaseModel) else f" (default: {value!r})"
            lines.append(f"  {prefix}{name}: {field.description or ''}{default}")
    return "\n".join(lines) + "\n"


__all__ = ["KIND", "Suggesting", "check", "constraints_yaml", "evaluate", "report", "run", "spec_format", "suggesting"]
