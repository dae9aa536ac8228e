"""The embedded scheduler: APScheduler only wakes the tick; the outbox is the truth.

It wakes at the next due moment the engine reports, and sweeps every few minutes besides (answers
arrive from outside: the web, RSVP mail). APScheduler's defaults would drop a missed wake-up and run
overlapping ticks, hence misfire_grace_time=None, coalesce=True, max_instances=1 (DESIGN §4); the wake
and the sweep are two jobs, so a lock keeps them from ticking at the same time.
"""

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.tick import next_due

JOB_DEFAULTS = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
RETRY_AFTER_ERROR = timedelta(seconds=30)
WAKE_SLACK = timedelta(seconds=0.8)

log = logging.getLogger("roundtable.scheduler")


class EmbeddedScheduler:
    def __init__(self, engine: Engine, run_tick: Callable[[datetime], object], *, sweep: timedelta = timedelta(minutes=5),
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.engine, self.run_tick, self.clock = engine, run_tick, clock
        self.scheduler = BackgroundScheduler(job_defaults=JOB_DEFAULTS, timezone=timezone.utc)
        self.scheduler.add_job(self._wake, IntervalTrigger(seconds=sweep.total_seconds()), id="sweep")
        self._ticking = threading.Lock()

    def start(self) -> None:
        self.scheduler.start()
        self.wake_now()

    def wake_now(self) -> None:
        """Tick as soon as possible (at start; after the mailbox brought answers)."""
        self._plan(self.clock())

    def every(self, seconds: float, job: Callable[[], object], job_id: str) -> None:
        """Another periodic job (the mailbox poll), under the same misfire rules."""
        self.scheduler.add_job(job, IntervalTrigger(seconds=seconds), id=job_id, next_run_time=self.clock())

    def shutdown(self, wait: bool = True) -> None:
        """Stop waking; with `wait`, return once a running tick has returned."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def _plan(self, moment: datetime) -> None:
        if self.scheduler.running:
            self.scheduler.add_job(self._wake, DateTrigger(moment), id="wake", replace_existing=True)

    def _wake(self) -> None:
        if not self._ticking.acquire(blocking=False):
            return  # a tick is running: it plans the next wake when it ends
        try:
            now = self.clock()
            try:
                self.run_tick(now)
                with Session(self.engine) as session:
                    # next_due never answers less than a second after the moment it is given (no busy
                    # waking); asked from a moment 0.8 s earlier, the floor is 0.2 s after this tick, so a
                    # message due 0.3 s after the tick goes 0.3 s late, not 1 s (bench/bench_run.py (b)).
                    moment = next_due(session, now - WAKE_SLACK)
            except Exception:  # noqa: BLE001 - the scheduler must outlive a failing tick (database down)
                log.exception("tick at %s failed; trying again in %s", now.isoformat(), RETRY_AFTER_ERROR)
                moment = self.clock() + RETRY_AFTER_ERROR
            if moment is not None:
                self._plan(moment)
        finally:
            self._ticking.release()

    def next_wake(self) -> datetime | None:
        job = self.scheduler.get_job("wake")
        return job.next_run_time if job else None
