"""Hardening: every fault is caught before any LLM work, with one clear line (exit 2), and faults that
can only happen later (disk full, Ctrl-C) get a clear message instead of a traceback.

One test per class of failure; the LLM is the test double (or nothing at all: ``no_model`` makes
loading a model fail the test).
"""

from __future__ import annotations

import errno
import json
import shlex
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from fakes import FakeLLM
from typer.testing import CliRunner

from llmsynthor import LLMSynthorError, SpecError
from llmsynthor.cli import app
from llmsynthor.cli.flat import _summary
from llmsynthor.core.memory import memory_problem
from llmsynthor.declarations.spec import LLMSettings, Spec, SynthesisSettings, TableSpec
from llmsynthor.llm.cache import CachedLLM
from llmsynthor.shapes.flat import checkpoint

runner = CliRunner()
DOMAINS = {"age": (18, 90), "price": (0, 2000)}


@pytest.fixture
def workdir(tmp_path: Path, example_spec_path: Path, monkeypatch) -> Path:
    """A copy of the e-commerce example, the current folder, with its own response cache folder."""
    shutil.copytree(example_spec_path.parent / "targets", tmp_path / "targets")
    # records: both runs the LLM loop, whose iterations, checkpoints and Ctrl-C these tests are about
    (tmp_path / "spec.yaml").write_text(example_spec_path.read_text() + "\nsynthesis:\n  records: both\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model (or connecting to a server) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("llmsynthor.api.make_backend", refuse)


@pytest.fixture
def fake_model(monkeypatch):
    """`run` gets the test double; ``calls`` lists the backends it made."""
    made = []

    def make(settings, cache=None, on_slow=None):
        made.append(FakeLLM(domains=DOMAINS))
        return made[-1]

    monkeypatch.setattr("llmsynthor.api.make_backend", make)
    return made


def fails_fast(args: list[str], code: int, *fragments: str) -> str:
    """Invoke the CLI; assert the exit status, under 5 s, no traceback, one line, every fragment."""
    started = time.monotonic()
    result = runner.invoke(app, args)
    elapsed = time.monotonic() - started
    text = result.output
    assert result.exit_code == code, text
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


# -- every path the run writes is checked before the model is loaded -----------------------------

@pytest.mark.parametrize("options, fragments", [
    (["--out", "/proc/x.csv"], ["records path '/proc/x.csv'", "cannot write in /proc"]),
    (["--out", "{dir}"], ["records path", "is an existing folder; expected a file name"]),
    (["--out", "{file}/x.csv"], ["records path", "is a file, not a folder"]),
    (["--out", "o.csv", "--manifest", "/proc/m.json"], ["manifest path '/proc/m.json'", "cannot write in /proc"]),
    (["--out", "o.csv", "--manifest", "{dir}"], ["manifest path", "is an existing folder"]),
    (["--out", "o.csv", "--checkpoint", "/proc/ck"], ["checkpoint folder '/proc/ck'", "cannot create the folder"]),
    (["--out", "o.csv", "--checkpoint", "{file}"], ["checkpoint folder", "is a file, not a folder"]),
    (["--out", "o.csv", "--manifest", "o.csv"], ["manifest path 'o.csv'", "is also the records path"]),
    (["--out", "o.txt"], ["records path 'o.txt'", "expected .csv or .parquet"]),
])
def test_an_unwritable_output_path_fails_before_the_model_is_loaded(workdir, no_model, options, fragments):
    (workdir / "taken.csv").mkdir()
    (workdir / "plain").write_text("a file")
    args = [a.format(dir=workdir / "taken.csv", file=workdir / "plain") for a in options]
    fails_fast(["run", "spec.yaml", *args], 2, "invalid input", *fragments)
    assert {p.name for p in workdir.iterdir()} - {"cache"} == {"plain", "spec.yaml", "targets", "taken.csv"}  # nothing left behind
    assert not list(workdir.rglob("*probe*")) and list((workdir / "taken.csv").iterdir()) == []


@pytest.mark.parametrize("cache", ["file", "/proc/llmsynthor-cache"])
def test_an_unusable_cache_folder_fails_before_the_model_is_loaded(workdir, no_model, monkeypatch, cache):
    (workdir / "file").write_text("not a folder")
    monkeypatch.setenv("LLMSYNTHOR_CACHE", cache)
    fails_fast(["run", "spec.yaml", "--out", "o.csv"], 2, f"cache folder '{cache}'", "LLMSYNTHOR_CACHE")


def test_a_full_disk_at_write_time_is_one_line_and_debug_keeps_the_traceback(workdir, fake_model, monkeypatch):
    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    args = ["run", "spec.yaml", "--out", "o.csv", "--n", "300"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "could not write the records to o.csv: No space left on device" in result.output
    debug = runner.invoke(app, [*args, "--debug"])
    assert debug.exit_code == 1 and "Traceback" in debug.output


def test_a_failed_checkpoint_save_names_the_folder(tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    state = checkpoint.RunState("d", 1, {}, [], {}, [], [], records=pd.DataFrame({"a": [1]}))
    with pytest.raises(LLMSynthorError, match=r"could not save the checkpoint in .*ck: No space left on device"):
        checkpoint.save(tmp_path / "ck", state)


def test_an_unwritable_response_cache_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LLMSynthorError, match="cannot open the response cache .*LLMSYNTHOR_CACHE"):
        CachedLLM(FakeLLM(), tmp_path / "file" / "responses.sqlite")


def test_report_checks_its_output_path_before_any_work(workdir, monkeypatch, example_spec_path):
    def refuse(*args, **kwargs):
        raise AssertionError("evaluated before the output path was checked")

    monkeypatch.setattr("llmsynthor.cli.flat._evaluated", refuse)
    records = example_spec_path.parent / "reference.csv"
    fails_fast(["report", str(records), "--spec", "spec.yaml", "--out", "/proc/r.html"], 2, "report path '/proc/r.html'")


# -- the checkpoint folder ------------------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    ('{"spec_digest": "abc"}', "not a checkpoint written by llmsynthor"),
    ('{"iterations": 3}', "not a checkpoint written by llmsynthor"),
    ('{"format": 1, "spec_digest": "abc", "iteration": 2}', "incomplete or foreign: it lacks ["),
    ("not json", "damaged"),
    ('[1, 2]', "not a checkpoint written by llmsynthor"),
])
def test_a_foreign_or_incomplete_checkpoint_is_refused_before_the_model_is_loaded(workdir, no_model, content, fragment):
    (workdir / "o.checkpoint").mkdir()
    (workdir / "o.checkpoint" / "state.json").write_text(content)
    fails_fast(["run", "spec.yaml", "--out", "o.csv", "--resume"], 2, "o.checkpoint/state.json", fragment)
    with pytest.raises(SpecError, match="state.json"):
        checkpoint.load(workdir / "o.checkpoint", "abc", {}, "model")


