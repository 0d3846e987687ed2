"""A persistent response cache in front of any backend.

Keyed by the backend's identity (model file sha256, or endpoint and model; never a key), the
messages, the schema, and the decoding parameters including the seed. Re-running a spec with
the same seed therefore replays the same answers without calling the model. Entries live in
one SQLite file; a version bump in the key invalidates old entries.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from ..core.errors import LLMSynthorError
from .base import Choice, Completion, LLMBackend, identity, score_options

CACHE_VERSION = 1


def default_path() -> Path:
    """The response cache's SQLite file: ``<$LLMSYNTHOR_CACHE or ~/.cache/llmsynthor>/responses.sqlite``."""
    from .models import cache_root

    return cache_root() / "responses.sqlite"


class CachedLLM:
    """Wraps a backend; answers from ``path`` when the same request was answered before."""

    chunk = 64  # option scorings sent to the backend together, then stored

    def __init__(self, inner: LLMBackend, path: Path):
        self.inner = inner
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise LLMSynthorError(f"cannot open the response cache {self.path} ({exc}); set LLMSYNTHOR_CACHE to a "
                                  "writable folder, or turn the cache off (--no-cache, llm.cache: false)") from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, item):  # model_file, load_seconds, transport_retries … of the inner backend
        return getattr(self.inner, item)

    def key(self, messages, schema, *, max_tokens, temperature, seed) -> str:
        payload = {"v": CACHE_VERSION, "backend": identity(self.inner), "messages": messages, "schema": schema,
                   "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def complete_json(self, messages, schema, *, max_tokens, temperature, seed) -> Completion:
        key = self.key(messages, schema, max_tokens=max_tokens, temperature=temperature, seed=seed)
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is not None:
            data = json.loads(row[0])
            with self._lock:
                self.hits += 1
            return Completion(text=data["text"], prompt_tokens=data["prompt_tokens"],
                              completion_tokens=data["completion_tokens"], seconds=0.0, cached=True)
        completion = self.inner.complete_json(messages, schema, max_tokens=max_tokens, temperature=temperature, seed=seed)
        record = {"text": completion.text, "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
        self._store(key, record)
        return completion

    def option_probabilities(self, messages, answer_prefix, options) -> Choice:
        """Cached like completions (scores are deterministic, so no seed is part of the key)."""
        return self.option_probabilities_batch([(messages, answer_prefix, options)])[0]

    def option_probabilities_batch(self, requests) -> list[Choice]:
        """Each ``(messages, answer_prefix, options)`` from the cache where it was scored before; the
        others from the backend, together (:func:`~llmsynthor.llm.base.score_options`)."""
        out: list[Choice | None] = []
        keys = []
        for messages, answer_prefix, options in requests:
            payload = {"v": CACHE_VERSION, "kind": "options", "backend": identity(self.inner), "messages": messages,
                       "answer_prefix": answer_prefix, "options": options}
            keys.append(hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest())
            with self._lock:
                row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (keys[-1],)).fetchone()
            out.append(None if row is None else Choice(tuple(json.loads(row[0])["probabilities"]), 0, 0.0, cached=True))
        with self._lock:
            self.hits += sum(choice is not None for choice in out)
        missing = [k for k, choice in enumerate(out) if choice is None]
        for start in range(0, len(missing), self.chunk):  # stored chunk by chunk: a failure keeps what was paid for
            chunk = missing[start:start + self.chunk]
            for k, choice in zip(chunk, score_options(self.inner, [requests[k] for k in chunk])):
                self._store(keys[k], {"probabilities": choice.probabilities})
                out[k] = choice
        return out

    def _store(self, key: str, record: dict) -> None:
        with self._lock:
            self.misses += 1
            try:
                self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(record)))
            except sqlite3.Error as exc:
                raise LLMSynthorError(f"cannot write to the response cache {self.path} ({exc}); free some disk space, "
                                      "set LLMSYNTHOR_CACHE to a writable folder, or turn the cache off (--no-cache, llm.cache: false)") from None

    def close(self) -> None:
        self._db.close()
