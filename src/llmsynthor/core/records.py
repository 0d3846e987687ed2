"""Reading micro-records to evaluate, and checking them against the schema's domains.

``load_records`` reads a .csv or .parquet file and fails with a ``SpecError`` naming the file
(and the column, row and value where there is one) when it cannot be read as records: an empty
file, a corrupt Parquet file, an unreadable CSV, missing columns, text in a numeric column.

Values that can be read but lie outside the domain — a category not in the variable's values, a
number outside [min, max], a non-integer in an integer variable, a missing value — are *not*
errors here: ``outside_domain`` counts them per variable so the evaluation can report them and
count them as error (they land in an extra "outside the domain" cell of every table). Knows
nothing about LLMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import Problem, SpecError, os_reason
from .schema import CategoricalVariable, IntegerVariable, Schema

RECORD_SUFFIXES = (".csv", ".parquet")
# cells a numeric column may hold to mean "no value" (anything else that is not a number is an error)
_MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "none", "<na>"}


@dataclass(frozen=True)
class Records:
    """Records read from a file: the frame (numeric columns as numbers, categorical as text) and
    the values outside the schema's domains, per variable (see :func:`outside_domain`)."""

    frame: pd.DataFrame
    outside: dict[str, dict]
    path: Path


def _plain(value) -> object:
    """A JSON-friendly Python value for an example (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return int(value)
    return value


def inside_domain(records: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """Per variable, a boolean mask: True where the record's value lies in the variable's domain
    (a listed category; a number in [min, max], whole for integer variables; never missing)."""
    masks = {}
    for name in schema.names:
        var = schema[name]
        column = records[name]
        if isinstance(var, CategoricalVariable):
            masks[name] = column.isin(var.values).to_numpy()
            continue
        x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(x) & (x >= var.min) & (x <= var.max)
            if isinstance(var, IntegerVariable):
                ok &= x == np.round(x)
        masks[name] = ok
    return masks


def outside_domain(records: pd.DataFrame, schema: Schema, masks: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """Variables with values outside their domain: ``{variable: {"count", "missing", "share",
    "example"}}`` — ``count`` includes the ``missing`` ones, ``share`` is of all records,
    ``example`` is the first value present but out of the domain (None if all are missing)."""
    masks = inside_domain(records, schema) if masks is None else masks
    found = {}
    for name in schema.names:
        bad = ~masks[name]
        if not bad.any():
            continue
        values = records[name][bad]
        missing = values.isna()
        present = values[~missing]
        found[name] = {"count": int(bad.sum()), "missing": int(missing.sum()),
                       "share": float(bad.sum() / len(records)),
                       "example": _plain(present.iloc[0]) if len(present) else None}
    return found


def describe_outside(name: str, info: dict, schema: Schema) -> str:
    """One phrase for a variable's out-of-domain values, with what was expected."""
    var = schema[name]
    expected = (f"one of {var.values}" if isinstance(var, CategoricalVariable)
                else f"{'a whole number' if isinstance(var, IntegerVariable) else 'a number'} in [{var.min:g}, {var.max:g}]")
    parts = []
    if info["example"] is not None:
        parts.append(f"e.g. {info['example']!r}")
    if info["missing"]:
        parts.append(f"{info['missing']} missing")
    return f"{info['count']} values of {name!r} outside the domain ({'; '.join(parts)}); expected {expected}"


def _read_frame(path: Path, schema: Schema) -> pd.DataFrame:
    where = str(path)
    if path.suffix.lower() == ".csv":
        try:
            # everything as text first, so a category spelled like a number stays a category and
            # a numeric column's stray text can be named below
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise SpecError(Problem(where, "the file is empty; expected a header row with the spec's variables and one row per record")) from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise SpecError(Problem(where, f"cannot read the CSV ({' '.join(str(exc).split())}); expected comma-separated records with a header row")) from None
        except OSError as exc:
            raise SpecError(Problem(where, f"cannot open the records file ({os_reason(exc)})")) from None
    if path.stat().st_size == 0:
        raise SpecError(Problem(where, "the file is empty; expected a Parquet file of records"))
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise SpecError(Problem(where, f"cannot read Parquet without pyarrow ({exc}); pip install pyarrow, or give a .csv")) from None
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, … for a corrupt file
        raise SpecError(Problem(where, f"cannot read the Parquet file ({' '.join(str(exc).split())}); expected a Parquet file of records")) from None


def _numeric(column: pd.Series, name: str, where: str, header_rows: int) -> pd.Series:
    """The column as floats; missing tokens become NaN; any other text is an error naming it."""
    if pd.api.types.is_bool_dtype(column):
        raise SpecError(Problem(where, f"column {name!r} holds true/false values; expected numbers"))
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(float)
    text = column.astype("string").str.strip()
    missing = text.isna() | text.str.lower().isin(_MISSING_TOKENS)
    numbers = pd.to_numeric(text.mask(missing), errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        line = f" (line {row + header_rows + 1} of the file)" if header_rows else ""
        raise SpecError(Problem(where, f"column {name!r} is numeric but row {row + 1}{line} holds {column.iloc[row]!r}"
                                       f"{f' ({int(bad.sum())} such rows)' if bad.sum() > 1 else ''}; expected a number or an empty cell"))
    return numbers.astype(float)


def check_suffix(path: Path, what: str = "records") -> None:
    """Records files are .csv or .parquet; anything else is refused, naming the path."""
    if Path(path).suffix.lower() not in RECORD_SUFFIXES:
        raise SpecError(Problem(f"{what} path '{path}'", f"unknown extension {Path(path).suffix or '(none)'!r}; expected .csv or .parquet"))


def load_records(path: Path, schema: Schema, what: str = "records") -> Records:
    """Read ``what`` (records or a reference) from a .csv or .parquet file and check them against
    ``schema``: every variable present, numeric columns numeric. Raises ``SpecError``."""
    path = Path(path)
    where = str(path)
    check_suffix(path, what)
    if not path.is_file():
        raise SpecError(Problem(where, f"{what} file not found; expected a .csv or .parquet file"))
    frame = _read_frame(path, schema)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise SpecError(Problem(where, f"missing columns {missing}; expected the spec's variables {schema.names} (found {list(frame.columns)})"))
    if not len(frame):
        raise SpecError(Problem(where, "no records (only a header); expected one row per record"))
    header_rows = 1 if path.suffix.lower() == ".csv" else 0
    frame = frame.reset_index(drop=True)
    for name in schema.names:
        var = schema[name]
        if isinstance(var, CategoricalVariable):
            column = frame[name]
            if path.suffix.lower() == ".csv":
                frame[name] = column.mask(column == "")  # an empty cell is a missing value
            elif not pd.api.types.is_string_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
                frame[name] = column.astype(object).where(column.notna(), None).map(lambda v: v if v is None else str(v))
        else:
            values = _numeric(frame[name], name, where, header_rows)
            whole = values.notna().all() and bool(((values == np.round(values)) & (values.abs() < 2**53)).all())
            frame[name] = values.astype("int64") if isinstance(var, IntegerVariable) and whole else values
    return Records(frame, outside_domain(frame, schema), path)

