"""Business days in Laos: weekends, Lao public holidays (holidays package), and a group's decreed days off."""

import json
import os
import re
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from importlib.metadata import distribution
from pathlib import Path
from typing import Iterable

WEEKEND = (5, 6)  # Saturday, Sunday
MAX_BUSINESS_DAYS = 10_000  # about forty years: more is a mistake, and would only spin


@cache
def _holidays_version() -> str:
    """The installed holidays package's version, from its METADATA's Version field: importlib's version()
    parses all 58 kB of it as a mail message (~4 ms of `status`, once for each year)."""
    metadata = distribution("holidays").read_text("METADATA") or ""
    return re.search(r"^Version:\s*(\S+)", metadata, re.MULTILINE).group(1)


def _cache_file(year: int, language: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "roundtable" / f"holidays-LA-{_holidays_version()}-{year}-{language}.json"


@lru_cache(maxsize=256)
def lao_holidays(year: int, language: str = "en_US") -> dict[date, str]:
    """Public holidays of one year; the language is passed so names never follow the process locale.

    Kept in a small file per holidays version, year and language: the package imports every country
    it knows on first use (~0.15-0.35 s, most of a CLI command's start on a small machine)."""
    path = _cache_file(year, language)
    try:
        return {date.fromisoformat(day): name for day, name in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError):
        pass
    import holidays

    found = dict(holidays.country_holidays("LA", years=[year], language=language))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({day.isoformat(): name for day, name in found.items()}, ensure_ascii=False),
                             encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass  # a read-only home: compute it each time
    return found


class BusinessCalendar:
    def __init__(self, closed_days: Iterable[date | str] = ()):
        # Groups store closed days as ISO strings; a string or a datetime would otherwise never match a date.
        self.closed_days = frozenset(_as_date(day) for day in closed_days)

    def holiday_name(self, day: date, language: str = "en_US") -> str | None:
        if day in self.closed_days:
            return "ວັນພັກພິເສດ" if language == "lo" else "Decreed day off"
        return lao_holidays(day.year, language).get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() not in WEEKEND and day not in self.closed_days and day not in lao_holidays(day.year)

    def next_business_day(self, day: date, include_today: bool = True) -> date:
        if not include_today:
            day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def previous_business_day(self, day: date, include_today: bool = True) -> date:
        if not include_today:
            day -= timedelta(days=1)
        while not self.is_business_day(day):
            day -= timedelta(days=1)
        return day

    def add_business_days(self, day: date, count: int) -> date:
        """`count` business days after `day` (before, when negative); 0 rolls forward to a business day."""
        if count == 0:
            return self.next_business_day(day)
        if abs(count) > MAX_BUSINESS_DAYS:
            raise ValueError(f"{count} business days is too far (at most {MAX_BUSINESS_DAYS})")
        step = 1 if count > 0 else -1
        remaining = abs(count)
        while remaining:
            day += timedelta(days=step)
            if self.is_business_day(day):
                remaining -= 1
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days follow `start` up to and including `end` (0 when end <= start)."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return count

    def next_business_morning(self, moment: datetime, at: time = time(9, 0)) -> datetime:
        """The next business day at `at` local time, strictly after `moment` (aware, in its own zone)."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment.isoformat()} has no time zone")
        candidate = datetime.combine(moment.date(), at, tzinfo=moment.tzinfo)
        day = moment.date() if candidate > moment else moment.date() + timedelta(days=1)
        return datetime.combine(self.next_business_day(day), at, tzinfo=moment.tzinfo)


def _as_date(day: date | str) -> date:
    if isinstance(day, datetime):
        return day.date()
    return day if isinstance(day, date) else date.fromisoformat(str(day))
