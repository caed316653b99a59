"""The one place a delivery's or a notification's state is written.

`move` is a compare-and-set against `publisher.domain.states.TRANSITIONS`:
one `UPDATE … WHERE <caller's rows> AND state IN <sources> [AND guard]
RETURNING …`. The caller says which states it expects the row to be in
(`source`, by default every legal source of `target`); asking for a move the
table forbids raises `IllegalTransition` before anything is written, while a
row that is no longer where the caller expected (a worker claimed it, an
editor cancelled it) simply does not move, and the caller learns so from the
empty result. Because the check and the write are one statement, two writers
racing for one row cannot both win: the database serializes the UPDATEs and
the loser's WHERE no longer matches.

New rows go through `born`, which checks their first state against the
table's `INITIAL`. `keep` changes a row's other columns while it stays in a
state the caller names (a new version written into a delivery in flight),
guarded the same way, so no writer can slip a state change past the table.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Row, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from publisher.domain.errors import IllegalTransition
from publisher.domain.states import State, is_legal, sources_of
from publisher.store.models import Base

M = TypeVar("M", bound=Base)


def move(
    session: Session,
    model: type[Base],
    target: State,
    *,
    where: Sequence[ColumnElement[bool]],
    source: State | Collection[State] | None = None,
    values: Mapping[str, Any] | None = None,
    returning: Sequence[Any] = (),
) -> list[Row[Any]]:
    """Move the rows of `model` matching `where` and in `source` to `target`.

    Returns the rows that moved (their id, then the `returning` columns, read
    in the same statement), so an empty list means nothing moved: the rows
    were not in `source` or failed the guard when the UPDATE ran.
    """
    prepared = prepare_move(
        model, target, where=where, source=source, values=values, returning=returning
    )
    return prepared.run(session)


@dataclass(frozen=True)
class PreparedMove:
    """A move written once, with `bindparam` placeholders, and run for many rows.

    Building an UPDATE costs SQLAlchemy far more CPU than SQLite takes to run
    it (a drain's batch of 32 outcomes spent ~90 % of its time building
    statements), so a move made once per row of a batch is prepared once, at
    import, checked against the table then, and run with each row's values.
    """

    statement: Any

    def run(self, session: Session, **params: Any) -> list[Row[Any]]:
        """The rows that moved, as `move` returns them."""
        return list(_connection(session).execute(self.statement, params).all())


def prepare_move(
    model: type[Base],
    target: State,
    *,
    where: Sequence[ColumnElement[bool]],
    source: State | Collection[State] | None = None,
    values: Mapping[str, Any] | None = None,
    returning: Sequence[Any] = (),
) -> PreparedMove:
    """`move`, with its rows and values left as bound parameters."""
    sources = _sources(source, target)
    if values and "state" in values:
        raise ValueError("the target state is move()'s own argument")
    table: Any = model
    return PreparedMove(
        update(table)
        .where(*where, table.state.in_([str(s) for s in sources]))
        .values(state=str(target), **dict(values or {}))
        .returning(table.id, *returning)
    )


def keep(
    session: Session,
    model: type[Base],
    state: State,
    *,
    where: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
) -> bool:
    """Change other columns of rows that are in `state` and stay there; True if any matched."""
    if "state" in values:
        raise ValueError("keep() never changes a state: use move()")
    table: Any = model
    result = _connection(session).execute(
        update(table).where(*where, table.state == str(state)).values(**values)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount) > 0


def _connection(session: Session) -> Connection:
    """The session's connection, for a plain UPDATE: these statements never need
    the ORM's bulk-update machinery (nothing in the identity map is synchronized,
    the caller reads back what it needs with RETURNING), which costs more CPU
    than the statement itself. Pending objects are flushed first, as the
    session's own `execute` would (autoflush)."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection()


def born(row: M, state: State) -> M:
    """Give a new row its first state, if the table allows a row to start there."""
    if not is_legal(None, state):
        raise IllegalTransition(None, state)
    row.state = str(state)  # type: ignore[attr-defined]
    return row


def _sources(source: State | Collection[State] | None, target: State) -> tuple[State, ...]:
    legal = sources_of(target)
    if source is None:
        return legal
    asked = (State(source),) if isinstance(source, str) else tuple(State(s) for s in source)
    for state in asked:
        if state not in legal:
            raise IllegalTransition(state, target)
    return asked
