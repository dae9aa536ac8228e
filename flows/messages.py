"""Turning a due outbox row into the exact bytes that will be mailed: the template context,
the rendered text, the calendar part (invitation or deadline) and the attachments.

What a message kind carries (its link, its deadline, a calendar part, attachments, whether it is
automatic) comes from notifications.kinds; what a step kind adds, from its handler.
"""

from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr
from functools import lru_cache

from sqlmodel import select

from calendars.ics import Attendee, Deadline, Meeting, Person, deadline_calendar, meeting_invite
from flows.documents import documents_for
from flows.state import CycleState, DueRow
from flows.steps import handler_for
from models.audience import ROLE_TITLES, courtesy_titles
from models.tables import CalendarEntry, Member, Step
from notifications.compose import CalendarPart, build_message, message_id_for
from notifications.kinds import STEP_LINK, MessageKind, kind_of
from notifications.inbound_address import organizer, reply_to_header
from notifications.links import action_url, feed_token, feed_url, sign_action
from notifications.render import render_message

DEADLINE_FILE = "deadline.ics"
INVITATION_FILE = "invite.ics"


def template_context(cs: CycleState, step: Step, row: DueRow, member: Member, now: datetime) -> dict:
    kind = kind_of(row.kind)
    role = cs.role_of(member.id, now)
    role_lo, role_en = ROLE_TITLES[role]
    title_lo, title_en = courtesy_titles(member.title)
    shared = cs.memo(("step_context", step.id), lambda: _step_context(cs, step))
    return {
        **shared,
        "recipient": {
            "name": member.name, "name_en": member.name_en or member.name, "email": member.email,
            "title_lo": title_lo, "title_en": title_en, "role": role, "role_lo": role_lo, "role_en": role_en,
            # A name that already says the role (an old roster: "Minister … (Chair)") is not followed by it again.
            "show_role_lo": role_lo not in member.name, "show_role_en": role_en.lower() not in
            (member.name_en or member.name).lower(),
            "language": member.language,
        },
        "link": own_link(cs, step, row, member),
        # An invitation also offers the member's own calendar feed: every meeting and deadline, kept up to date.
        "feed": feed_url(cs.base_url, feed_token(cs.secret, member_id=member.id))
        if kind.invitation == "REQUEST" and cs.secret else None,
        "deadline": shared["step"]["due_at" if kind.deadline == "due" else kind.deadline] if kind.deadline else None,
        "deadline_event": calendar_carries_deadline(kind, step),
        "attachments": [name for name, _, _ in attachments_of(cs, step, row, now)],
        "extra": handler_for(step.kind).extra(cs, step, row, now),
    }


def _step_context(cs: CycleState, step: Step) -> dict:
    """What every recipient's context shares: built once per step and tick (the tick has moved its steps
    before it prepares any message), and never changed afterwards."""
    definition = cs.step_def(step.key)
    dated = cs.timeline[step.key]
    year = cs.cycle.year
    short_lo, short_en = definition.short_title_lo or definition.title_lo, definition.short_title_en or definition.title_en
    return {
        "group": {"code": cs.group.code, "name_lo": cs.group.name_lo, "name_en": cs.group.name_en},
        "year": year,
        "step": {"key": step.key, "kind": step.kind, "title_lo": definition.title_lo, "title_en": definition.title_en,
                 "short_lo": short_lo, "short_en": short_en,
                 "ask_lo": (definition.ask_lo or short_lo).replace("{year}", str(year)),
                 "ask_en": (definition.ask_en or short_en).replace("{year}", str(year)),
                 "opens_at": step.opens_at, "due_at": step.due_at, "starts_at": step.starts_at,
                 "ends_at": step.ends_at, "location_lo": definition.location_lo or definition.location_en,
                 "location_en": definition.location_en or definition.location_lo,
                 # The kind's own points (a meeting's minutes_due, survey_due), moved with the step.
                 **{name: _moved(cs, step, moment) for name, moment in dated.extra.items()}},
        "tz": cs.group.timezone,
        "agenda": [item.model_dump() for item in definition.agenda],
    }


def _moved(cs: CycleState, step: Step, moment: datetime | None) -> datetime | None:
    """A point of the step's own, kept at its distance from the meeting's end when the meeting moved."""
    planned_end = cs.timeline[step.key].ends_at
    if moment is None or planned_end is None or step.ends_at is None:
        return moment
    return moment + (step.ends_at - planned_end)


def own_link(cs: CycleState, step: Step, row: DueRow, member: Member) -> str | None:
    """The recipient's own signed link, one purpose per link; none where there is nothing to do."""
    purpose = link_purpose(kind_of(row.kind), step)
    if purpose is None or not cs.secret:
        return None
    token = sign_action(cs.secret, member_id=member.id, step_id=step.id, purpose=purpose,
                        revision=handler_for(step.kind).link_revision(row))
    return action_url(cs.base_url, token)


def link_purpose(kind: MessageKind, step: Step) -> str | None:
    return handler_for(step.kind).purpose if kind.link == STEP_LINK else kind.link


def calendar_carries_deadline(kind: MessageKind, step: Step) -> bool:
    return kind.deadline_event and handler_for(step.kind).has_deadline and step.due_at is not None


