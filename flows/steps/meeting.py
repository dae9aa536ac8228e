"""Meeting: the invite when the step opens, the agenda some business days before, and after it ends
the satisfaction survey to those who came and the minutes request to the secretariat."""

from sqlmodel import select

from calendars.timeline import DatedStep
from flows.state import CycleState, DueRow, Planned
from flows.steps.base import StepHandler
from models.step_kinds import StepKindSpec
from models.tables import Response, Step

# Attendance is recorded (after the meeting) as one "attendance" answer per person, body "present" or "absent".
ATTENDANCE = "attendance"
MINUTES = "minutes"  # the secretariat's upload of the minutes (flows/answers.record_minutes)


class MeetingHandler(StepHandler):
    spec = StepKindSpec(
        "meeting", required=("starts", "ends"),
        accepts=("location_lo", "location_en", "agenda", "survey"),
        extra_points=("agenda_at", "minutes_due", "survey_due"),
        # Invitations go 10 business days ahead; the step is over when the meeting ends; the survey
        # (if any) is open for 5 business days after it.
        derived={"opens": "starts - 10 business days", "due": "ends", "survey_due": "ends + 5 business days"},
        answer="rsvp",
    )
    opening = "invite"
    purpose = "rsvp"
    has_deadline = False  # the meeting itself is the calendar entry

    def plan(self, cs: CycleState, step: Step, dated: DatedStep, revision: int = 0) -> list[Planned]:
        definition = cs.step_def(step.key)
        people = self.expected(cs, step, dated)
        plans = [Planned("invite", "", dated.opens_at, people)]
        if dated.extra.get("agenda_at"):
            plans.append(Planned("agenda", "", dated.extra["agenda_at"], people))
        if definition.survey:
            plans.append(Planned("survey", "", dated.ends_at, people))
        if dated.extra.get("minutes_due"):
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
        if row.kind == "survey":
            return row.member_id in self.participants(cs, step)
        if row.kind == "minutes_due":  # no request for minutes someone has already uploaded
            return not cs.memo(("minutes", step.id), lambda: cs.session.exec(select(Response.id).where(
                Response.step_id == step.id, Response.kind == MINUTES)).first())
        return True

    def participants(self, cs: CycleState, step: Step) -> set[int]:
        """Who took part: those recorded present once attendance is recorded; until then every invitee
        who did not decline. Asked once per tick."""
        def compute() -> set[int]:
            rows = cs.session.exec(select(Response.member_id, Response.kind, Response.body).where(
                Response.step_id == step.id, Response.kind.in_((ATTENDANCE, "rsvp")))).all()
            attendance = {member for member, kind, body in rows if kind == ATTENDANCE and body == "present"}
            if any(kind == ATTENDANCE for _, kind, _ in rows):
                return attendance
            declined = {member for member, kind, body in rows if kind == "rsvp" and body == "DECLINED"}
            return {p.member_id for p in self.expected(cs, step)} - declined
        return cs.memo(("participants", step.id), compute)
