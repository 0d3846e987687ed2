"""The pairwise prior: the model's token probabilities decide how focus cells of tables that no
joint table links are combined, so records avoid combinations the model finds implausible."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeLLM, KnowingFakeLLM

from llmsynthor import Synthesizer, load_targets
from llmsynthor.core.metrics import tvd
from llmsynthor.core.statistics import count_all
from llmsynthor.declarations.spec import parse_spec
from llmsynthor.prior.copula import pairs_to_score, prior_levels, score_prior

SPEC = {
    "name": "households", "entity": "person", "n_records": 1000, "seed": 3,
    "variables": {
        "relationship": {"type": "categorical", "values": ["Husband", "Wife", "Own-child"]},
        "sex": {"type": "categorical", "values": ["Male", "Female"]},
        "age": {"type": "integer", "min": 0, "max": 90},
    },
    "targets": [
        {"name": "relationship", "variables": ["relationship"],
         "cells": [{"relationship": "Husband", "count": 400}, {"relationship": "Wife", "count": 400}, {"relationship": "Own-child", "count": 200}]},
        {"name": "sex", "variables": ["sex"], "cells": [{"sex": "Male", "count": 500}, {"sex": "Female", "count": 500}]},
        {"name": "age_relationship", "variables": ["age", "relationship"], "cells": [
            {"age": "[0,18)", "relationship": "Own-child", "count": 200}, {"age": "[18,90]", "relationship": "Husband", "count": 400},
            {"age": "[18,90]", "relationship": "Wife", "count": 400}]},
    ],
    "synthesis": {"max_iterations": 12},
}
# sex has fewer levels, so it is the context: P(relationship | sex)
KNOWLEDGE = {("sex = Male", "relationship"): (0.78, 0.02, 0.2), ("sex = Female", "relationship"): (0.02, 0.78, 0.2)}


def run(**synthesis):
    spec = parse_spec({**SPEC, "synthesis": {**SPEC["synthesis"], **synthesis}})
    llm = KnowingFakeLLM(KNOWLEDGE, seed=1, domains={"age": (0, 90)})
    return spec, llm, Synthesizer(spec, llm).run()


def test_only_pairs_no_table_crosses_are_scored():
    targets = load_targets(parse_spec(SPEC))
    levels = prior_levels(targets)
    assert {v: levels[v].axis.size for v in levels} == {"relationship": 3, "sex": 2, "age": 2}
    # relationship × age is a target table: not part of the prior, only checked against it;
    # sex (2 levels) is the context of both free pairs
    free, checked = pairs_to_score(targets, levels)
    assert sorted(free) in ([("age", "sex"), ("sex", "relationship")], [("sex", "age"), ("sex", "relationship")])
    assert checked == [("age", "relationship")]


def test_lifts_follow_the_models_conditionals():
    targets = load_targets(parse_spec(SPEC))
    llm = KnowingFakeLLM(KNOWLEDGE)
    prior = score_prior(targets, llm, targets.schema, check=False)
    lift = prior.lift("relationship", "sex")  # scored the other way round, read transposed
    assert lift.shape == (3, 2)
    assert lift[0, 0] == pytest.approx(0.78 / 0.40) and lift[0, 1] == pytest.approx(0.02 / 0.40)
    assert lift[2, 0] == pytest.approx(1.0)
    assert len(llm.scorings) == 4  # 2 levels of sex for each of the two pairs
    checked = score_prior(targets, KnowingFakeLLM(KNOWLEDGE), targets.schema)
    assert list(checked.checked) == [("age", "relationship")] and ("age", "relationship") not in checked.lifts


@pytest.mark.parametrize("mode", [{"records": "proposals"}, {"records": "joint", "prior_strength": 1.0}])
def test_records_avoid_what_the_model_finds_implausible_and_still_match_every_table(mode):
    spec, llm, with_prior = run(**mode)
    _, _, without = run(pairwise_prior=False, **mode)
    for result in (with_prior, without):
        assert result.converged
        targets = load_targets(spec)
        assert all(tvd(c, t.counts) <= 0.01 for c, t in zip(count_all(result.records, targets), targets))

    def share(result, rel, sex):
        r = result.records
        return float(((r["relationship"] == rel) & (r["sex"] == sex)).mean())

    assert share(with_prior, "Husband", "Female") < 0.04 and share(with_prior, "Wife", "Male") < 0.04
    assert share(without, "Husband", "Female") > 0.12  # pinned independently: about 0.4 × 0.5
    assert with_prior.pairwise_prior[0]["lift"] < 0.2 or with_prior.pairwise_prior[0]["lift"] > 1.5


def test_a_backend_without_probabilities_is_noted_not_fatal():
    spec = parse_spec(SPEC)
    result = Synthesizer(spec, FakeLLM(seed=1, domains={"age": (0, 90)})).run()
    assert result.pairwise_prior is None
    assert any("gives no token probabilities" in note for note in result.notes)


@pytest.mark.slow
@pytest.mark.model
def test_the_default_model_knows_husbands_are_male():
    """Through the real Qwen2.5-Coder-1.5B: option probabilities from its logits."""
    from llmsynthor.llm.embedded import EmbeddedLLM
    from llmsynthor.prior.prompts import option_messages

    targets = load_targets(parse_spec(SPEC))
    levels = prior_levels(targets)
    llm = EmbeddedLLM("qwen2.5-coder-1.5b", n_ctx=1024)
    p = {}
    for i, rel in enumerate(["Husband", "Wife"]):
        messages, prefix, options = option_messages(targets.schema, "relationship", levels["relationship"].axis, i,
                                                     "sex", levels["sex"].axis)
        choice = llm.option_probabilities(messages, prefix, options)
        assert options == ["Male", "Female"] and np.isclose(sum(choice.probabilities), 1)
        p[rel] = choice.probabilities
    assert p["Husband"][0] > 0.75 and p["Wife"][1] > 0.75, p


@pytest.mark.parametrize("records", ["proposals", "both"])
def test_a_resumed_run_counts_the_priors_scorings_once(tmp_path, records):
    from llmsynthor import BackendError

    class Failing(KnowingFakeLLM):
        def complete_json(self, *args, **kwargs):
            if len(self.calls) >= 3:
                raise BackendError("the server went away", retryable=True)
            return super().complete_json(*args, **kwargs)

    spec = parse_spec({**SPEC, "synthesis": {**SPEC["synthesis"], "records": records}})
    whole = Synthesizer(spec, KnowingFakeLLM(KNOWLEDGE, seed=1, domains={"age": (0, 90)})).run()
    with pytest.raises(BackendError):
        Synthesizer(spec, Failing(KNOWLEDGE, seed=1, domains={"age": (0, 90)}), checkpoint_dir=tmp_path).run()
    llm = KnowingFakeLLM(KNOWLEDGE, seed=1, domains={"age": (0, 90)})
    resumed = Synthesizer(spec, llm, checkpoint_dir=tmp_path).run(resume=True)
    assert llm.scorings  # the prior is scored again for the rest of the run ...
    assert resumed.usage.option_scorings == whole.usage.option_scorings > 0  # ... and counted once
