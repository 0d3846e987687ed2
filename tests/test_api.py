"""The Python API: targets as pandas DataFrames, fit/sample, synthesize() on top."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from conftest import EXAMPLE
from fakes import FakeLLM

from llmsynthor import SpecError, Synthesizer, load_spec, load_targets, parse_spec, synthesize
from llmsynthor.declarations.spec import with_overrides

DOMAINS = {"age": (18, 90), "price": (0, 2000)}


def frames_spec(**changes) -> dict:
    """The e-commerce example as a mapping whose targets are DataFrames instead of files."""
    data = yaml.safe_load((EXAMPLE / "spec.yaml").read_text())
    for target in data["targets"]:
        target["data"] = pd.read_csv(EXAMPLE / target.pop("file"))  # counts as numbers, bins as text
    return {**data, **changes}


def test_dataframe_targets_equal_the_files_they_came_from():
    from_files = load_spec(EXAMPLE / "spec.yaml")
    from_frames = parse_spec(frames_spec())
    assert load_targets(from_frames).digests() == load_targets(from_files).digests()
    a = Synthesizer(from_files, FakeLLM(seed=1, domains=DOMAINS)).run()
    b = Synthesizer(from_frames, FakeLLM(seed=1, domains=DOMAINS)).run()
    assert a.records.equals(b.records) and a.targets == b.targets
    # overrides keep the frames
    assert load_targets(with_overrides(from_frames, {"n_records": 500})).n == 500


def test_a_changed_dataframe_changes_the_targets_digest():
    spec = frames_spec()
    before = load_targets(parse_spec(spec)).digests()
    spec["targets"][1]["data"].loc[0, "count"] += 10  # gender: Male + 10 (the margins now disagree: proceed)
    spec["synthesis"] = {"inconsistent_targets": "proceed"}
    after = load_targets(parse_spec(spec)).digests()
    assert [name for name in before if before[name] != after[name]] == ["gender"]


@pytest.mark.parametrize("data, message", [
    (pd.Series([1, 2]), "'data' must be a pandas DataFrame"),
    (pd.DataFrame({"gender": ["Male", "Female"], "cnt": [1, 2]}), "columns ['gender', 'cnt'] do not match"),
    (pd.DataFrame({"gender": ["Male", None], "count": [1, 2]}), "has '', which is not one of the variable's values"),
])
def test_bad_dataframes_are_named(data, message):
    spec = frames_spec()
    spec["targets"][1]["data"] = data
    with pytest.raises(SpecError) as info:
        load_targets(parse_spec(spec))
    assert message in str(info.value) and ("targets[1] ('gender')" in str(info.value) or "'targets.1'" in str(info.value))


def test_a_dataframe_and_a_file_for_one_table_is_refused():
    spec = frames_spec()
    spec["targets"][0]["file"] = "targets/age.csv"
    with pytest.raises(SpecError, match="exactly one of 'file'"):
        parse_spec(spec)


def test_synthesize_is_fit_then_sample():
    spec = parse_spec(frames_spec())
    result = synthesize(spec, FakeLLM(seed=1, domains=DOMAINS))
    fitted = Synthesizer(spec, FakeLLM(seed=1, domains=DOMAINS)).fit()
    assert result.records.equals(fitted.sample().records)


def test_the_readmes_python_example_runs(monkeypatch):
    """The README's fit/sample example with a DataFrame target, with a test double for the model."""
    import re

    from conftest import ROOT

    import llmsynthor

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    code = next(b for b in blocks if "sample(n=" in b)
    monkeypatch.setattr(llmsynthor, "make_backend", lambda settings: FakeLLM(seed=3, domains={"age": (0, 99)}))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["result"].records) == 1000 and len(scope["more"].records) == 10_000
    assert scope["more"].converged, scope["more"].distances


def test_the_targets_digest_does_not_depend_on_the_runs_size():
    spec = parse_spec(frames_spec())
    assert load_targets(with_overrides(spec, {"n_records": 600})).digests() == load_targets(spec).digests()
    assert load_targets(spec).rescaled(10_000).digests() == load_targets(spec).digests()
