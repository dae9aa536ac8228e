"""What a definition may say about a step of each kind: its time points, required and accepted fields,
what counts as an answer. Each step kind declares this in its own handler module (flows/steps/<kind>.py),
which registers it here when flows.steps is imported; the definition loader and the timeline only ask.

The spec is data the lower layers can read without knowing the engine: a step kind is one handler
module, one template folder and steps in a cycle YAML.
"""

import difflib
import importlib
import sys
from dataclasses import dataclass, field

# Points every step may have; a kind may add its own (a meeting: agenda_at, minutes_due, survey_due).
CORE_POINTS = ("opens", "due", "starts", "ends")
# Fields any step may set, whatever its kind.
COMMON_FIELDS = frozenset({
    "key", "kind", "title_lo", "title_en", "short_title_lo", "short_title_en", "ask_lo", "ask_en", "audience",
    "after", "opens", "due", "starts", "ends", "reminders", "escalation", "attachments", "response",
})


@dataclass(frozen=True)
class StepKindSpec:
    kind: str
    required: tuple[str, ...] = ("due",)  # fields a step of this kind must set
    accepts: tuple[str, ...] = ()  # fields of its own, beyond COMMON_FIELDS (a meeting: location_lo, agenda …)
    extra_points: tuple[str, ...] = ()  # its own time points, each a field holding a time expression
    # A point the step does not set, computed from this expression (a meeting opens 10 business days ahead; its
    # survey is due 5 business days after it ends).
    derived: dict[str, str] = field(default_factory=dict)
    answer: str = ""  # what an answer to it is called when the definition's `response` does not say

    @property
    def fields(self) -> frozenset[str]:
        return COMMON_FIELDS | set(self.accepts) | set(self.extra_points)

    @property
    def points(self) -> tuple[str, ...]:
        return CORE_POINTS + self.extra_points


SPECS: dict[str, StepKindSpec] = {}


def register(spec: StepKindSpec) -> StepKindSpec:
    SPECS[spec.kind] = spec
    return spec


def unregister(kind: str) -> None:
    SPECS.pop(kind, None)


# Where the step kinds live. They are plug-ins: found by name when first asked for, so that reading a
# definition (the `timeline` command, a benchmark) needs no import of the engine in this layer.
PLUGIN_PACKAGE = "flows.steps"


def spec_for(kind: str) -> StepKindSpec:
    if PLUGIN_PACKAGE not in sys.modules:
        importlib.import_module(PLUGIN_PACKAGE)  # registers every kind it holds
    try:
        return SPECS[kind]
    except KeyError:
        close = difflib.get_close_matches(kind, SPECS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown step kind {kind!r} ({hint}known: {', '.join(sorted(SPECS))})") from None
