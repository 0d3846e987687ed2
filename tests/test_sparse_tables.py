"""Sparse tables (core.tables.Listed): a table of trips over zones × zones is held on the cells it lists
plus one cell elsewhere for each value of its district side, never on every cell — and scores, fits and
polishes exactly as the same table held on every cell would (every cell it does not list has target 0,
and TVD, JS distance and the L1 error are linear in a count whose target is 0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_trips_inputs import refused, spec_dict, text, write_case

from llmsynthor.core.levels import LevelTable
from llmsynthor.core.metrics import jsd, tvd, tvd_by_group
from llmsynthor.core.tables import Axis, Listed
from llmsynthor.shapes.trips import inputs as trips_inputs
from llmsynthor.shapes.trips.days import CellParts, Coder
from llmsynthor.shapes.trips.districts import cell_groups, cell_weights
from llmsynthor.shapes.trips.evaluation import evaluate_trips
from llmsynthor.shapes.trips.inputs import TRIPS, read_inputs
from llmsynthor.shapes.trips.polish import polish_stops
from llmsynthor.shapes.trips.spec import load

# zone × zone × period: every trip of the small case's OD by period table, at zone level (18 of 72 cells listed)
ZONE_OD = "origin,destination,depart,count\n" + "".join(
    f'{o},{d},"{p}",{n}\n' for o, d, p, n in [
        (1, 2, "[0,12)", 4), (1, 3, "[12,23]", 3), (2, 1, "[0,12)", 3), (2, 3, "[12,23]", 3), (3, 1, "[0,12)", 3), (3, 2, "[12,23]", 2),
        (1, 4, "[0,12)", 3), (2, 5, "[12,23]", 2), (3, 6, "[0,12)", 3), (3, 4, "[12,23]", 2),
        (4, 1, "[0,12)", 2), (5, 2, "[12,23]", 4), (6, 3, "[0,12)", 2), (4, 2, "[12,23]", 2),
        (4, 5, "[0,12)", 5), (5, 6, "[12,23]", 5), (6, 4, "[0,12)", 4), (5, 4, "[12,23]", 4)])


def zone_case(tmp_path, name="case"):
    """The small case with the zone-level OD table in place of the district one."""
    spec = spec_dict()
    spec["targets"][0] = {"name": "OD zones by period", "variables": ["origin", "destination", "depart"], "file": "targets/zone_od.csv"}
    return load(write_case(tmp_path / name, tables={"zone_od.csv": ZONE_OD}, spec=spec))


def random_case(seed: int):
    """A table of 3 axes, most cells 0, its listed cells, and records' flat cells."""
    rng = np.random.default_rng(seed)
    shape = (7, 9, 4)
    dense = np.where(rng.random(shape) < 0.15, rng.integers(1, 20, shape), 0).astype(float)
    flat = rng.integers(0, dense.size, 300)
    return shape, dense, np.flatnonzero(dense.ravel()), flat


@pytest.mark.parametrize("by", [0, 1, 2])
def test_counts_on_the_listed_cells_score_as_counts_on_every_cell(by):
    shape, dense, keys, flat = random_case(by)
    listed = Listed(shape, keys, by)
    assert listed.size == len(keys) + shape[by]
    cell = listed.cell(flat)
    compact = np.bincount(cell, minlength=listed.size).astype(float)
    target = np.r_[dense.ravel()[keys], np.zeros(shape[by])]
    full = np.bincount(flat, minlength=dense.size).astype(float)
    assert tvd(compact, target) == pytest.approx(tvd(full, dense.ravel()), abs=1e-12)
    assert jsd(compact, target) == pytest.approx(jsd(full, dense.ravel()), abs=1e-12)
    # grouped by the axis `by` (as districts group a table's cells): the same TVD in every group
    codes = listed.codes()
    groups_dense = np.unravel_index(np.arange(dense.size), shape)[by]
    assert np.allclose(tvd_by_group(compact, target, codes[by], shape[by]), tvd_by_group(full, dense.ravel(), groups_dense, shape[by]))
    # a listed cell's codes are its place in the shape; a cell elsewhere has -1 but on `by`
    assert np.array_equal(np.ravel_multi_index(tuple(c[:len(keys)] for c in codes), shape), keys)
    assert all((c[len(keys):] == -1).all() for k, c in enumerate(codes) if k != by)


