"""The outbox's insert statements compiled once per dialect (notifications.outbox._compiled) write what the
plain `session.execute(statement, values)` writes, on SQLite and PostgreSQL, and the memo keeps engines apart."""

from datetime import datetime, timezone

from sqlalchemy import select, text
from sqlmodel import Session

from models.tables import Notification, NotificationPayload
from notifications import outbox

NOW = datetime(2019, 11, 4, 3, 0, tzinfo=timezone.utc)


def _values(key: str) -> dict:
    row = Notification(key=key, cycle_id=None, step_id=None, step_key="call", member_id=None, recipient="a@example.org",
                       kind="suggestion_receipt", slot="s", state="ready", due_at=NOW, next_attempt_at=NOW,
                       message_id="<m@example.org>", subject="ຂໍ້ສະເໜີ — subject", created_at=NOW)
    return {column.name: getattr(row, column.name) for column in Notification.__table__.columns if column.name != "id"}


def _stored(session: Session, key: str) -> tuple:
    row = session.execute(select(Notification.__table__).where(Notification.__table__.c.key == key)).one()
    payload = session.execute(select(NotificationPayload.__table__.c.payload)
                              .where(NotificationPayload.__table__.c.notification_id == row.id)).scalar_one()
    return tuple(value for name, value in row._mapping.items() if name not in ("id", "key")), bytes(payload)


def test_compiled_insert_writes_what_the_plain_statement_writes(engine):
    outbox._compiled_statements.clear()
    with Session(engine) as session:
        # The plain way, as enqueue did before: the statement compiled by SQLAlchemy on every call.
        values = _values("plain")
        statement = outbox._INSERT_UNLESS_KEY_EXISTS[engine.dialect.name]
        plain_id = session.execute(statement, values).scalar_one()
        session.execute(outbox._STORE_PAYLOAD[engine.dialect.name], [{"notification_id": plain_id, "payload": b"p"}])
        assert session.execute(statement, values).scalar_one_or_none() is None  # the key exists: nothing
        # The compiled-once way, twice (the second from the memo), and its ON CONFLICT still holds.
        for _ in range(2):
            outbox.enqueue(session, payload=b"p", **_values("fast"))
        assert outbox.enqueue(session, payload=b"p", **_values("fast")) is False
        session.commit()
        assert _stored(session, "fast") == _stored(session, "plain")
        assert session.execute(text("SELECT count(*) FROM notification WHERE key = 'fast'")).scalar_one() == 1
        compiled = outbox._compiled(outbox._INSERT_UNLESS_KEY_EXISTS, session, values)
        assert str(compiled) == str(statement.compile(dialect=engine.dialect, column_keys=list(values)))
    assert all(key[1] is engine.dialect for key in outbox._compiled_statements._entries)  # keyed by this engine


def test_payload_replace_through_the_compiled_statement(engine):
    with Session(engine) as session:
        assert outbox.enqueue(session, payload=b"first", **_values("k")) is True
        row_id = session.execute(select(Notification.__table__.c.id)).scalar_one()
        outbox.store_payload(session, row_id, b"second")
        session.commit()
        assert outbox.payload_of(session, row_id) == b"second"


def test_row_values_are_the_models_values():
    cases = [{}, {"key": "k", "kind": "call"}, _values("v"), {"key": "k", "kind": "x", "bogus": 1},
             {"key": "k", "kind": "x", "cc": ["a@example.org"], "context": {"a": 1}, "state": "ready", "revision": 2}]
    for fields in cases:
        assert outbox.row_values(dict(fields)) == outbox.row_values_plain(dict(fields))
    first, second = outbox.row_values({"key": "a"}), outbox.row_values({"key": "b"})
    assert first["cc"] is not second["cc"] and first["context"] is not second["context"]  # fresh, as the model's
