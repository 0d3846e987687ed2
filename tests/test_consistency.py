"""Targets that cannot describe one population are diagnosed before the run, naming tables and cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import EXAMPLE
from fakes import FakeLLM
from typer.testing import CliRunner

from llmsynthor import SpecError, Synthesizer, load_spec, load_targets
from llmsynthor.cli import app


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE / "targets", tmp_path / "targets")
    shutil.copy(EXAMPLE / "spec.yaml", tmp_path / "spec.yaml")
    return tmp_path


def set_synthesis(workdir: Path, **settings) -> None:
    path = workdir / "spec.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("synthesis", {}).update(settings)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_example_is_consistent():
    assert load_targets(load_spec(EXAMPLE / "spec.yaml")).inconsistencies == ()


def test_a_marginal_that_disagrees_with_a_joint_table_is_named_with_its_cells(workdir):
    # the joint age × gender × category says 44.25 % Male; this marginal says 50 %
    (workdir / "targets" / "gender.csv").write_text("gender,count\nMale,1000\nFemale,1000\n")
    result = CliRunner().invoke(app, ["check", str(workdir / "spec.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "gender.csv" in text and "'gender' and 'age_gender_category' give different margins over gender" in text
    assert "Male: 50.00% vs 44.25%" in text and "Female: 50.00% vs 55.75%" in text
    assert "synthesis.inconsistent_targets" in text and "'proceed'" in text
    # the tables that agree are not accused
    assert "location_payment" not in text and "category_price" not in text


def test_a_cell_forced_to_zero_by_one_table_and_positive_in_another_is_named(workdir):
    frame = pd.read_csv(workdir / "targets" / "category.csv")
    frame.loc[frame["category"] == "Electronics", "count"] = 0
    frame.loc[frame["category"] == "Apparel", "count"] += 476  # same total: only the zero is wrong
    frame.to_csv(workdir / "targets" / "category.csv", index=False)
    with pytest.raises(SpecError) as err:
        load_targets(load_spec(workdir / "spec.yaml"))
    text = str(err.value)
    assert "cells that one table forces to zero and the other does not" in text
    for other in ("age_gender_category", "category_price"):
        assert f"'category' and '{other}' disagree on category" in text
        assert "Electronics: 0.00% vs 23.80%" in text


def test_coarser_bins_are_compared_by_summing_the_fine_ones(workdir):
    # an age marginal with 3 bins, each the union of two of the joint table's 6 bins: consistent
    fine = pd.read_csv(workdir / "targets" / "age.csv")
    edges = [label.strip("[]()").split(",") for label in fine["age"]]
    coarse = pd.DataFrame({"age": [f"[{edges[i][0]},{edges[i + 1][1]}{')' if i < 4 else ']'}" for i in (0, 2, 4)],
                           "count": [fine["count"][i] + fine["count"][i + 1] for i in (0, 2, 4)]})
    coarse.to_csv(workdir / "targets" / "age.csv", index=False)
    assert load_targets(load_spec(workdir / "spec.yaml")).inconsistencies == ()
    coarse.loc[0, "count"] += 60
    coarse.loc[1, "count"] -= 60
    coarse.to_csv(workdir / "targets" / "age.csv", index=False)
    with pytest.raises(SpecError, match=r"'age' and 'age_gender_category' give different margins over age"):
        load_targets(load_spec(workdir / "spec.yaml"))


def test_rounded_published_shares_within_the_tolerance_pass(workdir):
    # shares rounded to 3 decimals, as published tables are: off by < 0.1 point from the joint's margin
    (workdir / "targets" / "gender.csv").write_text("gender,share\nMale,0.443\nFemale,0.557\n")
    assert load_targets(load_spec(workdir / "spec.yaml")).inconsistencies == ()
    set_synthesis(workdir, consistency_tolerance=0.0001)
    with pytest.raises(SpecError, match="Male: 44.30% vs 44.25%"):
        load_targets(load_spec(workdir / "spec.yaml"))


def test_proceed_fits_a_compromise_and_reports_the_disagreement(workdir):
    (workdir / "targets" / "gender.csv").write_text("gender,count\nMale,1000\nFemale,1000\n")
    set_synthesis(workdir, inconsistent_targets="proceed", max_iterations=6)
    spec = load_spec(workdir / "spec.yaml")
    targets = load_targets(spec)
    assert [(d.kind, d.tables) for d in targets.inconsistencies] == [("margin", ("gender", "age_gender_category"))]
    result = Synthesizer(spec, FakeLLM(seed=1, domains={"age": (18, 90), "price": (0, 2000)}), targets=targets).run()
    assert len(result.records) == 2000
    assert any("give different margins over gender" in note for note in result.notes)
    # the compromise lies between the two tables' answers (50 % and 44.25 % Male)
    male = (result.records["gender"] == "Male").mean()
    assert 0.4425 < male < 0.5
    assert not result.converged  # no set of records can satisfy both tables


def test_per_table_tolerances(workdir):
    path = workdir / "spec.yaml"
    data = yaml.safe_load(path.read_text())
    data["targets"][6]["tolerance_jsd"] = 0.08
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    tables = {t.name: t for t in load_targets(load_spec(path))}
    assert tables["age_gender_category"].tolerance_jsd == 0.08 and tables["age"].tolerance_jsd == 0.03
