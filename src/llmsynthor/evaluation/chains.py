"""Persons' days of trips checked as chains: the structure a day must have, counted by reason.

A day is one person's trips in order: by departure time, ties broken by the ``order`` columns
given (departures are often whole hours, so two trips of one hour need a tie-breaker: a tour's
start, a trip's number). A day is a valid chain when

* ``jump`` — each trip starts where the previous one ended (none is counted for a first trip);
* ``not_from_home`` / ``not_to_home`` — the first trip starts and the last one ends at home (when
  homes are given);
* ``backwards`` — within a tour, departures never go back in time (when tours are given);
* ``car_left_behind`` — a tour driven alone (its main mode in ``car_modes``) has no leg by a mode
  in ``other_modes`` (walk, bike, transit: the car would be left where that leg started).

Each reason is a mask over persons (a person may fail several), as the household structure checks
are; :attr:`ChainCheck.counts` gives how many. The checks are structure, not realism: a trips
output must pass all of them, and a survey's own days are measured with them to say what the
truth is. Knows frames, not LLMs or shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import Problem, SpecError

REASONS = ("jump", "not_from_home", "not_to_home", "backwards", "car_left_behind")


@dataclass(frozen=True)
class ChainCheck:
    """Per reason, a mask over ``persons`` (sorted ids) of those whose day breaks it, and how many
    trips jump (a trip not starting where the previous ended)."""

    persons: np.ndarray
    broken: dict[str, np.ndarray]
    jumping_trips: int
    trips: int

    @property
    def counts(self) -> dict[str, int]:
        return {reason: int(mask.sum()) for reason, mask in self.broken.items()}

    @property
    def valid(self) -> np.ndarray:
        """Persons whose day breaks nothing."""
        return ~np.logical_or.reduce([*self.broken.values(), np.zeros(len(self.persons), dtype=bool)])


def check_days(trips: pd.DataFrame, *, person: str = "person_id", origin: str = "origin", destination: str = "destination",
               depart: str = "depart", order: Sequence[str] = (), home: pd.Series | None = None, tour: str | None = None,
               mode: str | None = None, tour_mode: str | None = None, car_modes: Sequence[str] = (),
               other_modes: Sequence[str] = ()) -> ChainCheck:
    """Check every person's day (module docstring). ``home`` maps person ids (each once) to their home
    zone — a person it does not name has no home to start or end at, and fails both home checks;
    ``tour`` names the trips' tour column (tour ids may repeat across persons), ``mode`` their mode,
    ``tour_mode`` the tour's main mode."""
    wanted = [person, origin, destination, depart, *order, *(c for c in (tour, mode, tour_mode) if c is not None)]
    missing = [c for c in wanted if c not in trips.columns]
    if missing:
        raise SpecError(Problem("trips", f"missing column(s) {', '.join(map(repr, missing))}; expected "
                                         f"{', '.join(map(repr, wanted))}"))
    if trips.empty:
        return ChainCheck(trips[person].to_numpy()[:0], {r: np.zeros(0, dtype=bool) for r in REASONS}, 0, 0)  # any dtype, numpy's or not
    day = trips.sort_values([person, depart, *order], kind="stable")
    who = day[person].to_numpy()
    persons, index = np.unique(who, return_inverse=True)
    broken = {reason: np.zeros(len(persons), dtype=bool) for reason in REASONS}
    same = who[1:] == who[:-1]
    jumps = same & (day[origin].to_numpy()[1:] != day[destination].to_numpy()[:-1])
    broken["jump"][index[1:][jumps]] = True
    if home is not None:
        first, last = np.r_[True, ~same], np.r_[~same, True]
        at_home = home.reindex(persons).to_numpy()
        broken["not_from_home"][index[first]] = day[origin].to_numpy()[first] != at_home[index[first]]
        broken["not_to_home"][index[last]] = day[destination].to_numpy()[last] != at_home[index[last]]
    if tour is not None:
        legs = trips.sort_values([person, tour, *order], kind="stable")  # a tour's legs in their own order
        persons_of = legs[person].to_numpy()
        same_tour = (legs[tour].to_numpy()[1:] == legs[tour].to_numpy()[:-1]) & (persons_of[1:] == persons_of[:-1])
        back = same_tour & (np.diff(legs[depart].to_numpy()) < 0)
        owner = np.searchsorted(persons, legs[person].to_numpy())
        broken["backwards"][owner[1:][back]] = True
        if mode is not None and tour_mode is not None:
            left = legs[tour_mode].isin(car_modes).to_numpy() & legs[mode].isin(other_modes).to_numpy()
            broken["car_left_behind"][owner[left]] = True
    return ChainCheck(persons, broken, int(jumps.sum()), len(trips))
