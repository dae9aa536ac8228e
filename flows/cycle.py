"""Starting a cycle, planning its messages, and moving an anchor without resending anything."""

from dataclasses import replace
from datetime import datetime

from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from calendars.ics import uid_for
from calendars.timeline import DatedStep, compute_timeline, default_anchors
from flows.state import DEFAULT_SENDER, FINISHED, CycleState, Planned, outbox_key
from flows.steps import handler_for
from models.definition import CycleDefinition
from models.tables import CalendarEntry, Cycle, Notification, Step, WorkingGroup
from models.types import utcnow_aware
from notifications.kinds import KINDS, kind_of
from notifications.outbox import enqueue_many

KEYS_PER_QUERY = 500
_COLUMNS = [column.name for column in Notification.__table__.columns if column.name != "id"]


class CycleError(ValueError):
    pass


def live_cycle(session: Session, group_code: str | None = None, year: int | None = None) -> Cycle | None:
    query = select(Cycle).where(Cycle.state == "live")
    if group_code:
        query = query.join(WorkingGroup, WorkingGroup.id == Cycle.group_id).where(WorkingGroup.code == group_code)
    if year:
        query = query.where(Cycle.year == year)
    return session.exec(query.order_by(Cycle.id.desc())).first()


def late_policy(definition: CycleDefinition, kind: str) -> str:
    """What happens to a message of `kind` whose moment passed while the engine was down: the
    definition's choice, else the kind's own."""
    return definition.late_policy.get(kind) or kind_of(kind).late_policy


def start_cycle(session: Session, definition: CycleDefinition, year: int, anchors: dict[str, datetime],
                now: datetime, *, definition_path: str = "", sender: str = DEFAULT_SENDER) -> Cycle:
    """Create the cycle, its steps and calendar entries, and plan every time-driven message.
    Calendar UIDs are made in the `sender`'s domain."""
    now = utcnow_aware(now)
    unknown = sorted(set(definition.late_policy) - set(KINDS))
    if unknown:
        raise CycleError(f"late_policy names unknown message kinds: {', '.join(unknown)} (known: {', '.join(KINDS)})")
    group = session.exec(select(WorkingGroup).where(WorkingGroup.code == definition.group)).first()
    if group is None:
        raise CycleError(f"group {definition.group!r} is not in the database: load it first (roundtable groups load)")
    if live_cycle(session, definition.group, year):
        raise CycleError(f"{definition.group} already has a live cycle for the {year} plan")
    cycle = Cycle(group_id=group.id, year=year, state="live", definition=definition.model_dump(mode="json"),
                  definition_path=definition_path, created_at=now,
                  anchors={k: v.isoformat() for k, v in anchors.items()})
    session.add(cycle)
    session.flush()
    cs = CycleState(session, cycle, sender)
    cycle.anchors = {k: v.isoformat() for k, v in _all_anchors(cs, anchors).items()}
    for position, dated in enumerate(cs.timeline.values()):
        session.add(Step(cycle_id=cycle.id, key=dated.key, kind=dated.kind, position=position,
                         opens_at=dated.opens_at, due_at=dated.due_at, starts_at=dated.starts_at,
                         ends_at=dated.ends_at))
    session.flush()
    for step in cs.steps():
        dated = cs.timeline[step.key]
        _sync_calendar_entries(cs, step, dated, now)
        schedule(cs, step, handler_for(step.kind).plan(cs, step, dated), now)
    return cycle


def _all_anchors(cs: CycleState, given: dict[str, datetime]) -> dict[str, datetime]:
    merged = default_anchors(cs.definition, cs.cycle.year, cs.zone, cs.closed_days)
    merged.update({k: v.astimezone(cs.zone) for k, v in given.items()})
    return merged


