"""A household run's self-contained HTML report: both levels in one file, no network, opens in any browser.

Sections: the summary (with the tables, and the zones of per-zone tables, over the tolerance); the
target tables, households tables and persons tables apart (region figures, per-zone mean and max,
target-vs-synthetic bars at region level, per-zone TVD as a bar per zone); the structure checks by
reason, the household rejection rate and its causes (without rules: that realism is not scored), the
realism rules (with the truth's rates beside when given); the held-out tables against the truth; and
the run, from the manifest (with every control cell no candidate reaches, named). The page's
pieces (tables, number format, numbered plotly figures, style, colours) are every shape's
(:mod:`llmsynthor.outputs.html`); plotly.js is embedded once, so the page works offline.

Every text from the spec or the data (table names, labels, rule texts, zones) is escaped, in the page
and in the plots (plotly reads ``&lt;`` and ``&amp;`` as the characters, and tags as markup).
"""

from __future__ import annotations

import html
from itertools import product

import numpy as np
import pandas as pd

from ...core.levels import LevelTable
from ...core.rules import NOT_SCORED
from ...evaluation.cells import OUTSIDE_LABEL, region_counts
from ...outputs.html import REFERENCE, SYNTHETIC, TARGET, Figures, html_table, outside_table, page
from .controls import HOUSEHOLDS, LEVELS, PERSONS, HouseholdTargets, cell_parts
from .evaluation import HouseholdEvaluation, level_cells, link
from .spec import HouseholdSpec

WORST_HELD_OUT = 30  # held-out tables in the figure (all of them in the table)
CHECKS = {  # structure reason -> what it means (evaluation's module docstring)
    "empty": "a household with no persons",
    "size_mismatch": "members listed differ from the size variable",
    "reference_count": "not exactly one member is the reference person",
    "reference_not_first": "the reference person is not listed first",
    "derived_mismatch": "a derived column differs from the count of its members",
    "outside_domain": "a household or member value outside its variable's domain",
    "unknown_zone": "a zone no target names",
    "duplicate_id": "a household_id seen before",
    "orphan_persons": "persons whose household_id names no household (persons, not households)",
}


def _plot_text(text: object) -> str:
    """Text for a plot: escaped, which plotly shows as the characters (tags would be read as markup)."""
    return html.escape(str(text), quote=False)


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _cell_labels(table: LevelTable) -> list[str]:
    return [" · ".join(cell) for cell in product(*(a.labels for a in table.axes))]


def _synthetic_counts(spec: HouseholdSpec, targets: HouseholdTargets, households: pd.DataFrame,
                      persons: pd.DataFrame) -> dict[str, tuple[np.ndarray, int]]:
    """Every target table's region counts of the output and its records outside the cells, counted as
    the evaluation counts them (linked, derived counts recomputed from the members)."""
    linked = link(spec, targets, households, persons)
    caches: dict = {}
    out = {}
    for table in targets:
        flat, _ = level_cells(linked, table, caches)
        out[table.name] = region_counts(flat, int(np.prod(table.shape)))
    return out


def _bars(table: LevelTable, figures: dict, synthetic: np.ndarray, outside: int, figure: Figures) -> str:
    import plotly.graph_objects as go

    target, labels = table.region.ravel().astype(float), _cell_labels(table)
    if outside:  # records outside the domain or the bins: an extra cell whose target is 0
        synthetic, target, labels = np.append(synthetic, outside), np.append(target, 0.0), [*labels, OUTSIDE_LABEL]
    labels = [_plot_text(label) for label in labels]
    unit = table.level
    fig = go.Figure([
        go.Bar(name="target", x=labels, y=target / max(target.sum(), 1e-300), marker_color=TARGET),
        go.Bar(name="synthetic", x=labels, y=synthetic / max(synthetic.sum(), 1), marker_color=SYNTHETIC),
    ])
    fig.update_layout(title=f"{_plot_text(table.name)} (region) — TVD {figures['tvd']:.4f}, JSD {figures['jsd']:.4f}",
                      barmode="group", xaxis_type="category", yaxis_title=f"share of {unit}",
                      height=380 if len(labels) <= 40 else 460)
    return figure(fig)


