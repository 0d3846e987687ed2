"""How many copies of each candidate a zone gets: list balancing, then integerizing, zone by zone.

The zone step of population synthesis as PopulationSim does it, for any record shape,
deterministic and independent of the executor. Everything here is arrays:

* ``incidence`` (candidates × controls): what ONE copy of each candidate adds to each control
  (:mod:`.incidence`).
* ``targets`` (controls): one zone's totals; ``nan`` means "no control here".
* ``importance`` (controls): how much each control matters, relative to the others (default 1).
* ``initial`` (candidates): prior weights ≥ 0.

:func:`list_balance` finds fractional weights by iterative proportional updating (IPU);
:func:`~.integerize.integerize` turns them into whole copies summing exactly to the zone's total with a
small MILP (HiGHS; for big pools over the support of the LP relaxation), falling back to
largest-remainder rounding, and says which it used. :func:`balance_zones` does both for every
zone, in this process, in processes or on Ray, with byte-identical results whatever the executor
and the number of workers: each zone is a pure function of its own inputs (no RNG, no clock, no
time limit unless asked for; sums are numpy's pairwise sums and scipy.sparse products, whose
order depends on the data only, never BLAS, whose order may depend on threads and alignment; HiGHS
is deterministic for given options), and results are keyed by zone, in sorted order. A sweep of list
balancing is a compiled loop (numba) summing as numpy does (:mod:`.sums`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from multiprocessing import get_context

import numba
import numpy as np
import scipy.sparse as sp

from ..core.errors import Problem, SpecError
from .incidence import as_incidence, importance_of, vector
from .integerize import MAX_BINARIES, IntegerResult, integerize_checked
from .sums import pairwise_sum

__all__ = ["BalanceResult", "ZoneBalance", "EXECUTORS", "list_balance", "apportion", "balance_zones", "unreachable"]

EXECUTORS = ("local", "processes", "ray")
PATIENCE, PROGRESS = 50, 0.01  # list balancing gives up when the last 50 sweeps cut its error by less than 1 %


@dataclass(frozen=True)
class BalanceResult:
    """Fractional weights from :func:`list_balance` and how well they meet the controls.

    ``achieved`` is what the weights add up to in every control (also the uncontrolled ones);
    ``relative_errors`` is |achieved − target| / max(target, 1), ``nan`` where there is no control;
    ``unreachable`` lists the controls with a positive target that no candidate can reach.
    ``converged`` means every reachable control is within the tolerance.
    """

    weights: np.ndarray
    achieved: np.ndarray
    relative_errors: np.ndarray
    unreachable: np.ndarray
    iterations: int
    converged: bool

    @property
    def max_error(self) -> float:
        """The worst relative error over the reachable controls (0.0 when there are none)."""
        errors = self.relative_errors.copy()
        errors[self.unreachable] = np.nan
        return float(np.nanmax(errors)) if np.any(np.isfinite(errors)) else 0.0


@dataclass(frozen=True)
class ZoneBalance:
    """One zone's copies: ``counts`` per candidate and the diagnostics of both steps."""

    zone: str
    counts: np.ndarray
    balance: BalanceResult
    integer: IntegerResult


# ---------------------------------------------------------------------------------------------------------------------
# list balancing


def list_balance(incidence, targets, initial, importance=None, *, max_iterations: int = 2000,
                 tolerance: float = 1e-9) -> BalanceResult:
    """Fractional weights meeting the targets, by iterative proportional updating (Ye et al. 2009).

    One sweep visits the controls in order; for control j the weights of the candidates that
    contribute to it are multiplied by (t_j / Σ_h w_h a_hj)^α_j, with α_j = importance_j / max
    importance: the most important controls take full IPU steps, a control k times less important
    steps 1/k as far (in log scale), so where targets disagree the important ones win; on consistent
    targets every control is met whatever its importance, only more slowly. Sweeps stop when every
    reachable control is within ``tolerance`` (relative error |achieved − t| / max(t, 1)), when the
    last 50 sweeps cut the error by less than 1 % (targets that contradict each other), or after
    ``max_iterations`` sweeps; short of convergence, the weights of the sweep with the smallest error
    are returned (later sweeps of IPU on contradictory targets only pile the weight onto fewer
    candidates) and ``converged`` is False. The error there is the importance-weighted share of the
    targets missed, Σ α_j |achieved_j − t_j| / Σ α_j t_j — not the worst relative error, which one
    small cell that cannot be met (a target of 1 no candidate meets without breaking another) holds
    at its first value, so that the first sweep's weights would be returned however far later
    sweeps bring every table.

    A target of 0 is honoured exactly: the candidates that contribute to it get weight 0 from the
    start (PopulationSim keeps a small floor instead; here a zero count means none). A control with
    a positive target that no remaining candidate reaches is reported in ``unreachable`` and skipped.
    Candidates with initial weight 0 keep weight 0.
    """
    matrix = as_incidence(incidence)
    candidates, controls = matrix.shape
    return _list_balance(matrix, vector("targets", targets, controls, allow_nan=True), vector("initial", initial, candidates),
                         importance_of(importance, controls), max_iterations, tolerance)


