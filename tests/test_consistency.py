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


def add_targets(workdir: Path, *targets, n=None) -> None:
    path = workdir / "spec.yaml"
    data = yaml.safe_load(path.read_text())
    data["targets"] += list(targets)
    if n:
        data["n_records"] = n
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_mean_the_bins_cannot_give_is_named_with_the_reachable_range(workdir):
    # category_price puts 226 of Electronics' 476 records in [921,2000] and the rest lower: its
    # mean price lies between 632 and 1257 whatever the records inside the bins
    add_targets(workdir, {"name": "mean_price", "variables": ["category"], "mean_of": "price",
                          "cells": [{"category": "Electronics", "value": 1900}, {"category": "Apparel", "value": 430}]})
    result = CliRunner().invoke(app, ["check", str(workdir / "spec.yaml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "'mean_price' asks a mean of price that the bins of 'category_price' cannot give" in text
    assert "Electronics: 1900 wanted, 631.973 to 1257.45 reachable" in text
    assert "Apparel" not in text.split("cannot give")[1].split("expected")[0]  # 430 is reachable


def test_a_sum_is_checked_in_the_specs_own_units(workdir):
    # the count tables describe 2,000 people; the run makes 500, but the message keeps the spec's numbers
    add_targets(workdir, {"name": "total_age", "sum_of": "age", "cells": [{"value": 50_000}]}, n=500)
    with pytest.raises(SpecError) as err:
        load_targets(load_spec(workdir / "spec.yaml"))
    text = str(err.value)
    assert "'total_age' asks a sum of age that the bins of 'age' cannot give — 50000 wanted, 64190 to 86824 reachable" in text
    assert "'age_gender_category' cannot give" in text  # its bins bound the sum too


def test_a_mean_for_a_group_the_tables_leave_empty_is_named(workdir):
    frame = pd.read_csv(workdir / "targets" / "category_price.csv")
    frame.loc[frame["category"] == "Furniture & Appliances", "count"] = 0
    frame.to_csv(workdir / "targets" / "category_price.csv", index=False)
    add_targets(workdir, {"name": "mean_price", "variables": ["category"], "mean_of": "price",
                          "cells": [{"category": "Furniture & Appliances", "value": 700}]})
    set_synthesis(workdir, inconsistent_targets="proceed")
    found = load_targets(load_spec(workdir / "spec.yaml")).inconsistencies
    numeric = [d for d in found if d.kind == "numeric"]
    assert len(numeric) == 1 and "Furniture & Appliances: 700 wanted, but 'category_price' has no records there" in numeric[0].describe()


def test_reachable_means_and_sums_pass(workdir):
    reference = pd.read_csv(EXAMPLE / "reference.csv")
    means = reference.groupby("category")["price"].mean()
    add_targets(workdir, {"name": "mean_price", "variables": ["category"], "mean_of": "price",
                          "cells": [{"category": c, "value": float(v)} for c, v in means.items()]},
                {"name": "total_age", "sum_of": "age", "cells": [{"value": int(reference["age"].sum())}]})
    assert load_targets(load_spec(workdir / "spec.yaml")).inconsistencies == ()


def sparse_spec(tmp_path: Path, **synthesis) -> Path:
    """A 30 × 30 joint table with one record in every cell (900 cells) for 300 records."""
    values = [f"v{i}" for i in range(30)]
    rows = [{"a": x, "b": y, "count": 1} for x in values for y in values]
    pd.DataFrame(rows).to_csv(tmp_path / "ab.csv", index=False)
    pd.DataFrame({"a": values, "count": 30}).to_csv(tmp_path / "a.csv", index=False)
    spec = {"n_records": 300, "variables": {v: {"type": "categorical", "values": values} for v in "ab"},
            "targets": [{"variables": ["a"], "file": "a.csv"}, {"variables": ["a", "b"], "file": "ab.csv"}],
            "synthesis": {"max_iterations": 3, "infer_dependencies": False, **synthesis}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "spec.yaml"


def test_a_table_with_more_cells_than_records_says_so_and_what_to_do(tmp_path):
    result = CliRunner().invoke(app, ["check", str(sparse_spec(tmp_path))])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "'a×b' has 900 cells with a positive count but the run makes only 300 records" in text
    assert "fewer cells" in text and "more records (n_records)" in text and "proceed" in text


def test_a_sparse_table_can_proceed_and_its_cells_become_proposals(tmp_path):
    spec = load_spec(sparse_spec(tmp_path, inconsistent_targets="proceed", records="proposals"))
    llm = FakeLLM(seed=2)
    result = Synthesizer(spec, llm).run()
    # before: "no deficit to ask about"; now its thin cells are the focus, and a focus that fixes every
    # variable is a proposal by itself: no plan call that would leave the model nothing to decide
    assert len(result.records) == 300 and not llm.calls and result.usage.skipped_plans > 0
    assert any("900 cells" in note for note in result.notes)
