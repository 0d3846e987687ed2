"""What-if scenarios: an event's visits added to the baseline's days, and what moved.

A scenario is a sentence ("a concert in zone 1210 from 20:00 to 23:00 draws 500 visitors, most by
transit") or the :class:`~llmsynthor.shapes.trips.spec.Event` itself. A sentence becomes an event in
two steps, the model never writing a number:

1. **what the text states** (:func:`read_text`, before any model work): the zone it names must be a
   row of the zone table, its first and last clock time real hours within the spec's, and it must
   give a number of visitors — else a SpecError naming the scenario and what is wrong;
2. **what needs reading** (:func:`ask_event`): the activity, the main mode and the share taking it
   (all, most, half, some, few), each chosen by the model among the spec's own values (in
   ``trips.words`` where given) by token probabilities — and the number of visitors among the
   text's numbers when it gives several. The event is validated against the spec, shown, and written
   with every question's probabilities before it is applied.

A sentence naming no zone and giving no number of people is a **change of modes** (a :class:`Shift`:
"a transit strike: half of the transit riders drive alone instead"): its hours (if it gives two) and a
percentage (if it gives one) are read from the text (:func:`read_shift_text`); the mode left, the mode
taken, the activity (or any) and, without a percentage, the share, by the model (:func:`ask_shift`).

Applying an event (:func:`add_visits`) changes nobody else: visitors are chosen among the persons
whose day is over before the event starts (or who make no trips), weighed so that their distances
from home follow the baseline's trips of the event's activity; each gets a tour home → zone departing
in the event's first hour and zone → home in its last hour, by the main mode at its share (exactly,
as near as whole visitors go), else by the modes of the baseline's trips of that activity and
length. Every other trip is the baseline's, record for record (same seed): what moved is exactly the
visits (:func:`flow_changes`). Applying a shift (:func:`shift_modes`) changes only the modes of the tours
it moves, each whole tour at once, chosen among those of its mode (its activity, its hours) so that their
lengths (a tour's longest leg) follow the baseline's tours of the new mode, and by persons of the kinds that
take it there — a tour of a band of length the new mode's tours never travel in the baseline, longer than
the longest of them (a 30 km walk), or by a person of a kind that never takes it there (driving alone from a
household without a car), is not moved; every zone, hour and activity stays the baseline's. A cancellation (:func:`cancel_tours`, given in the spec,
never read from a text) takes the share of the tours in scope away, whole tours, so every day left still
starts and ends at home.

A sentence naming a zone, a word of closing ("closed", "closes", "shut") and no number of people is a
**closure** (a :class:`Close`: "the shopping mall in zone 1122 is closed from 10:00 to 20:00"): its zone and
hours are read from the text (:func:`read_close_text`), the activity closed (or any) by the model
(:func:`ask_close`). Applying it (:func:`close_zone`) makes each visit in scope elsewhere — another zone within
reach of both of the visit's legs, drawn by what draws the activity there and nearness to the closed zone —
and the trip leaving the visit leaves from there; nothing else changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError

from ...core.errors import LLMSynthorError, Problem, SpecError
from ...declarations.zones import Zones
from .days import LENGTH_BANDS as BAND_EDGES
from .days import REACH, attraction_of, length_band
from .spec import SHARES, TRIPS_PER_PERSON, Cancel, Close, Event, Scenario, Shift, ToursInScope, TripsSpec

_ZONE = re.compile(r"\bzones?\b\s*(?:no\.?|number|#)?\s*([A-Za-z0-9_]+(?:[,.][0-9]+)*)", re.IGNORECASE)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(?:([ap])\.?\s*m\b\.?)?|\b(midnight|noon)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:\s*[kKmM]\b)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
_CLOSING = re.compile(r"\b(?:closed|closes|closure|shut|shuts|shutdown)\b", re.IGNORECASE)  # what says a place is closed
# (not "close", "closing": "close to the station", "the closing ceremony" are events)
LENGTH_BANDS = 8  # the baseline's trips of the event's activity in this many quantile bands of length


@dataclass(frozen=True)
class Said:
    """What a scenario's text says itself: the zone it names, its clock hours in order, the other numbers."""

    zone: str
    hours: tuple[int, ...]
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class SaidShift:
    """What a change of modes' text says itself: its clock hours (none or two), and a percentage as a share."""

    hours: tuple[int, ...]
    share: float | None


@dataclass(frozen=True)
class SaidClose:
    """What a closure's text says itself: the zone it names, its clock hours (none or two)."""

    zone: str
    hours: tuple[int, ...]


def text_kind(text: str, known=()) -> str:
    """What a scenario's text describes, from what it states (never asked of the model): "close", a closure — a
    zone ('zone ID': with a digit, or one of the ``known`` ids) and a word of closing ('closed', 'closes',
    'closure', 'shut', 'shutdown'; :func:`read_close_text` refuses its numbers of people); "shift", a change of
    modes — no zone and no number but clock times and percentages; else "event" — a zone and its visitors
    (:func:`read_text` names what an event's text lacks)."""
    known = set(known)
    zoned = [m for m in _ZONE.finditer(text) if any(ch.isdigit() for ch in m.group(1)) or m.group(1) in known]
    if zoned:
        return "close" if _CLOSING.search(text) else "event"
    return "event" if _counts(text, []) else "shift"