# -- the spec and the overrides -------------------------------------------------------------------

def _spec_with(workdir: Path, old: str, new: str) -> None:
    path = workdir / "spec.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, fragments", [
    ("  location:\n", "  gender:\n    type: categorical\n    values: [M, F]\n  location:\n",
     ["line 18: the key 'gender' appears twice (lines 14 and 18)"]),
    ("seed: 7\n", "seed: 7\nseed: 8\n", ["the key 'seed' appears twice (lines 6 and 7)"]),
    ("  location:\n", "  '':\n    type: integer\n    min: 0\n    max: 1\n  location:\n", ["a variable is named ''"]),
    ("  location:\n", "  '  ':\n    type: integer\n    min: 0\n    max: 1\n  location:\n", ["a variable is named '  '"]),
    ("values: [Male, Female]", "values: [Male, Female, '']", ["'variables.gender'", "non-empty labels, got ''"]),
    ("values: [Male, Female]", "values: [Male, ' Female']", ["value ' Female' has leading or trailing spaces"]),
    ("seed: 7", "seed: -3", ["field 'seed'", "greater than or equal to 0 (got -3)"]),
    ("n_records: 2000", "n_records: 1000000000000", ["field 'n_records'", "TiB of memory", "is available; expected at most about"]),
    ("  temperature: 0.7", "  temperature: 0.7\n  base_url: localhost:8000", ["field 'llm.base_url'", "http:// or https://"]),
    ("  temperature: 0.7", "  tempreature: 0.7", ["field 'llm.tempreature'", "`llmsynthor spec-format`"]),
])
def test_a_bad_spec_is_one_clear_line(workdir, no_model, old, new, fragments):
    _spec_with(workdir, old, new)
    fails_fast(["check", "spec.yaml"], 2, "spec.yaml", *fragments)
    fails_fast(["run", "spec.yaml", "--out", "o.csv"], 2, "spec.yaml", *fragments)


