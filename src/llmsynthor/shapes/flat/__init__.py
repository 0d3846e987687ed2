"""Flat records of one entity: the discrepancy-guided loop of LLM proposals (the paper's e-commerce setting)."""