def _counts(text: str, taken: list) -> list[str]:
    """The numbers of ``text`` that are no clock time ('20:00', '8 pm', 'noon') and no percentage, outside the spans
    ``taken``."""
    rest = "".join(" " if any(a <= n < b for a, b in taken) else ch for n, ch in enumerate(text))
    rest = _PERCENT.sub(" ", rest)
    rest = _TIME.sub(lambda m: " " if m.group(2) or m.group(3) or m.group(4) else m.group(0), rest)
    return _NUMBER.findall(rest)


def _whole(token: str) -> int | None:
    """A count as people write it ("500", "1,200"), or None: decimals, "1.5k" and the like are not a count."""
    plain = token.strip()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+|\d+", plain):
        return int(plain.replace(",", ""))
    return None


def _clock_hours(text: str, taken: list, where: str, spec: TripsSpec, problems: list, event: bool = True) -> tuple[list[int], bool]:
    """The clock times of ``text`` as hours, in order, outside the spans ``taken`` (which grows by each time
    read); what is not a time of the day's hours goes to ``problems``. The hours, and whether any was wrong."""
    hours, bad_time = [], False
    s = spec.trips
    latest = s.last_hour if event else s.last_hour + 1  # a change of modes' end is excluded: "to midnight" ends the day
    for m in _TIME.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        if m.group(4):
            word = m.group(4).lower()
            hour = 12 if word == "noon" else (0 if not hours else 24)  # midnight: the day's start, or its end
        elif m.group(2) is None and m.group(3) is None:
            continue  # a bare number: a count, not a time
        else:
            hour, minutes = int(m.group(1)), int(m.group(2) or 0)
            if m.group(3):
                if not 1 <= hour <= 12:
                    problems.append(Problem(where, f"{m.group(0).strip()!r} is not a time"))
                    bad_time = True
                    continue
                hour = hour % 12 + (12 if m.group(3).lower() == "p" else 0)
            if hour > 24 or minutes > 59:
                problems.append(Problem(where, f"{m.group(0).strip()!r} is not a time of day (expected 0:00 … 24:00)"))
                bad_time = True
                continue
        taken.append(m.span())
        if not s.first_hour <= hour <= latest:
            problems.append(Problem(where, f"{m.group(0).strip()!r} is outside the day's hours: trips depart from trips.first_hour "
                                           f"{s.first_hour}:00 to trips.last_hour {s.last_hour}:59"
                                           + (", and the trips back depart in the event's last hour" if event else "")))
            bad_time = True
            continue
        hours.append(hour)
    return hours, bad_time


def read_text(scenario: Scenario, spec: TripsSpec, zones: Zones) -> Said:
    """The zone, hours and numbers of a scenario's text, checked against the zone table and the spec's
    hours (SpecError naming the scenario, before any model work): one zone of the zone table ('zone
    ID'), a start and an end time (24-hour '20:00', '8 pm', 'noon', 'midnight') within the day, the
    end not before the start, and a whole number of visitors of at least 1."""
    text, where = scenario.text or "", f"scenarios: {scenario.name}"
    problems, taken = [], []
    zone = _named_zone(text, zones, where, problems, taken, "event")
    hours, bad_time = _clock_hours(text, taken, where, spec, problems)
    if not bad_time:
        if len(hours) != 2:
            problems.append(Problem(where, f"gives {len(hours) or 'no'} time{'s' if len(hours) != 1 else ''}; say from when to "
                                           "when, e.g. 'from 20:00 to 23:00' (the trips there depart in the first hour, the "
                                           "trips back in the last)"))
        elif hours[1] < hours[0]:
            problems.append(Problem(where, f"ends at {hours[1]}:00, before it starts at {hours[0]}:00; an event within one day"))
    numbers = []
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        count = _whole(m.group(0))
        if count is None:
            problems.append(Problem(where, f"{m.group(0).strip()!r} is not a whole number of visitors; write it out, e.g. '1,500'"))
        elif count >= 1:
            numbers.append(count)
    if not numbers and not any("whole number" in p.message for p in problems):
        problems.append(Problem(where, "gives no number of visitors; say how many, e.g. '500 visitors' (a closure says so and "
                                       "gives no number of people: 'the mall in zone 1210 is closed from 10:00 to 20:00')"))
    if problems:
        raise SpecError(problems)
    return Said(zone, tuple(hours), tuple(numbers))


def _named_zone(text: str, zones: Zones, where: str, problems: list, taken: list, what: str) -> str:
    """The one zone ``text`` names ('zone 1210', 'zone 1,210', 'zone Z7'), a row of the zone table; what is wrong goes to
    ``problems``, the zone's span to ``taken``."""
    known = set(zones.ids.astype(str))
    named = []
    for m in _ZONE.finditer(text):
        count = _whole(m.group(1))
        zone = m.group(1) if count is None else str(count)  # "zone 1,210" is zone 1210
        if zone in known or any(ch.isdigit() for ch in zone):  # "zone 1210", "zone Z7"; not "the zone of …"
            named.append(zone)
            taken.append(m.span(1))
    unknown = sorted({z for z in named if z not in known})
    if unknown:
        problems.append(Problem(where, f"names zone {', '.join(map(repr, unknown))}, not in the zone table ({len(zones):,} zones, "
                                       f"e.g. {str(zones.ids[0])!r}); expected the id of a row of the zone table"))
    elif not named:
        problems.append(Problem(where, "names no zone; say where as 'zone ID' (an id of the zone table): the model cannot know "
                                       "where a place is. A text naming no zone is read as a change of modes only if its numbers "
                                       "are clock times ('7:00', '8 am') and one percentage ('30%')"))
    elif len(set(named)) > 1:
        problems.append(Problem(where, f"names zones {sorted(set(named))}; one {what} in one zone per scenario"))
    return named[0] if named else ""


