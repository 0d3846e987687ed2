"""Many prompts that begin alike, scored together in one llama.cpp context with parallel sequences.

Option scoring asks the same question many times with one value changed at the end (a level of the
context variable). Evaluated one after another, every request pays a forward pass of its own for a
handful of new tokens, and a forward pass over few tokens costs nearly as much as one over a
hundred: the weights are read from memory once per pass. Here the shared beginning is evaluated
once (sequence 0, kept for the next batch while it still matches) and the requests' tails, and the
option tokens that lead to every later branching point, are evaluated in as few passes as the batch
size allows, each tail in a sequence of its own that sees the shared beginning and nothing else.

The probabilities are those of a walk over the options' token trie: at every point where the
options branch, a softmax over the branches' next tokens; an option's log probability is the sum
along its path, as constrained decoding would pick it. A request whose branching points do not fit
one pass (more than ``n_seq_max`` sequences, or ``n_batch`` tokens) is spread over several. Only llama.cpp's low-level API is used; the context is separate from the
one that writes completions, so neither evicts the other's cached prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import BackendError, Unsupported


@dataclass(frozen=True)
class _Request:
    """One prompt (tokens) and the token paths of its options."""

    prompt: list[int]
    paths: list[list[int]]

    def branches(self) -> dict[tuple[int, ...], list[int]]:
        """Path prefix -> the options below it, for prefixes where the options' next tokens differ."""
        below: dict[tuple[int, ...], list[int]] = {}
        for i, path in enumerate(self.paths):
            for depth in range(len(path)):
                below.setdefault(tuple(path[:depth]), []).append(i)
        return {prefix: members for prefix, members in below.items()
                if len({self.paths[i][len(prefix)] for i in members}) > 1}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    mismatch = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(mismatch[0]) if mismatch.size else n


