"""The embedded scheduler wakes the tick at once, then at the next due moment the engine reports."""

import threading
from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from flows.scheduler import EmbeddedScheduler
from flows.tick import next_due, tick
from tests.engine_helpers import CONFIG, local, run, seed_people, start_gswg, step


def test_next_due_is_the_next_thing_to_do(sqlite_engine):
    with Session(sqlite_engine, expire_on_commit=False) as session:
        seed_people(session)
        start_gswg(session)
        assert next_due(session, local(2019, 10, 1, 9, 0)) == local(2019, 10, 30, 9, 0)  # the invitation opens
        run(session, local(2019, 10, 30, 9, 0))
        # the call opens on 1 November; the prepared invitations wait for delivery (ready now)
        assert next_due(session, local(2019, 10, 30, 9, 0)) == local(2019, 10, 30, 9, 0) + timedelta(seconds=1)


def test_scheduler_ticks_at_start_and_plans_the_next_wake(sqlite_engine):
    # A cycle two years ahead: after the first tick nothing is due until its meeting invitation opens.
    year = datetime.now(timezone.utc).year + 2
    with Session(sqlite_engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session, year=year, now=datetime.now(timezone.utc))
        invitation_opens = step(session, cycle, "annual_review_meeting").opens_at
    ticked = threading.Event()
    seen = []

    def run_tick(moment):
        with Session(sqlite_engine, expire_on_commit=False) as session:
            tick(session, moment, CONFIG)
        seen.append(moment)
        ticked.set()

    scheduler = EmbeddedScheduler(sqlite_engine, run_tick)
    scheduler.start()
    try:
        assert ticked.wait(10), "the scheduler did not tick at start"
        deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
        while scheduler.next_wake() != invitation_opens:
            assert datetime.now(timezone.utc) < deadline, scheduler.next_wake()
            threading.Event().wait(0.01)
        assert len(seen) == 1
        assert scheduler.scheduler.get_job("sweep").misfire_grace_time is None
    finally:
        scheduler.shutdown()
