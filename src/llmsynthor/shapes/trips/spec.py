"""The trips spec (YAML): given persons, each with a day of trips between the zones of a zone table.

A trips spec declares the zones (what the model may be told about them, and where they are), the
persons whose days are synthesized (a file: one row a person, with its home zone — a survey's
persons, a census sample, or the ``persons.csv`` a household run wrote), the values of the trips'
purposes and modes, and the tables an agency publishes::

    kind: trips
    name: trips
    zones: {file: zones.csv, id: zone, district: district, area_type: area_type, lon: lon, lat: lat,
            attractions: {work: jobs, shopping: retail_jobs}}
    persons:
      file: persons.csv
      id: person_id
      home: home_zone                  # the zone every day starts and ends in
      household: household_id          # optional: with households:, their variables join each member's
      variables: {person_type: {type: categorical, values: [full-time worker, …]}}
    households: {file: households.csv, id: household_id, variables: {cars: {type: categorical, values: ["0", "1", "2", "3+"]}}}
    trips:
      purposes: [home, work, school, shopping, …]   # the activity at the trip's destination
      home: home                       # the purpose of a trip back home
      modes: [drive alone, shared ride, walk, bike, transit]
    targets:
      - {name: OD by period, variables: [origin_district, destination_district, depart], file: …}
      - {name: trips per person, variables: [person_type, trips], file: …}
    scenarios:                         # what-ifs beside the baseline: visits added, modes shifted, tours not made, a zone closed
      - {name: concert, text: "a concert in zone 1210 from 20:00 to 23:00 draws 500 visitors, most by transit"}
      - {name: strike, text: "a transit strike: half of the transit riders drive alone instead"}
      - {name: lockdown, cancel: {purpose: work, share: 0.6}}   # tours not made: given, never read from a text
      - {name: mall, text: "the shopping mall in zone 1210 is closed from 10:00 to 20:00"}   # its visits made elsewhere

The variables a table may name: ``origin`` and ``destination`` (zone ids), ``origin_district`` and
``destination_district`` (when the zone table gives districts), ``depart`` (the departure hour,
binned as the table bins it: ``[6,10)`` is the morning peak, ``[8,9)`` one hour), ``purpose`` and
``mode`` — a table naming one of them counts trips — and the persons' variables with ``trips`` (trips
in the person's day, binned) — a table of those alone counts persons.

Knows the declarations only; reading the files is :mod:`llmsynthor.shapes.trips.inputs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from ...core.schema import CategoricalVariable, IntegerVariable, Schema, Variable
from ...declarations.spec import MAX_SEED, FrozenModel, LLMSettings, SpecFile, TableSpec, read_yaml
from ...declarations.zones import ZoneTableSpec

TRIP_VARIABLES = ("origin", "destination", "origin_district", "destination_district", "depart", "purpose", "mode")
TRIPS_PER_PERSON = "trips"
RESERVED = (*TRIP_VARIABLES, TRIPS_PER_PERSON, "length", "departure", "who", "beta", "home_row", "tour", "day", "km",
            "person_id", "household_id", "trip_id", "tour_id", "trip_mode", "home_zone")  # names the shape uses itself


class PersonsFile(FrozenModel):
    """The persons whose days are synthesized: a CSV, one row a person."""

    file: Path = Field(description="a CSV, relative to the spec's folder: one row a person")
    id: str = Field(default="person_id", description="the column of person ids (kept in the output)")
    household: str | None = Field(default=None, description="the column of household ids, if any (kept in the output)")
    home: str = Field(description="the column of home zones: every day starts and ends there")
    variables: dict[str, CategoricalVariable] = Field(default_factory=dict, description="person variables the tables and "
                                                      "the model may use, e.g. person_type; each a column of the file")


class HouseholdsFile(FrozenModel):
    """The households the persons belong to: a CSV, one row a household (a survey's households, or the
    ``households.csv`` a household run wrote); written back linked as ``households.csv``."""

    file: Path = Field(description="a CSV, relative to the spec's folder: one row a household")
    id: str = Field(default="household_id", description="the column of household ids, as persons.household gives them")
    variables: dict[str, CategoricalVariable] = Field(default_factory=dict, description="household variables each member "
                                                      "carries, for the tables and the model (e.g. cars); each a column of the file")


class TripSettings(FrozenModel):
    """The values of the trips' own variables, and the shape of a day."""

    purposes: list[str] = Field(min_length=2, description="the activities at trips' destinations, 'home' among them")
    home: str = Field(default="home", description="the purpose of a trip back home")
    modes: list[str] = Field(min_length=1, description="how trips are made, e.g. drive alone, transit, walk")
    car_modes: list[str] = Field(default_factory=list, description="modes whose vehicle must come back home with the "
                                 "traveller: every tour keeps one mode, so these are what the chain check holds tours to")
    first_hour: int = Field(default=0, ge=0, le=23, description="the earliest departure hour")
    last_hour: int = Field(default=23, ge=0, le=23, description="the latest departure hour")
    max_trips: int = Field(default=12, ge=2, le=40, description="the most trips in one person's day")
    matsim_modes: dict[str, str] = Field(default_factory=dict, description="mode -> MATSim's mode in plans.xml (car, pt, "
                                         "walk, bike, ride, …); a mode not named is written as it is")
    words: dict[str, str] = Field(default_factory=dict, description="purpose or mode -> the words the model is asked in, for a "
                                  "name it may not know: {discretionary: leisure, maintenance: errands}; scenarios' questions "
                                  "offer these words and map the answer back")

    def said(self, names) -> list[str]:
        """``names`` (purposes or modes) as the model is asked them: in ``words`` where it gives them."""
        return [self.words.get(n, n) for n in names]

    @model_validator(mode="after")
    def _consistent(self) -> TripSettings:
        if self.home not in self.purposes:
            raise ValueError(f"home {self.home!r} is not one of the purposes {self.purposes}; expected the purpose of a trip back home")
        unknown = [w for w in self.words if w not in self.purposes and w not in self.modes]
        if unknown:
            raise ValueError(f"words names {unknown}; expected purposes {self.purposes} or modes {self.modes}")
        for kind, names in (("purposes", self.purposes), ("modes", self.modes)):
            said = self.said(names)
            twice = sorted({w for w in said if said.count(w) > 1})
            if twice:
                raise ValueError(f"words: {kind} would be asked as {said}, {twice} twice; expected each in words of its own")
        for field_, named in (("car_modes", self.car_modes), ("matsim_modes", list(self.matsim_modes))):
            unknown = [m for m in named if m not in self.modes]
            if unknown:
                raise ValueError(f"{field_} {unknown} are not among the modes {self.modes}")
        if self.first_hour > self.last_hour:
            raise ValueError(f"first_hour {self.first_hour} is after last_hour {self.last_hour}")
        return self


