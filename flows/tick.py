"""One tick of the engine at a given `now` (never the wall clock).

1. Every live cycle's steps open, close or settle; messages that follow from that (decision notices,
   revision requests, new approval requests) are planned.
2. Every planned message whose moment has come is decided on: still needed? late? then rendered into
   its final bytes (state `ready`) for the outbox to deliver — or skipped, or folded into one digest.

A second tick at the same `now` finds nothing left to do: every message has a unique key and every
transition checks the state it starts from.
"""

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, or_, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from flows.cycle import invited_members, schedule, sync_calendar_entries
from flows.addresses import bouncing_addresses
from flows.messages import group_sender, prepare
from flows.state import DEFAULT_SENDER, FINISHED, CycleState, DueRow, Planned, StepBlocked, outbox_key
from flows.steps import handler_for
from flows.steps.base import StepHandler
from models.audience import ROLE_TITLES, Addressee
from models.settings import MOMENT_YEARS
from models.tables import Cycle, Member, Membership, Notification, Step
from models.types import utcnow_aware
from notifications.kinds import kind_of
from notifications.outbox import enqueue, enqueue_composed, store_payloads
from notifications.render import render_message

log = logging.getLogger("roundtable.tick")
# Errors of the database itself, not of one step's data: they end the tick (and roll it back) as before.
_DATABASE_TROUBLE = (OperationalError, InterfaceError)

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
    blocked: list[str] = field(default_factory=list)  # "GROUP/step: reason", one per step blocked this tick
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class EngineConfig:
    sender: str = DEFAULT_SENDER
    base_url: str = "http://127.0.0.1:8000"
    secret: str = ""
    reply_address: str | None = None  # ROUNDTABLE_REPLY_ADDRESS: Reply-To replies+<token>@…, invitations' ORGANIZER


def tick(session: Session, now: datetime, config: EngineConfig | None = None) -> TickReport:
    """One tick. A step or cycle whose data makes it fail is marked blocked (savepoints keep its half-done
    changes out) and every other step and cycle goes on; only trouble with the database itself escapes."""
    now = utcnow_aware(now)
    if now.year not in MOMENT_YEARS:  # the CLI refuses these first; a year 9999 overflowed in delivery
        raise ValueError(f"tick at {now.isoformat()}: out of range (years {MOMENT_YEARS[0]}–{MOMENT_YEARS[-1]})")
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
    roster_mark = _roster_mark(session) if cycles else []
    for cycle in cycles:
        cs = states[cycle.id] = CycleState(session, cycle, config.sender, config.base_url, config.secret,
                                           config.reply_address, now=now, _steps=steps[cycle.id])
        _advance_cycle(cs, now, report, roster_mark)
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
        if step.data.get("blocked"):
            continue  # retried by the periodic sweep, not every second
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


def _advance_cycle(cs: CycleState, now: datetime, report: TickReport, roster_mark: list) -> None:
    session = cs.session
    try:
        cs.timeline  # noqa: B018 - a snapshot or anchors that no longer compute block the cycle, not the tick
    except Exception as exc:  # noqa: BLE001
        unfinished = [step for step in cs.steps() if step.state not in FINISHED]
        if unfinished:
            _block(cs, unfinished[0], exc, now, report, prefix="the cycle's dates cannot be computed: ")
        return
    # Who holds which role, and on which day: when neither changed, nobody joined an open step's audience.
    mark = [*roster_mark, now.astimezone(cs.zone).date().isoformat()]
    for step in cs.steps():
        before = step.state
        if _idle(step, now, mark):
            continue  # nothing can happen to it now: no savepoint (an idle tick stays a few statements)
        times = (step.opens_at, step.due_at)
        try:
            with session.begin_nested():  # one step's failure rolls back only its own changes
                urgent = handler_for(step.kind).advance(cs, step, now)
                if urgent:
                    schedule(cs, step, urgent, now)
                if step.state == "open" and step.data.get("audience_mark") != mark:
                    _plan_for_joiners(cs, step, now)
                    step.data["audience_mark"] = mark
                if (step.opens_at, step.due_at) != times and step.state not in FINISHED:
                    # a window shifted (late predecessor, revised plan): the deadline in calendars follows
                    sync_calendar_entries(cs, step, _dated_as_is(cs, step), now)
                session.flush()
        except _DATABASE_TROUBLE:
            raise  # not this step's data: the database itself (down, read-only, locked)
        except Exception as exc:  # noqa: BLE001 - bad data in one step must not stop the others
            _block(cs, step, exc, now, report)
            continue
        if step.data.get("blocked"):
            del step.data["blocked"]  # it went through: no longer blocked
        if before == "planned" and step.state != "planned":
            report.opened.append(step.key)
        if before not in FINISHED and step.state in FINISHED:
            report.closed.append(step.key)
    if all(step.state in FINISHED for step in cs.steps()):
        cs.cycle.state = "finished"
        report.finished_cycles.append(cs.cycle.id)


