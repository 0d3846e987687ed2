"""Persons' days of trips between zones: given persons, each with a chain of tours from home, meeting
tables of trips (OD by period, hour × purpose, mode × purpose, per zone) and of persons (trips per
person).

A trips spec (:mod:`llmsynthor.shapes.trips.spec`) names a zone table, the persons and the tables;
:mod:`~llmsynthor.shapes.trips.inputs` reads and checks them together; the model's pairwise lifts
over what it can know (who, the activity, the mode, the length in words) are checked against the
tables and tempered (:mod:`~llmsynthor.shapes.trips.prior`); candidate days are drawn valid by
construction (:mod:`~llmsynthor.shapes.trips.days`) and one is chosen for each person
(:mod:`~llmsynthor.shapes.trips.synthesizer`); :mod:`~llmsynthor.shapes.trips.output` writes them.
"""

from .inputs import LEVELS

KIND = "trips"
__all__ = ["KIND", "LEVELS"]
