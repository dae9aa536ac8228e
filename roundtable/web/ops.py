"""Health and metrics of a running `roundtable serve`: GET /healthz and GET /metrics (Prometheus text).

Messages by kind and outcome are read from the outbox at each scrape (the outbox is the truth, and
it also counts what other processes sent); tick duration, delivery lateness and bounces are what this
process saw. Each Ops has its own registry, so tests can build several apps in one process.
"""

import time
from datetime import datetime, timezone
from typing import Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from models.tables import Notification

LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)
TICK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _OutboxCollector:
    """roundtable_messages{kind, state}: every outbox row by kind and state (sent, failed, ready, ...)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        family = GaugeMetricFamily("roundtable_messages", "Outbox rows by message kind and state",
                                   labels=["kind", "state"])
        statement = select(Notification.kind, Notification.state, func.count()).group_by(
            Notification.kind, Notification.state)
        with self.engine.connect() as connection:
            for kind, state, count in connection.execute(statement):
                family.add_metric([kind, state], count)
        yield family


class Ops:
    """The metrics a serve process keeps, and the facts /healthz reports."""

    def __init__(self, engine: Engine, *, next_wake: Callable[[], datetime | None] = lambda: None,
                 scheduler_running: Callable[[], bool] = lambda: True):
        self.engine, self.next_wake, self.scheduler_running = engine, next_wake, scheduler_running
        self.registry = CollectorRegistry()
        self.sent = Counter("roundtable_sent", "Messages this process delivered, by kind", ["kind"],
                            registry=self.registry)
        self.outcomes = Counter("roundtable_delivery_outcomes", "Delivery attempts of this process by outcome",
                                ["outcome"], registry=self.registry)
        self.tick_seconds = Histogram("roundtable_tick_seconds", "One tick and its delivery, in seconds",
                                      buckets=TICK_BUCKETS, registry=self.registry)
        self.tick_errors = Counter("roundtable_tick_errors", "Ticks that failed", registry=self.registry)
        self.lateness = Histogram("roundtable_delivery_lateness_seconds",
                                  "From a message's due moment to its acceptance by the mail server",
                                  buckets=LATENESS_BUCKETS, registry=self.registry)
        self.bounces = Counter("roundtable_bounces", "Bounces read from the mailbox", registry=self.registry)
        self.registry.register(_OutboxCollector(engine))
        self.started_at = datetime.now(timezone.utc)
        self.last_tick_at: datetime | None = None
        self.last_error: str | None = None

    def message_sent(self, kind: str, due_at: datetime | None) -> None:
        self.sent.labels(kind).inc()
        if due_at is not None:
            self.lateness.observe(max(0.0, time.time() - due_at.timestamp()))

    def tick_done(self, summary: dict, seconds: float) -> None:
        self.tick_seconds.observe(seconds)
        for outcome in ("sent", "retried", "failed"):
            if summary.get(outcome):
                self.outcomes.labels(outcome).inc(summary[outcome])
        self.last_tick_at, self.last_error = datetime.now(timezone.utc), None

    def tick_failed(self, error: BaseException) -> None:
        self.tick_errors.inc()
        self.last_error = f"{type(error).__name__}: {error}"

    def health(self) -> tuple[bool, dict]:
        database = "ok"
        try:
            with self.engine.connect() as connection:
                connection.execute(text("select 1"))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            database = f"unreachable: {str(exc).splitlines()[0]}"
        wake = self.next_wake()
        running = self.scheduler_running()
        ok = database == "ok" and running and self.last_error is None
        return ok, {"status": "ok" if ok else "failing", "database": database, "scheduler": running,
                    "started_at": self.started_at.isoformat(),
                    "last_tick_at": self.last_tick_at.isoformat() if self.last_tick_at else None,
                    "last_error": self.last_error, "next_wake": wake.isoformat() if wake else None}

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/healthz")
        def healthz():
            ok, body = self.health()
            return JSONResponse(body, status_code=200 if ok else 503)

        @router.get("/metrics")
        def metrics():
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return router
