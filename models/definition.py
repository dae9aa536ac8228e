"""Cycle definitions: the YAML schema, the time-expression grammar, and the loader.

A definition is data (cycles/*.yaml). Every error names the file and the field path, e.g.
    cycles/gswg.yaml: steps[3].due: unknown anchor 'annual_meting' (known: annual_meeting)
"""

import re
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.tables import ROLES, STEP_KINDS

POINTS = ("opens", "due", "starts", "ends")
POINT_ALIASES = {"opens": "opens", "closes": "due", "due": "due", "starts": "starts", "ends": "ends"}
UNITS = {"business day": "bday", "business days": "bday", "day": "day", "days": "day",
         "week": "week", "weeks": "week", "hour": "hour", "hours": "hour"}
LATE_POLICIES = ("send_late", "skip_if_stale", "fold")
# What happens to a message whose moment passed while the engine was down.
DEFAULT_LATE_POLICY = {
    "call": "send_late", "approval_request": "send_late", "invite": "send_late", "update": "send_late",
    "cancel": "send_late", "agenda": "send_late", "task": "send_late", "submission": "send_late",
    "decision_notice": "send_late", "revision_request": "send_late", "minutes_due": "send_late",
    "survey": "skip_if_stale", "reminder": "fold", "escalation": "skip_if_stale",
}


class DefinitionError(ValueError):
    """All problems of one definition file, each as 'file: path: message'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class TimeExpr:
    """`ref [± N unit] [at HH:MM]` or `N unit before|after ref [at HH:MM]`.

    ref is an anchor, `step.point`, `step point` (point: opens, closes/due, starts, ends),
    or a bare point of the step that owns the expression (`due - 3 business days`).
    """

    text: str
    ref: str  # anchor key, or step key when point is set
    point: Optional[str]  # None = anchor
    amount: int = 0  # signed
    unit: str = "day"  # bday | day | week | hour
    at: Optional[time] = None


_NUMBER = r"(?P<n>\d+)\s+(?P<unit>business days?|days?|weeks?|hours?)"
_REF = r"(?P<ref>[a-z][a-z0-9_]*)(?:(?:\.|\s+)(?P<point>opens|closes|due|starts|ends))?"
_AT = r"(?:\s+at\s+(?P<at>\d{1,2}:\d{2}))?"
_OFFSET_FORM = re.compile(rf"^{_REF}(?:\s*(?P<sign>[+\-−])\s*{_NUMBER})?{_AT}$")
_PHRASE_FORM = re.compile(rf"^{_NUMBER}\s+(?P<dir>before|after)\s+{_REF}{_AT}$")


def parse_time_expr(text: str) -> TimeExpr:
    cleaned = " ".join(str(text).strip().split())
    match = _OFFSET_FORM.match(cleaned) or _PHRASE_FORM.match(cleaned)
    if not match:
        raise ValueError(
            f"cannot read time expression {text!r} (write e.g. 'annual_meeting - 8 business days', "
            "'5 business days after comment_round closes', 'due - 3 business days', 'annual_meeting at 12:15')"
        )
    parts = match.groupdict()
    amount = int(parts["n"]) if parts.get("n") else 0
    if parts.get("sign") in ("-", "−") or parts.get("dir") == "before":
        amount = -amount
    at = None
    if parts.get("at"):
        hour, minute = (int(x) for x in parts["at"].split(":"))
        if hour > 23 or minute > 59:
            raise ValueError(f"bad time of day {parts['at']!r} in {text!r}")
        at = time(hour, minute)
    point = POINT_ALIASES[parts["point"]] if parts.get("point") else None
    ref = parts["ref"]
    if point is None and ref in POINT_ALIASES:  # a bare point of the owning step
        point, ref = POINT_ALIASES[ref], ""
    return TimeExpr(cleaned, ref, point, amount, UNITS[parts["unit"]] if parts.get("unit") else "day", at)


# ---------------------------------------------------------------- schema

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Anchor(_Strict):
    """Default date of an anchor for planning year Y: month/day of year Y + year_offset, at `time`."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    year_offset: int = 0
    time: str = "09:00"
    title_lo: str = ""
    title_en: str = ""

    @field_validator("time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,2}:\d{2}", value) or int(value.split(":")[0]) > 23 or int(value.split(":")[1]) > 59:
            raise ValueError(f"time must be HH:MM, got {value!r}")
        return value


