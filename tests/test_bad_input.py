"""Every kind of bad input gets one clear paragraph naming file, field and expectation; exit status 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmsynthor import SpecError, load_spec, load_targets
from llmsynthor.cli import app

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, example_spec_path: Path) -> Path:
    """A copy of the e-commerce example that a test may break."""
    shutil.copytree(example_spec_path.parent / "targets", tmp_path / "targets")
    shutil.copy(example_spec_path, tmp_path / "spec.yaml")
    return tmp_path


def edit_spec(workdir: Path, change) -> Path:
    path = workdir / "spec.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_table(workdir: Path, name: str, text: str) -> None:
    (workdir / "targets" / f"{name}.csv").write_text(text)


def check_cli(path: Path, *fragments: str) -> str:
    """Run `llmsynthor check` and assert: exit 2, no traceback, message has every fragment."""
    result = runner.invoke(app, ["check", str(path)])
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


def errors_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_targets(load_spec(path))
    return str(info.value)


def test_the_example_is_valid(example_spec_path):
    targets = load_targets(load_spec(example_spec_path))
    assert targets.n == 2000
    assert [t.name for t in targets][-3:] == ["age_gender_category", "category_price", "location_payment"]
    result = runner.invoke(app, ["check", str(example_spec_path)])
    assert result.exit_code == 0, result.output


def test_unknown_variable_in_a_target(workdir):
    path = edit_spec(workdir, lambda d: d["targets"][0].update(variables=["agee"]))
    check_cli(path, "spec.yaml", "targets[0]", "unknown variable 'agee'", "expected one of: age, gender")


def test_category_not_in_the_variables_values(workdir):
    write_table(workdir, "gender", "gender,count\nMale,900\nFemal,1100\n")
    check_cli(workdir / "spec.yaml", "gender.csv", "column 'gender' has 'Femal'", "['Male', 'Female']")


def test_overlapping_bins(workdir):
    write_table(workdir, "age", "age,count\n\"[18,40)\",1000\n\"[30,90]\",1000\n")
    check_cli(workdir / "spec.yaml", "age.csv", "bins '[18,40)' and '[30,90]' of 'age' overlap")


def test_gapped_bins(workdir):
    write_table(workdir, "age", "age,count\n\"[18,30)\",1000\n\"[40,90]\",1000\n")
    check_cli(workdir / "spec.yaml", "age.csv", "leave a gap [30,40)")


def test_bins_that_do_not_cover_the_domain(workdir):
    write_table(workdir, "price", "price,count\n\"[10,500)\",1000\n\"[500,2000]\",1000\n")
    check_cli(workdir / "spec.yaml", "price.csv", "bins of 'price' start at 10", "min 0")


def test_a_bin_that_is_not_an_interval(workdir):
    write_table(workdir, "age", "age,count\n18-40,1000\n\"[40,90]\",1000\n")
    check_cli(workdir / "spec.yaml", "age.csv", "'18-40'", "expected a bin written [a,b)")


def test_negative_count(workdir):
    write_table(workdir, "gender", "gender,count\nMale,-5\nFemale,2005\n")
    check_cli(workdir / "spec.yaml", "gender.csv", "row 1", "negative count -5", "expected a value >= 0")


def test_table_total_differs_from_another(workdir):
    write_table(workdir, "gender", "gender,count\nMale,900\nFemale,1000\n")
    text = check_cli(workdir / "spec.yaml", "gender.csv", "tables 'age' and 'gender' have different totals (2000 vs 1900 records)")
    assert "same population" in text


def test_missing_target_file(workdir):
    (workdir / "targets" / "payment.csv").unlink()
    check_cli(workdir / "spec.yaml", "payment.csv' not found", "targets[5]", "expected a CSV with columns ['payment', 'count']")


def test_missing_spec_file(tmp_path):
    check_cli(tmp_path / "nope.yaml", "nope.yaml", "spec file not found")


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("variables:\n  age: {type: integer, min: 18\n  gender: [\n")
    check_cli(path, "bad.yaml", "malformed YAML at line")


def test_unknown_field_and_wrong_type_reported_together(workdir):
    def change(d):
        d["n_recods"] = 10
        d["variables"]["age"]["min"] = "eighteen"

    text = check_cli(edit_spec(workdir, change), "2 problems", "field 'n_recods': unknown field", "field 'variables.age.min'")
    assert "eighteen" in text


def test_wrong_columns(workdir):
    write_table(workdir, "gender", "sex,count\nMale,900\nFemale,1100\n")
    check_cli(workdir / "spec.yaml", "gender.csv", "columns ['sex', 'count'] do not match", "expected exactly ['gender', 'count (or share)']")


def test_duplicate_cell(workdir):
    write_table(workdir, "gender", "gender,count\nMale,900\nMale,100\nFemale,1000\n")
    check_cli(workdir / "spec.yaml", "gender.csv", "appears more than once")


def test_shares_must_sum_to_one(workdir):
    write_table(workdir, "gender", "gender,share\nMale,0.4\nFemale,0.5\n")
    check_cli(workdir / "spec.yaml", "gender.csv", "shares sum to 0.9; expected 1")


def test_run_rejects_bad_input_before_loading_a_model(workdir):
    write_table(workdir, "gender", "gender,count\nMale,-1\nFemale,2001\n")
    result = runner.invoke(app, ["run", str(workdir / "spec.yaml"), "--out", str(workdir / "o.csv")])
    assert result.exit_code == 2
    assert "negative count" in result.output and "Traceback" not in result.output
    assert not (workdir / "o.csv").exists()


def test_run_rejects_an_unknown_output_format(example_spec_path, tmp_path):
    result = runner.invoke(app, ["run", str(example_spec_path), "--out", str(tmp_path / "o.xlsx")])
    assert result.exit_code == 2
    assert "unknown extension '.xlsx'; expected .csv or .parquet" in result.output


def test_inline_cells_and_shares(tmp_path):
    spec = {
        "n_records": 10,
        "variables": {"x": {"type": "categorical", "values": ["a", "b"]}, "y": {"type": "float", "min": 0, "max": 1}},
        "targets": [
            {"variables": ["x"], "cells": [{"x": "a", "share": 0.3}, {"x": "b", "share": 0.7}]},
            {"variables": ["y"], "cells": [{"y": "[0,0.5)", "count": 1}, {"y": "[0.5,1]", "count": 1}]},
        ],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    targets = load_targets(load_spec(path))
    assert targets.n == 10
    assert targets.tables[0].counts.tolist() == pytest.approx([3, 7])
    assert targets.tables[1].counts.tolist() == pytest.approx([5, 5])
    assert targets.tables[1].axes[0].labels == ("[0,0.5)", "[0.5,1]")
