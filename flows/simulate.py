"""The simulator: a whole cycle (or several, one per group) on a fresh database, in simulated time.

A virtual clock jumps from one due moment to the next (no fixed-step polling): the next planned
message, the next step that opens or closes, the next retry, the next simulated answer the engine
reacts to at once (a decision, a revised plan, a checklist, a receipt). Other answers (suggestions,
comments, RSVPs) are recorded at their own moment and read at the engine's next one. Members
answer (seeded), chairs decide, MPI confirms the receipt. Every message is delivered by the real
outbox into DIR/mail/*.eml and listed in DIR/messages.jsonl.
"""

import heapq
import itertools
import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import func
from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from calendars.timeline import compute_timeline
from flows import answers, simulate_desk
from flows.answers import AnswerRefused
from flows.cycle import start_cycle
from flows.state import FINISHED, KNOWN_DEFINITIONS, CycleState
from flows.tick import EngineConfig, next_due, tick
from models.db import make_engine, upgrade
from models.definition import CycleDefinition
from models.groups import load_groups
from models.settings import SIMULATION_SECRET_FILE
from models.roster import import_roster
from models.tables import Cycle, Decision, Member, Notification, Response, Step, WorkingGroup
from notifications.outbox import SentRow, deliver_due
from notifications.transports import FileTransport

MAIL_DIR = "mail"  # under the output folder: every simulated message as an .eml file
SIM_SENDER = "GSWG Secretariat via Roundtable <roundtable@gswg.example.org>"
SIM_SECRET = "simulation-only-secret"  # links in simulated mail when no key is configured; never a real key
SIM_BASE_URL = "http://127.0.0.1:8000"  # where `roundtable web` serves by default
# Answers a step reacts to as soon as they are recorded (the rest are read at the engine's next moment).
ENGINE_REACTS_TO = ("decision", "revision", "checklist", "review", "receipt")
RECORDERS = {"suggestion": answers.record_suggestion, "comment": answers.record_comment,
             "rsvp": answers.record_rsvp, "checklist": answers.record_checklist, "review": simulate_desk.review,
             "decision": answers.record_decision, "revision": simulate_desk.revise,
             "receipt": answers.record_receipt}
REJECTION_REASON = ("ກະລຸນາເພີ່ມກິດຈະກຳກ່ຽວກັບເປົ້າໝາຍການພັດທະນາແບບຍືນຍົງ ທີ 16 — "
                    "Please add the SDG 16 activities recommended by the Round Table Meeting.")


@dataclass
class SimulationResult:
    out_dir: Path
    cycle_id: int  # the first (with one definition: the only) cycle
    cycle_ids: list[int] = field(default_factory=list)
    messages: int = 0
    by_step_kind: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    decisions: list[dict] = field(default_factory=list)
    finished: bool = False
    stopped_at: datetime | None = None
    ticks: int = 0