@lru_cache(maxsize=8)  # one sender per deployment; parsing it for every message cost ~30 us
def _parsed_sender(sender: str) -> tuple[str, str]:
    return parseaddr(sender)


def _secretariat_name(cs: CycleState) -> str:
    return f"ກອງເລຂາ {cs.group.code} · {cs.group.code} Secretariat"


def group_sender(cs: CycleState) -> str:
    """From: the group's secretariat in both languages, at the deployment's address."""
    return cs.memo(("sender",), lambda: formataddr((_secretariat_name(cs), _parsed_sender(cs.sender)[1])))


def _organizer(cs: CycleState) -> Person:
    if cs.reply_address:  # meeting replies go to the ORGANIZER: make it the mailbox `mail fetch` reads
        return Person(_secretariat_name(cs), organizer(cs.reply_address, cs.group.code)[1])
    return Person(_secretariat_name(cs), _parsed_sender(cs.sender)[1])


def calendar_part(cs: CycleState, step: Step, row: DueRow, member: Member, context: dict,
                  now: datetime) -> CalendarPart | None:
    kind = kind_of(row.kind)
    definition = cs.step_def(step.key)
    step_context = context["step"]
    if kind.invitation and step.starts_at:
        entry = _entry(cs, step, "meeting")
        agenda_lo = "\n".join(f"{i['time']} {i['title_lo']}" for i in context["agenda"])
        agenda_en = "\n".join(f"{i['time']} {i['title_en']}" for i in context["agenda"])
        location = " / ".join(dict.fromkeys(x for x in (step_context["location_lo"], step_context["location_en"]) if x))
        meeting = Meeting(uid=entry.uid, sequence=entry.sequence, summary_lo=definition.title_lo,
                          summary_en=definition.title_en, description_lo=agenda_lo, description_en=agenda_en,
                          starts_at=step.starts_at, ends_at=step.ends_at, timezone=cs.group.timezone,
                          location=location, organizer=_organizer(cs), url=context["link"],
                          cancelled=kind.invitation == "CANCEL")
        ics = meeting_invite(meeting, [Attendee(member.name, member.email, _ics_role(context["recipient"]["role"]))],
                             kind.invitation, stamp=now)
        return CalendarPart(kind.invitation, ics, INVITATION_FILE)
    if context["deadline_event"]:
        entry = _entry(cs, step, "deadline")
        deadline = Deadline(uid=entry.uid, sequence=entry.sequence, title_lo=step_context["short_lo"],
                            title_en=step_context["short_en"], description_lo=cs.group.name_lo,
                            description_en=cs.group.name_en, due_at=step.due_at, timezone=cs.group.timezone,
                            url=context["link"])
        return CalendarPart("PUBLISH", deadline_calendar(deadline, stamp=now), DEADLINE_FILE)
    return None


def _ics_role(role: str) -> str:
    return "CHAIR" if role == "chair" else "REQ-PARTICIPANT"


def _entry(cs: CycleState, step: Step, kind: str) -> CalendarEntry:
    """The step's calendar entry; looked up once per tick (a tick prepares messages after every change)."""
    return cs.memo(("calendar_entry", step.id, kind), lambda: cs.session.exec(
        select(CalendarEntry).where(CalendarEntry.step_id == step.id, CalendarEntry.kind == kind)).one())


def attachments_of(cs: CycleState, step: Step, row: DueRow, now: datetime) -> list[tuple[str, str, bytes]]:
    """The step's documents, for the kinds that carry them: made once per revision and tick."""
    if not kind_of(row.kind).attachments:
        return []
    revision = cs.cycle.plan_revision
    return [made for name in cs.step_def(step.key).attachments
            for made in cs.memo(("document", name, revision), lambda name=name: documents_for(cs, name, revision, now))]


def prepare(cs: CycleState, step: Step, row: DueRow, now: datetime) -> bytes:
    """Render and compose the row's message and return its bytes; the row becomes `ready` with its
    Message-ID. The caller stores the bytes (outbox.store_payloads) before it commits."""
    kind = kind_of(row.kind)
    member = cs.session.get(Member, row.member_id)
    context = template_context(cs, step, row, member, now)
    rendered = render_message(row.kind, context)
    row.message_id = message_id_for(row.key, cs.domain)
    cc = list(row.cc or [])
    if row.kind == "submission" and cs.reply_to(now):
        cc.append(cs.reply_to(now))  # the secretariat keeps a copy of what went to MPI
    row.cc = cc
    payload = build_message(
        rendered, sender=group_sender(cs), to=[row.recipient], cc=cc,
        reply_to=reply_to_header(cs.reply_address, cs.secret, row.id, cs.reply_to(now)),
        message_id=row.message_id, auto_submitted=kind.automatic,
        calendar=calendar_part(cs, step, row, member, context, now),
        attachments=attachments_of(cs, step, row, now), date=now,
    )
    row.subject = rendered.subject
    # Kept with the row: how late it went, and what a failure report about it needs to name the group.
    row.context = {**(row.context or {}), "days_late": max(0, (now - row.due_at) // timedelta(days=1)),
                   "group": context["group"], "year": context["year"], "tz": context["tz"]}
    row.state, row.next_attempt_at = "ready", now
    return payload