@pytest.mark.parametrize("options, fragments", [
    (["--seed", "-1"], ["option --seed", "greater than or equal to 0 (got -1)"]),
    (["--seed", str(2**40)], ["option --seed", "less than or equal to 4294967295"]),
    (["--n", "1000000000000"], ["option --n", "1000000000000 records need about", "TiB of memory"]),
    (["--llm", "openai", "--model", "m", "--base-url", "localhost:8000"], ["option --base-url", "http:// or https://"]),
    (["--llm", "openai", "--model", "m", "--base-url", "htp://x"], ["option --base-url", "http:// or https://"]),
    (["--llm", "openai", "--model", "m", "--base-url", "http://"], ["option --base-url", "names no host"]),
    (["--llm", "openai", "--model", "m", "--base-url", "http://host:port/v1"], ["option --base-url", "not a URL"]),
])
def test_a_bad_override_names_the_option_at_once(workdir, no_model, options, fragments):
    fails_fast(["run", "spec.yaml", "--out", "o.csv", *options], 2, *fragments)


def test_tables_too_large_for_memory_are_refused_before_allocating(workdir):
    _spec_with(workdir, "n_records: 2000\n", "")
    for table in (workdir / "targets").glob("*.csv"):
        frame = pd.read_csv(table, dtype=str)
        frame["count"] = frame["count"].astype(float) * 1e9
        frame.to_csv(table, index=False)
    fails_fast(["check", "spec.yaml"], 2, "field 'targets'", "records need about", "is available")


def test_the_memory_estimate_names_the_estimate_and_the_limit():
    text = memory_problem(10_000_000, 9, 3.0, available=2**30)
    assert text.startswith("10000000 records need about 4.47 GiB of memory")
    assert "but 1 GiB is available; expected at most about 2236962 records" in text
    assert memory_problem(2000, 9, 3.0, available=2**30) is None


def test_a_malformed_url_never_reaches_the_network():
    pytest.importorskip("openai")
    from llmsynthor.core.errors import BackendError
    from llmsynthor.llm.openai_compat import OpenAICompatibleLLM

    with pytest.raises(BackendError, match="http:// or https://"):
        OpenAICompatibleLLM("localhost:8000", "m")
    with pytest.raises(ValueError, match="names no host"):
        LLMSettings(backend="openai", base_url="https://", model="m")


# -- target files ---------------------------------------------------------------------------------

def test_an_unquoted_bin_is_one_line_that_says_to_quote_it(workdir, example_spec_path):
    age = workdir / "targets" / "age.csv"
    age.write_text("age,count\n[18,35),654\n[35,90],1346\n")
    fails_fast(["check", "spec.yaml"], 2, "age.csv: line 2: the bin [18,35) is not in double quotes",
               "its comma split it into two columns", 'write it "[18,35)"')
    shutil.copy(example_spec_path.parent / "targets" / "age.csv", age)
    joint = workdir / "targets" / "age_gender_category.csv"
    rows = joint.read_text().splitlines()
    joint.write_text("\n".join([*rows[:3], rows[3].replace('"', ""), *rows[4:]]) + "\n")  # one row left unquoted
    fails_fast(["check", "spec.yaml"], 2, "age_gender_category.csv: line 4: the bin [", "is not in double quotes")


@pytest.mark.parametrize("last, fragments", [
    ('"[35,90)"', ["the last bin '[35,90)' of 'age' leaves out the max 90", "write the last bin closed: '[35,90]'"]),
    ('"[35,80]"', ["bins of 'age' end with '[35,80]'", "the variable's max 90", "'[35,90]'"]),
])
def test_a_last_bin_that_misses_the_max_is_reported_as_written_with_the_fix(workdir, last, fragments):
    (workdir / "targets" / "age.csv").write_text(f'age,count\n"[18,35)",654\n{last},1346\n')
    text = fails_fast(["check", "spec.yaml"], 2, *fragments)
    assert "89" not in text and "91" not in text


