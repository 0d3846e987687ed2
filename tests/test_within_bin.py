"""Numeric values inside a proposal's range follow a smooth density through the targets' bin shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import EXAMPLE
from fakes import FakeLLM
from scipy.stats import wasserstein_distance

from llmsynthor import Synthesizer, load_spec, load_targets
from llmsynthor.core.within_bin import ValueShape, shapes_from_targets
from llmsynthor.declarations.spec import with_overrides
from llmsynthor.prior.proposals import Proposal, draw, profile


@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLE / "spec.yaml")


def test_the_shape_passes_through_every_bin_share_and_is_monotone():
    edges, counts = np.array([0.0, 10, 20, 50]), np.array([10.0, 30, 60])
    shape = ValueShape.from_bins(edges, counts)
    assert np.allclose(shape.mass(edges[:-1], edges[1:]), counts / counts.sum())
    assert np.all(np.diff(shape.cdf) >= 0)
    # uniform inside a bin would put half of [10, 20)'s mass below 15; the rising density puts less there
    assert shape.mass(10, 15) < 0.5 * shape.mass(10, 20)


def test_draws_stay_in_the_proposal_range_and_match_its_profile(spec):
    targets = load_targets(spec)
    shapes = shapes_from_targets(targets)
    price = {t.name: t for t in targets}["category_price"]
    proposal = Proposal({"gender": "Male", "location": "Developed", "category": "Electronics", "payment": "Online"},
                        {"age": (30.0, 44.0), "price": (300.0, 1500.0)}, 100)
    records = draw(proposal, 4000, targets.schema, np.random.default_rng(0), shapes)
    assert records["age"].between(30, 44).all() and records["price"].between(300, 1500).all()
    expected = profile(proposal, price, targets.schema, shapes).reshape(price.shape)[0]  # Electronics row
    seen = np.bincount(np.searchsorted(price.axes[1].edges, records["price"], side="right") - 1, minlength=6) / len(records)
    assert np.allclose(seen, expected, atol=0.01)
    uniform = profile(proposal, price, targets.schema).reshape(price.shape)[0]
    assert not np.allclose(expected, uniform, atol=0.01)  # the shape matters


def test_smooth_values_are_closer_to_real_data_than_uniform_ones(spec):
    reference = pd.read_csv(EXAMPLE / "reference.csv")
    distances = {}
    for mode in ("uniform", "smooth"):
        result = Synthesizer(with_overrides(spec, {"synthesis.within_bin": mode}),
                             FakeLLM(seed=1, domains={"age": (18, 90), "price": (0, 2000)})).run()
        assert result.converged
        distances[mode] = {v: wasserstein_distance(result.records[v], reference[v]) for v in ("age", "price")}
    assert distances["smooth"]["age"] < 0.8 * distances["uniform"]["age"], distances
    assert distances["smooth"]["price"] < 0.8 * distances["uniform"]["price"], distances


def test_an_empirical_shape_gives_the_values_own_shares():
    ages = np.array([20] * 30 + [21] * 10 + [40] * 60)
    shape = ValueShape.empirical(ages, 18, 91, integer=True)
    assert shape.mass(20, 21) == pytest.approx(0.3) and shape.mass(21, 22) == pytest.approx(0.1)
    assert shape.mass(22, 40) == pytest.approx(0.0) and shape.mass(40, 41) == pytest.approx(0.6)
    draws = shape.sample(18, 91, (np.arange(1000) + 0.5) / 1000)
    assert (np.floor(draws) == 40).mean() == pytest.approx(0.6, abs=0.002)
    prices = np.random.default_rng(0).normal(500, 50, 5000)
    smooth = ValueShape.empirical(prices, 0, 2000, integer=False)
    assert smooth.mass(0, 500) == pytest.approx((prices < 500).mean(), abs=0.002)
    assert smooth.mean(0, 2000) == pytest.approx(prices.mean(), abs=1.0)
