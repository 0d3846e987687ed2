"""The compiled loops sum as numpy does (llmsynthor.fitting.sums), so that compiling a loop changed its
speed and never its results: every length up to a few blocks and a long one, offsets into the array,
numbers of very different sizes (where the order of adding shows)."""

from __future__ import annotations

import numpy as np

from llmsynthor.fitting.sums import pairwise_sum, segment_sum


def test_pairwise_sum_is_numpys_sum_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 1000, 1023, 5000, 77_777]:
        a = rng.random(n + 3) * rng.choice([1.0, 1e-8, 1e8], n + 3)
        for start in (0, 3):
            assert pairwise_sum(a, start, start + n) == np.add.reduce(a[start:start + n]), n


def test_segment_sum_is_reduceats_sum_bit_for_bit():
    rng = np.random.default_rng(1)
    a = rng.random(20_000) * rng.choice([1.0, 1e-8, 1e8], 20_000)
    cuts = np.r_[0, np.unique(rng.integers(1, 20_000, 3_000)), 20_000]
    expected = np.add.reduceat(a, cuts[:-1])
    assert all(segment_sum(a, cuts[i], cuts[i + 1]) == expected[i] for i in range(len(cuts) - 1))
    assert any(segment_sum(a, cuts[i], cuts[i + 1]) != pairwise_sum(a, cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1))
