"""Persons' days of trips as a MATSim population (``population_v6``): one selected plan a person,
activities with end times and coordinates, legs with modes — what agent-based simulation reads.

A day is a chain (:mod:`llmsynthor.evaluation.chains`): the plan starts with the activity at the
first trip's origin, of type ``first_activity`` (``home``; whether the day does start at home is
:func:`~llmsynthor.evaluation.chains.check_days`' to say), ending when that trip departs; every trip is a
leg (its mode, its departure) followed by the activity at its destination (the trip's purpose),
ending when the next trip departs; the last activity has no end. Coordinates are the zones'
centroids (longitude, latitude; MATSim reads them as given, so a run on a network wants them in
its projection); the zone id is kept as the activity's ``zone`` attribute, so the plans read back
into the same trips (:func:`read_plans`). Times are written ``HH:MM:SS`` after midnight;
:func:`read_plans` gives them back as seconds.

Written person by person as text, escaped as the standard library's XML writer escapes it (the whole
tree is never held, so 10⁶ trips write in constant memory); ``tests/test_matsim.py`` reads
the file back with MATSim's own Python reader (``matsim-tools``) as well as with :func:`read_plans`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from ..core.errors import Problem, SpecError
from ..declarations.zones import Zones
from ..evaluation.chains import check_days

DOCTYPE = '<!DOCTYPE population SYSTEM "http://www.matsim.org/files/dtd/population_v6.dtd">'
UNITS = {"hour": 3600, "minute": 60, "second": 1}


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_plans(path: Path, trips: pd.DataFrame, zones: Zones, *, person: str = "person_id", origin: str = "origin",
                destination: str = "destination", depart: str = "depart", unit: str = "hour", mode: str = "mode",
                purpose: str = "purpose", order: tuple[str, ...] = (), first_activity: str = "home",
                modes: Mapping[str, str] | None = None) -> Path:
    """Write ``trips`` (one row a trip) as MATSim plans; ``modes`` maps the trips' modes to MATSim's
    (``car``, ``pt``, ``walk``, …; a mode not mapped is written as it is). A person whose trips are not
    a chain (a trip not starting where the previous ended) is refused, naming how many and one of them."""
    if unit not in UNITS:
        raise SpecError(Problem("unit", f"{unit!r}; expected one of {', '.join(UNITS)}"))
    missing = [c for c in (mode, purpose) if c not in trips.columns]
    if missing:
        raise SpecError(Problem("trips", f"missing column(s) {', '.join(map(repr, missing))}; expected each trip's mode and purpose"))
    check = check_days(trips, person=person, origin=origin, destination=destination, depart=depart, order=order)
    if check.broken["jump"].any():
        bad = check.persons[check.broken["jump"]]
        raise SpecError(Problem("trips", f"{bad.size} person(s) whose trips are no chain (a trip not starting where the "
                                         f"previous ended), e.g. {bad[0]}; expected days of chained trips"))
    day = trips.sort_values([person, depart, *order], kind="stable")
    o_rows, d_rows = zones.rows(day[origin].to_numpy()), zones.rows(day[destination].to_numpy())
    x, y = zones.lon, zones.lat
    if x is None or y is None:
        raise SpecError(Problem("zones", "no centroids: MATSim activities need the zone table's 'lon' and 'lat' columns"))
    seconds = np.rint(day[depart].to_numpy(dtype=float) * UNITS[unit]).astype(np.int64)  # half to even, as round()
    labels = day[mode].map(lambda m: modes.get(m, m)) if modes else day[mode]
    who = day[person].to_numpy()
    starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]]) if len(who) else np.zeros(0, dtype=np.int64)  # no trips: no persons
    ids = [_text(str(z)) for z in zones.ids]
    places = np.asarray([f'x="{float(a)!r}" y="{float(b)!r}"' for a, b in zip(x, y)], dtype=object)
    closing = np.asarray([_CLOSING.format(zone=z) for z in ids], dtype=object)  # an activity's end, naming its zone
    labels, kinds = _formed(labels.astype(str), _attribute), _formed(day[purpose].astype(str), _attribute)
    clock, first = _formed(seconds, _clock), _attribute(first_activity)
    bounds = np.r_[starts, len(day)]
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:  # CHUNK persons at a time, as text: the whole tree is never held
        out.write('<?xml version="1.0" encoding="utf-8"?>\n' + DOCTYPE + "\n" + ("<population>" if len(starts) else "<population />"))
        for a in range(0, len(starts), CHUNK):
            b = min(a + CHUNK, len(starts))
            lo, hi = bounds[a], bounds[b]
            heads, ends = starts[a:b] - lo, bounds[a + 1:b + 1] - lo - 1  # each person's first and last trip, in the chunk
            ending = np.full(hi - lo, "", dtype=object)  # an activity ends when the next trip departs; the day's last never
            more = np.ones(hi - lo, dtype=bool)
            more[ends] = False
            ending[more] = ' end_time="' + clock[lo + 1 + np.flatnonzero(more)] + '"'
            d, o = d_rows[lo:hi], o_rows[lo:hi][heads]
            text = ('\n      <leg mode="' + labels[lo:hi] + '" dep_time="' + clock[lo:hi] + '" />\n      <activity type="'
                    + kinds[lo:hi] + '" ' + places[d] + ending + closing[d])  # a trip: its leg, then the activity it reaches
            people = np.asarray([_attribute(str(v)) for v in who[starts[a:b]]], dtype=object)
            text[heads] = ('\n  <person id="' + people + '">\n    <plan selected="yes">\n      <activity type="' + first + '" '
                           + places[o] + ' end_time="' + clock[lo:hi][heads] + '"' + closing[o] + text[heads])
            text[ends] = text[ends] + "\n    </plan>\n  </person>"
            out.write("".join(text))
        out.write("\n</population>\n" if len(starts) else "\n")
    return path


CHUNK = 20_000  # persons written at a time
_CLOSING = ('>\n        <attributes>\n          <attribute name="zone" class="java.lang.String">{zone}</attribute>\n'
            '        </attributes>\n      </activity>')  # as ElementTree, indented, writes an activity's end (zone escaped)


def _formed(values, form) -> np.ndarray:
    """``form`` of each of ``values`` as an object array, each distinct value formed once."""
    codes, distinct = pd.factorize(np.asarray(values))
    return np.asarray([form(v) for v in distinct], dtype=object)[codes]


_IN_ATTRIBUTES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}  # what ElementTree escapes in an attribute besides


def _text(value: str) -> str:
    """Text escaped as ElementTree escapes it."""
    return escape(value)


def _attribute(value: str) -> str:
    """An attribute's value escaped as ElementTree escapes it."""
    return escape(value, _IN_ATTRIBUTES)


def read_plans(path: Path) -> pd.DataFrame:
    """The trips of a plans file written by :func:`write_plans` (selected plans): person, origin and
    destination zone, departure (seconds after midnight), mode and purpose (the activity reached)."""
    rows = []
    for person in ET.parse(path).getroot().iter("person"):
        for plan in person.iter("plan"):
            if plan.get("selected", "yes") != "yes":
                continue
            elements = list(plan)
            for k, leg in enumerate(elements):
                if leg.tag != "leg":
                    continue
                before, after = elements[k - 1], elements[k + 1]
                h, m, s = (int(v) for v in leg.get("dep_time").split(":"))
                rows.append((person.get("id"), _zone(before), _zone(after), h * 3600 + m * 60 + s, leg.get("mode"), after.get("type")))
    return pd.DataFrame(rows, columns=["person_id", "origin", "destination", "depart", "mode", "purpose"])


def _zone(activity: ET.Element) -> str:
    found = activity.find("attributes/attribute[@name='zone']")
    return found.text if found is not None else ""