class PrefixBatchScorer:
    """Scores option requests on ``llama`` (a ``llama_cpp.Llama``) in a context of its own.

    Parameters
    ----------
    n_seq_max:
        Parallel sequences of the context (one per request in a pass, one per deeper branching point).
    n_batch, n_ubatch:
        Tokens per llama_decode call, and per compute micro-batch.
    """

    def __init__(self, llama, *, n_seq_max: int = 64, n_batch: int = 512, n_ubatch: int = 512):
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = llama.n_ctx()
        params.n_batch, params.n_ubatch = n_batch, min(n_ubatch, n_batch)
        params.n_threads = llama.context_params.n_threads
        params.n_threads_batch = llama.context_params.n_threads_batch
        params.n_seq_max = n_seq_max
        params.kv_unified = True  # one cache for all sequences: the shared beginning is stored once
        try:
            self._ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
        except ValueError as exc:
            raise BackendError(f"llama.cpp could not make a scoring context: {exc}") from None
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n_seq_max, verbose=False)
        self.n_vocab = llama.n_vocab()
        self.n_ctx, self.n_batch, self.n_seq_max = params.n_ctx, n_batch, n_seq_max
        self._shared: list[int] = []  # tokens held by sequence 0
        self.passes = 0  # llama_decode calls, for tests and benchmarks

    # -- the shared beginning ----------------------------------------------------------------
    def _hold(self, tokens: list[int]) -> int:
        """Make sequence 0 hold exactly ``tokens``; returns how many tokens had to be evaluated."""
        memory = self._ctx.memory
        self._lib.llama_memory_seq_keep(memory, 0)  # drop every other sequence
        keep = common_prefix(self._shared, tokens)
        self._lib.llama_memory_seq_rm(memory, 0, keep, -1)
        self._shared = tokens[:keep]
        for start in range(keep, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self._fill([(token, start + j, (0,), False) for j, token in enumerate(chunk)])
            self._decode()
            self._shared = tokens[:start + len(chunk)]
        return len(tokens) - keep

    # -- one pass ------------------------------------------------------------------------------
    def _fill(self, rows: list[tuple[int, int, tuple[int, ...], bool]]) -> None:
        """(token, position, sequence ids, wants logits) per batch row."""
        batch = self._batch.batch
        batch.n_tokens = len(rows)
        for i, (token, pos, seqs, logits) in enumerate(rows):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, len(seqs), logits
            for k, seq in enumerate(seqs):
                batch.seq_id[i][k] = seq

    def _decode(self) -> None:
        try:
            self._ctx.decode(self._batch)
        except RuntimeError as exc:
            self._shared = []
            self._lib.llama_memory_clear(self._ctx.memory, True)
            raise BackendError(f"llama.cpp could not evaluate a scoring batch ({exc})") from None
        self.passes += 1

    def _logits(self, row: int) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self._ctx.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    # -- public ----------------------------------------------------------------------------------
    def score(self, prompts: list[list[int]], paths: list[list[list[int]]], max_tail: int = 64) -> tuple[list[np.ndarray], int]:
        """Log probability of every option of every request (``prompts[r]`` followed by ``paths[r][i]``),
        and the number of tokens evaluated. Consecutive requests whose prompts differ only in their last
        ``max_tail`` tokens share a beginning and passes; the others start a group of their own."""
        out: list[np.ndarray] = []
        evaluated, start = 0, 0
        for end in range(1, len(prompts) + 1):
            if end < len(prompts) and common_prefix(prompts[start], prompts[end]) >= len(prompts[end]) - max_tail:
                continue
            scores, n = self._score_group(prompts[start:end], paths[start:end])
            out, evaluated, start = out + scores, evaluated + n, end
        return out, evaluated

    def _score_group(self, prompts: list[list[int]], paths: list[list[list[int]]]) -> tuple[list[np.ndarray], int]:
        requests = [_Request(p, o) for p, o in zip(prompts, paths)]
        for r in requests:
            if len(r.prompt) + max(map(len, r.paths)) >= self.n_ctx:
                raise Unsupported(f"the scoring prompt has {len(r.prompt)} tokens; the context holds {self.n_ctx}")
        shared = min(len(r.prompt) for r in requests) - 1  # every request keeps a tail of at least one token
        for r in requests[1:]:
            shared = min(shared, common_prefix(requests[0].prompt, r.prompt))
        branches = [r.branches() for r in requests]
        out = [np.zeros(len(r.paths)) for r in requests]
        evaluated = 0
        long = [r for r, request in enumerate(requests) if len(request.prompt) - shared >= self.n_batch]
        for r in long:  # a tail too long to share a pass: the request's own prompt is its shared beginning
            single, n = self._score_group([requests[r].prompt], [requests[r].paths])
            out[r], evaluated = single[0], evaluated + n
        evaluated += self._hold(requests[0].prompt[:shared])
        units = [unit for r in range(len(requests)) if r not in long
                 for unit in self._units(r, len(requests[r].prompt) - shared, branches[r], shared)]
        while units:
            rows, reads, seq, taken = [], [], 1, 0  # reads: (batch row, request, branch prefix)
            for r, prefixes in units:
                request, deeper = requests[r], [prefix for prefix in prefixes if prefix]
                size = len(request.prompt) - shared + sum(map(len, deeper))
                seqs = tuple(range(seq, seq + 1 + len(deeper)))
                if taken and (len(rows) + size > self.n_batch or seqs[-1] >= self.n_seq_max
                              or shared + len(rows) + size >= self.n_ctx):
                    break
                for k in seqs:
                    self._lib.llama_memory_seq_cp(self._ctx.memory, 0, k, -1, -1)
                rows += [(token, shared + j, seqs, False) for j, token in enumerate(request.prompt[shared:])]
                if () in prefixes:
                    rows[-1] = (*rows[-1][:3], True)
                    reads.append((len(rows) - 1, r, ()))
                for k, prefix in zip(seqs[1:], deeper):
                    rows += [(token, len(request.prompt) + j, (k,), j == len(prefix) - 1) for j, token in enumerate(prefix)]
                    reads.append((len(rows) - 1, r, prefix))
                seq, taken = seq + len(seqs), taken + 1
            self._fill(rows)
            self._decode()
            evaluated += len(rows)
            for row, r, prefix in reads:
                members = branches[r][prefix]
                tokens = sorted({requests[r].paths[i][len(prefix)] for i in members})
                logits = self._logits(row)[tokens].astype(np.float64)
                z = logits - np.logaddexp.reduce(logits)
                for i in members:
                    out[r][i] += z[tokens.index(requests[r].paths[i][len(prefix)])]
            self._lib.llama_memory_seq_keep(self._ctx.memory, 0)
            units = units[taken:]
        return out, evaluated

    def _units(self, r: int, tail: int, branches: dict, shared: int) -> list[tuple[int, list[tuple[int, ...]]]]:
        """Request ``r``'s branching points in as few passes as the limits allow: each pass evaluates the
        request's tail (``tail`` tokens) and, in a sequence of its own, the option tokens leading to each
        of its deeper branching points."""
        limit = min(self.n_batch, self.n_ctx - shared - 1)
        units, unit, size = [], [], tail
        for prefix in sorted(branches, key=len):  # the root (read at the tail's end) first
            if tail + len(prefix) > limit:
                raise Unsupported(f"scoring an option needs {tail + len(prefix)} tokens in one llama.cpp pass; "
                                   f"n_batch is {self.n_batch} (llm.n_batch)")
            if unit and (size + len(prefix) > limit or sum(map(bool, unit)) + bool(prefix) + 1 >= self.n_seq_max):
                units.append((r, unit))
                unit, size = [], tail
            unit.append(prefix)
            size += len(prefix)
        return units + [(r, unit)] if unit else units
