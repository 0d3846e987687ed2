"""One candidate for each unit (fitting.choice.choose_one): a pick within every unit's rows, a draw by the
weights, passes of exchanges that never end above the draw's error and reach an exact solution where
single moves can, seeded runs identical, bad ``starts`` refused, NaN targets not counted."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from llmsynthor.fitting.choice import choose_one


def error_of(incidence, picks, targets, scale) -> float:
    """Σ scale |achieved − target| over the cells whose target is not NaN, computed here from the picks."""
    achieved = np.asarray(sp.csr_array(incidence)[picks].sum(axis=0)).ravel()
    counted = ~np.isnan(targets)
    return float(np.sum(np.asarray(scale)[counted] * np.abs(achieved[counted] - targets[counted])))


def random_problem(seed: int, units: int = 40, cells: int = 12):
    """Units of 1 to 6 candidates, each candidate a few random cells with counts 1-2; targets near a random pick."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, units)
    starts = np.r_[0, np.cumsum(sizes)]
    dense = (rng.random((starts[-1], cells)) < 0.25) * rng.integers(1, 3, (starts[-1], cells))
    hidden = starts[:-1] + (rng.random(units) * sizes).astype(int)
    targets = dense[hidden].sum(axis=0) + rng.integers(-2, 3, cells)
    return sp.csr_array(dense.astype(float)), starts, np.maximum(targets, 0).astype(float), rng.random(starts[-1])


def categories_problem(seed: int, units: int = 60):
    """Every unit may take any (a, b) of 3 × 4 values; the targets are the margins of a hidden assignment, so single
    moves always reach them: a unit of an over-filled value can move to an under-filled one."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((12, 7))
    for k in range(12):
        rows[k, k // 4] = rows[k, 3 + k % 4] = 1
    incidence = sp.csr_array(np.tile(rows, (units, 1)))
    starts = np.arange(units + 1) * 12
    hidden = rng.integers(0, 12, units)
    targets = rows[hidden].sum(axis=0)
    return incidence, starts, targets


def test_one_candidate_is_picked_within_every_units_rows():
    incidence, starts, targets, weights = random_problem(1)
    for passes in (0, 30):
        choice = choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(5), passes=passes)
        assert choice.picks.shape == (len(starts) - 1,)
        assert np.all(choice.picks >= starts[:-1]) and np.all(choice.picks < starts[1:])
        achieved = np.asarray(incidence[choice.picks].sum(axis=0)).ravel()
        assert np.allclose(choice.achieved, achieved)  # what it says it achieved is what the picks add up to
        assert choice.error == pytest.approx(error_of(incidence, choice.picks, targets, np.ones(len(targets))))


def test_the_draw_follows_the_weights_within_each_unit():
    units = 50
    incidence = sp.csr_array(np.tile(np.eye(3), (units, 1)))
    starts = np.arange(units + 1) * 3
    weights = np.tile([0.0, 1.0, 0.0], units)  # the middle candidate only
    choice = choose_one(incidence, starts, np.zeros(3), weights, 1.0, np.random.default_rng(0), passes=0, first="drawn")
    assert (choice.picks - starts[:-1]).tolist() == [1] * units
    assert choice.error == choice.first_error == units  # nothing moved: every unit adds 1 to a cell whose target is 0
    uniform = choose_one(incidence, starts, np.zeros(3), np.zeros(3 * units), 1.0, np.random.default_rng(0), passes=0, first="drawn")
    assert set((uniform.picks - starts[:-1]).tolist()) == {0, 1, 2}  # all-zero weights: uniform within the unit


@pytest.mark.parametrize("seed", range(5))
def test_an_exact_solution_among_the_candidates_is_reached(seed):
    incidence, starts, targets = categories_problem(seed)
    choice = choose_one(incidence, starts, targets, np.ones(incidence.shape[0]), 1.0, np.random.default_rng(seed), first="drawn")
    assert choice.first_error > 0  # the uniform draw misses the margins …
    assert choice.error == pytest.approx(0, abs=1e-9) and np.allclose(choice.achieved, targets)  # … the passes meet them
    assert choice.moves > 0
    rounded = choose_one(incidence, starts, targets, np.ones(incidence.shape[0]), 1.0, np.random.default_rng(seed), passes=0)
    assert rounded.error == pytest.approx(0, abs=1e-9)  # rounding one unit at a time meets them before any pass


@pytest.mark.parametrize("seed", range(10))
def test_rounding_unit_by_unit_starts_closer_than_a_draw(seed):
    incidence, starts, targets, weights = random_problem(seed)
    rng = np.random.default_rng
    rounded = choose_one(incidence, starts, targets, weights, 1.0, rng(seed), passes=0)
    drawn = choose_one(incidence, starts, targets, weights, 1.0, rng(seed), passes=0, first="drawn")
    assert rounded.error < drawn.error


def test_an_unknown_first_assignment_is_refused():
    incidence, starts, targets, weights = random_problem(0)
    with pytest.raises(ValueError, match="first must be"):
        choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(0), first="best")


def test_units_with_their_own_cells_each_take_the_candidate_meeting_them():
    """Unit g's candidates count in cells of g alone: each must end on the one candidate its targets name."""
    rng = np.random.default_rng(3)
    units, k = 30, 5
    incidence = sp.csr_array(np.kron(np.eye(units), np.eye(k)).T)  # [unit·k + j, unit·k + j] = 1
    wanted = rng.integers(0, k, units)
    targets = np.zeros(units * k)
    targets[np.arange(units) * k + wanted] = 1
    choice = choose_one(incidence, np.arange(units + 1) * k, targets, np.ones(units * k), 1.0, np.random.default_rng(0))
    assert (choice.picks - np.arange(units) * k).tolist() == wanted.tolist()
    assert choice.error == 0


