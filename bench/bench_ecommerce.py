"""Benchmark: the e-commerce example, llmsynthor beside baselines run in the same process.

    python bench/bench_ecommerce.py [--no-llm]

Methods, all producing 2,000 records from the same 9 target tables (except the floor):
  * real sample (floor)     2,000 fresh draws of the true network;
  * independent marginals   each variable drawn from its own marginal target (uniform inside bins);
  * IPF + sampling          ipfn fits all 9 tables on the full binned joint (uniform seed),
                            cells drawn by weight, values uniform inside bins;
  * llmsynthor              the embedded default model with the example spec (answers come from
                            the response cache when this spec and seed ran before: see "cached").
Evaluation (llmsynthor.evaluation): on the targets, and against a fresh 20,000-record sample of
the true network (held-out 2-/3-way tables, Wasserstein, C2ST, rules). Prints a markdown table.
Not yet here (issue 4): direct prompting, SDV GaussianCopula, UCI Adult, the paper's rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llmsynthor import Synthesizer, load_spec, load_targets
from llmsynthor.datasets import ecommerce_sample
from llmsynthor.evaluation import evaluate
from llmsynthor.rules import parse_rule

ROOT = Path(__file__).resolve().parents[1]


def _values_in_cells(codes: dict[str, np.ndarray], targets, rng) -> pd.DataFrame:
    """Records from per-variable cell indices: categorical labels, numeric values uniform in bins."""
    axes = {a.variable: a for t in targets for a in t.axes}
    columns = {}
    for name in targets.schema.names:
        axis, idx = axes[name], codes[name]
        if axis.is_numeric:
            lo, hi = axis.edges[idx], axis.edges[idx + 1]
            if targets.schema[name].type == "integer":
                columns[name] = np.floor(lo + rng.random(idx.size) * (hi - lo)).astype(int)
            else:
                columns[name] = lo + rng.random(idx.size) * (hi - lo)
        else:
            columns[name] = np.asarray(axis.labels)[idx]
    return pd.DataFrame(columns)


def independent(targets, n, rng) -> pd.DataFrame:
    marginals = {t.variables[0]: t for t in targets if len(t.variables) == 1}
    codes = {v: rng.choice(t.counts.size, size=n, p=t.counts / t.counts.sum()) for v, t in marginals.items()}
    return _values_in_cells(codes, targets, rng)


def ipf(targets, n, rng) -> pd.DataFrame:
    from ipfn import ipfn

    names = targets.schema.names
    axes = {a.variable: a for t in targets for a in t.axes if len(t.variables) == 1}
    shape = tuple(axes[v].size for v in names)
    fitted = ipfn.ipfn(np.ones(shape), [t.counts for t in targets],
                       [[names.index(v) for v in t.variables] for t in targets], convergence_rate=1e-8).iteration()
    flat = fitted.ravel() / fitted.sum()
    cells = np.unravel_index(rng.choice(flat.size, size=n, p=flat), shape)
    return _values_in_cells(dict(zip(names, cells)), targets, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-llm", action="store_true", help="skip llmsynthor (baselines only)")
    args = parser.parse_args()
    spec = load_spec(ROOT / "examples" / "ecommerce" / "spec.yaml")
    targets = load_targets(spec)
    rules = [parse_rule(r, spec.record_schema) for r in spec.rules]
    truth = ecommerce_sample(20_000, seed=2026)
    n, rng = targets.n, np.random.default_rng(0)

    runs: dict[str, tuple[pd.DataFrame, float, str, str]] = {}
    for name, make in [("real sample (floor)", lambda: ecommerce_sample(n, seed=12345)),
                       ("independent marginals", lambda: independent(targets, n, rng)),
                       ("IPF (ipfn) + sampling", lambda: ipf(targets, n, rng))]:
        start = time.perf_counter()
        records = make()
        runs[name] = (records, time.perf_counter() - start, "0", "0")
    if not args.no_llm:
        from llmsynthor.api import make_backend

        backend = make_backend(spec.llm)
        start = time.perf_counter()
        result = Synthesizer(spec, backend, targets=targets).run()
        wall = time.perf_counter() - start
        u = result.usage
        runs[f"llmsynthor, {backend.name.split(':')[1]} ({u.cache_hits}/{u.calls} cached)"] = (
            result.records, wall, str(u.calls), f"{(u.prompt_tokens + u.completion_tokens) / n:.1f}")

    print(f"## E-commerce, n = {n}; held-out and C2ST against 20,000 draws of the true network\n")
    print("| method | target TVD mean | target JSD mean | held-out JSD mean | held-out SRMSE mean | C2ST | W age | W price "
          "| rule violations | wall s | LLM calls | tokens/record |")
    print("|---|" + "---:|" * 11)
    floor = None
    for name, (records, wall, calls, tokens) in runs.items():
        ev = evaluate(records, targets, reference=truth, rules=rules, seed=0)
        s = ev.summary()
        floor = floor or s
        print(f"| {name} | {s['target_tvd_mean']:.4f} | {s['target_jsd_mean']:.4f} | {s['heldout_jsd_mean']:.4f} "
              f"({s['heldout_jsd_mean'] / floor['heldout_jsd_mean']:.1f}× floor) | {s['heldout_srmse_mean']:.3f} | {s['c2st']:.3f} "
              f"| {ev.wasserstein['age']:.2f} | {ev.wasserstein['price']:.1f} | {s['rule_violations']:.2%} | {wall:.1f} | {calls} | {tokens} |")
    print("\nJSD = Jensen-Shannon distance, base 2; held-out = the 32 two- and three-way tables that are not targets, "
          "binned with the targets' bins; C2ST = |accuracy - 0.5| of a 5-fold gradient-boosting classifier on balanced classes.")


if __name__ == "__main__":
    main()
