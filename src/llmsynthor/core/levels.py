"""Levels of linked records, as data: what every record shape is made of.

A record shape is a chain of **levels** — ``records``; ``households`` → ``persons``; later
``households`` → ``persons`` → ``trips`` — each a :class:`Level` naming its parent and the column of
its rows that points at the parent's row. **Candidates** are groups of linked records
(:class:`Linked`): one row per candidate at the top level, and at every lower level rows that name
their parent's row. A target table counts the rows of one level (``table.level``) in its cells,
seeing their ancestors' variables too (a person table may cross a person's age with its household's
size).

From these, written once for every shape:

* :func:`incidence` — [candidate, cell]: what ONE copy of each candidate adds to every cell of the
  tables (1 in its cell of a top-level table, the number of its rows at a lower level in each cell of
  a table of that level), the input of list balancing, integerizing and the constraint check;
* :func:`level_counts` — a table's counts from weighted candidates (evaluation);
* :func:`repeat_candidates` — the output of chosen candidates: a frame per level, every row
  numbered and carrying its ancestors' ids (``household_id, person_id``), as the linked files hold them.

Knows frames and tables, not LLMs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .statistics import encode
from .tables import Axis, Listed, OnAxes, TargetTable, summed, table_offsets


@dataclass(frozen=True)
class Level:
    """One level of a record shape: ``name`` is the plural noun the tables, files and messages use
    ("persons"); ``id`` the column numbering its rows in the output ("person_id"); ``parent`` the
    level its rows belong to (None at the top); ``link`` the column of its candidates' frame that
    holds the parent's row number."""

    name: str
    id: str
    parent: str | None = None
    link: str | None = None

    def __post_init__(self) -> None:
        if (self.parent is None) != (self.link is None):
            raise ValueError(f"level {self.name!r}: a parent needs a link column and a link column a parent")


RECORDS = Level("records", id="record_id")  # the one level of flat records


def chain(*levels: Level) -> tuple[Level, ...]:
    """The levels top first, each lower one's parent the level above it (checked)."""
    if not levels or levels[0].parent is not None:
        raise ValueError("the first level is the top level: no parent")
    for above, below in zip(levels, levels[1:]):
        if below.parent != above.name:
            raise ValueError(f"level {below.name!r} must have {above.name!r} as its parent, not {below.parent!r}")
    return levels


@dataclass(frozen=True)
class LevelTable(OnAxes):
    """A target table of one level (``level`` is its name): region counts, and per-zone counts when zoned.

    A sparse table (``listed``: a table over zones × zones, say) holds its region counts on its listed
    cells and its cells elsewhere (:class:`~llmsynthor.core.tables.Listed`), one value a cell; a dense
    one on every cell, in the table's shape."""

    name: str
    level: str
    axes: tuple[Axis, ...]
    region: np.ndarray  # the table's shape; a sparse table's: one value a cell of ``listed``
    zones: np.ndarray | None  # [zone, *shape], or None for a region table
    weight: float = 1.0
    source: str = ""
    listed: Listed | None = None  # a sparse table's cells

    @property
    def cells(self) -> int:
        return self.listed.size if self.listed is not None else super().cells

    def codes(self) -> tuple[np.ndarray, ...]:
        """Every cell's position on each axis, cells in order (a sparse table's cells elsewhere: −1 but on its axis ``by``)."""
        if self.listed is not None:
            return self.listed.codes()
        return tuple(c.astype(np.int64) for c in np.unravel_index(np.arange(self.cells), self.shape))

    def margin(self, variables: Sequence[str]) -> np.ndarray:
        """The region's counts summed over every other variable, axes in the order of ``variables``."""
        order = [self.variables.index(v) for v in variables]
        if self.listed is None:
            return summed(self.region, order)
        codes = self.codes()
        shape = tuple(self.axes[i].size for i in order)
        if not order:
            return np.asarray(self.region.sum())
        inside = np.logical_and.reduce([codes[i] >= 0 for i in order])  # cells elsewhere count 0
        flat = np.ravel_multi_index(tuple(codes[i][inside] for i in order), shape)
        return np.bincount(flat, weights=self.region[inside], minlength=int(np.prod(shape))).reshape(shape)


