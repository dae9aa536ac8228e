"""Turning a due outbox row into the exact bytes that will be mailed: the template context,
the rendered text, the calendar part (invitation or deadline) and the attachments."""

from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache

from sqlmodel import select

from calendars.ics import Attendee, Deadline, Meeting, Person, deadline_calendar, meeting_invite, uid_for
from flows.documents import document_for
from flows.state import CycleState, DueRow
from flows.steps import handler_for
from models.audience import ROLE_TITLES
from models.tables import CalendarEntry, Member, Step
from notifications.compose import CalendarPart, build_message, message_id_for
from notifications.inbound_address import organizer, reply_to_header
from notifications.links import action_url, sign_action
from notifications.render import render_message

# Machine-made messages that nobody should auto-reply to (RFC 3834).
AUTOMATIC = ("reminder", "digest", "escalation", "task", "failure_report", "minutes_due")
# Messages that carry the recipient's own deadline as a calendar event.
WITH_DEADLINE = ("call", "task", "approval_request", "submission")
APPROVAL_LINK_DAYS = 60


def template_context(cs: CycleState, step: Step, row: DueRow, member: Member, now: datetime) -> dict:
    role = cs.role_of(member.id, now)
    return {
        **cs.memo(("step_context", step.id), lambda: _step_context(cs, step)),
        "recipient": {"name": member.name, "email": member.email, "role": role, "role_lo": ROLE_TITLES[role][0],
                      "role_en": ROLE_TITLES[role][1], "language": member.language},
        "link": own_link(cs, step, row, member),
        "extra": handler_for(step.kind).extra(cs, step, row, now),
    }


def _step_context(cs: CycleState, step: Step) -> dict:
    """What every recipient's context shares: built once per step and tick (the tick has moved its steps
    before it prepares any message), and never changed afterwards."""
    definition = cs.step_def(step.key)
    location = " / ".join(dict.fromkeys(x for x in (definition.location_lo, definition.location_en) if x))
    return {
        "group": {"code": cs.group.code, "name_lo": cs.group.name_lo, "name_en": cs.group.name_en},
        "year": cs.cycle.year,
        "step": {"key": step.key, "kind": step.kind, "title_lo": definition.title_lo, "title_en": definition.title_en,
                 "opens_at": step.opens_at, "due_at": step.due_at, "starts_at": step.starts_at,
                 "ends_at": step.ends_at, "location": location},
        "tz": cs.group.timezone,
        "agenda": [item.model_dump() for item in definition.agenda],
    }


def own_link(cs: CycleState, step: Step, row: DueRow, member: Member) -> str | None:
    """The recipient's own signed link: a form, a confirm page; none where there is nothing to do."""
    if row.kind in ("failure_report", "decision_notice", "cancel") or not cs.secret:
        return None
    purpose = handler_for(step.kind).purpose
    token = sign_action(cs.secret, member_id=member.id, step_id=step.id, purpose=purpose,
                        revision=row.revision if step.kind == "approval" else 0)
    return action_url(cs.base_url, token)


@lru_cache(maxsize=8)  # one sender per deployment; parsing it for every message cost ~30 us
def _parsed_sender(sender: str) -> tuple[str, str]:
    return parseaddr(sender)


def _organizer(cs: CycleState) -> Person:
    if cs.reply_address:  # meeting replies go to the ORGANIZER: make it the mailbox `mail fetch` reads
        return Person(*organizer(cs.reply_address, cs.group.code))
    name, address = _parsed_sender(cs.sender)
    return Person(name or "Roundtable", address)