def _zone_bars(table: LevelTable, figures: dict, targets: HouseholdTargets, tolerance: float, figure: Figures) -> str:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=[_plot_text(z) for z in targets.zones], y=figures["zones_tvd"], marker_color=SYNTHETIC,
                           name="TVD in the zone"))
    fig.add_hline(y=tolerance, line_dash="dot", annotation_text="tolerance")
    fig.update_layout(title=f"{_plot_text(table.name)}: TVD per zone — mean {figures['zones_tvd_mean']:.4f}, max "
                            f"{figures['zones_tvd_max']:.4f} (zone {_plot_text(figures['worst_zone'])})",
                      xaxis_type="category", xaxis_title="zone", yaxis_title="TVD", height=340)
    return figure(fig)


def _level_section(level: str, targets: HouseholdTargets, evaluation: HouseholdEvaluation,
                   synthetic: dict[str, tuple[np.ndarray, int]] | None, figure: Figures) -> str:
    tables = [t for t in targets if t.level == level]
    head = f'<section id="targets-{level}"><h2>On the targets: {level} tables</h2>'
    if not tables:
        return head + _note(f"No target table counts {level}.") + "</section>"
    tolerance = evaluation.tolerance_tvd
    parts = [_note(f"{len(tables)} table(s) counting {level}; a table is met when its region TVD is at most "
                   f"{tolerance:g}. Tables over derived counts use counts recomputed from the members.")]
    rows = []
    for t in tables:
        m = evaluation.on_targets[t.name]
        rows.append([t.name, " × ".join(t.variables), "per zone" if t.zones is not None else "region",
                     m["tvd"], m["jsd"], m["hellinger"], m["srmse"], m.get("outside", 0),
                     "yes" if t.name not in evaluation.targets_over_tolerance else "no"])
    parts.append(html_table([f"{level} table", "variables", "given", "TVD", "JSD", "Hellinger", "SRMSE",
                         "outside the cells", "met"], rows))
    zoned = [t for t in tables if "zones_tvd_mean" in evaluation.on_targets[t.name]]
    if zoned:
        parts.append(html_table([f"{level} table, over the zones", "TVD mean", "TVD max", "JSD mean", "JSD max", "worst zone",
                             "zones over tolerance"],
                            [[t.name, *(evaluation.on_targets[t.name][k] for k in ("zones_tvd_mean", "zones_tvd_max",
                                                                                   "zones_jsd_mean", "zones_jsd_max",
                                                                                   "worst_zone", "zones_over_tolerance"))]
                             for t in zoned]))
    if synthetic is None:
        parts.append(_note("The households and persons were not given: no target-vs-synthetic bars."))
    for t in tables:
        m = evaluation.on_targets[t.name]
        if synthetic is not None:
            parts.append(_bars(t, m, *synthetic[t.name], figure))
        if "zones_tvd" in m and targets.zones:
            parts.append(_zone_bars(t, m, targets, tolerance, figure))
    return head + "".join(parts) + "</section>"


def _rate(among, condition, overall, records, unit: str) -> list[str]:
    if records is None:
        return ["–", "–"]
    return [f"{among:.1%} of {condition:,}" if among is not None else f"no {unit} meets the condition",
            f"{overall:.2%} of {records:,}"]


