"""What every command needs: the console, settings, a migrated database, clock parsing, clean failure."""

import sys
from datetime import date, datetime, timezone
from typing import NoReturn
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from models.db import engine_for, normalise_url, upgrade
from models.settings import MOMENT_YEARS, SecretKeyError, Settings, get_settings, secret_key_problems

CONSOLES = {"console": False, "err_console": True}  # name: on stderr


def __getattr__(name: str):
    """`console` and `err_console`, made on first use: importing Rich costs ~25 ms of every start, and `status`
    prints without it. Markup off: user text (file names, anchors, hints like "[KEY=DATE]") is printed as it
    is, never read as Rich markup (a stray "[/x]" crashed the console, bracketed hints vanished)."""
    if name not in CONSOLES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    made = globals()[name] = Console(stderr=CONSOLES[name], highlight=False, soft_wrap=True, markup=False)
    return made


def _stderr():
    return globals().get("err_console") or __getattr__("err_console")


def _flagged(flag: str, colour: str, message: str) -> None:
    from rich.text import Text

    _stderr().print(Text.assemble((flag, colour), " ", str(message)))


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr (plain text: callers do not escape anything), then exit `code`."""
    _flagged("error:", "red", message)
    raise SystemExit(code)


def warn(message: str) -> None:
    _flagged("warning:", "yellow", message)


_warned_for: list[Settings] = []  # the settings object already warned about (one warning per command)


def settings() -> Settings:
    try:
        config = get_settings()
    except Exception as exc:  # pydantic ValidationError names the variable
        fail(f"bad settings: {exc}")
    if not any(config is seen for seen in _warned_for):
        _warned_for[:] = [config]
        for problem in secret_key_problems(config):
            warn(problem)
    return config


def secret_key(config: Settings | None = None) -> str | None:
    """The secret key for signed links, or a clean failure when its file cannot be read."""
    try:
        return (config or settings()).resolved_secret_key()
    except SecretKeyError as exc:
        fail(str(exc))


def shown_url(url: str) -> str:
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def database(url: str | None = None) -> Engine:
    """The configured database, upgraded to the newest schema; one clear line when it cannot be used."""
    url = url or settings().database_url
    try:
        engine = engine_for(url)
        upgrade(engine)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - bad URL, unreachable server, read-only file, ...
        fail(f"database {shown_url(url)}: {database_reason(exc)}")
    return engine


def database_reason(exc: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's background links."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    if "readonly" in text.replace("-", "").replace(" ", "").lower():
        text += " (the file or its folder is read-only)"
    return text


def fail_plainly(exc: BaseException) -> None:
    """One line, exit 2, for a database or file error; anything else is raised again."""
    if isinstance(exc, SQLAlchemyError):
        fail(f"database: {database_reason(exc)}")
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        fail(f"cannot use{where}: {exc.strerror or exc}")
    raise exc


def progress(message: str) -> None:
    """A progress line that also shows without a terminal (CI logs)."""
    _stderr().print(message, markup=False)
    sys.stderr.flush()


# ---- the clock: every moment a command takes goes through here --------------------------------------

def parse_moment(value: str | None, option: str = "--now", *, default_now: bool = True) -> datetime:
    """An ISO 8601 date or date-time given on the command line (no offset = the configured zone).

    Not given at all: the wall clock (when `default_now`). Given but empty, unreadable or outside the years
    1990–2100: refused with exit 2, before anything is written (an empty --now once ran at the wall clock).
    """
    if value is None:
        if default_now:
            return datetime.now(timezone.utc)
        fail(f"{option} is required")
    text = value.strip()
    if not text:
        fail(f"{option} is empty: give an ISO 8601 date-time, e.g. 2019-11-01T09:00")
    zone = ZoneInfo(settings().timezone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 date-time (e.g. 2019-11-01T09:00)")
    check_year(moment.year, f"{option} {value!r}")
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def parse_day(value: str, option: str) -> date:
    text = (value or "").strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)")
    check_year(day.year, f"{option} {value!r}")
    return day


def check_year(year: int, what: str) -> None:
    if year not in MOMENT_YEARS:
        fail(f"{what} is out of range (years {MOMENT_YEARS[0]}–{MOMENT_YEARS[-1]})")


def checked_anchors(definition, year: int, texts: list[str], zone: ZoneInfo, closed_days=()) -> dict[str, datetime]:
    """KEY=DATE anchors, each refused when unreadable or far from the planning year (a typo in the year)."""
    from calendars.timeline import ANCHOR_TOLERANCE, default_anchors, parse_anchor

    defaults = default_anchors(definition, year, zone, closed_days)
    anchors = {}
    for text in texts:
        try:
            key, moment = parse_anchor(definition, text, zone)
        except ValueError as exc:
            fail(str(exc))
        except OverflowError:  # 0001-01-01T00:00+14:00 has no local time
            fail(f"--anchor {text!r} is out of range (years {MOMENT_YEARS[0]}–{MOMENT_YEARS[-1]})")
        if abs(moment - defaults[key]) > ANCHOR_TOLERANCE:
            fail(f"--anchor {text!r} is far from planning year {year} (its default is {defaults[key]:%Y-%m-%d})")
        anchors[key] = moment
    return anchors