def calendar_part(cs: CycleState, step: Step, row: DueRow, member: Member, context: dict,
                  now: datetime) -> CalendarPart | None:
    definition = cs.step_def(step.key)
    if row.kind in ("invite", "update", "cancel") and step.starts_at:
        entry = _entry(cs, step, "meeting")
        agenda_lo = "\n".join(f"{i['time']} {i['title_lo']}" for i in context["agenda"])
        agenda_en = "\n".join(f"{i['time']} {i['title_en']}" for i in context["agenda"])
        meeting = Meeting(uid=entry.uid, sequence=entry.sequence, summary_lo=definition.title_lo,
                          summary_en=definition.title_en, description_lo=agenda_lo, description_en=agenda_en,
                          starts_at=step.starts_at, ends_at=step.ends_at, timezone=cs.group.timezone,
                          location=context["step"]["location"], organizer=_organizer(cs), url=context["link"],
                          cancelled=row.kind == "cancel")
        method = "CANCEL" if row.kind == "cancel" else "REQUEST"
        ics = meeting_invite(meeting, [Attendee(member.name, member.email, _ics_role(context["recipient"]["role"]))],
                             method, stamp=now)
        return CalendarPart(method, ics, "invite.ics")
    if row.kind in WITH_DEADLINE and step.due_at:
        entry = _entry(cs, step, "deadline")
        deadline = Deadline(uid=entry.uid, sequence=entry.sequence, title_lo=definition.title_lo,
                            title_en=definition.title_en, description_lo=cs.group.name_lo,
                            description_en=cs.group.name_en, due_at=step.due_at, timezone=cs.group.timezone,
                            url=context["link"])
        return CalendarPart("PUBLISH", deadline_calendar(deadline, stamp=now), "deadline.ics")
    return None


def _ics_role(role: str) -> str:
    return "CHAIR" if role == "chair" else "REQ-PARTICIPANT"


def _entry(cs: CycleState, step: Step, kind: str) -> CalendarEntry:
    """The step's calendar entry; looked up once per tick (a tick prepares messages after every change)."""
    return cs.memo(("calendar_entry", step.id, kind),
                   lambda: cs.session.get(CalendarEntry, _entry_id(cs, step, kind)))


def _entry_id(cs: CycleState, step: Step, kind: str) -> int:
    parts = (cs.group.code, str(cs.cycle.year), step.key) + (("deadline",) if kind == "deadline" else ())
    return cs.session.exec(select(CalendarEntry.id).where(CalendarEntry.uid == uid_for(*parts))).one()


def prepare(cs: CycleState, step: Step, row: DueRow, now: datetime) -> bytes:
    """Render and compose the row's message and return its bytes; the row becomes `ready` with its
    Message-ID. The caller stores the bytes (outbox.store_payloads) before it commits."""
    member = cs.session.get(Member, row.member_id)
    context = template_context(cs, step, row, member, now)
    rendered = render_message(row.kind, context)
    domain = _parsed_sender(cs.sender)[1].rpartition("@")[2] or "roundtable.local"
    row.message_id = message_id_for(row.key, domain)
    revision = cs.cycle.plan_revision
    attachments = [cs.memo(("document", name, revision), lambda name=name: document_for(cs, name, revision, now))
                   for name in cs.step_def(step.key).attachments
                   if row.kind in ("call", "approval_request", "submission")]
    cc = list(row.cc or [])
    if row.kind == "submission" and cs.reply_to(now):
        cc.append(cs.reply_to(now))  # the secretariat keeps a copy of what went to MPI
    row.cc = cc
    payload = build_message(
        rendered, sender=cs.sender, to=[row.recipient], cc=cc,
        reply_to=reply_to_header(cs.reply_address, cs.secret, row.id, cs.reply_to(now)),
        message_id=row.message_id, auto_submitted=row.kind in AUTOMATIC,
        calendar=calendar_part(cs, step, row, member, context, now), attachments=attachments, date=now,
    )
    row.subject = rendered.subject
    # Kept with the row: how late it went, and what a failure report about it needs to name the group.
    row.context = {**(row.context or {}), "days_late": max(0, (now - row.due_at) // timedelta(days=1)),
                   "group": context["group"], "year": context["year"], "tz": context["tz"]}
    row.state, row.next_attempt_at = "ready", now
    return payload
