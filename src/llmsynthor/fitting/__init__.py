"""Algorithms over candidates and counts, no LLM: allocation, calibration, raking, list balancing, integerizing, zones and executors."""
