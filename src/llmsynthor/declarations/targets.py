"""Reading and checking target files into :class:`~llmsynthor.core.tables.Targets`.

Every table becomes a dense array with one axis per variable (:mod:`llmsynthor.core.tables`). A
categorical axis lists the variable's values in schema order; a numeric axis lists the table's
own bins (the contract), which must tile the variable's [min, max] without gaps or overlaps.
Counts are rescaled to the run's record count ``n`` so that discrepancies are "records missing
at the final size". Targets come from CSV files, inline ``cells`` or pandas DataFrames.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.consistency import diagnose, diagnose_numeric, diagnose_sparse
from ..core.errors import Problem, SpecError, os_reason
from ..core.schema import CategoricalVariable, IntegerVariable, Variable
from ..core.tables import Axis, NumericTarget, Targets, TargetTable, interval_label
from .spec import Spec, TableSpec, check_size


@dataclass(frozen=True)
class TableContext:
    """What reading a target table needs from its spec, whatever the record shape: the variables it may
    name (every level's, for shapes with levels), the spec's file (for messages) and the folder its
    files are relative to. A flat :class:`~llmsynthor.declarations.spec.Spec` is one as it is."""

    variables: Mapping[str, Variable]
    source: str
    base_dir: Path


_HALF_BIN = re.compile(r"^\s*\[\s*[-+0-9.eE]+\s*$"), re.compile(r"^\s*[-+0-9.eE]+\s*[)\]]\s*$")  # '[18' and '35)'
_INTERVAL = re.compile(r"^\s*\[\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*([\])])\s*$")
_SHARE_TOLERANCE = 1e-3
_TOTAL_RTOL = 1e-6


def _parse_interval(text: str):
    m = _INTERVAL.match(text)
    if not m:
        return None
    try:
        left, right = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    return left, right, m.group(3) == "]"


def _numeric_axis(var_name: str, var, raw_labels: list[str], where: str, problems: list[Problem]):
    """Check that a table's bins tile [min, max]; return the axis and a label -> bin index map."""
    integer = isinstance(var, IntegerVariable)
    parsed = {}
    for label in raw_labels:
        interval = _parse_interval(label)
        if interval is None:
            problems.append(Problem(where, f"column '{var_name}' has {label!r}; expected a bin written [a,b) or, for the last bin, [a,b]"))
            continue
        left, right, closed = interval
        if integer and closed:
            right, closed = right + 1, False  # [75,90] over integers is [75,91)
        if not left < right:
            problems.append(Problem(where, f"column '{var_name}' has the empty bin {label!r}; expected a < b"))
            continue
        parsed[label] = (left, right, closed)
    if not parsed:
        return None, {}
    order = sorted(parsed, key=lambda k: parsed[k][:2])
    upper = var.top
    bad = len(problems)
    first_left = parsed[order[0]][0]
    if first_left != var.min:
        problems.append(Problem(where, f"bins of '{var_name}' start at {first_left:g}; expected them to start at the variable's min {var.min:g}"))
    for prev, cur in zip(order, order[1:]):
        p_right, c_left = parsed[prev][1], parsed[cur][0]
        if parsed[prev][2]:
            problems.append(Problem(where, f"bin {prev!r} of '{var_name}' is closed on the right but is not the last bin; expected [a,b)"))
        if c_left < p_right:
            problems.append(Problem(where, f"bins {prev!r} and {cur!r} of '{var_name}' overlap; expected bins that do not share values"))
        elif c_left > p_right:
            problems.append(Problem(where, f"bins {prev!r} and {cur!r} of '{var_name}' leave a gap [{p_right:g},{c_left:g}); expected bins that tile [{var.min:g}, {var.max:g}]"))
    last_right = parsed[order[-1]][1]
    if last_right != upper:
        last = order[-1]
        a, written, closed = _parse_interval(last)  # as the user wrote it
        fix = f"'[{a:g},{var.max:g}]'" if a < var.max else f"a last bin [a,{var.max:g}] with a < {var.max:g}"
        if integer and not closed and written == var.max:
            problems.append(Problem(where, f"the last bin {last!r} of '{var_name}' leaves out the max {var.max:g} ([a,b) stops "
                                           f"before b); write the last bin closed: {fix}"))
        else:
            problems.append(Problem(where, f"bins of '{var_name}' end with {last!r}; expected them to end at the variable's max "
                                           f"{var.max:g}, the last bin closed: {fix}"))
    if len(problems) > bad:
        return None, {}
    edges = np.array([parsed[k][0] for k in order] + [last_right], dtype=float)
    labels = tuple(interval_label(parsed[k][0], parsed[k][1], var) for k in order)
    index = {k: i for i, k in enumerate(order)}
    return Axis(var_name, labels, edges), index


def _read_cells(table: TableSpec, base_dir: Path, where: str, problems: list[Problem]) -> pd.DataFrame | None:
    if table.data is not None:  # a DataFrame from Python: read like a CSV of strings
        frame = table.data.reset_index(drop=True).astype(object)
        frame = frame.where(frame.notna(), "").set_axis([str(c) for c in frame.columns], axis=1)  # missing: empty, as in a CSV
        return frame.astype(str).apply(lambda col: col.str.strip())
    if table.file is not None:
        path = table.file if table.file.is_absolute() else base_dir / table.file
        if not path.is_file():
            problems.append(Problem(where, f"target file '{path}' not found; expected a CSV with columns {table.variables + ['count']}"))
            return None
        try:
            text = path.read_text(encoding="utf-8-sig")
            reader = csv.reader(text.splitlines())
            for row in reader if "[" in text else ():  # an unquoted bin: its comma split it in two fields
                for left, right in zip(row, row[1:]):
                    if _HALF_BIN[0].match(left) and _HALF_BIN[1].match(right):
                        written = f"{left.strip()},{right.strip()}"
                        problems.append(Problem(f"{path}", f"line {reader.line_num}: the bin {written} is not in double quotes, "
                                                           f"so its comma split it into two columns; write it \"{written}\""))
                        return None
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
            problems.append(Problem(f"{path}", f"could not be read as CSV ({str(exc).strip()})"))
            return None
        except OSError as exc:
            problems.append(Problem(f"{path}", f"could not be read ({os_reason(exc)})"))
            return None
    return pd.DataFrame([{k: str(v) for k, v in row.items()} for row in table.cells or []])


def _parse_cells(table: TableSpec, index: int, spec: Spec | TableContext, problems: list[Problem], value_names: tuple[str, ...]):
    """Read a target's rows and place them on its axes: (axes, flat cell indices, values, value
    column, where), or None after recording the problems."""
    where = f"{spec.source}: targets[{index}] ('{table.label}')"
    unknown = [v for v in [*table.variables, *([table.of] if table.of else [])] if v not in spec.variables]
    if unknown:
        known = ", ".join(spec.variables)
        field = "variables" if unknown[0] in table.variables else f"{table.statistic}_of"
        problems.append(Problem(where, f"unknown variable {unknown[0]!r} in '{field}'; expected one of: {known}"))
        return None
    if table.of is not None and not spec.variables[table.of].is_numeric:
        problems.append(Problem(where, f"'{table.statistic}_of: {table.of}' names a categorical variable; expected a numeric one"))
        return None
    frame = _read_cells(table, spec.base_dir, where, problems)
    if frame is None:
        return None
    if table.file is not None:
        where = f"{spec.base_dir / table.file if not table.file.is_absolute() else table.file} (target '{table.label}')"
    value_cols = [c for c in value_names if c in frame.columns]
    missing = [v for v in table.variables if v not in frame.columns]
    extra = [c for c in frame.columns if c not in table.variables and c not in value_names]
    if missing or extra or len(value_cols) != 1:
        expected = table.variables + [" (or ".join(value_names) + ")" * (len(value_names) - 1)]
        got = list(frame.columns)
        problems.append(Problem(where, f"columns {got} do not match; expected exactly {expected}"))
        return None
    value_col = value_cols[0]
    if frame.empty:
        problems.append(Problem(where, "has no rows; expected at least one cell"))
        return None

    values = pd.to_numeric(frame[value_col], errors="coerce")
    if values.isna().any() or not np.isfinite(values).all():
        row = int((values.isna() | ~np.isfinite(values)).to_numpy().argmax())
        problems.append(Problem(where, f"row {row + 1}: {value_col} {frame[value_col].iloc[row]!r} is not a number"))
        return None
    if value_col in ("count", "share") and (values < 0).any():
        row = int((values < 0).to_numpy().argmax())
        problems.append(Problem(where, f"row {row + 1}: negative {value_col} {values.iloc[row]:g}; expected a value >= 0"))
        return None

    axes, codes, bad = [], [], len(problems)
    for name in table.variables:
        var = spec.variables[name]
        col = frame[name].str.strip()
        if isinstance(var, CategoricalVariable):
            unknown_values = sorted(set(col) - set(var.values))
            if unknown_values:
                problems.append(Problem(where, f"column '{name}' has {unknown_values[0]!r}, which is not one of the variable's values {var.values}"))
                continue
            axes.append(Axis(name, tuple(var.values)))
            codes.append(col.map({v: i for i, v in enumerate(var.values)}).to_numpy())
        else:
            axis, lookup = _numeric_axis(name, var, sorted(set(col)), where, problems)
            if axis is not None:
                axes.append(axis)
                codes.append(col.map(lookup).to_numpy())
    if len(problems) > bad:
        return None

    shape = tuple(a.size for a in axes)
    flat = np.ravel_multi_index(tuple(np.asarray(c, dtype=np.int64) for c in codes), shape) if axes else np.zeros(len(frame), dtype=np.int64)
    uniq, first, times = np.unique(flat, return_index=True, return_counts=True)
    if (times > 1).any():
        dup = frame.iloc[int(first[times > 1][0])][table.variables].to_dict()
        problems.append(Problem(where, f"the cell {dup or '(overall)'} appears more than once; expected each cell once"))
        return None
    return axes, flat, values.to_numpy(dtype=float), value_col, where


def _build_cells(table: TableSpec, index: int, spec: Spec | TableContext, problems: list[Problem]):
    """A table of counts or shares as the cells its rows give: (table, axes, flat indices, values, kind, where)."""
    parsed = _parse_cells(table, index, spec, problems, ("count", "share"))
    if parsed is None:
        return None
    axes, flat, values, value_col, where = parsed
    total = values.sum()
    if value_col == "share" and abs(total - 1.0) > _SHARE_TOLERANCE:
        problems.append(Problem(where, f"shares sum to {total:.6g}; expected 1"))
        return None
    if total <= 0:
        problems.append(Problem(where, "all cells are zero; expected a positive total"))
        return None
    return table, axes, flat, values, value_col, where


def _build_table(table: TableSpec, index: int, spec: Spec | TableContext, problems: list[Problem]):
    built = _build_cells(table, index, spec, problems)
    if built is None:
        return None
    table, axes, flat, values, value_col, where = built
    shape = tuple(a.size for a in axes)
    dense = np.zeros(int(np.prod(shape)), dtype=float)
    dense[flat] = values
    return table, axes, dense.reshape(shape), value_col, where


def _build_numeric(table: TableSpec, index: int, spec: Spec | TableContext, problems: list[Problem]):
    parsed = _parse_cells(table, index, spec, problems, ("value",))
    if parsed is None:
        return None
    axes, flat, values, _, where = parsed
    dense = np.full(int(np.prod([a.size for a in axes])), np.nan)
    dense[flat] = values
    var = spec.variables[table.of]
    if table.statistic == "mean" and ((values < var.min) | (values > var.max)).any():
        row = int(((values < var.min) | (values > var.max)).argmax())
        problems.append(Problem(where, f"row {row + 1}: mean {values[row]:g} is outside {table.of}'s range [{var.min:g}, {var.max:g}]"))
        return None
    return table, axes, dense.reshape([a.size for a in axes]), where


def read_table(table: TableSpec, index: int, spec: Spec | TableContext) -> tuple[tuple[Axis, ...], np.ndarray, str, str]:
    """One table of counts or shares read and placed on its axes: (axes, dense values, 'count' or
    'share', where), or one SpecError naming the file, the row and what was expected."""
    problems: list[Problem] = []
    built = _build_table(table, index, spec, problems)
    if built is None:
        raise SpecError(problems)
    _, axes, dense, kind, where = built
    return tuple(axes), dense, kind, where


def read_cells(table: TableSpec, index: int, spec: Spec | TableContext) -> tuple[tuple[Axis, ...], np.ndarray, np.ndarray, str, str]:
    """One table of counts or shares read as the cells its rows list, for a table too large to hold on
    every cell (zones × zones): (axes, the cells' flat indices in the axes' shape, ascending, their
    values, 'count' or 'share', where) — checked as :func:`read_table` checks it."""
    problems: list[Problem] = []
    built = _build_cells(table, index, spec, problems)
    if built is None:
        raise SpecError(problems)
    _, axes, flat, values, kind, where = built
    order = np.argsort(flat, kind="stable")
    return tuple(axes), flat[order].astype(np.int64), values[order], kind, where


def read_frame(table: TableSpec, spec: Spec | TableContext, where: str) -> pd.DataFrame:
    """A table's rows as strings, as written (file, cells or DataFrame), or SpecError naming the file."""
    problems: list[Problem] = []
    frame = _read_cells(table, spec.base_dir, where, problems)
    if frame is None:
        raise SpecError(problems)
    return frame


def load_targets(spec: Spec) -> Targets:
    """Read every target table of ``spec``; raise one SpecError listing every problem found."""
    problems: list[Problem] = []
    built = [_build_table(t, i, spec, problems) for i, t in enumerate(spec.targets) if t.statistic == "count"]
    built = [b for b in built if b is not None]
    numeric = [_build_numeric(t, i, spec, problems) for i, t in enumerate(spec.targets) if t.statistic != "count"]
    numeric = [b for b in numeric if b is not None]
    names = [b[0].label for b in built + numeric]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(Problem(spec.source, f"two target tables are named {name!r}; give them distinct 'name's"))

    count_tables = [(b[0].label, float(b[2].sum()), b[4]) for b in built if b[3] == "count"]
    n = spec.n_records
    if n is None:
        if count_tables:
            n = int(round(count_tables[0][1]))
        elif not problems:
            problems.append(Problem(f"{spec.source}: field 'n_records'", "required when no target table gives counts"))
    if not built and not problems:
        problems.append(Problem(f"{spec.source}: field 'targets'", "no table of counts; expected at least one (sums and means alone do not say who the records are)"))
    if problems:
        raise SpecError(problems)
    if spec.n_records is None:  # n comes from the tables (a given n_records was checked with the spec)
        check_size(spec, n)

    s = spec.synthesis
    tables = tuple(
        TargetTable(name=t.label, axes=tuple(axes), counts=dense / dense.sum() * n, weight=t.weight, source=where,
                    tolerance_tvd=t.tolerance_tvd or s.tolerance_tvd, tolerance_jsd=t.tolerance_jsd or s.tolerance_jsd,
                    raw_total=float(dense.sum()) if kind == "count" else None)
        for t, axes, dense, kind, where in built
    )
    population = count_tables[0][1] if count_tables else n  # sums describe the population the count tables count
    numeric_targets = tuple(
        NumericTarget(name=t.label, axes=tuple(axes), variable=t.of, statistic=t.statistic,
                      values=values * (n / population) if t.statistic == "sum" else values, weight=t.weight,
                      tolerance=t.tolerance or s.tolerance_numeric, source=where)
        for t, axes, values, where in numeric
    )
    integer = {name: isinstance(var, IntegerVariable) for name, var in spec.variables.items()}
    found = [*diagnose(tables, s.consistency_tolerance), *diagnose_numeric(tables, numeric_targets, integer, population / n),
             *diagnose_sparse(tables, n)]
    if found and s.inconsistent_targets == "stop":
        where = {t.name: t.source for t in (*tables, *numeric_targets)}
        raise SpecError([Problem(" and ".join(dict.fromkeys(where[t] for t in d.tables)), f"inconsistent targets: {d.describe()}") for d in found] + [Problem(
            f"{spec.source}: field 'synthesis.inconsistent_targets'",
            "fix the tables, or set it to 'proceed' to go on anyway — tables that disagree get a weighted compromise (their "
            "'weight's decide), a table with more cells than records gets its thin cells asked for; the run reports it")])
    return Targets(n=int(n), tables=tables, schema=spec.record_schema, inconsistencies=tuple(found), numeric=numeric_targets)
