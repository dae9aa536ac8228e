"""Submit: the approved work plan to the Ministry of Planning and Investment, copied to the secretariat
head; reminders until MPI's focal point records the receipt."""

from flows.documents import documents_for
from flows.steps.base import StepHandler
from models.step_kinds import StepKindSpec
from models.tables import Step


class SubmitHandler(StepHandler):
    spec = StepKindSpec("submit", answer="receipt")
    opening = "submission"
    purpose = "receipt"

    def relevant(self, cs, step: Step, row) -> bool:
        if row.kind == "submission":
            return True  # the approved plan must reach MPI, however late
        return super().relevant(cs, step, row)

    def extra(self, cs, step: Step, row, now) -> dict:
        if row.kind == "submission":
            names = cs.step_def(step.key).attachments
            return {"documents": [made[0] for name in names
                                  for made in documents_for(cs, name, cs.cycle.plan_revision, now)]}
        return super().extra(cs, step, row, now)

    def outcome_at_close(self, cs, step: Step) -> str:
        return "received" if self.answered(cs, step) else "sent"
