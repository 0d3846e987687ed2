"""The non-LLM path scales with the records, not with their square: the calibration works on kinds
of candidates (alike in everything the targets see), never on a matrix over all candidates.
No timings here (bench/bench_scale.py measures them); the tests check the sizes of what is built."""

from __future__ import annotations

import numpy as np
import pytest
from test_calibration import SPEC, candidates

from llmsynthor import load_targets
from llmsynthor.core.statistics import count_all
from llmsynthor.declarations.spec import parse_spec
from llmsynthor.fitting import calibration
from llmsynthor.fitting.calibration import _kinds, calibrate


def test_kinds_group_rows_alike_in_every_column_and_name_their_first_row():
    a = np.array([0, 1, 0, 1, 0, -1])
    b = np.array([2.5, 2.5, 2.5, 3.0, 2.5, np.nan])
    kind, first = _kinds([a, b], a.size)
    assert kind.tolist() == [0, 1, 0, 2, 0, 3] and first.tolist() == [0, 1, 3, 5]


def test_the_exact_fit_has_a_column_per_kind_not_per_candidate(monkeypatch):
    targets = load_targets(parse_spec(SPEC))
    pool = candidates(60_000, seed=4)  # kinds: 2 sexes × (9 age × work cells or none of them)
    shapes = []
    original = calibration.linprog

    def spy(c, **kwargs):
        shapes.append(kwargs["A_eq"].shape)
        return original(c, **kwargs)

    monkeypatch.setattr(calibration, "linprog", spy)
    result = calibrate(pool, targets, 10_000, np.random.default_rng(0))
    cells = sum(t.counts.size for t in targets)
    (rows, columns), = shapes
    assert rows == cells + 1 and columns <= 2 * 20 + 2 * cells  # kept and added per kind, then the slacks
    kept = pool.iloc[result.keep]
    assert len(set(result.keep)) == 10_000
    for table, counts in zip(targets, count_all(kept, targets)):
        assert np.abs(counts - table.counts * 20).sum() <= 2, table.name


def test_the_kinds_give_the_same_sample_and_an_exact_fit_as_good_as_one_column_per_candidate():
    targets = load_targets(parse_spec(SPEC))
    pool = candidates(3000, seed=7)
    result = calibrate(pool, targets, 500, np.random.default_rng(3))
    d = result.as_dict()
    assert d["l1_after_sampling"] == 8.0  # as with a column per candidate (the same sample: the same random stream)
    assert d["l1_after_swaps"] == 0.0 and d["kept"] == 500


def test_candidates_of_a_kind_are_kept_from_the_sample_first():
    kind = np.array([0, 0, 0, 1, 1])
    sampled = np.array([False, True, False, False, True])
    order = np.array([4, 3, 2, 1, 0])
    assert calibration._choose(kind, sampled, order, np.array([2, 1])).tolist() == [1, 2, 4]


def test_a_mean_target_over_float_values_is_still_met():
    spec = parse_spec({**SPEC, "variables": {**SPEC["variables"], "income": {"type": "float", "min": 0, "max": 100}},
                       "targets": SPEC["targets"] + [{"name": "mean_income", "variables": ["sex"], "mean_of": "income",
                                                      "cells": [{"sex": "Male", "value": 60.0}, {"sex": "Female", "value": 40.0}]}]})
    targets = load_targets(spec)
    pool = candidates(5000, seed=3)
    pool["income"] = np.random.default_rng(0).uniform(0, 100, len(pool))
    kept = pool.iloc[calibrate(pool, targets, 500, np.random.default_rng(1)).keep]
    means = kept.groupby("sex")["income"].mean()
    assert means["Male"] == pytest.approx(60.0, rel=0.01) and means["Female"] == pytest.approx(40.0, rel=0.01)


def test_the_distance_to_the_closest_record_is_measured_on_a_sample_of_a_large_set(monkeypatch):
    import pandas as pd
    from conftest import EXAMPLE
    from sklearn.neighbors import NearestNeighbors

    from llmsynthor import load_spec
    from llmsynthor.evaluation import scoring as evaluation
    from llmsynthor.evaluation.datasets import ecommerce_sample

    targets = load_targets(load_spec(EXAMPLE / "spec.yaml"))
    reference = pd.read_csv(EXAMPLE / "reference.csv")
    queried = []
    original = NearestNeighbors.kneighbors

    def spy(self, X=None, *args, **kwargs):
        queried.append(len(X))
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(NearestNeighbors, "kneighbors", spy)
    monkeypatch.setattr(evaluation, "DCR_SAMPLE", 300)
    records = ecommerce_sample(3000, seed=5)
    sampled = evaluation.evaluate(records, targets, reference=reference)
    assert queried == [300, 1000]  # 300 synthetic records, then the reference's held-out half
    monkeypatch.setattr(evaluation, "DCR_SAMPLE", 20_000)
    whole = evaluation.evaluate(records, targets, reference=reference)
    assert queried[2:] == [3000, 1000] and whole.dcr_reference_median == sampled.dcr_reference_median
    assert sampled.dcr_median == pytest.approx(whole.dcr_median, rel=0.15)


def test_column_generation_reaches_the_optimum_of_the_whole_lp(monkeypatch):
    targets = load_targets(parse_spec(SPEC))
    pool = candidates(20_000, seed=6)
    pool["age"] = np.random.default_rng(1).integers(0, 100, len(pool))
    objectives, sizes = {"whole": [], "grown": []}, {"whole": [], "grown": []}
    original = calibration.linprog
    for label, limit in (("whole", 10**9), ("grown", 5)):
        def spy(c, label=label, **kwargs):
            res = original(c, **kwargs)
            if "integrality" not in kwargs:
                objectives[label].append(res.fun)
                sizes[label].append(kwargs["A_eq"].shape[1])
            return res

        monkeypatch.setattr(calibration, "linprog", spy)
        monkeypatch.setattr(calibration, "LP_COLUMNS", limit)
        calibrate(pool, targets, 3000, np.random.default_rng(0))
    assert objectives["grown"][-1] == pytest.approx(objectives["whole"][0], abs=1e-6)
    assert sizes["grown"][0] < sizes["whole"][0] and len(sizes["grown"]) > 1  # fewer columns, then priced in
