"""Scoring records against targets, held-out tables and rules; ground-truth generators for examples and benches."""
