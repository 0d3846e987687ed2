"""A flat run's manifest: everything needed to judge and reproduce it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ...core.rules import NOT_SCORED
from ...declarations.spec import Spec
from ...outputs.files import backend_facts, manifest_head, platform_facts
from .result import SynthesisResult


def manifest(spec: Spec, result: SynthesisResult, *, backend, records_path: Path | None) -> dict:
    """Everything needed to judge and reproduce a run (no secrets: the spec carries none and the
    API key is only ever read from the environment)."""
    usage = result.usage
    llm_seconds = usage.seconds
    n_records = len(result.records)
    return {
        **manifest_head(spec),
        "targets_sha256": result.targets,  # each target by content (its shares), wherever its cells came from
        "seed": spec.seed,
        "n_records": n_records,
        "records_path": str(records_path) if records_path else None,
        **backend_facts(spec.llm, backend),
        "converged": result.converged,
        "tolerance_tvd": spec.synthesis.tolerance_tvd,
        "dependencies": result.dependencies,
        "pairwise_prior": {"strongest_lifts": result.pairwise_prior,
                           "definition": "lift = P(a | c) / average over c of P(a | c), from the model's token probabilities"}
        if result.pairwise_prior is not None else None,
        "records_from": spec.synthesis.records,
        "prior_calibration": result.prior_check,
        "constraints": spec.constraints,
        "realism": (f"scored by `llmsynthor evaluate` ({len(spec.rules)} rule{'s' if len(spec.rules) != 1 else ''}), "
                    "not by run") if spec.rules else NOT_SCORED,
        "llm": usage.as_dict(),
        "records_per_llm_call": round(n_records / usage.calls, 2) if usage.calls else None,
        "time": {
            "wall_seconds": round(result.wall_seconds, 3),
            "llm_seconds": round(llm_seconds, 3),
            "non_llm_seconds": round(result.wall_seconds - llm_seconds, 3),
            "non_llm_share": round((result.wall_seconds - llm_seconds) / result.wall_seconds, 4) if result.wall_seconds else None,
        },
        "metrics": {"definitions": "TVD = 0.5*sum|p-q|; JSD = Jensen-Shannon distance, log base 2 (sqrt of the divergence)",
                    "per_table": result.distances, "numeric_targets": result.numeric},
        "diversity": result.diversity,
        "calibration": result.calibration,
        "iterations": [asdict(h) for h in result.history],
        "proposals": result.proposals,
        "notes": result.notes,
        **platform_facts(),
    }
