"""How many CPU threads llama.cpp gets, and how to tell that a step ran far slower than it should.

llama.cpp's threads wait for each other at every operation, spinning: with as many threads as cores
and another CPU-bound process beside them, one thread is always descheduled and the others spin
until it comes back (measured on 2 cores beside another 2-thread llama.cpp job, docs/measured-speed.md, "Shared
CPUs": an answer 6.6× slower than on free cores at 2 threads, 2.2× at 1). One thread per core that
is actually free degrades gracefully instead. The free cores are read from
``/proc/stat`` over a short interval (Linux); elsewhere every core is taken as free.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, or None where there is no /proc/stat."""
    try:
        with open(path, encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - idle, total


def busy_cores(interval: float = 0.25, sleep=time.sleep, read=_cpu_times) -> float | None:
    """How many cores other work kept busy over ``interval`` seconds (0 … all cores), or None if unknown."""
    first = read()
    if first is None:
        return None
    sleep(interval)
    second = read()
    if second is None or second[1] <= first[1]:
        return None
    cores = os.cpu_count() or 1  # /proc/stat counts every core of the machine
    return cores * (second[0] - first[0]) / (second[1] - first[1])


@dataclass(frozen=True)
class Threads:
    """The threads chosen and why (goes into the manifest and the run's first lines)."""

    count: int
    reason: str
    limited: bool = False  # fewer than the usable cores because others were busy: worth saying at the start


def choose_threads(requested: int | None = None, *, busy: float | None | str = "measure") -> Threads:
    """``requested`` threads if given (``--threads``, ``llm.n_threads``), else one per core that is free now."""
    cpus = usable_cpus()
    if requested is not None:
        return Threads(requested, f"{requested} as asked (llm.n_threads / --threads) on {cpus} usable cores")
    busy = busy_cores() if busy == "measure" else busy
    if busy is None:
        return Threads(cpus, f"{cpus}, one per usable core (how busy they are is unknown here)")
    free = max(1, min(cpus, int(cpus - busy + 0.5)))
    if free == cpus:
        return Threads(cpus, f"{cpus}, one per usable core (all free)")
    return Threads(free, f"{free} of {cpus} usable cores: other processes kept {busy:.1f} busy when the model loaded "
                         "(llama.cpp's threads spin against a busy core; --threads sets them)", limited=True)


@dataclass
class PaceWatch:
    """Flags an LLM step that runs far slower than the model's reference pace (another process
    competing for the cores, too many threads). ``reference`` is seconds per evaluated prompt token
    and per generated token on ``reference_threads`` free cores; without one, the run's own best
    step after ``warmup`` steps is the reference."""

    reference: tuple[float, float] | None = None  # (s per prompt token, s per generated token)
    reference_threads: int = 2
    threads: int = 1
    factor: float = 4.0  # flagged when this many times slower than expected …
    min_seconds: float = 10.0  # … and longer than this
    warmup: int = 3
    slow_steps: int = 0
    worst: float = 0.0
    _best: float | None = None
    _seen: int = 0

    def expected(self, evaluated: int, generated: int) -> float | None:
        """Seconds the step should take at the reference pace, with this run's threads."""
        if self.reference is None:
            return None
        per_prompt, per_token = self.reference
        scale = self.reference_threads / min(self.threads, self.reference_threads)  # fewer threads: slower, in proportion
        return scale * (evaluated * per_prompt + generated * per_token)

    def observe(self, seconds: float, evaluated: int, generated: int) -> float | None:
        """Record one step; the times-slower ratio when it is flagged as slow, else None."""
        self._seen += 1
        expected = self.expected(evaluated, generated)
        work = evaluated + 3.4 * generated  # a generated token costs 3.4 evaluated ones (measured: 0.071 s vs 0.021 s, Qwen 1.5B)
        if expected is None and work:
            pace = seconds / work
            self._best = pace if self._best is None else min(self._best, pace)
            if self._seen > self.warmup:
                expected = self._best * work
        if not expected or seconds < self.min_seconds or seconds < self.factor * expected:
            return None
        ratio = seconds / expected
        self.slow_steps += 1
        self.worst = max(self.worst, ratio)
        return ratio