def _idle(step: Step, now: datetime, mark: list) -> bool:
    """Whether advancing the step now would certainly do nothing: finished; planned and not yet due to open;
    open, of a kind that only closes at its deadline, before it, with the same roster and day as last seen."""
    if step.state in FINISHED:
        return True
    if step.state == "planned":
        return step.opens_at is None or step.opens_at > now
    handler = handler_for(step.kind)
    return (step.state == "open" and type(handler).advance is StepHandler.advance and handler.closes_at_due
            and step.due_at is not None and step.due_at > now and not step.data.get("blocked")
            and step.data.get("audience_mark") == mark)


def _roster_mark(session: Session) -> list:
    """A fingerprint of the memberships (rows, newest, ends and starts): one statement per tick."""
    table = Membership.__table__
    row = session.execute(select(func.count(), func.max(table.c.id), func.count(table.c.ends_on),
                                 func.max(table.c.ends_on), func.max(table.c.starts_on))).one()
    return [str(value) for value in row]


def _dated_as_is(cs: CycleState, step: Step):
    return replace(cs.timeline[step.key], opens_at=step.opens_at, due_at=step.due_at, starts_at=step.starts_at,
                   ends_at=step.ends_at)


# ---- audiences on the day a message is decided -----------------------------------------------------------

def _addressed_ids(cs: CycleState, step: Step, kind: str, now: datetime) -> set[int]:
    """Who may receive a message of `kind` about `step` on the day of `now`, as the kind says (its
    `addressed_to`); asked once per tick."""
    addressed_to = kind_of(kind).addressed_to
    return cs.memo(("addressed", step.key, addressed_to, now.astimezone(cs.zone).date()),
                   lambda: {person.member_id for person in _addressees(cs, step, addressed_to, now)})


def _addressees(cs: CycleState, step: Step, addressed_to: str, now: datetime) -> list[Addressee]:
    """The step's audience, the secretariat, the escalation's roles, or anyone in the cycle's groups."""
    if addressed_to == "secretariat":
        return cs.secretariat(now)
    if addressed_to == "escalation":
        escalation = cs.step_def(step.key).escalation
        return cs.people(escalation.to, [cs.group.code], now) if escalation and escalation.to else []
    if addressed_to == "groups":
        return cs.people(tuple(ROLE_TITLES), None, now)
    return handler_for(step.kind).recipients(cs, step, now)


def _still_addressed(cs: CycleState, step: Step, row: DueRow, now: datetime) -> bool:
    if row.member_id is None or row.kind == "cancel":
        return True  # a cancellation must still leave the calendar of whoever had the invitation
    return row.member_id in _addressed_ids(cs, step, row.kind, now)