def _span(hours: list[int], bad_time: bool, where: str, spec: TripsSpec, problems: list, what: str, when: str) -> tuple[int, ...]:
    """A change's hours from the text's clock times (:func:`_clock_hours`, its end excluded): none (the whole day), or the
    first and last hour of two times ("from 6:00 to 10:00": hours 6 to 9); what is wrong goes to ``problems``."""
    if bad_time:
        return ()
    if len(hours) not in (0, 2):
        problems.append(Problem(where, f"gives {len(hours)} time{'s' if len(hours) != 1 else ''}; {what} gives none (the whole "
                                       f"day) or two: {when}, e.g. 'from 6:00 to 10:00' (hours 6 to 9)"))
    elif len(hours) == 2 and hours[1] <= hours[0]:
        problems.append(Problem(where, f"ends at {hours[1]}:00, not after it starts at {hours[0]}:00"))
    elif len(hours) == 2 and hours[0] > spec.trips.last_hour:
        problems.append(Problem(where, f"starts at {hours[0]}:00, after the day's last hour trips.last_hour {spec.trips.last_hour}"))
    elif len(hours) == 2:
        return hours[0], max(hours[0], hours[1] - 1)
    return ()


def read_shift_text(scenario: Scenario, spec: TripsSpec) -> SaidShift:
    """The hours and share a change of modes' text states, checked (SpecError naming the scenario, before any
    model work): no time, or two — the hours its tours leave home in, within the day, the end not before
    the start — and at most one percentage, above 0 and at most 100."""
    text, where = scenario.text or "", f"scenarios: {scenario.name}"
    problems: list[Problem] = []
    hours = _span(*_clock_hours(text, [], where, spec, problems, event=False), where, spec, problems,
                  "a change of modes", "when its tours leave home")
    shares = [float(m.group(1)) for m in _PERCENT.finditer(text)]
    if len(shares) > 1:
        problems.append(Problem(where, f"gives {len(shares)} percentages; a change of modes gives one share of the tours that change"))
    elif shares and not 0 < shares[0] <= 100:
        problems.append(Problem(where, f"{shares[0]:g}% is not a share of tours (expected above 0 and at most 100)"))
    if problems:
        raise SpecError(problems)
    return SaidShift(tuple(hours), shares[0] / 100 if shares else None)


def read_close_text(scenario: Scenario, spec: TripsSpec, zones: Zones) -> SaidClose:
    """The zone and hours a closure's text states, checked (SpecError naming the scenario, before any model work): one
    zone of the zone table, no time or two (the hours the trips there depart in, within the day, the end excluded), and
    no percentage (every visit in scope is made elsewhere)."""
    text, where = scenario.text or "", f"scenarios: {scenario.name}"
    problems, taken = [], []
    zone = _named_zone(text, zones, where, problems, taken, "closure")
    hours = _span(*_clock_hours(text, taken, where, spec, problems, event=False), where, spec, problems,
                  "a closure", "when the trips there depart")
    if _PERCENT.search(text):
        problems.append(Problem(where, "gives a percentage; a closure moves every visit in its scope elsewhere (to take a share "
                                       "of tours away, give `cancel: {share, purpose}` in the spec)"))
    numbers = _counts(text, taken)
    if numbers:
        problems.append(Problem(where, f"says the zone is closed and gives {', '.join(map(repr, numbers))}, no clock time: a "
                                       "closure gives no number but its hours ('from 10:00 to 20:00'); an event's visitors are "
                                       "said without a word of closing"))
    if problems:
        raise SpecError(problems)
    return SaidClose(zone, tuple(hours))


def check_scenarios(spec: TripsSpec, zones: Zones, model: bool) -> dict[str, Said | SaidShift | SaidClose | None]:
    """Every scenario checked before any work: a given event's or closure's zone in the zone table, a text's zone,
    times and numbers (:func:`read_text`; a change of modes' hours and share, :func:`read_shift_text`; a closure's
    zone and hours, :func:`read_close_text`), and a text only where a model can read it."""
    problems, said = [], {}
    readers = {"shift": lambda sc: read_shift_text(sc, spec), "close": lambda sc: read_close_text(sc, spec, zones),
               "event": lambda sc: read_text(sc, spec, zones)}
    for scenario in spec.scenarios:
        where = f"scenarios: {scenario.name}"
        if scenario.change is not None:
            zoned = scenario.event or scenario.close
            if zoned is not None and zoned.zone not in set(zones.ids.astype(str)):
                what = "event" if scenario.event is not None else "closed"
                problems.append(Problem(where, f"{what} zone {zoned.zone!r} is not in the zone table; expected the id of a row"))
            elif scenario.close is not None and len(zones) < 2:
                problems.append(Problem(where, "closes the only zone of the zone table: nowhere else to go"))
            said[scenario.name] = None
            continue
        try:
            kind = text_kind(scenario.text or "", zones.ids.astype(str))
            if kind == "close" and len(zones) < 2:
                problems.append(Problem(where, "reads as a closure (a zone, a word of closing), and the zone table has one zone: "
                                               "nowhere else to go"))
                continue
            if kind == "shift" and len(spec.trips.modes) < 2:
                problems.append(Problem(where, f"reads as a change of modes (no zone, no number of people), and trips.modes has one "
                                               f"mode, {spec.trips.modes}: nothing to change to"))
                continue
            said[scenario.name] = readers[kind](scenario)
        except SpecError as exc:
            problems.extend(exc.problems)
        if not model:
            problems.append(Problem(where, "is a sentence, and this run has no model to read it (llm.backend: none); give the "
                                           "change itself as `event: {zone, start, end, visitors, purpose, mode, share}`, "
                                           "`shift: {mode, to, share}` or `close: {zone, purpose}`"))
    if problems:
        raise SpecError(problems)
    return said


