"""What every step kind shares: an opening message, reminders to those who have not answered,
an escalation when people are late, and the open → closed transitions. A kind module overrides
only what makes it different."""

from datetime import datetime

from sqlmodel import select

from calendars.rsvp import who_is_coming
from calendars.timeline import DatedStep
from flows.state import FINISHED, CycleState, DueRow, Planned
from models.audience import Addressee
from models.step_kinds import StepKindSpec
from models.tables import Response, Step


class StepHandler:
    """One step kind. A subclass in its own module under flows/steps/ is found and registered by
    flows/steps/__init__.py; its `spec` tells the definition loader and the timeline what a step of
    this kind may say (fields, time points, what counts as an answer)."""

    spec = StepKindSpec("")
    opening: str | None = None  # message kind sent to the audience when the step opens
    purpose = "respond"  # the page the recipient's own link opens (notifications.kinds.LINK_PURPOSES)
    closes_at_due = True
    has_deadline = True  # its `due` is a deadline people see in their calendar (a meeting's is not)

    @property
    def kind(self) -> str:
        return self.spec.kind

    # ------------------------------------------------------------ planning
    def plan(self, cs: CycleState, step: Step, dated: DatedStep, revision: int = 0) -> list[Planned]:
        """Every time-driven message of the step, dated; the tick sends each when its moment comes."""
        definition = cs.step_def(step.key)
        plans: list[Planned] = []
        audience = self.expected(cs, step, dated)
        if self.opening and dated.opens_at:
            plans.append(Planned(self.opening, "", dated.opens_at, audience, revision))
        for index, (_text, moment) in enumerate(dated.reminders):
            plans.append(Planned("reminder", f"r{index}", moment, audience, revision))
        if definition.escalation and dated.escalation_at:
            chiefs = cs.people(definition.escalation.to, [cs.group.code], dated.escalation_at)
            plans.append(Planned("escalation", "", dated.escalation_at, chiefs, revision))
        return plans

    # ------------------------------------------------------------ answers
    def expected(self, cs: CycleState, step: Step, dated: DatedStep | None = None) -> list[Addressee]:
        if dated is None and step.state == "open" and cs.now is not None:
            # issue 14: an open step's audience is taken on the day it is asked about (the tick's day), so
            # someone removed is no longer expected and a new chair is.
            return cs.audience_of(cs.step_def(step.key), cs.now)
        dated = dated or cs.timeline[step.key]
        return cs.audience_of(cs.step_def(step.key), dated.opens_at or dated.starts_at)

    def recipients(self, cs: CycleState, step: Step, on: datetime) -> list[Addressee]:
        """Who the step's own messages (opening, reminders) may go to on the day of `on`: its audience (an
        approval adds the approvers' deputies)."""
        return cs.audience_of(cs.step_def(step.key), on)

    def answered(self, cs: CycleState, step: Step) -> set[int]:
        """Members who have answered (what counts as an answer: the definition's `response`, else the kind's)."""
        kind = cs.step_def(step.key).answer_kind()
        if not kind or step.id is None:
            return set()
        rows = cs.session.exec(select(Response.member_id).where(Response.step_id == step.id, Response.kind == kind))
        return set(rows.all())

    def progress(self, cs: CycleState, step: Step) -> tuple[list[Addressee], set[int]]:
        """The people asked (`expected`) and which of them have answered: what status, the desk and the
        status page count."""
        expected = self.expected(cs, step)
        return expected, self.answered(cs, step) & {person.member_id for person in expected}

    def answered_now(self, cs: CycleState, step: Step) -> set[int]:
        """`answered`, asked once per step (and plan revision) per tick: a tick records no answers, and
        deciding on hundreds of due reminders must not ask the same question for each of them."""
        return cs.memo(("answered", step.id, cs.cycle.plan_revision), lambda: self.answered(cs, step))

    def late(self, cs: CycleState, step: Step) -> list[Addressee]:
        done = self.answered_now(cs, step)
        return [person for person in self.expected(cs, step) if person.member_id not in done]

    # ------------------------------------------------------------ transitions
    def advance(self, cs: CycleState, step: Step, now: datetime) -> list[Planned]:
        """Open, close or settle the step at `now`; returns messages to send right away."""
        if step.state == "planned" and step.opens_at and now >= step.opens_at and self._predecessors_done(cs, step):
            step.state, step.opened_at = "open", now
            held_back = self._held_back_until(cs, step)
            if held_back and held_back > step.opens_at:
                self._shift_window(cs, step, held_back)
        if step.state == "open" and self.closes_at_due and step.due_at and now >= step.due_at:
            step.state, step.closed_at = "closed", now
            step.outcome = step.outcome or self.outcome_at_close(cs, step)
        return []

    def outcome_at_close(self, cs: CycleState, step: Step) -> str:
        return "complete" if not self.late(cs, step) else "incomplete"

    def finished_at(self, step: Step) -> datetime | None:
        """When the step really ended: at its deadline, even if the tick that closed it came later."""
        if step.closed_at and step.due_at:
            return min(step.closed_at, step.due_at)
        return step.closed_at

    def _held_back_until(self, cs: CycleState, step: Step) -> datetime | None:
        """When the last predecessor finished (None without predecessors)."""
        from flows.steps import handler_for

        ends = [handler_for(row.kind).finished_at(row) for row in map(cs.step_row, cs.step_def(step.key).after)]
        return max((e for e in ends if e), default=None)

    def _shift_window(self, cs: CycleState, step: Step, start: datetime) -> None:
        """A predecessor finished late: the step keeps its planned length (in business days) from `start`,
        and its pending messages move with it, so nobody gets a window that has already closed."""
        from flows.cycle import reschedule, shifted

        dated = shifted(cs, cs.timeline[step.key], start)
        step.opens_at, step.due_at = dated.opens_at, dated.due_at
        reschedule(cs, step, self.plan(cs, step, dated))

    def _predecessors_done(self, cs: CycleState, step: Step) -> bool:
        return all(cs.step_row(key).state in FINISHED for key in cs.step_def(step.key).after)

    # ------------------------------------------------------------ at send time
    def relevant(self, cs: CycleState, step: Step, row: DueRow) -> bool:
        """Whether a due message still makes sense now (reminders only to those who have not answered)."""
        if row.kind == "cancel":
            return True  # a dropped meeting must leave every invitee's calendar
        if row.kind == self.opening:
            return step.state == "open"
        if row.kind in ("reminder", "digest"):
            if step.data.get("reminders_paused"):  # the secretariat paused them on its desk: skipped, not postponed
                return False
            return step.state == "open" and row.member_id not in self.answered_now(cs, step)
        if row.kind == "escalation":
            return bool(self.late(cs, step))
        return True

    def link_revision(self, row: DueRow) -> int:
        """The plan revision a recipient's link is bound to (0: any; an approval binds its own)."""
        return 0

    def status(self, cs: CycleState, step: Step) -> dict:
        """What `status` shows of the step beyond state, times and counts: who is coming to its meeting."""
        return {"rsvp": who_is_coming(cs.session, step.id) if step.starts_at else {}}

    def extra(self, cs: CycleState, step: Step, row: DueRow, now: datetime) -> dict:
        """Kind-specific template data (the `extra` of the template context)."""
        if row.kind == "update" and step.starts_at:  # the new time, in figures both languages read the same
            # (here, not in meeting.py: the review's meeting gets updates too, and failed to render them)
            starts, ends = step.starts_at.astimezone(cs.zone), step.ends_at.astimezone(cs.zone)
            return {"changes": f"{starts:%Y-%m-%d %H:%M}–{ends:%H:%M} (UTC{starts:%z})"}
        if row.kind == "reminder" and step.due_at:
            return {"days_left": max(0, (step.due_at.astimezone(cs.zone).date() - now.astimezone(cs.zone).date()).days)}
        if row.kind == "digest":  # the stale reminders of this step, folded into one message
            definition = cs.step_def(step.key)
            return {"missed": [{"title_lo": definition.title_lo, "title_en": definition.title_en,
                                "due_at": step.due_at}]}
        if row.kind == "escalation":
            late = self.late(cs, step)
            return {"late": [{"name": p.name, "email": p.email} for p in late], "late_count": len(late)}
        return {}
