"""Collect: a call to every member (suggestions, comments), reminders to those who have not answered,
the list of the silent to the secretariat head after the deadline."""

from flows.steps.base import StepHandler
from models.step_kinds import StepKindSpec


class CollectHandler(StepHandler):
    spec = StepKindSpec("collect", answer="suggestion")
    opening = "call"
    purpose = "respond"
