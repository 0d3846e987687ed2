"""Flat records of one entity: the discrepancy-guided loop of LLM proposals (the paper's e-commerce setting).

One level, :data:`~llmsynthor.core.levels.RECORDS`."""

from ...core.levels import RECORDS

KIND = "records"
LEVELS = (RECORDS,)
