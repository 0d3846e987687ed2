"""llama.cpp's threads: one per free core by default, as asked otherwise; and the pace watch that flags
a step far slower than the model's pace."""

from __future__ import annotations

import pytest

from llmsynthor.llm import threads as threads_module
from llmsynthor.llm.threads import PaceWatch, busy_cores, choose_threads


def test_busy_cores_reads_the_share_of_busy_jiffies_over_the_interval(monkeypatch):
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 2)
    samples = iter([(1000, 4000), (1050, 4100)])  # 50 of 100 jiffies busy, over 2 cores: one core
    assert busy_cores(0.25, sleep=lambda s: None, read=lambda: next(samples)) == pytest.approx(1.0)
    assert busy_cores(0.25, sleep=lambda s: None, read=lambda: None) is None


def test_busy_cores_reads_this_machine(tmp_path):
    busy = busy_cores(0.05)
    assert busy is None or 0 <= busy <= (threads_module.os.cpu_count() or 1) + 1e-9
    (tmp_path / "stat").write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    assert threads_module._cpu_times(str(tmp_path / "stat")) == (150, 1000)
    assert threads_module._cpu_times(str(tmp_path / "absent")) is None


@pytest.mark.parametrize("busy, expected, limited", [(0.05, 2, False), (0.9, 1, True), (1.6, 1, True), (None, 2, False)])
def test_one_thread_per_free_core(monkeypatch, busy, expected, limited):
    monkeypatch.setattr(threads_module, "usable_cpus", lambda: 2)
    chosen = choose_threads(busy=busy)
    assert (chosen.count, chosen.limited) == (expected, limited)
    if limited:
        assert "1 of 2 usable cores: other processes kept" in chosen.reason and "--threads" in chosen.reason


def test_threads_as_asked_whatever_the_load(monkeypatch):
    monkeypatch.setattr(threads_module, "usable_cpus", lambda: 2)
    chosen = choose_threads(2, busy=1.8)
    assert chosen.count == 2 and not chosen.limited and chosen.reason.startswith("2 as asked")


def test_the_pace_watch_flags_a_step_far_slower_than_the_reference():
    watch = PaceWatch(reference=(0.01, 0.1), reference_threads=2, threads=2)
    assert watch.expected(500, 100) == pytest.approx(15.0)
    assert watch.observe(20.0, 500, 100) is None  # slower, but within 4x
    assert watch.observe(150.0, 500, 100) == pytest.approx(10.0)
    assert watch.observe(3.0, 10, 1) is None  # short steps are never flagged
    assert (watch.slow_steps, watch.worst) == (1, pytest.approx(10.0))
    assert PaceWatch(reference=(0.01, 0.1), threads=1).expected(500, 100) == pytest.approx(30.0)  # one thread: half the pace


def test_without_a_reference_the_runs_own_best_pace_is_the_reference():
    watch = PaceWatch(warmup=2)
    assert [watch.observe(s, 1000, 0) for s in (12.0, 11.0, 12.5)] == [None, None, None]
    assert watch.observe(60.0, 1000, 0) == pytest.approx(60 / 11)
