"""Collect: a call to every member (suggestions, comments), reminders to those who have not answered,
the list of the silent to the secretariat head after the deadline."""

from flows.steps.base import StepHandler


class CollectHandler(StepHandler):
    kind = "collect"
    opening = "call"
    purpose = "respond"
