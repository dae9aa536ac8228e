"""`roundtable plan show|export`: the work plan of a cycle, on the terminal or as a DOCX / XLSX document."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from sqlmodel import Session, select

from flows import plan as plans
from flows.documents import FORMATS, plan_model, render
from flows.state import CycleState
from models.tables import Cycle, WorkingGroup
from roundtable.commands.common import console, database, fail

app = typer.Typer(no_args_is_help=True)


def _cycle(session: Session, group: str | None, year: int | None) -> Cycle:
    """The newest cycle (live or finished) of the group and year asked for."""
    query = select(Cycle).join(WorkingGroup, WorkingGroup.id == Cycle.group_id)
    if group:
        query = query.where(WorkingGroup.code == group.upper())
    if year:
        query = query.where(Cycle.year == year)
    cycle = session.exec(query.order_by(Cycle.year.desc(), Cycle.id.desc())).first()
    if cycle is None:
        wanted = " ".join(part for part in (group and f"group {group.upper()}", year and f"year {year}") if part)
        fail(f"no cycle{' for ' + wanted if wanted else ''}: start one with `roundtable cycle start`")
    return cycle


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="The file to write."),
    fmt: str = typer.Option(..., "--format", help="docx or xlsx."),
    group: Optional[str] = typer.Option(None, "--group", help="The group's code (default: the newest cycle's)."),
    year: Optional[int] = typer.Option(None, "--year", help="The plan year (default: the newest)."),
    draft: bool = typer.Option(False, "--draft", help="The draft plan (as sent for comments), not the work plan."),
) -> None:
    """Write the cycle's work plan (current revision) as a DOCX or XLSX document. Nothing is stored or sent."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        fail(f"--format must be docx or xlsx, not {fmt!r}")
    now = datetime.now(timezone.utc)  # the CLI is the edge: the only place that reads the clock
    with Session(database()) as session:
        cycle = _cycle(session, group, year)
        cs = CycleState(session, cycle)
        content = render(plan_model(cs, "draft_plan" if draft else "work_plan", cycle.plan_revision, now), fmt, now)
        count = len(plans.activities(session, cycle.id))
        label = f"{cs.group.code} {cycle.year} revision {cycle.plan_revision}"
    try:
        out.write_bytes(content)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    console.print(f"wrote {out} ({label}: {count} activities, {len(content)} bytes)", markup=False)


@app.command("show")
def show(
    group: Optional[str] = typer.Option(None, "--group", help="The working group's code."),
    year: Optional[int] = typer.Option(None, "--year", help="The plan year."),
) -> None:
    """The plan's activities and where the review of the suggestions stands."""
    with Session(database()) as session:
        cycle = _cycle(session, group, year)
        cs = CycleState(session, cycle)
        counts = plans.review_counts(session, cycle.id)
        console.print(f"{cs.group.code} {cycle.year} plan, revision {cycle.plan_revision}: "
                      f"suggestions accepted {counts['accepted']}, merged {counts['merged']}, "
                      f"rejected {counts['rejected']}, without a disposition {counts['left']}", markup=False)
        for number, activity in enumerate(plans.activities(session, cycle.id), start=1):
            months = f"{activity.start_month:02d}" + (f"-{activity.end_month:02d}"
                                                      if activity.end_month != activity.start_month else "")
            console.print(f"{number:3d}. [{months}] {activity.group_code:5s} {activity.title_en or activity.title_lo}",
                          markup=False)
