"""How good the model's pairwise prior is, and what asking differently changes (the embedded default model).

    python bench/bench_prior.py directions [--cases adult adult11 semcog]
    python bench/bench_prior.py self-agreement [--cases adult11 semcog]

directions: llmsynthor (records: joint) with each pair asked one way and both ways (the two lifts
combined by their geometric mean), at the strength the check chooses and at fixed ones: held-out
JS divergence, records breaking a rule, distinct records, the strength chosen, elicitation quality
(log-lift correlation with the truth over the pairs no table crosses, weighted by their mutual
information), option scorings and LLM seconds (0 when the response cache has the answers).
self-agreement: per pair no table crosses, how well the two directions agree with each other and
with the truth; whether agreement predicts reliability (correlation over pairs).
Cases and scoring are bench_methods.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import bench_methods as bm  # noqa: E402

from llmsynthor import Synthesizer, load_spec, load_targets  # noqa: E402
from llmsynthor.declarations.spec import with_overrides  # noqa: E402
from llmsynthor.prior.copula import LIFT_RANGE, score_prior  # noqa: E402
from llmsynthor.prior.prompts import option_messages  # noqa: E402
from llmsynthor.prior.tempering import log_lift_correlation  # noqa: E402

SETTINGS = (("one", "auto"), ("both", "auto"), ("one", 0.25), ("both", 0.25), ("one", 0.375), ("both", 0.375))


def directions(case: bm.Case, backend) -> None:
    spec, scorer = load_spec(case.spec_path), bm.Scorer(case)
    print(f"\n### {case.name}\n\n| directions | strength | held-out JSD | rules broken | distinct | chosen | elicitation | scorings | LLM s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for way, strength in SETTINGS:
        synth = Synthesizer(with_overrides(spec, {"synthesis.prior_directions": way, "synthesis.prior_strength": strength}), backend)
        result = synth.run()
        s, q = scorer.score(result.records), bm.elicitation_quality(synth.prior_, case.truth)
        print(f"| {way} | {strength} | {s['heldout_jsd']:.4f} | {s['rules_any']:.1%} | {s['distinct']:.0%} | {synth.prior_check_.strength:g} "
              f"| {q['mi_weighted']:.3f} | {result.usage.option_scorings} | {result.usage.seconds:.0f} |", flush=True)


def self_agreement(case: bm.Case, backend) -> None:
    targets = load_targets(load_spec(case.spec_path))
    prior = score_prior(targets, backend, targets.schema, phrasings=("plain",))
    levels, rows = prior.levels, []
    print(f"\n### {case.name}\n\n| pair | self-agreement | truth, one way | the other way | geometric mean | true MI |\n|---|---:|---:|---:|---:|---:|")
    for (c, a), lift in prior.lifts.items():
        conditionals = np.zeros((levels[a].axis.size, levels[c].axis.size))
        for i in range(levels[a].axis.size):
            messages, prefix, options = option_messages(targets.schema, a, levels[a].axis, i, c, levels[c].axis)
            conditionals[i] = backend.option_probabilities(messages, prefix, options).probabilities
        average = targets.shares(a, levels[a].axis) @ conditionals
        other = np.clip(conditionals / np.maximum(average, 1e-12), *LIFT_RANGE).T
        independent = np.outer(targets.shares(c, levels[c].axis), targets.shares(a, levels[a].axis))
        truth = bm.true_joint(case.truth, levels[c].axis, levels[a].axis)
        figures = [log_lift_correlation([(lift, independent * other)]), log_lift_correlation([(lift, truth)]),
                   log_lift_correlation([(other, truth)]), log_lift_correlation([(np.sqrt(lift * other), truth)])]
        mi = bm.mutual_information(truth)
        rows.append((*figures, mi))
        print(f"| {c} × {a} | " + " | ".join("–" if f is None else f"{f:.3f}" for f in figures) + f" | {mi:.4f} |", flush=True)
    ok = np.array([r for r in rows if None not in r[:4]], dtype=float)
    w = ok[:, 4]
    print(f"\nagreement vs truth (one way), correlation over {len(ok)} pairs: {np.corrcoef(ok[:, 0], ok[:, 1])[0, 1]:.3f}; "
          f"MI-weighted truth correlation: one way {np.average(ok[:, 1], weights=w):.3f}, the other {np.average(ok[:, 2], weights=w):.3f}, "
          f"geometric mean {np.average(ok[:, 3], weights=w):.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["directions", "self-agreement"])
    parser.add_argument("--cases", nargs="+", default=["adult", "adult11", "semcog"], choices=["ecommerce", "adult", "adult11", "semcog"])
    args = parser.parse_args(argv)
    from llmsynthor.api import make_backend

    started, backend = time.perf_counter(), None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            case = bm.make_case(name, Path(tmp) / name)
            backend = backend or make_backend(load_spec(case.spec_path).llm)
            (directions if args.what == "directions" else self_agreement)(case, backend)
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
