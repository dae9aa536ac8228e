"""Running a live cycle: start it, move an anchor, tick, look at it, preview what it will send."""

import json
from datetime import datetime
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from calendars.timeline import check_definition, parse_anchor
from flows.cycle import CycleError, cancel_cycle, drop_step, live_cycle, move_anchor, reopen_step, start_cycle
from flows.delivery import tick_and_deliver
from flows.status import cycle_status, preview
from flows.tick import EngineConfig
from models.definition import DefinitionError, load_definition
from roundtable.commands.common import (checked_anchors, console, database, fail, parse_moment, progress, secret_key,
                                        settings)

app = typer.Typer(no_args_is_help=True)


def _now(value: str | None) -> datetime:
    """--now as ISO 8601 (no offset = the configured zone); the wall clock only when not given."""
    return parse_moment(value, "--now")


def _definition(path: Path):
    try:
        definition = load_definition(path)
        check_definition(definition, str(path))
        return definition
    except DefinitionError as exc:
        fail("\n".join(exc.problems))


def _anchors(definition, values: list[str], year: int | None = None) -> dict:
    """KEY=DATE anchors; with `year`, one far from the planning year is refused (as `timeline` does)."""
    zone = ZoneInfo(settings().timezone)
    if year is not None:
        return checked_anchors(definition, year, values, zone)
    try:
        return dict(parse_anchor(definition, value, zone) for value in values)
    except ValueError as exc:
        fail(str(exc))


def engine_config() -> EngineConfig:
    s = settings()
    secret = secret_key(s)
    if not secret:
        fail("no secret key for signed links: run `roundtable init` first (or set ROUNDTABLE_SECRET_KEY)")
    return EngineConfig(sender=s.sender, base_url=s.base_url, secret=secret, reply_address=s.reply_address)


def tick_summary(summary: dict) -> str:
    return (f"tick {summary['now']}: opened {summary['opened'] or '-'}, closed {summary['closed'] or '-'}; "
            f"{summary['prepared']} prepared, {summary['skipped']} skipped, {summary['folded']} folded; "
            f"{summary['sent']} sent, {summary['retried']} to retry, {summary['failed']} failed")


def _live(session: Session, year: Optional[int]):
    cycle = live_cycle(session, None, year)
    if cycle is None:
        fail("no live cycle" + (f" for {year}" if year else "") + ": start one with `roundtable cycle start`")
    return cycle


@app.command("start")
def start(definition: Path = typer.Option(..., "--definition", help="Cycle definition (YAML)."),
          year: int = typer.Option(..., "--year", min=2000, max=2100, help="Planning year (2020 = the 2020 plan)."),
          anchor: list[str] = typer.Option([], "--anchor", help="KEY=DATE, e.g. annual_meeting=2019-11-13."),
          now: Optional[str] = typer.Option(None, "--now", help="Launch moment (default: now).")):
    """Launch a live cycle: its steps, calendar entries and every planned message."""
    parsed = _definition(definition)
    anchors = _anchors(parsed, anchor, year)
    moment = _now(now)
    engine = database()
    with Session(engine, expire_on_commit=False) as session:
        try:
            cycle = start_cycle(session, parsed, year, anchors, moment, definition_path=str(definition),
                                sender=settings().sender)
        except (CycleError, DefinitionError) as exc:
            fail(str(exc))
        session.commit()
        status = cycle_status(session, cycle)
    console.print(f"Started the {parsed.group} cycle for the {year} plan (cycle {cycle.id}).")
    for step in status["steps"]:
        console.print(f"  {step['key']:<24} {step['kind']:<9} opens {step['opens_at']}  due {step['due_at']}")


@app.command("anchor")
def anchor_cmd(assignment: str = typer.Argument(..., metavar="KEY=DATE"),
               year: Optional[int] = typer.Option(None, "--year"),
               now: Optional[str] = typer.Option(None, "--now"),
               force: bool = typer.Option(False, "--force", help="Move even if an open or finished step would "
                                                                  "land in the past.")):
    """Move an anchor of the live cycle; pending messages move with it, meetings get updates."""
    moment_now = _now(now)
    engine = database()
    with Session(engine, expire_on_commit=False) as session:
        cycle = _live(session, year)
        from flows.state import CycleState

        key, moment = _anchors(CycleState(session, cycle).definition, [assignment], cycle.year).popitem()
        try:
            report = move_anchor(session, cycle, key, moment, moment_now, force=force)
        except (CycleError, DefinitionError) as exc:
            fail(str(exc))
        session.commit()
    console.print(f"Moved {key} to {moment.isoformat()}: steps moved {', '.join(report['steps_moved']) or 'none'}; "
                  f"{report['rescheduled']} pending messages rescheduled; {report['updates']} meeting updates planned.")


@app.command("reopen")
def reopen_cmd(step_key: str = typer.Argument(..., metavar="STEP"), year: Optional[int] = typer.Option(None, "--year"),
               due: Optional[str] = typer.Option(None, "--due", help="New deadline (ISO 8601; needed when the old "
                                                                      "one has passed)."),
               now: Optional[str] = typer.Option(None, "--now")):
    """Reopen a closed step (or unblock a blocked one): its unsent messages are planned again."""
    moment_now = _now(now)
    new_due = parse_moment(due, "--due", default_now=False) if due is not None else None
    engine = database()
    with Session(engine, expire_on_commit=False) as session:
        cycle = _live(session, year)
        try:
            report = reopen_step(session, cycle, step_key, moment_now, due=new_due)
        except CycleError as exc:
            fail(str(exc))
        session.commit()
    console.print(f"Reopened {step_key} (now {report['state']}, due {report['due_at']}): "
                  f"{report['replanned']} messages planned again.")


