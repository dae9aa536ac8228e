"""`roundtable rsvp ingest PATH…`: an alias of `roundtable mail ingest` (meeting replies are mail too)."""

from pathlib import Path
from typing import Optional

import typer

from roundtable.commands.mail import ingest_command

app = typer.Typer(no_args_is_help=True)


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Mails: .eml/.ics files, folders of them, or Maildirs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (as `mail ingest --json`)."),
    now: Optional[str] = typer.Option(None, "--now", help="ISO 8601 moment of reading (default: now)."),
) -> None:
    """The same as `roundtable mail ingest`: every kind of mail is told apart and recorded once."""
    ingest_command(paths, as_json, now)