ZoneId = Annotated[str, BeforeValidator(lambda value: str(value) if isinstance(value, int) else value)]  # `zone: 1210` is "1210"
SHARES = {"all": 1.0, "most": 0.75, "half": 0.5, "some": 0.25, "few": 0.1}  # the words an event's mode share is told in


class Event(FrozenModel):
    """What a scenario adds: visitors to one zone for an activity between two hours — the structured
    change the model reads from a scenario's sentence, or the spec gives."""

    zone: ZoneId = Field(description="the zone of the event (an id of the zone table)")
    start: int = Field(ge=0, le=23, description="the hour the event starts: the visitors' trips there depart in it")
    end: int = Field(ge=0, le=23, description="the hour it ends: the trips back home depart in it")
    visitors: int = Field(ge=1, description="how many of the persons go (each makes a trip there and one back home)")
    purpose: str = Field(description="the activity at the event, one of trips.purposes other than home")
    mode: str = Field(description="the visitors' main mode, one of trips.modes")
    share: Literal["all", "most", "half", "some", "few"] = Field(
        default="all", description=f"how many visitors take the main mode: {', '.join(f'{w} {v:g}' for w, v in SHARES.items())}; "
                                   "the others travel as the baseline's trips of that purpose and length do")

    def problems(self, trips: TripSettings) -> list[str]:
        """What in the event contradicts the spec's trips (the zone is checked against the zone table elsewhere)."""
        found = _activity_problems(self.purpose, trips)
        if self.mode not in trips.modes:
            found.append(f"mode {self.mode!r} is not one of trips.modes {trips.modes}")
        return found + _hours_problems(self.start, self.end, trips)


