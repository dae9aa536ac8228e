"""The outbox: enqueue (idempotent), claim (atomic, leased), deliver (retry, backoff, failure report).

Guarantee: a row's outcome is committed before the server is asked to accept the next message,
so a crash resends at most the message that was in flight, with the same Message-ID (it derives
from the key).
"""

import hashlib
import logging
import re
from collections import deque, namedtuple
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sqlalchemy import Integer, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Compiled, Connection, Engine
from sqlmodel import Session

from models.memo import Memo
from models.tables import Notification, NotificationPayload
from notifications.compose import build_message, message_id_for
from notifications.kinds import kind_of
from notifications.render import Rendered, render_message
from notifications.sender import sender_domain
from notifications.transports import PermanentError, Refused, TransientError, Transport

log = logging.getLogger("roundtable.outbox")

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)
MAX_ATTEMPTS = 10  # 1+2+4+...+120 minutes: about eight hours of trying before giving up
DEFAULT_LEASE = timedelta(minutes=5)
FAILURE_REPORT = "failure_report"


def backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: 1, 2, 4, 8 … minutes, capped."""
    return min(BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20), BACKOFF_CAP)  # 2**20 min > any cap


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    claimed: int = 0
    failure_report_key: str | None = None  # the report row enqueued by this call, if any


_DIALECTS = (("postgresql", postgresql), ("sqlite", sqlite))
_INSERT_UNLESS_KEY_EXISTS = {  # built once per dialect; values are bound per call
    name: dialect.insert(Notification.__table__).on_conflict_do_nothing(index_elements=["key"])
    .returning(Notification.__table__.c.id)
    for name, dialect in _DIALECTS
}
_PAYLOADS = NotificationPayload.__table__
_STORE_PAYLOAD = {
    name: (lambda insert: insert.on_conflict_do_update(index_elements=["notification_id"],
                                                       set_={"payload": insert.excluded.payload}))(
        dialect.insert(_PAYLOADS))
    for name, dialect in _DIALECTS
}


def enqueue(session: Session, *, payload: bytes | None = None, **fields) -> bool:
    """Insert a Notification (and its `payload`, when given) unless its key exists; True if this
    call inserted it.

    Race-safe on both engines (INSERT … ON CONFLICT (key) DO NOTHING). The caller commits.
    """
    fields.setdefault("created_at", datetime.now(timezone.utc))  # bookkeeping only, not logic
    values = row_values(fields)
    # rowcount is unreliable with ON CONFLICT; a returned id is not
    row_id = session.connection().execute(_compiled(_INSERT_UNLESS_KEY_EXISTS, session, values), values
                                          ).scalar_one_or_none()
    if row_id is None:
        return False
    if payload is not None:
        store_payload(session, row_id, payload)
    return True


def enqueue_composed(session: Session, rendered: Rendered, *, key: str, sender: str, to: str, kind: str,
                     now: datetime, automatic: bool, cc: Sequence[str] = (), **fields) -> bytes | None:
    """A message made now rather than planned by the tick (a failure or bounce report, a blocked step, a sign-in
    link): its Message-ID from its key in the sender's domain, composed, and put in the outbox ready to send.
    `to` and `cc` may carry names; the outbox row keeps their addresses. Returns the bytes, or None when a
    message of this key is in the outbox already. The caller commits."""
    message_id = message_id_for(key, sender_domain(sender))
    payload = build_message(rendered, sender=sender, to=[to], cc=list(cc), reply_to=None, message_id=message_id,
                            auto_submitted=automatic, date=now)
    inserted = enqueue(session, payload=payload, key=key, kind=kind, recipient=parseaddr(to)[1],
                       cc=[parseaddr(address)[1] for address in cc], state="ready", due_at=now, next_attempt_at=now,
                       created_at=now, message_id=message_id, subject=rendered.subject, **fields)
    return payload if inserted else None


def row_values_plain(fields: dict) -> dict:
    """Every column's value (but the id) of a Notification made from `fields`: the model fills its defaults
    (cc=[], context={}, state, ...)."""
    row = Notification(**fields)
    return {column.name: getattr(row, column.name) for column in Notification.__table__.columns if column.name != "id"}


def row_values(fields: dict) -> dict:
    """row_values_plain without building the model (~0.2 ms an enqueue): its defaults read once from the
    model's fields, a factory's called afresh. tests/test_outbox_compiled.py proves the two equal."""
    return {name: fields[name] if name in fields else (factory() if factory else default)
            for name, default, factory in _COLUMN_DEFAULTS}


def _column_default(name: str) -> tuple:
    field = Notification.model_fields[name]
    # A required field left out (key, kind) reads as None on the model, as here.
    return name, None if field.is_required() else field.default, field.default_factory


_COLUMN_DEFAULTS = [_column_default(column.name) for column in Notification.__table__.columns if column.name != "id"]


def enqueue_many(session: Session, rows: list[dict]) -> int:
    """`enqueue` for many rows at once (complete column values, no payloads): one multi-row
    INSERT … ON CONFLICT (key) DO NOTHING. Returns how many were inserted. The caller commits."""
    if not rows:
        return 0
    statement = _INSERT_UNLESS_KEY_EXISTS[session.get_bind().dialect.name]
    return len(session.execute(statement, rows).all())  # one id per row inserted (RETURNING, not rowcount)


def store_payload(session: Session, notification_id: int, payload: bytes) -> None:
    """Set the prepared bytes of a notification (insert or replace). The caller commits."""
    store_payloads(session, {notification_id: payload})


def store_payloads(session: Session, payloads: dict[int, bytes]) -> None:
    """`store_payload` for many notifications in one executemany (the tick stores a batch at a time)."""
    if payloads:
        rows = [{"notification_id": key, "payload": payload} for key, payload in payloads.items()]
        session.connection().execute(_compiled(_STORE_PAYLOAD, session, ("notification_id", "payload")), rows)


# SQLAlchemy never caches the compiled form of an INSERT … ON CONFLICT (its dialect inserts have no cache key),
# and compiling the outbox's 22-column insert cost ~0.5 ms of every enqueue (a web answer's receipt). The
# statements are fixed, so their compiled form depends only on the dialect (the engine's own instance, kept
# in the key) and the columns given; tests/test_outbox_compiled.py proves it writes what the plain
# `session.execute(statement, values)` writes.
_compiled_statements = Memo("notifications.outbox.compiled", 64)


def _compiled(statements: dict, session: Session, columns) -> Compiled:
    dialect = session.get_bind().dialect
    keys = tuple(columns)
    statement = statements[dialect.name]
    return _compiled_statements.get((id(statement), dialect, keys),
                                    lambda: statement.compile(dialect=dialect, column_keys=list(keys)))


def payload_of(session: Session, notification_id: int) -> bytes | None:
    """The prepared bytes of a notification; None when it was never rendered."""
    return session.execute(select(_PAYLOADS.c.payload).where(_PAYLOADS.c.notification_id == notification_id)
                           ).scalar_one_or_none()


_TABLE = Notification.__table__


def _due(now):
    return or_(
        and_(Notification.state == "ready", Notification.next_attempt_at <= now),
        and_(Notification.state == "ready", Notification.next_attempt_at.is_(None), Notification.due_at <= now),
        and_(Notification.state == "sending", Notification.lease_until < now),  # a crashed worker's claim
    )


def _claim(target):
    """UPDATE … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED]) — one atomic statement on both engines.

    SQLite has no row locks (its compiler drops FOR UPDATE); its single writer makes the UPDATE atomic.
    `target`: the ORM class (rows come back as objects) or its Table (plain rows, cheaper).
    Parameters: _claim_parameters.
    """
    chosen = (select(_TABLE.c.id).where(_due(bindparam("now"))).order_by(_TABLE.c.next_attempt_at, _TABLE.c.id)
              .limit(bindparam("limit", type_=Integer)).with_for_update(skip_locked=True))
    return update(target).where(_TABLE.c.id.in_(chosen.scalar_subquery())).values(
        state="sending", lease_until=bindparam("lease_until"))


def _claim_parameters(now: datetime, limit: int, lease: timedelta) -> dict:
    return {"now": now, "limit": limit, "lease_until": now + lease}


# Built once: building the statement and its cache key cost about a millisecond per claim.
_CLAIM_OBJECTS = _claim(Notification).returning(Notification)
_CLAIM_ROWS = _claim(_TABLE).returning(*_TABLE.c)  # what on_sent's SentRow needs
# What sending and the failure report read of a row: reading every column cost 4-10 us more a row.
_CLAIM_FOR_SENDING = _claim(_TABLE).returning(*(_TABLE.c[name] for name in (
    "id", "key", "kind", "recipient", "cc", "subject", "context", "attempts", "next_attempt_at", "due_at")))


def _in_order(rows):
    return sorted(rows, key=lambda row: (row.next_attempt_at or row.due_at, row.id))


def claim_ready(session: Session, now: datetime, limit: int = 100,
                lease: timedelta = DEFAULT_LEASE) -> list[Notification]:
    """Atomically move up to `limit` due rows to `sending` under a lease; the caller commits.
    Their bytes: payload_of (deliver_due fetches them for a whole batch at once)."""
    return _in_order(session.scalars(_CLAIM_OBJECTS, _claim_parameters(now, limit, lease),
                                     execution_options={"synchronize_session": False}).all())


# What on_sent receives: the row's columns as committed after its send. A plain record, because
# building an ORM object for each delivered message cost more than writing the message did.
SentRow = namedtuple("SentRow", [column.name for column in _TABLE.columns])
# One statement for every outcome: the per-row commit is the hot path of delivery (_outcome_statement).
_RECORD_OUTCOME = (update(_TABLE).where(_TABLE.c.id == bindparam("row_id"))
                   .values(state=bindparam("state"), attempts=bindparam("attempts"), lease_until=None,
                           last_error=bindparam("last_error"), sent_at=bindparam("sent_at"),
                           next_attempt_at=bindparam("next_attempt_at")))
# An outcome is a tuple of these, in this order (_Delivery._record).
_OUTCOME_FIELDS = ("row_id", "state", "attempts", "last_error", "sent_at", "next_attempt_at")
_SENT_FIELDS = tuple(SentRow._fields.index(name)
                     for name in ("state", "attempts", "last_error", "sent_at", "lease_until"))


def _sent_row(row, attempts: int, note: str, sent_at: datetime) -> SentRow:
    """A claimed row (every column, in SentRow's order) as its sent outcome left it."""
    values = list(row)
    for index, value in zip(_SENT_FIELDS, ("sent", attempts, note, sent_at, None)):
        values[index] = value
    return SentRow._make(values)


@lru_cache(maxsize=8)
def _outcome_statement(dialect) -> tuple[str, Callable[[tuple], tuple | dict]]:
    """_RECORD_OUTCOME compiled once for this dialect, and a function that turns one outcome into its
    driver parameters: run on the DBAPI cursor, an outcome costs SQLite's UPDATE (~45 us) without
    SQLAlchemy's per-call compile-cache lookup, bind processing and execution context."""
    compiled = _RECORD_OUTCOME.compile(dialect=dialect)
    fixed = compiled.construct_params(dict.fromkeys(_OUTCOME_FIELDS))  # every parameter the SQL names
    names = compiled.positiontup or list(fixed)  # no positiontup: the driver takes named ones (psycopg)
    slots = []  # per parameter: (index in the outcome or None, its processor, the value when fixed)
    for name in names:
        processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if name in _OUTCOME_FIELDS:
            # UTCDateTime: aware -> UTC (naive text on SQLite); a batch repeats the same few instants
            slots.append((_OUTCOME_FIELDS.index(name), processor and lru_cache(maxsize=256)(processor), None))
        else:  # lease_until=None
            slots.append((None, None, processor(fixed[name]) if processor else fixed[name]))

    def parameters(outcome: tuple) -> tuple | dict:
        values = [constant if index is None else process(outcome[index]) if process else outcome[index]
                  for index, process, constant in slots]
        return tuple(values) if compiled.positiontup else dict(zip(names, values))

    return compiled.string, parameters


_PAYLOADS_OF = select(_PAYLOADS.c.notification_id, _PAYLOADS.c.payload).where(
    _PAYLOADS.c.notification_id.in_(bindparam("ids", expanding=True)))
_FROM_HEADER = re.compile(rb"^From:[ \t]*(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def envelope_sender(payload: bytes) -> str:
    """The bare address of the message's From header (bounces go back to the sender)."""
    end = payload.find(b"\r\n\r\n")  # the header ends there (no copy of the body)
    match = _FROM_HEADER.search(payload, 0, end if end >= 0 else len(payload))
    if not match:
        raise ValueError("message has no From header")
    return _address_in(match.group(1))


@lru_cache(maxsize=64)
def _address_in(header: bytes) -> str:
    """A batch has one or two senders: each From header is parsed once."""
    return parseaddr(header.replace(b"\r\n", b"").decode("ascii", "replace"))[1]


_BARE_ADDRESS = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+")


def _envelope_recipients(row) -> list[str]:
    if not row.cc and _BARE_ADDRESS.fullmatch(row.recipient):  # the usual row: one bare address
        return [row.recipient]
    return [address for _, address in getaddresses([row.recipient, *row.cc]) if address]


def _payloads(connection: Connection, rows: Sequence) -> dict[int, bytes]:
    """The claimed rows' bytes by id, in one SELECT: the claim itself leaves them untouched
    (rewriting a ~15 KB blob on every claim and outcome was most of the per-message database cost)."""
    if not rows:
        return {}
    ids = [row.id for row in rows]
    if connection.dialect.driver == "psycopg":
        # bytea in binary format: a third of the time of its hex text form (~35 vs ~105 us per 15 KB)
        with connection.connection.dbapi_connection.cursor(binary=True) as cursor:
            cursor.execute(f"SELECT notification_id, payload FROM {_PAYLOADS.name} "
                           "WHERE notification_id = ANY(%s)", (ids,))
            return dict(cursor.fetchall())
    return dict(connection.execute(_PAYLOADS_OF, {"ids": ids}).all())


class _Delivery:
    """One deliver_due call: sends claimed rows (plain result rows), records their outcomes, collects failures.

    Outcomes wait in `pending` until the next message's barrier (the transport runs it before
    the server can accept that message; SMTP: while MAIL FROM is on the wire), so the commit
    overlaps a round trip and still at most one accepted message is ever unrecorded.
    """

    def __init__(self, connection: Connection, cursor, now: datetime, on_sent, report: DeliveryReport,
                 payloads: dict[int, bytes]):
        self.connection, self.now, self.on_sent, self.report = connection, now, on_sent, report
        self._cursor = cursor  # the connection's own DBAPI cursor; autocommit: each execute commits
        self.payloads = payloads  # claimed rows' bytes by id
        self.pending: list[tuple] = []  # outcomes (_OUTCOME_FIELDS) not yet committed
        self.failures: list[tuple] = []  # (row, entry) for the failure report
        self._unannounced: list[tuple] = []  # (row, attempts, note, path): sent; on_sent not yet called
        self._outcome_sql, self._outcome_parameters = _outcome_statement(connection.dialect)

    def flush(self) -> None:
        """Commit the pending outcomes (normally a single row; autocommit: one round trip each)."""
        if self.pending:
            pending, self.pending = self.pending, []
            if len(pending) == 1:
                self._cursor.execute(self._outcome_sql, self._outcome_parameters(pending[0]))
            else:
                self._cursor.executemany(self._outcome_sql, [self._outcome_parameters(outcome) for outcome in pending])

    def settle(self) -> None:
        """Commit everything, then tell on_sent about the rows recorded as sent."""
        self.flush()
        announce, self._unannounced = self._unannounced, []
        for row, attempts, note, path in announce:
            self.on_sent(_sent_row(row, attempts, note, self.now), path)

    def send(self, conn, row) -> bool:
        """Send one claimed row; its outcome is committed at the next barrier. False: connection lost."""
        attempts = row.attempts + 1
        payload = self.payloads.get(row.id)
        try:
            if not payload:
                raise PermanentError("no prepared payload (the row was never rendered)")
            refused = conn.send(payload, envelope_sender(payload), _envelope_recipients(row),
                                kind=row.kind, barrier=self.flush)
        except PermanentError as exc:
            self.fail(row, attempts, str(exc))
            return True
        except TransientError as exc:
            self.retry(row, attempts, str(exc))
            return not exc.connection_lost
        except ValueError as exc:  # an unreadable payload will not improve with time
            self.fail(row, attempts, f"bad payload: {exc}")
            return True
        if self.pending:  # a transport that skipped the barrier: record now, late but before more
            self.flush()
        self._sent(row, attempts, refused, conn)
        return True

    def _record(self, row, state: str, attempts: int, error: str, *,
                sent_at: datetime | None = None, next_attempt_at: datetime | None = None) -> None:
        self.pending.append((row.id, state, attempts, error, sent_at, next_attempt_at or row.next_attempt_at))

    def _sent(self, row, attempts: int, refused: Refused, conn) -> None:
        note = "; ".join(f"refused {address}: {code} {reply}" for address, (code, reply) in refused.items())
        self._record(row, "sent", attempts, note, sent_at=self.now)
        self.report.sent += 1
        if self.on_sent is not None:  # last_path is built on demand: only on_sent wants it
            self._unannounced.append((row, attempts, note, getattr(conn, "last_path", None)))
        if len(self._unannounced) >= 50:  # the caller hears about sent rows during long batches too
            self.settle()
        for address, (code, reply) in refused.items():  # delivered to the others; tell the secretariat
            self._note_failure(row, f"{code} {reply}", recipient=address)

    def retry(self, row, attempts: int, error: str) -> None:
        if attempts >= MAX_ATTEMPTS:
            self.fail(row, attempts, f"gave up after {attempts} attempts: {error}")
            return
        self._record(row, "ready", attempts, error, next_attempt_at=self.now + backoff(attempts))
        self.report.retried += 1
        log.info("retry %s later (attempt %d): %s", row.key, attempts, error)

    def fail(self, row, attempts: int, error: str) -> None:
        self._record(row, "failed", attempts, error)
        self.report.failed += 1
        self._note_failure(row, error)

    def _note_failure(self, row, error: str, recipient: str | None = None) -> None:
        log.warning("delivery failed: %s to %s: %s", row.kind, recipient or row.recipient, error)
        if row.kind != FAILURE_REPORT:  # a report about an undeliverable report would loop
            self.failures.append((row, {"recipient": recipient or row.recipient, "kind": row.kind,
                                        "subject": row.subject, "error": error}))


@contextmanager
def _autocommit_connection(engine: Engine) -> Iterator[Connection]:
    """A connection where each statement is its own transaction: every statement deliver_due runs
    is atomic by itself, and an outcome costs one round trip instead of three (BEGIN/UPDATE/COMMIT).

    PostgreSQL: also synchronous_commit=off. A commit acknowledged that way survives the death of
    this process (the server holds it); only a database-server crash within ~0.2 s could lose it -
    the durability SQLite has here with WAL + synchronous=NORMAL. A lost mark means one resend,
    with the same Message-ID.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.exec_driver_sql("SET synchronous_commit TO OFF")
        try:
            yield connection
        finally:
            if postgres:  # the pooled connection serves others afterwards
                connection.exec_driver_sql("RESET synchronous_commit")


def _give_back(connection: Connection, rows: Sequence) -> None:
    """Rows claimed but never attempted go back to `ready` as they were."""
    if rows:
        connection.execute(update(_TABLE).where(_TABLE.c.id.in_([row.id for row in rows]),
                                                _TABLE.c.state == "sending")
                           .values(state="ready", lease_until=None))


def deliver_due(engine: Engine, transport: Transport, now: datetime, *, batch: int = 200,
                secretariat: Sequence[str] = (), on_sent: Callable[[SentRow, Path | None], None] | None = None,
                sender: str | None = None, stop: Callable[[], bool] | None = None) -> DeliveryReport:
    """Claim due rows and send them over ONE connection; each outcome is committed before the next
    message is accepted by the server (a crash resends at most the message in flight).

    4xx / connection trouble -> back to `ready` with exponential backoff (MAX_ATTEMPTS, then failed);
    5xx -> failed. Then one failure_report row to `secretariat` listing this call's failures (sent at
    once on the same connection when it is still up). `on_sent(row, path)` runs after a row's sent
    commit (path: the .eml file for FileTransport, else None).
    `sender` (From of the report) defaults to the From of the first failed message.
    `stop()` is asked before each message: once it says True, the rows not yet tried go back to `ready`.
    """
    with _autocommit_connection(engine) as connection:
        # Plain rows, not ORM objects: claiming is a per-message cost too.
        rows = _in_order(connection.execute(_CLAIM_ROWS if on_sent is not None else _CLAIM_FOR_SENDING,
                                            _claim_parameters(now, batch, DEFAULT_LEASE)).all())
        report = DeliveryReport(claimed=len(rows))
        if not rows:
            return report
        todo, payloads = deque(rows), _payloads(connection, rows)
        with closing(connection.connection.dbapi_connection.cursor()) as cursor:
            delivery = _Delivery(connection, cursor, now, on_sent, report, payloads)
            try:
                with transport.connect() as conn:
                    connected = True
                    while todo and connected and not (stop is not None and stop()):
                        connected = delivery.send(conn, todo.popleft())
                    delivery.settle()
                    report_row = _enqueue_failure_report(engine, delivery, secretariat, sender)
                    if report_row is not None and connected:
                        report.claimed += 1
                        delivery.send(conn, report_row)
                delivery.settle()
            except TransientError as exc:  # could not connect: every claimed row waits for a later attempt
                while todo:
                    row = todo.popleft()
                    delivery.retry(row, row.attempts + 1, str(exc))
                delivery.settle()
                _enqueue_failure_report(engine, delivery, secretariat, sender)
            finally:
                delivery.flush()  # outcomes of messages that went out are recorded whatever happened
                _give_back(connection, todo)
        return report


def _first_sender(delivery: _Delivery) -> str | None:
    """The From of the first failed message that has a readable one."""
    for row, _ in delivery.failures:
        try:
            return envelope_sender(delivery.payloads.get(row.id) or b"")
        except ValueError:
            continue
    return None


def failure_report_context(name: str, address: str, group: dict, year: int, tz: str, failures: list[dict]) -> dict:
    """The template context of a report to the secretariat about mail that did not arrive (it belongs to no step)."""
    return {
        "recipient": {"name": name or address, "name_en": name or address, "email": address, "title_lo": "",
                      "title_en": "", "role": "secretariat", "role_lo": "ກອງເລຂາ", "role_en": "Secretariat",
                      "show_role_lo": True, "show_role_en": True, "language": "lo"},
        "group": group, "year": year, "step": None, "tz": tz, "link": None, "agenda": [],
        "deadline": None, "deadline_event": False, "attachments": [],
        "extra": {"failures": failures},
    }


def _enqueue_failure_report(engine: Engine, delivery: _Delivery, secretariat: Sequence[str],
                            sender: str | None):
    """Enqueue (ready, due now) and claim the report of this call's failures; None when there is none."""
    now = delivery.now
    if not delivery.failures or not secretariat or delivery.report.failure_report_key:
        return None
    rows = [row for row, _ in delivery.failures]
    digest = hashlib.sha256("\n".join(sorted(f"{row.key}>{entry['recipient']}" for row, entry
                                             in delivery.failures)).encode("utf-8")).hexdigest()[:24]
    key = f"{FAILURE_REPORT}:{digest}"
    sender = sender or _first_sender(delivery) or secretariat[0]
    first_context = rows[0].context or {}
    to_name, to_address = parseaddr(secretariat[0])
    context = failure_report_context(
        to_name, to_address, first_context.get("group") or {"code": "Roundtable", "name_lo": "ໂຕະມົນ",
                                                           "name_en": "Roundtable"},
        first_context.get("year", now.year), first_context.get("tz", "Asia/Vientiane"),
        [entry for _, entry in delivery.failures])
    rendered = render_message(FAILURE_REPORT, context)
    with Session(engine) as session:
        payload = enqueue_composed(session, rendered, key=key, sender=sender, to=secretariat[0], cc=secretariat[1:],
                                   kind=FAILURE_REPORT, now=now, automatic=kind_of(FAILURE_REPORT).automatic,
                                   context=context)
        session.commit()
    delivery.report.failure_report_key = key
    if payload is None:
        return None
    # claimed like any other row, durably before the send (autocommit)
    row = delivery.connection.execute(update(_TABLE).where(_TABLE.c.key == key, _TABLE.c.state == "ready")
                                      .values(state="sending", lease_until=now + DEFAULT_LEASE)
                                      .returning(*_TABLE.c)).one_or_none()
    if row is not None:
        delivery.payloads[row.id] = payload
    return row