# -- the spec-format reference --------------------------------------------------------------------

def test_spec_format_lists_every_field_of_every_section():
    result = runner.invoke(app, ["spec-format"])
    assert result.exit_code == 0, result.output
    text = result.output
    for model in (Spec, TableSpec, LLMSettings, SynthesisSettings):
        for name, field in model.model_fields.items():
            if not field.exclude:
                assert f"\n  {name}: " in text, f"{model.__name__}.{name} missing"
    assert "write [80,100] (not [80,100))" in text and '"[18,35)",Male,310' in text
    undocumented = [line for line, after in zip(text.splitlines(), text.splitlines()[1:] + [""])
                    if line.startswith("  ") and ": " in line and not line.startswith("    ") and not after.startswith("      ")
                    and not line.strip().startswith(("-", "name: shop", "n_records: 1000", "variables:", "targets:", "age", "gender"))]
    assert undocumented == []


# -- what a run shows while and after it runs -----------------------------------------------------

def test_progress_off_a_terminal_is_one_complete_line_per_iteration(workdir, fake_model):
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "o.csv", "--n", "300"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("iteration ")]
    manifest = json.loads((workdir / "o.manifest.json").read_text())
    assert len(lines) == len(manifest["iterations"]) >= 1
    assert all(line.startswith(f"iteration {i}/25: ") for i, line in enumerate(lines, 1))
    assert all("…" not in line and "/300 records drawn · worst TVD " in line and line.endswith("s") for line in lines)
    assert not [line for line in result.output.splitlines() if "━━" in line and "records" in line]  # no bar
    summary = [line for line in result.output.splitlines() if "LLM calls" in line]
    assert len(summary) == 1 and summary[0].endswith("manifest o.manifest.json")  # not wrapped at 80 columns


def test_the_summary_line_counts_option_scorings():
    data = {"llm": {"calls": 8, "option_scorings": 30, "cache_hits": 0, "prompt_tokens": 10, "completion_tokens": 5},
            "time": {"wall_seconds": 12.0, "llm_seconds": 9.0}}
    assert "8 LLM calls + 30 option scorings (time within LLM)" in _summary(True, data, Path("m.json"))
    data["llm"]["option_scoring_seconds"] = 2.5
    assert "8 LLM calls + 30 option scorings (2.5s)" in _summary(True, data, Path("m.json"))
    data["llm"]["option_scorings"] = 0
    assert "· 8 LLM calls · 0 from cache" in _summary(False, data, Path("m.json"))


class Interrupting(FakeLLM):
    """``stop`` raised at the ``at``-th request — Ctrl-C by default (the test double answers the others)."""

    def __init__(self, at: int, stop: BaseException | None = None):
        super().__init__(domains=DOMAINS)
        self.at, self.stop = at, stop or KeyboardInterrupt()

    def complete_json(self, *args, **kwargs):
        if len(self.calls) + 1 >= self.at:
            raise self.stop
        return super().complete_json(*args, **kwargs)


def test_ctrl_c_names_the_checkpoint_and_the_exact_command_that_resumes(workdir, monkeypatch):
    backends = iter([Interrupting(at=3), FakeLLM(domains=DOMAINS)])  # 1: dependencies, 2: iteration 1, 3: Ctrl-C
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: next(backends))
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "out/o.csv", "--n", "300", "--max-iterations", "6"])
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    assert (workdir / "out" / "o.checkpoint" / "state.json").is_file()
    hint = result.output.strip().splitlines()[-1]
    assert "interrupted. Progress up to the last finished iteration is saved in out/o.checkpoint" in hint
    command = "llmsynthor run spec.yaml --out out/o.csv --n 300 --max-iterations 6 --resume"
    assert hint.endswith(f"to finish the run: {command}")

    resumed = runner.invoke(app, shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert len(pd.read_csv(workdir / "out" / "o.csv")) == 300
    assert not (workdir / "out" / "o.checkpoint").exists()


def test_ctrl_c_before_the_first_iteration_says_there_is_nothing_to_resume(workdir, monkeypatch):
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: Interrupting(at=1))
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "o.csv", "--n", "300"])
    assert result.exit_code == 130, result.output
    assert "interrupted before the first iteration finished; nothing to resume" in result.output


