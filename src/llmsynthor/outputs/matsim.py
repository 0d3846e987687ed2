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
    seconds = day[depart].to_numpy(dtype=float) * UNITS[unit]
    labels = [str(modes.get(m, m)) for m in day[mode]] if modes else day[mode].astype(str).tolist()
    who, kinds = day[person].to_numpy(), day[purpose].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
    ids = np.asarray([_text(str(z)) for z in zones.ids], dtype=object)
    places = np.asarray([f'x="{float(a)!r}" y="{float(b)!r}"' for a, b in zip(x, y)], dtype=object)
    labels = [_attribute(m) for m in labels]
    kinds = [_attribute(k) for k in kinds]
    clock = [_clock(t) for t in seconds]
    first = _attribute(first_activity)
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:  # person by person, as text: the whole tree is never held
        out.write('<?xml version="1.0" encoding="utf-8"?>\n' + DOCTYPE + "\n" + ("<population>" if len(starts) else "<population />"))
        for begin, end in zip(starts, np.r_[starts[1:], len(day)]):
            lines = [f'\n  <person id="{_attribute(str(who[begin]))}">\n    <plan selected="yes">',
                     _activity(first, ids[o_rows[begin]], places[o_rows[begin]], clock[begin])]
            for k in range(begin, end):
                lines.append(f'      <leg mode="{labels[k]}" dep_time="{clock[k]}" />')
                lines.append(_activity(kinds[k], ids[d_rows[k]], places[d_rows[k]], clock[k + 1] if k + 1 < end else None))
            lines.append("    </plan>\n  </person>")
            out.write("\n".join(lines))
        out.write("\n</population>\n" if len(starts) else "\n")
    return path


def _activity(kind: str, zone: str, place: str, end: str | None) -> str:
    """An activity as ElementTree, indented, would write it (``kind``, ``zone`` already escaped)."""
    ending = f' end_time="{end}"' if end is not None else ""
    return (f'      <activity type="{kind}" {place}{ending}>\n        <attributes>\n'
            f'          <attribute name="zone" class="java.lang.String">{zone}</attribute>\n        </attributes>\n      </activity>')


def _text(value: str) -> str:
    """Text escaped as ElementTree escapes it."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    """An attribute's value escaped as ElementTree escapes it."""
    return (_text(value).replace('"', "&quot;").replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#09;"))


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
