"""`roundtable mail fetch` and `roundtable mail ingest PATH…`: answers by mail (flows/mail_in.py)."""

import json
from pathlib import Path
from typing import Optional

import typer

from flows.addresses import clear_address
from flows.mail_in import MailConfig, fetch_once, ingest_paths
from models.db import session_scope
from roundtable.commands.common import console, database, fail, parse_moment, settings

app = typer.Typer(no_args_is_help=True)


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))  # plain print: Rich would wrap long lines
        return
    recorded = summary["recorded"]
    for item in summary["ignored"]:
        where = item.get("file") or f"uid {item.get('uid')}"
        console.print(f"ignored: {where}: {item['reason']}", markup=False)
    console.print(f"recorded {recorded['suggestion']} suggestions, {recorded['comment']} comments, "
                  f"{recorded['rsvp']} meeting replies; {summary['bounces']} bounces, {summary['away']} away, "
                  f"{len(summary['ignored'])} ignored, {summary['needs_attention']} need attention", markup=False)


def ingest_command(paths: list[Path], as_json: bool, now: Optional[str]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}; nothing written")
    s = settings()
    summary = ingest_paths(database(), paths, parse_moment(now), MailConfig.from_settings(s))
    _print(summary.as_dict(), as_json)


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Mails: .eml files, folders of them, or Maildirs."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: recorded, ignored, bounces, ..."),
    now: Optional[str] = typer.Option(None, "--now", help="ISO 8601 moment of reading (default: now)."),
) -> None:
    """Handle each mail once: replies, meeting replies, auto-replies, bounces. Files stay where they are.
    Ignored mails do not fail the run (exit 0); a missing PATH does (exit 2, nothing written)."""
    ingest_command(paths, as_json, now)


@app.command("fetch")
def fetch(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: recorded, ignored, bounces, ..."),
    now: Optional[str] = typer.Option(None, "--now", help="ISO 8601 moment of reading (default: now)."),
) -> None:
    """Read the IMAP mailbox (ROUNDTABLE_IMAP_*) once; each message goes to Processed or Needs attention."""
    s = settings()
    if not s.imap_host:
        fail("ROUNDTABLE_IMAP_HOST is not set (also ROUNDTABLE_IMAP_USER, _PASSWORD, _PORT, _TLS, _FOLDER)")
    engine = database()
    try:
        summary = fetch_once(engine, s, parse_moment(now))
    except OSError as exc:  # refused, unreachable, TLS trouble
        fail(f"cannot reach IMAP {s.imap_host}:{s.imap_port or ''}: {exc}")
    except Exception as exc:  # noqa: BLE001 - imaplib's errors (login refused, no such folder) are one line
        if type(exc).__module__.startswith(("imaplib", "imapclient")):
            fail(f"IMAP {s.imap_host}: {exc}")
        raise
    _print(summary, as_json)


@app.command("clear")
def clear(address: str = typer.Argument(..., help="The address that bounced or was away.")) -> None:
    """Forget that ADDRESS bounced or was away (it works again): mail goes to it again."""
    with session_scope(database()) as session:
        found = clear_address(session, address)
    if not found:
        fail(f"nothing is known about {address}")
    console.print(f"{address}: mail goes to it again", markup=False)
