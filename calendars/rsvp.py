"""Meeting replies: read iTIP REPLY mails (Outlook, Gmail, ...) and check who may answer.

replies_in() is pure parsing; check_reply() says whether a reply may be recorded (the
recording itself goes through flows/answers.py, from flows/mail_in.py).

Who may answer: a Member whose address matches (case-insensitive, "mailto:" stripped)
and who holds a Membership in the cycle's group or one of its direct sub-groups
(GSWG meetings involve PSI and LIO members). Membership dates are not checked yet.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from typing import TYPE_CHECKING

from sqlmodel import Session, or_, select

from models.tables import CalendarEntry, Cycle, Member, Membership, Notification, Response, Step, WorkingGroup

if TYPE_CHECKING:
    from icalendar import Calendar

ANSWERS = ("ACCEPTED", "TENTATIVE", "DECLINED")
CALENDAR_TYPES = ("text/calendar", "application/ics", "text/x-vcalendar")


@dataclass(frozen=True)
class Reply:
    uid: str
    attendee_email: str  # lower-case, no "mailto:"
    partstat: str  # ACCEPTED / DECLINED / TENTATIVE (others are ignored at ingest)
    sequence: int
    source: str  # the file it came from
    stamp: datetime | None = None  # DTSTAMP: orders two replies of the same SEQUENCE
    comment: str = ""  # Outlook's "respond with comment"
    problem: str = ""  # set when the file could not be read as a REPLY; the other fields are then empty
    attendees: int = 1  # ATTENDEEs in its VEVENT: a REPLY answers for one person only (RFC 5546)


# -- reading -----------------------------------------------------------------


def replies_in(raw: bytes, source: str) -> list[Reply]:
    if raw.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):  # a bare .ics file
        return replies_in_texts([raw.decode("utf-8", errors="replace")], source)
    return replies_in_message(email.message_from_bytes(raw, policy=email.policy.compat32), source)


def has_calendar(message: Message) -> bool:
    return any(_calendar_text(part) is not None for part in message.walk())


def replies_in_message(message: Message, source: str) -> list[Reply]:
    """The replies in a parsed mail's calendar parts (a Reply with `problem` when there are none)."""
    return replies_in_texts([text for part in message.walk() if (text := _calendar_text(part)) is not None], source)


def replies_in_texts(texts: list[str], source: str) -> list[Reply]:
    # Imported here, where iCalendar is parsed: `status` reads who_is_coming from this module and parses none (~22 ms).
    from icalendar import Calendar

    if not texts:
        return [_problem(source, "no calendar part in the message")]
    calendars = []
    for text in texts:
        try:
            calendars.extend(Calendar.from_ical(text.encode("utf-8"), multiple=True))
        except ValueError as exc:
            return [_problem(source, f"calendar part cannot be parsed: {exc}")]
    if not calendars:
        return [_problem(source, "calendar part holds no complete VCALENDAR")]
    methods = sorted({str(c.get("METHOD", "")).upper() or "none" for c in calendars})
    if "REPLY" not in methods:
        return [_problem(source, f"no METHOD:REPLY calendar (found METHOD {', '.join(methods)})")]
    replies: list[Reply] = []
    for calendar in calendars:
        if str(calendar.get("METHOD", "")).upper() == "REPLY":
            replies.extend(_replies_from_calendar(calendar, source))
    if not replies:
        return [_problem(source, "the REPLY holds no VEVENT with an ATTENDEE")]
    # Gmail sends the same calendar twice (inline part and invite.ics attachment).
    return list(dict.fromkeys(replies))


def _calendar_text(part: Message) -> str | None:
    """The decoded text of a calendar part (base64 / quoted-printable, any charset), else None."""
    if part.is_multipart():
        return None
    content_type = part.get_content_type()
    filename = (part.get_filename() or "").lower()
    if content_type not in CALENDAR_TYPES and not filename.endswith(".ics"):
        return None
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        text = payload.decode("utf-8", errors="replace")
    return text


def _replies_from_calendar(calendar: Calendar, source: str) -> list[Reply]:
    replies = []
    for event in calendar.walk("VEVENT"):
        if event.errors:  # icalendar keeps unparseable values as vBroken and lists them here
            broken = "; ".join(f"{name}: {message}" for name, message in event.errors)
            replies.append(_problem(source, f"broken calendar properties: {broken}"))
            continue
        attendees = event.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        for attendee in attendees:
            replies.append(
                Reply(
                    uid=str(event.get("UID", "")).strip(),
                    attendee_email=_address(attendee),
                    partstat=str(attendee.params.get("PARTSTAT", "")).upper(),
                    sequence=int(event.get("SEQUENCE", 0)),
                    source=source,
                    stamp=_utc_stamp(event),
                    comment=_first_text(event.get("COMMENT")),
                    attendees=len(attendees),
                )
            )
    return replies


def _utc_stamp(event) -> datetime | None:
    stamp = event["DTSTAMP"].dt if "DTSTAMP" in event else None
    if not isinstance(stamp, datetime):
        return None
    # DTSTAMP is UTC by definition; a sloppy client may leave off the Z.
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)