def schedule(cs: CycleState, step: Step, plans: list[Planned], now: datetime) -> int:
    """Put planned messages into the outbox as `scheduled` rows (idempotent by key). Returns how many are new.

    In bulk: keys already in the outbox are found with one query per KEYS_PER_QUERY keys; the others
    go in through `enqueue_many` (one multi-row INSERT … ON CONFLICT (key) DO NOTHING). (A cycle of 300
    members plans ~2,700 rows; an approval re-plans its decision notices every tick.)"""
    wanted: dict[str, dict] = {}
    for plan in plans:
        common = Notification(cycle_id=cs.cycle.id, step_id=step.id, step_key=step.key, kind=plan.kind,
                              slot=plan.slot, revision=plan.revision, policy=late_policy(cs.definition, plan.kind),
                              state="scheduled", due_at=plan.due_at, created_at=now)  # the model's defaults
        values = {name: getattr(common, name) for name in _COLUMNS}
        for person in plan.recipients:
            key = outbox_key(cs.cycle.id, step.key, plan.kind, plan.slot, person.member_id, plan.revision)
            wanted.setdefault(key, {**values, "key": key, "member_id": person.member_id, "recipient": person.email})
    if not wanted:
        return 0
    keys = list(wanted)
    known: set[str] = set()
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start:start + KEYS_PER_QUERY]
        known.update(cs.session.exec(select(Notification.key).where(Notification.key.in_(chunk))).all())
    return enqueue_many(cs.session, [values for key, values in wanted.items() if key not in known])


def _sync_calendar_entries(cs: CycleState, step: Step, dated: DatedStep, now: datetime) -> CalendarEntry | None:
    """One stable calendar entry per meeting and per deadline; SEQUENCE goes up when its times change.
    Returns the meeting entry when its times changed (it needs an update sent)."""
    changed_meeting = None
    wanted = []
    parts = (cs.group.code, str(cs.cycle.year), step.key)
    if dated.starts_at:
        wanted.append(("meeting", parts, dated.starts_at, dated.ends_at))
    if dated.due_at and handler_for(step.kind).has_deadline:
        wanted.append(("deadline", parts + ("deadline",), dated.due_at, dated.due_at))
    for kind, uid_parts, starts, ends in wanted:
        entry = cs.session.exec(select(CalendarEntry).where(CalendarEntry.step_id == step.id,
                                                            CalendarEntry.kind == kind)).first()
        if entry is None:
            uid = uid_for(*uid_parts, domain=cs.domain)
            cs.session.add(CalendarEntry(uid=uid, cycle_id=cs.cycle.id, step_id=step.id, kind=kind, sequence=0,
                                         starts_at=starts, ends_at=ends, updated_at=now))
        elif (entry.starts_at, entry.ends_at) != (starts, ends):
            entry.sequence += 1
            entry.starts_at, entry.ends_at, entry.updated_at = starts, ends, now
            if kind == "meeting":
                changed_meeting = entry
    return changed_meeting


def move_anchor(session: Session, cycle: Cycle, key: str, moment: datetime, now: datetime) -> dict:
    """Move one anchor of a live cycle: new dates for every step, pending messages rescheduled,
    updates (same UID, SEQUENCE + 1) for meetings whose invitation already went out. Nothing sent is resent."""
    now = utcnow_aware(now)
    cs = CycleState(session, cycle)
    if key not in cs.definition.anchors:
        raise CycleError(f"unknown anchor {key!r} (known: {', '.join(cs.definition.anchors)})")
    anchors = cs.anchors
    anchors[key] = moment.astimezone(cs.zone)
    compute_timeline(cs.definition, cycle.year, anchors, timezone=cs.group.timezone,
                     closed_days=cs.closed_days)  # refuse contradictions first
    cycle.anchors = {k: v.isoformat() for k, v in anchors.items()}
    cs = CycleState(session, cycle)
    report = {"rescheduled": 0, "updates": 0, "steps_moved": []}
    for step in cs.steps():
        dated = cs.timeline[step.key]
        times = (dated.opens_at, dated.due_at, dated.starts_at, dated.ends_at)
        if times != (step.opens_at, step.due_at, step.starts_at, step.ends_at):
            report["steps_moved"].append(step.key)
        if step.state == "planned":
            step.opens_at = dated.opens_at
        if step.state in ("planned", "open"):
            step.due_at, step.starts_at, step.ends_at = dated.due_at, dated.starts_at, dated.ends_at
        handler = handler_for(step.kind)
        plans = handler.plan(cs, step, dated)
        report["rescheduled"] += reschedule(cs, step, plans)
        schedule(cs, step, plans, now)  # people who joined since get their rows too
        changed = _sync_calendar_entries(cs, step, dated, now)
        if changed is not None and _invited(session, step):
            people = handler.expected(cs, step, dated)
            report["updates"] += schedule(cs, step, [Planned("update", f"s{changed.sequence}", now, people,
                                                             changed.sequence)], now)
    return report


