"""The embedded scheduler: APScheduler only wakes the tick; the outbox is the truth.

It wakes at the next due moment the engine reports, and sweeps every few minutes besides (answers
arrive from outside: the web, RSVP mail). APScheduler's defaults would drop a missed wake-up and run
overlapping ticks, hence misfire_grace_time=None, coalesce=True, max_instances=1 (DESIGN §4).
"""

from datetime import datetime, timedelta, timezone
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.tick import next_due

JOB_DEFAULTS = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


class EmbeddedScheduler:
    def __init__(self, engine: Engine, run_tick: Callable[[datetime], object], *, sweep: timedelta = timedelta(minutes=5),
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.engine, self.run_tick, self.clock = engine, run_tick, clock
        self.scheduler = BackgroundScheduler(job_defaults=JOB_DEFAULTS, timezone=timezone.utc)
        self.scheduler.add_job(self._wake, IntervalTrigger(seconds=sweep.total_seconds()), id="sweep")

    def start(self) -> None:
        self.scheduler.start()
        self.scheduler.add_job(self._wake, DateTrigger(self.clock()), id="wake", replace_existing=True)

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)

    def _wake(self) -> None:
        now = self.clock()
        self.run_tick(now)
        with Session(self.engine) as session:
            moment = next_due(session, now)
        if moment is not None:
            self.scheduler.add_job(self._wake, DateTrigger(moment), id="wake", replace_existing=True)

    def next_wake(self) -> datetime | None:
        job = self.scheduler.get_job("wake")
        return job.next_run_time if job else None