QUESTIONS = {  # field -> the question; each answer is one of the spec's own values, scored by token probabilities
    "purpose": "What do the visitors go there for? The activity at the event's zone",
    "mode": "How do most of the visitors travel there?",
    "share": "How many of the visitors travel by {mode}?",
    "visitors": "How many visitors does the event draw?",
    "from": "The travellers switch from which mode?",
    "to": "Which mode do they take instead of {mode}?",
    "scope": "Which trips does the change concern?",
    "part": "Which word does the text use for how many of the {mode} travellers switch to {to}?",
    "closed": "Which visits does the closure stop?",
}
ANY = "(any)"  # the shift's scope option for tours of every activity


def event_question(text: str, spec: TripsSpec, field: str, options: list[str], letters: bool, what: str = "event", **given: str):
    """(messages, answer prefix, options) asking which of ``options`` the text means for ``field`` — scored
    from token probabilities, never sampled; by letter for servers that cannot continue an answer. ``what``:
    the text describes an "event", a "change" in how the persons travel or a "closure" of a place."""
    from ...prior.prompts import LETTERS

    question = QUESTIONS[field].format(**given)
    labels = [f"{LETTERS[j]}) {o}" if letters else o for j, o in enumerate(options)]
    who = f" The persons are {spec.population}." if spec.population else ""
    described = {"event": "an event", "change": "a change in how persons travel", "closure": "a closure of a place"}[what]
    messages = [
        {"role": "system", "content": f"You read the description of {described} for a travel model that synthesizes persons' "
                                      "days of trips." + who},
        {"role": "user", "content": f"{what.capitalize()}: {text}\n\n{'Answer with the letter only' if letters else 'Answer as JSON'}: "
                                    f"{question} One of: {'; '.join(labels)}."},
    ]
    if letters:
        return messages, "", list(LETTERS[:len(options)])
    return messages, f'{{"{field}": "', options


def check_reader(scenario: Scenario, llm) -> None:
    """LLMSynthorError unless ``llm`` gives token probabilities to read ``scenario``'s text with (checked before any work)."""
    from ...llm.base import can_score_options

    if not can_score_options(llm):
        raise LLMSynthorError(f"scenario {scenario.name!r}: the backend {llm.name} gives no token probabilities to read the "
                              "scenario with; give the change itself in the spec (scenarios: - {name: …, event: {…}} or "
                              "{name: …, shift: {…}} or {name: …, close: {…}})")


def ask_event(scenario: Scenario, said: Said, spec: TripsSpec, llm, on_call=None) -> tuple[Event, dict]:
    """The event a scenario's text describes: the zone, hours and visitors it states (:func:`read_text`;
    the model picks the visitors only among the text's numbers when it gives several), the activity,
    the main mode and its share chosen by the model among the spec's values by token probabilities.
    Returns the event and each question's probabilities (for the manifest)."""
    s = spec.trips
    asked: dict[str, dict[str, float]] = {}
    pick = _picker(scenario, spec, llm, on_call, asked, "event", max(len(s.purposes) - 1, len(s.modes), len(set(said.numbers))))
    purpose = pick("purpose", [p for p in s.purposes if p != s.home])
    mode = pick("mode", list(s.modes))
    share = pick("share", list(SHARES), mode=s.said([mode])[0])
    numbers = list(dict.fromkeys(said.numbers))
    visitors = numbers[0] if len(numbers) == 1 else int(pick("visitors", [str(n) for n in numbers]))
    event = _checked(scenario, spec, "event", lambda: Event(zone=said.zone, start=said.hours[0], end=said.hours[-1],
                                                           visitors=visitors, purpose=purpose, mode=mode, share=share))
    return event, asked


def _checked(scenario: Scenario, spec: TripsSpec, what: str, build):
    """The change ``build`` makes of what was read, validated against its schema and the spec (SpecError naming
    the scenario): the readers checked every field; this guards the schema's own limits."""
    try:
        change = build()
    except ValidationError as exc:
        raise SpecError(Problem(f"scenarios: {scenario.name}", f"the {what} read is not valid: {exc.errors()[0]['msg']}")) from None
    wrong = change.problems(spec.trips)
    if wrong:
        raise SpecError(Problem(f"scenarios: {scenario.name}", "; ".join(wrong)))
    return change


