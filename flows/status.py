"""What the secretariat asks of a cycle: where each step stands, and what will be sent from now on."""

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, select

from flows.addresses import address_problems
from flows.state import FINISHED, CycleState
from flows.steps import handler_for
from models.tables import Cycle, Notification


def _iso(moment: datetime | None, cs: CycleState) -> str | None:
    return moment.astimezone(cs.zone).isoformat() if moment else None


def cycle_status(session: Session, cycle: Cycle, now: datetime | None = None) -> dict:
    """The JSON of `roundtable status`: each step with state, times, expected and answered counts, decisions,
    and why it is blocked when it is. With `now`, an open step's audience is the one of that day."""
    cs = CycleState(session, cycle, now=now)
    steps = []
    for step in cs.steps():
        handler = handler_for(step.kind)
        expected, answered = handler.progress(cs, step)
        steps.append({
            "key": step.key, "kind": step.kind, "state": step.state, "outcome": step.outcome,
            "opens_at": _iso(step.opens_at, cs), "due_at": _iso(step.due_at, cs),
            "starts_at": _iso(step.starts_at, cs), "ends_at": _iso(step.ends_at, cs),
            "expected": len(expected), "answered": len(answered), "decisions": [],
            **handler.status(cs, step), "blocked": step.data.get("blocked"),
        })
    sent = dict(session.exec(select(Notification.state, func.count()).where(Notification.cycle_id == cycle.id)
                             .group_by(Notification.state)).all())
    return {"cycle": {"id": cycle.id, "group": cs.group.code, "year": cycle.year, "state": cycle.state,
                      "plan_revision": cycle.plan_revision,
                      "anchors": {k: _iso(v, cs) for k, v in cs.anchors.items()}},
            "steps": steps, "messages": sent,
            "addresses": address_problems(session)}  # bouncing / deferred / away (flows/mail_in.py)


def preview(session: Session, cycle: Cycle, now: datetime) -> list[dict]:
    """Every planned message from `now` on, grouped by moment, step and kind, with the number of recipients.
    (Reminders are counted for everyone: who has answered by then is only known then.)

    As the next tick would decide them: stale `skip_if_stale` messages are left out, and several stale `fold`
    messages for one person and step count as one digest now."""
    cs = CycleState(session, cycle)
    stale_before = now - timedelta(hours=cs.definition.defaults.stale_after_hours)
    live = (Notification.cycle_id == cycle.id, Notification.state.in_(("scheduled", "ready")))
    fresh = or_(Notification.state == "ready", Notification.due_at >= stale_before,
                Notification.policy == "send_late")
    counted: dict[tuple, int] = defaultdict(int)
    for at, step_key, kind, count in session.exec(
            select(Notification.due_at, Notification.step_key, Notification.kind, func.count())
            .where(*live, fresh).group_by(Notification.due_at, Notification.step_key, Notification.kind)).all():
        counted[(max(at, now), step_key, kind)] += count
    folding: dict[tuple, list[str]] = defaultdict(list)
    for step_key, member_id, kind in session.exec(
            select(Notification.step_key, Notification.member_id, Notification.kind)
            .where(*live, Notification.state == "scheduled", Notification.due_at < stale_before,
                   Notification.policy == "fold")).all():
        folding[(step_key, member_id)].append(kind)
    for (step_key, _member), kinds in folding.items():
        counted[(now, step_key, "digest" if len(kinds) > 1 else kinds[0])] += 1
    # Reminders of a step that is over (or will be closed by the tick at `now`) are skipped, not sent.
    over = {s.key for s in cs.steps() if s.state in FINISHED
            or (handler_for(s.kind).closes_at_due and s.due_at is not None and s.due_at <= now)}
    counted = {key: count for key, count in counted.items()
               if not (key[2] in ("reminder", "digest") and key[1] in over and key[0] <= now)}
    return [{"at": _iso(at, cs), "step": step_key, "kind": kind, "recipients": count}
            for (at, step_key, kind), count in sorted(counted.items())]
