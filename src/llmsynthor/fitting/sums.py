"""Numpy's own sum, for compiled loops: the fitting's inner loops run under numba, and sum exactly as
the numpy code they replace did, so that compiling a loop changes its speed, never its results.

``np.add.reduce`` over a contiguous float64 array (and ``sum(axis=-1)``) sums pairwise: fewer than 8 numbers one after the other; up to 128 in eight running sums combined as
((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest one by one; more than that, the
two halves (the first a multiple of 8 long) apart, then added. :func:`pairwise_sum` does the same;
``np.add.reduceat`` takes each segment's first number and adds the rest summed so (:func:`segment_sum`).

The compiled functions are cached next to their modules (``__pycache__/*.nbi``, ``*.nbc``). Numba's
cache does not follow calls across files: a caller's cached code keeps the version of these functions
it was compiled with. After changing this module, delete the cached code of its callers
(``find src -name '*.nb[ic]' -delete``); an installed package's files all change together.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 128  # numpy's PW_BLOCKSIZE


@numba.njit(cache=True)
def _block(a: np.ndarray, start: int, stop: int) -> float:
    """numpy's sum of at most :data:`BLOCK` numbers."""
    n = stop - start
    if n < 8:
        total = 0.0  # numpy starts from the first number; -0.0 + 0.0 aside, the same
        if n > 0:
            total = a[start]
            for i in range(start + 1, stop):
                total += a[i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    end = stop - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < stop:
        total += a[i]
        i += 1
    return total


@numba.njit(cache=True)
def pairwise_sum(a: np.ndarray, start: int, stop: int) -> float:
    """``np.add.reduce(a[start:stop])``, bit for bit (``a`` float64, contiguous). The halving is walked
    with a stack of its own, not by recursion (numba's cache does not keep recursive functions safely)."""
    if stop - start <= BLOCK:
        return _block(a, start, stop)
    low = np.empty(64, dtype=np.int64)  # each open range: where it starts and ends, how far it is, its left half's sum
    high = np.empty(64, dtype=np.int64)
    stage = np.empty(64, dtype=np.int64)
    left = np.empty(64)
    low[0], high[0], stage[0] = start, stop, 0
    depth, value = 1, 0.0
    while depth > 0:
        k = depth - 1
        n = high[k] - low[k]
        half = n // 2 - (n // 2) % 8
        if n <= BLOCK or stage[k] == 2:
            value = _block(a, low[k], high[k]) if n <= BLOCK else left[k] + value
            depth -= 1  # the value goes to the range below: its left half's sum, or its right half's
            if depth > 0 and stage[depth - 1] == 1:
                left[depth - 1] = value
        elif stage[k] == 0:
            stage[k] = 1
            low[depth], high[depth], stage[depth] = low[k], low[k] + half, 0
            depth += 1
        else:
            stage[k] = 2
            low[depth], high[depth], stage[depth] = low[k] + half, high[k], 0
            depth += 1
    return value


@numba.njit(cache=True)
def segment_sum(a: np.ndarray, start: int, stop: int) -> float:
    """One segment of ``np.add.reduceat(a, ...)``, bit for bit: its first number, plus the rest summed pairwise."""
    return a[start] + pairwise_sum(a, start + 1, stop) if stop - start > 1 else a[start]
