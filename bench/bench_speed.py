"""Benchmark: wall time and LLM time of whole runs with an empty response cache, beside baselines
run in the same process, at the fidelity bench_methods.py measures.

    python bench/bench_speed.py [--runs 3] [--census adult11] [--no-server] [--no-scale] [--sweep]

1. The e-commerce example, 2,000 records, the default model: ``--runs`` runs from a fresh
   response cache each, wall time from loading the model (already assembled in the model cache)
   to the calibrated records (median), LLM
   time, option scorings and tokens evaluated; target TVD, held-out JSD and rules broken
   (bench_methods.Scorer). Baseline in the same process: option scorings one at a time (the
   backend's batch method hidden), one run.
2. A census-like case (adult11 by default; semcog): the same, one run each way.
3. The census case through ``python -m llama_cpp.server`` serving the same model on loopback,
   the prior on (options asked for by letter, read from top_logprobs), and the embedded backend
   asked the same way for comparison.
4. ``--sweep``: n_threads × n_batch for the census case's option scoring (one run each).
5. The non-LLM path at 10⁴–10⁶ records: bench_scale.py in subprocesses (``--no-scale`` skips it).

Nothing else should run on the machine meanwhile (two cores: a second model job distorts every
figure). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import bench_methods as bm  # noqa: E402
from test_server import LlamaServer, free_port  # noqa: E402

from llmsynthor import Synthesizer, load_spec  # noqa: E402
from llmsynthor.api import make_backend  # noqa: E402
from llmsynthor.declarations.spec import with_overrides  # noqa: E402
from llmsynthor.llm.cache import CachedLLM  # noqa: E402


class OneAtATime:
    """The backend with its batch method hidden: every option scoring is its own request."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        if name == "option_probabilities_batch":
            raise AttributeError(name)
        return getattr(self.inner, name)


def run(case: bm.Case, scorer: bm.Scorer, label: str, overrides: dict | None = None, wrap=None) -> dict:
    """One run from an empty response cache; wall time includes loading the model."""
    spec = with_overrides(load_spec(case.spec_path), overrides or {})
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        backend = CachedLLM(make_backend(spec.llm, cache=False), Path(cache) / "responses.sqlite")  # empty
        result = Synthesizer(spec, wrap(backend) if wrap else backend).run()
        wall = time.perf_counter() - started
        backend.close()
    s = scorer.score(result.records)
    usage = result.usage
    return {"label": label, "wall": wall, "llm": usage.seconds, "scorings": usage.option_scorings,
            "calls": usage.calls, "tokens": usage.evaluated_tokens, "tvd": s["target_tvd"], "heldout": s["heldout_jsd"],
            "rules": s["rules_any"], "distinct": s["distinct"]}


def table(title: str, rows: list[dict], baseline: dict | None = None) -> None:
    print(f"\n### {title}\n\n| run | wall s | LLM s | × baseline (wall) | scorings | plan calls | prompt tokens evaluated | target TVD | held-out JSD | rules broken | distinct |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['wall'] / baseline['wall']:.2f}" if baseline else "–"
        rules = "–" if r["rules"] is None else f"{r['rules']:.1%}"
        print(f"| {r['label']} | {r['wall']:.1f} | {r['llm']:.1f} | {ratio} | {r['scorings']} | {r['calls']} | {r['tokens']} "
              f"| {r['tvd']:.4f} | {r['heldout']:.4f} | {rules} | {r['distinct']:.0%} |", flush=True)


def ecommerce(runs: int) -> None:
    case = bm.make_case("ecommerce", Path("."))
    scorer = bm.Scorer(case)
    rows = [run(case, scorer, f"default, run {k + 1}") for k in range(runs)]
    median = {**min(rows, key=lambda r: abs(r["wall"] - statistics.median(x["wall"] for x in rows))),
              "label": f"default, median of {runs}", "wall": statistics.median(r["wall"] for r in rows)}
    baseline = run(case, scorer, "baseline: option scorings one at a time", wrap=OneAtATime)
    table("e-commerce, 2,000 records, empty response cache", [*rows, median, baseline], baseline)


class Server(LlamaServer):
    """``python -m llama_cpp.server`` with the default model on a free loopback port (tests/test_server.py)."""

    def __init__(self):
        super().__init__(free_port(), "qwen2.5-coder-1.5b", n_ctx=4096)
        self.start()


def census(name: str, server: bool, sweep: bool, folder: Path) -> None:
    case = bm.make_case(name, folder)
    scorer = bm.Scorer(case)
    default = run(case, scorer, "default (embedded, options in batches)")
    baseline = run(case, scorer, "baseline: option scorings one at a time", wrap=OneAtATime)
    rows = [default, baseline]
    if server:
        rows.append(run(case, scorer, "embedded, options asked by letter", {"synthesis.prior_answers": "letters"}))
        srv = Server()
        try:
            rows.append(run(case, scorer, "llama_cpp.server, prior on (letters, top_logprobs)",
                            {"llm.backend": "openai", "llm.base_url": srv.base_url, "llm.model": "qwen2.5-coder-1.5b"}))
        finally:
            srv.kill()
    table(f"{name}, n = 5,000, empty response cache", rows, baseline)
    if sweep:
        sweeps = [run(case, scorer, f"n_threads {t}, n_batch {b}", {"llm.n_threads": t, "llm.n_batch": b, "llm.n_ubatch": b})
                  for t in (1, 2) for b in (128, 512)]
        table(f"{name}: threads and batch size", sweeps, default)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="e-commerce runs from an empty cache (median reported)")
    parser.add_argument("--census", default="adult11", choices=["adult11", "semcog", "adult"])
    parser.add_argument("--server", action=argparse.BooleanOptionalAction, default=True,
                        help="the census case through llama_cpp.server too")
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True,
                        help="the non-LLM path at 10^4..10^6 records (bench_scale.py)")
    parser.add_argument("--sweep", action="store_true", help="n_threads x n_batch on the census case")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"## bench_speed — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores")
    ecommerce(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        census(args.census, args.server, args.sweep, Path(tmp))
    if args.scale:
        subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py")], check=True)
    print(f"\nwhole bench: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
