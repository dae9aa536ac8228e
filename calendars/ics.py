"""iCalendar builders: meeting invites (REQUEST / CANCEL), deadline events, feeds.

Pure functions from plain dataclasses to bytes; no database. Every member-facing
text is Lao first, English second. icalendar writes CRLF, folds at 75 octets
without splitting a UTF-8 character, and writes the VTIMEZONE we ask for.
An invite or deadline mailed to many members is built once and only each
member's own lines are written per call (calendars/ics_per_recipient.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache, partial
from datetime import datetime, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress

from calendars import ics_per_recipient

PRODID = "-//Roundtable//Lao PDR Round Table Process//EN"
INVITE_METHODS = ("REQUEST", "CANCEL")
DEADLINE_METHODS = ("PUBLISH", "CANCEL")
ROLES = ("CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT")


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class Attendee:
    name: str
    email: str
    role: str = "REQ-PARTICIPANT"  # CHAIR / REQ-PARTICIPANT / OPT-PARTICIPANT


@dataclass(frozen=True)
class Meeting:
    uid: str
    sequence: int
    summary_lo: str
    summary_en: str
    description_lo: str  # agenda text etc., already written by the caller
    description_en: str
    starts_at: datetime  # aware
    ends_at: datetime  # aware
    timezone: str  # DTSTART/DTEND are written with this TZID, plus its VTIMEZONE
    location: str
    organizer: Person
    url: str | None = None  # the member's own link
    alarms: tuple[timedelta, ...] = (timedelta(days=1), timedelta(hours=1))
    cancelled: bool = False  # shown as STATUS:CANCELLED in feeds


@dataclass(frozen=True)
class Deadline:
    uid: str
    sequence: int
    title_lo: str
    title_en: str
    description_lo: str
    description_en: str
    due_at: datetime  # aware; the event starts at the deadline
    timezone: str
    url: str | None = None
    duration: timedelta = timedelta(minutes=30)
    alarms: tuple[timedelta, ...] = (timedelta(days=1), timedelta(hours=2))
    cancelled: bool = False


def bilingual(lao: str, english: str) -> str:
    """One line, Lao first: "ກອງປະຊຸມປະຈຳປີ — Annual review meeting"."""
    return " — ".join(part for part in (lao.strip(), english.strip()) if part)


def bilingual_text(lao: str, english: str, url: str | None) -> str:
    """Lao block, English block, then the link; blank lines between."""
    return "\n\n".join(part for part in (lao.strip(), english.strip(), url or "") if part)


def uid_for(*parts: str, domain: str = "roundtable.local") -> str:
    """A stable UID from meaningful parts: uid_for("GSWG", "2020", "annual_meeting").

    Each part is lower-cased and anything outside [a-z0-9_.] becomes "-". A part
    with nothing usable left (e.g. Lao only) becomes a short hash of itself, so
    the result is still deterministic and distinct.
    """
    if not parts:
        raise ValueError("uid_for needs at least one part")
    cleaned = []
    for part in parts:
        slug = re.sub(r"[^a-z0-9_.]+", "-", str(part).lower()).strip("-.")
        cleaned.append(slug or "h" + hashlib.sha256(str(part).encode()).hexdigest()[:10])
    return "-".join(cleaned) + "@" + domain


def parse_method(ics: bytes) -> str:
    """The METHOD of a calendar (upper case), "" when it has none."""
    calendar = Calendar.from_ical(_as_bytes(ics))
    return str(calendar.get("METHOD", "")).upper()


def meeting_invite(
    meeting: Meeting, attendees: Sequence[Attendee], method: str = "REQUEST", *, stamp: datetime | None = None
) -> bytes:
    """An iTIP invitation (REQUEST) or cancellation (CANCEL) for any number of attendees.

    The caller keeps the UID and raises the SEQUENCE on every change; a CANCEL
    carries the same UID and STATUS:CANCELLED. `stamp` (DTSTAMP) defaults to now.
    """
    method = method.upper()
    if method not in INVITE_METHODS:
        raise ValueError(f"invite method must be one of {INVITE_METHODS}, not {method!r}")
    build = partial(_invite_calendar, meeting, attendees, method, stamp)
    if len(attendees) != 1:  # what is sent in bulk is one invitation a recipient; the rest is rare
        return build().to_ical()
    return _for_recipient(meeting, attendees, method, stamp, build)


def deadline_calendar(deadline: Deadline, method: str = "PUBLISH", *, stamp: datetime | None = None) -> bytes:
    """A deadline as a short TRANSPARENT VEVENT with alarms (Outlook ignores VTODO).

    PUBLISH adds it to the reader's calendar; CANCEL (or deadline.cancelled)
    writes STATUS:CANCELLED under the same UID.
    """
    method = method.upper()
    if method not in DEADLINE_METHODS:
        raise ValueError(f"deadline method must be one of {DEADLINE_METHODS}, not {method!r}")
    return _for_recipient(deadline, (), method, stamp, partial(_deadline_calendar, deadline, method, stamp))


def feed(
    name: str,
    meetings: Sequence[Meeting],
    deadlines: Sequence[Deadline],
    timezone: str,
    *,
    stamp: datetime | None = None,
) -> bytes:
    """A subscribable feed (METHOD:PUBLISH) of meetings and deadlines; no attendees in it."""
    events = [_meeting_event(m, stamp) for m in meetings] + [_deadline_event(d, stamp) for d in deadlines]
    calendar = _calendar_component(events, method="PUBLISH")
    calendar.calendar_name = name  # NAME and X-WR-CALNAME
    calendar.add("X-WR-TIMEZONE", _zone(timezone).key)
    return calendar.to_ical()


def for_caldav(ics: bytes) -> bytes:
    """The same calendar without METHOD: a CalDAV resource must not carry one (RFC 4791 §4.1)."""
    calendar = Calendar.from_ical(_as_bytes(ics))
    calendar.pop("METHOD", None)
    return calendar.to_ical()


# -- internals ---------------------------------------------------------------


def _invite_calendar(meeting: Meeting, attendees: Sequence[Attendee], method: str, stamp: datetime | None) -> Calendar:
    event = _meeting_event(meeting, stamp)
    event.organizer = vCalAddress.new(meeting.organizer.email, cn=meeting.organizer.name)
    event.attendees = _attendee_addresses(attendees)
    if method == "CANCEL":
        event.status = "CANCELLED"
    return _calendar_component([event], method=method)


def _deadline_calendar(deadline: Deadline, method: str, stamp: datetime | None) -> Calendar:
    event = _deadline_event(deadline, stamp)
    if method == "CANCEL":
        event.status = "CANCELLED"
    return _calendar_component([event], method=method)


def _attendee_addresses(attendees: Sequence[Attendee]) -> list[vCalAddress]:
    return [
        vCalAddress.new(a.email, cn=a.name, role=_role(a.role), partstat="NEEDS-ACTION", rsvp=True)
        for a in attendees
    ]


def _recipient_text(item: Meeting | Deadline) -> str:
    return bilingual_text(item.description_lo, item.description_en, item.url)


def _meeting_event(meeting: Meeting, stamp: datetime | None) -> Event:
    zone = _zone(meeting.timezone)
    summary = bilingual(meeting.summary_lo, meeting.summary_en)
    event = Event.new(
        uid=meeting.uid,
        sequence=meeting.sequence,
        stamp=_stamp(stamp),
        start=_aware(meeting.starts_at, "starts_at").astimezone(zone),
        end=_aware(meeting.ends_at, "ends_at").astimezone(zone),
        summary=summary,
        description=_recipient_text(meeting),
        location=meeting.location or None,
        url=meeting.url,
        status="CANCELLED" if meeting.cancelled else "CONFIRMED",
        transparency="OPAQUE",
        subcomponents=_alarms(summary, meeting.alarms),
    )
    return event


def _deadline_event(deadline: Deadline, stamp: datetime | None) -> Event:
    zone = _zone(deadline.timezone)
    due = _aware(deadline.due_at, "due_at").astimezone(zone)
    summary = bilingual(deadline.title_lo, deadline.title_en)
    event = Event.new(
        uid=deadline.uid,
        sequence=deadline.sequence,
        stamp=_stamp(stamp),
        start=due,
        end=due + deadline.duration,
        summary=summary,
        description=_recipient_text(deadline),
        url=deadline.url,
        status="CANCELLED" if deadline.cancelled else "CONFIRMED",
        transparency="TRANSPARENT",  # a reminder, not busy time
        subcomponents=_alarms(summary, deadline.alarms),
    )
    # Outlook reads its own busy status, not only TRANSP.
    event.add("X-MICROSOFT-CDO-BUSYSTATUS", "FREE")
    return event


def _alarms(description: str, offsets: Sequence[timedelta]) -> list[Alarm]:
    # Offsets are "how long before the start"; a TRIGGER before the start is negative.
    return [Alarm.new_display(description=description, trigger=-abs(offset)) for offset in offsets]


def _calendar_component(events: list[Event], method: str) -> Calendar:
    calendar = Calendar.new(prodid=PRODID, method=method, subcomponents=events)
    # Calendar.new adds a random calendar UID (RFC 7986); invites don't need one and
    # output must be deterministic for a given input.
    calendar.pop("UID", None)
    # What add_missing_timezones() does, with each VTIMEZONE built once per process: building one
    # costs 15-30 ms, and every invitation and deadline needs the same one (the output is identical).
    known = [zone for zone in map(_vtimezone, sorted(calendar.get_missing_tzids())) if zone is not None]
    calendar.subcomponents[0:0] = known
    return calendar


@lru_cache(maxsize=32)
def _vtimezone(tzid: str) -> Timezone | None:
    try:
        return Timezone.from_tzid(tzid)
    except ValueError:  # a zone icalendar cannot describe is left out, as add_missing_timezones does
        return None


def _for_recipient(
    item: Meeting | Deadline,
    attendees: Sequence[Attendee],
    method: str,
    stamp: datetime | None,
    build: Callable[[], Calendar],
) -> bytes:
    """What `build().to_ical()` gives, written from a calendar shared by every item that differs only in its
    url, with the recipient's own lines put in (calendars/ics_per_recipient.py)."""
    return ics_per_recipient.calendar_bytes(item, method, stamp, build, lambda: ics_per_recipient.recipient_lines(
        _recipient_text(item), item.url, _attendee_addresses(attendees)))


def _role(role: str) -> str:
    role = role.upper()
    if role not in ROLES:
        raise ValueError(f"attendee role must be one of {ROLES}, not {role!r}")
    return role


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # raises ZoneInfoNotFoundError on a typo: better than a floating time


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone: {value.isoformat()}")
    return value


def _stamp(stamp: datetime | None) -> datetime | None:
    # None lets icalendar write the current UTC time.
    return None if stamp is None else _aware(stamp, "stamp").astimezone(ZoneInfo("UTC"))


def _as_bytes(ics: bytes | str) -> bytes:
    # icalendar treats a one-line str as a file path; bytes never are.
    return ics.encode("utf-8") if isinstance(ics, str) else ics
