"""A CSV of one row per entity a spec names (zones, persons): read as strings, its columns checked —
one SpecError naming the file, the missing columns and the ones it has, before any work."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..core.errors import Problem, SpecError, os_reason


def read_rows(path: Path, where: str, row: str, columns: Mapping[str, str]) -> pd.DataFrame:
    """The CSV at ``path`` as strings (nothing read as missing); ``where`` names it in messages, ``row``
    says what one row is ("zone"), ``columns`` maps what each column is for to its name."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SpecError(Problem(where, f"file not found; expected a CSV with one row a {row}")) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SpecError(Problem(where, f"cannot be read as CSV ({os_reason(exc) if isinstance(exc, OSError) else exc})")) from None
    missing = [f"{column!r} ({what})" for what, column in columns.items() if column not in frame.columns]
    if missing:
        raise SpecError(Problem(where, f"missing column(s) {', '.join(missing)}; the file has {', '.join(map(repr, frame.columns))}"))
    if frame.empty:
        raise SpecError(Problem(where, f"no {row}s; expected one row a {row}"))
    return frame