def _picker(scenario: Scenario, spec: TripsSpec, llm, on_call, asked: dict, what: str, most: int):
    """A function asking the model one question of a scenario's text — which of the options (the spec's own
    values, shown in ``trips.words``) it means — by token probabilities; each answer's probabilities go to
    ``asked``. Checked first: the backend scores options, and by letter (a server that cannot continue an
    answer) no question has more than ``most`` options it cannot letter."""
    from ...llm.base import continues_answers, score_options
    from ...prior.prompts import LETTERS

    check_reader(scenario, llm)
    s, text, letters = spec.trips, scenario.text or "", not continues_answers(llm)
    if letters and most > len(LETTERS):
        raise LLMSynthorError(f"scenario {scenario.name!r}: more than {len(LETTERS)} options to ask this server for by letter")

    def pick(field: str, options: list[str], shown: list[str] | None = None, **given: str) -> str:
        if len(options) == 1:  # nothing to choose: no question
            asked[field] = {options[0]: 1.0}
            return options[0]
        shown = shown or s.said(options)  # the words the model is asked in, mapped back by position
        choice = score_options(llm, [event_question(text, spec, field, shown, letters, what, **given)])[0]
        if on_call is not None:
            on_call(choice)
        asked[field] = {o: round(float(p), 4) for o, p in zip(options, choice.probabilities)}
        return options[int(np.argmax(choice.probabilities))]

    return pick


def ask_shift(scenario: Scenario, said: SaidShift, spec: TripsSpec, llm, on_call=None) -> tuple[Shift, dict]:
    """The change of modes a scenario's text describes: its hours and percentage as the text states them
    (:func:`read_shift_text`), the mode left, the mode taken instead, the activity (or any) and — without a
    percentage — the share (all, most, half, some, few) chosen by the model among the spec's values by token
    probabilities. Returns the shift and each question's probabilities (for the manifest)."""
    s = spec.trips
    asked: dict[str, dict[str, float]] = {}
    pick = _picker(scenario, spec, llm, on_call, asked, "change", max(len(s.purposes), len(s.modes)))
    mode = pick("from", list(s.modes))
    to = pick("to", [m for m in s.modes if m != mode], mode=s.said([mode])[0])
    activities = [p for p in s.purposes if p != s.home]
    scope = pick("scope", [ANY, *activities], ["trips of any activity", *(f"trips for {w}" for w in s.said(activities))])
    share = said.share if said.share is not None else SHARES[pick("part", list(SHARES), mode=s.said([mode])[0], to=s.said([to])[0])]
    hours = said.hours or (None, None)
    shift = _checked(scenario, spec, "change of modes", lambda: Shift(mode=mode, to=to, share=share, start=hours[0], end=hours[-1],
                                                                     purpose=None if scope == ANY else scope))
    return shift, asked


def ask_close(scenario: Scenario, said: SaidClose, spec: TripsSpec, llm, on_call=None) -> tuple[Close, dict]:
    """The closure a scenario's text describes: its zone and hours as the text states them (:func:`read_close_text`), the
    activity whose visits it stops (or any) chosen by the model among the spec's values by token probabilities. Returns
    the closure and the question's probabilities (for the manifest)."""
    s = spec.trips
    asked: dict[str, dict[str, float]] = {}
    activities = [p for p in s.purposes if p != s.home]
    pick = _picker(scenario, spec, llm, on_call, asked, "closure", len(s.purposes))
    scope = pick("closed", [ANY, *activities], ["visits for any activity", *(f"visits for {w}" for w in s.said(activities))])
    hours = said.hours or (None, None)
    close = _checked(scenario, spec, "closure", lambda: Close(zone=said.zone, purpose=None if scope == ANY else scope,
                                                              start=hours[0], end=hours[-1]))
    return close, asked


@dataclass
class Visits:
    """The scenario's persons and trips (the baseline's, plus the visits) and what was placed."""

    persons: pd.DataFrame
    trips: pd.DataFrame  # with a column ``visit``: True for the trips the event added
    asked: int
    placed: int
    eligible: int
    modes: dict[str, int]


def add_visits(event: Event, spec: TripsSpec, zones: Zones, persons: pd.DataFrame, trips: pd.DataFrame,
               rng: np.random.Generator) -> Visits:
    """The baseline's days with the event's visits added (see the module's text); ``persons`` and
    ``trips`` are what the baseline wrote (ActivitySim's columns), left unchanged."""
    s = spec.trips
    ids = persons["person_id"].to_numpy()
    at = pd.Index(ids).get_indexer(trips["person_id"])
    last = np.full(len(persons), -1)
    np.maximum.at(last, at, trips["depart"].to_numpy().astype(int))
    count = np.bincount(at, minlength=len(persons))
    eligible = (last < event.start) & (count + 2 <= s.max_trips)
    place = zones.rows([event.zone])[0]
    home = zones.rows(persons["home_zone"].to_numpy())
    km = zones.km(home, np.full(len(home), place))
    same = trips[(trips["purpose"] == event.purpose)]
    if len(same) == 0:
        same = trips[trips["purpose"] != s.home]
    edges = np.unique(np.quantile(same["km"].to_numpy(float), np.linspace(0, 1, LENGTH_BANDS + 1))) if len(same) else np.array([0.0])
    bands = max(len(edges) - 1, 1)

    def band_of(km_: np.ndarray) -> np.ndarray:  # the length band of each distance
        return np.clip(np.searchsorted(edges, km_, side="right") - 1, 0, bands - 1)

    band = band_of(km)
    share = np.bincount(band_of(same["km"].to_numpy(float)), minlength=bands) / max(len(same), 1)
    people = np.bincount(band[eligible], minlength=bands)
    # a band no baseline trip of the activity falls in keeps a little weight, so that every free person can be placed
    weight = np.where(eligible, (share[band] + 1e-6) / np.maximum(people[band], 1), 0.0)
    candidates = int((weight > 0).sum())
    k = min(event.visitors, candidates)
    chosen = np.sort(rng.choice(len(persons), size=k, replace=False, p=weight / weight.sum())) if k else np.array([], int)
    main = np.zeros(k, bool)
    main[rng.permutation(k)[:round(SHARES[event.share] * k)]] = True  # the share exactly, as near as whole visitors go
    modes = np.full(k, event.mode, dtype=object)
    others = same[same["trip_mode"] != event.mode]
    if (~main).any():
        if len(others) == 0:
            others = trips[trips["trip_mode"] != event.mode]
        pool_band = band_of(others["km"].to_numpy(float))
        pool_modes = others["trip_mode"].to_numpy()
        for b in np.unique(band[chosen[~main]]):
            who = np.flatnonzero(~main & (band[chosen] == b))
            pool = pool_modes[pool_band == b] if (pool_band == b).any() else pool_modes
            modes[who] = rng.choice(pool, size=len(who)) if len(pool) else event.mode
    before = trips.assign(visit=False)
    if k == 0:
        return Visits(persons.copy(), before, event.visitors, 0, int(eligible.sum()), {})
    added = _visit_trips(event, spec, zones, persons, trips, chosen, home[chosen], modes, place)
    order = np.r_[at, pd.Index(ids).get_indexer(added["person_id"])]
    out = pd.concat([before, added], ignore_index=True)
    out = out.iloc[np.lexsort((np.arange(len(out)), order))].reset_index(drop=True)
    people_out = persons.copy()
    if TRIPS_PER_PERSON in people_out:
        made = people_out[TRIPS_PER_PERSON].to_numpy().astype(int)
        made[chosen] += 2
        people_out[TRIPS_PER_PERSON] = made
    counts = pd.Series(modes).value_counts()
    return Visits(people_out, out, event.visitors, k, int(eligible.sum()), {str(m): int(n) for m, n in counts.items()})


