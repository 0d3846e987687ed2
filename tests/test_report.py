"""The HTML report: built from a run's records, manifest and a reference, and opened in real
headless Chromium, where every plot must render and the console must stay free of errors."""

from __future__ import annotations

import json
import re

import pytest
from browser import render
from conftest import EXAMPLE
from fakes import KnowingFakeLLM
from typer.testing import CliRunner

from llmsynthor import Synthesizer, load_spec
from llmsynthor.cli import app
from llmsynthor.declarations.spec import with_overrides
from llmsynthor.outputs.files import write_json, write_records
from llmsynthor.shapes.flat.manifest import manifest

DOMAINS = {"age": (18, 90), "price": (0, 2000)}
PLOTS = re.compile(r"data-plots='(\d+)'")


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """Records and manifest of a run with the test double (the real model's run is in test_end_to_end)."""
    folder = tmp_path_factory.mktemp("run")
    spec = with_overrides(load_spec(EXAMPLE / "spec.yaml"), {"synthesis.records": "both"})  # the loop runs: convergence
    llm = KnowingFakeLLM({}, seed=1, domains=DOMAINS)  # scores options: the prior's check is plotted
    result = Synthesizer(spec, llm).run()
    records = write_records(result.records, folder / "ecommerce.csv")
    write_json(manifest(spec, result, backend=llm, records_path=records), records.with_suffix(".manifest.json"))
    return records


@pytest.mark.browser
def test_report_renders_every_plot_in_chromium(run_files):
    cli = CliRunner().invoke(app, ["report", str(run_files), "--spec", str(EXAMPLE / "spec.yaml"),
                                   "--reference", str(EXAMPLE / "reference.csv")])
    assert cli.exit_code == 0, cli.output
    page = run_files.with_suffix(".report.html")
    text = page.read_text(encoding="utf-8")
    run = json.loads(run_files.with_suffix(".manifest.json").read_text())
    # 9 target tables + convergence + the prior's check + held-out tables + 2 numeric marginals + rules
    seen = render(page)
    assert seen.console_errors == []
    assert seen.declared_plots == seen.plot_divs == seen.rendered_plots == 15
    for name in ("age_gender_category", "location_payment", "Convergence", "Held-out tables", "Realism rules", "The prior"):
        assert name in text
    assert f"<td>LLM calls</td><td>{run['llm']['calls']}</td>" in text
    assert f"<td>kept</td><td>{run['calibration']['kept']}</td>" in text  # the calibration over records
    # self-contained: no script or link loads anything (a bare "cdn" can occur inside embedded base64 data)
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*\shref=\"?https?:", text)


@pytest.mark.browser
def test_without_reference_or_manifest_the_report_has_only_the_targets(tmp_path, run_files):
    records = tmp_path / "plain.csv"
    records.write_bytes(run_files.read_bytes())
    cli = CliRunner().invoke(app, ["report", str(records), "--spec", str(EXAMPLE / "spec.yaml"), "--out", str(tmp_path / "r.html")])
    assert cli.exit_code == 0, cli.output
    seen = render(tmp_path / "r.html")
    assert seen.console_errors == []
    assert seen.declared_plots == seen.rendered_plots == 10  # 9 targets + rules (no reference: no held-out, no run)


@pytest.mark.browser
def test_the_browser_check_catches_a_broken_plot(tmp_path):
    from plotly.offline import get_plotlyjs

    page = tmp_path / "broken.html"
    page.write_text(f"<html><head><script>{get_plotlyjs()}</script></head><body data-plots='2'>"
                    "<div class='plot'><div id='a'></div><script>Plotly.newPlot('a', [{type: 'bar', x: [1], y: [2]}])</script></div>"
                    "<div class='plot'><div id='b'></div><script>Plotly.newPlot('b', undefinedData)</script></div></body></html>")
    seen = render(page)
    assert seen.rendered_plots == 1 and seen.plot_divs == 2
    assert any("undefinedData" in e for e in seen.console_errors)


def test_an_unreadable_manifest_is_named(tmp_path, run_files):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cli = CliRunner().invoke(app, ["report", str(run_files), "--spec", str(EXAMPLE / "spec.yaml"), "--manifest", str(bad)])
    assert cli.exit_code == 2
    assert "bad.json" in cli.output and "cannot read the run manifest" in cli.output
    bad.write_text("[1, 2]")  # JSON, but not a manifest
    cli = CliRunner().invoke(app, ["report", str(run_files), "--spec", str(EXAMPLE / "spec.yaml"), "--manifest", str(bad)])
    assert cli.exit_code == 2 and "is JSON but not a run manifest" in cli.output and "Traceback" not in cli.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "none.csv"), "--spec", str(EXAMPLE / "spec.yaml")])
    assert missing.exit_code == 2 and "records file not found" in missing.output


def test_without_rules_the_report_says_realism_is_not_scored():
    import pandas as pd

    from llmsynthor import load_targets
    from llmsynthor.core.rules import parse_rules
    from llmsynthor.evaluation.scoring import evaluate
    from llmsynthor.outputs.report import build_report

    spec = load_spec(EXAMPLE / "spec.yaml")
    targets = load_targets(spec)
    records = pd.read_csv(EXAMPLE / "reference.csv")
    page = build_report(records, targets, evaluate(records, targets))
    said = ("<h2>Realism rules</h2><p class='note'>Realism not scored: no rules in the spec: the spec's <code>rules:</code> "
            "list is empty, so no record was checked against one.</p>")
    assert said in page and "<td>realism</td><td>not scored: no rules in the spec</td>" in page
    assert "<td>rule_violations</td><td>–</td>" in page and PLOTS.search(page).group(1) == "9"  # the targets' bars only
    scored = build_report(records, targets, evaluate(records, targets, rules=parse_rules(spec)))
    assert "not scored" not in scored and "<td>realism</td><td>scored: 4 rules</td>" in scored
    assert PLOTS.search(scored).group(1) == "10"  # and the rules'


def test_the_report_shows_values_outside_the_domain_and_rule_denominators():
    """No browser: the page's text carries the out-of-domain counts, the extra cell and both rule rates."""
    import numpy as np
    import pandas as pd

    from llmsynthor import load_targets
    from llmsynthor.core.rules import parse_rules
    from llmsynthor.evaluation.scoring import evaluate
    from llmsynthor.outputs.report import build_report

    spec = load_spec(EXAMPLE / "spec.yaml")
    targets = load_targets(spec)
    reference = pd.read_csv(EXAMPLE / "reference.csv")
    records = reference.copy()
    records.loc[:39, "category"] = "Toys"
    result = evaluate(records, targets, reference=reference, rules=parse_rules(spec))
    page = build_report(records, targets, result, reference=reference)
    assert "<th>variable (records)</th>" in page and "<td>category</td><td>40</td><td>2.00%</td>" in page
    assert "outside the domain" in page and "&#x27;Toys&#x27;" in page
    rule = result.rules["category == Electronics -> price >= 20"]
    among = f"{rule['synthetic_among_condition']:.1%} of {rule['synthetic_condition_records']:,}"
    assert f"<td>{among}</td><td>{rule['synthetic']:.2%} of 2,000</td>" in page
    assert np.isclose(result.on_targets["category"]["tvd"], 0.02)
