"""The zone table (declarations.zones): read and checked before any work, distances without zones²,
zones described as the model can know them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmsynthor.core.errors import SpecError
from llmsynthor.declarations.zones import ZoneTableSpec, read_zones

CSV = """zone,district,kind,hh,jobs,x,y,area
1,1,downtown,46,27318,-122.3937,37.7955,0.08
2,1,downtown,134,42078,-122.4014,37.7900,0.13
939,18,suburban,1200,300,-122.2410,37.8127,1.4
1454,34,rural,80,10,-122.8000,38.4000,40.0
"""
SPEC = dict(file="zones.csv", id="zone", district="district", area_type="kind", households="hh", jobs="jobs", lon="x", lat="y", km2="area")


def read(tmp_path: Path, text: str = CSV, **spec):
    (tmp_path / "zones.csv").write_text(text)
    return read_zones(ZoneTableSpec(**{**SPEC, **spec}), tmp_path, "spec.yaml")


def test_a_zone_table_is_read_with_its_facts(tmp_path):
    zones = read(tmp_path)
    assert zones.ids.tolist() == ["1", "2", "939", "1454"] and zones.rows(["939", 1]).tolist() == [2, 0]
    assert zones.jobs.tolist() == [27318, 42078, 300, 10] and zones.area_type[3] == "rural"
    assert zones.describe(0) == "a downtown zone in district 1 with 27,318 jobs and 46 households"
    only_ids = read_zones(ZoneTableSpec(file="zones.csv", id="zone"), tmp_path, "spec.yaml")
    assert only_ids.describe(2) == "a zone" and only_ids.lon is None


def test_distances_are_great_circle_between_centroids_and_half_a_side_within_a_zone(tmp_path):
    zones = read(tmp_path)
    km = zones.km(np.array([0, 0, 2]), np.array([1, 2, 2]))
    assert km[0] == pytest.approx(0.92, abs=0.05)  # two downtown San Francisco zones
    assert km[1] == pytest.approx(13.8, abs=0.5)  # San Francisco to Oakland, as the crow flies
    assert km[2] == pytest.approx(0.5 * np.sqrt(1.4))


def test_nearest_zones_are_a_sparse_graph_k_a_row(tmp_path):
    zones = read(tmp_path)
    graph = zones.nearest(2)
    assert graph.shape == (4, 4) and graph.nnz == 8
    assert graph[0, 1] == pytest.approx(zones.km([0], [1])[0]) and graph[3, 3] == pytest.approx(0.5 * np.sqrt(40.0))
    rural = np.delete(graph.toarray()[3], 3)
    assert rural[rural > 0].min() > 50  # the rural zone's nearest other zone is far


def test_a_zone_a_table_names_but_the_zone_table_lacks_is_named(tmp_path):
    with pytest.raises(SpecError, match=r"zone id\(s\) not in the zone table, e.g. '7'"):
        read(tmp_path).rows(["1", "7"])


@pytest.mark.parametrize("text, spec, message", [
    (CSV, {"id": "taz"}, r"missing column\(s\) 'taz' \(id\)"),
    (CSV.replace("939,18", "2,18"), {}, r"zone id '2' is given 2 times"),
    (CSV.replace("-122.2410", "east"), {}, r"column 'x' \(lon\), row 4: 'east'; expected a number within ±180"),
    (CSV.replace(",1200,", ",-5,"), {}, r"column 'hh' \(households\), row 4: '-5'; expected a number ≥ 0"),
    ("zone,x\n", {"district": None, "area_type": None, "households": None, "jobs": None, "lat": None, "km2": None, "lon": "x"},
     "no zones"),
    (CSV, {"lat": None}, "needs both 'lon' and 'lat'"),
])
def test_bad_zone_tables_are_refused_naming_file_column_and_row(tmp_path, text, spec, message):
    with pytest.raises(SpecError, match=message) as error:
        read(tmp_path, text, **spec)
    assert "zones.csv" in str(error.value)


def test_a_missing_zone_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        read_zones(ZoneTableSpec(file="nowhere.csv"), tmp_path, "spec.yaml")


def test_nearest_first_orders_each_zones_nearest_by_distance_not_by_row(tmp_path):
    zones = read(tmp_path)
    first = zones.nearest_first(3)
    assert first.shape == (4, 3)
    assert first[2].tolist() == [2, 0, 1]  # Oakland: itself, then downtown zone 1 (13.8 km), then zone 2 (14.5 km)
    assert first[3].tolist()[0] == 3
    for row, zone in zip(first, range(4)):
        km = zones.km(np.full(3, zone), row)
        assert np.all(np.diff(km) >= 0) and set(row.tolist()) == set(zones.nearest(3)[[zone]].indices.tolist())
    assert zones.nearest(3)[[1]].indices.tolist() != first[1].tolist() or zones.nearest(3)[[2]].indices.tolist() != first[2].tolist()
