"""The moves after the choice that trade rather than move, so that the tables already met stay met:
stops trading zones and trips trading hours (shapes.trips.polish: every zone keeps its stops, every
purpose its trips each hour), and whole tours handed between persons alike (shapes.trips.transfers:
between persons of one home zone every trip stays as it is, only who makes it changes; a tour handed to
another home zone of the district leaves from the taker's home, where its legs keep their band of length)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_trips_inputs import write_case

from llmsynthor.core.tables import Listed
from llmsynthor.declarations.zones import Zones
from llmsynthor.evaluation.chains import check_days
from llmsynthor.shapes.trips.days import hashed, length_band
from llmsynthor.shapes.trips.inputs import PERSONS, TRIPS, read_inputs
from llmsynthor.shapes.trips.polish import (
    _change_modes,
    _places_of,
    _plausible,
    _swap_hours,
    _swap_modes,
    _swap_stops,
    scaled_to_trips,
)
from llmsynthor.shapes.trips.spec import TRIPS_PER_PERSON, load
from llmsynthor.shapes.trips.transfers import transfer_tours

# four zones about 1.1 km apart on a line; zones 0, 1 in district A, 2, 3 in B
LON = np.radians(np.array([0.0, 0.01, 0.02, 0.03]))
LAT = np.zeros(4)
WITHIN = np.zeros(4)
DISTRICT = np.array([0, 0, 1, 1])
NEIGHBOURS = np.array([[0, 1, 2, 3], [1, 0, 2, 3], [2, 1, 3, 0], [3, 2, 1, 0]], dtype=np.int64)


def one_table(zones=4, origin=None, destination=None, hour=None, purpose=None, mode=None, listed: Listed | None = None):
    """The parts and lookup of one table (:class:`CellParts`): each variable's place in the table's shape, one
    value a raw code (None: the table does not name it); ``listed``: the table is sparse."""
    def part(x, n):
        return (np.zeros(n) if x is None else np.asarray(x))[None, :].astype(np.int64)

    parts = (part(origin, zones), part(destination, zones), part(hour, 24), part(purpose, 8), part(mode, 8))
    if listed is None:
        return parts, (np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
                       np.ones(1, np.int64), np.zeros(1, np.int64))
    keys = hashed(listed.keys)
    return parts, (np.zeros(1, np.int64), keys, np.zeros(1, np.int64), np.array([len(keys)]), np.array([listed.stride]),
                   np.array([listed.shape[listed.by]]))


OD_PARTS = {"origin": 2 * DISTRICT, "destination": DISTRICT}  # origin district × destination district (2 × 2)
OD_SPARSE = Listed((2, 2), np.array([1, 2]), by=0)  # lists A→B and B→A: A→A and B→B fall in their origin's cell elsewhere


def od_cells(origin, destination, listed: Listed | None = None):
    """One table, origin district × destination district: [trip, 1] cells."""
    flat = 2 * DISTRICT[origin] + DISTRICT[destination]
    return (flat if listed is None else listed.cell(flat))[:, None].astype(np.int64)


def swap_stops(origin, destination, reach, target, listed: Listed | None = None, tried: int = 4, jitter: int = 0):
    origin, destination = np.array(origin, dtype=np.int64), np.array(destination, dtype=np.int64)
    cells = od_cells(origin, destination, listed)
    target = np.asarray(target, dtype=float)
    if listed is not None:
        target = np.r_[target[listed.keys], 0, 0]
    residual = np.bincount(cells.ravel(), minlength=4).astype(float) - target
    stops = np.array([0, 2], dtype=np.int64)
    parts, lookup = one_table(**OD_PARTS, listed=listed)
    trip = (origin, destination, np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64))
    moved = _swap_stops(stops, np.full(2, jitter, dtype=np.int64), parts, lookup, cells, residual, np.ones(4), trip,
                        NEIGHBOURS, tried, np.asarray(reach, dtype=float), LON, LAT, WITHIN, *_places_of(destination, stops, 4), 6)
    return moved, origin, destination, cells, residual


@pytest.mark.parametrize("listed", [None, OD_SPARSE], ids=["dense", "sparse"])
def test_two_stops_trade_zones_where_that_meets_the_od_table_and_each_zone_keeps_its_stops(listed):
    # day 1: home 0 -> stop 1 -> home 0 (A→A twice); day 2: home 3 -> stop 2 -> home 3 (B→B twice)
    # the table wants A→B and B→A twice each: trading the stops' zones meets it — a sparse table listing only
    # those two cells the same way
    moved, origin, destination, cells, residual = swap_stops([0, 1, 3, 2], [1, 0, 2, 3], [3.0, 0, 3.0, 0], [0, 2, 2, 0], listed)
    assert moved == 1
    assert destination.tolist() == [2, 0, 1, 3] and origin.tolist() == [0, 2, 3, 1]  # each day still a chain
    assert np.all(residual == 0) and np.array_equal(cells, od_cells(origin, destination, listed))
    assert sorted(destination[[0, 2]].tolist()) == [1, 2]  # the stops' zones: the same two, traded


def test_a_stop_looks_at_one_zone_a_band_of_nearness_at_a_rank_the_jitter_picks():
    # one zone tried of the four nearest (one band of 4 ranks): the rank is the jitter's (bits 15 and up) —
    # stop 0 at zone 1 (nearest: 1, 0, 2, 3) meets the stop at zone 2 only at rank 2; stop 2 (at zone 2: 2, 1, 3, 0)
    # would meet it at rank 1; ranks 0 (a stop's own zone) and 3 (no stops there) trade nothing
    case = ([0, 1, 3, 2], [1, 0, 2, 3], [3.0, 0, 3.0, 0], [0, 2, 2, 0])
    assert [swap_stops(*case, tried=1, jitter=rank << 15)[0] for rank in range(4)] == [0, 1, 1, 0]
    moved, origin, destination, _, residual = swap_stops(*case, tried=1, jitter=2 << 15)
    assert destination.tolist() == [2, 0, 1, 3] and origin.tolist() == [0, 2, 3, 1] and np.all(residual == 0)


def test_stops_trade_nothing_beyond_reach_or_where_the_table_is_met():
    out_of_reach = swap_stops([0, 1, 3, 2], [1, 0, 2, 3], [1.5, 0, 1.5, 0], [0, 2, 2, 0])  # 2.2 km legs > 1.5 km reach
    met = swap_stops([0, 1, 3, 2], [1, 0, 2, 3], [3.0, 0, 3.0, 0], [2, 0, 0, 2])
    for moved, origin, destination, _, _ in (out_of_reach, met):
        assert moved == 0 and destination.tolist() == [1, 0, 2, 3] and origin.tolist() == [0, 1, 3, 2]


def test_two_trips_of_a_purpose_trade_hours_where_that_meets_the_period_table():
    # day 0: trip 0 (purpose 1 at 8, from district A), trip 1 (home at 23); day 1: trip 2 (purpose 1 at 12, from B),
    # trip 3 (home at 18). One table, origin district × before / after noon, wants A's purpose-1 trip after noon
    # and B's before: trips 0 and 2 trade hours (each within its slot between its day's neighbours)
    depart = np.array([8, 23, 12, 18], dtype=np.int64)
    purpose = np.array([1, 0, 1, 0], dtype=np.int64)
    day = np.array([0, 0, 1, 1], dtype=np.int64)
    district = np.array([0, 0, 1, 1])
    h_part = (np.arange(24) >= 12)[None, :].astype(np.int64)
    cells = (2 * district + h_part[0, depart])[:, None].astype(np.int64)
    residual = np.bincount(cells.ravel(), minlength=4).astype(float) - np.array([0, 2, 1, 1], dtype=float)
    assert np.abs(residual).sum() == 4
    same_before, same_after = np.r_[False, day[1:] == day[:-1]], np.r_[day[1:] == day[:-1], False]
    parts, lookup = one_table(zones=2, origin=[0, 2], hour=h_part[0])  # the trips leave from zone 0 (A) or 1 (B)
    trip = (district.astype(np.int64), np.zeros(4, np.int64), depart, purpose, np.zeros(4, np.int64))
    moved = _swap_hours(np.arange(4), np.zeros(4, dtype=np.int64), parts, lookup, cells, residual, np.ones(4), trip, day,
                        same_before, same_after, 5, 23, *_places_of(purpose * 24 + depart, np.arange(4), 48), 6)
    assert moved == 1 and depart.tolist() == [12, 23, 8, 18]
    assert np.all(residual == 0) and np.array_equal(cells, (2 * district + h_part[0, depart])[:, None])


def test_no_trip_trades_an_hour_outside_its_slot():
    # day 1's trips now leave at 6 and 7 (home): the table wants trip 0 before 7 and trip 2 from 7 on, but trip 2
    # cannot take trip 0's 8, beyond its home trip at 7, so no two trips trade
    depart = np.array([8, 23, 6, 7], dtype=np.int64)
    purpose = np.array([1, 0, 1, 0], dtype=np.int64)
    day = np.array([0, 0, 1, 1], dtype=np.int64)
    h_part = (np.arange(24) >= 7)[None, :].astype(np.int64)  # before / from 7
    district = np.array([0, 0, 1, 1])
    cells = (2 * district + h_part[0, depart])[:, None].astype(np.int64)
    residual = np.bincount(cells.ravel(), minlength=4).astype(float) - np.array([1, 1, 0, 2], dtype=float)  # wants trip 2 at 7+
    same_before, same_after = np.r_[False, day[1:] == day[:-1]], np.r_[day[1:] == day[:-1], False]
    parts, lookup = one_table(zones=2, origin=[0, 2], hour=h_part[0])
    trip = (district.astype(np.int64), np.zeros(4, np.int64), depart, purpose, np.zeros(4, np.int64))
    moved = _swap_hours(np.arange(4), np.zeros(4, dtype=np.int64), parts, lookup, cells, residual, np.ones(4), trip, day,
                        same_before, same_after, 5, 23, *_places_of(purpose * 24 + depart, np.arange(4), 48), 6)
    assert moved == 0 and depart.tolist() == [8, 23, 6, 7]  # trip 2 would need 8, beyond its home trip at 7


def test_two_tours_of_a_key_trade_modes_where_that_meets_the_mode_by_purpose_table():
    # tour 0: trips 0, 1 (work, home) by mode 0; tour 1: trips 2, 3 (shopping, home) by mode 1; tour 2: trips 4, 5
    # (work, home) by mode 1 under another key. One table, mode × purpose (2 × 3: home, work, shopping), wants
    # work by mode 1 and shopping by mode 0: tours 0 and 1 trade, tour 2 (another kind or length) cannot
    purpose = np.array([1, 0, 2, 0, 1, 0])
    mode = np.array([0, 0, 1, 1, 1, 1], dtype=np.int64)
    m_part = np.array([[0, 3]], dtype=np.int64)
    cells = (m_part[0, mode] + purpose)[:, None].astype(np.int64)
    target = np.array([1, 0, 1, 2, 2, 0], dtype=float)  # mode 0: home 1, shopping 1; mode 1: home 2, work 2
    residual = np.bincount(cells.ravel(), minlength=6).astype(float) - target
    first, size, key = np.array([0, 2, 4]), np.array([2, 2, 2]), np.array([0, 0, 1], dtype=np.int64)
    parts, lookup = one_table(purpose=[0, 1, 2], mode=m_part[0])
    trip = (np.zeros(6, np.int64), np.zeros(6, np.int64), np.zeros(6, np.int64), purpose.astype(np.int64), mode)
    moved = _swap_modes(np.arange(3), np.zeros(3, dtype=np.int64), parts, lookup, cells, residual, np.ones(6), trip, first, size, key, 2,
                        *_places_of(key * 2 + mode[first], np.arange(3), 4), 6)
    assert moved == 1 and mode.tolist() == [1, 1, 0, 0, 1, 1]
    assert np.all(residual == 0) and np.array_equal(cells, (m_part[0, mode] + purpose)[:, None])


def test_a_tour_changes_its_whole_mode_only_to_one_the_prior_finds_as_likely():
    # tour 0: trips 0, 1 (work, home) by mode 0; tour 1: trips 2, 3 (work, home) by mode 0. One table, mode × purpose
    # (2 modes × home, work), wants both tours by mode 1: tour 0 may change (mode 1 plausible), tour 1 may not
    purpose = np.array([1, 0, 1, 0])
    mode = np.array([0, 0, 0, 0], dtype=np.int64)
    m_part = np.array([[0, 2]], dtype=np.int64)
    cells = (m_part[0, mode] + purpose)[:, None].astype(np.int64)
    residual = np.bincount(cells.ravel(), minlength=4).astype(float) - np.array([0, 0, 2, 2], dtype=float)
    plausible = np.array([[True, True], [True, False]])
    parts, lookup = one_table(purpose=[0, 1], mode=m_part[0])
    trip = (np.zeros(4, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64), purpose.astype(np.int64), mode)
    moved = _change_modes(np.arange(2), parts, lookup, cells, residual, np.ones(4), trip, np.array([0, 2]), np.array([2, 2]),
                          plausible)
    assert moved == 1 and mode.tolist() == [1, 1, 0, 0]  # the whole tour: a car driven from home comes back home
    assert residual.tolist() == [1, 1, -1, -1] and np.array_equal(cells, (m_part[0, mode] + purpose)[:, None])


def test_a_mode_is_plausible_for_a_tour_when_the_prior_finds_it_at_least_as_likely_as_its_own():
    zones = Zones(ids=np.array(["a", "b"]), lon=np.array([0.0, 0.05]), lat=np.array([0.0, 0.0]))  # 5.6 km apart: 5-10 km
    origin, destination = np.array([0, 1, 0, 0]), np.array([1, 0, 0, 0])  # tour 0: a → b → a; tour 1: a → a → a (0 km)
    by_person = np.array([[1.0, 2.0, 0.5]] * 4)
    by_length = np.ones((6, 3))
    by_length[3] = [1.0, 0.1, 3.0]  # 5-10 km: mode 1 unlikely, mode 2 likely
    band = length_band(np.maximum.reduceat(zones.km(origin, destination), np.array([0, 2])))
    assert band.tolist() == [3, 0]
    allowed = _plausible(band, np.array([0, 0, 1, 1]), np.array([0, 2]), by_person, by_length)
    assert allowed.tolist() == [[True, False, True], [False, True, False]]  # 1 × 1, 2 × .1, .5 × 3 against mode 0's 1 × 1;
    # the short tour by mode 1 (2 × 1): only mode 1 itself
    assert _plausible(band, np.zeros(4, dtype=np.int64), np.array([0, 2]), np.ones((4, 3)),
                      np.ones((6, 3))).all()  # the tables alone: every mode


# ---- tours handed between persons alike


@pytest.fixture(scope="module")
def persons_table(tmp_path_factory):
    inputs = read_inputs(load(write_case(tmp_path_factory.mktemp("moves") / "case")))
    return next(t for t in inputs.tables if t.level == PERSONS.name)  # trips per person by type: [0,2), [2,4), [4,8]


def day_frames(days_trips: list[list[tuple[int, int]]], kinds: list[str]):
    """Chosen days: for each person a list of tours (first hour, last hour), every tour 2 trips."""
    rows = []
    for person, tours in enumerate(days_trips):
        for tour, (first, last) in enumerate(tours):
            rows += [(person + 1, tour, first, "shopping"), (person + 1, tour, last, "home")]
    trips = pd.DataFrame(rows, columns=[PERSONS.id, "tour", "depart", "purpose"])
    trips[TRIPS.id] = np.arange(1, len(trips) + 1)
    trips["origin"] = np.where(trips["purpose"] == "home", "5", "1")
    trips["destination"] = np.where(trips["purpose"] == "home", "1", "5")
    days = pd.DataFrame({"person_type": kinds, TRIPS_PER_PERSON: [2 * len(t) for t in days_trips]})
    return days, trips


def transfer(persons_table, days, trips, group, wanted):
    target = np.zeros(persons_table.region.size)
    for kind, bin_, count in wanted:
        target[np.ravel_multi_index((persons_table.axes[0].labels.index(kind), bin_), persons_table.region.shape)] = count
    return transfer_tours(days, trips, [persons_table], target, np.ones(len(target)), np.asarray(group), 8,
                          np.random.default_rng(0))


def test_a_tour_goes_to_a_person_alike_so_the_table_of_persons_is_met_and_every_trip_stays(persons_table):
    # two workers alike with a tour each (2 trips, bin [2,4)); the table wants one with none and one with 4 trips
    days, trips = day_frames([[(8, 9)], [(17, 18)]], ["worker", "worker"])
    new_days, new_trips, done = transfer(persons_table, days, trips, [0, 0], [("worker", 0, 1), ("worker", 2, 1)])
    assert done.moves == 1 and done.error_after == 0 and done.error_before == 4
    assert sorted(new_days[TRIPS_PER_PERSON].tolist()) == [0, 4]
    assert new_days[TRIPS_PER_PERSON].tolist() == np.bincount(new_trips[PERSONS.id] - 1, minlength=2).tolist()
    taker = int(np.argmax(new_days[TRIPS_PER_PERSON])) + 1
    mine = new_trips[new_trips[PERSONS.id] == taker]
    assert mine["depart"].tolist() == [8, 9, 17, 18] and mine["tour"].tolist() == [0, 0, 1, 1]  # in order, tours renumbered
    assert new_trips[TRIPS.id].tolist() == [1, 2, 3, 4]
    key = ["depart", "purpose", "origin", "destination"]
    assert new_trips[key].sort_values(key).values.tolist() == trips[key].sort_values(key).values.tolist()
    home = pd.Series(["1"] * 2, index=[1, 2])
    assert check_days(new_trips, person=PERSONS.id, home=home, tour="tour").valid.all()


def test_no_tour_goes_where_it_overlaps_the_takers_day_or_to_a_person_of_another_group(persons_table):
    wanted = [("worker", 0, 1), ("worker", 2, 1)]
    days, trips = day_frames([[(8, 12)], [(10, 18)]], ["worker", "worker"])  # 8–12 and 10–18 overlap
    assert transfer(persons_table, days, trips, [0, 0], wanted)[2].moves == 0
    days, trips = day_frames([[(8, 9)], [(17, 18)]], ["worker", "worker"])  # not alike (another home zone)
    unchanged_days, unchanged_trips, done = transfer(persons_table, days, trips, [0, 1], wanted)
    assert done.moves == 0 and unchanged_trips.equals(trips) and unchanged_days.equals(days)


def test_a_tour_fits_between_the_takers_tours(persons_table):
    # one has tours 7–9 and 18–20, the other 12–14; the table wants one with none and one with 4-8 trips. The first
    # (the first member visited) gains nothing by giving one tour (4 and 2 trips become 2 and 4), so gives both at
    # once: they go around the other's tour
    days, trips = day_frames([[(7, 9), (18, 20)], [(12, 14)]], ["worker", "worker"])
    new_days, new_trips, done = transfer(persons_table, days, trips, [0, 0], [("worker", 0, 1), ("worker", 2, 1)])
    assert done.moves == 1 and new_days[TRIPS_PER_PERSON].tolist() == [0, 6]
    assert new_trips["depart"].tolist() == [7, 9, 12, 14, 18, 20] and new_trips["tour"].tolist() == [0, 0, 1, 1, 2, 2]


def test_the_synthesizer_hands_tours_over_and_every_persons_trips_are_theirs(tmp_path):
    """Through the synthesizer (no model): the small case's twenty persons made workers of two home zones, and its
    table of persons asking for 5 with no trip, 8 with 2-3 and 7 with 4-8 — two tours are handed over, which meets
    that table exactly; each person's count in persons.csv is the number of trips written for them, and every
    day is still a valid chain."""
    from test_trips_inputs import PERSON_IDS

    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips.synthesizer import TripSynthesizer

    homes = [3, 3, 4, 4] * 5  # zones of districts D1 and D2: persons alike live in one zone
    persons = "person_id,household_id,home_zone,person_type\n" + "".join(
        f"{pid},{50 + i // 2},{homes[i]},worker\n" for i, pid in enumerate(PERSON_IDS))
    table = 'person_type,trips,count\nworker,"[0,2)",5\nworker,"[2,4)",8\nworker,"[4,8]",7\n'
    spec = load(write_case(tmp_path / "case", persons=persons, tables={"trips_per_person.csv": table}))
    result = TripSynthesizer(spec, make_backend(spec.llm)).run()
    assert result.transfers.moves == 2 and result.transfers.error_after == 0 < result.transfers.error_before
    assert result.fit["trips per person"] == 0
    assert result.persons[TRIPS_PER_PERSON].tolist() == result.trips.groupby("person_id").size().reindex(
        result.persons["person_id"], fill_value=0).tolist()
    assert result.chains.valid.all()


def test_the_polish_may_change_a_tour_to_a_mode_no_chosen_trip_has(tmp_path):
    """polish_stops on one day of the small case, every trip by the first of its three modes, the prior allowing
    any: the tables' cells are made for every mode (not only those the trips have), so a tour may take one no
    trip had, and the error the polish reports is the error of what it returns."""
    from llmsynthor.shapes.trips.days import CellParts, Coder
    from llmsynthor.shapes.trips.districts import cell_weights
    from llmsynthor.shapes.trips.polish import polish_stops

    spec = load(write_case(tmp_path / "case"))
    inputs = read_inputs(spec)
    zones, coder = inputs.zones, Coder(spec, inputs.zones, inputs.of_level(TRIPS.name))
    origin, destination = np.array([0, 3, 0, 4]), np.array([3, 0, 4, 0])  # two tours from zone 1: to 4 and to 5
    depart, purpose = np.array([8, 12, 14, 18]), np.array([1, 0, 3, 0])  # work, home, shopping, home
    mode, home_bound, day = np.zeros(4, dtype=np.int64), purpose == 0, np.zeros(4, dtype=np.int64)
    done = polish_stops(zones, coder, origin, destination, depart, purpose, mode, home_bound, day, (5, 23), np.random.default_rng(0),
                        kind=np.zeros(4, dtype=np.int64), mode_factors=(np.ones((4, 3)), np.ones((6, 3))))
    assert set(done.mode.tolist()) - {0} and done.mode[0] == done.mode[1] and done.mode[2] == done.mode[3]  # whole tours
    assert done.origin[1] == done.destination[0] and done.origin[3] == done.destination[2]  # still a chain
    parts = CellParts.of(coder, zones, 4, 3)
    cells = parts.cells(done.origin, done.destination, done.depart, purpose, done.mode)
    target, scale = cell_weights(coder.tables, zones)
    sizes = [t.region.size for t in coder.tables]
    table_of = np.repeat(np.arange(len(sizes)), sizes)
    counts = np.bincount(cells.ravel(), minlength=len(target)).astype(float)
    share = np.bincount(table_of, weights=counts) / np.array([t.region.sum() for t in coder.tables])
    assert done.error_after == pytest.approx(float(scale @ np.abs(counts - target * share[table_of])))
    assert done.error_after < done.error_before


def handed_over(stop: str, wanted, *, side: bool = True):
    """A worker at home in zone 1 with two tours to ``stop`` (8–9 and 17–18), another at home in zone 2 (1.4 km
    away, the same district) with none; the table of persons ``wanted``. Transfers between the two (persons
    alike of one district), with the tables of trips of the small case weighed where ``side``."""
    from llmsynthor.api import make_backend
    from llmsynthor.shapes.trips.synthesizer import TripSynthesizer

    spec = load(write_case(Path(tempfile.mkdtemp()) / "case"))
    synthesizer = TripSynthesizer(spec, make_backend(spec.llm))
    inputs = synthesizer.inputs
    table = next(t for t in inputs.tables if t.level == PERSONS.name)
    target = np.zeros(table.region.size)
    for kind, bin_, count in wanted:
        target[np.ravel_multi_index((table.axes[0].labels.index(kind), bin_), table.region.shape)] = count
    trips = pd.DataFrame({PERSONS.id: 1, "tour": [0, 0, 1, 1], "depart": [8, 9, 17, 18],
                          "purpose": ["shopping", "home"] * 2, "mode": "drive alone",
                          "origin": ["1", stop] * 2, "destination": [stop, "1"] * 2})
    trips[TRIPS.id] = np.arange(1, 5)
    days = pd.DataFrame({"person_type": ["worker"] * 2, TRIPS_PER_PERSON: [4, 0]})
    trip_side = synthesizer._trip_side(trips, np.ones(len(inputs.tables))) if side else None
    out = transfer_tours(days, trips, [table], target, np.ones(len(target)), np.array([0, 0]), 8, np.random.default_rng(0),
                         home=inputs.zones.rows(pd.Series(["1", "2"])), side=trip_side)
    return out, trip_side, inputs.zones


def test_a_tour_handed_to_another_home_zone_leaves_from_and_returns_to_the_takers_home():
    # the table wants both workers with 2-3 trips: a tour goes to the worker at home in zone 2, its stop in zone 3
    # 2.8 km from zone 1 and 1.4 km from zone 2 (both 1-3 km): it leaves from zone 2 and comes back there
    (new_days, new_trips, done), side, zones = handed_over("3", [("worker", 1, 2)])
    assert done.moves == 1 and done.rehomed == 1 and done.error_after == 0 < done.error_before
    assert new_days[TRIPS_PER_PERSON].tolist() == [2, 2]
    taker = new_trips[new_trips[PERSONS.id] == 2]
    assert taker["origin"].tolist() == ["2", "3"] and taker["destination"].tolist() == ["3", "2"]
    assert taker["depart"].tolist() in ([8, 9], [17, 18])
    rows = zones.rows(new_trips["origin"]), zones.rows(new_trips["destination"])
    assert np.allclose(new_trips["km"], zones.km(*rows))
    # the tables of trips' error after, as the compiled pass kept it, is a recount's (origin zone 1 lost a trip to 2)
    cells = side.codes.cells(*rows, new_trips["depart"].to_numpy(), np.where(new_trips["purpose"] == "home", 0, 3),
                             np.zeros(4, dtype=np.int64))
    counts = np.bincount(cells.ravel(), minlength=len(side.target)).astype(float)
    expected, _ = scaled_to_trips(side.tables, counts, side.target)
    assert done.trips_error_after == pytest.approx(float(side.scale @ np.abs(counts - expected)))
    assert done.trips_error_after != done.trips_error_before
    home = pd.Series(["1", "2"], index=[1, 2])
    assert check_days(new_trips, person=PERSONS.id, home=home, tour="tour").valid.all()


def test_no_tour_goes_to_another_home_zone_where_a_leg_would_leave_its_band_of_length_or_without_the_tables_of_trips():
    # the stop in zone 1 itself (a leg of 0 km from home there, 1.4 km from zone 2): the tour stays
    (_, _, done), _, _ = handed_over("1", [("worker", 1, 2)])
    assert done.moves == 0 and done.error_after == done.error_before > 0
    # the stop in zone 3 would go, but without the tables of trips to weigh it no tour goes to another home
    (_, _, done), _, _ = handed_over("3", [("worker", 1, 2)], side=False)
    assert done.moves == 0
