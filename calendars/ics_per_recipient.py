"""One calendar a recipient, thousands of times: the fast copy of building the whole calendar (calendars/ics.py).

A tick mails the same meeting or deadline to every member; only the member's link (URL, and the end of
DESCRIPTION) and the ATTENDEE differ. Building and folding the whole calendar costs ~0.6 ms, so it is
built once per shape; each call has icalendar write only the recipient's lines and folds them the way
icalendar does, into the bytes that building the whole calendar gives. tests/test_ics_per_recipient.py
holds the two to the same bytes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from icalendar import Calendar, Event, vCalAddress
from icalendar.parser import Contentline

from models.memo import Memo

if TYPE_CHECKING:  # calendars.ics imports this module
    from calendars.ics import Deadline, Meeting

_RECIPIENT_PROPERTIES = ("ATTENDEE", "DESCRIPTION", "URL")  # of the VEVENT; VALARMs have their own DESCRIPTION
_FOLD = b"\r\n "
_CRLF = b"\r\n"
_templates = Memo("calendars.ics_per_recipient.templates", 256)  # key -> _Template


def calendar_bytes(
    item: Meeting | Deadline,
    method: str,
    stamp: datetime | None,
    build: Callable[[], Calendar],
    lines: Callable[[], dict[str, Contentline]],
) -> bytes:
    """What `build().to_ical()` gives, from a template shared by every item that differs only in its url;
    `lines()` gives the recipient's own lines (recipient_lines)."""
    if stamp is None:  # DTSTAMP is "now": nothing to share between calls
        return build().to_ical()
    # Whether there is a URL at all changes which lines exist; everything else in the key is written as is.
    key = (replace(item, url=None), item.url is None, method, stamp, _folds(item, stamp))
    try:
        hash(key)
    except TypeError:  # an unhashable field, e.g. alarms given as a list
        return build().to_ical()
    return _templates.get(key, lambda: _Template(build())).render(lines())


def _folds(item: Meeting | Deadline, stamp: datetime) -> tuple[int, ...]:
    # Two datetimes of one zone that differ only in `fold` (the hour a DST change repeats) compare and hash
    # equal, yet are different instants: written in another zone or in UTC they differ.
    return tuple(value.fold for value in (*vars(item).values(), stamp) if isinstance(value, datetime))


def recipient_lines(description: str, url: str | None, attendees: list[vCalAddress]) -> dict[str, Contentline]:
    """The recipient's DESCRIPTION, URL and ATTENDEE lines, unfolded."""
    # Set with the same property setters as ics._meeting_event / _invite_calendar, so values and escaping match.
    event = Event()
    event.description = description
    event.url = url
    event.attendees = attendees
    lines = {name: event.content_line(name, event[name]) for name in ("DESCRIPTION", "URL") if name in event}
    for address in event.attendees:  # one at most: several attendees take the whole build
        lines["ATTENDEE"] = event.content_line("ATTENDEE", address)
    return lines


class _Template:
    """A calendar's folded bytes with the VEVENT's recipient lines left open."""

    def __init__(self, calendar: Calendar):
        self._pieces: list[bytes | str] = []  # runs of shared lines, folded; the names of the open lines
        shared: list[bytes] = []
        components: list[str] = []
        # The same walk as Component.content_lines(), knowing which component each line is in.
        for name, value in calendar.property_items():
            line = calendar.content_line(name, value)
            if name == "BEGIN":
                components.append(line)
            elif name == "END":
                components.pop()
            elif components[-1] == "BEGIN:VEVENT" and name in _RECIPIENT_PROPERTIES:
                self._pieces += [b"".join(shared), name]
                shared = []
                continue
            shared.append(line.to_ical() + _CRLF)
        self._pieces.append(b"".join(shared))

    def render(self, lines: dict[str, Contentline]) -> bytes:
        return b"".join(piece if isinstance(piece, bytes) else _fold(lines[piece]) + _CRLF for piece in self._pieces)


def _fold(line: str) -> bytes:
    """Contentline(line).to_ical(): icalendar's fold, a chunk at a time rather than a character at a time.

    icalendar (7.x) fills each chunk greedily with whole characters up to 74 octets, and moves an escaping
    "\\" or "^" that would end a chunk to the start of the next one. tests/test_ics_per_recipient.py holds the two
    to the same bytes.
    """
    encoded = line.encode("utf-8")
    chunks, start = [], 0
    while len(encoded) - start > 74:
        end = start + 74
        while encoded[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: back to where the character starts
            end -= 1
        if encoded[end - 1] in b"\\^":  # an escape goes with what it escapes
            end -= 1
        chunks.append(encoded[start:end])
        start = end
    chunks.append(encoded[start:])
    return _FOLD.join(chunks)


