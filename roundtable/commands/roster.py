"""`roundtable roster check|import FILE`: validate a member roster (CSV or XLSX) and import it."""

from datetime import date, datetime
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from models.db import session_scope
from models.roster import (RosterChanges, RosterInvalid, RosterRefused, RosterReport, check_roster, import_roster,
                           roster_changes)
from roundtable.commands.common import console, database, err_console, fail, parse_day, settings

app = typer.Typer(no_args_is_help=True)

FILE_HELP = "A roster: CSV (UTF-8) or XLSX with columns name, email, organisation, role, group, language."


def _refuse(report: RosterReport) -> None:
    for line in report.lines():
        err_console.print(line, markup=False)  # file content may hold [brackets]
    fail(f"{len(report.problems)} problem(s) in {report.path}; nothing written")


@app.command("check")
def check(file: Path = typer.Argument(..., help=FILE_HELP)) -> None:
    """Check every row of FILE against the loaded groups; writes nothing. Exit status 2 on any problem."""
    with Session(database()) as session:
        report = check_roster(session, file)
    if not report.ok:
        _refuse(report)
    by_group = ", ".join(f"{code} {count}" for code, count in report.memberships_by_group().items())
    memberships = sum(len(entry.roles) for entry in report.entries)
    console.print(f"OK {file}: {len(report.entries)} members, {memberships} memberships ({by_group})", markup=False)


def _day(today: Optional[str]) -> date:
    if today is None:
        return datetime.now(ZoneInfo(settings().timezone)).date()
    return parse_day(today, "--today")


def _print_changes(changes: RosterChanges) -> None:
    for line in changes.lines():
        console.print(f"  {line}")


TODAY_HELP = "The day memberships start or end (YYYY-MM-DD); default: today in ROUNDTABLE_TIMEZONE."


@app.command("diff")
def diff(file: Path = typer.Argument(..., help=FILE_HELP), today: Optional[str] = typer.Option(None, help=TODAY_HELP)):
    """What importing FILE would change: memberships started (+), reopened (~) and ended (-). Writes nothing."""
    day = _day(today)
    with Session(database()) as session:
        report = check_roster(session, file)
        if not report.ok:
            _refuse(report)
        changes = roster_changes(session, report, day)
    console.print(f"{file} as of {day.isoformat()}: {len(changes.started)} to start, {len(changes.reopened)} to "
                  f"reopen, {len(changes.ended)} to end")
    _print_changes(changes)
    for reason in changes.refusals:
        console.print(f"  needs --replace: {reason}")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help=FILE_HELP),
    today: Optional[str] = typer.Option(None, help=TODAY_HELP),
    replace: bool = typer.Option(False, "--replace", help="Allow ending many memberships, or a group's last chair "
                                                          "or secretariat."),
) -> None:
    """Import FILE: all of it or, when any row is bad, nothing. Members are matched by email."""
    day = _day(today)
    try:
        with session_scope(database()) as session:
            summary = import_roster(session, file, day, replace=replace)
    except RosterInvalid as exc:
        _refuse(exc.report)
    except RosterRefused as exc:
        _print_changes(exc.changes)
        fail(f"not imported: {'; '.join(exc.changes.refusals)}. Check with `roundtable roster diff {file}`; "
             "if this is meant, import again with --replace")
    console.print(
        f"imported {file} as of {day.isoformat()}: members {summary.members_created} created, "
        f"{summary.members_updated} updated, {summary.members_unchanged} unchanged; memberships "
        f"{summary.memberships_started} started, {summary.memberships_reopened} reopened, "
        f"{summary.memberships_ended} ended",
    )
    _print_changes(summary.changes)
