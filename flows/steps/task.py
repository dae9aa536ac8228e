"""Task: a piece of work for the secretariat with a deadline, reminders and escalation."""

from flows.steps.base import StepHandler


class TaskHandler(StepHandler):
    kind = "task"
    opening = "task"
    purpose = "task"