def _reach(matrix: sp.csr_array, targets: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the candidates left in play: active and adding nothing to a control whose target is 0, the
    controls some such candidate adds to)."""
    zero = np.flatnonzero(~np.isnan(targets) & (targets == 0))
    if zero.size:
        active = active & (matrix[:, zero].sum(axis=1) == 0)
    rows = np.flatnonzero(active)
    reach = (matrix[rows].sum(axis=0) > 0) if rows.size else np.zeros(matrix.shape[1], dtype=bool)
    return active, np.asarray(reach).ravel()


def unreachable(incidence, targets) -> np.ndarray:
    """The controls with a positive target that no candidate can reach (one adding to a control whose
    target is 0 is out of play), as :func:`list_balance` reports them."""
    matrix = as_incidence(incidence)
    targets = vector("targets", targets, matrix.shape[1], allow_nan=True)
    _, reach = _reach(matrix, targets, np.ones(matrix.shape[0], dtype=bool))
    return np.flatnonzero(~np.isnan(targets) & (np.nan_to_num(targets) > 0) & ~reach)


def _list_balance(matrix: sp.csr_array, targets: np.ndarray, initial: np.ndarray, importance: np.ndarray,
                  max_iterations: int, tolerance: float) -> BalanceResult:
    if max_iterations < 1 or not tolerance > 0:
        raise ValueError(f"max_iterations must be ≥ 1 and tolerance > 0, got {max_iterations} and {tolerance}")
    controlled = ~np.isnan(targets)
    active, reach = _reach(matrix, targets, initial > 0)
    weights = np.where(active, initial, 0.0)
    rows = np.flatnonzero(active)
    unreachable = np.flatnonzero(controlled & (np.nan_to_num(targets) > 0) & ~reach)
    steps = np.flatnonzero(controlled & (np.nan_to_num(targets) > 0) & reach)
    alpha = importance / importance[steps].max() if steps.size else importance
    sub = matrix[rows][:, steps].tocsc()  # candidates still in play × controls to fit
    sub.sort_indices()
    w = weights[rows].copy()
    step_targets, step_alpha = targets[steps], alpha[steps]
    indptr, indices, data = sub.indptr.astype(np.int64), sub.indices.astype(np.int64), sub.data.astype(np.float64)
    products = np.empty(len(data))
    scale = np.maximum(step_targets, 1.0)
    total = max(float((step_targets * step_alpha).sum()), 1e-12)
    converged = steps.size == 0
    iterations = 0
    best_error, best, history = np.inf, w.copy(), []
    while not converged and iterations < max_iterations and not (len(history) > PATIENCE and history[-1] > (1 - PROGRESS) * history[-1 - PATIENCE]):
        iterations += 1
        _sweep(indptr, indices, data, w, step_targets, step_alpha, products)
        gap = np.abs(sub.T @ w - step_targets)
        converged = float((gap / scale).max()) <= tolerance
        error = float((gap * step_alpha).sum() / total)  # the importance-weighted share of the targets missed
        if error < best_error:
            best_error, best = error, w.copy()
        history.append(best_error)
    w = w if converged else best
    weights[rows] = w
    achieved = matrix.T @ weights
    relative = np.where(controlled, np.abs(achieved - np.nan_to_num(targets)) / np.maximum(np.nan_to_num(targets), 1.0), np.nan)
    return BalanceResult(weights, achieved, relative, unreachable, iterations, converged)


@numba.njit(cache=True)
def _sweep(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, w: np.ndarray, targets: np.ndarray, alpha: np.ndarray,
           products: np.ndarray) -> None:
    """One IPU sweep over the controls (columns of a CSC matrix) in order, in place on ``w``; each
    control's current total summed pairwise, as numpy sums, so that its order depends on the length only."""
    for k in range(len(targets)):
        lo, hi = indptr[k], indptr[k + 1]
        for p in range(lo, hi):
            products[p] = w[indices[p]] * data[p]
        current = pairwise_sum(products, lo, hi)
        if current > 0:
            ratio = targets[k] / current
            if alpha[k] != 1.0:
                ratio = ratio ** alpha[k]
            for p in range(lo, hi):
                w[indices[p]] *= ratio