@pytest.mark.parametrize("seed", range(12))
def test_the_error_after_the_passes_is_never_above_the_first_error(seed):
    incidence, starts, targets, weights = random_problem(seed)
    scale = np.random.default_rng(seed + 100).random(len(targets)) + 0.1
    choice = choose_one(incidence, starts, targets, weights, scale, np.random.default_rng(seed))
    rounded = choose_one(incidence, starts, targets, weights, scale, np.random.default_rng(seed), passes=0)
    assert choice.first_error == pytest.approx(rounded.error)  # the same first assignment
    assert rounded.error == pytest.approx(error_of(incidence, rounded.picks, targets, scale))
    assert choice.error == pytest.approx(error_of(incidence, choice.picks, targets, scale))
    assert choice.error <= choice.first_error + 1e-9  # sideways passes may move units at equal error, never up


def test_passes_improve_on_most_random_draws():
    """Not only 'never worse': on random problems the exchanges lower the error."""
    improved = 0
    for seed in range(10):
        incidence, starts, targets, weights = random_problem(seed)
        choice = choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(seed))
        improved += choice.error < choice.first_error - 1e-9
    assert improved >= 8


def test_seeded_runs_are_identical_and_other_seeds_differ():
    incidence, starts, targets, weights = random_problem(7, units=80)
    runs = [choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(11)) for _ in range(2)]
    assert runs[0].picks.tolist() == runs[1].picks.tolist()
    assert (runs[0].error, runs[0].first_error, runs[0].passes, runs[0].moves) == (runs[1].error, runs[1].first_error,
                                                                                  runs[1].passes, runs[1].moves)
    other = choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(12), passes=0)
    first = choose_one(incidence, starts, targets, weights, 1.0, np.random.default_rng(11), passes=0)
    assert other.picks.tolist() != first.picks.tolist()


def test_a_dense_array_and_a_sparse_matrix_give_the_same_choice():
    incidence, starts, targets, weights = random_problem(4)
    a = choose_one(incidence.toarray(), starts, targets, weights, 1.0, np.random.default_rng(2))
    b = choose_one(sp.csr_matrix(incidence), starts, targets, weights, 1.0, np.random.default_rng(2))
    assert a.picks.tolist() == b.picks.tolist() and a.error == b.error


@pytest.mark.parametrize("starts", [
    [1, 2, 4],  # does not start at 0
    [0, 2, 3],  # does not end at the 4 candidates
    [0, 2, 5],  # ends beyond them
    [0, 2, 2, 4],  # a unit without candidates
    [0, 3, 2, 4],  # goes back
    [[0, 2, 4]],  # not one dimension
])
def test_bad_starts_are_refused(starts):
    with pytest.raises(ValueError, match="starts must rise from 0 to the number of candidates"):
        choose_one(np.eye(4), np.asarray(starts), np.ones(4), np.ones(4), 1.0, np.random.default_rng(0))


def test_empty_starts_are_refused_as_bad_starts():
    with pytest.raises(ValueError, match="starts must rise from 0"):
        choose_one(np.eye(4), np.zeros(0, dtype=np.int64), np.ones(4), np.ones(4), 1.0, np.random.default_rng(0))


