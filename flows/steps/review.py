"""Review: the secretariat's January review. A meeting for the secretariat plus a checklist task —
each suggestion accepted, merged or rejected and tied to the recommendation it serves. One completed
checklist finishes the task for the whole secretariat and closes the review (else its deadline does)."""

from calendars.timeline import DatedStep
from flows.state import CycleState, Planned
from flows.steps.base import StepHandler
from models.audience import ROLE_TITLES, Addressee
from models.step_kinds import StepKindSpec
from models.tables import Step


class ReviewHandler(StepHandler):
    spec = StepKindSpec("review", accepts=("location_lo", "location_en"), answer="checklist")
    opening = "task"
    purpose = "checklist"

    def plan(self, cs: CycleState, step: Step, dated: DatedStep, revision: int = 0) -> list[Planned]:
        plans = super().plan(cs, step, dated, revision)
        if dated.starts_at:
            plans.append(Planned("invite", "", dated.opens_at, self.expected(cs, step, dated)))
        return plans

    def advance(self, cs: CycleState, step: Step, now):
        was_open = step.state == "open"
        urgent = super().advance(cs, step, now)
        held = step.ends_at is None or now >= step.ends_at  # its meeting still takes replies until it is over
        if step.state == "open" and held and self.answered_now(cs, step):
            # The checklist is signed off (flows.plan.close_review: every suggestion has a disposition):
            # the review is over before its deadline.
            step.state, step.closed_at, step.outcome = "closed", now, "complete"
        if was_open and step.state != "open":  # each author is told what became of their suggestions
            from flows.plan import authors  # flows.plan imports flows.cycle, which imports this module

            everyone = cs.people(tuple(ROLE_TITLES), None, now)
            told = authors(cs.session, cs.cycle.id)
            urgent.append(Planned("review_outcome", "", now, [p for p in everyone if p.member_id in told]))
        return urgent

    def extra(self, cs, step, row, now) -> dict:
        if row.kind == "review_outcome":
            from flows.plan import outcomes_by_author

            # Once per tick for every author (the plan does not change while the tick tells them).
            outcomes = cs.memo(("review_outcomes",), lambda: outcomes_by_author(cs.session, cs.cycle.id))
            return {"suggestions": outcomes.get(row.member_id, [])}
        return super().extra(cs, step, row, now)

    def late(self, cs: CycleState, step: Step) -> list[Addressee]:
        return [] if self.answered_now(cs, step) else self.expected(cs, step)

    def relevant(self, cs, step, row) -> bool:
        if row.kind in ("reminder", "digest"):
            return step.state == "open" and not step.data.get("reminders_paused") and not self.answered_now(cs, step)
        if row.kind == "cancel":
            return True
        if row.kind in ("invite", "update"):
            return step.starts_at is None or step.state in ("planned", "open")
        return super().relevant(cs, step, row)
