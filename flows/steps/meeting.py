"""Meeting: the invite when the step opens, the agenda some business days before, and after it ends
the satisfaction survey to participants and the minutes reminder to the secretariat."""

from sqlmodel import select

from calendars.timeline import DatedStep
from flows.state import CycleState, DueRow, Planned
from flows.steps.base import StepHandler
from models.tables import Response, Step


class MeetingHandler(StepHandler):
    kind = "meeting"
    opening = "invite"
    purpose = "meeting"

    def plan(self, cs: CycleState, step: Step, dated: DatedStep, revision: int = 0) -> list[Planned]:
        definition = cs.step_def(step.key)
        people = self.expected(cs, step, dated)
        plans = [Planned("invite", "", dated.opens_at, people)]
        if dated.agenda_at:
            plans.append(Planned("agenda", "", dated.agenda_at, people))
        if definition.survey:
            plans.append(Planned("survey", "", dated.ends_at, people))
        if dated.minutes_due_at:
            plans.append(Planned("minutes_due", "", dated.ends_at, cs.secretariat(dated.ends_at)))
        return plans

    def answered(self, cs: CycleState, step: Step) -> set[int]:
        """Who has replied to the invitation (accepted, declined or tentative)."""
        rows = cs.session.exec(select(Response.member_id).where(Response.step_id == step.id, Response.kind == "rsvp"))
        return set(rows.all())

    def outcome_at_close(self, cs: CycleState, step: Step) -> str:
        return "held"

    def relevant(self, cs: CycleState, step: Step, row: DueRow) -> bool:
        if row.kind == "cancel":
            return True
        if row.kind in ("invite", "agenda", "update"):
            return step.state in ("planned", "open")  # no invitation to a meeting that is over
        return True
