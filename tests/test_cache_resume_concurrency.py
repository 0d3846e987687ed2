"""Response cache, checkpoint and resume, and concurrent requests, with the LLM test double."""

from __future__ import annotations

import random
import time

import pytest
from fakes import FakeLLM

from llmsynthor import BackendError, Synthesizer, load_spec
from llmsynthor.declarations.spec import with_overrides
from llmsynthor.llm.cache import CachedLLM

DOMAINS = {"age": (18, 90), "price": (0, 2000)}


@pytest.fixture(scope="module")
def spec():
    from conftest import EXAMPLE

    # the loop's requests are what these tests interrupt, cache and parallelize: records: both runs it
    return with_overrides(load_spec(EXAMPLE / "spec.yaml"), {"n_records": 600, "synthesis.records": "both"})


class SeededFake(FakeLLM):
    """Answers depend only on the request's seed (like a deterministic model), optionally slowly."""

    def __init__(self, fail_at: int | None = None, jitter: bool = False):
        super().__init__(domains=DOMAINS)
        self.fail_at, self.jitter, self.answered = fail_at, jitter, 0

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed):
        if self.fail_at is not None and self.answered >= self.fail_at:
            raise BackendError("the server went away", retryable=True)
        if self.jitter:
            time.sleep(random.random() / 50)
        self.rng = __import__("numpy").random.default_rng(seed)
        self.answered += 1
        return super().complete_json(messages, schema, max_tokens=max_tokens, temperature=temperature, seed=seed)


def test_a_cached_rerun_makes_no_calls_and_gives_the_same_records(spec, tmp_path):
    first_llm = SeededFake()
    first = Synthesizer(spec, CachedLLM(first_llm, tmp_path / "c.sqlite")).run()
    again_llm = SeededFake()
    cached = CachedLLM(again_llm, tmp_path / "c.sqlite")
    again = Synthesizer(spec, cached).run()
    assert again_llm.answered == 0 and cached.hits == first.usage.calls and cached.misses == 0
    assert again.usage.cache_hits == again.usage.calls
    assert again.records.equals(first.records)


def test_the_cache_key_covers_what_changes_the_answer(tmp_path):
    cached = CachedLLM(SeededFake(), tmp_path / "c.sqlite")
    base = dict(max_tokens=10, temperature=0.5, seed=1)
    msgs = [{"role": "user", "content": "a"}]
    keys = {cached.key(msgs, {}, **base), cached.key(msgs, {}, **{**base, "seed": 2}),
            cached.key(msgs, {}, **{**base, "temperature": 0.7}), cached.key([{"role": "user", "content": "b"}], {}, **base),
            cached.key(msgs, {"type": "object"}, **base)}
    assert len(keys) == 5


def test_an_interrupted_run_resumes_to_the_same_records(spec, tmp_path):
    uninterrupted = Synthesizer(spec, SeededFake()).run()

    folder = tmp_path / "ckpt"
    with pytest.raises(BackendError, match="went away"):
        Synthesizer(spec, SeededFake(fail_at=5), checkpoint_dir=folder).run()
    assert (folder / "state.json").is_file()

    resumed = Synthesizer(spec, SeededFake(), checkpoint_dir=folder).run(resume=True)
    assert resumed.records.equals(uninterrupted.records)
    assert resumed.usage.calls == uninterrupted.usage.calls
    assert [h.pool for h in resumed.history] == [h.pool for h in uninterrupted.history]


def test_resume_refuses_a_checkpoint_of_another_spec(spec, tmp_path):
    from llmsynthor import SpecError

    folder = tmp_path / "ckpt"
    with pytest.raises(BackendError):
        Synthesizer(spec, SeededFake(fail_at=3), checkpoint_dir=folder).run()
    other = with_overrides(spec, {"seed": 99})
    with pytest.raises(SpecError, match="belongs to a different spec"):
        Synthesizer(other, SeededFake(), checkpoint_dir=folder).run(resume=True)


def test_concurrent_requests_give_the_same_records_whatever_the_timing(spec):
    parallel = with_overrides(spec, {"synthesis.parallel_requests": 3})
    serial = Synthesizer(parallel, SeededFake()).run()
    concurrent = Synthesizer(with_overrides(parallel, {"llm.concurrency": 3}), SeededFake(jitter=True)).run()
    assert concurrent.records.equals(serial.records)
    assert concurrent.usage.calls == serial.usage.calls
    assert serial.history[0].new_proposals > spec.synthesis.proposals_per_call  # three plans in one iteration


def test_resume_refuses_targets_whose_content_changed_naming_the_table(tmp_path):
    """The spec names the same files; one file's cells changed: resuming would fit old and new targets."""
    import shutil

    from conftest import EXAMPLE

    from llmsynthor import SpecError

    shutil.copytree(EXAMPLE / "targets", tmp_path / "targets")
    shutil.copy(EXAMPLE / "spec.yaml", tmp_path / "spec.yaml")
    spec = with_overrides(load_spec(tmp_path / "spec.yaml"), {"n_records": 600, "synthesis.records": "both"})
    folder = tmp_path / "ckpt"
    with pytest.raises(BackendError):
        Synthesizer(spec, SeededFake(fail_at=3), checkpoint_dir=folder).run()
    path = tmp_path / "targets" / "location_payment.csv"
    text = path.read_text()
    path.write_text(text.replace("Developed,COD,255", "Developed,COD,256").replace("Developed,Online,546", "Developed,Online,545"))
    edited = with_overrides(load_spec(tmp_path / "spec.yaml"), {"n_records": 600, "synthesis.records": "both"})  # one record moved: still consistent
    assert edited.digest() == spec.digest()  # the spec itself did not change
    with pytest.raises(SpecError, match=r"target tables differ .*changed: 'location_payment'"):
        Synthesizer(edited, SeededFake(), checkpoint_dir=folder).run(resume=True)
    path.write_text(text)  # restored: the run resumes
    assert len(Synthesizer(spec, SeededFake(), checkpoint_dir=folder).run(resume=True).records) == 600


def test_resume_refuses_a_checkpoint_of_another_model(spec, tmp_path):
    from llmsynthor import SpecError

    class OtherModel(SeededFake):
        name = "another-model"

    folder = tmp_path / "ckpt"
    with pytest.raises(BackendError):
        Synthesizer(spec, SeededFake(fail_at=3), checkpoint_dir=folder).run()
    with pytest.raises(SpecError, match="different spec, seed, size or model"):
        Synthesizer(spec, OtherModel(), checkpoint_dir=folder).run(resume=True)
    assert len(Synthesizer(spec, SeededFake(), checkpoint_dir=folder).run(resume=True).records) == 600