class Audience(_Strict):
    roles: list[str] = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)  # empty = the cycle's group and its sub-groups

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (known: {', '.join(ROLES)})")
        return roles


class Escalation(_Strict):
    to: list[str] = Field(min_length=1)  # roles
    after: str  # time expression, usually 'due + 2 business days'

    @field_validator("to")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        return Audience._known_roles(roles)


class ApprovalRule(_Strict):
    rule: Literal["all", "any", "k-of-n"] = "all"
    k: Optional[int] = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _k_needed(self):
        if self.rule == "k-of-n" and self.k is None:
            raise ValueError("rule 'k-of-n' needs k")
        if self.rule != "k-of-n" and self.k is not None:
            raise ValueError(f"k only applies to rule 'k-of-n', not {self.rule!r}")
        return self


class AgendaItem(_Strict):
    time: str
    title_lo: str
    title_en: str
    who_lo: str = ""
    who_en: str = ""


class StepDef(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    title_lo: str = Field(min_length=1)
    title_en: str = Field(min_length=1)
    audience: Audience
    after: list[str] = Field(default_factory=list)  # steps that must be finished before this one opens
    opens: Optional[str] = None
    due: Optional[str] = None
    starts: Optional[str] = None
    ends: Optional[str] = None
    reminders: list[str] = Field(default_factory=list)  # relative to this step's points
    escalation: Optional[Escalation] = None
    approval: Optional[ApprovalRule] = None
    # meetings
    location_lo: str = ""
    location_en: str = ""
    agenda: list[AgendaItem] = Field(default_factory=list)
    agenda_at: Optional[str] = None  # when the agenda goes out
    minutes_due: Optional[str] = None  # secretariat: minutes for the Round Table website
    survey: bool = False  # satisfaction survey after the meeting
    attachments: list[str] = Field(default_factory=list)  # document kinds sent with the step's messages
    response: str = ""  # what an answer is called: suggestion, comment, checklist, receipt

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {kind!r} (known: {', '.join(STEP_KINDS)})")
        return kind

    def expressions(self) -> dict[str, str]:
        """Field path (relative to the step) -> expression text, for every time in the step."""
        found = {name: getattr(self, name) for name in ("opens", "due", "starts", "ends", "agenda_at", "minutes_due")}
        found = {k: v for k, v in found.items() if v is not None}
        found.update({f"reminders[{i}]": r for i, r in enumerate(self.reminders)})
        if self.escalation:
            found["escalation.after"] = self.escalation.after
        return found

    @model_validator(mode="after")
    def _times_for_kind(self):
        if self.kind == "meeting" and (self.starts is None or self.ends is None):
            raise ValueError("a meeting needs 'starts' and 'ends'")
        if self.kind != "meeting" and self.due is None:
            raise ValueError(f"a {self.kind} step needs 'due'")
        if self.kind == "approval" and self.approval is None:
            object.__setattr__(self, "approval", ApprovalRule())
        if self.kind != "approval" and self.approval is not None:
            raise ValueError("'approval' only applies to approval steps")
        if (self.starts is None) != (self.ends is None):
            raise ValueError("'starts' and 'ends' go together")
        for name, text in self.expressions().items():
            try:
                parse_time_expr(text)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self


class Defaults(_Strict):
    opens_time: str = "09:00"  # when a step opens on its day, local time
    due_time: str = "17:00"  # when a deadline falls on its day, local time
    stale_after_hours: int = Field(default=12, ge=0)  # a message later than this counts as stale


class CycleDefinition(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    title_lo: str
    title_en: str
    group: str  # code of the group that runs the cycle
    anchors: dict[str, Anchor] = Field(min_length=1)
    defaults: Defaults = Defaults()
    late_policy: dict[str, Literal["send_late", "skip_if_stale", "fold"]] = Field(default_factory=dict)
    steps: list[StepDef] = Field(min_length=1)

    def step(self, key: str) -> StepDef:
        return next(s for s in self.steps if s.key == key)

    def policy_for(self, kind: str) -> str:
        return self.late_policy.get(kind) or DEFAULT_LATE_POLICY.get(kind, "send_late")


# ---------------------------------------------------------------- cross-field checks

def _reference_problems(definition: CycleDefinition) -> list[tuple[str, str]]:
    """Unknown anchors/steps in expressions, bad `after`, duplicate keys, dependency loops."""
    problems: list[tuple[str, str]] = []
    step_keys = [s.key for s in definition.steps]
    anchors = list(definition.anchors)
    seen: set[str] = set()
    for i, step in enumerate(definition.steps):
        if step.key in seen:
            problems.append((f"steps[{i}].key", f"duplicate step key {step.key!r}"))
        seen.add(step.key)
        for j, other in enumerate(step.after):
            if other not in step_keys:
                problems.append((f"steps[{i}].after[{j}]", f"unknown step {other!r} (known: {', '.join(step_keys)})"))
        for field, text in step.expressions().items():
            expr = parse_time_expr(text)
            if expr.point is None and expr.ref not in anchors:
                hint = f"; {expr.ref!r} is a step: write '{expr.ref} closes' or '{expr.ref}.starts'" if expr.ref in step_keys else ""
                problems.append((f"steps[{i}].{field}", f"unknown anchor {expr.ref!r} (known: {', '.join(anchors)}){hint}"))
            elif expr.point and expr.ref and expr.ref not in step_keys:
                problems.append((f"steps[{i}].{field}", f"unknown step {expr.ref!r} (known: {', '.join(step_keys)})"))
    if not problems:
        cycle = find_cycle(definition)
        if cycle:
            index = step_keys.index(cycle[0])
            problems.append((f"steps[{index}]", "dependency loop: " + " → ".join(cycle + [cycle[0]])))
    return problems


def dependencies(definition: CycleDefinition) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(step, point) -> the (step, point)s its expression reads; anchors are leaves and left out."""
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for step in definition.steps:
        for field in ("opens", "due", "starts", "ends"):
            text = getattr(step, field)
            node = (step.key, field)
            graph.setdefault(node, set())
            if text is not None:
                expr = parse_time_expr(text)
                if expr.point:
                    graph[node].add((expr.ref or step.key, expr.point))
            if field == "opens":
                graph[node].update((other, "due") for other in step.after)
    return graph


def find_cycle(definition: CycleDefinition) -> list[str] | None:
    graph = dependencies(definition)
    state: dict[tuple[str, str], int] = {}
    path: list[tuple[str, str]] = []

    def visit(node) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loop = path[path.index(nxt):]
                return [f"{s}.{p}" for s, p in loop]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


# ---------------------------------------------------------------- loading

def _loc_to_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_definition(data: object, source: str) -> CycleDefinition:
    """Validate already-loaded YAML data; raise DefinitionError naming `source` and each field path."""
    if not isinstance(data, dict):
        raise DefinitionError([f"{source}: (top level): a cycle definition is a mapping, got {type(data).__name__}"])
    try:
        definition = CycleDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            path = _loc_to_path(err["loc"])
            if message.split(":")[0] in StepDef.model_fields or message.split(":")[0].startswith("reminders["):
                field, _, message = message.partition(": ")
                path = f"{path}.{field}"
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(f"{source}: {path}: {message}")
        raise DefinitionError(problems) from None
    problems = [f"{source}: {path}: {msg}" for path, msg in _reference_problems(definition)]
    if problems:
        raise DefinitionError(problems)
    return definition


def load_definition(path: str | Path) -> CycleDefinition:
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError([f"{source}: file not found"]) from None
    except IsADirectoryError:
        raise DefinitionError([f"{source}: is a directory, not a definition file"]) from None
    except UnicodeDecodeError as exc:
        raise DefinitionError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
        raise DefinitionError([f"{source}: {at}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_definition(data, source)