def _rules_section(spec: HouseholdSpec, evaluation: HouseholdEvaluation, figure: Figures) -> str:
    import plotly.graph_objects as go

    head = '<section id="realism"><h2>Structure checks and realism rules</h2>'
    truth = evaluation.truth
    n = evaluation.counts[HOUSEHOLDS.name]
    rows = []
    for reason, count in evaluation.structure.items():
        orphans = reason == "orphan_persons"
        share = None if orphans or not n else f"{count / n:.2%}"
        row = [reason, CHECKS.get(reason, ""), count, share]
        if truth is not None:
            row.append(truth["structure"].get(reason))
        rows.append(row)
    parts = [_note("Built-in checks of every household, not spec rules, counted by reason (a household may fail "
                   f"several): {evaluation.structure_households:,} of {n:,} households fail at least one."),
             html_table(["structure check", "what", "households", "share", *(["truth"] if truth is not None else [])], rows)]
    if evaluation.zone_households is not None:
        z = evaluation.zone_households
        parts.append(html_table(["households per zone against the zone totals", ""],
                            [["zones whose count differs", z["zones_off"]], ["largest difference", z["max_abs_difference"]],
                             ["households in unknown zones", z["households_in_unknown_zones"]]]))
    r = evaluation.rejection
    if r["rate"] is None:  # no rules: no rejection rate at all, rather than one of 0 %
        parts.append(_note(f"Realism {html.escape(NOT_SCORED)}: no household rejection rate (the structure checks above "
                           "are no realism score; add household or person rules under <code>rules:</code>)."))
    else:
        def share(value, level):
            return f"{value:.2%}" if value is not None else f"not scored: no {level} rules"

        rejection = [["rejected (any cause)", f"{r['rate']:.2%}", r["households"]],
                     ["a household rule broken", share(r["household_rules"], "household"), None],
                     ["a member breaks a person rule", share(r["person_rules"], "person"), None],
                     ["a structure check failed", f"{r['structure']:.2%}", evaluation.structure_households]]
        if truth is not None:
            rejection.append(["the truth, rejected (any cause)", f"{truth['rejection_rate']:.2%}", None])
        parts.append(_note("The household rejection rate: the share of households that break a household rule, fail a "
                           "structure check, or have a member breaking a person rule (the causes overlap)."))
        parts.append(html_table(["household rejection", "share of households", "households"], rejection))
    if evaluation.outside_domain:
        for level, found in evaluation.outside_domain.items():
            if found:
                count = evaluation.counts[level]
                parts.append(outside_table(found, int(count), spec.joined_schema, level))
    if not evaluation.rules:
        return head + "".join(parts) + "</section>"  # the note above says realism is not scored
    keys, rows = [], []
    numbered = {level.name: 0 for level in LEVELS}
    for text, f in evaluation.rules.items():
        level = f["level"]
        numbered[level] += 1
        key = f"{'H' if level == HOUSEHOLDS.name else 'P'}{numbered[level]}"
        keys.append(key)
        row = [key, text, level, *_rate(f.get("among_condition"), f.get("condition"), f.get("overall"), f.get("records"), level)]
        if truth is not None:
            row += _rate(f.get("truth_among_condition"), f.get("truth_condition"), f.get("truth_overall"),
                         f.get("truth_records"), level)
        rows.append(row)
    rules = list(evaluation.rules.values())
    fig = go.Figure([go.Bar(name="synthetic", x=keys, y=[f.get("among_condition") for f in rules], marker_color=SYNTHETIC,
                            hovertext=[_plot_text(t) for t in evaluation.rules])])
    if any(f.get("truth_records") is not None for f in rules):
        fig.add_trace(go.Bar(name="truth", x=keys, y=[f.get("truth_among_condition") for f in rules], marker_color=REFERENCE,
                             hovertext=[_plot_text(t) for t in evaluation.rules]))
    fig.update_layout(title="Realism rules: share of those meeting each rule's condition that violate it", barmode="group",
                      xaxis_type="category", yaxis_tickformat=".1%", height=360)
    parts.append(_note("Rules from the spec, scored by evaluation only (never shown to the generator): household rules "
                       "(H) over households with their derived counts recomputed from the members, person rules (P) over "
                       "persons with their household's variables. A record violates a rule when it meets the condition and "
                       "not the consequence; each rate is given among those meeting the condition and among all, with its "
                       "denominator."))
    parts.append(figure(fig))
    header = ["#", "rule", "level", "violating, of those meeting the condition", "of all"]
    if truth is not None:
        header += ["truth: of those meeting the condition", "truth: of all"]
    parts.append(html_table(header, rows))
    return head + "".join(parts) + "</section>"


