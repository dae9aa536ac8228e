"""One tick of the engine at a given `now` (never the wall clock).

1. Every live cycle's steps open, close or settle; messages that follow from that (decision notices,
   revision requests, new approval requests) are planned.
2. Every planned message whose moment has come is decided on: still needed? late? then rendered into
   its final bytes (state `ready`) for the outbox to deliver — or skipped, or folded into one digest.

A second tick at the same `now` finds nothing left to do: every message has a unique key and every
transition checks the state it starts from.
"""

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, text, update
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from flows.cycle import schedule
from flows.messages import prepare
from flows.mail_in import bouncing_addresses
from flows.state import FINISHED, CycleState, DueRow, outbox_key
from flows.steps import handler_for
from models.tables import Cycle, Member, Notification, Step
from models.types import utcnow_aware
from notifications.outbox import enqueue, store_payloads

BATCH = 500


@dataclass
class TickReport:
    now: datetime
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    prepared: int = 0
    skipped: int = 0
    folded: int = 0
    finished_cycles: list[int] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class EngineConfig:
    sender: str = "Roundtable <roundtable@localhost>"
    base_url: str = "http://127.0.0.1:8000"
    secret: str = ""
    reply_address: str | None = None  # ROUNDTABLE_REPLY_ADDRESS: Reply-To replies+<token>@…, invitations' ORGANIZER


def tick(session: Session, now: datetime, config: EngineConfig | None = None) -> TickReport:
    now = utcnow_aware(now)
    config = config or EngineConfig()
    report = TickReport(now)
    if session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement after five runs, and PostgreSQL may then switch it to a generic plan:
        # for the due query that plan walks the primary key past every pending row (~300 ms at 1M rows)
        # instead of asking the (state, due_at) index (~0.1 ms). Planning each time costs a fraction of a ms.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    states: dict[int, CycleState] = {}
    cycles = session.exec(select(Cycle).where(Cycle.state == "live")).all()
    steps: dict[int, dict[str, Step]] = defaultdict(dict)  # every live cycle's steps in one query
    if cycles:
        for step in session.exec(select(Step).where(Step.cycle_id.in_([c.id for c in cycles]))
                                 .order_by(Step.cycle_id, Step.position)).all():
            steps[step.cycle_id][step.key] = step
    for cycle in cycles:
        cs = states[cycle.id] = CycleState(session, cycle, config.sender, config.base_url, config.secret,
                                           config.reply_address, _steps=steps[cycle.id])
        _advance_cycle(cs, now, report)
    session.flush()
    _prepare_due(session, now, states, config, report)
    session.commit()
    return report


def next_due(session: Session, now: datetime, cycle_ids: list[int] | None = None) -> datetime | None:
    """The earliest moment after `now` at which a tick has something to do: a step that opens or closes,
    a planned message of an opened step, a retry. None when nothing is planned at all."""
    steps = select(Step).join(Cycle, Cycle.id == Step.cycle_id).where(Cycle.state == "live")
    if cycle_ids is not None:
        steps = steps.where(Step.cycle_id.in_(cycle_ids))
    candidates = []
    opened = []
    rows = session.exec(steps).all()
    finished = {(step.cycle_id, step.key) for step in rows if step.state in FINISHED}
    states: dict[int, CycleState] = {}
    for step in rows:
        if step.state == "planned":
            # One whose opening has passed waits for a predecessor and opens in the tick that finishes it:
            # its past opening is no moment to wake for (the scheduler would wake every second meanwhile).
            if step.opens_at and (step.opens_at > now or _predecessors_finished(session, step, finished, states)):
                candidates.append(step.opens_at)
        else:
            opened.append(step.id)
            if step.state == "open" and handler_for(step.kind).closes_at_due:
                candidates.append(step.due_at)
    if opened:
        candidates.append(session.exec(select(func.min(Notification.due_at)).where(
            Notification.state == "scheduled", Notification.step_id.in_(opened))).one())
    candidates.append(session.exec(select(func.min(Notification.next_attempt_at))
                                   .where(Notification.state == "ready")).one())
    found = [c for c in candidates if c is not None]
    if not found:
        return None
    return max(min(found), now + timedelta(seconds=1))


def _predecessors_finished(session: Session, step: Step, finished: set[tuple[int, str]],
                           states: dict[int, CycleState]) -> bool:
    if step.cycle_id not in states:
        states[step.cycle_id] = CycleState(session, session.get(Cycle, step.cycle_id))
    after = states[step.cycle_id].step_def(step.key).after
    return all((step.cycle_id, key) in finished for key in after)


def _advance_cycle(cs: CycleState, now: datetime, report: TickReport) -> None:
    for step in cs.steps():
        before = step.state
        urgent = handler_for(step.kind).advance(cs, step, now)
        if urgent:
            schedule(cs, step, urgent, now)
        if before == "planned" and step.state != "planned":
            report.opened.append(step.key)
        if before not in FINISHED and step.state in FINISHED:
            report.closed.append(step.key)
    if all(step.state in FINISHED for step in cs.steps()):
        cs.cycle.state = "finished"
        report.finished_cycles.append(cs.cycle.id)


_TABLE = Notification.__table__
_DUE_COLUMNS = [_TABLE.c[f.name] for f in fields(DueRow)]
_STEPS = Step.__table__
# What deciding on a row changes; written back for a whole batch at once.
_DECIDED = ("state", "message_id", "subject", "cc", "context", "next_attempt_at", "last_error")
_WRITE_BACK = (update(_TABLE).where(_TABLE.c.id == bindparam("row_id"))
               .values({name: bindparam(f"new_{name}") for name in _DECIDED}))


