"""Statistics: records map to the right cells (checked against a plain per-record loop), metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsynthor import load_spec, load_targets
from llmsynthor.core.metrics import jsd, tvd, tvd_by_group
from llmsynthor.core.statistics import count, count_all, encode_axis
from llmsynthor.evaluation.datasets import ecommerce_sample


@pytest.fixture(scope="module")
def targets(request):
    from conftest import EXAMPLE

    return load_targets(load_spec(EXAMPLE / "spec.yaml"))


def naive_count(records: pd.DataFrame, table) -> np.ndarray:
    out = np.zeros(table.shape)
    for _, row in records.iterrows():
        idx = []
        for axis in table.axes:
            value = row[axis.variable]
            if axis.is_numeric:
                hits = [i for i in range(axis.size) if axis.edges[i] <= value < axis.edges[i + 1]
                        or (i == axis.size - 1 and value == axis.edges[-1])]
                idx.append(hits[0])
            else:
                idx.append(axis.labels.index(value))
        out[tuple(idx)] += 1
    return out


def test_counts_match_a_per_record_loop(targets):
    records = ecommerce_sample(300, seed=3)
    for table in targets:
        np.testing.assert_array_equal(count(records, table), naive_count(records, table), err_msg=table.name)


def test_the_reference_reproduces_its_own_targets(targets):
    from conftest import EXAMPLE

    reference = pd.read_csv(EXAMPLE / "reference.csv")
    for table, counts in zip(targets, count_all(reference, targets)):
        np.testing.assert_allclose(counts, table.counts, err_msg=table.name)


def test_integer_bins_close_on_the_domain_max(targets):
    age_axis = targets.tables[0].axes[0]
    assert age_axis.labels[-1].endswith("90]")
    np.testing.assert_array_equal(encode_axis(age_axis, np.array([18, 89, 90])), [0, 5, 5])


def test_float_domain_max_falls_in_the_last_bin(targets):
    price_axis = targets.tables[4].axes[0]
    assert encode_axis(price_axis, np.array([2000.0]))[0] == price_axis.size - 1
    assert encode_axis(price_axis, np.array([0.0]))[0] == 0


def test_metrics():
    assert tvd(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jsd(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert tvd(np.array([5, 5]), np.array([1, 1])) == 0
    assert jsd(np.array([3, 1]), np.array([1, 1])) == pytest.approx(np.sqrt(0.0487949406953985), rel=1e-6)


def test_tvd_by_group_is_each_groups_tvd_and_one_where_a_side_is_empty():
    rng = np.random.default_rng(1)
    s, t, group = rng.integers(0, 5, 200).astype(float), rng.integers(0, 5, 200).astype(float), rng.integers(0, 6, 200)
    s[group == 3] = 0  # the target has counts there, the synthetic none: missed entirely
    s[group == 5] = t[group == 5] = 0  # neither: nothing to miss
    got = tvd_by_group(s, t, group, 7)  # group 6 has no cells
    for g in (0, 1, 2, 4):
        assert got[g] == pytest.approx(tvd(s[group == g], t[group == g]), abs=1e-12)
    assert got[3] == 1.0 and got[5] == 0.0 and got[6] == 0.0


def test_values_outside_every_cell_are_not_counted(targets):
    records = ecommerce_sample(10, seed=1)
    records.loc[0, "gender"] = "Unknown"
    gender = targets.tables[1]
    assert count(records, gender).sum() == 9