@pytest.mark.parametrize("by", [0, 2])
def test_the_compiled_lookup_finds_the_cells_listed_finds(by):
    from llmsynthor.shapes.trips.days import hashed, listed_cell

    shape, _, keys, flat = random_case(by + 3)
    listed = Listed(shape, keys, by)
    # two tables' hashed keys one after the other, as CellParts holds them: the second table's
    others = hashed(np.array([1, 5, 9], dtype=np.int64))
    together, start, stop = np.r_[others, hashed(keys)].astype(np.int64), len(others), len(others) + len(hashed(keys))
    compiled = [listed_cell(together, start, stop, listed.stride, shape[by], int(f)) for f in np.r_[flat, keys, 0, np.prod(shape) - 1]]
    assert compiled == listed.cell(np.r_[flat, keys, 0, np.prod(shape) - 1]).tolist()


def test_a_sparse_tables_margin_is_the_dense_ones():
    shape, dense, keys, _ = random_case(7)
    axes = tuple(Axis(v, tuple(str(i) for i in range(n))) for v, n in zip("abc", shape))
    sparse = LevelTable("t", "trips", axes, np.r_[dense.ravel()[keys], np.zeros(shape[0])], None, listed=Listed(shape, keys, 0))
    full = LevelTable("t", "trips", axes, dense, None)
    for variables in (["a"], ["c", "a"], ["b", "c"], ["c", "b", "a"]):
        assert np.allclose(sparse.margin(variables), full.margin(variables))
    assert sparse.cells == len(keys) + shape[0] and full.cells == dense.size


def test_a_zone_level_od_table_above_the_bound_is_held_on_the_cells_it_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 50)  # the zone OD table has 72 cells; the others fewer
    inputs = read_inputs(zone_case(tmp_path))
    od = next(t for t in inputs.tables if t.name == "OD zones by period")
    assert od.listed is not None and len(od.listed.keys) == 18 and od.listed.by == 0  # elsewhere: one cell per origin zone
    assert od.cells == 18 + 6 and od.region.sum() == 56 and od.region[18:].tolist() == [0.0] * 6
    assert all(t.listed is None for t in inputs.tables if t is not od)
    assert trips_inputs.cells_in_words(od) == "18 listed of 72"


def test_a_sparse_table_naming_a_zone_the_zone_table_lacks_is_refused_as_a_dense_one(tmp_path, monkeypatch):
    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 0)
    spec = spec_dict()
    spec["targets"][0] = {"name": "OD zones by period", "variables": ["origin", "destination", "depart"], "file": "targets/zone_od.csv"}
    error = refused(tmp_path, spec=spec, tables={"zone_od.csv": ZONE_OD.replace("6,4,", "6,99,")})
    assert "zone_od.csv" in text(error) and "column 'destination'" in text(error) and "'99'" in text(error)


def _polished(spec, seed: int):
    """The polish of one fixed set of days of the small case (every person's day from the case's own tours)."""
    inputs = read_inputs(spec)
    zones = inputs.zones
    coder = Coder(spec, zones, inputs.of_level(TRIPS.name))
    rng = np.random.default_rng(seed)
    days = 12
    origin, destination, depart, purpose, mode, day = [], [], [], [], [], []
    for d in range(days):  # home -> stop -> stop -> home
        home, stops = rng.integers(0, 6), rng.integers(0, 6, 2)
        route = [home, *stops, home]
        hours = np.sort(rng.integers(6, 22, 3))
        origin += route[:-1]
        destination += route[1:]
        depart += hours.tolist()
        purpose += [int(rng.integers(1, 4)), int(rng.integers(1, 4)), 0]
        mode += [int(rng.integers(0, 3))] * 3
        day += [d] * 3
    purpose = np.array(purpose)
    out = polish_stops(zones, coder, np.array(origin), np.array(destination), np.array(depart), purpose, np.array(mode), purpose == 0,
                       np.array(day), (5, 23), np.random.default_rng(seed), kind=np.zeros(len(purpose), dtype=np.int64),
                       mode_factors=(np.ones((len(purpose), 3)), np.ones((6, 3))))
    return inputs, coder, out


