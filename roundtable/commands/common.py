"""What every command needs: the console, settings, a migrated database, clean failure."""

import sys
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

from rich.console import Console
from sqlalchemy.engine import Engine

from models.db import engine_for, upgrade
from models.settings import Settings, get_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", markup=True)
    raise SystemExit(code)


def settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError names the variable
        fail(f"bad settings: {exc}")


def database(url: str | None = None) -> Engine:
    """The configured database, upgraded to the newest schema."""
    engine = engine_for(url or settings().database_url)
    upgrade(engine)
    return engine


def local_moment(text: str, option: str) -> datetime:
    """An ISO 8601 moment from the command line; without an offset it is the group's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 date-time")
    zone = ZoneInfo(settings().timezone)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def progress(message: str) -> None:
    """A progress line that also shows without a terminal (CI logs)."""
    err_console.print(message, markup=False)
    sys.stderr.flush()
