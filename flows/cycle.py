"""Starting a cycle, planning its messages, and moving an anchor without resending anything."""

import functools
import inspect
from dataclasses import replace
from datetime import datetime, timedelta

from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from calendars.ics import uid_for
from calendars.timeline import ANCHOR_TOLERANCE, DatedStep, compute_timeline, default_anchors
from flows.state import DEFAULT_SENDER, FINISHED, CycleState, Planned, outbox_key
from flows.steps import handler_for
from models.audience import Addressee
from models.definition import CycleDefinition
from models.tables import CalendarEntry, Cycle, Member, Notification, OperatorAction, Step, WorkingGroup
from models.types import utcnow_aware
from notifications.kinds import KINDS, kind_of
from notifications.outbox import enqueue, enqueue_many

KEYS_PER_QUERY = 500
_COLUMNS = [column.name for column in Notification.__table__.columns if column.name != "id"]


class CycleError(ValueError):
    pass


def check_anchors_near(definition: CycleDefinition, year: int, anchors: dict[str, datetime], zone,
                       closed_days=()) -> None:
    defaults = default_anchors(definition, year, zone, closed_days)
    for key, moment in anchors.items():
        if key in defaults and abs(moment - defaults[key]) > ANCHOR_TOLERANCE:
            raise CycleError(f"anchor {key}={moment.isoformat()} is far from planning year {year} "
                             f"(its default is {defaults[key]:%Y-%m-%d})")


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


def schedule_now(cs: CycleState, step: Step, kind: str, slot: str, member: Member, now: datetime,
                 revision: int = 0) -> bool:
    """One message of `kind` about `step` to `member`, due now, outside the step's plan (a receipt, a request
    sent again): the next tick writes and sends it. False when its key is in the outbox already."""
    return enqueue(cs.session, key=outbox_key(cs.cycle.id, step.key, kind, slot, member.id, revision),
                   cycle_id=cs.cycle.id, step_id=step.id, step_key=step.key, member_id=member.id,
                   recipient=member.email, kind=kind, slot=slot, revision=revision,
                   policy=late_policy(cs.definition, kind), state="scheduled", due_at=now, created_at=now)


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
    from zoneinfo import ZoneInfo

    check_anchors_near(definition, year, anchors, ZoneInfo(group.timezone),
                       [datetime.fromisoformat(str(d)).date() for d in group.closed_days])
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
        sync_calendar_entries(cs, step, dated, now)
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


def sync_calendar_entries(cs: CycleState, step: Step, dated: DatedStep, now: datetime) -> CalendarEntry | None:
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