def _held_out_section(evaluation: HouseholdEvaluation, figure: Figures) -> str:
    import plotly.graph_objects as go

    head = '<section id="held-out"><h2>Off the targets (against the truth)</h2>'
    if not evaluation.held_out:
        return head + _note("No truth was given: no held-out tables (the real households and persons, passed to the "
                            "evaluation as the truth, add every 2- and 3-way table no target covers).") + "</section>"
    held = sorted(evaluation.held_out.items(), key=lambda kv: -kv[1]["jsd"])
    names = [level.name for level in LEVELS]
    groups = sorted({(f["level"], f["way"]) for _, f in held}, key=lambda g: (names.index(g[0]) if g[0] in names else 2, g[1]))
    summary = []
    for level, way in groups:
        jsd = [f["jsd"] for _, f in held if f["level"] == level and f["way"] == way]
        tvd = [f["tvd"] for _, f in held if f["level"] == level and f["way"] == way]
        summary.append([level, way, len(jsd), float(np.mean(jsd)), float(np.max(jsd)), float(np.mean(tvd))])
    parts = [_note(f"{len(held)} tables over the household variables, derived counts and person variables that no target "
                   "table covers, compared with the truth on the same bins (households counted when every variable is at "
                   "household level, persons with their household otherwise)."),
             html_table(["level", "way", "tables", "JSD mean", "JSD max", "TVD mean"], summary)]
    worst = held[:WORST_HELD_OUT]
    fig = go.Figure()
    for level, colour in zip(names, (TARGET, SYNTHETIC)):
        mine = [(k, f) for k, f in worst if f["level"] == level]
        if mine:
            fig.add_trace(go.Bar(name=level, x=[_plot_text(k) for k, _ in mine], y=[f["jsd"] for _, f in mine], marker_color=colour))
    fig.update_layout(title=f"Held-out tables: JS distance to the truth ({len(worst)} worst of {len(held)})",
                      barmode="stack", xaxis={"type": "category", "categoryorder": "total descending"}, yaxis_title="JSD",
                      height=440)
    parts.append(figure(fig))
    parts.append("<details><summary>every held-out table, worst first</summary>"
                 + html_table(["held-out table", "level", "way", "TVD", "JSD", "Hellinger", "SRMSE"],
                          [[k, f["level"], f["way"], f["tvd"], f["jsd"], f["hellinger"], f["srmse"]] for k, f in held])
                 + "</details>")
    return head + "".join(parts) + "</section>"


def _by_reason(counts: dict | None, header: str) -> str:
    if not counts:
        return ""
    return html_table([header, "count"], sorted(([k, v] for k, v in counts.items()), key=lambda kv: -kv[1]))