class _Agents:
    """Simulated people: each reacts to a message it receives by planning an answer for later."""

    def __init__(self, session: Session, rng: random.Random, respond_rate: float, calendar: BusinessCalendar):
        self.session, self.rng, self.respond_rate, self.calendar = session, rng, respond_rate, calendar
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.wakes: list[tuple[datetime, int]] = []  # the actions the engine reacts to at once
        self.counter = itertools.count()
        self.answer_kinds: dict[int, str] = {}

    def at(self, moment: datetime, action: Callable[[], None], *, wakes_engine: bool = False) -> None:
        """Plan an action. Most answers (suggestions, comments, RSVPs) change nothing until the engine's
        next moment, which reads them then: only those it reacts to at once (decisions, a revised plan,
        a checklist, a receipt) are moments of their own, as the web app would trigger a tick for them."""
        order = next(self.counter)
        heapq.heappush(self.queue, (moment, order, action))
        if wakes_engine:
            heapq.heappush(self.wakes, (moment, order))

    def next_moment(self) -> datetime | None:
        """The next action the engine must tick for (None: none is planned)."""
        return self.wakes[0][0] if self.wakes else None

    def last_moment(self) -> datetime | None:
        """When the last planned action happens (None: nothing is planned)."""
        return max(moment for moment, _, _ in self.queue) if self.queue else None

    def run_until(self, now: datetime) -> None:
        while self.queue and self.queue[0][0] <= now:
            heapq.heappop(self.queue)[2]()
        while self.wakes and self.wakes[0][0] <= now:
            heapq.heappop(self.wakes)

    def _between(self, start: datetime, end: datetime | None) -> datetime:
        end = end if end and end > start else start + timedelta(days=3)
        moment = start + (end - start) * self.rng.uniform(0.05, 0.9)
        return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def _answer(self, step: Step, member_id: int, kind: str, at: datetime, **fields) -> None:
        """Plan an answer, recorded through flows.answers as any other channel's (a refused one is dropped)."""
        def record():
            try:
                RECORDERS[kind](session=self.session, member_id=member_id, step_id=step.id, now=at,
                                channel="simulator", **fields)
            except AnswerRefused:
                pass  # as a person's would be: too late, or no longer asked
        self.at(at, record, wakes_engine=kind in ENGINE_REACTS_TO)

    def react(self, row: SentRow, now: datetime, revision: int) -> None:
        step = self.session.get(Step, row.step_id)
        rate = self.respond_rate / 2 if row.kind == "reminder" else self.respond_rate
        if row.kind in ("call", "reminder") and self.rng.random() < rate:
            suggestion = self.answer_kind(step) == "suggestion"
            texts = SUGGESTIONS if suggestion or row.kind == "reminder" else COMMENTS
            text, at = self.rng.choice(texts), self._between(now, step.due_at)
            if suggestion:
                self._answer(step, row.member_id, "suggestion", at, title=text)
            else:
                self._answer(step, row.member_id, "comment", at, body=text)
        elif row.kind == "invite" and self.rng.random() < self.respond_rate:
            partstat = self.rng.choice(("ACCEPTED", "ACCEPTED", "ACCEPTED", "TENTATIVE", "DECLINED"))
            self._answer(step, row.member_id, "rsvp", self._between(now, step.starts_at), partstat=partstat)
        elif row.kind == "task" and step.kind == "review":  # the review at the desk (flows/simulate_desk.py)
            self._answer(step, row.member_id, "review", self._between(now, step.due_at))
        elif row.kind == "task" and self.answer_kind(step) == "checklist":
            self._answer(step, row.member_id, "checklist", self._between(now, step.due_at),
                         accepted=14, merged=5, rejected=3)
        elif row.kind == "approval_request" and row.revision == revision:
            # The first draft is sometimes sent back; a revised plan is always approved.
            at = self._between(now, step.due_at)
            reject = row.revision == 1 and self.rng.random() < 0.15
            self._answer(step, row.member_id, "decision", at, revision=row.revision,
                         decision="reject" if reject else "approve", reason=REJECTION_REASON if reject else "")
        elif row.kind == "revision_request":
            revised = self.calendar.add_business_days(now.date(), 2)
            at = now.replace(year=revised.year, month=revised.month, day=revised.day)
            self._answer(step, row.member_id, "revision", at, revision=row.revision + 1)
        elif row.kind == "submission":
            self._answer(step, row.member_id, "receipt", self._between(now, step.due_at))

    def answer_kind(self, step: Step) -> str:
        """What an answer to the step is called, as its definition (or its kind) says."""
        if step.id not in self.answer_kinds:
            cycle = self.session.get(Cycle, step.cycle_id)
            self.answer_kinds[step.id] = CycleState(self.session, cycle).step_def(step.key).answer_kind()
        return self.answer_kinds[step.id]


SUGGESTIONS = (
    "ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ ຂັ້ນທ້ອງຖິ່ນ (SDG 16) — Seminar on good governance at local level (SDG 16)",
    "ປັບປຸງລະບົບຈັດເກັບຂໍ້ມູນຂອງກອງເລຂາ — Improve the secretariat's documentation system",
    "ກອງປະຊຸມວິຊາການກ່ຽວກັບປະມວນກົດໝາຍແພ່ງ — Thematic workshop on the civil code",
    "ຫຼັກສູດດ້ານການສື່ສານ ແລະ ພາສາອັງກິດ — Communication and English courses for junior officials",
    "ສູນບໍລິການແບບຈຸດດຽວ — One Door Service Centre case study",
)
COMMENTS = (
    "ເຫັນດີນຳຮ່າງແຜນ — Agree with the draft plan",
    "ຂໍເພີ່ມງົບປະມານສໍາລັບການຝຶກອົບຮົມ — Please add a training budget",
    "ຄວນກໍານົດຜູ້ຮັບຜິດຊອບໃຫ້ຈະແຈ້ງ — Name the responsible party for each activity",
)


