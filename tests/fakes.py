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


class ScriptedServer:
    """A tiny OpenAI-compatible HTTP server of the tests' own: answers from a script, records requests.

    Each script item is (status, content) where content is the assistant message text for 200
    (or ``{"content": text, "top_logprobs": [(token, logprob), ...]}`` to answer with the first
    token's logprobs), or an error body otherwise. When the script is exhausted, ``fallback(request_json)`` answers.
    """

    def __init__(self, script=None, fallback=None):
        import http.server
        import threading

        self.script = list(script or [])
        self.fallback = fallback
        self.requests: list[dict] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, content = owner.script.pop(0) if owner.script else (200, owner.fallback(body))
                logprobs = None
                if isinstance(content, dict):  # {"content": text, "top_logprobs": [(token, logprob), ...]}
                    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in content["top_logprobs"]]
                    logprobs = {"content": [{**top[0], "top_logprobs": top}]} if top else None
                    content = content["content"]
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                               "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                                            "message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
                else:
                    payload = {"error": {"message": content, "type": "error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class KnowingFakeLLM(FakeLLM):
    """A FakeLLM that also scores options (a ChoiceScorer): ``knowledge`` maps (context text,
    answer variable) to probabilities over the options, in order; anything else is uniform."""

    def __init__(self, knowledge: dict, **kwargs):
        super().__init__(**kwargs)
        self.knowledge = knowledge
        self.scorings: list[tuple[str, list[str]]] = []

    def option_probabilities(self, messages, answer_prefix, options):
        from llmsynthor.llm.base import Choice

        question = messages[-1]["content"]
        self.scorings.append((question, options))
        for (context, answer), probabilities in self.knowledge.items():
            if f"has {context}." in question and answer_prefix == f'{{"{answer}": "':
                return Choice(tuple(probabilities), 10, 0.0)
        return Choice(tuple([1 / len(options)] * len(options)), 10, 0.0)
