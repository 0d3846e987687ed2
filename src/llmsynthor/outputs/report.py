"""A self-contained HTML report of one run: one file, no network, opens in any browser.

Sections: summary, every target table as target-vs-synthetic bars, convergence of the worst
discrepancy over iterations and LLM usage (from the run manifest), the held-out tables and
numeric marginals (with a reference micro-dataset), and the realism rules. Plots are plotly
figures; plotly.js is embedded once, so the page works offline. Knows nothing about LLMs beyond
what the manifest records.
"""

from __future__ import annotations

import html
from itertools import product

import numpy as np
import pandas as pd

from ..core.records import inside_domain
from ..core.schema import CategoricalVariable
from ..core.tables import Targets
from ..evaluation.cells import OUTSIDE_LABEL, cell_counts
from ..evaluation.scoring import Evaluation
from .html import REFERENCE, SYNTHETIC, TARGET, Figures, fmt, html_table, outside_table, page


def _target_section(records: pd.DataFrame, targets: Targets, evaluation: Evaluation, figure: Figures) -> str:
    import plotly.graph_objects as go

    parts = [html_table(["target table", "TVD", "JSD", "Hellinger", "SRMSE"],
                    [[name, m["tvd"], m["jsd"], m["hellinger"], m["srmse"]] for name, m in evaluation.on_targets.items()])]
    if evaluation.numeric_targets:
        parts.append(html_table(["sum / mean target", "largest relative error", "mean relative error"],
                            [[name, e["max_relative_error"], e["mean_relative_error"]] for name, e in evaluation.numeric_targets.items()]))
    if evaluation.outside_domain:
        parts.append(outside_table(evaluation.outside_domain, len(records), targets.schema, "records"))
    inside = inside_domain(records, targets.schema)
    for table in targets:
        counts, outside = cell_counts(records, table, inside)
        synthetic, target = counts.ravel(), table.counts.ravel()
        labels = [" · ".join(cell) for cell in product(*(a.labels for a in table.axes))]
        if outside:  # records with a value outside the domain: an extra cell whose target is 0
            synthetic, target, labels = np.append(synthetic, outside), np.append(target, 0.0), [*labels, OUTSIDE_LABEL]
        fig = go.Figure([
            go.Bar(name="target", x=labels, y=target / max(target.sum(), 1e-300), marker_color=TARGET),
            go.Bar(name="synthetic", x=labels, y=synthetic / max(synthetic.sum(), 1), marker_color=SYNTHETIC),
        ])
        m = evaluation.on_targets[table.name]
        fig.update_layout(title=f"{table.name} — TVD {m['tvd']:.4f}, JSD {m['jsd']:.4f}", barmode="group",
                          yaxis_title="share of records", height=380 if len(labels) <= 40 else 460)
        parts.append(figure(fig))
    return "<h2>On the targets</h2>" + "".join(parts)