def operator_action(action: str):
    """Record a successful operator action on a cycle (the audit trail shows it): its arguments and report."""
    def wrap(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def recorded(session: Session, cycle: Cycle, *args, **kwargs):
            report = function(session, cycle, *args, **kwargs)
            given = signature.bind(session, cycle, *args, **kwargs).arguments
            detail = {name: value.isoformat() if isinstance(value, datetime) else value
                      for name, value in given.items() if name not in ("session", "cycle", "now")}
            session.add(OperatorAction(cycle_id=cycle.id, at=utcnow_aware(given["now"]), action=action,
                                       detail={**detail, "report": report}))
            return report
        return recorded
    return wrap


@operator_action("anchor")
def move_anchor(session: Session, cycle: Cycle, key: str, moment: datetime, now: datetime, *,
                force: bool = False) -> dict:
    """Move one anchor of a live cycle: new dates for every step not finished, pending messages rescheduled,
    updates (same UID, SEQUENCE + 1) for meetings whose invitation already went out. Nothing sent is resent.

    Refused (CycleError, nothing changed): an anchor far from the planning year; a move of a meeting that
    was held; without `force`, a move that puts an open or planned step's deadline (or meeting) in the past,
    where the next tick would close it at once. Finished steps keep their dates, in status and calendars."""
    now = utcnow_aware(now)
    cs = CycleState(session, cycle)
    if key not in cs.definition.anchors:
        raise CycleError(f"unknown anchor {key!r} (known: {', '.join(cs.definition.anchors)})")
    anchors = cs.anchors
    anchors[key] = moment.astimezone(cs.zone)
    check_anchors_near(cs.definition, cycle.year, {key: anchors[key]}, cs.zone, cs.closed_days)
    timeline = {d.key: d for d in compute_timeline(cs.definition, cycle.year, anchors, timezone=cs.group.timezone,
                                                    closed_days=cs.closed_days)}  # refuse contradictions first
    _refuse_harmful_move(cs, timeline, now, force)
    cycle.anchors = {k: v.isoformat() for k, v in anchors.items()}
    cs = CycleState(session, cycle)
    report = {"rescheduled": 0, "updates": 0, "steps_moved": []}
    for step in cs.steps():
        if step.state in FINISHED:
            continue  # what happened stays as it happened (its calendar entries too)
        dated = cs.timeline[step.key]
        times = (dated.opens_at, dated.due_at, dated.starts_at, dated.ends_at)
        if times != (step.opens_at, step.due_at, step.starts_at, step.ends_at):
            report["steps_moved"].append(step.key)
        if step.state == "planned":
            step.opens_at = dated.opens_at
        step.due_at, step.starts_at, step.ends_at = dated.due_at, dated.starts_at, dated.ends_at
        handler = handler_for(step.kind)
        plans = handler.plan(cs, step, dated)
        report["rescheduled"] += reschedule(cs, step, plans)
        schedule(cs, step, plans, now)  # people who joined since get their rows too
        changed = sync_calendar_entries(cs, step, dated, now)
        if changed is not None and _invited(session, step):
            people = handler.expected(cs, step, dated)
            _supersede(session, step, ("update",), f"superseded by SEQUENCE {changed.sequence}")
            report["updates"] += schedule(cs, step, [Planned("update", f"s{changed.sequence}", now, people,
                                                             changed.sequence)], now)
    return report


def _refuse_harmful_move(cs: CycleState, timeline: dict[str, DatedStep], now: datetime, force: bool) -> None:
    problems = []
    for step in cs.steps():
        dated = timeline[step.key]
        if step.state in FINISHED:
            if step.starts_at and step.state != "skipped" and (dated.starts_at, dated.ends_at) != (step.starts_at,
                                                                                                 step.ends_at):
                raise CycleError(f"{step.key} was held on {step.starts_at.astimezone(cs.zone):%Y-%m-%d %H:%M}: "
                                 "a move after the meeting is refused (reopen it first: roundtable cycle reopen "
                                 f"{step.key})")
            continue
        end = dated.ends_at or dated.due_at
        old_end = step.ends_at or step.due_at
        if not force and end is not None and end <= now and end != old_end:
            problems.append(f"{step.key} ({step.state}) would end on {end.astimezone(cs.zone):%Y-%m-%d %H:%M}, "
                            "in the past")
    if problems:
        raise CycleError("; ".join(problems) + ": the next tick would close it at once. Check the date, or use "
                         "--force if this is meant")


def _supersede(session: Session, step: Step, kinds: tuple[str, ...], why: str) -> int:
    """Pending messages of `kinds` for the step that a newer one replaces (one update per person, the latest)."""
    rows = session.exec(select(Notification).where(Notification.step_id == step.id, Notification.kind.in_(kinds),
                                                   Notification.state == "scheduled")).all()
    for row in rows:
        row.state, row.last_error = "skipped", why
    return len(rows)


def shifted(cs: CycleState, planned: DatedStep, start: datetime) -> DatedStep:
    """The planned window (opens → due, in business days) moved to open at `start`; reminders and
    escalation keep their distance to the deadline."""
    calendar = BusinessCalendar(cs.closed_days)
    span = calendar.business_days_between(planned.opens_at.date(), planned.due_at.astimezone(cs.zone).date())
    opens = start.astimezone(cs.zone)
    due_day = calendar.add_business_days(opens.date(), max(span, 1))
    due = datetime.combine(due_day, planned.due_at.astimezone(cs.zone).timetz())
    return replace(_with_due(planned, due), opens_at=opens)


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


GONE_OUT = ("ready", "sending", "sent")  # a message rendered or sent: in someone's mailbox, or about to be


def _invited(session: Session, step: Step) -> bool:
    return session.exec(_invitations(step, Notification.id)).first() is not None


def invited_members(session: Session, step: Step) -> set[int]:
    """Members whose invitation to the step's meeting was rendered or sent."""
    return set(session.exec(_invitations(step, Notification.member_id)).all())


def _invitations(step: Step, column):
    return select(column).where(Notification.step_id == step.id, Notification.kind == "invite",
                                Notification.state.in_(GONE_OUT))


@operator_action("drop")
def drop_step(session: Session, cycle: Cycle, step_key: str, now: datetime) -> dict:
    """Drop a step that has not finished: its pending messages are skipped and, for a meeting whose
    invitation went out, every invitee gets a cancellation (same UID, SEQUENCE + 1)."""
    now = utcnow_aware(now)
    cs = CycleState(session, cycle)
    step = _step_of(cs, step_key)
    if step.state in FINISHED:
        raise CycleError(f"step {step_key!r} is already {step.state}")
    report = _withdraw(cs, step, now, f"step dropped at {now.isoformat()}")
    step.state, step.closed_at, step.outcome = "skipped", now, "dropped"
    return report


def _step_of(cs: CycleState, step_key: str) -> Step:
    keys = [s.key for s in cs.steps()]
    if step_key not in keys:
        raise CycleError(f"unknown step {step_key!r} (known: {', '.join(keys)})")
    return cs.step_row(step_key)


def _withdraw(cs: CycleState, step: Step, now: datetime, why: str) -> dict:
    """Skip the step's messages not yet sent; cancel its calendar entries, with a cancellation to every invitee
    of a meeting whose invitation went out."""
    session = cs.session
    # Only rows not yet rendered: a `ready` one may be claimed by a delivery at this very moment.
    pending = session.exec(select(Notification).where(Notification.step_id == step.id,
                                                      Notification.state == "scheduled")).all()
    for row in pending:
        row.state, row.last_error = "skipped", why
    cancelled = 0
    entries = session.exec(select(CalendarEntry).where(CalendarEntry.step_id == step.id,
                                                       CalendarEntry.cancelled.is_(False))).all()
    for entry in entries:
        entry.sequence += 1
        entry.cancelled, entry.updated_at = True, now
        if entry.kind == "meeting" and _invited(session, step):
            people = _invitees(session, step)
            cancelled += schedule(cs, step, [Planned("cancel", f"s{entry.sequence}", now, people, entry.sequence)], now)
    return {"skipped": len(pending), "cancellations": cancelled}


def _invitees(session: Session, step: Step) -> list[Addressee]:
    """Everyone an invitation or update of the step went to: they are the calendars holding the meeting."""
    rows = session.exec(select(Notification.member_id, Notification.recipient, Member.name, Member.language,
                               Member.organisation)
                        .join(Member, Member.id == Notification.member_id)
                        .where(Notification.step_id == step.id, Notification.kind.in_(("invite", "update")),
                               Notification.state.in_(GONE_OUT))).all()
    people = {member_id: Addressee(member_id, name, recipient, language, organisation, "member", "")
              for member_id, recipient, name, language, organisation in rows}
    return sorted(people.values(), key=lambda a: a.email)


@operator_action("cancel")
def cancel_cycle(session: Session, cycle: Cycle, now: datetime) -> dict:
    """Cancel a live cycle: nothing more is sent, except cancellations of meetings still to come whose
    invitation went out. Steps not finished are skipped (outcome `cancelled`)."""
    now = utcnow_aware(now)
    if cycle.state != "live":
        raise CycleError(f"cycle {cycle.id} is {cycle.state}, not live")
    cs = CycleState(session, cycle)
    report = {"skipped": 0, "cancellations": 0}
    for step in cs.steps():
        if step.state in FINISHED:
            continue
        withdrawn = _withdraw(cs, step, now, f"cycle cancelled at {now.isoformat()}")
        report["skipped"] += withdrawn["skipped"]
        report["cancellations"] += withdrawn["cancellations"]
        step.state, step.closed_at, step.outcome = "skipped", now, "cancelled"
    cycle.state = "cancelled"
    return report


@operator_action("reopen")
def reopen_step(session: Session, cycle: Cycle, step_key: str, now: datetime, *, due: datetime | None = None) -> dict:
    """The way back from a mistake: a closed (or held, or dropped) step opens again, or a blocked one is tried
    again. Its deadline is `due` (needed when the old one has passed); messages never sent that still make
    sense (skipped as stale or as no longer needed, not those already folded into a digest) are planned again
    at their new moments. Nothing already sent is sent again."""
    now = utcnow_aware(now)
    cs = CycleState(session, cycle, now=now)
    step = _step_of(cs, step_key)
    if due is not None:
        due = utcnow_aware(due)
        if due <= now:
            raise CycleError(f"--due {due.astimezone(cs.zone):%Y-%m-%d %H:%M} is not after now")
    if step.data.get("blocked") and step.state not in FINISHED and due is None:
        del step.data["blocked"]  # tried again at the next tick
        return {"state": step.state, "due_at": _local_iso(cs, step.due_at), "replanned": 0}
    if step.state not in FINISHED:
        raise CycleError(f"step {step_key!r} is {step.state}: only a closed, held, approved or dropped step reopens"
                         + ("" if due is None else " (to move an open step's deadline, move its anchor)"))
    dated = cs.timeline[step.key]  # today's anchors: they may have moved while the step was closed
    handler = handler_for(step.kind)
    if "due" in handler.spec.derived:  # a meeting: its deadline is its end, its times come from its anchor
        if due is not None:
            raise CycleError(f"{step_key} is a meeting: its times follow its anchor (roundtable cycle anchor), "
                             "not --due")
        due = dated.due_at
        state = "open" if dated.opens_at and dated.opens_at <= now else "planned"
        if state == "planned":
            step.opens_at = dated.opens_at
    else:
        due = due or step.due_at
        if due is None or due <= now:
            raise CycleError(f"{step_key}'s deadline has passed: give a new one with --due DATE")
        dated = _with_due(dated, due)
        state = "open"
    step.state, step.closed_at, step.outcome, step.due_at = state, None, "", due
    step.starts_at, step.ends_at = dated.starts_at, dated.ends_at
    if state == "open" and step.opened_at is None:
        step.opened_at = now
    step.data.pop("blocked", None)
    plans = handler.plan(cs, step, dated)
    wanted = {(p.kind, p.slot, p.revision): p.due_at for p in plans}
    revived = 0
    for row in session.exec(select(Notification).where(Notification.step_id == step.id,
                                                       Notification.state == "skipped")).all():
        moment = wanted.get((row.kind, row.slot, row.revision))
        if moment is not None and moment > now and not row.last_error.startswith("superseded"):
            row.state, row.due_at, row.last_error = "scheduled", moment, ""
            revived += 1
    revived += reschedule(cs, step, plans)
    revived += schedule(cs, step, [p for p in plans if p.due_at > now], now)
    # A dropped step's calendar entries come back; a meeting invitees had (cancelled, or at other times)
    # is announced again as an update at a new SEQUENCE.
    entries = session.exec(select(CalendarEntry).where(CalendarEntry.step_id == step.id)).all()
    restored = [entry for entry in entries if entry.cancelled]
    for entry in restored:
        entry.cancelled, entry.sequence, entry.updated_at = False, entry.sequence + 1, now
    changed = sync_calendar_entries(cs, step, replace(dated, opens_at=step.opens_at, due_at=due), now)
    meeting = next((entry for entry in entries if entry.kind == "meeting"), None)
    if meeting is not None and (changed is not None or meeting in restored) and _invited(session, step):
        _supersede(session, step, ("update", "cancel"), f"superseded by SEQUENCE {meeting.sequence}")
        revived += schedule(cs, step, [Planned("update", f"s{meeting.sequence}", now, _invitees(session, step),
                                               meeting.sequence)], now)
    return {"state": state, "due_at": _local_iso(cs, due), "replanned": revived}


def _with_due(dated: DatedStep, due: datetime) -> DatedStep:
    """The step with a new deadline; reminders and escalation keep their distance to it."""
    shift = due - dated.due_at if dated.due_at else timedelta(0)
    return replace(dated, due_at=due, reminders=[(text, at + shift) for text, at in dated.reminders],
                   escalation_at=dated.escalation_at + shift if dated.escalation_at else None)


def _local_iso(cs: CycleState, moment: datetime | None) -> str | None:
    return moment.astimezone(cs.zone).isoformat() if moment else None
