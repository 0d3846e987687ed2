"""What the model adds to persons' days, and how far it is trusted: pairwise lifts over things it can
know (who travels, the activity, the mode, the trip's length in words — never zone ids), checked
against the pairs the tables cross and applied at the strength that reproduces those best.

The variables the model is asked about are the persons' declared variables, ``purpose``, ``mode``
and ``length`` (the straight-line length in bands: "under 1 km" … "over 20 km"). Their one-way shares
come from the persons file, the tables of trips and — for lengths, which no table gives — the
candidate days drawn from the tables alone. :func:`llmsynthor.prior.copula.score_prior` asks every
pair no table crosses (person type × activity, mode × length, …) by token probabilities, and the
pairs a table crosses (activity × mode, when a table gives it) to check them;
:func:`llmsynthor.prior.tempering.check_prior` picks the strength. The lifts become the factors the
candidate days are drawn with (:class:`~llmsynthor.shapes.trips.days.Factors`): the activities a
person's stops take, the mode of a tour given its longest leg and the person.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ...core.schema import CategoricalVariable, Schema
from ...core.tables import Axis, Targets, TargetTable
from ...llm.base import can_score_options
from ...llm.none import without_model
from ...prior.copula import PHRASINGS, PairwisePrior, by_letter, score_prior
from ...prior.tempering import PriorCheck, check_prior
from .days import LENGTH_WORDS, Factors, length_band, shares_over
from .inputs import TRIPS, TripInputs
from .spec import TripsSpec

LENGTH, DEPARTURE = "length", "departure"
PERIODS = ((0, 6, "before 6 am"), (6, 10, "6-10 am"), (10, 15, "10 am-3 pm"), (15, 19, "3-7 pm"), (19, 24, "after 7 pm"))


@dataclass
class TripPrior:
    """The factors the days are drawn with, and what was asked and checked to get them."""

    factors: Factors
    check: PriorCheck | None = None
    scored: PairwisePrior | None = None
    notes: list[str] = field(default_factory=list)
    strengths: dict[str, float] = field(default_factory=dict)  # asked pair -> the strength its lifts were applied at
    used: list[str] = field(default_factory=list)  # the asked pairs the days are drawn with (the others are asked, not applied)

    def as_dict(self) -> dict:
        out = {"notes": self.notes}
        if self.check is not None:
            out["check"] = self.check.as_dict()
        if self.scored is not None:
            out["pairs_asked"] = [f"{c} × {a}" for c, a in self.scored.lifts]
            out["pairs_checked"] = [f"{c} × {a}" for c, a in self.scored.checked]
            out["strength_by_pair"] = self.strengths
            out["pairs_used"] = self.used
        return out


def word_targets(spec: TripsSpec, inputs: TripInputs, lengths_km: np.ndarray) -> Targets:
    """The one-way shares (and the activity × mode table, when given) over the variables the model is asked
    about — activities and modes in the words ``trips.words`` gives for them (the lifts keep the
    spec's order, so they map back by position)."""
    s = spec.trips
    purposes, modes = s.said(s.purposes), s.said(s.modes)  # as the model is asked: trips.words
    variables = {name: var for name, var in spec.traveller_variables.items()}
    variables["purpose"] = CategoricalVariable(values=purposes, description="the activity at the trip's destination")
    variables["mode"] = CategoricalVariable(values=modes, description="how the trip is made")
    variables[LENGTH] = CategoricalVariable(values=list(LENGTH_WORDS), description="the trip's straight-line length")
    by_hour = shares_over(inputs.of_level(TRIPS.name), ("depart", "purpose"), (list(range(24)), s.purposes))
    if by_hour is not None:  # a second pair to check the model on: when activities begin
        variables[DEPARTURE] = CategoricalVariable(values=[w for *_, w in PERIODS], description="when the trip leaves")
    schema = Schema(entity="trip", population=spec.population, variables=variables)
    tables = []
    for name, var in spec.traveller_variables.items():
        counts = inputs.persons[name].value_counts().reindex(var.values, fill_value=0).to_numpy(dtype=float)
        tables.append(TargetTable(name, (Axis(name, tuple(var.values)),), counts))
    trip_tables = inputs.of_level(TRIPS.name)
    crossed = shares_over(trip_tables, ("purpose", "mode"), (s.purposes, s.modes))
    if crossed is not None:
        tables.append(TargetTable("purpose × mode", (Axis("purpose", tuple(purposes)), Axis("mode", tuple(modes))), crossed))
    else:
        for name, values in (("purpose", purposes), ("mode", modes)):
            shares = shares_over(trip_tables, (name,), (values,))
            tables.append(TargetTable(name, (Axis(name, tuple(values)),), shares if shares is not None else np.ones(len(values))))
    if by_hour is not None:
        periods = np.stack([by_hour[a:b].sum(axis=0) for a, b, _ in PERIODS])
        tables.append(TargetTable("departure × purpose", (Axis(DEPARTURE, tuple(w for *_, w in PERIODS)),
                                                          Axis("purpose", tuple(purposes))), periods))
    bands = np.bincount(length_band(lengths_km), minlength=len(LENGTH_WORDS)).astype(float)
    tables.append(TargetTable(LENGTH, (Axis(LENGTH, LENGTH_WORDS),), bands + 1e-9))
    return Targets(n=int(round(inputs.trips)) or 1, tables=tuple(tables), schema=schema)


def trip_prior(spec: TripsSpec, inputs: TripInputs, llm, lengths_km: np.ndarray, on_call=None) -> TripPrior:
    """The model's lifts, checked and tempered, as factors; the tables alone (factors of 1) with a
    note where the backend cannot score options."""
    s = spec.trips
    none = Factors.none(len(inputs.persons), len(s.purposes), len(s.modes))
    if without_model(llm):
        return TripPrior(none, notes=["run without a model (llm.backend: none): the days are drawn from the tables alone"])
    if not can_score_options(llm):
        return TripPrior(none, notes=[f"{llm.name} gives no token probabilities: the days are drawn from the tables alone"])
    targets = word_targets(spec, inputs, lengths_km)
    scored = score_prior(targets, llm, targets.schema, on_call=on_call, check=True, phrasings=PHRASINGS, letters=by_letter(None, llm))
    axes = {name: lv.axis for name, lv in scored.levels.items()}
    check = replace(check_prior(scored.checked, targets, axes), phrasing=scored.phrasing, phrasing_errors=dict(scored.phrasing_errors))
    untabled = [name for name in spec.traveller_variables if not any(name in t.variables for t in inputs.tables)]
    strengths = {pair: 0.0 if set(pair) & set(untabled) else _strength_for(pair, scored, targets, axes, check.strength)
                 for pair in scored.lifts}
    tempered = scored.tempered(strengths)
    applied = [{v, target} for v in spec.traveller_variables for target in ("purpose", "mode")] + [{LENGTH, "mode"}]
    notes = [f"{', '.join(untabled)}: no table names {'it' if len(untabled) == 1 else 'them'}, so nothing checks what the model "
             "says of it; its pairs are asked and not applied (strength 0)"] if untabled else []
    return TripPrior(factors(spec, inputs, tempered), check, scored, notes=notes,
                     strengths={f"{c} × {a}": g for (c, a), g in strengths.items()},
                     used=[f"{c} × {a}" for c, a in scored.lifts if {c, a} in applied and strengths[(c, a)] > 0])


def _strength_for(pair: tuple[str, str], scored: PairwisePrior, targets: Targets, axes: dict, overall: float) -> float:
    """The strength for one asked pair: chosen on the checked pairs that share a variable with it (how
    well the model knows modes, say, checked where a table shows modes), else on all of them. (A pair
    with a person or household variable no table names is not applied at all: :func:`trip_prior`.)"""
    sharing = {p: lift for p, lift in scored.checked.items() if set(p) & set(pair)}
    return check_prior(sharing, targets, axes).strength if sharing else overall


def factors(spec: TripsSpec, inputs: TripInputs, prior: PairwisePrior) -> Factors:
    """Each person's factors over activities and modes (the product over its variables' lifts) and
    the modes' factors by length band; 1 where a pair was not scored."""
    s = spec.trips
    persons = len(inputs.persons)
    purpose, mode_person = np.ones((persons, len(s.purposes))), np.ones((persons, len(s.modes)))
    for name, var in spec.traveller_variables.items():
        rows = pd.Index(var.values).get_indexer(inputs.persons[name])
        for target, out in (("purpose", purpose), ("mode", mode_person)):
            lift = prior.lift(name, target)
            if lift is not None:
                out *= lift[rows]
    by_length = prior.lift(LENGTH, "mode")
    return Factors(purpose, mode_person, np.ones((len(LENGTH_WORDS), len(s.modes))) if by_length is None else by_length)
