"""Persons' days written as MATSim plans (outputs.matsim), read back by our reader and by MATSim's
own Python tools (matsim-tools, in the dev extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsynthor.core.errors import SpecError
from llmsynthor.declarations.zones import Zones
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