def _run_section(manifest: dict, figure: Figures) -> str:
    import plotly.graph_objects as go

    iterations = manifest.get("iterations") or []
    parts = []
    if iterations:
        x = [it["iteration"] for it in iterations]
        planned = [it.get("predicted_worst_tvd") for it in iterations]
        drawn = [it["worst_tvd"] if it.get("records") else None for it in iterations]
        fig = go.Figure([go.Scatter(x=x, y=planned, mode="lines+markers", name="best plan from the proposal pool", line={"color": TARGET})])
        if any(d is not None for d in drawn):
            fig.add_trace(go.Scatter(x=x, y=drawn, mode="lines+markers", name="drawn records", line={"color": SYNTHETIC}))
        if manifest.get("tolerance_tvd"):
            fig.add_hline(y=manifest["tolerance_tvd"], line_dash="dot", annotation_text="tolerance")
        fig.update_layout(title="Convergence: worst table TVD per iteration", xaxis_title="iteration",
                          yaxis_title="worst TVD", yaxis_type="log", height=360)
        parts.append(figure(fig))
    llm, t = manifest.get("llm", {}), manifest.get("time", {})
    model = manifest.get("model", {})
    rows = [["backend", model.get("backend")], ["model sha256", model.get("sha256")], ["seed", manifest.get("seed")],
            ["converged", manifest.get("converged")], ["iterations", len(iterations)],
            ["LLM calls", llm.get("calls")], ["from cache", llm.get("cache_hits")],
            ["option scorings (pairwise prior)", llm.get("option_scorings")],
            ["prompt tokens", llm.get("prompt_tokens")], ["prompt tokens evaluated", llm.get("prompt_tokens_evaluated")],
            ["completion tokens", llm.get("completion_tokens")],
            ["invalid responses", llm.get("invalid_responses")], ["accepted proposals", llm.get("accepted_proposals")],
            ["records per LLM call", manifest.get("records_per_llm_call")],
            ["wall seconds", t.get("wall_seconds")], ["LLM seconds", t.get("llm_seconds")], ["non-LLM share", t.get("non_llm_share")]]
    parts.append(html_table(["run", ""], rows))
    corrections = {**(llm.get("rejected_proposals_by_reason") or {}), **(llm.get("corrections_by_reason") or {})}
    if corrections:
        parts.append(html_table(["proposal corrections and rejections", "count"], [[k, v] for k, v in corrections.items()]))
    parts.append(_prior_section(manifest, figure))
    calibration = manifest.get("calibration")
    if calibration:
        pool = calibration.get("joint_pool") or {}
        parts.append(html_table(["calibration over records", ""], [
            ["candidate records", calibration.get("candidates")], ["kept", calibration.get("kept")],
            ["kept from the loop's draw", calibration.get("from_loop")], ["spread", calibration.get("spread")],
            ["kept from the LLM's proposals (records: joint/both)", calibration.get("from_proposals")],
            ["prior-weighted pool (records: joint/both)", pool.get("pool")],
            ["... its effective size after raking", pool.get("effective_size")],
            ["... records ruled out by the prior / by constraints", f"{pool.get('ruled_out_by_prior')} / {pool.get('broke_constraints')}"
             if pool else None],
            ["discrepancy after sampling (records)", calibration.get("l1_after_sampling")],
            ["... after the exact fit", calibration.get("l1_after_exact_fit")],
            ["... after the swaps", calibration.get("l1_after_swaps")]]))
    return "<h2>The run</h2>" + "".join(parts)


def _prior_section(manifest: dict, figure: Figures) -> str:
    """The prior's strength and how it was chosen: error on the crossed tables per strength."""
    import plotly.graph_objects as go

    check = manifest.get("prior_calibration")
    if not check:
        return ""
    parts = [f'<p class="note">records from: {manifest.get("records_from")} · prior strength <b>{check["strength"]:g}</b> on the '
             f"pairs no table crosses — {check.get('reason', '')}</p>"]
    errors = check.get("error_bits_by_strength") or {}
    if errors:
        x = [float(k) for k in errors]
        fig = go.Figure(go.Scatter(x=x, y=list(errors.values()), mode="lines+markers", line={"color": SYNTHETIC},
                                   name="error on the crossed tables"))
        fig.add_vline(x=check["strength"], line_dash="dot", annotation_text="chosen")
        fig.update_layout(title="The model's lifts checked on the tables that cross variables: KL (bits) per strength "
                                "(0 = independence)", xaxis_title="strength (exponent on the lifts)", yaxis_title="error, bits",
                          height=340)
        parts.append(figure(fig))
    constraints = manifest.get("constraints") or []
    rows = [["pairs checked", ", ".join(check.get("pairs_checked") or []) or "none"],
            ["error, independence (bits)", check.get("error_independent")], ["error at the chosen strength", check.get("error_chosen")],
            ["log-lift correlation with the tables", check.get("log_lift_correlation")],
            ["model zeros checked / confirmed share", f"{check.get('zero_cells_checked')} / {fmt(check.get('zero_precision'))}"],
            ["hard zeros applied", check.get("hard_zeros")], ["constraints (enforced)", "; ".join(constraints) or "none"],
            ["plan calls skipped (nothing to decide)", (manifest.get("llm") or {}).get("skipped_plan_calls")]]
    return "<h2>The prior</h2>" + "".join(parts) + html_table(["prior", ""], rows)