@pytest.mark.parametrize("seed", [0, 1])
def test_the_polish_moves_the_same_on_a_sparse_table_as_on_the_same_table_held_dense(tmp_path, monkeypatch, seed):
    spec = zone_case(tmp_path)
    _, _, dense = _polished(spec, seed)
    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 0)  # every table of trips sparse
    inputs, coder, sparse = _polished(spec, seed)
    assert all(t.listed is not None for t in coder.tables)
    assert dense.moves + dense.exchanges > 0  # the polish did something to compare
    for field in ("origin", "destination", "depart", "mode"):
        assert np.array_equal(getattr(dense, field), getattr(sparse, field)), field
    assert sparse.error_after == pytest.approx(dense.error_after, abs=1e-12)
    assert sparse.worst_after == pytest.approx(dense.worst_after, abs=1e-12)
    # the cells the sparse polish counted are those its trips fall in (CellParts, compiled and numpy alike)
    cells = CellParts.of(coder, inputs.zones, 4, 3).cells(sparse.origin, sparse.destination, sparse.depart,
                                                         np.zeros(len(sparse.origin), dtype=np.int64), sparse.mode)
    assert cells.max() < sum(t.cells for t in coder.tables)
    target, _ = cell_weights(coder.tables, inputs.zones)
    assert len(target) == len(cell_groups(coder.tables, inputs.zones)) == sum(t.cells for t in coder.tables)


