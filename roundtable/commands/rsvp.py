"""`roundtable rsvp ingest PATH…`: record meeting replies from .eml files, folders or Maildirs."""

from datetime import datetime, timezone
from pathlib import Path

import typer

from calendars.rsvp import ingest_replies, read_replies
from models.db import session_scope
from roundtable.commands.common import console, database, fail

app = typer.Typer(no_args_is_help=True)


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="REPLY mails: .eml/.ics files, folders of them, or Maildirs."),
) -> None:
    """Record each accept / tentative / decline; list what was unchanged or ignored, and why.
    Ignored replies do not fail the run (exit 0); a missing PATH does (exit 2, nothing written)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}; nothing written")
    replies = read_replies(paths)
    now = datetime.now(timezone.utc)  # the CLI is the edge: the only place that reads the clock
    with session_scope(database()) as session:
        report = ingest_replies(session, replies, now)
    for reply in report.recorded:
        console.print(f"recorded: {reply.attendee_email} {reply.partstat} {reply.uid} ({reply.source})", markup=False)
    for reply in report.unchanged:
        console.print(f"unchanged: {reply.attendee_email} {reply.partstat} {reply.uid} ({reply.source})",
                      markup=False)
    for reply, reason in report.ignored:
        console.print(f"ignored: {reply.source}: {reason}", markup=False)
    console.print(f"{len(report.recorded)} recorded, {len(report.unchanged)} unchanged, "
                  f"{len(report.ignored)} ignored", markup=False)
