"""Persons' days written as MATSim plans (outputs.matsim), read back by our reader and by MATSim's
own Python tools (matsim-tools, in the dev extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsynthor.core.errors import SpecError
from llmsynthor.declarations.zones import Zones
from llmsynthor.outputs import matsim
from llmsynthor.outputs.matsim import read_plans, write_plans

ZONES = Zones(np.array(["1", "2", "939"]), lon=np.array([-122.39, -122.40, -122.24]), lat=np.array([37.79, 37.79, 37.81]))
TRIPS = pd.DataFrame({  # p1: home 1 -> work 939 -> eat out 2 -> work 939 -> home 1; p2: home 2 -> shop & back
    "person_id": [1, 1, 1, 1, 2, 2], "origin": ["1", "939", "2", "939", "2", "1"], "destination": ["939", "2", "939", "1", "1", "2"],
    "depart": [7, 12, 13, 17, 10, 11], "mode": ["drive alone", "walk", "walk", "drive alone", "transit", "transit"],
    "purpose": ["work", "eat out", "work", "home", "shopping & errands", "home"]})
MODES = {"drive alone": "car", "transit": "pt"}


def test_days_are_written_as_plans_and_read_back_into_the_same_trips(tmp_path):
    path = write_plans(tmp_path / "plans.xml", TRIPS, ZONES, modes=MODES)
    text = path.read_text()
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE population SYSTEM') and "&amp;" in text
    back = read_plans(path)
    expected = TRIPS.assign(person_id=TRIPS["person_id"].astype(str), depart=TRIPS["depart"] * 3600,
                            mode=TRIPS["mode"].map(lambda m: MODES.get(m, m)))
    pd.testing.assert_frame_equal(back, expected[back.columns])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # matsim-tools' reader leaves its file open
def test_matsim_s_own_reader_reads_the_plans(tmp_path):
    matsim = pytest.importorskip("matsim", reason="matsim-tools is in the dev extra")
    plans = matsim.plan_reader_dataframe(str(write_plans(tmp_path / "plans.xml", TRIPS, ZONES, modes=MODES)))
    assert len(plans.persons) == 2 and len(plans.plans) == 2 and len(plans.legs) == 6 and len(plans.activities) == 8
    assert plans.legs["mode"].tolist() == ["car", "walk", "walk", "car", "pt", "pt"]
    assert plans.activities["type"].tolist() == ["home", "work", "eat out", "work", "home", "home", "shopping & errands", "home"]
    first = plans.activities.iloc[0]
    assert first["end_time"] == "07:00:00" and float(first["x"]) == pytest.approx(-122.39) and first["zone"] == "1"


def test_a_day_that_is_no_chain_is_refused_naming_the_person(tmp_path):
    broken = TRIPS.assign(origin=TRIPS["origin"].where(TRIPS.index != 2, "1"))
    with pytest.raises(SpecError, match=r"1 person\(s\) whose trips are no chain .* e.g. 1"):
        write_plans(tmp_path / "plans.xml", broken, ZONES)
    assert not (tmp_path / "plans.xml").exists()


def test_a_zone_without_centroid_or_unknown_is_named(tmp_path):
    with pytest.raises(SpecError, match="no centroids"):
        write_plans(tmp_path / "p.xml", TRIPS, Zones(ZONES.ids))
    with pytest.raises(SpecError, match="e.g. '7'"):
        write_plans(tmp_path / "p.xml", TRIPS.replace({"939": "7"}), ZONES)


@pytest.mark.parametrize("chunk", [1, 2, 20_000])  # persons written at a time: every person its own chunk, a chunk ending mid-way, one
def test_the_text_is_what_elementtree_writes_of_the_same_plans_odd_characters_and_all(tmp_path, monkeypatch, chunk):
    import xml.etree.ElementTree as ET

    monkeypatch.setattr(matsim, "CHUNK", chunk)
    zones = Zones(np.array(['a<1>&"x"', "2\t\n"]), lon=np.array([-122.39, -122.4]), lat=np.array([37.79, 37.8]))
    trips = pd.DataFrame({"person_id": ['p"1&', 'p"1&', "<p2>", "p3", "p3", "p3"],
                          "origin": ['a<1>&"x"', "2\t\n", "2\t\n", "2\t\n", 'a<1>&"x"', 'a<1>&"x"'],
                          "destination": ["2\t\n", 'a<1>&"x"', 'a<1>&"x"', 'a<1>&"x"', 'a<1>&"x"', "2\t\n"],
                          "depart": [7.25, 17.5, 9, 6.0001, 12.5, 20],
                          "mode": ['walk "fast"\r', "car", "a&b", "car", "car", "car"],
                          "purpose": ["work <main>", "home", "shop\t&\nstop", "work", "eat", "home"]})
    text = write_plans(tmp_path / "plans.xml", trips, zones).read_text(encoding="utf-8")
    root = ET.Element("population")  # the same plans built as a tree, in the order the writer takes the days
    for who, day in trips.sort_values(["person_id", "depart"], kind="stable").groupby("person_id", sort=False):
        plan = ET.SubElement(ET.SubElement(root, "person", id=who), "plan", selected="yes")
        rows = day.to_dict("records")
        for k, trip in enumerate([None, *rows]):
            zone = rows[0]["origin"] if trip is None else trip["destination"]
            row = int(np.flatnonzero(zones.ids == zone)[0])
            end = rows[k]["depart"] if k < len(rows) else None
            if trip is not None:
                ET.SubElement(plan, "leg", mode=trip["mode"], dep_time=_hms(trip["depart"]))
            act = ET.SubElement(plan, "activity", type="home" if trip is None else trip["purpose"], x=repr(float(zones.lon[row])),
                                y=repr(float(zones.lat[row])), **({"end_time": _hms(end)} if end is not None else {}))
            ET.SubElement(ET.SubElement(act, "attributes"), "attribute", name="zone", **{"class": "java.lang.String"}).text = zone
    ET.indent(root)
    assert text.split("\n", 2)[2] == ET.tostring(root, encoding="unicode") + "\n"
    assert read_plans(tmp_path / "plans.xml")["purpose"].tolist() == ["shop\t&\nstop", "work <main>", "home", "work", "eat", "home"]  # <p2> first


def _hms(hours: float) -> str:
    seconds = int(round(hours * 3600))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
