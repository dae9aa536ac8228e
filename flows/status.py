"""What the secretariat asks of a cycle: where each step stands, and what will be sent from now on."""

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from flows.mail_in import address_problems
from flows.state import CycleState
from flows.steps import handler_for
from models.tables import Cycle, Notification


def _iso(moment: datetime | None, cs: CycleState) -> str | None:
    return moment.astimezone(cs.zone).isoformat() if moment else None


def cycle_status(session: Session, cycle: Cycle) -> dict:
    """The JSON of `roundtable status`: each step with state, times, expected and answered counts, decisions."""
    cs = CycleState(session, cycle)
    steps = []
    for step in cs.steps():
        handler = handler_for(step.kind)
        expected = handler.expected(cs, step)
        answered = handler.answered(cs, step) & {p.member_id for p in expected}
        steps.append({
            "key": step.key, "kind": step.kind, "state": step.state, "outcome": step.outcome,
            "opens_at": _iso(step.opens_at, cs), "due_at": _iso(step.due_at, cs),
            "starts_at": _iso(step.starts_at, cs), "ends_at": _iso(step.ends_at, cs),
            "expected": len(expected), "answered": len(answered), "decisions": [],
            **handler.status(cs, step),
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
    (Reminders are counted for everyone: who has answered by then is only known then.)"""
    cs = CycleState(session, cycle)
    rows = session.exec(
        select(Notification.due_at, Notification.step_key, Notification.kind, func.count())
        .where(Notification.cycle_id == cycle.id, Notification.state.in_(("scheduled", "ready")))
        .group_by(Notification.due_at, Notification.step_key, Notification.kind)
        .order_by(Notification.due_at, Notification.step_key, Notification.kind)
    ).all()
    return [{"at": _iso(max(at, now), cs), "step": step_key, "kind": kind, "recipients": count}
            for at, step_key, kind, count in rows]
