"""Running a live cycle: start it, move an anchor, tick, look at it, preview what it will send."""

import json
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from calendars.timeline import check_definition
from flows.cycle import CycleError, cancel_cycle, drop_step, live_cycle, move_anchor, reopen_step, start_cycle
from flows.delivery import tick_and_deliver
from flows.status import cycle_status, preview
from flows.tick import EngineConfig
from models.definition import DefinitionError, load_definition
from roundtable.commands.common import (checked_anchors, console, database, fail, parse_moment, progress, secret_key,
                                        settings)

app = typer.Typer(no_args_is_help=True)


def _definition(path: Path):
    try:
        definition = load_definition(path)
        check_definition(definition, str(path))
        return definition
    except DefinitionError as exc:
        fail("\n".join(exc.problems))


def _anchors(definition, values: list[str], year: int) -> dict:
    """KEY=DATE anchors in the configured zone; one far from the planning year is refused (as `timeline` does)."""
    return checked_anchors(definition, year, values, ZoneInfo(settings().timezone))


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
    moment = parse_moment(now)
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
    moment_now = parse_moment(now)
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
    moment_now = parse_moment(now)
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
    moment_now = parse_moment(now)
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
    moment_now = parse_moment(now)
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
    def tick_cmd(now: Optional[str] = typer.Option(None, "--now", help="ISO 8601 moment (default: now)."),
                 max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0,
                                                             help="Stop delivering after this long (default: "
                                                                  "when nothing due is left).")):
        """One tick of the engine, then delivery of everything due."""
        moment = parse_moment(now)
        engine_config()  # refuses to run without a secret key for the links
        console.print(tick_summary(tick_and_deliver(database(), settings(), moment, notice=progress,
                                                    max_seconds=max_seconds)))

    @root.command("preview")
    def preview_cmd(now: Optional[str] = typer.Option(None, "--now"), year: Optional[int] = typer.Option(None, "--year"),
                    as_json: bool = typer.Option(False, "--json")):
        """From now on: every message that will be sent, when, to how many (a dry run)."""
        moment = parse_moment(now)
        engine = database()
        with Session(engine) as session:
            rows = preview(session, _live(session, year), moment)
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for row in rows:
            console.print(f"{row['at']}  {row['step']:<24} {row['kind']:<18} to {row['recipients']}")
        console.print(f"{sum(r['recipients'] for r in rows)} messages planned from {moment.isoformat()}")

