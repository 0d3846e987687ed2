"""A test double for the LLM backend: answers from a script or with random schema-valid JSON."""

from __future__ import annotations

import json
import re

import numpy as np

from llmsynthor.llm.base import Completion


class FakeLLM:
    """Satisfies LLMBackend. ``script`` answers are used first, in order; then random valid plans."""

    name = "fake"

    def __init__(self, script: list[str] | None = None, seed: int = 0, domains: dict | None = None):
        self.script = list(script or [])
        self.domains = domains or {}  # numeric variable -> (min, max); default (0, 1500)
        self.rng = np.random.default_rng(seed)
        self.calls: list[dict] = []

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed):
        self.calls.append({"messages": messages, "schema": schema, "seed": seed})
        if self.script:
            text = self.script.pop(0)
        elif "groups" in schema["properties"]:
            names = schema["properties"]["groups"]["items"]["items"]["enum"]
            text = json.dumps({"groups": [names[:2]]})
        else:
            wanted = len(re.findall(r"^\d+\. ", messages[-1]["content"], flags=re.M)) or 1
            item = schema["properties"]["proposals"]["items"]["properties"]
            text = json.dumps({"proposals": [self._proposal(item) for _ in range(wanted)]})
        return Completion(text=text, prompt_tokens=100, completion_tokens=len(text) // 4, seconds=0.0)

    def _proposal(self, props: dict) -> dict:
        out = {}
        for name, p in props.items():
            if name == "num":
                out[name] = int(self.rng.integers(1, 50))
            elif "enum" in p:
                out[name] = str(self.rng.choice(p["enum"]))
            else:
                dmin, dmax = self.domains.get(name, (0, 1500))
                lo = int(self.rng.integers(dmin, dmax))
                out[name] = [lo, lo + int(self.rng.integers(0, max(2, (dmax - dmin) // 20)))]
        return out