def shifted(cs: CycleState, planned: DatedStep, start: datetime) -> DatedStep:
    """The planned window (opens → due, in business days) moved to open at `start`; reminders and
    escalation keep their distance to the deadline."""
    calendar = BusinessCalendar(cs.closed_days)
    span = calendar.business_days_between(planned.opens_at.date(), planned.due_at.astimezone(cs.zone).date())
    opens = start.astimezone(cs.zone)
    due_day = calendar.add_business_days(opens.date(), max(span, 1))
    due = datetime.combine(due_day, planned.due_at.astimezone(cs.zone).timetz())
    shift = due - planned.due_at
    return replace(planned, opens_at=opens, due_at=due,
                   reminders=[(text, at + shift) for text, at in planned.reminders],
                   escalation_at=planned.escalation_at + shift if planned.escalation_at else None)


def reschedule(cs: CycleState, step: Step, plans: list[Planned]) -> int:
    """New moments for messages not yet sent; rows already rendered or sent stay as they are."""
    due = {(p.kind, p.slot, p.revision): p.due_at for p in plans}
    moved = 0
    rows = cs.session.exec(select(Notification).where(Notification.step_id == step.id,
                                                      Notification.state == "scheduled")).all()
    for row in rows:
        new = due.get((row.kind, row.slot, row.revision))
        if new is not None and new != row.due_at:
            row.due_at = new
            moved += 1
    return moved


def _invited(session: Session, step: Step) -> bool:
    sent = session.exec(select(Notification.id).where(Notification.step_id == step.id, Notification.kind == "invite",
                                                      Notification.state.in_(("ready", "sending", "sent")))).first()
    return sent is not None


def drop_step(session: Session, cycle: Cycle, step_key: str, now: datetime) -> dict:
    """Drop a step that has not finished: its pending messages are skipped and, for a meeting whose
    invitation went out, every invitee gets a cancellation (same UID, SEQUENCE + 1)."""
    now = utcnow_aware(now)
    cs = CycleState(session, cycle)
    keys = [s.key for s in cs.steps()]
    if step_key not in keys:
        raise CycleError(f"unknown step {step_key!r} (known: {', '.join(keys)})")
    step = cs.step_row(step_key)
    if step.state in FINISHED:
        raise CycleError(f"step {step_key!r} is already {step.state}")
    pending = session.exec(select(Notification).where(Notification.step_id == step.id,
                                                      Notification.state == "scheduled")).all()
    for row in pending:
        row.state, row.last_error = "skipped", f"step dropped at {now.isoformat()}"
    cancelled = 0
    entries = session.exec(select(CalendarEntry).where(CalendarEntry.step_id == step.id)).all()
    for entry in entries:
        entry.sequence += 1
        entry.cancelled, entry.updated_at = True, now
        if entry.kind == "meeting" and _invited(session, step):
            people = handler_for(step.kind).expected(cs, step)
            cancelled += schedule(cs, step, [Planned("cancel", f"s{entry.sequence}", now, people, entry.sequence)], now)
    step.state, step.closed_at, step.outcome = "skipped", now, "dropped"
    return {"skipped": len(pending), "cancellations": cancelled}