def test_nan_targets_are_not_counted():
    """Cell 0 has no target: the 10 units fill cell 1's 3 exactly, the other 7 go to cell 0, and the error is 0."""
    units = 10
    incidence = sp.csr_array(np.tile(np.eye(2), (units, 1)))
    starts = np.arange(units + 1) * 2
    targets = np.array([np.nan, 3.0])
    scale = np.array([1000.0, 1.0])  # were the NaN cell counted, its weight would dominate
    choice = choose_one(incidence, starts, targets, np.ones(2 * units), scale, np.random.default_rng(1))
    assert choice.error == 0 and choice.achieved.tolist() == [7.0, 3.0]
    counted = choose_one(incidence, starts, np.array([0.0, 3.0]), np.ones(2 * units), scale, np.random.default_rng(1))
    assert counted.achieved.tolist() == [0.0, 10.0]  # a target of 0 there is counted: every unit leaves cell 0
    assert counted.error == 7.0


def test_nan_targets_leave_the_draw_and_the_error_of_the_other_cells():
    incidence, starts, targets, weights = random_problem(9)
    with_nan = targets.copy()
    with_nan[[0, 5]] = np.nan
    choice = choose_one(incidence, starts, with_nan, weights, 1.0, np.random.default_rng(3))
    assert np.isfinite(choice.error) and np.isfinite(choice.first_error)
    assert choice.error == pytest.approx(error_of(incidence, choice.picks, with_nan, np.ones(len(targets))))
    assert np.all(np.isfinite(choice.achieved))


def test_bad_targets_weights_and_incidence_are_refused():
    rng = np.random.default_rng(0)
    starts = np.array([0, 2, 4])
    with pytest.raises(ValueError, match="targets must have 4 entries"):
        choose_one(np.eye(4), starts, np.ones(3), np.ones(4), 1.0, rng)
    with pytest.raises(ValueError, match="weights must be finite and ≥ 0"):
        choose_one(np.eye(4), starts, np.ones(4), -np.ones(4), 1.0, rng)
    with pytest.raises(ValueError, match="incidence must be finite and ≥ 0"):
        choose_one(-np.eye(4), starts, np.ones(4), np.ones(4), 1.0, rng)


def test_reweighed_emphasis_favours_the_worst_met_tables_within_bounds():
    from llmsynthor.fitting.choice import BOUNDS, reweighed

    out = reweighed(np.ones(3), np.array([0.02, 0.005, 0.005]))
    assert out[0] > out[1] == out[2] and np.isclose(out[0] / out[1], 2.0)  # the square root of the ratio
    assert np.isclose(np.exp(np.mean(np.log(out))), 1.0)
    met = reweighed(np.ones(2), np.array([0.05, 0.0]))
    assert met[0] / met[1] <= BOUNDS[1] / BOUNDS[0] + 1e-9  # a table met exactly keeps some weight


@pytest.mark.parametrize("first", ["rounded", "drawn"])
def test_units_sharing_a_pool_each_pick_within_it_and_may_pick_the_same_candidate(first):
    incidence, starts, _ = categories_problem(0, units=1)  # one pool of the 12 (a, b)
    rng = np.random.default_rng(3)
    members = np.zeros(60, dtype=np.int64)  # 60 units alike share it; the targets are 60 units' margins
    hidden = rng.integers(0, 12, 60)
    rows = incidence.toarray()
    targets = rows[hidden].sum(axis=0)
    choice = choose_one(incidence, starts, targets, np.ones(12), 1.0, rng, first=first, members=members)
    assert choice.picks.shape == (60,) and np.all((choice.picks >= 0) & (choice.picks < 12))
    assert len(np.unique(choice.picks)) < 60  # 60 units among 12 candidates: some share one
    assert choice.error == pytest.approx(0.0)  # single moves reach the margins, as for units of their own
    assert np.allclose(choice.achieved, rows[choice.picks].sum(axis=0))


def test_units_sharing_pools_meet_what_units_with_copies_of_the_pools_meet():
    incidence, starts, targets, weights = random_problem(4, units=20)
    members = np.repeat(np.arange(20), 3)  # three units alike in each pool
    shared = choose_one(incidence, starts, 3 * targets, weights, 1.0, np.random.default_rng(1), members=members)
    assert np.all((shared.picks >= starts[members]) & (shared.picks < starts[members + 1]))
    copied = sp.vstack([incidence[starts[k]:starts[k + 1]] for k in members]).tocsr()  # the same, each unit its own rows
    own = np.r_[0, np.cumsum(np.diff(starts)[members])]
    rows = np.concatenate([np.arange(starts[k], starts[k + 1]) for k in members])
    alone = choose_one(copied, own, 3 * targets, weights[rows], 1.0, np.random.default_rng(1))
    assert shared.first_error == pytest.approx(alone.first_error) and shared.error == pytest.approx(alone.error)


def test_members_outside_the_pools_are_refused():
    with pytest.raises(ValueError, match="members must give each unit a pool among the 2"):
        choose_one(np.eye(4), np.array([0, 2, 4]), np.ones(4), np.ones(4), 1.0, np.random.default_rng(0), members=np.array([0, 2]))
