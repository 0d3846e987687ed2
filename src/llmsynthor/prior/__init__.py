"""What the LLM is asked and what its answers become: prompts, pairwise lifts (copula), their strength check, proposals, suggestions."""
