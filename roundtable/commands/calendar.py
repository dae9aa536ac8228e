"""`roundtable calendar export --member EMAIL | --group CODE [--out FILE]`: a subscribable .ics feed."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from sqlmodel import Session

from calendars.feeds import UnknownGroup, UnknownMember, group_feed, member_feed
from roundtable.commands.common import console, database, fail

app = typer.Typer(no_args_is_help=True)


@app.command("export")
def export(
    member: Optional[str] = typer.Option(None, "--member", help="The feed of the member with this email."),
    group: Optional[str] = typer.Option(None, "--group", help="The feed of the working group with this code."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the feed to FILE instead of standard output."),
) -> None:
    """Every meeting and deadline of a member or a group, as one iCalendar feed (same UIDs as the invitations)."""
    if (member is None) == (group is None):
        fail("give exactly one of --member EMAIL or --group CODE")
    if out is not None and out.is_dir():
        fail(f"--out {out} is a folder: give a file name, e.g. {out / 'calendar.ics'}")
    if out is not None and not out.parent.is_dir():
        fail(f"--out {out}: the folder {out.parent} does not exist")
    now = datetime.now(timezone.utc)  # the CLI is the edge: the only place that reads the clock
    with Session(database()) as session:
        try:
            ics = member_feed(session, member, now) if member is not None else group_feed(session, group, now)
        except (UnknownMember, UnknownGroup) as exc:
            fail(str(exc))
    if out is None:
        typer.echo(ics, nl=False)  # bytes go to the binary stream: CRLF and UTF-8 kept as written
        return
    try:
        out.write_bytes(ics)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"wrote {out} ({len(ics)} bytes)", markup=False)
