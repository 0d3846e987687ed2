"""Households with their persons: nested records, targets at both levels and across them, zones.

A household spec (:mod:`llmsynthor.shapes.households.spec`) declares household and person variables, the
household variable that counts the members, and derived household counts; its target tables count
households or persons, for the region or per zone. The LLM proposes household compositions once for
the region; each zone's households are then chosen from that pool by list balancing, in parallel
(locally or on Ray), with no LLM call per zone.
"""

from .controls import LEVELS

KIND = "households"
__all__ = ["KIND", "LEVELS"]