def _visit_trips(event: Event, spec: TripsSpec, zones: Zones, persons: pd.DataFrame, trips: pd.DataFrame,
                 chosen: np.ndarray, home: np.ndarray, modes: np.ndarray, place: int) -> pd.DataFrame:
    """Two trips per visitor (``chosen`` rows of ``persons``, ``home`` their zone rows): home → the event's
    zone in its first hour, back home in its last; ids after the baseline's."""
    k = len(chosen)
    tours = int(pd.to_numeric(trips["tour_id"]).max()) + 1 + np.arange(k) if len(trips) else 1 + np.arange(k)
    there = pd.DataFrame({"person_id": persons["person_id"].to_numpy()[chosen]})
    if "household_id" in trips:
        there["household_id"] = persons["household_id"].to_numpy()[chosen]
    there = there.assign(tour_id=tours, origin=zones.ids[home], destination=str(event.zone), depart=event.start,
                         trip_mode=modes, purpose=event.purpose)
    back = there.assign(origin=there["destination"], destination=there["origin"], depart=event.end, purpose=spec.trips.home)
    if "origin_district" in trips and zones.district is not None:
        district = zones.district.astype(str)
        there = there.assign(origin_district=district[home], destination_district=district[place])
        back = back.assign(origin_district=district[place], destination_district=district[home])
    if "km" in trips:
        km = zones.km(home, np.full(k, place)).round(3)
        there, back = there.assign(km=km), back.assign(km=km)
    added = pd.concat([there, back]).sort_index(kind="stable").reset_index(drop=True)  # each visitor's two trips together
    first = int(pd.to_numeric(trips["trip_id"]).max()) + 1 if len(trips) else 1
    added.insert(0, "trip_id", first + np.arange(2 * k))
    return added.assign(visit=True)


@dataclass
class Shifted:
    """The scenario's trips (the baseline's, some tours by another mode) and what was moved."""

    trips: pd.DataFrame  # with a column ``shifted``: True for the trips of the tours that changed mode
    asked: int  # tours the share asks for: the share of the tours in scope, rounded
    placed: int  # tours moved
    in_scope: int  # tours of the mode left (of the activity, leaving home in the hours)
    plausible: int  # of those, tours of a band of length the new mode's tours travel in the baseline, none longer, by a
    # person of a kind whose tours take the new mode there


@dataclass(frozen=True)
class Tours:
    """The baseline's tours (a tour's trips together, one mode a tour): each trip's tour, each tour's first
    trip, mode, hour it leaves home and longest leg."""

    of_trip: np.ndarray
    first: np.ndarray
    mode: np.ndarray
    depart: np.ndarray
    longest: np.ndarray

    @classmethod
    def of(cls, trips: pd.DataFrame) -> Tours:
        tour = pd.factorize(trips["tour_id"].astype(str))[0]
        first = np.flatnonzero(np.r_[True, tour[1:] != tour[:-1]]) if len(tour) else np.zeros(0, dtype=int)
        longest = np.maximum.reduceat(trips["km"].to_numpy(float), first) if len(first) else np.zeros(0)
        return cls(tour, first, trips["trip_mode"].to_numpy()[first], pd.to_numeric(trips["depart"]).to_numpy()[first], longest)

    def scope(self, trips: pd.DataFrame, change: ToursInScope) -> np.ndarray:
        """The tours ``change`` concerns: by its mode, with an activity of its purpose, leaving home in its hours
        (each none: any)."""
        inside = np.ones(len(self.first), dtype=bool) if change.mode is None else self.mode == change.mode
        if change.purpose is not None:
            inside &= np.bincount(self.of_trip, weights=(trips["purpose"] == change.purpose).to_numpy(float),
                                  minlength=len(self.first)) > 0
        if change.start is not None:
            inside &= (self.depart >= change.start) & (self.depart <= change.end)
        return inside