def _run_section(manifest: dict) -> str:
    model, llm, comp = manifest.get("model") or {}, manifest.get("llm") or {}, manifest.get("compositions") or {}
    t, spec = manifest.get("time") or {}, manifest.get("spec") or {}
    cache, transport = manifest.get("cache") or {}, manifest.get("transport") or {}
    rows = [["spec", spec.get("name")], ["spec sha256", spec.get("sha256")], ["seed", manifest.get("seed")],
            ["llmsynthor", manifest.get("llmsynthor_version")], ["status", manifest.get("status")],
            ["backend", model.get("backend")], ["model sha256", model.get("sha256")], ["model load seconds", model.get("load_seconds")],
            ["temperature / top_p / top_k", f"{model.get('temperature')} / {model.get('top_p')} / {model.get('top_k')}"
             if model else None],
            ["LLM calls", llm.get("calls")], ["from cache", llm.get("cache_hits")],
            ["prompt tokens", llm.get("prompt_tokens")], ["prompt tokens evaluated", llm.get("prompt_tokens_evaluated")],
            ["completion tokens", llm.get("completion_tokens")], ["invalid responses", llm.get("invalid_responses")],
            ["LLM seconds", llm.get("seconds")], ["LLM calls per 1,000 households", manifest.get("llm_calls_per_1000_households")],
            ["response cache hits / misses", f"{cache.get('hits')} / {cache.get('misses')}" if cache else None],
            ["transport retries", transport.get("retries")],
            ["structured output fallbacks", transport.get("structured_output_fallbacks")]]
    parts = [html_table(["run", ""], rows)]
    parts.append(html_table(["compositions", ""], [
        ["requested", comp.get("requested")], ["accepted", comp.get("accepted")],
        ["rejected", sum((comp.get("rejected_by_reason") or {}).values())],
        ["variants drawn from each", comp.get("variants_each")], ["filler households", comp.get("filler_households")],
        ["independent households", comp.get("independent_households")]]))
    parts.append(_by_reason(comp.get("rejected_by_reason"), "compositions rejected, by reason"))
    parts.append(_by_reason(comp.get("corrected_by_reason"), "corrections, by reason"))
    sources = manifest.get("households_by_source") or {}
    if sources:
        total = sum(sources.values())
        parts.append(html_table(["output households by source", "households", "share"],
                            [[k, v, f"{v / total:.1%}" if total else None] for k, v in sources.items()]))
    constraints = manifest.get("constraints") or {}
    if constraints:
        left, drawn = constraints.get("left_out") or {}, constraints.get("candidates") or {}
        parts.append(html_table(["constraints (enforced)", "candidates left out"],
                            [[t, constraints.get("by_constraint", {}).get(t, 0)]
                             for t in [*constraints.get(HOUSEHOLDS.name, []), *constraints.get(PERSONS.name, [])]]
                            + [[f"all {k} candidates", f"{left.get(k, 0):,} of {drawn[k]:,}"] for k in drawn if drawn[k]]))
    region = manifest.get("region_balance") or {}
    if region:
        parts.append(html_table(["region balance (list balancing)", ""], [
            ["converged", region.get("converged")], ["iterations", region.get("iterations")],
            ["largest relative error", region.get("max_relative_error")],
            ["control cells no candidate reaches", region.get("unreachable_controls")]]))
        cells = region.get("unreachable_cells") or []
        if cells:
            parts.append(html_table(["control cell no candidate reaches (it stays short)", "table", "target", "given"],
                                [[pairs, c["table"], target, where] for c in cells for pairs, target, where in [cell_parts(c)]]))
    zones = manifest.get("zones") or {}
    if zones:
        by = zones.get("integerized_by") or {}
        parts.append(html_table(["zones", ""], [
            ["zones balanced", zones.get("count")], ["executor / workers", f"{zones.get('executor')} / {zones.get('workers')}"],
            ["integerized by floor / MILP / rounding", " / ".join(str(by.get(m, 0)) for m in ("floor", "milp", "rounding"))],
            ["largest absolute error after integerizing", zones.get("max_abs_error")]]))
    if t:
        parts.append(html_table(["time", "seconds"], [[k, v] for k, v in t.items()]))
    notes = manifest.get("notes") or []
    if notes:
        parts.append("<ul class='note'>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    return '<section id="run"><h2>The run</h2>' + "".join(parts) + "</section>"


def build_household_report(spec: HouseholdSpec, targets: HouseholdTargets, evaluation: HouseholdEvaluation,
                           manifest: dict | None = None, *, households: pd.DataFrame | None = None,
                           persons: pd.DataFrame | None = None, title: str = "llmsynthor household report") -> str:
    """The report as one HTML string (plotly.js embedded; about 5 MB).

    ``households`` and ``persons`` (the linked output) add the target-vs-synthetic bars: the evaluation
    keeps figures, not the cell counts, which are counted again from them as the evaluation counts."""
    figure = Figures()
    synthetic = None if households is None or persons is None else _synthetic_counts(spec, targets, households, persons)
    c = evaluation.counts
    levels = {level.name: sum(t.level == level.name for t in targets) for level in LEVELS}
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        _note(f"{c[HOUSEHOLDS.name]:,} households · {c[PERSONS.name]:,} persons ({c['persons_per_household']:.2f} per household) · "
              f"{c['zones']} zones · {len(targets.tables)} target tables ({levels[HOUSEHOLDS.name]} of households, "
              f"{levels[PERSONS.name]} of persons) · targets: {c['target_households']:,} households, "
              f"{c['target_persons']:,.0f} persons"),
        html_table(["summary", ""], [[k, v] for k, v in evaluation.summary().items()]),
        *(_level_section(level.name, targets, evaluation, synthetic, figure) for level in LEVELS),
        _rules_section(spec, evaluation, figure),
        _held_out_section(evaluation, figure),
    ]
    if manifest:
        sections.append(_run_section(manifest))
    return page(title, sections, figure)
