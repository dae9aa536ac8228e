"""Review: the secretariat's January review. A meeting for the secretariat plus a checklist task —
each suggestion accepted, merged or rejected and tied to the recommendation it serves. One completed
checklist finishes the task for the whole secretariat."""

from calendars.timeline import DatedStep
from flows.state import CycleState, Planned
from flows.steps.base import StepHandler
from models.audience import Addressee
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