def shift_modes(shift: Shift, trips: pd.DataFrame, rng: np.random.Generator, kinds: pd.Series | None = None) -> Shifted:
    """The baseline's ``trips`` (ActivitySim's columns, with ``km``; a tour's trips together, one mode a tour)
    with the share of the tours in scope made by the new mode (see the module's text); ``trips`` is left
    unchanged. A tour's length is its longest leg: the tours moved are drawn so that their lengths (by band)
    follow the baseline's tours of the new mode. With ``kinds`` (each person's kind, indexed by person id:
    alike in what the tables and the prior know of them, e.g. their household's cars), a tour is moved only
    for a person of a kind whose tours take the new mode in the baseline, and the more often they take it,
    the likelier (no one of a household without a car is moved to driving, where the baseline has none)."""
    tours = Tours.of(trips)
    band = length_band(tours.longest)
    scope = tours.scope(trips, shift)
    bands = len(BAND_EDGES) - 1  # the bands of length the prior's modes are asked over (under 1 km … over 20 km)
    taking = tours.mode == shift.to
    if taking.any():  # the lengths the new mode's tours travel in the baseline, and its longest
        wanted, farthest = np.bincount(band[taking], minlength=bands) / taking.sum(), tours.longest[taking].max()
    else:  # a mode the baseline never takes: nothing says which lengths it travels
        wanted, farthest = np.ones(bands) / bands, np.inf
    have = np.bincount(band[scope], minlength=bands) / max(int(scope.sum()), 1)
    plausible = scope & (wanted[band] > 0) & (tours.longest <= farthest)
    weight = np.where(plausible, wanted[band] / np.maximum(have[band], 1e-12), 0.0)
    if kinds is not None and taking.any():  # how often each kind's tours take the new mode in the baseline
        kind = pd.factorize(kinds.reindex(trips["person_id"].to_numpy()[tours.first]).to_numpy())[0]
        kind = np.where(kind < 0, kind.max(initial=-1) + 1, kind)  # a person the kinds do not name: a kind of its own
        rate = np.bincount(kind[taking], minlength=kind.max(initial=0) + 1) / np.bincount(kind, minlength=kind.max(initial=0) + 1)
        plausible &= rate[kind] > 0
        weight = np.where(plausible, weight * rate[kind], 0.0)
    asked = int(round(shift.share * scope.sum()))
    k = min(asked, int(plausible.sum()))
    chosen = rng.choice(len(weight), size=k, replace=False, p=weight / weight.sum()) if k else np.zeros(0, dtype=int)
    moved = np.zeros(len(weight), dtype=bool)
    moved[chosen] = True
    out = trips.assign(shifted=moved[tours.of_trip])
    out.loc[out["shifted"], "trip_mode"] = shift.to
    return Shifted(out, asked, k, int(scope.sum()), int(plausible.sum()))


@dataclass
class Cancelled:
    """The scenario's persons (their trips counted again) and trips (the baseline's, less the tours not made)."""

    persons: pd.DataFrame
    trips: pd.DataFrame
    removed: pd.DataFrame  # the baseline's trips of the tours not made
    dropped: np.ndarray  # over the baseline's trips: those of the tours not made
    asked: int  # the share of the tours in scope, rounded: as many go
    in_scope: int


def cancel_tours(cancel: Cancel, persons: pd.DataFrame, trips: pd.DataFrame, rng: np.random.Generator) -> Cancelled:
    """The baseline's days less the share of the tours in scope (by its mode, of its activity, leaving home in
    its hours), drawn alike: whole tours go, so every day left still starts and ends at home; ``persons`` and
    ``trips`` are left unchanged."""
    tours = Tours.of(trips)
    scope = tours.scope(trips, cancel)
    asked = int(round(cancel.share * scope.sum()))
    gone = np.zeros(len(scope), dtype=bool)
    gone[rng.choice(np.flatnonzero(scope), size=asked, replace=False)] = True
    drop = gone[tours.of_trip] if len(trips) else np.zeros(0, dtype=bool)
    kept = trips[~drop].reset_index(drop=True)
    people = persons.copy()
    if TRIPS_PER_PERSON in people:
        made = kept.groupby("person_id").size()
        people[TRIPS_PER_PERSON] = made.reindex(people["person_id"], fill_value=0).to_numpy()
    return Cancelled(people, kept, trips[drop].reset_index(drop=True), drop, asked, int(scope.sum()))


@dataclass
class Closed:
    """The scenario's trips (the baseline's, the closed zone's visits made elsewhere) and what was moved."""

    trips: pd.DataFrame  # with a column ``moved``: True for each visit moved and the trip leaving it
    in_scope: int  # visits to the zone (of the activity, the trips there departing in the hours)
    beyond_reach: int  # of those, visits with no other zone within reach of both legs: the zone nearest the closed one taken
    to_zones: dict[str, int]  # where the visits went, the most first




def closed_visits(trips: pd.DataFrame, close: Close, home: str) -> np.ndarray:
    """Whether each trip arrives in the closed zone for an activity in the closure's scope (its activity, departing in
    its hours)."""
    inside = arrivals(trips, close.zone, home).to_numpy().copy()
    if close.purpose is not None:
        inside &= (trips["purpose"] == close.purpose).to_numpy()
    if close.start is not None:
        depart = pd.to_numeric(trips["depart"]).to_numpy()
        inside &= (depart >= close.start) & (depart <= close.end)
    return inside


