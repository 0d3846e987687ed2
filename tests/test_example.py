"""The committed e-commerce example is exactly what its generator produces from the paper's network."""

from __future__ import annotations

import importlib.util

import numpy as np
from conftest import EXAMPLE

from llmsynthor.evaluation.datasets import ecommerce_sample


def test_generator_reproduces_the_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", EXAMPLE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    assert (tmp_path / "reference.csv").read_text() == (EXAMPLE / "reference.csv").read_text()
    for path in sorted((EXAMPLE / "targets").glob("*.csv")):
        assert (tmp_path / "targets" / path.name).read_text() == path.read_text(), path.name
    assert len(list((tmp_path / "targets").glob("*.csv"))) == 9


def test_the_network_follows_the_paper():
    sample = ecommerce_sample(40_000, seed=0)
    assert sample["age"].between(18, 90).all() and sample["price"].between(0, 2000).all()
    assert abs((sample["gender"] == "Male").mean() - 0.45) < 0.01
    assert abs((sample["location"] == "Developed").mean() - 0.40) < 0.01
    developed = sample[sample["location"] == "Developed"]
    assert abs((developed["payment"] == "Online").mean() - 0.70) < 0.015
    young_men = sample[(sample["age"] < 35) & (sample["gender"] == "Male")]
    assert abs((young_men["category"] == "Electronics").mean() - 0.50) < 0.02
    electronics = sample.loc[sample["category"] == "Electronics", "price"]
    food = sample.loc[sample["category"] == "Food & Beverages", "price"]
    assert electronics.mean() > 2.5 * food.mean()
    assert np.isclose(sample["age"].median(), np.median(ecommerce_sample(40_000, seed=1)["age"]), atol=1.5)
