"""What the secretariat's desk shows of a cycle and does to its outbox: the timeline with who has not
answered, the outbox (retry a failed message, resend one message, pause a step's reminders), the
audit trail (answers, plan changes, messages, sign-ins) and its CSV; who may sign in, and their one-time links. Actions are checked and audited
through flows.answers like every other secretariat action."""

import csv
import io
import secrets
from datetime import datetime

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func
from sqlmodel import Session, select

from flows import answers
from flows.answers import AnswerRefused
from flows.state import CycleState
from flows.steps import handler_for
from models.audience import open_on
from models.tables import AnswerAudit, Cycle, Member, Membership, Notification, OperatorAction, SignIn, Step

AUDIT_KINDS = ("answers", "plan", "messages", "sign-ins", "operator")
DESK_ROLES = ("secretariat-head", "secretariat", "chair")  # who may sign in to the desk
SIGN_IN_SALT = "roundtable.sign-in"
PLAN_KINDS = ("activity", "disposition", "checklist", "revision", "document", "message", "reminders")


def sign_in_link(session: Session, secret: str, base_url: str, member: Member, now: datetime,
                 channel: str = "mail") -> str:
    """A one-time link for `member` (stored as a SignIn row with its nonce)."""
    nonce = secrets.token_hex(16)
    session.add(SignIn(member_id=member.id, nonce=nonce, channel=channel, issued_at=now))
    session.flush()
    token = URLSafeTimedSerializer(secret, salt=SIGN_IN_SALT).dumps({"n": nonce})
    return f"{base_url.rstrip('/')}/login/{token}"


def desk_roles(session: Session, member_id: int, day) -> dict[int, set[str]]:
    """group id -> the member's desk roles there on `day`."""
    rows = session.exec(select(Membership.group_id, Membership.role)
                        .where(Membership.member_id == member_id, Membership.role.in_(DESK_ROLES))
                        .where(*open_on(day))).all()
    roles: dict[int, set[str]] = {}
    for group_id, role in rows:
        roles.setdefault(group_id, set()).add(role)
    return roles


def member_by_email(session: Session, email: str) -> Member | None:
    return session.exec(select(Member).where(Member.email == (email or "").strip().lower())).first()


def timeline(session: Session, cycle: Cycle) -> list[dict]:
    """Each step: state, times, answered / expected with the names of those who have not answered, and
    the reminders still to go (how many, the next one, whether paused)."""
    cs = CycleState(session, cycle)
    pending = {step_id: (count, first) for step_id, count, first in session.exec(
        select(Notification.step_id, func.count(), func.min(Notification.due_at))
        .where(Notification.cycle_id == cycle.id, Notification.kind == "reminder",
               Notification.state == "scheduled").group_by(Notification.step_id)).all()}
    out = []
    for step in cs.steps():
        handler = handler_for(step.kind)
        definition = cs.step_def(step.key)
        expected, answered = handler.progress(cs, step)
        waiting = [p for p in expected if p.member_id not in answered] if step.state != "planned" else []
        count, first = pending.get(step.id, (0, None))
        out.append({"step": step, "title_lo": definition.title_lo, "title_en": definition.title_en,
                    "expected": len(expected), "answered": len(answered),
                    "waiting": waiting, "reminders_left": count, "next_reminder": first,
                    "paused": bool(step.data.get("reminders_paused"))})
    return out


def outbox(session: Session, cycle_id: int, recipient: str = "", limit: int = 50) -> dict:
    """Counts by state, the failed messages with the server's reason, and one person's messages."""
    counts = dict(session.exec(select(Notification.state, func.count()).where(Notification.cycle_id == cycle_id)
                               .group_by(Notification.state)).all())
    failed = session.exec(select(Notification).where(Notification.cycle_id == cycle_id, Notification.state == "failed")
                          .order_by(Notification.due_at).limit(limit)).all()
    mine = []
    if recipient.strip():
        mine = session.exec(select(Notification).where(Notification.cycle_id == cycle_id,
                                                       Notification.recipient == recipient.strip().lower())
                            .order_by(Notification.due_at).limit(limit)).all()
    return {"counts": counts, "failed": list(failed), "mine": list(mine)}


def _message(session: Session, notification_id: int, cycle_id: int) -> Notification:
    row = session.get(Notification, notification_id)
    if row is None or row.cycle_id != cycle_id:
        raise AnswerRefused("invalid", f"no message {notification_id} in this cycle")
    return row