def _heldout_section(records: pd.DataFrame, reference: pd.DataFrame, targets: Targets, evaluation: Evaluation, figure: Figures) -> str:
    import plotly.graph_objects as go

    held = sorted(evaluation.held_out.items(), key=lambda kv: -kv[1]["jsd"])
    parts = [f'<p class="note">{len(held)} tables that were not targets, binned like the targets; '
             f"C2ST |accuracy − 0.5| = {fmt(evaluation.c2st)} (0 = indistinguishable); median distance to the closest "
             f"reference record {fmt(evaluation.dcr_median)} (reference to itself {fmt(evaluation.dcr_reference_median)}).</p>"]
    if held:
        fig = go.Figure(go.Bar(x=[k for k, _ in held], y=[v["jsd"] for _, v in held], marker_color=SYNTHETIC, name="JSD"))
        fig.update_layout(title="Held-out tables: JS distance to the reference (worst first)", yaxis_title="JSD", height=420)
        parts.append(figure(fig))
    schema = targets.schema
    for name in schema.names:
        if isinstance(schema[name], CategoricalVariable):
            continue
        fig = go.Figure([go.Histogram(x=reference[name], name="reference", histnorm="probability", opacity=.6, marker_color=REFERENCE, nbinsx=40),
                         go.Histogram(x=records[name], name="synthetic", histnorm="probability", opacity=.6, marker_color=SYNTHETIC, nbinsx=40)])
        fig.update_layout(title=f"{name}: Wasserstein {evaluation.wasserstein.get(name, float('nan')):.3g}", barmode="overlay",
                          yaxis_title="share of records", height=340)
        parts.append(figure(fig))
    if evaluation.reference_outside_domain:
        parts.insert(1, outside_table(evaluation.reference_outside_domain, len(reference), targets.schema, "reference"))
    return "<h2>Off the targets (against the reference)</h2>" + "".join(parts)


def _rule_cells(rates: dict, side: str) -> list[object]:
    if rates.get(f"{side}_records") is None:
        return ["–", "–"]
    among = rates[f"{side}_among_condition"]
    return [f"{among:.1%} of {rates[f'{side}_condition_records']:,}" if among is not None else "no record meets the condition",
            f"{rates[side]:.2%} of {rates[f'{side}_records']:,}"]


def _rules_section(evaluation: Evaluation, figure: Figures) -> str:
    import plotly.graph_objects as go

    names = list(evaluation.rules)

    def among(n, side):
        return evaluation.rules[n].get(f"{side}_among_condition")

    fig = go.Figure([go.Bar(name="synthetic", x=names, y=[among(n, "synthetic") for n in names], marker_color=SYNTHETIC)])
    if any(r["reference"] is not None for r in evaluation.rules.values()):
        fig.add_trace(go.Bar(name="reference", x=names, y=[among(n, "reference") for n in names], marker_color=REFERENCE))
    fig.update_layout(title="Realism rules: share of the records meeting each rule's condition that violate it",
                      barmode="group", yaxis_tickformat=".1%", height=360)
    return ("<h2>Realism rules</h2><p class='note'>Rules from the spec; never shown to the generator. A record violates a rule "
            "when it meets the condition and not the consequence; each rate is given among the records that meet the "
            "condition (the rule's own population) and among all records, with its denominator.</p>" + figure(fig)
            + html_table(["rule", "synthetic: violating, of the records meeting the condition", "synthetic: of all records",
                      "reference: of the records meeting the condition", "reference: of all records"],
                     [[n, *_rule_cells(r, "synthetic"), *_rule_cells(r, "reference")] for n, r in evaluation.rules.items()]))


def build_report(records: pd.DataFrame, targets: Targets, evaluation: Evaluation, *, manifest: dict | None = None,
                 reference: pd.DataFrame | None = None, title: str = "llmsynthor report") -> str:
    """The report as one HTML string (plotly.js embedded; about 5 MB)."""
    figure = Figures()
    summary = evaluation.summary()
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{len(records)} records · {len(targets)} target tables · distinct records '
        f"{evaluation.distinct_share:.1%} ({evaluation.duplicates} duplicates)</p>",
        html_table(["summary", ""], [[k, v] for k, v in summary.items()]),
        _target_section(records, targets, evaluation, figure),
    ]
    if manifest:
        sections.append(_run_section(manifest, figure))
    if reference is not None:
        sections.append(_heldout_section(records, reference, targets, evaluation, figure))
    if evaluation.rules:
        sections.append(_rules_section(evaluation, figure))
    else:  # said, not left out: a reader must not take the missing section for rules all met
        sections.append(f"<h2>Realism rules</h2><p class='note'>Realism {html.escape(summary['realism'])}: the spec's "
                        "<code>rules:</code> list is empty, so no record was checked against one.</p>")
    return page(title, sections, figure)
