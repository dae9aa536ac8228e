"""Delivery of what the tick prepared: the configured transport, the secretariat as the failure addressee."""

from datetime import datetime
from typing import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from flows.state import CycleState
from flows.tick import EngineConfig, tick
from models.settings import Settings
from models.tables import Cycle
from notifications.outbox import deliver_due
from notifications.transports import transport_from_settings


def secretariat_addresses(session: Session, now: datetime) -> list[str]:
    """Who hears about messages that could not be delivered: the secretariat of every live cycle."""
    found: dict[str, None] = {}
    for cycle in session.exec(select(Cycle).where(Cycle.state == "live")).all():
        for person in CycleState(session, cycle).secretariat(now):
            found.setdefault(person.email)
    return list(found)


def deliver(engine: Engine, settings: Settings, now: datetime, notice: Callable[[str], None] | None = None):
    if not settings.smtp_host and notice:
        notice(f"ROUNDTABLE_SMTP_HOST is not set: messages are written to {settings.outbox_dir}/ instead of mailed")
    with Session(engine) as session:
        secretariat = secretariat_addresses(session, now)
    return deliver_due(engine, transport_from_settings(settings), now, secretariat=secretariat)


def tick_and_deliver(engine: Engine, settings: Settings, now: datetime,
                     notice: Callable[[str], None] | None = None) -> dict:
    """One tick at `now`, then delivery of what is due: the unit of work of the CLI, Prefect and the scheduler."""
    config = EngineConfig(sender=settings.sender, base_url=settings.base_url,
                          secret=settings.resolved_secret_key() or "", reply_address=settings.reply_address)
    with Session(engine, expire_on_commit=False) as session:
        report = tick(session, now, config)
    delivered = deliver(engine, settings, now, notice)
    return {"now": now.isoformat(), "opened": report.opened, "closed": report.closed, "prepared": report.prepared,
            "skipped": report.skipped, "folded": report.folded, "sent": delivered.sent,
            "retried": delivered.retried, "failed": delivered.failed}