def _plan_for_joiners(cs: CycleState, step: Step, now: datetime) -> None:
    """People who joined the step's audience after it was planned get its messages too (a new chair gets the
    open approval request): rows for whoever is in the audience today but has no opening message yet."""
    handler = handler_for(step.kind)
    if not handler.opening:
        return
    today = {person.member_id: person for person in handler.recipients(cs, step, now)}
    if not today:
        return
    have = set(cs.session.exec(select(Notification.member_id).where(
        Notification.step_id == step.id, Notification.kind == handler.opening)).all())
    joiners: list[Addressee] = [person for member_id, person in today.items() if member_id not in have]
    if not joiners:
        return
    dated = cs.timeline[step.key]
    if step.opens_at and dated.opens_at and step.opens_at != dated.opens_at:
        from flows.cycle import shifted

        dated = shifted(cs, dated, step.opens_at)
    plans = [Planned(p.kind, p.slot, p.due_at, joiners, p.revision) for p in handler.plan(cs, step, dated)
             if kind_of(p.kind).addressed_to == "audience"]
    schedule(cs, step, plans, now)


# ---- blocked steps ----------------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, StepBlocked):
        return text
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _block(cs: CycleState, step: Step, exc: BaseException, now: datetime, report: TickReport,
           prefix: str = "") -> None:
    """Mark the step blocked with its reason; the secretariat hears of each new reason once."""
    reason = (prefix + _reason(exc))[:500]
    # A warning, not a traceback (the CLI prints warnings); the details for whoever turns on debug logging.
    log.warning("step %s of cycle %s blocked: %s", step.key, cs.cycle.id, reason)
    log.debug("why step %s is blocked", step.key, exc_info=exc)
    report.blocked.append(f"{cs.group.code}/{step.key}: {reason}")
    known = step.data.get("blocked") or {}
    if known.get("reason") == reason:
        return
    step.data["blocked"] = {"reason": reason, "since": now.isoformat()}
    try:
        with cs.session.begin_nested():
            _tell_secretariat(cs, step, reason, now)
    except _DATABASE_TROUBLE:
        raise
    except Exception as exc:  # noqa: BLE001 - the step stays marked blocked; status shows it
        log.warning("could not tell the secretariat that step %s is blocked: %s", step.key, _reason(exc))


def _tell_secretariat(cs: CycleState, step: Step, reason: str, now: datetime) -> None:
    """One message per secretariat member (the chairs when there is none), rendered at once: the step's own
    rendering may be what fails."""
    people = cs.secretariat(now) or cs.people(("chair", "co-chair"), [cs.group.code], now)
    try:
        definition = cs.step_def(step.key)
        titles = (definition.title_lo, definition.title_en)
    except Exception:  # noqa: BLE001 - a broken snapshot: the key is all there is
        titles = (step.key, step.key)
    digest = hashlib.sha256(reason.encode("utf-8")).hexdigest()[:12]
    for person in people:
        key = outbox_key(cs.cycle.id, step.key, "step_blocked", digest, person.member_id, 0)
        role_lo, role_en = ROLE_TITLES.get(person.role, ROLE_TITLES["secretariat"])
        context = {  # the shape flows/messages.py gives every template, without the step's own parts
            "recipient": {"name": person.name, "name_en": person.name_en or person.name, "email": person.email,
                          "title_lo": "", "title_en": "", "role": person.role, "role_lo": role_lo,
                          "role_en": role_en, "show_role_lo": True, "show_role_en": True,
                          "language": person.language},
            "group": {"code": cs.group.code, "name_lo": cs.group.name_lo, "name_en": cs.group.name_en},
            "year": cs.cycle.year, "tz": cs.group.timezone, "link": None, "agenda": [],
            "deadline": None, "deadline_event": False, "attachments": [],
            "step": {"key": step.key, "kind": step.kind, "title_lo": titles[0], "title_en": titles[1],
                     "short_lo": titles[0], "short_en": titles[1], "opens_at": step.opens_at,
                     "due_at": step.due_at, "starts_at": step.starts_at, "ends_at": step.ends_at,
                     "location_lo": None, "location_en": None},
            "extra": {"reason": reason, "since": now},
        }
        enqueue_composed(cs.session, render_message("step_blocked", context), key=key, sender=group_sender(cs),
                         to=person.email, kind="step_blocked", now=now, automatic=kind_of("step_blocked").automatic,
                         cycle_id=cs.cycle.id, step_id=step.id, step_key=step.key, member_id=person.member_id,
                         slot=digest, context={"group": context["group"], "year": cs.cycle.year,
                                               "tz": cs.group.timezone})


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
        by_step: dict[int | None, list[DueRow]] = defaultdict(list)
        for row in rows:
            by_step[row.step_id].append(row)
        batch = _Batch()
        for step_rows in by_step.values():
            first = step_rows[0]
            cs = states.get(first.cycle_id) or states.setdefault(
                first.cycle_id, CycleState(session, session.get(Cycle, first.cycle_id), config.sender,
                                           config.base_url, config.secret, config.reply_address, now=now))
            step = session.get(Step, first.step_id)
            part, counts = _Batch(), _counts(report)
            try:
                with session.begin_nested():  # a step whose messages cannot be decided blocks only itself
                    _decide(cs, step, step_rows, now, report, part, bouncing)
                    session.flush()  # what rendering changed through the ORM (documents)
            except _DATABASE_TROUBLE:
                raise
            except Exception as exc:  # noqa: BLE001
                _restore_counts(report, counts)
                _block(cs, step, exc, now, report)  # its rows stay scheduled: tried again next tick
                continue
            batch.payloads.update(part.payloads)
            batch.decided += part.decided
        batch.write(session)
        del members


