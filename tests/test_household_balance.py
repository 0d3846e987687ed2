"""The zone step: list balancing, integerization and the executors (no LLM, small arrays)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp

from llmsynthor.core.errors import SpecError
from llmsynthor.fitting.balance import EXECUTORS, apportion, balance_zones, list_balance
from llmsynthor.fitting.integerize import integerize

SIZES = 4  # households of 1..4 persons
AGES = 3  # person age bins


def households(n: int = 40, seed: int = 0) -> np.ndarray:
    """Incidence of ``n`` candidate households: [total, households by size 1..4, persons by age bin]."""
    rng = np.random.default_rng(seed)
    size = np.arange(n) % SIZES + 1  # every size present
    incidence = np.zeros((n, 1 + SIZES + AGES))
    incidence[:, 0] = 1
    incidence[np.arange(n), size] = 1
    for h in range(n):
        np.add.at(incidence[h], 1 + SIZES + rng.integers(0, AGES, size[h]), 1)
    return incidence


def targets_of(incidence: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return incidence.T @ counts.astype(float)


@pytest.fixture
def problem():
    """40 candidates and targets that some whole, everywhere-positive counts meet exactly."""
    incidence = households()
    truth = np.random.default_rng(1).integers(1, 4, incidence.shape[0])
    return incidence, targets_of(incidence, truth), int(truth.sum())


def deviation(incidence: np.ndarray, targets: np.ndarray, counts: np.ndarray) -> float:
    return float(np.nansum(np.abs(incidence.T @ counts - targets)))


# ---------------------------------------------------------------------------------------------------------------------
# list balancing


def test_list_balance_meets_consistent_targets(problem):
    incidence, targets, total = problem
    result = list_balance(incidence, targets, np.ones(incidence.shape[0]))
    assert result.converged and result.unreachable.size == 0
    assert result.max_error <= 1e-6
    np.testing.assert_allclose(incidence.T @ result.weights, targets, rtol=1e-6)
    np.testing.assert_allclose(result.achieved, targets, rtol=1e-6)
    assert result.weights.sum() == pytest.approx(total)
    assert 1 < result.iterations < 2000


def test_one_cell_that_cannot_be_met_does_not_freeze_the_rest_at_the_first_sweep(problem):
    """Two controls that only candidate 0 reaches ask 5 and 3 of it: no weight meets both, so the
    worst relative error stays ≥ .4 whatever the sweeps do. The weights returned are still those that
    meet every other control (the best sweep by the share of the targets missed, not by that worst
    error, which would return the first sweep's weights: 1.5 % of the targets missed)."""
    incidence, targets, _ = problem
    extra = np.zeros((incidence.shape[0], 2))
    extra[0] = 1
    result = list_balance(np.hstack([incidence, extra]), np.append(targets, [5.0, 3.0]), np.ones(incidence.shape[0]))
    assert not result.converged and result.relative_errors[-2:].max() >= 0.4
    assert np.abs(incidence.T @ result.weights - targets).sum() / targets.sum() < 1e-3


def test_list_balance_takes_sparse_incidence_alike(problem):
    incidence, targets, _ = problem
    dense = list_balance(incidence, targets, np.ones(incidence.shape[0]))
    sparse = list_balance(sp.csr_matrix(incidence), targets, np.ones(incidence.shape[0]))
    assert sparse.weights.tobytes() == dense.weights.tobytes()


def test_uncontrolled_cells_are_ignored(problem):
    incidence, targets, _ = problem
    free = targets.copy()
    free[1 + SIZES:] = np.nan  # ages not controlled
    result = list_balance(incidence, free, np.ones(incidence.shape[0]))
    assert result.converged
    assert np.isnan(result.relative_errors[1 + SIZES:]).all()
    np.testing.assert_allclose(result.achieved[:1 + SIZES], targets[:1 + SIZES], rtol=1e-9)


def test_unreachable_control_is_reported_without_dividing_by_zero(problem):
    incidence, targets, _ = problem
    incidence = np.hstack([incidence, np.zeros((incidence.shape[0], 1))])  # a cell no candidate falls in
    result = list_balance(incidence, np.append(targets, 5.0), np.ones(incidence.shape[0]))
    assert result.unreachable.tolist() == [incidence.shape[1] - 1]
    assert result.converged  # every reachable control is met
    assert result.relative_errors[-1] == pytest.approx(1.0)
    assert result.max_error <= 1e-6


def test_zero_target_excludes_its_candidates():
    incidence = households()
    truth = np.random.default_rng(2).integers(1, 4, incidence.shape[0])
    four = incidence[:, SIZES] == 1
    truth[four] = 0  # no household of four persons in this zone
    targets = targets_of(incidence, truth)
    assert targets[SIZES] == 0
    result = list_balance(incidence, targets, np.ones(incidence.shape[0]))
    assert result.converged
    assert np.all(result.weights[four] == 0) and np.all(result.weights[~four] > 0)
    counts = integerize(incidence, targets, result.weights, int(truth.sum())).counts
    assert np.all(counts[four] == 0)


def test_initial_zeros_stay_zero(problem):
    incidence, targets, total = problem
    initial = np.ones(incidence.shape[0])
    initial[[3, 17]] = 0
    result = list_balance(incidence, targets, initial)
    assert result.weights[3] == 0 and result.weights[17] == 0
    assert result.max_error <= 1e-6
    counts = integerize(incidence, targets, result.weights, total).counts
    assert counts[3] == 0 and counts[17] == 0


def test_importance_decides_between_contradicting_targets(problem):
    incidence, targets, _ = problem
    contradicting = targets.copy()
    contradicting[0] *= 0.9  # 10 % fewer households than the cells count
    equal = list_balance(incidence, contradicting, np.ones(incidence.shape[0]))
    importance = np.ones(incidence.shape[1])
    importance[0] = 10.0
    total_first = list_balance(incidence, contradicting, np.ones(incidence.shape[0]), importance)
    assert not equal.converged and not total_first.converged
    assert equal.iterations < 2000  # it gives up once the error stops falling
    assert equal.relative_errors[0] > 0.1 > 3 * total_first.relative_errors[0]
    assert np.nanmax(total_first.relative_errors[1:]) > np.nanmax(equal.relative_errors[1:])  # the others gave way


def test_bad_inputs_are_rejected(problem):
    incidence, targets, _ = problem
    with pytest.raises(ValueError, match="targets must have 8 entries, got 7"):
        list_balance(incidence, targets[:-1], np.ones(incidence.shape[0]))
    with pytest.raises(ValueError, match="initial must be finite and ≥ 0"):
        list_balance(incidence, targets, -np.ones(incidence.shape[0]))
    with pytest.raises(ValueError, match="incidence must be finite and ≥ 0"):
        list_balance(-incidence, targets, np.ones(incidence.shape[0]))
    with pytest.raises(ValueError, match="importance must be > 0"):
        list_balance(incidence, targets, np.ones(incidence.shape[0]), np.zeros(incidence.shape[1]))


# ---------------------------------------------------------------------------------------------------------------------
# integerization


def test_integerize_hits_the_total_and_nearly_the_controls(problem):
    incidence, targets, total = problem
    weights = list_balance(incidence, targets, np.ones(incidence.shape[0])).weights
    result = integerize(incidence, targets, weights, total)
    assert result.counts.dtype == np.int64 and np.all(result.counts >= 0)
    assert result.counts.sum() == total
    assert result.method == "milp" and result.optimal and result.candidates > 0 and result.note == ""
    assert np.all(np.abs(result.counts - weights) < 1)  # floor or floor + 1 of every weight
    assert result.absolute_errors[0] == 0
    assert np.nanmax(result.absolute_errors) <= 1
    np.testing.assert_array_equal(result.achieved, incidence.T @ result.counts)
    # the MILP does at least as well as rounding the largest remainders (a point it could have chosen)
    floors = np.floor(weights)
    rounded = floors.copy()
    rounded[np.argsort(-(weights - floors), kind="stable")[:total - int(floors.sum())]] += 1
    assert deviation(incidence, targets, result.counts) <= deviation(incidence, targets, rounded)


def test_integerize_is_reproducible(problem):
    incidence, targets, total = problem
    weights = list_balance(incidence, targets, np.ones(incidence.shape[0])).weights
    first = integerize(incidence, targets, weights, total).counts
    assert all(integerize(incidence, targets, weights, total).counts.tobytes() == first.tobytes() for _ in range(3))


def test_integerize_scales_weights_to_the_total(problem):
    incidence, targets, total = problem
    weights = list_balance(incidence, targets, np.ones(incidence.shape[0])).weights
    half = integerize(incidence, targets / 2, weights, total // 2)
    assert half.counts.sum() == total // 2
    assert np.all(np.abs(half.counts - weights * (total // 2) / weights.sum()) < 1)


def test_large_pools_go_through_the_lp_relaxation(problem):
    incidence, targets, total = problem
    weights = list_balance(incidence, targets, np.ones(incidence.shape[0])).weights
    result = integerize(incidence, targets, weights, total, max_binaries=10)
    assert result.counts.sum() == total
    assert result.method == "milp" and not result.optimal
    assert result.candidates < incidence.shape[0]
    assert result.note.startswith(f"the MILP saw {result.candidates} of {incidence.shape[0]} candidates")
    assert np.nanmax(result.absolute_errors) <= 1


def test_without_controls_the_largest_remainders_win(problem):
    incidence, _, _ = problem
    weights = np.linspace(0.05, 0.95, incidence.shape[0])  # sums to 20
    result = integerize(incidence, np.full(incidence.shape[1], np.nan), weights, 10)
    assert result.method == "rounding" and result.optimal
    assert sorted(np.flatnonzero(result.counts)) == list(range(incidence.shape[0] - 10, incidence.shape[0]))


def test_whole_weights_are_kept(problem):
    incidence, targets, total = problem
    truth = np.random.default_rng(1).integers(1, 4, incidence.shape[0])
    result = integerize(incidence, targets, truth.astype(float), total)
    assert result.method == "floor"
    np.testing.assert_array_equal(result.counts, truth)
    assert np.nansum(result.absolute_errors) == 0


def test_integerize_needs_somewhere_to_put_households(problem):
    incidence, targets, _ = problem
    with pytest.raises(ValueError, match="weights must have a positive entry to place 5 households"):
        integerize(incidence, targets, np.zeros(incidence.shape[0]), 5, units="households")
    assert integerize(incidence, targets, np.zeros(incidence.shape[0]), 0).counts.sum() == 0


# ---------------------------------------------------------------------------------------------------------------------
# zones and executors


@pytest.fixture
def zones():
    """6 zones over 60 candidates, each zone made of whole households of the pool, so fits exist."""
    incidence = households(60, seed=3)
    rng = np.random.default_rng(4)
    zone_targets, totals = {}, {}
    for z in range(6):
        counts = np.bincount(rng.choice(60, 40 + 10 * z, p=rng.dirichlet(np.ones(60))), minlength=60)
        zone_targets[f"zone-{5 - z}"] = targets_of(incidence, counts)  # names not in creation order
        totals[f"zone-{5 - z}"] = int(counts.sum())
    return incidence, zone_targets, totals, rng.uniform(0.5, 2.0, 60)


def check_zones(results, zone_targets, totals) -> None:
    assert list(results) == sorted(zone_targets)
    for zone, result in results.items():
        assert result.zone == zone
        assert result.counts.sum() == totals[zone]
        assert result.integer.absolute_errors[0] == 0
        assert result.balance.max_error < 1e-6


def test_balance_zones_locally(zones):
    incidence, zone_targets, totals, initial = zones
    seen = []
    results = balance_zones(incidence, zone_targets, initial, totals=totals, progress=lambda *args: seen.append(args))
    check_zones(results, zone_targets, totals)
    assert seen == [(zone, i + 1, 6) for i, zone in enumerate(sorted(zone_targets))]


def test_executors_give_byte_identical_results(zones):
    ray = pytest.importorskip("ray", reason="the ray executor needs `pip install ray==2.60.0`")
    if ray.is_initialized():
        pytest.skip("a Ray session is already running in this process")
    incidence, zone_targets, totals, initial = zones
    results = {}
    for executor in EXECUTORS:
        seen = []
        results[executor] = balance_zones(incidence, zone_targets, initial, totals=totals, executor=executor, workers=2,
                                          progress=lambda zone, done, count, seen=seen: seen.append((done, count)))
        check_zones(results[executor], zone_targets, totals)
        assert seen == [(i + 1, 6) for i in range(6)]
    assert not ray.is_initialized()  # what it started, it shut down
    local = results["local"]
    for executor in ("processes", "ray"):
        for zone, result in results[executor].items():
            assert result.counts.tobytes() == local[zone].counts.tobytes(), (executor, zone)
            assert result.balance.weights.tobytes() == local[zone].balance.weights.tobytes(), (executor, zone)
    assert results["ray"]["zone-0"].counts.flags.writeable


def test_unknown_executor_is_a_spec_error(zones):
    incidence, zone_targets, totals, initial = zones
    with pytest.raises(SpecError) as error:
        balance_zones(incidence, zone_targets, initial, totals=totals, executor="dask")
    assert str(error.value) == "executor: must be one of 'local', 'processes', 'ray' (got 'dask')"
    with pytest.raises(SpecError, match=r"workers: must be a whole number ≥ 1 \(got 0\)"):
        balance_zones(incidence, zone_targets, initial, totals=totals, workers=0)


def test_missing_ray_says_how_to_install_it(zones, monkeypatch):
    incidence, zone_targets, totals, initial = zones
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(SpecError, match=r"pip install ray==2\.60\.0"):
        balance_zones(incidence, zone_targets, initial, totals=totals, executor="ray")


def test_every_zone_problem_is_reported_at_once(zones):
    incidence, zone_targets, totals, initial = zones
    zone_targets = dict(zone_targets, extra=zone_targets["zone-0"])
    totals = dict(totals, lonely=10, **{"zone-1": -3})
    empty = zone_targets["zone-2"].copy()
    empty[1:1 + SIZES] = 0  # no household of any size
    zone_targets["zone-2"] = empty
    with pytest.raises(SpecError) as error:
        balance_zones(incidence, zone_targets, initial, totals=totals, unit="household")
    assert [str(p) for p in error.value.problems] == [
        "zone 'extra': has targets but no household total",
        "zone 'lonely': has a household total but no targets",
        "zone 'zone-1': household total must be a whole number ≥ 0 (got -3)",
        f"zone 'zone-2': has {totals['zone-2']} households but every candidate household falls in a control whose target is 0",
    ]


def test_apportion_shares_region_controls_so_that_balanced_zones_add_up_to_them(zones):
    """Zones control the total and sizes; the ages are a region table only. Shared out, zones balanced
    to their own controls and their share of the ages meet the region's ages too."""
    incidence, zone_targets, totals, initial = zones
    names = sorted(zone_targets)
    full = np.array([zone_targets[z] for z in names])
    region = full.sum(axis=0)
    ages = slice(1 + SIZES, None)
    given = full.copy()
    given[:, ages] = np.nan  # ages known for the region only
    shared = apportion(incidence, given, region, initial, np.array([totals[z] for z in names]))
    np.testing.assert_array_equal(shared[:, :1 + SIZES], full[:, :1 + SIZES])  # the zones' own controls untouched
    np.testing.assert_allclose(shared[:, ages].sum(axis=0), region[ages])  # the shares add up to the region
    alone = sum(incidence.T @ list_balance(incidence, given[i], initial * totals[z] / initial.sum()).weights
                for i, z in enumerate(names))
    together = sum(incidence.T @ list_balance(incidence, shared[i], initial * totals[z] / initial.sum()).weights
                   for i, z in enumerate(names))
    off, before = np.abs(together[ages] - region[ages]).max(), np.abs(alone[ages] - region[ages]).max()
    assert before > 20 and off < 0.02 * before and off < 0.005 * region[ages].min()


def test_apportion_leaves_targets_alone_without_region_only_controls(zones):
    incidence, zone_targets, totals, initial = zones
    full = np.array([zone_targets[z] for z in sorted(zone_targets)])
    np.testing.assert_array_equal(apportion(incidence, full, full.sum(axis=0), initial, np.ones(len(full))), full)