# ---------------------------------------------------------------------------------------------------------------------
# zones


@dataclass(frozen=True)
class _Shared:
    """What every zone needs: sent once to each worker."""

    matrix: sp.csr_array
    importance: np.ndarray
    max_iterations: int
    tolerance: float
    node_limit: int
    mip_rel_gap: float
    max_binaries: int
    time_limit: float | None
    unit: str


def _balance_zone(shared: _Shared, zone: str, targets: np.ndarray, initial: np.ndarray, total: int) -> ZoneBalance:
    balance = _list_balance(shared.matrix, targets, initial, shared.importance, shared.max_iterations, shared.tolerance)
    integer = integerize_checked(shared.matrix, targets, balance.weights, total, shared.importance, shared.node_limit, shared.mip_rel_gap,
                          shared.max_binaries, shared.time_limit, f"{shared.unit}s")
    return ZoneBalance(zone, integer.counts, balance, integer)


_WORKER: dict[str, _Shared] = {}


def _start_worker(shared: _Shared) -> None:
    _WORKER["shared"] = shared


def _worker_zone(zone: str, targets: np.ndarray, initial: np.ndarray, total: int) -> ZoneBalance:
    return _balance_zone(_WORKER["shared"], zone, targets, initial, total)


def apportion(incidence, zone_targets: np.ndarray, region_targets: np.ndarray, initial, totals, importance=None) -> np.ndarray:
    """Zone targets ``[zone, control]`` with the region-only controls (NaN in every zone) shared out
    among the zones, as PopulationSim's meta controls are: each zone is list-balanced to its own
    controls, starting from ``initial`` scaled to its total, and a region control's target is split
    in proportion to what the zones' balanced candidates give it (by the zones' totals where no zone
    reaches it). The shares of one control sum to its region target, so zones balanced to these
    targets add up to the region's tables too, as far as each zone's own controls allow (a second
    round of sharing out, measured, brings them no closer)."""
    matrix = as_incidence(incidence)
    zone_targets = np.array(zone_targets, dtype=float)
    region = vector("region_targets", region_targets, matrix.shape[1], allow_nan=True)
    totals = np.asarray(totals, dtype=float)
    missing = np.isnan(zone_targets).all(axis=0) & ~np.isnan(region)
    if not missing.any() or len(zone_targets) == 0:
        return zone_targets
    start = vector("initial", initial, matrix.shape[0])
    start = start / start.sum()
    weights = importance_of(importance, matrix.shape[1])
    achieved = np.zeros((len(zone_targets), int(missing.sum())))
    for z, (own, total) in enumerate(zip(zone_targets, totals)):
        if total > 0:
            achieved[z] = (matrix.T @ list_balance(matrix, own, start * total, weights).weights)[missing]
    reached = achieved.sum(axis=0)
    by_total = totals / max(totals.sum(), 1e-300)
    share = np.where(reached > 0, achieved / np.maximum(reached, 1e-300), by_total[:, None])
    zone_targets[:, missing] = share * region[missing]
    return zone_targets