def retry(session: Session, *, member_id: int, cycle_id: int, notification_id: int, now: datetime,
          channel: str, resend: bool = False) -> Notification:
    """A failed message goes out again (retry); a sent one goes once more to its one recipient (resend,
    with the same Message-ID: a client that has it already shows it once)."""
    cs = answers.secretariat_action(session=session, member_id=member_id, cycle_id=cycle_id, now=now, channel=channel)
    row = _message(session, notification_id, cycle_id)
    wanted = ("sent", "failed") if resend else ("failed",)
    if row.state not in wanted:
        raise AnswerRefused("invalid", f"message {notification_id} is {row.state}: only a "
                                       f"{' or '.join(wanted)} message can be {'resent' if resend else 'retried'}")
    before = row.state
    row.state, row.attempts, row.next_attempt_at, row.lease_until = "ready", 0, now, None
    session.add(row)
    answers.audit_action(session, cs, member_id=member_id, now=now, channel=channel, kind="message",
                         action="resend" if resend else "retry", ref_id=row.id,
                         detail={"to": row.recipient, "kind": row.kind, "was": before, "error": row.last_error})
    return row


def pause_reminders(session: Session, *, member_id: int, step_id: int, now: datetime, channel: str,
                    paused: bool) -> Step:
    """Pause (or resume) a step's reminders: while paused, a reminder whose moment comes is skipped."""
    step = session.get(Step, step_id)
    if step is None:
        raise AnswerRefused("unknown-step", f"no step {step_id}")
    cs = answers.secretariat_action(session=session, member_id=member_id, cycle_id=step.cycle_id, now=now,
                                    channel=channel)
    step.data["reminders_paused"] = paused
    session.add(step)
    answers.audit_action(session, cs, member_id=member_id, now=now, channel=channel, kind="reminders",
                         action="pause" if paused else "resume", ref_id=step.id, detail={"step": step.key})
    return step


def audit_trail(session: Session, cycle: Cycle, now: datetime, kind: str = "", limit: int | None = None) -> list[dict]:
    """Every answer, plan change, message sent and sign-in of the cycle's group, newest first (the `limit`
    newest: each source is asked for no more); `kind`: one of AUDIT_KINDS, an answer kind (suggestion,
    decision …) or "" for all."""
    cs = CycleState(session, cycle)

    def newest(query, at, row_id):  # equal moments keep the order the rows were written in
        return session.exec(query.order_by(at.desc(), row_id).limit(limit)).all()

    rows: list[dict] = []  # "who": a member id until the names are read, for the rows kept only
    if kind in ("", "answers", "plan") or kind not in AUDIT_KINDS:
        query = select(AnswerAudit).where(AnswerAudit.cycle_id == cycle.id)
        if kind == "plan":
            query = query.where(AnswerAudit.kind.in_(PLAN_KINDS))
        elif kind == "answers":
            query = query.where(AnswerAudit.kind.not_in(PLAN_KINDS))
        elif kind:
            query = query.where(AnswerAudit.kind == kind)
        for row in newest(query, AnswerAudit.at, AnswerAudit.id):
            rows.append({"at": row.at, "who": row.member_id, "what": row.kind, "action": row.action,
                         "channel": row.channel, "late": row.late, "detail": row.detail})
    if kind in ("", "messages"):
        for row in newest(select(Notification).where(Notification.cycle_id == cycle.id,
                                                     Notification.sent_at.is_not(None)),
                          Notification.sent_at, Notification.id):
            rows.append({"at": row.sent_at, "who": row.recipient, "what": f"message: {row.kind}",
                         "action": "sent", "channel": "mail", "late": False,
                         "detail": {"step": row.step_key, "subject": row.subject}})
    if kind in ("", "operator"):  # anchor moves, dropped or reopened steps, a cancelled cycle
        for row in newest(select(OperatorAction).where(OperatorAction.cycle_id == cycle.id), OperatorAction.at,
                          OperatorAction.id):
            rows.append({"at": row.at, "who": "", "what": f"operator: {row.action}", "action": row.action,
                         "channel": "cli", "late": False, "detail": row.detail})
    if kind in ("", "sign-ins"):
        group_members = [p.member_id for p in cs.people(DESK_ROLES, [cs.group.code], now)]
        for row in newest(select(SignIn).where(SignIn.used_at.is_not(None), SignIn.member_id.in_(group_members)),
                          SignIn.used_at, SignIn.id):
            rows.append({"at": row.used_at, "who": row.member_id, "what": "sign-in", "action": "sign-in",
                         "channel": row.channel, "late": False, "detail": {}})
    rows.sort(key=lambda r: r["at"], reverse=True)
    rows = rows[:limit] if limit else rows
    ids = {row["who"] for row in rows if isinstance(row["who"], int)}
    names = {m.id: f"{m.name} <{m.email}>" for m in session.exec(select(Member).where(Member.id.in_(ids)))} \
        if ids else {}
    for row in rows:
        if not isinstance(row["who"], str):
            row["who"] = "" if row["who"] is None else names.get(row["who"], str(row["who"]))
    return rows


def audit_csv(rows: list[dict], zone) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["at", "who", "what", "action", "channel", "late", "detail"])
    for row in rows:
        detail = "; ".join(f"{k}={v}" for k, v in sorted(row["detail"].items()) if v not in (None, "", []))
        writer.writerow([row["at"].astimezone(zone).isoformat(), row["who"], row["what"], row["action"],
                         row["channel"], "late" if row["late"] else "", detail])
    return buffer.getvalue()
