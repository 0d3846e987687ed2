"""The e-commerce example through a real OpenAI-compatible server: ``python -m llama_cpp.server``
serving the small embedded model on a free loopback port. Covers the cache-hit rerun and a
server killed mid-run, then restarted, with ``--resume`` finishing the run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llmsynthor.llm.models import resolve

pytestmark = [pytest.mark.server, pytest.mark.model]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# llama_cpp.server as users start it, kept off llama.cpp's AMX kernels as the embedded backend is
# (they crash on the machines here: see llmsynthor.llm.embedded.avoid_amx_buffers)
SERVE = ("import runpy; from llmsynthor.llm.embedded import avoid_amx_buffers; avoid_amx_buffers(); "
         "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)")


class LlamaServer:
    def __init__(self, port: int, model: str = "gemma3-270m", n_ctx: int = 2048):
        self.port, self.model, self.n_ctx = port, model, n_ctx
        self.proc = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        model = resolve(self.model).path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--model", str(model), "--model_alias", self.model,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--verbose", "False"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("llama_cpp.server did not come up")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def server():
    srv = LlamaServer(free_port())
    srv.start()
    yield srv
    srv.kill()


def make_spec(tmp_path: Path, example_spec_path: Path, base_url: str) -> Path:
    shutil.copytree(example_spec_path.parent / "targets", tmp_path / "targets")
    data = yaml.safe_load(example_spec_path.read_text())
    data["n_records"] = 300
    data["llm"] = {"backend": "openai", "base_url": base_url, "model": "gemma3-270m", "transport_retries": 2, "timeout": 60}
    # the LLM loop: the server answers plans; no pairwise prior (this server's answers carry no token
    # probabilities here, and the prior through a server has its own tests below)
    data["synthesis"] = {"max_iterations": 2, "records": "both", "pairwise_prior": False}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_cli(spec: Path, out: Path, cache: Path, *extra: str, wait: bool = True):
    env = {**os.environ, "LLMSYNTHOR_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "llmsynthor.cli", "run", str(spec), "--out", str(out), *extra]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def test_example_through_the_server_then_from_the_cache(server, tmp_path, example_spec_path):
    spec = make_spec(tmp_path, example_spec_path, server.base_url)
    first = run_cli(spec, tmp_path / "a.csv", tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    m1 = json.loads((tmp_path / "a.manifest.json").read_text())
    assert m1["model"]["backend"] == f"openai:gemma3-270m@{server.base_url}"
    assert m1["llm"]["calls"] >= 2 and m1["llm"]["prompt_tokens"] > 0 and m1["llm"]["completion_tokens"] > 0
    assert m1["cache"]["misses"] == m1["llm"]["calls"] and m1["cache"]["hits"] == 0

    server.kill()  # the rerun must not need the server at all
    again = run_cli(spec, tmp_path / "b.csv", tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    m2 = json.loads((tmp_path / "b.manifest.json").read_text())
    assert m2["cache"]["hits"] == m2["llm"]["calls"] == m1["llm"]["calls"] and m2["cache"]["misses"] == 0
    assert pd.read_csv(tmp_path / "b.csv").equals(pd.read_csv(tmp_path / "a.csv"))
    print(f"\nserver run: {m1['time']['wall_seconds']:.1f}s, {m1['llm']['prompt_tokens']}+{m1['llm']['completion_tokens']} tokens; "
          f"cache rerun: {m2['time']['wall_seconds']:.2f}s")


def test_a_killed_server_stops_the_run_and_resume_finishes_it(server, tmp_path, example_spec_path):
    spec = make_spec(tmp_path, example_spec_path, server.base_url)
    out, cache = tmp_path / "r.csv", tmp_path / "cache"
    state = tmp_path / "r.checkpoint" / "state.json"
    proc = run_cli(spec, out, cache, wait=False)
    deadline = time.time() + 600
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert state.exists(), "no checkpoint was written"
    server.kill()  # in the middle of the run: the first iteration is saved, the second is to come
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr  # the backend failed: its own exit status
    assert "could not be reached" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert not out.exists() and state.exists()
    saved = json.loads(state.read_text())["iteration"]
    assert saved >= 1

    server.start()  # same port, same model
    resumed = run_cli(spec, out, cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not state.exists()  # a finished run removes its checkpoint
    m = json.loads(out.with_suffix(".manifest.json").read_text())
    assert [h["iteration"] for h in m["iterations"]][:saved] == list(range(1, saved + 1))

    # an uninterrupted run with the same seed and cache ends with the same records
    whole = run_cli(spec, tmp_path / "u.csv", cache)
    assert whole.returncode == 0, whole.stderr
    assert pd.read_csv(tmp_path / "u.csv").equals(pd.read_csv(out))


def test_option_scoring_through_the_server_equals_the_embedded_models(tmp_path):
    """Qwen2.5-Coder-1.5B served by llama_cpp.server: the options asked for by letter and read from
    top_logprobs give the probabilities the embedded backend computes from the same model's logits
    (within llama.cpp's numerical noise between batch shapes)."""
    import numpy as np
    from test_option_batches import SPEC

    from llmsynthor import load_targets
    from llmsynthor.declarations.spec import parse_spec
    from llmsynthor.llm.embedded import EmbeddedLLM
    from llmsynthor.llm.openai_compat import OpenAICompatibleLLM
    from llmsynthor.prior.copula import prior_levels
    from llmsynthor.prior.prompts import option_messages

    targets = load_targets(parse_spec(SPEC))
    levels = prior_levels(targets)
    requests = [option_messages(targets.schema, c, levels[c].axis, i, a, levels[a].axis, letters=True)
                for c, a in [("relationship", "marital"), ("sex", "relationship")] for i in range(levels[c].axis.size)]
    srv = LlamaServer(free_port(), "qwen2.5-coder-1.5b")
    srv.start()
    try:
        served = [OpenAICompatibleLLM(srv.base_url, srv.model).option_probabilities(*r).probabilities for r in requests]
    finally:
        srv.kill()
    embedded = [c.probabilities for c in EmbeddedLLM("qwen2.5-coder-1.5b", n_ctx=2048).option_probabilities_batch(requests)]
    assert np.allclose(served, embedded, atol=0.05), (served, embedded)
    male, female = served[-2], served[-1]  # P(relationship | sex): Husband, Wife, Own-child, Unmarried
    assert male[0] > male[1] and female[1] > female[0]
