"""The `roundtable` command. Each command group lives in its own module under roundtable/commands/."""

import os
import sys

import typer

from roundtable.commands import calendar, cycle, groups, init, mail, plan, roster, rsvp, simulate, timeline, web
from roundtable.commands.common import guard

app = typer.Typer(
    help="Roundtable: the annual planning cycle of a sector working group (Lao PDR Round Table Process).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(roster.app, name="roster", help="Check and import member rosters (CSV or XLSX).")
app.add_typer(groups.app, name="groups", help="Load working groups from YAML.")
app.add_typer(calendar.app, name="calendar", help="Calendar feeds (.ics).")
app.add_typer(rsvp.app, name="rsvp", help="Meeting replies (an alias of `mail ingest`).")
app.add_typer(mail.app, name="mail", help="Answers by mail: fetch from IMAP, ingest files and Maildirs.")
app.add_typer(cycle.app, name="cycle", help="Start a cycle, move its anchors.")
app.add_typer(plan.app, name="plan", help="The work plan: show it, export it (DOCX, XLSX).")
init.register(app)
cycle.register(app)
simulate.register(app)
timeline.register(app)
web.register(app)


def main() -> None:
    # Lao text must print even where the locale says ASCII (CI, cron).
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower() not in ("utf-8", "utf8"):
            stream.reconfigure(encoding="utf-8")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    guard(app)  # a database or file error is one line and exit 2, never a traceback


if __name__ == "__main__":
    main()