def close_zone(close: Close, spec: TripsSpec, zones: Zones, trips: pd.DataFrame, rng: np.random.Generator) -> Closed:
    """The baseline's days with the closure's visits made elsewhere: each trip arriving in the zone for an activity in scope
    (:func:`closed_visits`) goes instead to another zone, drawn by what draws the activity there times
    exp(−km from the closed zone / the median length of the baseline's trips for the activity) — substitutes near the
    closed place, as far as people travel for it — among the zones within reach of both of the visit's legs (neither
    longer than 1.5 × the longer of the two as they were + 1 km, so a walk stays a walk's length; of the first leg only
    when the next trip is a visit to the closed zone too, which moves after it, or when the visit ends the day; the zone
    nearest the closed one when none is). The trip leaving the visit leaves from the new zone, so every day stays a
    chain; nothing else changes. ``trips`` (ActivitySim's columns, with ``km``; a day's trips in order) is left
    unchanged."""
    s = spec.trips
    place = zones.rows([close.zone])[0]
    origin, destination = (zones.rows(trips[c].astype(str).to_numpy()) for c in ("origin", "destination"))
    purpose, person = trips["purpose"].to_numpy(), trips["person_id"].to_numpy()
    continues = np.r_[person[1:] == person[:-1], False]  # the next trip leaves from the visit
    scope = closed_visits(trips, close, s.home)
    activities = list(s.purposes)
    draws = attraction_of(zones, activities, None)
    km = zones.km(origin, destination)
    typical = {p: max(float(np.median(km[purpose == p])), 0.5) for p in np.unique(purpose[scope])}  # how far people go for it
    every = np.arange(len(zones))
    from_place = zones.km(np.full(len(zones), place), every)
    nearest = int(np.argmin(np.where(every == place, np.inf, from_place)))
    moved = np.zeros(len(trips), dtype=bool)
    beyond = 0
    for i in np.flatnonzero(scope):
        j = i + 1 if continues[i] else -1
        weight = draws[activities.index(purpose[i])] * np.exp(-from_place / typical[purpose[i]])
        weight[place] = 0.0
        reach = REACH[0] * max(km[i], km[j] if j >= 0 else 0.0) + REACH[1]
        near = zones.km(np.full(len(zones), origin[i]), every) <= reach
        if j >= 0 and not scope[j]:  # the trip leaving the visit stays within reach too
            near &= zones.km(every, np.full(len(zones), destination[j])) <= reach
        weight = np.where(near, weight, 0.0)
        if not (weight > 0).any():  # none within reach: the zone nearest the closed one
            beyond += 1
            weight = (every == nearest).astype(float)
        zone = rng.choice(len(zones), p=weight / weight.sum())
        destination[i] = zone
        moved[i] = True
        if j >= 0:
            origin[j] = zone
            moved[j] = True
    out = trips.assign(moved=moved)
    rows = np.flatnonzero(moved)
    out.loc[moved, "origin"] = zones.ids[origin[rows]]
    out.loc[moved, "destination"] = zones.ids[destination[rows]]
    if "origin_district" in out and zones.district is not None:
        district = zones.district.astype(str)
        out.loc[moved, "origin_district"] = district[origin[rows]]
        out.loc[moved, "destination_district"] = district[destination[rows]]
    if "km" in out:
        out.loc[moved, "km"] = zones.km(origin[rows], destination[rows]).round(3)
    went = pd.Series(zones.ids[destination[scope]]).value_counts()
    return Closed(out, int(scope.sum()), beyond, {str(z): int(n) for z, n in went.items()})


def flow_changes(baseline: pd.DataFrame, scenario: pd.DataFrame, by_mode: bool = False) -> pd.DataFrame:
    """Every zone-to-zone flow and departure hour (and mode, ``by_mode``) whose trips differ: origin, destination,
    depart, (trip_mode,) baseline, scenario, change — the largest changes first (sparse: only cells that moved)."""
    keys = ["origin", "destination", "depart", *(["trip_mode"] if by_mode else [])]
    before = baseline.groupby(keys).size().rename("baseline")
    after = scenario.groupby(keys).size().rename("scenario")
    both = pd.concat([before, after], axis=1).fillna(0).astype(int)
    both["change"] = both["scenario"] - both["baseline"]
    moved = both[both["change"] != 0].reset_index()
    return moved.iloc[np.lexsort((moved["depart"].to_numpy(), -moved["change"].abs().to_numpy()))].reset_index(drop=True)


def arrivals(trips: pd.DataFrame, zone: str, home: str) -> pd.Series:
    """Whether each trip arrives in ``zone`` for an activity (not back home)."""
    return (trips["destination"].astype(str) == str(zone)) & (trips["purpose"] != home)


def into_zone(trips: pd.DataFrame, event: Event, home: str) -> int:
    """Trips into the event's zone for an activity departing in its hours."""
    depart = pd.to_numeric(trips["depart"])
    return int((arrivals(trips, event.zone, home) & (depart >= event.start) & (depart <= event.end)).sum())


def into_closed(trips: pd.DataFrame, close: Close, home: str) -> int:
    """Trips into the closed zone for an activity in the closure's scope (:func:`closed_visits`)."""
    return int(closed_visits(trips, close, home).sum())