def test_file_system_failures_of_the_caches_are_clear_errors(tmp_path, monkeypatch):
    from llmsynthor.core.errors import ModelFileError
    from llmsynthor.llm import models

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "models" / "m.gguf.tmp"))

    monkeypatch.setattr(models, "_assemble_qwen", full)
    with pytest.raises(ModelFileError, match="could not assemble the model in .*No space left on device; set LLMSYNTHOR_CACHE"):
        models.resolve("qwen2.5-coder-1.5b")

    import sqlite3

    cached = CachedLLM(FakeLLM(), tmp_path / "responses.sqlite")

    class FullDisk:
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    cached._db = FullDisk(cached._db)
    with pytest.raises(LLMSynthorError, match="cannot write to the response cache .*disk is full"):
        cached.complete_json([{"role": "user", "content": "a"}], {"properties": {"groups": {"items": {"items": {"enum": ["a", "b"]}}}}},
                             max_tokens=5, temperature=0.0, seed=1)


def test_resume_after_a_target_file_was_edited_is_refused_before_the_model_loads(workdir, monkeypatch):
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: Interrupting(at=3))
    args = ["run", "spec.yaml", "--out", "o.csv", "--n", "300", "--max-iterations", "6"]
    assert runner.invoke(app, args).exit_code == 130
    path = workdir / "targets" / "location_payment.csv"
    path.write_text(path.read_text().replace("Developed,COD,255", "Developed,COD,256").replace("Developed,Online,546", "Developed,Online,545"))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("llmsynthor.api.make_backend", no_model)
    fails_fast([*args, "--resume"], 2, "o.checkpoint", "target tables differ", "changed: 'location_payment'", "without --resume")


@pytest.mark.parametrize("changed", [["--seed", "5"], ["--n", "400"]])
def test_resume_with_other_options_is_refused_before_the_model_loads(workdir, monkeypatch, changed):
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: Interrupting(at=3))
    args = ["run", "spec.yaml", "--out", "o.csv", "--n", "300", "--max-iterations", "6"]
    assert runner.invoke(app, args).exit_code == 130

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("llmsynthor.api.make_backend", no_model)
    text = fails_fast([*args, *changed, "--resume"], 2, "o.checkpoint/state.json", "belongs to a different spec, seed, size")
    assert "--resume." not in text  # no contradicting 'run the same command with --resume' hint


def test_a_stale_checkpoint_of_an_earlier_run_gets_no_resume_hint(workdir, monkeypatch):
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: Interrupting(at=3))
    args = ["run", "spec.yaml", "--out", "o.csv", "--n", "300", "--max-iterations", "6"]
    assert runner.invoke(app, args).exit_code == 130  # leaves o.checkpoint
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: Interrupting(at=1))
    result = runner.invoke(app, args)  # a fresh run, interrupted before its first iteration
    assert result.exit_code == 130 and "nothing to resume" in result.output, result.output


def test_a_backend_that_dies_mid_run_ends_it_with_exit_3_after_the_checkpoint(workdir, monkeypatch):
    from llmsynthor.core.errors import BackendError

    gone = BackendError("openai:local could not be reached, still after 6 attempts", retryable=True)
    backends = iter([Interrupting(at=3, stop=gone), FakeLLM(domains=DOMAINS)])  # 1: dependencies, 2: iteration 1, 3: the server is gone
    monkeypatch.setattr("llmsynthor.api.make_backend", lambda settings, cache=None, on_slow=None: next(backends))
    result = runner.invoke(app, ["run", "spec.yaml", "--out", "out/o.csv", "--n", "300", "--max-iterations", "6"])
    assert result.exit_code == 3, result.output
    assert "llmsynthor: the LLM backend failed: openai:local could not be reached, still after 6 attempts" in result.output
    assert (workdir / "out" / "o.checkpoint" / "state.json").is_file() and not (workdir / "out" / "o.csv").exists()
    command = "llmsynthor run spec.yaml --out out/o.csv --n 300 --max-iterations 6 --resume"
    assert result.output.strip().endswith(f"fix the cause and run: {command}")
    resumed = runner.invoke(app, shlex.split(command)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert len(pd.read_csv(workdir / "out" / "o.csv")) == 300