def _next_moment(session: Session, cycle_ids: list[int], now: datetime,
                 agents: _Agents) -> tuple[datetime | None, datetime | None]:
    """The earliest moment after `now` at which the engine or a simulated person has something to do
    (no fixed-step polling); also when the earliest rendered message waits for delivery (None: none waits)."""
    candidates = [c for c in (next_due(session, now, cycle_ids), agents.next_moment()) if c is not None]
    ready_at = session.exec(select(func.min(Notification.next_attempt_at)).where(Notification.state == "ready")).one()
    moment = max(min(candidates), now + timedelta(seconds=1)) if candidates else None
    return moment, ready_at


def simulate(definition: CycleDefinition, roster: Path, groups: Path, year: int, anchors: dict[str, datetime],
             out_dir: Path, *, respond_rate: float = 0.6, seed: int = 1, until: datetime | None = None,
             definition_path: str = "", progress: Callable[[str], None] = lambda _m: None,
             secret: str | None = None, base_url: str = SIM_BASE_URL) -> SimulationResult:
    """One cycle (the CLI's `simulate` and `demo`)."""
    return simulate_cycles([definition], roster, groups, year, anchors, out_dir, respond_rate=respond_rate,
                           seed=seed, until=until, definition_paths=[definition_path], progress=progress,
                           secret=secret, base_url=base_url)


