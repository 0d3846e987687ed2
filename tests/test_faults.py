"""Faults fail loudly: a backend that cannot be reached ends the run with exit status 3 (after what
was done is kept); a run without a model happens only when asked for (``--llm none``), named as such;
SIGTERM ends a run as Ctrl-C does (exit 143). The backend here is real: the OpenAI client against a
closed port or a server that never answers, and the CLI in its own process for the signal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.core.errors import BackendError, Unsupported
from llmsynthor.declarations.spec import LLMSettings, SynthesisSettings
from llmsynthor.declarations.targets import load_targets
from llmsynthor.llm.none import NoModel
from llmsynthor.prior.requesting import LLMUsage, Requester
from llmsynthor.shapes.flat.steps import pairwise_prior

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, example_spec_path: Path, monkeypatch) -> Path:
    """The e-commerce example in the current folder, its own response cache, one transport attempt."""
    shutil.copytree(example_spec_path.parent / "targets", tmp_path / "targets")
    text = example_spec_path.read_text().replace("\nllm:\n", "\nllm:\n  transport_retries: 0\n  timeout: 60\n")
    (tmp_path / "spec.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "none")
    return tmp_path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_unreachable_server_ends_the_run_with_exit_3_and_writes_no_records(workdir):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "o.csv", "--llm", "openai", "--base-url", url, "--model", "m"])
    assert result.exit_code == 3, result.output
    assert "llmsynthor: the LLM backend failed:" in result.output and "could not be reached, still after 1 attempts" in result.output
    assert "response cache" in result.output and "run the same command again" in result.output
    assert "Traceback" not in result.output and "converged" not in result.output
    assert not (workdir / "o.csv").exists() and not (workdir / "o.manifest.json").exists()


def test_a_run_without_a_model_is_named_in_the_output_and_the_manifest(workdir):
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "o.csv", "--llm", "none", "--n", "500"])
    assert result.exit_code == 0, result.output
    assert "run without a model (--llm none / llm.backend: none, asked for)" in result.output
    manifest = json.loads((workdir / "o.manifest.json").read_text())
    assert manifest["model"]["backend"] == "no model (llm.backend: none)"
    assert any(n.startswith("run without a model (llm.backend: none, asked for)") for n in manifest["notes"]), manifest["notes"]
    assert manifest["llm"]["calls"] == 0 and manifest["llm"].get("option_scorings", 0) == 0


def test_a_run_without_a_model_is_refused_where_the_model_must_write_records(workdir):
    household_spec_path = Path(__file__).resolve().parents[1] / "examples" / "households" / "spec.yaml"
    text = (workdir / "spec.yaml").read_text()
    (workdir / "both.yaml").write_text(text + "synthesis:\n  records: both\n")
    result = runner.invoke(app, ["run", "both.yaml", "--llm", "none"])
    assert result.exit_code == 2, result.output
    assert "both.yaml: llm.backend: none (a run without a model), but synthesis.records: both asks for the model's proposals" in result.output
    result = runner.invoke(app, ["run", str(household_spec_path), "--llm", "none", "--out", str(workdir / "hh")])
    assert result.exit_code == 2, result.output
    assert "household specs need the model to write household compositions" in result.output
    assert not (workdir / "hh").exists()


class _Failing:
    """A backend that can score options but fails as ``error`` says."""

    name = "failing"

    def __init__(self, error: BackendError):
        self.error = error

    def complete_json(self, *args, **kwargs):
        raise self.error

    def option_probabilities(self, *args):
        raise self.error


def _prior(example_spec, error: BackendError):
    from llmsynthor import load_spec

    spec = load_spec(example_spec)
    targets, notes = load_targets(spec), []
    requester = Requester(_Failing(error), LLMSettings(), 1)
    return lambda: pairwise_prior(requester, targets, SynthesisSettings(), LLMUsage(), notes), notes


def test_the_prior_goes_on_without_a_capability_but_a_fault_ends_the_run(example_spec_path):
    run, notes = _prior(example_spec_path, Unsupported("failing returned no token probabilities (logprobs)"))
    assert run() is None and notes == ["pairwise prior skipped: failing returned no token probabilities (logprobs)"]
    run, notes = _prior(example_spec_path, BackendError("failing could not be reached, still after 6 attempts", retryable=True))
    with pytest.raises(BackendError, match="could not be reached"):
        run()
    assert notes == []


def test_without_a_model_no_call_is_made():
    with pytest.raises(BackendError, match="this run has no model"):
        NoModel().complete_json([], {}, max_tokens=1, temperature=0.0, seed=0)


def _silent_server() -> tuple[socket.socket, list]:
    """A server on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, accepted


def test_sigterm_ends_a_run_as_ctrl_c_does_with_exit_143(workdir):
    server, accepted = _silent_server()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    env = {**os.environ, "LLMSYNTHOR_CACHE": str(workdir / "cache"), "OPENAI_API_KEY": "none"}
    process = subprocess.Popen([sys.executable, "-m", "llmsynthor.cli", "run", "spec.yaml", "--out", "o.csv", "--llm", "openai",
                                "--base-url", url, "--model", "m"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not accepted and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)  # the run is waiting for its first answer
        assert accepted, process.communicate(timeout=5)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 143, err
    assert "llmsynthor: terminated (SIGTERM) before the first iteration finished; nothing to resume" in err
    assert "(LLM answers so far are in the response cache): run the same command again" in err
    assert "Traceback" not in err


def test_kind_names_the_record_shape_and_a_wrong_one_is_refused_before_any_work(workdir):
    text = (workdir / "spec.yaml").read_text()
    (workdir / "declared.yaml").write_text("kind: records\n" + text)
    assert runner.invoke(app, ["check", "declared.yaml"]).exit_code == 0
    (workdir / "typo.yaml").write_text("kind: household\n" + text)
    result = runner.invoke(app, ["check", "typo.yaml"])
    assert result.exit_code == 2
    assert "typo.yaml: field 'kind': 'household' is no record shape; expected one of records, households" in " ".join(result.output.split())
    (workdir / "wrong.yaml").write_text("kind: households\n" + text)
    result = runner.invoke(app, ["run", "wrong.yaml", "--llm", "none"])
    assert result.exit_code == 2 and "'households', but it has no 'household' or 'person' section" in " ".join(result.output.split())


def test_options_a_household_run_does_not_take_are_refused_naming_them(workdir):
    household = Path(__file__).resolve().parents[1] / "examples" / "households" / "spec.yaml"
    result = runner.invoke(app, ["run", str(household), "--resume", "--n", "50", "--out", str(workdir / "hh")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--n: not for a household spec (set n_households in the spec)" in text and "--resume: not for a household spec" in text
    assert not (workdir / "hh").exists()


def test_load_spec_names_a_household_spec_instead_of_its_missing_fields():
    from llmsynthor import load_spec
    from llmsynthor.core.errors import SpecError

    household = Path(__file__).resolve().parents[1] / "examples" / "households" / "spec.yaml"
    with pytest.raises(SpecError, match="a household spec .*load_household_spec") as info:
        load_spec(household)
    assert "'variables'" not in str(info.value)
