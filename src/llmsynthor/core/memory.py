"""Will a run of n records fit in memory? An estimate made before anything is allocated."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable; else physical memory), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**40:.3g} TiB" if n_bytes >= 2**40 else f"{n_bytes / 2**30:.3g} GiB"


def memory_estimate(n_records: int, n_variables: int, candidates: float) -> int:
    """A rough estimate of the bytes a run of ``n_records`` holds at once: every candidate record (n × candidates)
    with its variables and its proposal, 8 bytes a value, twice (a frame and the copy made while joining)."""
    return int(n_records * max(1.0, candidates) * (n_variables + 1) * 8 * 2)


def memory_problem(n_records: int, n_variables: int, candidates: float, available: int | None = None) -> str | None:
    """A one-line explanation when ``n_records`` cannot fit in memory, else None."""
    available = available_memory() if available is None else available
    need = memory_estimate(n_records, n_variables, candidates)
    if available is None or need <= available:
        return None
    most = int(available // max(1, memory_estimate(1, n_variables, candidates)))
    return (f"{n_records} records need about {_gib(need)} of memory ({n_records} × candidates {candidates:g} × "
            f"{n_variables + 1} columns × 8 bytes × 2 copies) but {_gib(available)} is available; expected at most about "
            f"{most} records here")
