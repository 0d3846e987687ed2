"""The household run's HTML report: both levels apart, every target table, structure reasons, rules and
held-out tables, escaped labels, written by ``write_outputs`` beside the linked tables, and opened in real
headless Chromium, where every plot must render and the console must stay free of errors. No LLM: the
SEMCOG example scored on the bench's baselines (independent margins, IPF as the truth), and a whole run
with the schema-driven fake of test_household_compose."""

from __future__ import annotations

import html
import json
import re
import sys

import pytest
from browser import render
from conftest import ROOT
from test_household_compose import SchemaLLM, two_zones

from llmsynthor.core.errors import SpecError
from llmsynthor.shapes.households.controls import load_controls
from llmsynthor.shapes.households.evaluation import REASONS, evaluate_households
from llmsynthor.shapes.households.output import check_output_folder, output_paths, write_outputs
from llmsynthor.shapes.households.report import build_household_report
from llmsynthor.shapes.households.spec import load_household_spec, parse_household_spec
from llmsynthor.shapes.households.synthesizer import HouseholdSynthesizer

sys.path.insert(0, str(ROOT / "bench"))
import household_baselines as baselines  # noqa: E402

PLOTS = re.compile(r"data-plots='(\d+)'")


def section(page: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert match, f"no section {name!r}"
    return match.group(1)


def figures(page: str) -> list[dict]:
    """Every plotly figure of the page read through its JSON (plotly may write any character as a
    \\u escape): ``{"id", "data", "layout"}`` in page order."""
    decoder, out = json.JSONDecoder(), []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        layout, _ = decoder.raw_decode(page, re.compile(r"\s*,\s*").match(page, end).end())
        out.append({"id": match.group(1), "data": data, "layout": layout})
    return out


def titles(page: str) -> list[str]:
    return [f["layout"]["title"]["text"] for f in figures(page)]


def texts(value) -> list[str]:
    """Every string inside a figure's JSON."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return [value] if isinstance(value, str) else []


def visible(page: str) -> str:
    """The page without its scripts (plotly.js, the figures' data)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


@pytest.fixture(scope="module")
def semcog():
    """The SEMCOG example: independent margins scored against IPF's households as the truth."""
    spec = load_household_spec(ROOT / "examples" / "households" / "spec.yaml")
    targets = load_controls(spec)
    households, persons = baselines.independent(spec, targets, seed=0)
    truth = baselines.ipf_households(spec, targets, seed=0)
    evaluation = evaluate_households(spec, targets, households, persons, truth=truth)
    page = build_household_report(spec, targets, evaluation, households=households, persons=persons, title="SEMCOG <test>")
    return spec, targets, evaluation, page


def test_each_level_has_its_section_naming_its_target_tables(semcog):
    spec, targets, evaluation, page = semcog
    levels = {level: [t.name for t in targets if t.level == level] for level in ("households", "persons")}
    assert levels["households"] and levels["persons"]
    for level, names in levels.items():
        own, other = section(page, f"targets-{level}"), section(page, f"targets-{'persons' if level == 'households' else 'households'}")
        assert f"{level} tables" in own
        for name in names:
            assert f"<td>{name}</td>" in own and f"<td>{name}</td>" not in other
            assert any(t.startswith(f"{name} (region) — TVD {evaluation.on_targets[name]['tvd']:.4f},")
                       for t in titles(own))  # its bar chart
    zoned = [t.name for t in targets if t.zones is not None]
    assert len(zoned) == 4
    for name in zoned:
        f = evaluation.on_targets[name]
        assert any(t.startswith(f"{name}: TVD per zone — mean {f['zones_tvd_mean']:.4f}") for t in titles(page))
        assert f"<td>{f['zones_tvd_max']:.4f}</td>" in page
    assert "<h1>SEMCOG &lt;test&gt;</h1>" in page and "<title>SEMCOG &lt;test&gt;</title>" in page
    assert f"{evaluation.counts['households']:,} households" in page and "46 zones" in page and "12 target tables" in page
    for key in evaluation.summary():
        assert f"<td>{key}</td>" in page
    summary = evaluation.summary()  # the headlines, as run and evaluate print them
    assert f"<td>over_tolerance</td><td>{html.escape(summary['over_tolerance'])}</td>" in page
    assert summary["over_tolerance"].startswith("tables over tolerance (region TVD > 0.01): ")
    assert "<td>realism</td><td>scored: 21 rules</td>" in page


def test_structure_reasons_rejection_and_every_rule_escaped_with_the_truth_beside(semcog):
    spec, targets, evaluation, page = semcog
    realism = section(page, "realism")
    for reason in [*REASONS, "orphan_persons"]:
        assert f"<td>{reason}</td>" in realism
    assert f"{evaluation.rejection['rate']:.2%}" in realism and "the truth, rejected (any cause)" in realism
    texts = [*spec.rules.households, *spec.rules.persons]
    assert len(texts) == len(evaluation.rules) == 21
    for text in texts:
        assert f"<td>{html.escape(text)}</td>" in realism
        assert text not in visible(page) or not set(text) & set("<>&")  # never raw: "age < 5 -> ..."
    rule = evaluation.rules["age < 16 -> employment == under 16"]
    mine = f"{rule['among_condition']:.1%} of {rule['condition']:,}"
    theirs = f"{rule['truth_among_condition']:.1%} of {rule['truth_condition']:,}"
    assert f"<td>{mine}</td><td>{rule['overall']:.2%} of {rule['records']:,}</td><td>{theirs}</td>" in realism
    assert "truth: of those meeting the condition" in realism


def test_held_out_tables_and_the_figures_count(semcog):
    spec, targets, evaluation, page = semcog
    held = section(page, "held-out")
    assert evaluation.held_out
    assert f"{len(evaluation.held_out)} tables" in held
    worst = max(evaluation.held_out, key=lambda k: evaluation.held_out[k]["jsd"])
    assert f"<td>{html.escape(worst)}</td>" in held
    # a bar chart per target table, a per-zone TVD chart per zoned table, the rules, the held-out tables
    expected = len(targets.tables) + sum(t.zones is not None for t in targets) + 2
    assert PLOTS.search(page).group(1) == str(expected) == str(page.count('<div class="plot">'))
    assert page.count("<script>") - 1 == expected and "function" in page.split("<script>")[1][:2000]  # plotly.js once
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*\shref=\"?https?:", page)  # nothing loaded from the network


def test_without_truth_or_frames_the_report_says_so(semcog):
    spec, targets, _, _ = semcog
    households, persons = baselines.independent(spec, targets, seed=1)
    evaluation = evaluate_households(spec, targets, households, persons)
    page = build_household_report(spec, targets, evaluation)
    assert "No truth was given" in section(page, "held-out")
    assert "no target-vs-synthetic bars" in page
    assert PLOTS.search(page).group(1) == "5"  # the per-zone TVD of 4 zoned tables and the rules
    assert 'id="run"' not in page


TINY = {
    "name": "tiny",
    "household": {"size": "size", "variables": {
        "size": {"type": "integer", "min": 1, "max": 3},
        "tenure": {"type": "categorical", "values": ["<b>own</b>", "R&D rent"]}}},
    "person": {"reference": "relationship == head", "variables": {
        "age": {"type": "integer", "min": 0, "max": 99},
        "relationship": {"type": "categorical", "values": ["head", "child"]}}},
    "targets": [
        {"name": "tenure <&> size", "variables": ["tenure"], "cells": [{"tenure": "<b>own</b>", "count": 2},
                                                                       {"tenure": "R&D rent", "count": 1}]},
        {"name": "age", "variables": ["age"], "cells": [{"age": "[0,18)", "count": 1}, {"age": "[18,99]", "count": 3}]},
    ],
    "rules": {"households": ["tenure == R&D rent -> size <= 2"], "persons": ["relationship == child -> age < 30"]},
}


def test_labels_with_markup_and_ampersands_are_escaped_in_the_page_and_the_plots():
    import pandas as pd

    spec = parse_household_spec(TINY)
    targets = load_controls(spec)
    households = pd.DataFrame({"household_id": [1, 2, 3], "size": [1, 2, 1], "tenure": ["<b>own</b>", "<b>own</b>", "R&D rent"]})
    persons = pd.DataFrame({"household_id": [1, 2, 2, 3], "person_id": [1, 2, 3, 4], "member": [0, 0, 1, 0],
                            "age": [40, 35, 5, 70], "relationship": ["head", "head", "child", "head"]})
    evaluation = evaluate_households(spec, targets, households, persons)
    page = build_household_report(spec, targets, evaluation, households=households, persons=persons)
    plotted = [t for f in figures(page) for t in texts(f)]
    for raw in ("tenure <&> size", "<b>own</b>", "R&D rent", "age < 30"):
        assert raw not in visible(page), raw  # not in the HTML
        assert not any(raw in t for t in plotted), raw  # nor in the plots' data (plotly would read the tags)
    assert "<td>tenure &lt;&amp;&gt; size</td>" in page and "<td>tenure == R&amp;D rent -&gt; size &lt;= 2</td>" in page
    bars = next(f for f in figures(page) if f["layout"]["title"]["text"].startswith("tenure &lt;&amp;&gt; size (region)"))
    assert bars["data"][0]["x"] == ["&lt;b&gt;own&lt;/b&gt;", "R&amp;D rent"]  # the labels, escaped as plotly decodes them
    assert PLOTS.search(page).group(1) == "3"  # two tables (no zones) and the rules
    households.loc[2, "tenure"] = "<i>squat</i>"  # outside the domain: counted, and an extra cell of the bars
    evaluation = evaluate_households(spec, targets, households, persons)
    page = build_household_report(spec, targets, evaluation, households=households, persons=persons)
    assert "<i>squat</i>" not in page and "&#x27;&lt;i&gt;squat&lt;/i&gt;&#x27;" in page  # the example value, escaped
    assert "<th>variable (households)</th>" in page
    bars = next(f for f in figures(page) if f["layout"]["title"]["text"].startswith("tenure &lt;&amp;&gt; size (region)"))
    assert bars["data"][0]["x"][-1] == "outside the domain"


def test_without_rules_the_report_says_realism_is_not_scored_and_shows_no_rejection_rate():
    import pandas as pd

    spec = parse_household_spec({k: v for k, v in TINY.items() if k != "rules"})
    targets = load_controls(spec)
    households = pd.DataFrame({"household_id": [1, 2, 3], "size": [1, 2, 2], "tenure": ["<b>own</b>", "<b>own</b>", "R&D rent"]})
    persons = pd.DataFrame({"household_id": [1, 2, 2, 3], "person_id": [1, 2, 3, 4], "member": [0, 0, 1, 0],
                            "age": [40, 35, 5, 70], "relationship": ["head", "head", "child", "head"]})  # household 3: size 2, 1 member
    evaluation = evaluate_households(spec, targets, households, persons)
    page = build_household_report(spec, targets, evaluation, households=households, persons=persons)
    realism = section(page, "realism")
    assert ("Realism not scored: no rules in the spec: no household rejection rate (the structure checks above are no "
            "realism score; add household or person rules under <code>rules:</code>).") in realism
    assert "1 of 3 households fail at least one" in realism  # the structure checks, named as such
    assert "<th>household rejection</th>" not in realism and "rejected (any cause)" not in realism
    assert "<td>realism</td><td>not scored: no rules in the spec</td>" in page and "<td>rejection_rate</td><td>–</td>" in page
    assert PLOTS.search(page).group(1) == "2"  # the two tables' bars; no rules, no rules figure


def test_the_run_section_names_every_control_cell_no_candidate_reaches(written):
    from llmsynthor.shapes.households.controls import control_cells, describe_cells

    folder, paths, result, targets = written
    cells = control_cells(targets, [2, 4])
    assert cells == [{"table": "size_by_zone", "level": "households", "cell": {"size": "[3,4]"}, "target": 5.0,
                      "given": "per zone", "zones": ["A", "B"]},
                     {"table": "tenure", "level": "households", "cell": {"tenure": "rent"}, "target": 8.0, "given": "region"}]
    lines = describe_cells(cells * 6)
    assert len(lines) == 11 and lines[0] == "size_by_zone: size=[3,4] — target 5 households, per zone (2 zones: A, B)"
    assert lines[1] == "tenure: tenure=rent — target 8 households, region" and lines[-1] == "… and 2 more"
    run = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    assert len(run["region_balance"]["unreachable_cells"]) == run["region_balance"]["unreachable_controls"]
    run["region_balance"].update(unreachable_controls=2, unreachable_cells=cells)
    spec = two_zones()
    page = build_household_report(spec, targets, evaluate_households(spec, targets, result.households, result.persons), run)
    run_section = section(page, "run")
    assert "<td>control cells no candidate reaches</td><td>2</td>" in run_section
    assert "<th>control cell no candidate reaches (it stays short)</th><th>table</th><th>target</th><th>given</th>" in run_section
    assert "<td>size=[3,4]</td><td>size_by_zone</td><td>5 households</td><td>per zone (2 zones: A, B)</td>" in run_section
    assert "<td>tenure=rent</td><td>tenure</td><td>8 households</td><td>region</td>" in run_section


# -- a whole run with the fake LLM: write_outputs writes the report beside the linked tables ------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    spec = two_zones()
    targets = load_controls(spec)
    llm = SchemaLLM(domains={"age": (0, 99)})
    result = HouseholdSynthesizer(spec, llm, targets=targets).fit().sample()
    evaluation = evaluate_households(spec, targets, result.households, result.persons)
    folder = tmp_path_factory.mktemp("run") / "out"
    paths = write_outputs(spec, result, evaluation, llm, folder, wall_seconds=1.5, targets=targets)
    return folder, paths, result, targets


def test_write_outputs_writes_the_report_beside_the_csvs(written):
    folder, paths, result, targets = written
    assert paths == output_paths(folder) and paths["report"] == folder / "report.html"
    assert sorted(p.name for p in folder.iterdir()) == ["households.csv", "manifest.json", "persons.csv", "report.html"]
    run = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    assert run["paths"]["report"] == str(folder / "report.html")
    page = paths["report"].read_text(encoding="utf-8")
    assert "<h1>llmsynthor household report: tiny</h1>" in page
    for table in targets:
        assert f"<td>{table.name}</td>" in section(page, f"targets-{table.level}")
    run_section = section(page, "run")
    assert f"<td>LLM calls</td><td>{run['llm']['calls']}</td>" in run_section
    assert f"<td>requested</td><td>{result.requests}</td>" in run_section
    assert f"<td>accepted</td><td>{result.compositions}</td>" in run_section
    for source, count in run["households_by_source"].items():
        assert f"<td>{source}</td><td>{count}</td>" in run_section
    assert "<td>wall_seconds</td><td>1.5000</td>" in run_section and "region balance (list balancing)" in run_section


def test_the_report_path_is_checked_writable_with_the_other_outputs(tmp_path):
    assert check_output_folder(tmp_path)["report"] == tmp_path / "report.html"
    (tmp_path / "report.html").mkdir()
    with pytest.raises(SpecError, match="report"):
        check_output_folder(tmp_path)


@pytest.mark.browser
def test_the_reports_render_every_plot_in_chromium(semcog, written, tmp_path):
    page = tmp_path / "semcog.html"
    page.write_text(semcog[3], encoding="utf-8")
    expected = {page: 18, written[1]["report"]: 4}  # tiny run: 3 tables, 1 zoned (rules: none)
    for path, plots in expected.items():
        seen = render(path)
        assert seen.console_errors == [], path
        assert seen.declared_plots == seen.plot_divs == seen.rendered_plots == plots, path