@dataclass(frozen=True)
class Linked:
    """Candidates as linked frames: ``frames[level.name]`` for each of ``levels`` (top first); a lower
    level's frame has the level's ``link`` column, the row number of its parent in the parent's frame."""

    levels: tuple[Level, ...]
    frames: Mapping[str, pd.DataFrame]

    def __post_init__(self) -> None:
        missing = [lv.name for lv in self.levels if lv.name not in self.frames]
        missing += [f"{lv.name}.{lv.link}" for lv in self.levels[1:] if lv.name in self.frames and lv.link not in self.frames[lv.name]]
        if missing:
            raise ValueError(f"candidates: missing {', '.join(missing)}; expected a frame per level with its link column")

    @property
    def top(self) -> Level:
        return self.levels[0]

    def __len__(self) -> int:
        return len(self.frames[self.top.name])

    def level(self, name: str) -> Level:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise ValueError(f"level {name!r} is not one of {', '.join(lv.name for lv in self.levels)}")

    def joined(self, name: str) -> pd.DataFrame:
        """The rows of level ``name``, each with its ancestors' variables (an ancestor's value wins
        where a name repeats: a person table reads the household's size, not a copy of it)."""
        lv = self.level(name)
        own = self.frames[name]
        if lv.parent is None:
            return own
        above = self.joined(lv.parent)
        if not above.index.equals(pd.RangeIndex(len(above))):  # the link is a row number, not an index label
            above = above.reset_index(drop=True)
        own = own.drop(columns=[c for c in above.columns if c in own.columns and c != lv.link])
        return own.join(above, on=lv.link)

    def owners(self, name: str) -> np.ndarray:
        """For each row of level ``name``, the candidate (top-level row) it belongs to."""
        lv = self.level(name)
        if lv.parent is None:
            return np.arange(len(self.frames[name]))
        return self.owners(lv.parent)[self.frames[name][lv.link].to_numpy()]


def incidence(tables: Sequence[LevelTable | TargetTable], linked: Linked) -> sparse.csr_matrix:
    """[candidate, cell of the tables in order]: what one copy of each candidate adds to every cell
    (a table without a ``level``, as flat records' are, counts the top level)."""
    offsets = table_offsets(tables)
    if not tables:
        return sparse.csr_matrix((len(linked), 0))
    rows, cols = [], []
    seen: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
    for table, start in zip(tables, offsets):
        level = getattr(table, "level", linked.top.name)  # a flat table counts the top level
        if level not in seen:
            seen[level] = (linked.joined(level), linked.owners(level))
        frame, owner = seen[level]
        flat = encode(frame, table)
        keep = flat >= 0
        rows.append(owner[keep])
        cols.append(flat[keep] + start)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(len(linked), int(offsets[-1]))).tocsr()


def level_counts(table: LevelTable, linked: Linked, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts of ``table.level``'s rows on the table's cells, each candidate weighted by ``weights`` (1 each)."""
    w = np.ones(len(linked)) if weights is None else np.asarray(weights, dtype=float)
    flat, mass = encode(linked.joined(table.level), table), w[linked.owners(table.level)]
    keep = flat >= 0
    counts = np.bincount(flat[keep], weights=mass[keep], minlength=table.cells)
    return counts if getattr(table, "listed", None) is not None else counts.reshape(table.shape)


def repeat_candidates(linked: Linked, picks: np.ndarray) -> dict[str, pd.DataFrame]:
    """The output of chosen candidates: ``picks`` are top-level rows (a candidate repeated once per
    copy). Every level's rows are numbered from 1 in order (its ``id``) and carry their ancestors' ids
    first (persons: ``household_id, person_id``); a lower level's rows follow their parent's copy in
    the order of the candidates' frame, and the link column is left out."""
    picks = np.asarray(picks, dtype=np.int64)
    top = linked.top
    frame = linked.frames[top.name].iloc[picks].reset_index(drop=True)
    frame.insert(0, top.id, np.arange(1, len(picks) + 1))
    out = {top.name: frame}
    rows, ids = picks, {top.id: frame[top.id].to_numpy()}  # the parent's copies: their rows in its frame, their ancestors' ids
    for level in linked.levels[1:]:
        candidates = linked.frames[level.name]
        order = np.argsort(candidates[level.link].to_numpy(), kind="stable")
        ordered = candidates.iloc[order]
        sizes = np.bincount(ordered[level.link].to_numpy(), minlength=len(linked.frames[level.parent]))
        starts = np.cumsum(sizes) - sizes
        times = sizes[rows]
        within = np.arange(int(times.sum())) - np.repeat(np.cumsum(times) - times, times)
        chosen = np.repeat(starts[rows], times) + within
        frame = ordered.iloc[chosen].drop(columns=[level.link]).reset_index(drop=True)
        ids = {name: np.repeat(values, times) for name, values in ids.items()}
        for k, (name, values) in enumerate(ids.items()):
            frame.insert(k, name, values)
        frame.insert(len(ids), level.id, np.arange(1, len(frame) + 1))
        ids[level.id] = frame[level.id].to_numpy()
        out[level.name] = frame
        rows = order[chosen]
    return out
