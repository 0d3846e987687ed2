"""The embedded backend through the real small model (Gemma 3 270M): grammar-constrained plans
that validate, model files checked before loading, and a full CLI run on the wild small model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from llmsynthor import ModelFileError, load_spec
from llmsynthor.llm.base import LLMBackend
from llmsynthor.llm.embedded import EmbeddedLLM
from llmsynthor.llm.models import resolve
from llmsynthor.prior.proposals import parse_plan, plan_schema


@pytest.fixture(scope="module")
def gemma():
    return EmbeddedLLM("gemma3-270m", n_ctx=2048)


@pytest.mark.model
def test_gemma_answers_a_plan_that_validates(gemma, example_spec_path):
    schema = load_spec(example_spec_path).record_schema
    assert isinstance(gemma, LLMBackend) and gemma.name == "embedded:gemma3-270m"
    messages = [{"role": "user", "content": "Propose 2 kinds of e-commerce customers as JSON."}]
    out = gemma.complete_json(messages, plan_schema(schema, 2), max_tokens=200, temperature=0.7, seed=1)
    assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= 200 and out.seconds > 0
    data = json.loads(out.text)  # the grammar keeps even this model's output well-formed
    assert 1 <= len(data["proposals"]) <= 2
    items, report, error = parse_plan(out.text, schema)
    assert error is None or report.rejected  # a range may miss the domain; then it is counted


@pytest.mark.model
def test_llama_cpp_is_kept_off_its_amx_kernels_where_the_build_has_them(gemma):
    """llama.cpp built here (a CPU with AMX) crashes in its AMX matrix kernel; the backend loads without them."""
    import llama_cpp

    assert gemma.avoided_amx == ("AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode())
    out = gemma.complete_json([{"role": "user", "content": "Say hi as JSON."}], {"type": "object"}, max_tokens=8, temperature=0.0, seed=1)
    assert out.completion_tokens > 0  # a forward pass ran: no crash


@pytest.mark.model
def test_same_seed_same_answer(gemma):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    msgs = [{"role": "user", "content": "Give a number as JSON."}]
    a = gemma.complete_json(msgs, schema, max_tokens=20, temperature=1.0, seed=5).text
    b = gemma.complete_json(msgs, schema, max_tokens=20, temperature=1.0, seed=5).text
    assert a == b


def test_a_local_file_with_the_wrong_sha256_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(ModelFileError, match="has sha256 .* expected 0000"):
        resolve(str(fake), sha256="0" * 64)


def test_an_unknown_model_name_is_refused():
    with pytest.raises(ModelFileError, match="neither an embedded model"):
        resolve("gpt-17")


@pytest.mark.model
def test_cli_runs_end_to_end_on_the_small_model(tmp_path, example_spec_path):
    """The machinery through the real, wild small model: n = 300, 4 iterations, parquet output, manifest."""
    out = tmp_path / "records.parquet"
    shutil.copytree(example_spec_path.parent / "targets", tmp_path / "targets")
    spec_path = tmp_path / "spec.yaml"  # records: both — the LLM loop runs beside the joint model
    spec_path.write_text(example_spec_path.read_text() + "\nsynthesis:\n  records: both\n")
    proc = subprocess.run(
        [sys.executable, "-m", "llmsynthor.cli", "run", str(spec_path), "--out", str(out),
         "--model", "gemma3-270m", "--n", "300", "--seed", "1", "--max-iterations", "4", "--no-cache"],  # the real model, always
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    records = pd.read_parquet(out)
    assert len(records) == 300 and list(records.columns) == ["age", "gender", "location", "category", "price", "payment"]
    assert records["age"].between(18, 90).all() and records["price"].between(0, 2000).all()
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["n_records"] == 300
    assert manifest["model"]["backend"] == "embedded:gemma3-270m"
    assert manifest["model"]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert manifest["llm"]["calls"] >= 2 and manifest["llm"]["completion_tokens"] > 0
    assert manifest["time"]["wall_seconds"] >= manifest["time"]["llm_seconds"] > 0
    assert 1 <= len(manifest["iterations"]) <= 4 and manifest["dependencies"]["given"]
    # the final calibration kept 300 of the joint model's 900 candidates and the n drawn from the model's proposals
    assert manifest["calibration"]["kept"] == 300 and manifest["calibration"]["candidates"] == 1200
    assert manifest["records_from"] == "both" and manifest["prior_calibration"]["reason"]  # checked, or why not
    assert set(manifest["metrics"]["per_table"]) == {t.label for t in load_spec(example_spec_path).targets}


def test_a_test_without_the_model_marker_cannot_load_a_model():
    """The fast lane (`pytest -m "not model"`) stays fast: conftest refuses unmarked model loads."""
    with pytest.raises(AssertionError, match="mark it @pytest.mark.model"):
        EmbeddedLLM("gemma3-270m", n_ctx=512)


@pytest.mark.model
def test_a_call_that_shares_the_previous_prompts_beginning_evaluates_only_the_rest(gemma):
    """llama.cpp keeps the longest common prefix of the previous call: the usage says how many prompt
    tokens were evaluated, not only how many were sent."""
    system = {"role": "system", "content": "You write JSON about customers of an online shop. " * 8}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    first = gemma.complete_json([system, {"role": "user", "content": "How many?"}], schema, max_tokens=8, temperature=0, seed=1)
    second = gemma.complete_json([system, {"role": "user", "content": "How many now?"}], schema, max_tokens=8, temperature=0, seed=1)
    assert 0 < first.evaluated_tokens <= first.prompt_tokens
    assert 0 < second.evaluated_tokens < second.prompt_tokens - 50  # the system message was reused