def _due_rows(session: Session, now: datetime, after_id: int) -> list[DueRow]:
    """Planned messages whose moment has come, except those of steps that have not opened yet."""
    return _rows_where(session, _TABLE.c.state == "scheduled", _TABLE.c.due_at <= now, _TABLE.c.id > after_id,
                       or_(_STEPS.c.id.is_(None), _STEPS.c.state != "planned"))


def _rows_where(session: Session, *conditions) -> list[DueRow]:
    statement = (select(*_DUE_COLUMNS).select_from(_TABLE.outerjoin(_STEPS, _STEPS.c.id == _TABLE.c.step_id))
                 .where(*conditions).order_by(_TABLE.c.id).limit(BATCH))
    return [DueRow(*values) for values in session.execute(statement)]


@dataclass
class _Batch:
    """What deciding on one batch of due rows produced, stored together at the end of the batch."""

    payloads: dict[int, bytes] = field(default_factory=dict)  # rendered messages by row id
    decided: list[DueRow] = field(default_factory=list)  # every row rendered, skipped or folded

    def write(self, session: Session) -> None:
        if self.decided:
            session.execute(_WRITE_BACK, [{"row_id": row.id, **{f"new_{name}": getattr(row, name) for name in _DECIDED}}
                                          for row in self.decided])
            for row in self.decided:  # an ORM copy a long-lived session holds would now be stale
                held = session.identity_map.get(identity_key(Notification, row.id))
                if held is not None:
                    session.expire(held)
        store_payloads(session, self.payloads)


def _prepare_due(session: Session, now: datetime, states: dict[int, CycleState], config: EngineConfig,
                 report: TickReport) -> None:
    last_id = 0
    bouncing = bouncing_addresses(session)  # no mail to an address that bounces hard (flows/mail_in.py)
    while rows := _due_rows(session, now, last_id):
        last_id = rows[-1].id
        # The batch's recipients in one query (the rendering asks for each by primary key); held here
        # because the session's identity map only keeps objects someone refers to.
        member_ids = {row.member_id for row in rows if row.member_id is not None}
        members = session.exec(select(Member).where(Member.id.in_(member_ids))).all() if member_ids else []  # noqa: F841
        stale_groups: dict[tuple, list[DueRow]] = defaultdict(list)
        batch = _Batch()
        for row in rows:
            cs = states.get(row.cycle_id) or states.setdefault(
                row.cycle_id, CycleState(session, session.get(Cycle, row.cycle_id), config.sender,
                                         config.base_url, config.secret, config.reply_address))
            step = session.get(Step, row.step_id)
            if row.recipient.lower() in bouncing:
                _drop(row, "skipped", f"{row.recipient} bounces (see `status`); fix it in the roster", report, batch)
                continue
            if not handler_for(step.kind).relevant(cs, step, row):
                _drop(row, "skipped", "no longer needed when its moment came", report, batch)
                continue
            stale = now - row.due_at > timedelta(hours=cs.definition.defaults.stale_after_hours)
            if stale and row.policy == "skip_if_stale":
                _drop(row, "skipped", f"stale: due {row.due_at.isoformat()}", report, batch)
            elif stale and row.policy == "fold":
                stale_groups[(row.cycle_id, row.step_id, row.member_id, row.revision)].append(row)
            else:
                _render(cs, step, row, now, report, batch)
        for group in stale_groups.values():
            _fold(states[group[0].cycle_id], group, now, report, batch)
        session.flush()  # what rendering changed through the ORM (documents), before the batch's rows
        batch.write(session)
        del members


def _render(cs: CycleState, step: Step, row: DueRow, now: datetime, report: TickReport, batch: _Batch) -> None:
    batch.payloads[row.id] = prepare(cs, step, row, now)
    batch.decided.append(row)
    report.prepared += 1
    report.by_kind[row.kind] += 1


def _drop(row: DueRow, state: str, reason: str, report: TickReport, batch: _Batch) -> None:
    row.state, row.last_error = state, reason
    batch.decided.append(row)
    if state == "skipped":
        report.skipped += 1
    else:
        report.folded += 1


def _fold(cs: CycleState, rows: list[DueRow], now: datetime, report: TickReport, batch: _Batch) -> None:
    """Several stale reminders for one person and step become one digest; a single one goes late."""
    step = cs.session.get(Step, rows[0].step_id)
    if len(rows) == 1:
        _render(cs, step, rows[0], now, report, batch)
        return
    last = max(rows, key=lambda r: (r.due_at, r.id))
    key = outbox_key(cs.cycle.id, step.key, "digest", last.slot, last.member_id, last.revision)
    enqueue(cs.session, key=key, cycle_id=cs.cycle.id, step_id=step.id, step_key=step.key, member_id=last.member_id,
            recipient=last.recipient, kind="digest", slot=last.slot, revision=last.revision, policy="send_late",
            state="scheduled", due_at=now, created_at=now,
            context={"missed": [r.due_at.isoformat() for r in rows]})
    for row in rows:
        _drop(row, "folded", f"folded into digest {key}", report, batch)
    digest = _rows_where(cs.session, _TABLE.c.key == key)[0]
    if digest.state == "scheduled":
        _render(cs, step, digest, now, report, batch)