class ToursInScope(FrozenModel):
    """A share of the baseline's tours in scope — by a mode, with an activity of a purpose, leaving home in
    some hours (each none: any) — that a scenario changes: a :class:`Shift` or a :class:`Cancel`."""

    share: float = Field(gt=0, le=1, description="the share of the tours in scope that change (0 < share ≤ 1)")
    purpose: str | None = Field(default=None, description="only tours with an activity of this purpose (one of trips.purposes "
                                "other than home); none: tours of any activity")
    mode: str | None = Field(default=None, description="only tours by this mode (one of trips.modes); none: by any mode")
    start: int | None = Field(default=None, ge=0, le=23, description="only tours leaving home from this hour on; with end")
    end: int | None = Field(default=None, ge=0, le=23, description="… and at the latest in this hour; with start")

    def problems(self, trips: TripSettings) -> list[str]:
        """What in the scope contradicts the spec's trips."""
        found = [] if self.mode is None or self.mode in trips.modes else [f"mode {self.mode!r} is not one of trips.modes {trips.modes}"]
        if self.purpose is not None:
            found += _activity_problems(self.purpose, trips)
        return found + _optional_hours_problems(self.start, self.end, trips, "the hours tours leave home in")

    def in_words(self) -> str:
        """The scope as the run says it: " by transit for work, leaving home in hours 6–9" ("" for every tour)."""
        return ((f" by {self.mode}" if self.mode else "") + (f" for {self.purpose}" if self.purpose else "")
                + (f", leaving home in hours {self.start}–{self.end}" if self.start is not None else ""))


class Shift(ToursInScope):
    """What a scenario changes in the baseline's own trips: a share of the tours made by one mode made by
    another (a strike, a fare, a closed road) — the structured change the model reads from a sentence
    naming no zone and no number of visitors, or the spec gives. A tour keeps one mode: all its trips
    change together."""

    mode: str = Field(description="the mode the tours leave, one of trips.modes")
    to: str = Field(description="the mode they take instead, one of trips.modes")

    def problems(self, trips: TripSettings) -> list[str]:
        """What in the change contradicts the spec's trips."""
        found = super().problems(trips)
        if self.to not in trips.modes and self.to != self.mode:
            found.append(f"mode {self.to!r} is not one of trips.modes {trips.modes}")
        if self.mode == self.to:
            found.append(f"mode and to are both {self.mode!r}; a shift moves tours to another mode")
        return found


class Cancel(ToursInScope):
    """What a scenario takes away: a share of the baseline's tours not made (a lockdown, schools closed, work
    from home) — given in the spec; a sentence is not read as one (the default model told a cancellation from
    a change of modes in 6 of 8 sentences). Whole tours go: every day left still starts and ends at home."""


class Close(FrozenModel):
    """What a scenario closes: one zone to the visits of an activity (or of every activity), in some hours or all
    day — a mall, a stadium, a campus. The baseline's visits there are made elsewhere: each such stop moves to
    another zone that draws its activity, near the closed one and within reach of the stop's legs. Read from a
    sentence naming the zone, a word of closing and no number of people, or given in the spec."""

    zone: ZoneId = Field(description="the zone closed (an id of the zone table)")
    purpose: str | None = Field(default=None, description="only visits for this activity (one of trips.purposes other than home); "
                                "none: visits for any activity")
    start: int | None = Field(default=None, ge=0, le=23, description="only visits whose trip there departs from this hour on; "
                              "with end")
    end: int | None = Field(default=None, ge=0, le=23, description="… and at the latest in this hour; with start")

    def problems(self, trips: TripSettings) -> list[str]:
        """What in the closure contradicts the spec's trips (the zone is checked against the zone table elsewhere)."""
        found = [] if self.purpose is None else _activity_problems(self.purpose, trips)
        return found + _optional_hours_problems(self.start, self.end, trips, "the hours the trips there depart in")

    def in_words(self) -> str:
        """The closure as the run says it: "zone 1210 closed to visits for shopping, the trips there departing in hours 18–22"."""
        return (f"zone {self.zone} closed to visits" + (f" for {self.purpose}" if self.purpose else "")
                + (f", the trips there departing in hours {self.start}–{self.end}" if self.start is not None else ""))


