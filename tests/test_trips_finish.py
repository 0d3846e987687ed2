"""The last trips placed district by district (shapes.trips.finish): a district whose TVD of shares is over its
tolerance gets the far trip it lacks — a stop moved or traded to a zone of another district, beyond the polish's reach
but within what its mode travels — while days stay chains, no trip's count, hour, purpose or mode changes, and a
district or table within its tolerance is not pushed over."""

from __future__ import annotations

import numpy as np
import pytest
from test_trips_inputs import spec_dict, write_case

import llmsynthor.shapes.trips.finish as finish
from llmsynthor.shapes.trips.days import Coder
from llmsynthor.shapes.trips.evaluation import by_district
from llmsynthor.shapes.trips.finish import finish_districts
from llmsynthor.shapes.trips.inputs import TRIPS, read_inputs
from llmsynthor.shapes.trips.spec import load

# persons with one tour each, out at 8 and back at 17 by car: four of zone 1 (D1) stopping in zone 2 (D1), a hundred and
# two of zone 5 (D2) stopping in zone 4 (D2), one of zone 4 working in zone 1 (11.5 km: the longest a car goes)
TOURS = [(0, 1, 2)] * 4 + [(0, 5, 4)] * 102 + [(0, 4, 1)]
# the table: as the tours are, but one of zone 1's persons goes to D2 (zones 4–6) instead
OD = """origin_district,destination_district,depart,count
D1,D1,"[0,12)",3
D1,D2,"[0,12)",1
D1,D1,"[12,23]",3
D2,D1,"[12,23]",1
D2,D2,"[0,12)",102
D2,D2,"[12,23]",102
D2,D1,"[0,12)",1
D1,D2,"[12,23]",1
"""


def case(tmp_path):
    spec = spec_dict()
    spec["targets"] = [{"name": "OD by period", "variables": ["origin_district", "destination_district", "depart"],
                        "file": "targets/od_period.csv"}]
    spec = load(write_case(tmp_path / "case", spec=spec, tables={"od_period.csv": OD}))
    inputs = read_inputs(spec)
    zones = inputs.zones
    home, stop = zones.rows([str(h) for _, h, _ in TOURS]), zones.rows([str(s) for _, _, s in TOURS])
    origin = np.ravel(np.column_stack([home, stop]))
    destination = np.ravel(np.column_stack([stop, home]))
    depart = np.tile([8, 17], len(TOURS))
    purpose = np.tile([spec.trips.purposes.index("work"), spec.trips.purposes.index("home")], len(TOURS))
    mode = np.zeros(2 * len(TOURS), dtype=np.int64)  # drive alone
    day = np.repeat(np.arange(len(TOURS)), 2)
    coder = Coder(spec, zones, inputs.of_level(TRIPS.name))
    return spec, zones, coder, (origin, destination, depart, purpose, mode), purpose == spec.trips.purposes.index("home"), day


def fits(zones, coder, trips):
    from llmsynthor.shapes.trips.days import CellParts

    table = coder.tables[0]
    cells = CellParts.of(coder, zones, 4, 3).cells(*trips)
    counts = np.bincount(cells.ravel(), minlength=table.cells).astype(float)
    return by_district(table, counts, zones, 0.01)


def test_a_district_over_gets_the_far_trip_it_lacks_and_days_stay_chains(tmp_path, monkeypatch):
    monkeypatch.setattr(finish, "MODE_REACH", 1.0)  # a leg as long as its mode's longest: the one commute's 11.5 km
    spec, zones, coder, trips, home_bound, day = case(tmp_path)
    origin, destination, depart, purpose, mode = trips
    before = fits(zones, coder, trips)
    assert before["over_tolerance"] == 1 and before["worst_district"] == "D1"  # D1 lacks its trip to D2 (.139; D2 .005)
    kept = [a.copy() for a in trips]
    done = finish_districts(zones, coder, origin, destination, depart, purpose, mode, home_bound, day, np.array([0.01]),
                            np.random.default_rng(0), 4, 3)
    assert (done.over_before, done.over_after, done.excess_after) == (1, 0, 0.0) and done.moves + done.exchanges == 1
    after = fits(zones, coder, (done.origin, done.destination, depart, purpose, mode))
    assert after["over_tolerance"] == 0 and after["tvd_max"] == 0.0
    changed = np.flatnonzero(done.destination != destination)
    assert len(changed) == 1 and changed[0] < 8 and zones.district[done.destination[changed[0]]] == "D2"  # a zone-1 person's stop
    assert done.passes >= 1
    assert (done.origin[1::2] == done.destination[0::2]).all() and (done.destination[1::2] == origin[0::2]).all()  # chains, home
    assert all((a == b).all() for a, b in zip(trips, kept))  # the arrays given are left as they were
    assert zones.km(done.origin, done.destination).max() <= zones.km(origin, destination).max() + 1e-9  # within what cars travel


def test_nothing_is_moved_beyond_what_the_mode_travels_or_when_every_district_is_within(tmp_path, monkeypatch):
    monkeypatch.setattr(finish, "MODE_REACH", 1.0)
    spec, zones, coder, trips, home_bound, day = case(tmp_path)
    origin, destination, depart, purpose, mode = trips
    far = mode.copy()
    far[-2:] = 1  # the one commute to D1 by another mode: driving, nobody travels further than a stop next door
    done = finish_districts(zones, coder, origin, destination, depart, purpose, far, home_bound, day, np.array([0.01]),
                            np.random.default_rng(0), 4, 3)
    assert done.moves + done.exchanges == 0 and done.over_after == done.over_before == 1
    assert (done.destination == destination).all()
    loose = finish_districts(zones, coder, origin, destination, depart, purpose, mode, home_bound, day, np.array([0.5]),
                             np.random.default_rng(0), 4, 3)  # every district within a tolerance of .5: nothing to do
    assert (loose.over_before, loose.moves + loose.exchanges, loose.passes) == (0, 0, 0)
    monkeypatch.setattr(finish, "MODE_REACH", 0.5)  # legs as long as the median car's (1.4 km) or the polish's reach: too short
    near = finish_districts(zones, coder, origin, destination, depart, purpose, mode, home_bound, day, np.array([0.01]),
                            np.random.default_rng(0), 4, 3)
    assert near.moves + near.exchanges == 0
    strict = finish_districts(zones, coder, origin, destination, depart, purpose, mode, home_bound, day, np.array([0.005]),
                              np.random.default_rng(0), 4, 3)  # the table over for the region (.0091): not the last trips' work
    assert strict.over_before == 2 and strict.moves + strict.exchanges == 0 and strict.passes == 0  # D1 and the table


def test_tables_beyond_reach_are_left_out(tmp_path):
    spec, zones, coder, trips, home_bound, day = case(tmp_path)
    done = finish_districts(zones, coder, *trips, home_bound, day, np.array([0.01]), np.random.default_rng(0), 4, 3,
                            beyond=np.array([True]))
    assert (done.over_before, done.moves + done.exchanges) == (0, 0)
    assert done.excess_before == pytest.approx(0.0)
