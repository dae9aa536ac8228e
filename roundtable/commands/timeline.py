"""`roundtable timeline`: the dated steps of a cycle definition for one planning year.

    roundtable timeline --definition cycles/gswg.yaml --year 2020 [--anchor annual_meeting=2019-11-20] [--json]

The group's time zone and closed days come from the database when it knows the group; otherwise the
settings' time zone and no closed days. The command never creates a database.
"""

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from calendars.timeline import PLANNING_YEARS, DatedStep, compute_timeline, default_anchors
from models.db import engine_for, normalise_url
from models.definition import CycleDefinition, DefinitionError, load_definition
from models.tables import WorkingGroup
from roundtable.commands.common import checked_anchors, console, err_console, fail, settings

def register(root: typer.Typer) -> None:
    """Adds this module's top-level commands to the root app."""
    root.command("timeline")(timeline)


def timeline(
    definition: Path = typer.Option(..., "--definition", help="A cycle definition, e.g. cycles/gswg.yaml."),
    year: int = typer.Option(..., "--year", help="Planning year: 2020 for the plan prepared from November 2019."),
    anchor: list[str] = typer.Option([], "--anchor", help="KEY=DATE or KEY=DATETIME (ISO 8601); repeatable."),
    as_json: bool = typer.Option(False, "--json", help="A JSON list of steps on stdout, nothing else."),
) -> None:
    """Show when each step of a cycle opens, is due, starts and ends, in the group's local time."""
    if year not in PLANNING_YEARS:
        fail(f"--year {year}: planning years run from {PLANNING_YEARS[0]} to {PLANNING_YEARS[-1]}")
    try:
        cycle = load_definition(definition)
    except DefinitionError as exc:
        _fail_with(exc.problems, f"{len(exc.problems)} problem(s) in {definition}")
    zone_name, closed_days = group_calendar(cycle.group)
    zone = ZoneInfo(zone_name)
    anchors = checked_anchors(cycle, year, anchor, zone, closed_days)  # a typo in the year is refused
    try:
        steps = compute_timeline(cycle, year, anchors, timezone=zone_name, closed_days=closed_days,
                                 source=str(definition))
    except DefinitionError as exc:
        _fail_with(exc.problems, f"the dates of {definition} contradict each other for planning year {year}")
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([step.as_json() for step in steps], ensure_ascii=False, indent=2))
        return
    _print_table(cycle, year, zone_name, anchors, steps, BusinessCalendar(closed_days))


def group_calendar(code: str) -> tuple[str, list[date]]:
    """(time zone, closed days) of the group from the database if it has the group, else the settings' zone."""
    config = settings()
    fallback = (config.timezone, [])
    try:
        url = make_url(normalise_url(config.database_url))
        if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
            return fallback  # no database yet: don't create one just to read a timeline
        engine = engine_for(config.database_url)
        if not inspect(engine).has_table(WorkingGroup.__tablename__):
            return fallback
        with Session(engine) as session:
            group = session.exec(select(WorkingGroup).where(WorkingGroup.code == code)).first()
        if group is None:
            return fallback
        ZoneInfo(group.timezone)  # a bad zone in the database falls back, with a note
        return group.timezone, [date.fromisoformat(day) for day in group.closed_days]
    except Exception as exc:  # noqa: BLE001 - the timeline is still useful without the database
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err_console.print(f"note: could not read group {code} from the database ({reason}); "
                          f"using time zone {config.timezone} and no closed days", markup=False)
        return fallback


def _fail_with(problems: list[str], summary: str) -> None:
    for line in problems:
        err_console.print(line, markup=False)
    fail(summary)


def _print_table(cycle: CycleDefinition, year: int, zone_name: str, given: dict[str, datetime],
                 steps: list[DatedStep], calendar: BusinessCalendar) -> None:
    # Without a terminal Rich would wrap at 80 columns: print wide instead (logs, pipes, CI).
    out = console if console.is_terminal else Console(highlight=False, soft_wrap=True, width=1000)
    out.print(Text(f"{cycle.title_lo}\n{cycle.title_en}\nplanning year {year}, times in {zone_name}"))
    zone = ZoneInfo(zone_name)
    for key, moment in default_anchors(cycle, year, zone, calendar.closed_days).items():
        moment = given.get(key, moment)
        spec = cycle.anchors[key]
        planned = date(year + spec.year_offset, spec.month, spec.day)
        note = ""
        if key not in given and planned != moment.date():
            reason = calendar.holiday_name(planned) or f"a {planned:%A}"
            note = f" ({planned.day} {planned:%b} is {reason}: moved to the next business day)"
        out.print(Text(f"anchor {key}: {_when(moment)}{note}" + (" (given)" if key in given else "")))
    table = Table(show_lines=True)
    for name in ("key", "kind", "title", "opens", "due", "starts", "ends", "holidays in the window"):
        table.add_column(name, overflow="fold")
    for step in steps:
        moments = [t for t in (step.opens_at, step.due_at, step.starts_at, step.ends_at) if t]
        table.add_row(Text(step.key), Text(step.kind), Text(f"{step.title_lo}\n{step.title_en}"),
                      *(Text(_when(t)) for t in (step.opens_at, step.due_at, step.starts_at, step.ends_at)),
                      Text(holiday_notes(calendar, min(moments).date(), max(moments).date())))
    out.print(table)


def _when(moment: datetime | None) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.isoformat()[-6:]}" if moment else "—"  # Wed 2019-11-13 08:30 +07:00


def holiday_notes(calendar: BusinessCalendar, first: date, last: date) -> str:
    """Holidays and closed days from first to last, runs of days joined: '13–17 Apr Lao New Year's Day'."""
    runs: list[list] = []  # [first day, last day, name]
    day = first
    while day <= last and (day - first).days <= 400:
        name = calendar.holiday_name(day, "en_US")
        if name and runs and runs[-1][1] == day - timedelta(days=1):
            runs[-1][1] = day
        elif name:
            runs.append([day, day, name])
        day += timedelta(days=1)
    return "; ".join(f"{a.day}{'' if a == b else f'–{b.day}'} {b:%b} {name}" if a.month == b.month
                     else f"{a.day} {a:%b}–{b.day} {b:%b} {name}" for a, b, name in runs)