def simulate_cycles(definitions: list[CycleDefinition], roster: Path, groups: Path, year: int,
                    anchors: dict[str, datetime], out_dir: Path, *, respond_rate: float = 0.6, seed: int = 1,
                    until: datetime | None = None, definition_paths: list[str] | None = None,
                    progress: Callable[[str], None] = lambda _m: None, secret: str | None = None,
                    base_url: str = SIM_BASE_URL) -> SimulationResult:
    """Several cycles (one per definition, each for its own group) on one database and one virtual clock,
    as one deployment runs them: every tick advances all live cycles, one outbox delivers for all.
    Links are signed for `base_url` with `secret` (None: a simulation key, written to DIR/secret_key)."""
    if not definitions:
        raise ValueError("simulate_cycles needs at least one cycle definition")
    paths = list(definition_paths or [""] * len(definitions))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("roundtable.db", "roundtable.db-wal", "roundtable.db-shm", "messages.jsonl"):
        (out_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(out_dir / MAIL_DIR, ignore_errors=True)
    engine = make_engine(f"sqlite:///{out_dir / 'roundtable.db'}")
    upgrade(engine)
    if secret is None:  # links signed with a key written beside the database, so `roundtable web` serves them
        secret = SIM_SECRET
        (out_dir / SIMULATION_SECRET_FILE).write_text(secret + "\n", encoding="utf-8")
        (out_dir / SIMULATION_SECRET_FILE).chmod(0o600)
    else:  # the configured key: `roundtable web` uses it too; it is never copied into DIR
        (out_dir / SIMULATION_SECRET_FILE).unlink(missing_ok=True)
    config = EngineConfig(sender=SIM_SENDER, base_url=base_url, secret=secret)
    timelines = [compute_timeline(definition, year, anchors) for definition in definitions]
    launch = min(step.first_moment for timeline in timelines for step in timeline) - timedelta(days=1)
    zone = timelines[0][0].opens_at.tzinfo
    with Session(engine, expire_on_commit=False) as session:
        load_groups(session, groups)
        import_roster(session, roster, today=launch.date())
        cycles = [start_cycle(session, definition, year, anchors, launch, definition_path=path, sender=SIM_SENDER)
                  for definition, path in zip(definitions, paths)]
        session.commit()
        planned = session.exec(select(func.count()).select_from(Notification)).one()
        if len(cycles) == 1:
            progress(f"cycle {definitions[0].group} {year} started at {launch.isoformat()} ({planned} messages planned)")
        else:
            progress(f"{len(cycles)} cycles ({', '.join(d.group for d in definitions)}) {year} started at "
                     f"{launch.isoformat()} ({planned} messages planned)")
        cycle_ids = [cycle.id for cycle in cycles]
        result = SimulationResult(out_dir, cycle_ids[0], cycle_ids=cycle_ids)
        agents = _Agents(session, random.Random(seed), respond_rate, BusinessCalendar())
        transport = FileTransport(out_dir / MAIL_DIR)
        now = launch
        # Held for the whole run: the tick, the agents and the answers module then find the steps and the
        # groups in the session (its identity map keeps only what someone refers to; this session is their
        # only writer, and it never expires them).
        held_steps = session.exec(select(Step).where(Step.cycle_id.in_(cycle_ids))).all()  # noqa: F841
        held_groups = session.exec(select(WorkingGroup)).all()  # noqa: F841
        # Each snapshot parsed once for the run, as the web app keeps them: every answer and tick would otherwise
        # serialise the definition again to recognise it (flows.state.KNOWN_DEFINITIONS).
        session.info[KNOWN_DEFINITIONS] = {cycle.id: CycleState(session, cycle).definition for cycle in cycles}
        with (out_dir / "messages.jsonl").open("w", encoding="utf-8") as log:
            while True:
                moment, ready_at = _next_moment(session, cycle_ids, now, agents)
                if moment is None or (until is not None and moment > until):
                    break
                now = moment
                agents.run_until(now)
                session.commit()
                report = tick(session, now, config)
                result.ticks += 1
                sent = []
                if report.prepared or (ready_at is not None and ready_at <= now):  # else the outbox has nothing
                    sent = _deliver(engine, session, transport, now, log, result, launch.tzinfo)
                revisions = {cycle.id: cycle.plan_revision for cycle in cycles}  # the tick changed these objects
                for row in sent:
                    agents.react(row, now, revisions[row.cycle_id])
                if report.opened or report.closed:
                    progress(f"{now.astimezone(zone):%Y-%m-%d %H:%M} "
                             f"opened {_steps_named(report.opened)} closed {_steps_named(report.closed)} "
                             f"({result.messages} messages so far)")
                if all(cycle.state != "live" for cycle in cycles) and agents.next_moment() is None:
                    break
        # Answers after the engine's last moment (late RSVPs, say) are still recorded, up to --until.
        agents.run_until(until if until is not None else (agents.last_moment() or now))
        session.commit()
        result.stopped_at = now
        for cycle in cycles:
            session.refresh(cycle)
        _summarise(session, cycles, result, zone)
    engine.dispose()
    return result


def _steps_named(keys: list[str]) -> str:
    """['a'] as before for one cycle; with several cycles in step, 'a ×10' instead of ten names."""
    if not keys:
        return "-"
    counts = Counter(keys)
    if all(n == 1 for n in counts.values()):
        return str(keys)
    return "[" + ", ".join(f"{key} ×{n}" if n > 1 else key for key, n in counts.items()) + "]"


def _deliver(engine, session: Session, transport, now: datetime, log, result: SimulationResult,
             zone) -> list[SentRow]:
    sent: list[SentRow] = []

    def on_sent(row: SentRow, path: Path | None = None) -> None:
        sent.append(row)
        result.messages += 1
        result.by_step_kind[(row.step_key, row.kind)] += 1
        log.write(json.dumps({
            "at": now.astimezone(zone).isoformat(), "step": row.step_key, "kind": row.kind, "to": [row.recipient],
            "cc": list(row.cc or []), "subject": row.subject, "message_id": row.message_id,
            "file": f"{MAIL_DIR}/{path.name}" if path else None,
        }, ensure_ascii=False) + "\n")

    deliver_due(engine, transport, now, on_sent=on_sent)
    # The outbox changed rows in its own session: forget what this one holds of them. Steps, cycles,
    # answers and decisions are written by this session only and stay as they are.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Notification):
            session.expire(obj)
    return sent


def _summarise(session: Session, cycles: list[Cycle], result: SimulationResult, zone) -> None:
    ids = [cycle.id for cycle in cycles]
    for kind, count in session.exec(select(Response.kind, func.count()).join(Step, Step.id == Response.step_id)
                                    .where(Step.cycle_id.in_(ids)).group_by(Response.kind)).all():
        result.answers[kind] = count
    rows = session.exec(select(Decision, Member).join(Member, Member.id == Decision.member_id)
                        .order_by(Decision.at, Decision.id)).all()
    deputies = dict(session.exec(select(Member.id, Member.email).where(
        Member.id.in_({d.by_member_id for d, _ in rows if d.by_member_id}))).all())
    result.decisions = [{"member": m.email, "decision": d.decision, "revision": d.plan_revision,
                         "at": d.at.astimezone(zone).isoformat(),
                         **({"by": deputies[d.by_member_id]} if d.by_member_id else {})} for d, m in rows]
    steps = session.exec(select(Step).where(Step.cycle_id.in_(ids))).all()
    result.finished = all(cycle.state == "finished" for cycle in cycles) and all(s.state in FINISHED for s in steps)
