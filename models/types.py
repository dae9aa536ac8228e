"""Column types that keep time zones honest.

SQLite drops the zone of a datetime silently; this type refuses naive values
on the way in, stores UTC, and hands back aware UTC datetimes on the way out.
"""

from datetime import datetime, timezone

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class NaiveDatetimeError(ValueError):
    pass


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime refused: {value.isoformat()} (every time must carry a zone)")
        utc = value.astimezone(timezone.utc)
        # SQLite stores text: keep it naive-UTC there so ordering by string works.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow_aware(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse a naive one."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"naive datetime refused: {value.isoformat()}")
    return value.astimezone(timezone.utc)
