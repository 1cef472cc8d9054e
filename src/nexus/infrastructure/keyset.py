"""Keyset pagination in SQL: the one way every list query pages.

A list declares its sort key once (``Keyset((Job.created_at, Job.id),
descending=True)``); its service applies it to the filtered query with the
key of the last row seen, and gets the next ``limit`` rows in a stable
order however rows are added meanwhile (no OFFSET, which skips and repeats
under writes and slows with depth). The sort key must end in a unique
column. The HTTP side (``nexus.api.pagination``) turns keys into signed,
opaque cursors. Imports no feature package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

# Any select, of one entity or of several columns.
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Keyset:
    """The sort key of a list: its columns (the last one unique) and the direction."""

    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool = False

    def page(self, query: S, after: Sequence[Any] | None, limit: int) -> S:
        """``query`` ordered by the key, from just after ``after``, at most ``limit`` rows."""
        order = [column.desc() if self.descending else column.asc() for column in self.columns]
        if after is not None:
            key, seen = tuple_(*self.columns), tuple_(*after)
            query = query.where(key < seen if self.descending else key > seen)
        return query.order_by(*order).limit(limit)

    def key(self, row: Any) -> tuple[Any, ...]:
        """The sort-key values of ``row`` (a mapped object)."""
        return tuple(getattr(row, column.key) for column in self.columns)

    @property
    def types(self) -> tuple[type, ...]:
        """The Python type of each key column, to read a key back from JSON."""
        return tuple(column.type.python_type for column in self.columns)