def _activity_problems(purpose: str, trips: TripSettings) -> list[str]:
    """Whether ``purpose`` is an activity (a purpose of trips.purposes other than home)."""
    if purpose not in trips.purposes or purpose == trips.home:
        return [f"purpose {purpose!r} is not an activity of trips.purposes (other than {trips.home!r})"]
    return []


def _optional_hours_problems(start: int | None, end: int | None, trips: TripSettings, what: str) -> list[str]:
    """Whether ``start`` and ``end`` are both given (hours of the day, in order) or neither."""
    if (start is None) != (end is None):
        return [f"give both start and end ({what}), or neither"]
    return [] if start is None else _hours_problems(start, end, trips)


def _hours_problems(start: int, end: int, trips: TripSettings) -> list[str]:
    """Whether ``start`` … ``end`` are hours of the day, in order."""
    if not trips.first_hour <= start <= end <= trips.last_hour:
        return [f"hours {start}–{end}: expected trips.first_hour {trips.first_hour} ≤ start ≤ end ≤ trips.last_hour {trips.last_hour}"]
    return []


class Scenario(FrozenModel):
    """A what-if: a sentence the model turns into an :class:`Event`, a :class:`Shift` or a :class:`Close`, or the change
    itself."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the scenario's folder under the run's: scenarios/NAME")
    text: str | None = Field(default=None, min_length=10, description="the change in words: an event naming its zone as 'zone ID', "
                             "its hours and its visitors ('a concert in zone 1210 from 20:00 to 23:00 draws 500 visitors, most by "
                             "transit'), a closure naming its zone, a word of closing and no people ('the mall in zone 1210 is closed "
                             "from 18:00 to 23:00'), or a change of modes naming no zone and no people ('a transit strike: half of "
                             "the transit riders drive alone instead')")
    event: Event | None = Field(default=None, description="visitors added, given (the model is not asked): zone, start, end, "
                                "visitors, purpose, mode, share")
    shift: Shift | None = Field(default=None, description="tours moved to another mode, given (the model is not asked): mode, to, "
                                "share, and optionally purpose, start, end")
    cancel: Cancel | None = Field(default=None, description="tours not made, given (never read from a text): share, and optionally "
                                  "purpose, mode, start, end")
    close: Close | None = Field(default=None, description="a zone closed to visits, given (the model is not asked): zone, and "
                                "optionally purpose, start, end")

    @model_validator(mode="after")
    def _one(self) -> Scenario:
        if sum(x is not None for x in (self.text, self.event, self.shift, self.cancel, self.close)) != 1:
            raise ValueError(f"scenario {self.name!r}: give one of text (the model reads it), event (visitors added), shift "
                             "(tours moved to another mode), cancel (tours not made) or close (a zone's visits made elsewhere)")
        return self

    @property
    def change(self) -> Event | Shift | Cancel | Close | None:
        """The change the spec gives (None: a text, for the model to read)."""
        return next((c for c in (self.event, self.shift, self.cancel, self.close) if c is not None), None)


class TripsSpec(SpecFile):
    """``kind: trips``: the given persons' days of trips between zones, meeting the target tables."""

    kind: Literal["trips"]
    name: str = Field(default="trips", description="the run's name; the default output folder")
    population: str | None = Field(default=None, description="who travels, for the prompts: 'weekday trips of residents "
                                   "of the San Francisco Bay Area'")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="same spec + seed + model gives the same trips")
    zones: ZoneTableSpec = Field(description="the zone table: ids as the tables write them, districts, area types, centroids "
                                 "(lon and lat are required for trips; zones.* below)")
    persons: PersonsFile = Field(description="the persons whose days are synthesized (persons.* below)")
    households: HouseholdsFile | None = Field(default=None, description="the persons' households, if given (households.* "
                                              "below): their variables join each member's, and households.csv is written")
    trips: TripSettings = Field(description="the trips' purposes and modes, and the shape of a day (trips.* below)")
    targets: list[TableSpec] = Field(min_length=1, description="tables of trips or of persons (see above: the variables a table may name)")
    candidates: int = Field(default=24, ge=2, le=500, description="candidate days drawn per person; the tables choose among them")
    tolerance_tvd: float = Field(default=0.01, gt=0, le=1, description="met when every table's TVD is at most this (a table's own "
                                 "targets[].tolerance_tvd first): the work towards the tables stops once it holds; lower it for a "
                                 "closer fit in more time")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="the model: as in a flat spec (llmsynthor spec-format, 'llm')")
    scenarios: list[Scenario] = Field(default_factory=list, description="what-ifs run beside the baseline: an event's visits "
                                      "added to the baseline's days, a share of one mode's tours moved to another, or a share of "
                                      "tours not made (scenarios.* below); `run --scenario TEXT` adds one")

    @model_validator(mode="after")
    def _names(self) -> TripsSpec:
        for field_, variables in (("persons.variables", self.persons.variables),
                                  ("households.variables", self.households.variables if self.households else {})):
            taken = [name for name in variables if name in RESERVED]
            if taken:
                raise ValueError(f"{field_} {taken}: these names are the trips' own (or the output's); rename them")
        if self.households is not None:
            if self.persons.household is None:
                raise ValueError("households is given but persons.household is not; name the persons file's column of household ids")
            both = sorted(set(self.households.variables) & set(self.persons.variables))
            if both:
                raise ValueError(f"{both} are both persons.variables and households.variables; name each once")
        unknown = [a for a in self.zones.attractions if a not in self.trips.purposes or a == self.trips.home]
        if unknown:
            raise ValueError(f"zones.attractions names {unknown}; expected activities among trips.purposes other than "
                             f"{self.trips.home!r}: {[p for p in self.trips.purposes if p != self.trips.home]}")
        names = [sc.name for sc in self.scenarios]
        if len(set(names)) < len(names):
            raise ValueError(f"scenarios: names {sorted({n for n in names if names.count(n) > 1})} are given twice; each names a folder")
        event_problems = [f"scenario {sc.name!r}: {p}" for sc in self.scenarios if sc.change is not None
                          for p in sc.change.problems(self.trips)]
        if event_problems:
            raise ValueError("; ".join(event_problems))
        return self

    @property
    def traveller_variables(self) -> dict[str, CategoricalVariable]:
        """The variables every person carries: its household's (when households are given), then its own."""
        return {**(self.households.variables if self.households is not None else {}), **self.persons.variables}

    def schema_with(self, zone_ids: list[str], districts: list[str] | None) -> Schema:
        """Every variable a table may name, with the zone table's ids and districts as values."""
        s = self.trips
        variables: dict[str, Variable] = {
            "origin": CategoricalVariable(values=zone_ids, description="the zone the trip leaves from"),
            "destination": CategoricalVariable(values=zone_ids, description="the zone the trip goes to"),
            "depart": IntegerVariable(min=0, max=23, description="the hour the trip leaves (0-23)"),
            "purpose": CategoricalVariable(values=s.purposes, description="the activity at the trip's destination"),
            "mode": CategoricalVariable(values=s.modes, description="how the trip is made"),
            TRIPS_PER_PERSON: IntegerVariable(min=0, max=s.max_trips, description="trips in the person's day"),
            **self.traveller_variables,
        }
        if districts is not None:
            variables["origin_district"] = CategoricalVariable(values=districts, description="the district the trip leaves from")
            variables["destination_district"] = CategoricalVariable(values=districts, description="the district the trip goes to")
        return Schema(entity="trip", population=self.population, variables=variables)

    def counts_trips(self, table: TableSpec) -> bool:
        """Whether ``table`` counts trips (it names a trip variable) rather than persons."""
        return any(v in TRIP_VARIABLES for v in table.variables)


def load(path: Path) -> TripsSpec:
    """The trips spec at ``path``, validated (one SpecError naming every problem)."""
    return TripsSpec.validated(read_yaml(path), str(path), path.parent)
