"""A CSV of one row per entity a spec names (zones, persons, households): read as strings (stripped),
its columns checked — one SpecError naming the file, the missing columns and the ones it has, before
any work — and its ids checked given once."""

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
    return frame.apply(lambda column: column.str.strip())


def repeated_ids(frame: pd.DataFrame, column: str, where: str, row: str) -> list[Problem]:
    """A problem naming the first id of ``column`` given more than once (none if every id is given once)."""
    repeated = frame[column][frame[column].duplicated()]
    if not len(repeated):
        return []
    return [Problem(where, f"{row} id {repeated.iloc[0]!r} is given more than once ({repeated.nunique()} id(s) repeated); "
                           f"expected each {row} once")]
