"""The transition table, enumerated on SQLite and PostgreSQL through the one
function that moves a state: every legal move happens, every illegal one
raises and writes nothing, and a move from a state the row has left loses."""

from __future__ import annotations

import ast
from itertools import product
from pathlib import Path

import pytest
from sqlalchemy import update

from publisher.delivery import publishing
from publisher.domain.article import parse_article
from publisher.domain.errors import IllegalTransition
from publisher.domain.states import INITIAL, TRANSITIONS, State, sources_of
from publisher.store import Store
from publisher.store.models import DeliveryRow, NotificationRow
from publisher.store.transitions import born, keep, move

PACKAGE = Path(__file__).parents[2] / "publisher"


def _delivery(store: Store, channels: dict) -> int:
    article = parse_article(
        {"id": "moves", "url": "https://news.example.org/moves", "title": "Moves",
         "body_html": "<p>Body.</p>"}
    )  # fmt: skip
    return publishing.publish(article, store, channels).to_enqueue[0].delivery_id


def _put(store: Store, delivery_id: int, state: State) -> None:
    """Test set-up only: place the row in `state` without going through the table."""
    with store.session() as session, session.begin():
        session.execute(
            update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(state=str(state))
        )


def test_every_pair_of_states_moves_exactly_as_the_table_says(store: Store, channels: dict) -> None:
    delivery_id = _delivery(store, channels)
    legal = illegal = 0
    for source, target in product(State, State):
        _put(store, delivery_id, source)
        with store.session() as session, session.begin():
            if target in TRANSITIONS[source]:
                moved = move(
                    session, DeliveryRow, target,
                    where=[DeliveryRow.id == delivery_id], source=source,
                )  # fmt: skip
                assert [row.id for row in moved] == [delivery_id], (source, target)
                legal += 1
            else:
                with pytest.raises(IllegalTransition):
                    move(
                        session, DeliveryRow, target,
                        where=[DeliveryRow.id == delivery_id], source=source,
                    )  # fmt: skip
                illegal += 1
        expected = target if target in TRANSITIONS[source] else source
        assert store.delivery(delivery_id).state == expected, (source, target)
    assert legal == sum(len(t) for t in TRANSITIONS.values()) and legal + illegal == len(State) ** 2


def test_a_move_from_a_state_the_row_has_left_does_not_happen(store: Store, channels: dict) -> None:
    delivery_id = _delivery(store, channels)
    for target in State:
        for source, now_in in product(sources_of(target), State):
            if now_in == source:
                continue
            _put(store, delivery_id, now_in)
            with store.session() as session, session.begin():
                moved = move(
                    session, DeliveryRow, target,
                    where=[DeliveryRow.id == delivery_id], source=source,
                )  # fmt: skip
            assert moved == [], (source, now_in, target)
            assert store.delivery(delivery_id).state == now_in


def test_without_a_source_a_move_takes_any_legal_one_and_only_those(
    store: Store, channels: dict
) -> None:
    delivery_id = _delivery(store, channels)
    for source, target in product(State, State):
        _put(store, delivery_id, source)
        with store.session() as session, session.begin():
            moved = move(session, DeliveryRow, target, where=[DeliveryRow.id == delivery_id])
        assert bool(moved) == (target in TRANSITIONS[source]), (source, target)


def test_new_rows_start_only_where_the_table_lets_them(store: Store) -> None:
    for state in State:
        row = NotificationRow()
        if state in INITIAL:
            assert born(row, state).state == state
        else:
            with pytest.raises(IllegalTransition):
                born(row, state)


def test_moves_and_keeps_refuse_to_write_the_state_on_the_side(
    store: Store, channels: dict
) -> None:
    delivery_id = _delivery(store, channels)
    with store.session() as session, session.begin():
        with pytest.raises(ValueError):
            move(session, DeliveryRow, State.SENDING, where=[], values={"state": "delivered"})
        with pytest.raises(ValueError):
            keep(session, DeliveryRow, State.PENDING, where=[], values={"state": "delivered"})
        assert keep(
            session, DeliveryRow, State.PENDING,
            where=[DeliveryRow.id == delivery_id], values={"last_error": "kept"},
        )  # fmt: skip
        assert not keep(
            session, DeliveryRow, State.FAILED,
            where=[DeliveryRow.id == delivery_id], values={"last_error": "not kept"},
        )  # fmt: skip
    row = store.delivery(delivery_id)
    assert row.state == State.PENDING and row.last_error == "kept"


LEDGERS = {"DeliveryRow", "NotificationRow"}


def _updates_a_ledger(call: ast.Call) -> bool:
    """`update(DeliveryRow)….values(…)`: the chain starts at an UPDATE of a ledger table."""
    node: ast.AST = call.func
    while isinstance(node, ast.Attribute | ast.Call):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "update":
                return any(isinstance(a, ast.Name) and a.id in LEDGERS for a in node.args)
            node = node.func
        else:
            node = node.value
    return False


def _state_writes(tree: ast.AST) -> list[int]:
    """Lines that assign `<row>.state`, or pass `state=` to `.values()` of an UPDATE
    of the deliveries or notifications (the syndication runs keep a ledger of their
    own, outside the delivery state machine)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                parts = target.elts if isinstance(target, ast.Tuple) else [target]
                if any(isinstance(p, ast.Attribute) and p.attr == "state" for p in parts):
                    lines.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "state" for k in node.keywords)
            and _updates_a_ledger(node)
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_but_transitions_writes_a_state() -> None:
    writers = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
        and (lines := _state_writes(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert writers == {"store/transitions.py": writers.get("store/transitions.py", [])}
    assert writers["store/transitions.py"]  # the check finds the one writer it allows