def _decide(cs: CycleState, step: Step, rows: list[DueRow], now: datetime, report: TickReport,
            batch: _Batch, bouncing: set[str] = frozenset()) -> None:
    """Decide on one step's due rows: skip, render, or fold stale ones into digests."""
    stale_groups: dict[tuple, list[DueRow]] = defaultdict(list)
    handler = handler_for(step.kind)
    stale_after = timedelta(hours=cs.definition.defaults.stale_after_hours)
    updates = [row for row in rows if row.kind == "update"]
    invited = invited_members(cs.session, step) if updates else set()
    latest = {}  # one update per person per tick, the latest SEQUENCE (slot s<SEQUENCE>)
    for row in sorted(updates, key=lambda r: int(r.slot[1:] or 0) if r.slot[1:].isdigit() else 0):
        latest[row.member_id] = row.id
    for row in rows:
        if row.kind == "update" and latest.get(row.member_id) != row.id:
            _drop(row, "skipped", "superseded by a later update in the same tick", report, batch)
            continue
        if row.kind == "update" and row.member_id not in invited:
            # Their invitation has not gone yet (a joiner's goes now): it carries the latest times and SEQUENCE,
            # and an update besides would be the same REQUEST twice.
            _drop(row, "skipped", "no invitation went to them before: the invitation carries the change",
                  report, batch)
            continue
        if row.recipient.lower() in bouncing:
            _drop(row, "skipped", f"{row.recipient} bounces (see `status`); fix it in the roster", report, batch)
            continue
        if not _still_addressed(cs, step, row, now):
            _drop(row, "skipped", f"not in the audience on {now.astimezone(cs.zone).date()}", report, batch)
            continue
        if not handler.relevant(cs, step, row):
            _drop(row, "skipped", "no longer needed when its moment came", report, batch)
            continue
        stale = now - row.due_at > stale_after
        if stale and row.policy == "skip_if_stale":
            _drop(row, "skipped", f"stale: due {row.due_at.isoformat()}", report, batch)
        elif stale and row.policy == "fold":
            stale_groups[(row.cycle_id, row.step_id, row.member_id, row.revision)].append(row)
        else:
            _render(cs, step, row, now, report, batch)
    for group in stale_groups.values():
        _fold(cs, group, now, report, batch)


def _counts(report: TickReport) -> tuple:
    return report.prepared, report.skipped, report.folded, dict(report.by_kind)


def _restore_counts(report: TickReport, counts: tuple) -> None:
    report.prepared, report.skipped, report.folded = counts[:3]
    report.by_kind.clear()
    report.by_kind.update(counts[3])


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