def _first_text(value) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


def _address(value: str) -> str:
    value = str(value).strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:"):]
    return value.strip().lower()


def _problem(source: str, reason: str) -> Reply:
    if len(reason) > 200:  # parser messages can quote a whole mail part
        reason = reason[:200] + "…"
    return Reply(uid="", attendee_email="", partstat="", sequence=0, source=source, problem=reason)


# -- checking ----------------------------------------------------------------


def check_reply(session: Session, reply: Reply, sender: str | None, now: datetime) -> tuple[Step, Member] | str:
    """The meeting step and the member a REPLY answers for, or why it must not be recorded.

    Mail can be forged, so a REPLY counts only when it answers for one ATTENDEE, comes From that
    ATTENDEE, who is a member invited to this meeting, before the meeting ends, and its SEQUENCE is
    not older than the invitation's. (The answers module then checks the step and the audience.)
    """
    if reply.problem:
        return reply.problem
    if reply.partstat not in ANSWERS:
        return f"PARTSTAT {reply.partstat or 'missing'} is not an answer we record"
    if reply.attendees != 1:
        return f"one REPLY answers for {reply.attendees} ATTENDEEs; a reply may answer only for its sender"
    if not sender:
        return "no From address to check against the ATTENDEE"
    if sender.lower() != reply.attendee_email:
        return f"From {sender} is not the ATTENDEE {reply.attendee_email or '(none)'}"
    entry = session.exec(select(CalendarEntry).where(CalendarEntry.uid == reply.uid)).first()
    if entry is None:
        return f"unknown UID {reply.uid!r}"
    if entry.kind != "meeting" or entry.step_id is None:
        return f"UID {reply.uid!r} is not a meeting invitation"
    if entry.cancelled:
        return f"meeting {reply.uid!r} is cancelled"
    member = _expected_attendee(session, entry, reply.attendee_email)
    if member is None:
        return f"{reply.attendee_email or 'no address'} is not an expected attendee of {reply.uid!r}"
    invited = session.exec(select(Notification.id).where(
        Notification.step_id == entry.step_id, Notification.member_id == member.id,
        Notification.kind.in_(("invite", "update")), Notification.state.in_(("ready", "sending", "sent")))).first()
    if invited is None:
        return f"{member.email} was not invited to {reply.uid!r}"
    step = session.get(Step, entry.step_id)
    ends = entry.ends_at or step.ends_at or step.starts_at
    if ends is not None and now >= ends:
        return f"the meeting ended at {ends.isoformat()}; replies after it are not recorded"
    if reply.sequence < entry.sequence:
        return f"SEQUENCE {reply.sequence} is older than the invitation's SEQUENCE {entry.sequence}"
    stored = session.exec(select(Response).where(
        Response.step_id == step.id, Response.member_id == member.id, Response.kind == "rsvp")).first()
    if stored is not None and not is_newer(reply, stored):
        return f"not newer than the answer recorded at {stored.at.isoformat()} ({stored.body})"
    return step, member


def is_newer(reply: Reply, response: Response) -> bool:
    """RFC 5546 order: a higher SEQUENCE wins; on the same SEQUENCE the later DTSTAMP wins."""
    stored = response.data
    if stored.get("sequence") is not None and reply.sequence != int(stored["sequence"]):
        return reply.sequence > int(stored["sequence"])
    # a mail reply keeps its DTSTAMP as ical_stamp; a web answer has only the moment it was given
    stored_stamp = stored.get("ical_stamp") or stored.get("stamp")
    if reply.stamp is not None and stored_stamp:
        return reply.stamp > datetime.fromisoformat(stored_stamp)
    return reply.partstat != response.body  # nothing to order by: only a change counts


def _expected_attendee(session: Session, entry: CalendarEntry, address: str) -> Member | None:
    member = session.exec(select(Member).where(Member.email == address.lower())).first()
    if member is None:
        return None
    cycle = session.get(Cycle, entry.cycle_id) if entry.cycle_id is not None else None
    if cycle is None:
        return member  # an entry outside any cycle: any known member may answer
    groups = select(WorkingGroup.id).where(
        or_(WorkingGroup.id == cycle.group_id, WorkingGroup.parent_id == cycle.group_id)
    )
    membership = session.exec(
        select(Membership.id).where(Membership.member_id == member.id, Membership.group_id.in_(groups))
    ).first()
    return member if membership is not None else None


def who_is_coming(session: Session, step_id: int) -> dict[str, list[str]]:
    """PARTSTAT -> sorted member emails, from the recorded rsvp Responses of a step."""
    rows = session.exec(
        select(Response.body, Member.email)
        .join(Member, Member.id == Response.member_id)
        .where(Response.step_id == step_id, Response.kind == "rsvp")
    ).all()
    answers: dict[str, list[str]] = {answer: [] for answer in ANSWERS}
    for partstat, address in rows:
        answers.setdefault(partstat, []).append(address)
    return {partstat: sorted(addresses) for partstat, addresses in answers.items()}
