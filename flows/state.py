"""What the engine knows about one live cycle while it works on it: rows, definition, dates, people."""

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from calendars.timeline import DatedStep, compute_timeline
from models.audience import ROLE_TITLES, Addressee, audience
from models.definition import CycleDefinition, StepDef
from models.memo import Memo
from models.tables import Cycle, Step, WorkingGroup
from notifications.sender import sender_domain

FINISHED = ("closed", "done", "skipped")
DEFAULT_SENDER = "Roundtable <roundtable@localhost>"


class StepBlocked(Exception):
    """A step cannot go on with the data it has (e.g. nobody to ask for approval). The tick marks the step
    blocked with this reason, tells the secretariat once and goes on with every other step and cycle."""

# Parsed definitions and computed timelines, shared by every CycleState (a new one each tick): parsing
# the snapshot and computing the business-day timeline cost ~0.2 ms and ~4 ms a cycle, every tick.
# Keyed by content (the snapshot's JSON, the anchors, the zone, the closed days), never by row id, so a
# changed anchor or another database's cycle 1 is a different entry. Bounded: cleared when full.
_definitions = Memo("flows.state.definitions", 256)  # fingerprint -> CycleDefinition
_timelines = Memo("flows.state.timelines", 256)  # (fingerprint, year, anchors, zone, closed days) -> DatedSteps
KNOWN_DEFINITIONS = "roundtable.definitions"  # session.info key: {cycle id: its parsed definition}


@dataclass(frozen=True)
class Planned:
    """A message the engine plans ahead: one outbox row per recipient."""

    kind: str
    slot: str
    due_at: datetime
    recipients: list[Addressee]
    revision: int = 0


@dataclass(slots=True)
class DueRow:
    """An outbox row whose moment has come, as the tick decides on it and renders it: the columns it
    reads, and those it writes back (state, message_id, subject, cc, context, next_attempt_at,
    last_error). Plain records, written back in one executemany per batch: ORM objects for thousands
    of rows cost more than rendering them."""

    id: int
    key: str
    cycle_id: int | None
    step_id: int | None
    step_key: str
    member_id: int | None
    recipient: str
    kind: str
    slot: str
    revision: int
    policy: str
    due_at: datetime
    state: str
    cc: list
    context: dict
    subject: str
    message_id: str
    next_attempt_at: datetime | None
    last_error: str


def outbox_key(cycle_id: int, step_key: str, kind: str, slot: str, member_id: int | None, revision: int) -> str:
    """The idempotency key of a message: (cycle, step, kind, slot, recipient, revision)."""
    return f"c{cycle_id}/{step_key}/{kind}/{slot or '-'}/m{member_id if member_id is not None else '-'}/r{revision}"


@dataclass
class CycleState:
    session: Session
    cycle: Cycle
    sender: str = DEFAULT_SENDER
    base_url: str = "http://127.0.0.1:8000"
    secret: str = ""
    reply_address: str | None = None  # the mailbox replies come back to (ROUNDTABLE_REPLY_ADDRESS)
    # The moment of the tick (or status) working on the cycle: an open step's audience is taken on this day.
    now: datetime | None = None
    _steps: dict[str, Step] = field(default_factory=dict)
    _people: dict[tuple, list[Addressee]] = field(default_factory=dict)
    _memo: dict[tuple, Any] = field(default_factory=dict)

    @cached_property
    def _fingerprint(self) -> str:
        return json.dumps(self.cycle.definition, sort_keys=True, ensure_ascii=False)

    @cached_property
    def definition(self) -> CycleDefinition:
        """The cycle's snapshot, parsed (shared and read-only: never change it in place). A caller that holds it
        parsed already leaves it in its session's info under KNOWN_DEFINITIONS (the web app: reading and
        fingerprinting the snapshot cost ~0.15 ms of a 1.7 ms answer)."""
        known = self.session.info.get(KNOWN_DEFINITIONS, {}).get(self.cycle.id)
        if known is not None:
            return known
        return _definitions.get(self._fingerprint,
                                lambda: CycleDefinition.model_validate(self.cycle.definition))

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Remember an answer for the life of this state, i.e. one tick: what the tick itself does not change
        (answers, decisions, calendar entries, documents of a revision) is asked of the database once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @cached_property
    def domain(self) -> str:
        """The sender's domain: Message-IDs and calendar UIDs are made in it."""
        return sender_domain(self.sender)

    @cached_property
    def group(self) -> WorkingGroup:
        return self.session.get(WorkingGroup, self.cycle.group_id)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.group.timezone)

    @cached_property
    def group_codes(self) -> list[str]:
        """The cycle's group and its sub-groups (PSI and LIO under GSWG)."""
        children = self.session.exec(select(WorkingGroup.code).where(WorkingGroup.parent_id == self.group.id)).all()
        return [self.group.code, *sorted(children)]

    @property
    def anchors(self) -> dict[str, datetime]:
        return {key: datetime.fromisoformat(value) for key, value in self.cycle.anchors.items()}

    @cached_property
    def closed_days(self) -> list[date]:
        """The group's decreed days off (the holidays package does not know them)."""
        return [date.fromisoformat(str(d)) for d in self.group.closed_days]

    @cached_property
    def timeline(self) -> dict[str, DatedStep]:
        anchors = self.anchors
        key = (self._fingerprint, self.cycle.year, tuple(sorted((k, v.isoformat()) for k, v in anchors.items())),
               self.group.timezone, tuple(self.closed_days))
        dated = _timelines.get(key, lambda: compute_timeline(
            self.definition, self.cycle.year, anchors, timezone=self.group.timezone, closed_days=self.closed_days))
        return {d.key: replace(d, reminders=list(d.reminders)) for d in dated}  # copies: callers may change them

    def steps(self) -> list[Step]:
        if not self._steps:
            rows = self.session.exec(select(Step).where(Step.cycle_id == self.cycle.id).order_by(Step.position)).all()
            self._steps = {row.key: row for row in rows}
        return list(self._steps.values())

    def step_row(self, key: str) -> Step:
        self.steps()
        return self._steps[key]

    def step_def(self, key: str) -> StepDef:
        return self.definition.step(key)

    def people(self, roles, groups, on: datetime) -> list[Addressee]:
        """Who holds `roles` in `groups` (default: the cycle's groups) on the local day of `on`.
        Memberships do not change during one tick, so each question is asked of the database once."""
        key = (tuple(roles), tuple(groups or self.group_codes), on.astimezone(self.zone).date())
        if key not in self._people:
            self._people[key] = audience(self.session, key[1], key[0], key[2])
        return self._people[key]

    def role_of(self, member_id: int, on: datetime) -> str:
        """The role a member is addressed by in this cycle's groups ('member' if none)."""
        everyone = self.memo(("roles", on.astimezone(self.zone).date()),
                             lambda: {p.member_id: p.role for p in self.people(tuple(ROLE_TITLES), None, on)})
        return everyone.get(member_id, "member")

    def audience_of(self, step_def: StepDef, on: datetime) -> list[Addressee]:
        return self.people(step_def.audience.roles, step_def.audience.groups or None, on)

    def secretariat(self, on: datetime) -> list[Addressee]:
        return self.people(("secretariat-head", "secretariat"), [self.group.code], on)

    def reply_to(self, on: datetime) -> str | None:
        heads = self.people(("secretariat-head",), [self.group.code], on) or self.secretariat(on)
        return heads[0].email if heads else None
