"""Subscribable calendar feeds: one per member, one per working group.

A feed holds every meeting and deadline of every live or finished cycle that concerns
the member or group, under the same UID and SEQUENCE as the invitations that went out,
so a calendar that has both merges them. Cancelled entries stay in, as STATUS:CANCELLED,
so subscribers see the cancellation instead of a silently vanished event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from calendars.ics import Deadline, Meeting, Person, bilingual, feed
from models.audience import audience
from models.definition import CycleDefinition, StepDef
from models.tables import CalendarEntry, Cycle, Member, Membership, Step, WorkingGroup

SHOWN_CYCLE_STATES = ("live", "finished")  # a cancelled cycle's plan never happened
DEFAULT_TIMEZONE = WorkingGroup.model_fields["timezone"].default


class UnknownMember(ValueError):
    def __init__(self, email: str):
        super().__init__(f"no member with email {email!r}")


class UnknownGroup(ValueError):
    def __init__(self, code: str):
        super().__init__(f"no working group with code {code!r}")


@dataclass(frozen=True)
class _Item:
    """One calendar entry with what is needed to judge and write it."""

    entry: CalendarEntry
    step: Step
    step_def: StepDef
    cycle: Cycle
    group: WorkingGroup  # the group that runs the cycle
    audience_groups: tuple[str, ...]  # codes, with "empty = the cycle's group and sub-groups" resolved


def member_feed(session: Session, member_email: str, now: datetime) -> bytes:
    """The feed of one member: entries of the steps whose audience holds them (by role and group)."""
    address = member_email.strip().lower()
    member = session.exec(select(Member).where(Member.email == address)).first()
    if member is None:
        raise UnknownMember(member_email)
    asked: dict[tuple, set[int]] = {}  # a step's meeting and deadline ask the same question
    mine = [item for item in _items(session) if member.id in _audience_ids(session, item, asked)]
    first_group = session.exec(
        select(WorkingGroup).join(Membership, Membership.group_id == WorkingGroup.id)
        .where(Membership.member_id == member.id).order_by(Membership.id)
    ).first()
    zone = mine[0].group.timezone if mine else (first_group.timezone if first_group else DEFAULT_TIMEZONE)
    name = bilingual(f"ປະຕິທິນຂອງ {member.name}", f"Calendar of {member.name}")
    return _build(name, mine, zone, now)


def group_feed(session: Session, group_code: str, now: datetime) -> bytes:
    """The feed of one group: every entry of its own cycles, plus the entries of its parent's
    cycles whose audience covers it (PSI sees the GSWG annual meeting, not the GSWG approval)."""
    group = session.exec(select(WorkingGroup).where(WorkingGroup.code == group_code.strip())).first()
    if group is None:
        raise UnknownGroup(group_code)
    ours = [
        item for item in _items(session)
        if item.cycle.group_id == group.id
        or (item.cycle.group_id == group.parent_id and group.code in item.audience_groups)
    ]
    return _build(bilingual(group.name_lo, group.name_en), ours, group.timezone, now)


# -- internals ---------------------------------------------------------------


def _items(session: Session) -> list[_Item]:
    rows = session.exec(
        select(CalendarEntry, Step, Cycle, WorkingGroup)
        .join(Step, Step.id == CalendarEntry.step_id)
        .join(Cycle, Cycle.id == Step.cycle_id)
        .join(WorkingGroup, WorkingGroup.id == Cycle.group_id)
        .where(Cycle.state.in_(SHOWN_CYCLE_STATES))
        .order_by(Cycle.year, Cycle.id, Step.position, CalendarEntry.kind, CalendarEntry.uid)
    ).all()
    definitions: dict[int, CycleDefinition] = {}
    children: dict[int, list[str]] = {}
    items = []
    for entry, step, cycle, group in rows:
        if cycle.id not in definitions:
            definitions[cycle.id] = CycleDefinition.model_validate(cycle.definition)
        if group.id not in children:
            children[group.id] = sorted(session.exec(
                select(WorkingGroup.code).where(WorkingGroup.parent_id == group.id)).all())
        step_def = definitions[cycle.id].step(step.key)
        groups = tuple(step_def.audience.groups) or (group.code, *children[group.id])
        items.append(_Item(entry, step, step_def, cycle, group, groups))
    return items


def _audience_ids(session: Session, item: _Item, asked: dict[tuple, set[int]]) -> set[int]:
    # The day the engine asks who is invited (flows/steps/base.py): when the step opens (or starts).
    moment = item.step.opens_at or item.step.starts_at or item.step.due_at or item.entry.starts_at
    on: date = moment.astimezone(ZoneInfo(item.group.timezone)).date()
    key = (item.audience_groups, tuple(item.step_def.audience.roles), on)
    if key not in asked:
        asked[key] = {person.member_id for person in audience(session, *key)}
    return asked[key]


def _build(name: str, items: list[_Item], timezone: str, now: datetime) -> bytes:
    meetings = [_meeting(item) for item in items if item.entry.kind == "meeting"]
    deadlines = [_deadline(item) for item in items if item.entry.kind == "deadline"]
    return feed(name, meetings, deadlines, timezone, stamp=now)


def _meeting(item: _Item) -> Meeting:
    # Text as in the invitation (flows/messages.py): the agenda, Lao block then English block.
    step_def, entry = item.step_def, item.entry
    return Meeting(
        uid=entry.uid,
        sequence=entry.sequence,
        summary_lo=step_def.title_lo,
        summary_en=step_def.title_en,
        description_lo="\n".join(f"{a.time} {a.title_lo}" for a in step_def.agenda),
        description_en="\n".join(f"{a.time} {a.title_en}" for a in step_def.agenda),
        starts_at=entry.starts_at or item.step.starts_at,  # the entry holds the times last sent
        ends_at=entry.ends_at or item.step.ends_at,
        timezone=item.group.timezone,
        location=" / ".join(dict.fromkeys(x for x in (step_def.location_lo, step_def.location_en) if x)),
        organizer=Person(item.group.name_en, ""),  # not written into a feed
        cancelled=entry.cancelled,
    )


def _deadline(item: _Item) -> Deadline:
    return Deadline(
        uid=item.entry.uid,
        sequence=item.entry.sequence,
        title_lo=item.step_def.title_lo,
        title_en=item.step_def.title_en,
        description_lo=item.group.name_lo,
        description_en=item.group.name_en,
        due_at=item.entry.starts_at or item.step.due_at,
        timezone=item.group.timezone,
        cancelled=item.entry.cancelled,
    )