def test_a_table_beyond_reach_does_not_decide_the_polishs_kept_state(tmp_path):
    """polish_stops with the zone-level table beyond reach: the worst TVD it reports, before and after, is of the
    other tables, as the state it returns has them."""
    spec = zone_case(tmp_path)
    inputs = read_inputs(spec)
    zones = inputs.zones
    coder = Coder(spec, zones, inputs.of_level(TRIPS.name))
    rng = np.random.default_rng(2)
    origin, destination, depart, purpose, day = [], [], [], [], []
    for d in range(12):
        home, stop = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        origin += [home, stop]
        destination += [stop, home]
        depart += sorted(rng.integers(6, 22, 2).tolist())
        purpose += [int(rng.integers(1, 4)), 0]
        day += [d, d]
    purpose, mode = np.array(purpose), np.zeros(len(purpose), dtype=np.int64)
    beyond = np.array([t.name == "OD zones by period" for t in coder.tables])
    out = polish_stops(zones, coder, np.array(origin), np.array(destination), np.array(depart), purpose, mode, purpose == 0,
                       np.array(day), (5, 23), np.random.default_rng(2), beyond=beyond)
    cells = CellParts.of(coder, zones, 4, 3).cells(out.origin, out.destination, out.depart, purpose, out.mode)
    target, _ = cell_weights(coder.tables, zones)
    counts = np.bincount(cells.ravel(), minlength=len(target)).astype(float)
    offsets = np.cumsum([0] + [t.cells for t in coder.tables])
    fits = [tvd(counts[a:b], target[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    assert out.worst_after == pytest.approx(max(f for f, far in zip(fits, beyond) if not far), abs=1e-9)
    assert max(fits) > out.worst_after  # the zone table, met worse, is not what it reports


def test_with_a_table_beyond_reach_a_stage_ends_when_a_pass_no_longer_lowers_the_others_error(tmp_path, monkeypatch):
    """A table beyond reach offers small gains in every pass, so a stage might never pass without a move: with one,
    a stage also ends at a pass that leaves the other tables' error where it was. Here every pass reports a move
    and changes nothing (the compiled passes replaced): one pass a stage with the zone table beyond reach, every
    pass of every stage without."""
    from llmsynthor.shapes.trips import polish

    spec = zone_case(tmp_path)
    inputs = read_inputs(spec)
    coder = Coder(spec, inputs.zones, inputs.of_level(TRIPS.name))
    for name in ("_move_hours", "_swap_stops", "_swap_hours", "_swap_modes", "_change_modes"):
        monkeypatch.setattr(polish, name, lambda *args: 0)
    monkeypatch.setattr(polish, "_move_stops", lambda *args: 1)
    trips = (np.array([0, 3]), np.array([3, 0]), np.array([8, 17]), np.array([1, 0]), np.zeros(2, dtype=np.int64))
    beyond = np.array([t.name == "OD zones by period" for t in coder.tables])
    for far, passes in ((beyond, polish.STAGES), (None, polish.PASSES * polish.STAGES)):
        out = polish_stops(inputs.zones, coder, *trips, np.array([False, True]), np.array([0, 0]), (5, 23),
                           np.random.default_rng(0), beyond=far)
        assert out.passes == passes


def test_a_run_with_sparse_tables_meets_them_as_they_are_counted_on_every_cell(tmp_path, monkeypatch):
    """The whole run (no model) with every table of trips sparse: valid chains, and the fit it reports — made on the
    listed cells — is what the written trips score against the same tables held on every cell."""
    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips.synthesizer import TripSynthesizer

    spec = zone_case(tmp_path)
    dense_inputs = read_inputs(spec)
    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 0)
    result = TripSynthesizer(spec, make_backend(spec.llm)).run()
    assert result.chains.valid.all() and len(result.trips) > 0
    assert result.polish is not None and result.polish.moves + result.polish.exchanges > 0  # the guided rounds and the polish ran on it
    scored = evaluate_trips(spec, dense_inputs, result.persons, result.trips)["targets"]
    for name, fit in result.fit.items():
        assert fit == pytest.approx(scored[name]["tvd"], abs=1e-6), name
    od = result.by_district["OD zones by period"]
    assert od == pytest.approx(scored["OD zones by period"]["by_district"])
    assert pd.Series(result.fit).max() < 0.5  # it is met, not merely counted: the case's tables are reachable


def test_candidate_days_are_drawn_towards_a_zone_level_od_tables_own_cells(tmp_path, monkeypatch):
    """Days drawn by attraction and distance alone would seldom land in a zone-level OD table's cells (18 of 72
    here, a trip or few each); the table's own cells steer each stop (Guide.toward_zones), so most trips land in them."""
    from llmsynthor.shapes.trips.days import Factors, candidate_days

    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 0)
    spec = zone_case(tmp_path)
    inputs = read_inputs(spec)
    od = next(t for t in inputs.tables if t.name == "OD zones by period")
    factors = Factors.none(len(inputs.persons), 4, 3)

    def share_in_listed(steer: bool) -> float:
        if not steer:
            monkeypatch.setattr("llmsynthor.shapes.trips.days.Guide.toward_zones", classmethod(lambda cls, tables: cls({})))
        trips = candidate_days(spec, inputs, factors, np.random.default_rng(5), 20).frames[TRIPS.name]
        coder = Coder(spec, inputs.zones, [od])
        cells = CellParts.of(coder, inputs.zones, 4, 3).cells(inputs.zones.rows(trips["origin"]), inputs.zones.rows(trips["destination"]),
                                                              trips["depart"].to_numpy(), np.zeros(len(trips), dtype=np.int64),
                                                              np.zeros(len(trips), dtype=np.int64))[:, 0]
        return float((cells < len(od.listed.keys)).mean())

    steered, alone = share_in_listed(True), share_in_listed(False)
    assert steered > 0.5 and steered > alone + 0.2, (steered, alone)


def test_a_table_beyond_the_rounds_reach_keeps_its_weight_and_the_others_are_reweighed_among_themselves():
    from llmsynthor.fitting.choice import reweighed
    from llmsynthor.shapes.trips.synthesizer import beyond_reach, emphasized

    tolerance = np.full(3, 0.01)
    fit = np.array([0.61, 0.02, 0.03])  # a zone-level OD table of a trip a cell, and two tables near tolerance
    far = beyond_reach(fit, tolerance)
    assert far.tolist() == [True, False, False]
    assert not beyond_reach(np.array([0.6, 0.7, 0.9]), tolerance).any()  # all about as far: weighed alike, as before
    assert not beyond_reach(np.array([0.009, 0.001, 0.0005]), tolerance).any()  # within tolerance: never beyond reach
    assert not beyond_reach(np.array([0.028, 0.004, 0.005]), tolerance).any()  # just over it, the others close: worked down
    emphasis = np.array([1.0, 1.2, 0.8])
    out = emphasized(emphasis, fit, far)
    assert out[0] == 1.0 and np.allclose(out[1:], reweighed(emphasis[1:], fit[1:]))
    assert out[2] / emphasis[2] > out[1] / emphasis[1]  # the worse-met of the two within reach gains more
    assert np.allclose(emphasized(emphasis, fit, np.zeros(3, bool)), reweighed(emphasis, fit))  # none far: as before


def test_a_run_writes_the_same_trips_with_the_zone_table_sparse_as_dense(tmp_path, monkeypatch):
    """The first round alone (no guided rounds, whose ratios for the cells a sparse table leaves out are lumped),
    then the choice's passes, the transfers and the polish: balancing and choice weigh a sparse table's cells
    as the dense table's, so the same days are chosen and the same trips written."""
    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips import synthesizer

    monkeypatch.setattr(synthesizer, "ROUNDS", 0)
    spec = zone_case(tmp_path)
    dense = synthesizer.TripSynthesizer(spec, make_backend(spec.llm)).run()
    monkeypatch.setattr(trips_inputs, "SPARSE_CELLS", 0)
    sparse = synthesizer.TripSynthesizer(spec, make_backend(spec.llm)).run()
    assert not dense.met_early and dense.polish is not None  # every step ran
    pd.testing.assert_frame_equal(dense.trips, sparse.trips)
    assert dense.fit == pytest.approx(sparse.fit, abs=1e-9)
