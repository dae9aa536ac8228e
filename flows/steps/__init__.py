"""The step kinds: one handler module each, found here by looking, never listed.

Adding a kind means one module under flows/steps/ (a StepHandler subclass with its spec, and the
registration of any message kind of its own), one template folder per new message kind, and steps
of that kind in a cycle YAML. Importing this package registers every kind's spec for the definition
loader (models.step_kinds) and every handler for the engine.
"""

import importlib
import inspect
import pkgutil

from flows.steps.base import StepHandler
from models.step_kinds import register as register_spec
from models.step_kinds import unregister as unregister_spec

HANDLERS: dict[str, StepHandler] = {}


def register(handler: StepHandler) -> StepHandler:
    register_spec(handler.spec)
    HANDLERS[handler.kind] = handler
    return handler


def unregister(kind: str) -> None:
    HANDLERS.pop(kind, None)
    unregister_spec(kind)


def handler_for(kind: str) -> StepHandler:
    return HANDLERS[kind]


def _discover() -> None:
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, StepHandler) and cls.__module__ == module.__name__ and cls.spec.kind:
                register(cls())


_discover()
