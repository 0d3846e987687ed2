"""Benchmark: the non-LLM parts of a run, against baselines run in the same process.

    python bench/bench_statistics.py [--repeat 7]

1. Counting records into the e-commerce example's 9 target tables: llmsynthor's vectorized
   encoder (numpy searchsorted + bincount) vs a plain pandas baseline (pd.cut + groupby.size).
2. The whole loop with an instant test-double LLM (so only the non-LLM work is timed): focus
   planning, validation, allocation (bounded least squares) and drawing for 2,000 records.

Prints markdown tables of medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from llmsynthor import Synthesizer, load_spec, load_targets  # noqa: E402
from llmsynthor.core.statistics import count_all  # noqa: E402
from llmsynthor.evaluation.datasets import ecommerce_sample  # noqa: E402


def pandas_counts(records: pd.DataFrame, targets) -> list[np.ndarray]:
    """Baseline: bin with pd.cut, count with groupby, reindex onto the full table."""
    binned = records.copy()
    for t in targets:
        for axis in t.axes:
            if axis.is_numeric and axis.variable + "_bin" not in binned:
                cut = pd.cut(records[axis.variable], bins=axis.edges, right=False, labels=list(axis.labels), include_lowest=True)
                cut = cut.fillna(axis.labels[-1])  # the domain max falls in the closed last bin
                binned[axis.variable + "_bin"] = cut
    out = []
    for t in targets:
        cols = [a.variable + "_bin" if a.is_numeric else a.variable for a in t.axes]
        sizes = binned.groupby(cols, observed=False).size()
        index = pd.MultiIndex.from_product([list(a.labels) for a in t.axes]) if len(cols) > 1 else pd.Index(t.axes[0].labels)
        out.append(sizes.reindex(index, fill_value=0).to_numpy().reshape(t.shape).astype(float))
    return out


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    spec = load_spec(ROOT / "examples" / "ecommerce" / "spec.yaml")
    targets = load_targets(spec)

    print("## Counting records into 9 target tables (median of", args.repeat, "runs)\n")
    print("| records | llmsynthor | pandas cut+groupby | speed-up |")
    print("|---:|---:|---:|---:|")
    for n in (2_000, 100_000, 1_000_000):
        records = ecommerce_sample(n, seed=1)
        ours, base = count_all(records, targets), pandas_counts(records, targets)
        assert all(np.array_equal(a, b) for a, b in zip(ours, base)), "the two counters disagree"
        t_ours = median_seconds(lambda r=records: count_all(r, targets), args.repeat)
        t_base = median_seconds(lambda r=records: pandas_counts(r, targets), args.repeat)
        print(f"| {n:,} | {t_ours * 1e3:.1f} ms | {t_base * 1e3:.1f} ms | {t_base / t_ours:.1f}× |")

    from fakes import FakeLLM

    print("\n## The loop without LLM time (instant test double), 2,000 records\n")
    domains = {"age": (18, 90), "price": (0, 2000)}
    calls = []

    def loop():
        llm = FakeLLM(seed=1, domains=domains)
        result = Synthesizer(spec, llm, targets=targets).run()
        calls.append(result.usage.calls)

    t_loop = median_seconds(loop, args.repeat)
    print("| median wall | LLM calls | per call (non-LLM) |")
    print("|---:|---:|---:|")
    print(f"| {t_loop:.3f} s | {calls[-1]} | {t_loop / calls[-1] * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