def balance_zones(incidence, zone_targets: Mapping[str, np.ndarray], initial, importance=None, *, totals: Mapping[str, int],
                  executor: str = "local", workers: int = 1, ray_address: str | None = None,
                  progress: Callable[[str, int, int], None] | None = None, max_iterations: int = 2000, tolerance: float = 1e-9,
                  node_limit: int = 20, mip_rel_gap: float = 1e-4, max_binaries: int = MAX_BINARIES,
                  time_limit: float | None = None, unit: str = "unit") -> dict[str, ZoneBalance]:
    """Every zone's copies of the candidates: :func:`list_balance` then :func:`~.integerize.integerize`, zone by zone.

    ``initial`` holds the region's weights; each zone starts from them scaled to its total
    (``initial · totals[zone] / Σ initial``). ``executor`` is ``"local"`` (in this process, one zone
    after the other), ``"processes"`` (a pool of ``workers`` spawned processes; a script calling it
    needs the usual ``if __name__ == "__main__":`` guard) or ``"ray"`` (one task per zone; Ray as it
    is when already initialized, else connected to ``ray_address`` or started locally with
    ``workers`` CPUs, and shut down again here; the incidence goes to the object store once).
    ``progress`` is called in this process as ``progress(zone, done, zones)`` when a zone finishes.
    The result is keyed by zone in sorted order and byte-identical whatever the executor and the
    number of workers. The remaining keywords are those of :func:`list_balance` and :func:`integerize`.

    Raises :class:`~llmsynthor.core.errors.SpecError` for an unknown executor, a missing ray package, and,
    all at once, zones without a total or without targets, totals that are not whole numbers ≥ 0
    and zones with a positive total but no candidate left once their zero targets are honoured.
    ``unit`` names one copy in messages ("household").
    """
    if executor not in EXECUTORS:
        raise SpecError(Problem("executor", f"must be one of {', '.join(map(repr, EXECUTORS))} (got {executor!r})"))
    if not isinstance(workers, int | np.integer) or workers < 1:
        raise SpecError(Problem("workers", f"must be a whole number ≥ 1 (got {workers!r})"))
    matrix = as_incidence(incidence)
    candidates, controls = matrix.shape
    prior = vector("initial", initial, candidates)
    if not np.any(prior > 0):
        raise ValueError("initial must have a positive entry, got none")
    shared = _Shared(matrix, importance_of(importance, controls), max_iterations, tolerance, node_limit, mip_rel_gap, max_binaries, time_limit,
                     unit)
    jobs = _zone_jobs(matrix, zone_targets, totals, prior, unit)
    done: dict[str, ZoneBalance] = {}

    def finished(result: ZoneBalance) -> None:
        done[result.zone] = result
        if progress is not None:
            progress(result.zone, len(done), len(jobs))

    if executor == "local":
        for job in jobs:
            finished(_balance_zone(shared, *job))
    elif executor == "processes":
        _run_processes(shared, jobs, int(workers), finished)
    else:
        _run_ray(shared, jobs, int(workers), ray_address, finished)
    return {zone: done[zone] for zone in sorted(done)}


def _zone_jobs(matrix: sp.csr_array, zone_targets: Mapping[str, np.ndarray], totals: Mapping[str, int],
               prior: np.ndarray, unit: str) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(zone, targets, initial weights, total) per zone in sorted order; every problem with the zones raised at once."""
    problems = [Problem(f"zone {zone!r}", f"has targets but no {unit} total") for zone in sorted(set(zone_targets) - set(totals))]
    problems += [Problem(f"zone {zone!r}", f"has a {unit} total but no targets") for zone in sorted(set(totals) - set(zone_targets))]
    prior_total = float(np.add.reduce(prior))
    jobs = []
    for zone in sorted(set(zone_targets) & set(totals)):
        total = totals[zone]
        if not (isinstance(total, int | np.integer | float | np.floating) and total >= 0 and int(total) == total):
            problems.append(Problem(f"zone {zone!r}", f"{unit} total must be a whole number ≥ 0 (got {total!r})"))
            continue
        targets = vector(f"targets of zone {zone!r}", zone_targets[zone], matrix.shape[1], allow_nan=True)
        zero = np.flatnonzero(targets == 0)
        usable = (prior > 0) & ((matrix[:, zero].sum(axis=1) == 0) if zero.size else True)
        if total > 0 and not usable.any():
            problems.append(Problem(f"zone {zone!r}", f"has {int(total)} {unit}s but every candidate {unit} falls in a control whose target is 0"))
        jobs.append((zone, targets, prior * (int(total) / prior_total), int(total)))
    if problems:
        raise SpecError(problems)
    return jobs


def _run_processes(shared: _Shared, jobs: list, workers: int, finished: Callable[[ZoneBalance], None]) -> None:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_start_worker, initargs=(shared,)) as pool:
        pending = {pool.submit(_worker_zone, *job) for job in jobs}
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(ready, key=lambda f: f.result().zone):
                finished(future.result())


def _owned(result: ZoneBalance) -> ZoneBalance:
    """A zone's result with writable arrays of its own (Ray hands back read-only views of its object store)."""
    balance, integer = result.balance, result.integer
    balance = replace(balance, **{f: np.array(getattr(balance, f)) for f in ("weights", "achieved", "relative_errors", "unreachable")})
    integer = replace(integer, **{f: np.array(getattr(integer, f)) for f in ("counts", "achieved", "absolute_errors")})
    return ZoneBalance(result.zone, integer.counts, balance, integer)


def _run_ray(shared: _Shared, jobs: list, workers: int, address: str | None, finished: Callable[[ZoneBalance], None]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise SpecError(Problem("executor", f"'ray' needs the ray package, which is not installed ({exc}): pip install ray==2.60.0")) from exc
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_balance_zone)
        shared_ref = ray.put(shared)
        pending = [remote.remote(shared_ref, *job) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for result in ray.get(ready):
                finished(_owned(result))
    finally:
        if started:
            ray.shutdown()

