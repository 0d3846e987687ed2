"""Persons' days of trips meeting the tables: the model's checked lifts, candidate days valid by
construction, list balancing, and one day chosen for every person.

1. **pilot** — a few days per person from the tables alone, for the trips' lengths the model's
   length bands are weighed against (no table gives them);
2. **prior** — the model's lifts over what it can know, checked and tempered
   (:mod:`llmsynthor.shapes.trips.prior`): questions asked once for the region, however many
   persons there are;
3. **candidates** — ``spec.candidates`` days per person (:mod:`llmsynthor.shapes.trips.days`); in a
   region too large for that (:data:`BUDGET`), persons alike share a pool (:func:`alike_persons`);
4. **balancing** — weights over every person's days meeting the tables of trips and of persons,
   each person's weights summing to one (:func:`llmsynthor.fitting.balance.list_balance`);
5. **choice** — one day per person: the weights rounded one person at a time, then exchanged while
   that lowers the tables' error (:func:`llmsynthor.fitting.choice.choose_one`), :data:`ROUND_PASSES`
   passes in each round and to convergence in the round kept; a table of trips naming zones or
   districts counts as the mean of its districts' errors, each over the district's own total
   (:func:`~llmsynthor.shapes.trips.districts.cell_weights`), so that a small district is met as
   closely as a large one;
6. **guided rounds** — :data:`ROUNDS` times, half as many new days per person drawn towards what
   the tables still want (:class:`~llmsynthor.shapes.trips.days.Guide`), added to the days that
   carry weight, balanced and chosen again, each table's weight in the choice multiplied by an
   emphasis that grows for the tables the round before met worst (every table within tolerance is
   the aim, not the least total error); the round whose worst-met table is met best is kept. A
   table the first round met :data:`REACH` times worse than its tolerance and than the median table
   (a zone-level OD table of a trip or two a cell) is beyond reach: it keeps its weight and decides
   neither the round kept nor whether the work stops early;
7. **transfers** — whole tours, one or two, handed between persons alike (the same kind, homes in one
   district) where that meets the tables better (:mod:`~llmsynthor.shapes.trips.transfers`): a tour
   handed to another home zone leaves from and returns to the taker's home, its other trips unchanged;
8. **polish** — stops moved to nearby zones and trips to other hours of their slot, stops trading
   zones, trips of a purpose trading hours, tours trading modes, and a tour changing its mode to one
   the prior finds at least as likely, where that lowers the error, in stages that weigh the tables
   still worst met more (:mod:`~llmsynthor.shapes.trips.polish`); days stay chains.

The work towards the tables stops as soon as every table within reach is within its tolerance
(``tolerance_tvd``, :attr:`TripInputs.tolerance`): a round whose choice meets them all is kept
without further rounds, further passes of its choice, the transfers or the polish (a large region's tables are
met after the first round, where the rest would cost minutes and move the fit by thousandths).

The LLM is reached only through the scorer protocol (by way of ``prior.copula``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...core.levels import incidence, repeat_candidates
from ...core.metrics import tvd
from ...evaluation.cells import cell_counts
from ...evaluation.chains import ChainCheck
from ...fitting.balance import BalanceResult, list_balance
from ...fitting.choice import UnitChoice, cell_targets, choose_one, reweighed
from ...prior.requesting import LLMUsage
from .days import CellParts, Coder, Factors, Guide, candidate_days, merge_days, take_days
from .districts import cell_weights
from .evaluation import by_district, chains_of
from .finish import Finished, finish_districts
from .inputs import PERSONS, TRIPS, TripInputs, read_inputs
from .polish import Polished, polish_stops
from .prior import TripPrior, trip_prior
from .spec import TRIPS_PER_PERSON, TripsSpec
from .transfers import Transferred, TripSide, transfer_tours

PILOT = 4  # days per person drawn from the tables alone, for the lengths the model's bands are weighed against
ROUND_PASSES = 4  # the choice's exchange passes in each round; the kept round's choice then goes on to convergence
BALANCE_SWEEPS = 100  # each round's balancing guides the next; 200 sweeps measured no better after the rounds
ROUNDS = 3  # rounds of candidates guided by what the last fit missed, after the first
BUDGET = 500_000  # candidate days in the first round at most, where persons alike can share them (:func:`alike_persons`)
KEEP = 1e-3  # a pool's days kept into the next round: those with at least this share of its weight, and the chosen ones
REACH = 10  # a table the first round met this many times worse than its tolerance and than the median table is beyond reach


@dataclass
class TripResult:
    """Linked output frames and how they came about."""

    persons: pd.DataFrame
    trips: pd.DataFrame
    fit: dict[str, float]  # table -> TVD
    prior: TripPrior
    balance: BalanceResult
    choice: UnitChoice
    chains: ChainCheck
    usage: LLMUsage
    candidates: int
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    polish: Polished | None = None
    finish: Finished | None = None  # the last trips placed district by district, after the polish
    transfers: Transferred | None = None  # tours handed between persons alike, for the tables of persons
    best_round: int | None = None  # the round kept (the one whose worst-met table was met best)
    met_early: bool = False  # every table within reach was within tolerance after the kept round's choice: the work after it was not done
    by_district: dict[str, dict] = field(default_factory=dict)  # table -> its fit district by district (tables of trips naming zones)
    beyond_reach: list[str] = field(default_factory=list)  # tables the first round met far worse than the others (:func:`beyond_reach`)


class TripSynthesizer:
    """``TripSynthesizer(spec, llm).run()``: the given persons' days (``llm`` scores options, or is
    the no-model backend: the tables alone)."""

    def __init__(self, spec: TripsSpec, llm, *, inputs: TripInputs | None = None,
                 progress: Callable[[str, int, int], None] | None = None):
        self.spec, self.llm = spec, llm
        self.inputs = inputs if inputs is not None else read_inputs(spec)
        self.progress = progress or (lambda stage, done, total: None)

    def run(self) -> TripResult:
        spec, inputs = self.spec, self.inputs
        rng = np.random.default_rng(spec.seed)
        seconds, usage = {}, LLMUsage()
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[stage] = round(now - clock, 3)
            clock = now

        members, alike, shared = alike_persons(spec, inputs)  # in a large region, persons alike share one pool of candidate days
        kinds = replace(inputs, persons=inputs.persons.iloc[alike].reset_index(drop=True))
        counts = np.bincount(members, minlength=len(alike))
        self.progress("prior", 0, 1)
        lengths = pilot_lengths(spec, kinds)
        lap("pilot days")
        prior = trip_prior(spec, inputs, self.llm, lengths, on_call=usage.add_scoring)
        factors = prior.factors.of_persons(alike)
        lap("prior (LLM)")
        self.progress("prior", 1, 1)
        tables = inputs.tables
        wanted, _ = cell_targets(tables)
        sizes = [t.cells for t in tables]
        offsets = np.cumsum([0] + sizes)
        best = pool = balance = choice = who = None
        rounds = []
        tolerance = np.asarray(inputs.tolerance)
        emphasis = np.ones(len(tables))  # each table's weight is multiplied by it: the worst-met tables count more next round
        far = np.zeros(len(tables), dtype=bool)  # tables beyond the rounds' reach: no emphasis, not what a round is kept for
        for r in range(ROUNDS + 1):
            self.progress("candidate days", r, ROUNDS + 1)
            if pool is None:
                pool = candidate_days(spec, kinds, factors, rng, spec.candidates * shared)
            else:
                achieved = [balance.achieved[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
                guide = Guide.from_fit(list(tables), achieved)
                fresh = candidate_days(spec, kinds, factors, rng, max(2, spec.candidates // 2) * shared, guide=guide)
                kept = _kept(balance.weights, choice.picks, who)
                pool = merge_days(take_days(pool, kept), fresh)
            lap(f"candidate days {r}")
            matrix = incidence(tables, pool)
            who = pool.frames[PERSONS.name]["who"].to_numpy()  # the pool: a row of kinds
            own = sp.csr_matrix((np.ones(len(who)), (np.arange(len(who)), who)), shape=(len(who), len(alike)))
            initial = counts[who] / np.bincount(who, minlength=len(alike))[who]
            balance = list_balance(sp.hstack([matrix, own]).tocsr(), np.r_[wanted, counts], initial,
                                   max_iterations=BALANCE_SWEEPS)
            lap(f"balancing {r}")
            starts = np.r_[np.flatnonzero(np.r_[True, who[1:] != who[:-1]]), len(who)]
            scale = cell_weights(tables, inputs.zones, emphasis)[1]  # a table naming zones: the mean of its districts' errors
            choice = choose_one(matrix, starts, wanted, balance.weights, scale, rng, members=members, passes=ROUND_PASSES)
            lap(f"choice {r}")
            fit = [tvd(choice.achieved[a:b], t.region.ravel()) for t, a, b in zip(tables, offsets[:-1], offsets[1:])]
            rounds.append({"candidate_days": len(pool), "error_fractional": round(float(scale @ np.abs(balance.achieved[:len(wanted)] - wanted)), 6),
                           "error_rounded": round(choice.first_error, 6), "error_chosen": round(choice.error, 6),
                           "tvd_max": round(max(fit), 6), "emphasis": [round(float(e), 4) for e in emphasis]})
            if r == 0:
                far = beyond_reach(np.asarray(fit), tolerance)
            met = bool(np.all(np.asarray(fit)[~far] <= tolerance[~far]))  # every table within reach within its tolerance
            worst = max(np.asarray(fit)[~far])
            if best is None or met or worst < best[3]:  # a round meeting every table's own tolerance is kept as it is
                best = (pool, balance, choice, worst, emphasis, r, matrix, starts, scale)
            if met:
                break
            emphasis = emphasized(emphasis, np.asarray(fit), far)
        self.progress("candidate days", ROUNDS + 1, ROUNDS + 1)
        pool, balance, choice, _, emphasis, kept, matrix, starts, scale = best
        if not met:
            more = choose_one(matrix, starts, wanted, balance.weights, scale, rng, members=members, start=choice.picks)
            choice = replace(more, first_error=choice.first_error, passes=choice.passes + more.passes, moves=choice.moves + more.moves)
            lap("choice, the kept round's passes")
        frames = repeat_candidates(pool, choice.picks)
        frames[PERSONS.name]["who"] = np.arange(len(members))  # the picks are the persons' days, in their order
        transferred = polished = finished = None
        if not met:
            transferred = self._transfer(frames, rng, emphasis)
            lap("transfers")
            polished, finished = self._polish(frames, rng, emphasis, prior.factors, far)
            lap("polish")
        written = {t.name: cell_counts(frames[t.level], t)[0] for t in tables}  # each table's cells over the written days
        fit = {t.name: round(tvd(written[t.name].ravel(), t.region.ravel()), 6) for t in tables}
        districts = {t.name: by_district(t, written[t.name], inputs.zones, tol) for t, tol in zip(tables, inputs.tolerance)}
        out_persons, out_trips = self._output(frames)
        chains = chains_of(spec, out_persons, out_trips)
        lap("output")
        return TripResult(out_persons, out_trips, fit, prior, balance, choice, chains, usage, len(pool), seconds, rounds, polished,
                          finish=finished, best_round=kept, met_early=met, transfers=transferred, by_district={k: v for k, v in districts.items() if v is not None},
                          beyond_reach=[t.name for t, f in zip(tables, far) if f])

    def _transfer(self, frames: dict[str, pd.DataFrame], rng: np.random.Generator, emphasis: np.ndarray) -> Transferred | None:
        """Tours handed between persons alike where that meets the tables of persons better
        (:mod:`~llmsynthor.shapes.trips.transfers`), each table weighed with its ``emphasis``: persons of a
        district when the zones have districts and a table counts trips (what a tour handed to another home
        zone changes there is weighed too), else of a home zone. ``frames`` (the chosen days and their trips)
        are replaced. None when no table counts persons."""
        spec, inputs, zones = self.spec, self.inputs, self.inputs.zones
        chosen = [k for k, t in enumerate(inputs.tables) if t.level == PERSONS.name]
        if not chosen:
            return None
        tables = [inputs.tables[k] for k in chosen]
        targets, scale = cell_weights(tables, zones, emphasis[chosen])
        days, trips = frames[PERSONS.name], frames[TRIPS.name]
        home = inputs.persons["home_row"].to_numpy()
        side = self._trip_side(trips, emphasis) if zones.district is not None else None
        near = home if side is None else pd.factorize(zones.district[home])[0]  # persons alike live in one zone, or one district
        group = kinds_of(spec, days, home=near)
        frames[PERSONS.name], frames[TRIPS.name], done = transfer_tours(days, trips, tables, targets, scale, group,
                                                                       spec.trips.max_trips, rng, home=home, side=side)
        return done

    def _trip_side(self, trips: pd.DataFrame, emphasis: np.ndarray) -> TripSide | None:
        """The tables of trips as the transfers weigh a tour handed to another home zone (each with its
        ``emphasis``); None when no table counts trips."""
        s, zones = self.spec.trips, self.inputs.zones
        coder = Coder(self.spec, zones, self.inputs.of_level(TRIPS.name))
        if not coder.tables:
            return None
        codes = CellParts.of(coder, zones, len(s.purposes), len(s.modes))
        target, scale = cell_weights(coder.tables, zones, self._of_trip_tables(emphasis))
        return TripSide(zones, tuple(coder.tables), codes, target, scale, *self._coded(trips))

    def _of_trip_tables(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one a table, in the inputs' order) of the tables of trips."""
        return np.asarray([v for t, v in zip(self.inputs.tables, values) if t.level == TRIPS.name])

    def _coded(self, trips: pd.DataFrame) -> tuple[np.ndarray, ...]:
        """The trips' origin and destination zone rows, departure hours, and purposes' and modes' positions."""
        s, zones = self.spec.trips, self.inputs.zones
        return (zones.rows(trips["origin"]), zones.rows(trips["destination"]), trips["depart"].to_numpy(),
                pd.Index(s.purposes).get_indexer(trips["purpose"]), pd.Index(s.modes).get_indexer(trips["mode"]))

    def _polish(self, frames: dict[str, pd.DataFrame], rng: np.random.Generator, emphasis: np.ndarray,
                factors: Factors, far: np.ndarray | None = None) -> tuple[Polished | None, Finished | None]:
        """Stops moved to nearby zones, trips to other hours between their day's neighbours, and the exchanges
        and mode changes of :mod:`~llmsynthor.shapes.trips.polish`, where that lowers the tables' error, each
        table weighed with its ``emphasis`` (the tables ``far`` beyond reach: as given, through every stage);
        a tour changes mode only to one its traveller's prior factors (``factors``: every person's, in their
        order) find at least as likely for them and its length; then the last trips of the districts still over
        their tolerance (:mod:`~llmsynthor.shapes.trips.finish`). The chosen days' trips (in day order) are
        updated in place. Nones when no table counts trips."""
        spec, zones = self.spec, self.inputs.zones
        s = spec.trips
        coder = Coder(spec, zones, self.inputs.of_level(TRIPS.name))
        if not coder.tables:
            return None, None
        days, trips = frames[PERSONS.name], frames[TRIPS.name]
        person = trips[PERSONS.id].to_numpy() - 1
        kind = kinds_of(spec, days)[person]  # each trip's traveller's kind: tours of a kind may trade modes
        mode_factors = (factors.mode_by_person[person], factors.mode_by_length)
        coded = self._coded(trips)
        purpose = coded[3]
        beyond = None if far is None else self._of_trip_tables(far)
        polished = polish_stops(zones, coder, *coded, purpose == s.purposes.index(s.home), trips[PERSONS.id].to_numpy(),
                                (s.first_hour, s.last_hour), rng, emphasis=self._of_trip_tables(emphasis), kind=kind,
                                mode_factors=mode_factors, beyond=beyond)
        finished = finish_districts(zones, coder, polished.origin, polished.destination, polished.depart, purpose, polished.mode,
                                    purpose == s.purposes.index(s.home), trips[PERSONS.id].to_numpy(),
                                    self._of_trip_tables(np.asarray(self.inputs.tolerance)), rng, len(s.purposes), len(s.modes),
                                    beyond=beyond)
        trips["depart"] = polished.depart
        trips["mode"] = np.asarray(s.modes, dtype=object)[polished.mode]
        trips["origin"], trips["destination"] = zones.ids[finished.origin], zones.ids[finished.destination]
        trips["km"] = zones.km(finished.origin, finished.destination)
        if zones.district is not None:
            district = zones.district.astype(str)
            trips["origin_district"], trips["destination_district"] = district[finished.origin], district[finished.destination]
        return polished, finished

    def _output(self, frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The chosen days as the field writes them: persons with their given ids, home zone and trips
        that day; trips in ActivitySim's columns (trip_id, person_id, household_id, tour_id, origin,
        destination, depart, trip_mode, purpose) plus districts and km."""
        spec, given = self.spec, self.inputs.persons
        days, trips = frames[PERSONS.name], frames[TRIPS.name]
        row = days["who"].to_numpy()
        persons = pd.DataFrame({"person_id": given[spec.persons.id].to_numpy()[row]})
        if spec.persons.household:
            persons["household_id"] = given[spec.persons.household].to_numpy()[row]
        persons["home_zone"] = given[spec.persons.home].to_numpy()[row]
        for name in spec.traveller_variables:  # the household's variables each member carries, then the person's
            persons[name] = days[name].to_numpy()
        persons[TRIPS_PER_PERSON] = days[TRIPS_PER_PERSON].to_numpy()
        index = trips[PERSONS.id].to_numpy() - 1  # repeat_candidates numbers the days 1… in pick order
        out = pd.DataFrame({"trip_id": trips[TRIPS.id].to_numpy(), "person_id": persons["person_id"].to_numpy()[index]})
        if "household_id" in persons:
            out["household_id"] = persons["household_id"].to_numpy()[index]
        tour_key = pd.MultiIndex.from_arrays([index, trips["tour"].to_numpy()])
        out["tour_id"] = pd.factorize(tour_key)[0] + 1
        for column, name in (("origin", "origin"), ("destination", "destination"), ("depart", "depart"), ("mode", "trip_mode"),
                             ("purpose", "purpose"), ("origin_district", "origin_district"),
                             ("destination_district", "destination_district"), ("km", "km")):
            if column in trips:
                out[name] = trips[column].to_numpy()
        out["km"] = out["km"].round(3)
        return persons, out


def beyond_reach(fit: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """The tables the first round met more than :data:`REACH` times worse than their tolerance and than
    the median table: a zone-level OD table of a trip or two a cell, say, that no round of candidate
    days covers (TVD .61 on a synthetic region, where the median table was met to .03). A table just
    over its tolerance while the others are met closely is not: the rounds work it down."""
    return (fit > REACH * tolerance) & (fit > REACH * np.median(fit))


def emphasized(emphasis: np.ndarray, fit: np.ndarray, far: np.ndarray) -> np.ndarray:
    """The next round's emphasis (:func:`~llmsynthor.fitting.choice.reweighed`) among the tables within
    reach; a table beyond reach keeps its weight as given. Emphasis on a table no round can meet would
    grow every round (to 16 in three on a synthetic region's zone-level OD table) and pull every
    other table with it."""
    out = emphasis.copy()
    out[~far] = reweighed(emphasis[~far], fit[~far])
    return out


def pilot_lengths(spec: TripsSpec, inputs: TripInputs) -> np.ndarray:
    """The lengths (km) of :data:`PILOT` days per person drawn from the tables alone (seeded apart from
    the run): what the model's length bands are weighed against, since no table gives lengths."""
    alone = Factors.none(len(inputs.persons), len(spec.trips.purposes), len(spec.trips.modes))
    return candidate_days(spec, inputs, alone, np.random.default_rng([spec.seed, 1]), PILOT).frames[TRIPS.name]["km"].to_numpy()


def alike_persons(spec: TripsSpec, inputs: TripInputs, budget: int = BUDGET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which persons share candidate days: (each person's pool, each pool's first person, how many
    persons' candidate days each pool has). While ``spec.candidates`` days for every person fit in
    ``budget``, every person has days of their own (pools are persons; sharing cost realism where it
    was measured: Exampville's zone-to-zone flows, CPC .83 → .73–.81). Beyond it, persons alike —
    the same home zone and the same value of every variable the tables or the prior know of them —
    share their kind's pool when there are more than s of them, the pool having s persons' days,
    with s the largest that keeps every pool's days within the budget (at least 1); fewer alike keep
    days of their own. Pools are numbered in the order of their first person."""
    persons = len(inputs.persons)
    if spec.candidates * persons <= budget:
        own = np.arange(persons, dtype=np.int64)
        return own, own, np.ones(persons, dtype=np.int64)
    kind = kinds_of(spec, inputs.persons, home=inputs.persons["home_row"].to_numpy())
    sizes = np.bincount(kind)
    ordered = np.sort(sizes)
    s = np.arange(1, int(ordered[-1]) + 1)
    below = np.searchsorted(ordered, s, side="right")  # kinds of at most s persons
    days = spec.candidates * (np.r_[0, np.cumsum(ordered)][below] + s * (len(ordered) - below))  # Σ min(size, s) persons' days
    most = int(s[days <= budget][-1]) if (days <= budget).any() else 1
    alone = sizes[kind] <= most
    members, _ = pd.factorize(np.where(alone, -1 - np.arange(persons), kind))
    first = np.unique(members, return_index=True)[1]
    return members.astype(np.int64), first, np.where(alone[first], 1, most).astype(np.int64)


def kinds_of(spec: TripsSpec, persons: pd.DataFrame, home: np.ndarray | None = None) -> np.ndarray:
    """Each person's kind, numbered from 0 in order of appearance: the same value of every variable the tables
    or the prior know of them (``spec.traveller_variables``), and the same ``home`` zone row where given."""
    keys = ([] if home is None else [home]) + [persons[v].to_numpy() for v in spec.traveller_variables]
    if not keys:
        return np.zeros(len(persons), dtype=np.int64)
    return pd.factorize(pd.MultiIndex.from_arrays(keys))[0].astype(np.int64)


def _kept(weights: np.ndarray, picks: np.ndarray, who: np.ndarray) -> np.ndarray:
    """The days worth keeping into the next round: each person's chosen day and those with at least
    :data:`KEEP` of its pool's weight (ascending rows)."""
    total = np.bincount(who, weights=weights)
    keep = weights >= KEEP * total[who]
    keep[picks] = True
    return np.flatnonzero(keep)
