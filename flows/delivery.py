"""Delivery of what the tick prepared: the configured transport, the secretariat as the failure addressee.

`tick_and_deliver` is the unit of work of the CLI, Prefect and the embedded scheduler: one tick, then
every due message, batch after batch over one connection, until nothing due is left, the time budget
is spent, or `stop()` says so (checked before each message: a stop waits only for the one in flight).
"""

import logging
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Callable, Iterator

from sqlalchemy import func, or_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.state import CycleState
from flows.tick import EngineConfig, tick
from models.settings import Settings
from models.tables import Cycle, Notification
from notifications.outbox import DeliveryReport, SentRow, deliver_due
from notifications.transports import TransientError, Transport, transport_from_settings

log = logging.getLogger("roundtable.delivery")

BATCH = 200  # rows claimed at a time: a lease covers a batch, not the whole tick
PROGRESS_EVERY = 2.0  # seconds between progress lines on long deliveries
# Ticks on PostgreSQL take this advisory lock: two workers ticking at once would both render the same
# due rows and the later write-back could turn a row another worker already sent back into `ready`.
TICK_LOCK = 0x526F756E  # "Roun"


def secretariat_addresses(session: Session, now: datetime) -> list[str]:
    """Who hears about messages that could not be delivered: the secretariat of every live cycle."""
    found: dict[str, None] = {}
    for cycle in session.exec(select(Cycle).where(Cycle.state == "live")).all():
        for person in CycleState(session, cycle).secretariat(now):
            found.setdefault(person.email)
    return list(found)


def still_due(engine: Engine, now: datetime) -> int:
    """Rendered messages waiting for delivery at `now` (what a progress line reports as left)."""
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Notification).where(
            Notification.state == "ready",
            or_(Notification.next_attempt_at <= now,
                Notification.next_attempt_at.is_(None) & (Notification.due_at <= now)))).one()


class _Watched:
    """A transport connection that remembers when it was lost (the next batch then opens a new one)."""

    def __init__(self, inner):
        self.inner, self.lost = inner, False

    def send(self, *args, **kwargs):
        try:
            return self.inner.send(*args, **kwargs)
        except TransientError as exc:
            self.lost = self.lost or exc.connection_lost
            raise

    def __getattr__(self, name):  # last_path of the file transport
        return getattr(self.inner, name)


class OneConnection:
    """A transport whose connect() hands every deliver_due call of a tick the same open connection:
    opened on first use, opened again after it was lost, closed by close()."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self._stack: ExitStack | None = None
        self._conn: _Watched | None = None

    @contextmanager
    def connect(self) -> Iterator[_Watched]:
        if self._conn is None:
            stack = ExitStack()
            self._conn = _Watched(stack.enter_context(self.transport.connect()))
            self._stack = stack
        try:
            yield self._conn
        except BaseException:
            self.close()
            raise
        if self._conn is not None and self._conn.lost:
            self.close()

    def close(self) -> None:
        stack, self._stack, self._conn = self._stack, None, None
        if stack is not None:
            try:
                stack.close()
            except (TransientError, OSError):
                pass  # the server hung up already


def _add(total: DeliveryReport, part: DeliveryReport) -> None:
    for name in ("sent", "retried", "failed", "claimed"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.failure_report_key = part.failure_report_key or total.failure_report_key


def deliver(engine: Engine, settings: Settings, now: datetime, notice: Callable[[str], None] | None = None, *,
            max_seconds: float | None = None, stop: Callable[[], bool] | None = None,
            on_sent: Callable[[SentRow, object], None] | None = None, transport: Transport | None = None,
            batch: int = BATCH) -> DeliveryReport:
    """Everything due at `now`, batch after batch on one connection, until none is left, `max_seconds`
    have passed or `stop()` is true. A batch the server took nothing of (it is down or refusing)
    ends the run: the rows wait for their retry moment. `notice` gets progress lines on long runs."""
    if not settings.smtp_host and notice:
        notice(f"ROUNDTABLE_SMTP_HOST is not set: messages are written to {settings.outbox_dir}/ instead of mailed")
    with Session(engine) as session:
        secretariat = secretariat_addresses(session, now)
    started = time.monotonic()
    deadline = None if max_seconds is None else started + max_seconds

    def halted() -> bool:
        return (stop is not None and stop()) or (deadline is not None and time.monotonic() >= deadline)

    total = DeliveryReport()
    held = OneConnection(transport or transport_from_settings(settings))
    shown = started
    try:
        while not halted():
            part = deliver_due(engine, held, now, batch=batch, secretariat=secretariat, on_sent=on_sent, stop=halted)
            _add(total, part)
            if part.claimed == 0 or (part.sent == 0 and part.retried):
                break
            if notice and time.monotonic() - shown >= PROGRESS_EVERY:
                shown = time.monotonic()
                elapsed = shown - started
                notice(f"delivering: {total.sent} sent in {elapsed:.1f} s ({total.sent / elapsed:.0f}/s), "
                       f"{still_due(engine, now)} still due")
    finally:
        held.close()
    if halted() and notice:
        left = still_due(engine, now)
        if left:
            notice(f"stopped after {time.monotonic() - started:.1f} s with {left} messages still due "
                   f"(the next tick sends them)")
    return total


def _locked_tick(engine: Engine, now: datetime, config: EngineConfig):
    with Session(engine, expire_on_commit=False) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TICK_LOCK})  # until tick commits
        elif engine.dialect.name == "sqlite":
            # Take SQLite's one writer lock before reading anything: a second tick waits here (busy_timeout)
            # and then reads what the first decided, instead of deciding the same rows from an older snapshot.
            session.execute(text("UPDATE cycle SET id = id WHERE 0"))
        return tick(session, now, config)


def tick_and_deliver(engine: Engine, settings: Settings, now: datetime,
                     notice: Callable[[str], None] | None = None, *, max_seconds: float | None = None,
                     stop: Callable[[], bool] | None = None,
                     on_sent: Callable[[SentRow, object], None] | None = None) -> dict:
    """One tick at `now`, then delivery of everything due (see deliver)."""
    config = EngineConfig(sender=settings.sender, base_url=settings.base_url,
                          secret=settings.resolved_secret_key() or "", reply_address=settings.reply_address)
    started = time.monotonic()
    report = _locked_tick(engine, now, config)
    if notice and report.prepared >= 500:
        notice(f"prepared {report.prepared} messages in {time.monotonic() - started:.1f} s")
    budget = None if max_seconds is None else max(0.0, max_seconds - (time.monotonic() - started))
    delivered = deliver(engine, settings, now, notice, max_seconds=budget, stop=stop, on_sent=on_sent)
    summary = {"now": now.isoformat(), "opened": report.opened, "closed": report.closed, "prepared": report.prepared,
               "skipped": report.skipped, "folded": report.folded, "sent": delivered.sent,
               "retried": delivered.retried, "failed": delivered.failed,
               "seconds": round(time.monotonic() - started, 3)}
    log.info("tick %s: %s prepared, %s sent, %s to retry, %s failed in %.2f s", summary["now"], summary["prepared"],
             summary["sent"], summary["retried"], summary["failed"], summary["seconds"])
    return summary