@app.command("cancel")
def cancel_cmd(year: Optional[int] = typer.Option(None, "--year"), now: Optional[str] = typer.Option(None, "--now")):
    """Cancel the live cycle: nothing more is sent but cancellations of future meetings already announced."""
    moment_now = _now(now)
    engine = database()
    with Session(engine, expire_on_commit=False) as session:
        cycle = _live(session, year)
        report = cancel_cycle(session, cycle, moment_now)
        session.commit()
    console.print(f"Cancelled cycle {cycle.id}: {report['skipped']} pending messages skipped, "
                  f"{report['cancellations']} cancellations planned.")


@app.command("drop")
def drop_cmd(step_key: str = typer.Argument(..., metavar="STEP"), year: Optional[int] = typer.Option(None, "--year"),
             now: Optional[str] = typer.Option(None, "--now")):
    """Drop a step of the live cycle; a dropped meeting sends a cancellation to every invitee."""
    moment_now = _now(now)
    engine = database()
    with Session(engine, expire_on_commit=False) as session:
        cycle = _live(session, year)
        try:
            report = drop_step(session, cycle, step_key, moment_now)
        except CycleError as exc:
            fail(str(exc))
        session.commit()
    console.print(f"Dropped {step_key}: {report['skipped']} pending messages skipped, "
                  f"{report['cancellations']} cancellations planned.")


def register(root: typer.Typer) -> None:
    @root.command("tick")
    def tick_cmd(now: Optional[str] = typer.Option(None, "--now", help="ISO 8601 moment (default: now).")):
        """One tick of the engine, then delivery of what is due."""
        moment = _now(now)
        engine_config()  # refuses to run without a secret key for the links
        console.print(tick_summary(tick_and_deliver(database(), settings(), moment, notice=progress)))

    @root.command("run")
    def run_cmd(sweep_minutes: float = typer.Option(5.0, "--sweep-minutes", min=0.1, help="Sweep interval."),
                use_prefect: bool = typer.Option(False, "--prefect", help="Run each tick as a Prefect flow.")):
        """Everything on one machine: wake at the next due moment (and every few minutes), tick, deliver."""
        import signal
        import threading
        from datetime import timedelta

        from flows.scheduler import EmbeddedScheduler

        engine_config()
        engine = database()

        def run_tick(moment):
            if use_prefect:
                from flows.prefect_flows import tick_flow

                summary = tick_flow(now=moment.isoformat())
            else:
                summary = tick_and_deliver(engine, settings(), moment)
            progress(tick_summary(summary))

        scheduler = EmbeddedScheduler(engine, run_tick, sweep=timedelta(minutes=sweep_minutes))
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        scheduler.start()
        progress(f"roundtable is running (sweep every {sweep_minutes:g} min); Ctrl-C stops it")
        stop.wait()
        scheduler.shutdown()

    @root.command("status")
    def status_cmd(as_json: bool = typer.Option(False, "--json"), year: Optional[int] = typer.Option(None, "--year")):
        """The current cycle: each step with state, times, expected and answered counts, decisions."""
        engine = database()
        with Session(engine) as session:
            status = cycle_status(session, _live_or_latest(session, year), parse_moment(None))
        if as_json:
            print(json.dumps(status, ensure_ascii=False, indent=2))
            return
        c = status["cycle"]
        console.print(f"{c['group']} — plan {c['year']} — {c['state']} (plan revision {c['plan_revision']})")
        for s in status["steps"]:
            console.print(f"  {s['key']:<24} {s['state']:<8} {s['outcome']:<10} due {s['due_at']}  "
                          f"answered {s['answered']}/{s['expected']}")
            if s.get("blocked"):
                console.print(f"      BLOCKED since {s['blocked']['since']}: {s['blocked']['reason']}")
            for d in s["decisions"]:
                console.print(f"      {d['member']}: {d['decision']} (revision {d['revision']}) {d['reason']}")
            if any(s["rsvp"].values()):
                console.print("      coming: " + ", ".join(f"{k.lower()} {len(v)}" for k, v in s["rsvp"].items()))
        for a in status["addresses"]:  # what mail came back about (mail fetch / mail ingest)
            what = f"{a['bounce']} {a['status']} {a['detail']}".strip() if a["bounce"] else f"away: {a['away_subject']}"
            console.print(f"  address {a['email']}: {what}", markup=False)

    @root.command("preview")
    def preview_cmd(now: Optional[str] = typer.Option(None, "--now"), year: Optional[int] = typer.Option(None, "--year"),
                    as_json: bool = typer.Option(False, "--json")):
        """From now on: every message that will be sent, when, to how many (a dry run)."""
        moment = _now(now)
        engine = database()
        with Session(engine) as session:
            rows = preview(session, _live(session, year), moment)
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for row in rows:
            console.print(f"{row['at']}  {row['step']:<24} {row['kind']:<18} to {row['recipients']}")
        console.print(f"{sum(r['recipients'] for r in rows)} messages planned from {moment.isoformat()}")


def _live_or_latest(session: Session, year: Optional[int]):
    from sqlmodel import select

    from models.tables import Cycle

    cycle = live_cycle(session, None, year) or session.exec(select(Cycle).order_by(Cycle.id.desc())).first()
    if cycle is None:
        fail("no cycle yet: start one with `roundtable cycle start`")
    return cycle
