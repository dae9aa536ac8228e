"""`roundtable roster check|import FILE`: validate a member roster (CSV or XLSX) and import it."""

from datetime import date, datetime
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from sqlmodel import Session

from models.db import session_scope
from models.roster import RosterInvalid, RosterReport, check_roster, import_roster
from roundtable.commands.common import console, database, err_console, fail, settings

app = typer.Typer(no_args_is_help=True)

FILE_HELP = "A roster: CSV (UTF-8) or XLSX with columns name, email, organisation, role, group, language."


def _refuse(report: RosterReport) -> None:
    for line in report.lines():
        err_console.print(line, markup=False)  # file content may hold [brackets]
    fail(f"{len(report.problems)} problem(s) in {escape(str(report.path))}; nothing written")


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


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help=FILE_HELP),
    today: Optional[str] = typer.Option(
        None, help="The day memberships start or end (YYYY-MM-DD); default: today in ROUNDTABLE_TIMEZONE."
    ),
) -> None:
    """Import FILE: all of it or, when any row is bad, nothing. Members are matched by email."""
    try:
        day = date.fromisoformat(today) if today else datetime.now(ZoneInfo(settings().timezone)).date()
    except ValueError:
        fail(f"--today: {escape(repr(today))} is not a date (YYYY-MM-DD)")
    try:
        with session_scope(database()) as session:
            summary = import_roster(session, file, day)
    except RosterInvalid as exc:
        _refuse(exc.report)
    console.print(
        f"imported {file} as of {day.isoformat()}: members {summary.members_created} created, "
        f"{summary.members_updated} updated, {summary.members_unchanged} unchanged; memberships "
        f"{summary.memberships_started} started, {summary.memberships_reopened} reopened, "
        f"{summary.memberships_ended} ended",
        markup=False,
    )
