"""Task: a piece of work for the secretariat with a deadline, reminders and escalation."""

from flows.steps.base import StepHandler
from models.step_kinds import StepKindSpec


class TaskHandler(StepHandler):
    spec = StepKindSpec("task", answer="checklist")
    opening = "task"
    purpose = "checklist"
