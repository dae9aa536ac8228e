"""One handler per step kind; adding a kind means one module here and one template folder."""

from flows.steps.approval import ApprovalHandler
from flows.steps.base import StepHandler
from flows.steps.collect import CollectHandler
from flows.steps.meeting import MeetingHandler
from flows.steps.review import ReviewHandler
from flows.steps.submit import SubmitHandler
from flows.steps.task import TaskHandler

HANDLERS: dict[str, StepHandler] = {
    handler.kind: handler
    for handler in (CollectHandler(), MeetingHandler(), ReviewHandler(), ApprovalHandler(), SubmitHandler(),
                    TaskHandler())
}


def handler_for(kind: str) -> StepHandler:
    return HANDLERS[kind]
