"""Cycle definitions: the YAML schema, the time-expression grammar, and the loader.

A definition is data (cycles/*.yaml). Every error names the file and the field path, e.g.
    cycles/gswg.yaml: steps[3].due: unknown anchor 'annual_meting' (known: annual_meeting)
"""

import calendar
import difflib
import re
import types
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal, Optional, Union, get_args, get_origin

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from models.step_kinds import CORE_POINTS, spec_for
from models.strict_yaml import strict_loader
from models.tables import ROLES

POINTS = CORE_POINTS
POINT_ALIASES = {"opens": "opens", "closes": "due", "due": "due", "starts": "starts", "ends": "ends"}
UNITS = {"business day": "bday", "business days": "bday", "day": "day", "days": "day",
         "week": "week", "weeks": "week", "hour": "hour", "hours": "hour"}
# The largest offset each unit may carry (about ten years), so no expression walks the calendar for ever.
MAX_OFFSET = {"bday": 2600, "day": 3660, "week": 522, "hour": 87840}
MAX_STEPS = 100  # a cycle has a handful; the bound keeps dependency walks shallow (they recurse)
LATE_POLICIES = ("send_late", "skip_if_stale", "fold")


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
    unit = UNITS[parts["unit"]] if parts.get("unit") else "day"
    digits = (parts.get("n") or "0").lstrip("0") or "0"
    if len(digits) > 6 or int(digits) > MAX_OFFSET[unit]:  # checked before int(): 5000 digits would not convert
        unit_name = {"bday": "business days", "day": "days", "week": "weeks", "hour": "hours"}[unit]
        raise ValueError(f"offset too large in {text!r}: at most {MAX_OFFSET[unit]} {unit_name}")
    amount = int(digits)
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
    return TimeExpr(cleaned, ref, point, amount, unit, at)


# ---------------------------------------------------------------- schema

def _hhmm(value: str) -> str:
    if not re.fullmatch(r"\d{1,2}:\d{2}", value) or int(value.split(":")[0]) > 23 or int(value.split(":")[1]) > 59:
        raise ValueError(f"time must be HH:MM (00:00 to 23:59), got {value!r}")
    return value


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    return role


def _anchor_key(key: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise ValueError(f"anchor name {key!r}: use lower-case letters, digits and '_', starting with a letter")
    if key in POINT_ALIASES:
        raise ValueError(f"anchor name {key!r} is taken: it names a point of a step ({', '.join(POINT_ALIASES)})")
    return key


HHMM = Annotated[str, AfterValidator(_hhmm)]
Role = Annotated[str, AfterValidator(_known_role)]  # checked one by one, so the error names roles[i]
AnchorKey = Annotated[str, AfterValidator(_anchor_key)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Anchor(_Strict):
    """Default date of an anchor for planning year Y: month/day of year Y + year_offset, at `time`."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    year_offset: int = Field(default=0, ge=-5, le=5)
    time: HHMM = "09:00"
    title_lo: str = ""
    title_en: str = ""

    @model_validator(mode="after")
    def _day_exists_every_year(self):
        month = f"{date(2001, self.month, 1):%B}"
        if (self.month, self.day) == (2, 29):
            raise ValueError("day: 29 February is not in every year; use 28 February or 1 March")
        if self.day > calendar.monthrange(2001, self.month)[1]:
            raise ValueError(f"day: {month} has no day {self.day}")
        return self


class Audience(_Strict):
    roles: list[Role] = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)  # empty = the cycle's group and its sub-groups


class Escalation(_Strict):
    to: list[Role] = Field(min_length=1)
    after: str  # time expression, usually 'due + 2 business days'


class ApprovalRule(_Strict):
    rule: Literal["all", "any", "k-of-n"] = "all"
    k: Optional[int] = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _k_needed(self):
        if self.rule == "k-of-n" and self.k is None:
            raise ValueError("k: rule 'k-of-n' needs k (how many must approve)")
        if self.rule != "k-of-n" and self.k is not None:
            raise ValueError(f"k: k only applies to rule 'k-of-n', not {self.rule!r}")
        return self


class AgendaItem(_Strict):
    time: str
    title_lo: str
    title_en: str
    who_lo: str = ""
    who_en: str = ""


class StepDef(_Strict):
    # A step kind may bring fields of its own (its handler's spec lists them): checked in _fields_for_kind.
    model_config = ConfigDict(extra="allow", frozen=True)

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    title_lo: str = Field(min_length=1)  # the secretariat's name for the step (status, desk, documents)
    title_en: str = Field(min_length=1)
    # Short titles for subject lines (both languages must fit in ~100 characters); default: the titles.
    short_title_lo: str = ""
    short_title_en: str = ""
    # What a member is asked, in their words ("Suggest activities for the {year} work plan"); {year} is filled in.
    ask_lo: str = ""
    ask_en: str = ""
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
    survey_due: Optional[str] = None  # default: 5 business days after the meeting ends
    attachments: list[str] = Field(default_factory=list)  # document kinds sent with the step's messages
    response: str = ""  # what an answer is called: suggestion, comment, checklist, receipt

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        spec_for(kind)  # the step kinds registered by their handlers
        return kind

    def expressions(self) -> dict[str, str]:
        """Field path (relative to the step) -> expression text, for every time in the step."""
        found = {name: getattr(self, name) for name in spec_for(self.kind).points}
        found = {k: v for k, v in found.items() if v is not None}
        found.update({f"reminders[{i}]": r for i, r in enumerate(self.reminders)})
        if self.escalation:
            found["escalation.after"] = self.escalation.after
        return found

    @model_validator(mode="after")
    def _fields_for_kind(self):
        # Each message starts with the field it is about: parse_definition moves it into the path.
        spec = spec_for(self.kind)
        for name in sorted(self.model_extra or {}):
            if name not in spec.fields:
                known = sorted(spec.fields)
                close = difflib.get_close_matches(name, known, n=1)
                raise ValueError(f"{name}: unknown field {name!r}" + (
                    f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"))
        declared = type(self).model_fields
        for name in sorted((self.model_fields_set & set(declared)) - spec.fields):
            if getattr(self, name) != declared[name].get_default(call_default_factory=True):
                raise ValueError(f"{name}: does not apply to a {self.kind} step")  # a snapshot holds defaults
        for name in spec.required:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: a {self.kind} step needs '{name}'")
        if (self.starts is None) != (self.ends is None):
            missing = "starts" if self.starts is None else "ends"
            raise ValueError(f"{missing}: 'starts' and 'ends' go together")
        for name, text in self.expressions().items():
            try:
                parse_time_expr(text)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    def answer_kind(self) -> str:
        """What an answer to this step is called (the definition's `response`, else the kind's own)."""
        return self.response or spec_for(self.kind).answer


class Defaults(_Strict):
    opens_time: HHMM = "09:00"  # when a step opens on its day, local time
    due_time: HHMM = "17:00"  # when a deadline falls on its day, local time
    stale_after_hours: int = Field(default=12, ge=0)  # a message later than this counts as stale


class CycleDefinition(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    title_lo: str
    title_en: str
    group: str  # code of the group that runs the cycle
    anchors: dict[AnchorKey, Anchor] = Field(min_length=1)
    defaults: Defaults = Defaults()
    late_policy: dict[str, Literal["send_late", "skip_if_stale", "fold"]] = Field(default_factory=dict)
    steps: list[StepDef] = Field(min_length=1, max_length=MAX_STEPS)

    def step(self, key: str) -> StepDef:
        return next(s for s in self.steps if s.key == key)


# ---------------------------------------------------------------- cross-field checks

def _points_of(step: StepDef) -> set[str]:
    """The points a step has: the ones it sets, plus those its kind derives (a meeting's opens and due)."""
    return {p for p in POINTS if getattr(step, p) is not None} | set(spec_for(step.kind).derived)


def _reference_problems(definition: CycleDefinition) -> list[tuple[str, str]]:
    """Unknown anchors/steps/points in expressions, bad `after`, duplicate keys, dependency loops."""
    problems: list[tuple[str, str]] = []
    step_keys = [s.key for s in definition.steps]
    steps = {s.key: s for s in reversed(definition.steps)}  # the first of duplicates wins, as in step()
    anchors = list(definition.anchors)
    seen: set[str] = set()
    for i, step in enumerate(definition.steps):
        if step.key in seen:
            problems.append((f"steps[{i}].key", f"duplicate step key {step.key!r} (also steps[{step_keys.index(step.key)}])"))
        seen.add(step.key)
        for j, other in enumerate(step.after):
            if other not in step_keys:
                problems.append((f"steps[{i}].after[{j}]", f"unknown step {other!r} (known: {', '.join(step_keys)})"))
        for field, text in step.expressions().items():
            expr = parse_time_expr(text)
            where = f"steps[{i}].{field}"
            if expr.point is None and expr.ref not in anchors:
                hint = f"; {expr.ref!r} is a step: write '{expr.ref} closes' or '{expr.ref}.starts'" if expr.ref in step_keys else ""
                problems.append((where, f"unknown anchor {expr.ref!r} (known: {', '.join(anchors)}){hint}"))
            elif expr.point and expr.ref and expr.ref not in step_keys:
                problems.append((where, f"unknown step {expr.ref!r} (known: {', '.join(step_keys)})"))
            elif expr.point and expr.point not in _points_of(steps[expr.ref or step.key]):
                target = steps[expr.ref or step.key]
                problems.append((where, f"{expr.text!r}: step {target.key!r} has no '{expr.point}' "
                                        f"(it has: {', '.join(p for p in POINTS if p in _points_of(target))})"))
    if not problems:
        loop = find_cycle(definition)
        if loop:
            problems.append((f"steps[{step_keys.index(loop[0].split('.')[0])}]",
                             "dependency loop: " + " → ".join(loop + [loop[0]])))
        waits = _first_cycle({s.key: set(s.after) for s in definition.steps})
        if waits:
            problems.append((f"steps[{step_keys.index(waits[0])}].after",
                             "steps wait for each other: " + " → ".join(waits + [waits[0]]) + " (via 'after')"))
    return problems


def dependencies(definition: CycleDefinition) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(step, point) -> the (step, point)s its expression reads; anchors are leaves and left out."""
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for step in definition.steps:
        for field in POINTS:
            node = (step.key, field)
            graph.setdefault(node, set())
            text = getattr(step, field)
            if text is None:  # a point the kind derives reads what its expression reads, as in the timeline
                text = spec_for(step.kind).derived.get(field)
            if text is not None:
                expr = parse_time_expr(text)
                if expr.point:
                    graph[node].add((expr.ref or step.key, expr.point))
            if field == "opens":
                graph[node].update((other, "due") for other in step.after)
    return graph


def find_cycle(definition: CycleDefinition) -> list[str] | None:
    loop = _first_cycle(dependencies(definition))
    return [f"{s}.{p}" for s, p in loop] if loop else None


def _first_cycle(graph: dict) -> list | None:
    """The first loop found by a depth-first walk (sorted, so the answer is stable), or None."""
    state: dict = {}
    path: list = []

    def visit(node) -> list | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):]
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

# A message that starts with a field name ("due: …", "escalation.after: …") is about that field.
_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)?): (.+)$", re.DOTALL)


def _unwrap(annotation):
    """Optional[X] -> X, Annotated[X, …] -> X."""
    while get_origin(annotation) in (Union, types.UnionType, Annotated):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _describe_loc(loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """A pydantic loc as people write it (steps[3].audience.roles[0], anchors.annual_meeting.time),
    and the model that holds its last field (to list the known fields)."""
    path, node, owner = "", CycleDefinition, None
    for part in loc:
        node = _unwrap(node)
        if part == "[key]" or str(part).startswith(("function-", "literal[")):
            continue
        if isinstance(part, str) and not re.fullmatch(r"[A-Za-z0-9_-]+", part):
            part = repr(part)  # a stray key such as 'ng year Y' (a truncated comment) stays one readable segment
        if isinstance(node, type) and issubclass(node, BaseModel):
            owner = node
            field = node.model_fields.get(part) if isinstance(part, str) else None
            node = field.annotation if field else None
            path += f".{part}" if path else str(part)
        elif get_origin(node) is list or isinstance(part, int) and get_origin(node) is not dict:
            path += f"[{part}]"
            node = get_args(node)[0] if get_origin(node) is list else None
        else:  # a dict key
            path += f".{part}" if path else str(part)
            node = get_args(node)[1] if get_origin(node) is dict else None
    return path or "(top level)", owner


def _shown(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"text {value[:60]!r}"
    if isinstance(value, date):  # YAML reads an unquoted 2019-11-13 as a date
        return f"the date {value}"
    return {list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _schema_message(err: dict, owner: type[BaseModel] | None) -> str:
    kind, value = err["type"], err.get("input")
    field = str(err["loc"][-1]) if err["loc"] else ""
    if kind == "extra_forbidden":
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(field, known, n=1)
        return f"unknown field {field!r}" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})")
    if kind == "invalid_key":
        return f"field names are text, got {_shown(err['loc'][-1])}"
    if kind == "missing":
        return "required, but missing"
    if kind == "string_type":
        if field.endswith("time") and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
            hhmm = f"{value // 60}:{value % 60:02d}"  # YAML 1.1 reads an unquoted 12:15 as 735 (base 60)
            return f"YAML read {hhmm} as the number {value}: write it in quotes, \"{hhmm}\""
        quote = "" if value is None or isinstance(value, (list, dict)) else "; put it in quotes"
        return f"expected text, got {_shown(value)}{quote}"
    if kind == "list_type":
        return f"expected a list, got {_shown(value)}" + (f" (write [{value}])" if isinstance(value, str) else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (name: value lines), got {_shown(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_shown(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_shown(value)}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"too many: at most {err['ctx']['max_length']}"
    if kind == "string_pattern_mismatch":
        extra = ", '_' or '-'" if "_-]" in err.get("ctx", {}).get("pattern", "") else " or '_'"
        return f"{value!r} is not a valid name: use lower-case letters, digits{extra}, starting with a letter"
    if kind in ("literal_error", "greater_than_equal", "less_than_equal"):
        return f"{err['msg']}, got {_shown(value)}"
    return err["msg"].removeprefix("Value error, ")


def _schema_problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        path, owner = _describe_loc(err["loc"])
        message = _schema_message(err, owner)
        prefixed = _FIELD_PREFIX.match(message) if err["type"] == "value_error" else None
        if prefixed:  # a model validator names the field in its message
            field, message = prefixed.groups()
            path = f"{path}.{field}" if path != "(top level)" else field
        problems.append((path, message))
    return problems


def parse_definition(data: object, source: str) -> CycleDefinition:
    """Validate already-loaded YAML data; raise DefinitionError naming `source` and each field path."""
    if data is None:
        raise DefinitionError([f"{source}: (top level): the file is empty (a cycle definition is a mapping "
                               "with name, title_lo, title_en, group, anchors, steps)"])
    if not isinstance(data, dict):
        raise DefinitionError([f"{source}: (top level): a cycle definition is a mapping "
                               f"(name, title_lo, title_en, group, anchors, steps), got {_shown(data)}"])
    try:
        definition = CycleDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError([f"{source}: {path}: {message}" for path, message in _schema_problems(exc)]) from None
    problems = [f"{source}: {path}: {msg}" for path, msg in _reference_problems(definition)]
    if problems:
        raise DefinitionError(problems)
    return definition


def load_definition(path: str | Path) -> CycleDefinition:
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DefinitionError([f"{source}: file not found"]) from None
    except IsADirectoryError:
        raise DefinitionError([f"{source}: is a directory, not a definition file"]) from None
    except OSError as exc:
        raise DefinitionError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError([f"{source}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]) from None
    import yaml  # here, not at the top: see strict_loader

    try:
        data = yaml.load(text, Loader=strict_loader())  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise DefinitionError([f"{source}: {at}not valid YAML ({exc.problem or exc.context})"]) from None
    except yaml.YAMLError as exc:  # e.g. a control character (ReaderError)
        raise DefinitionError([f"{source}: not valid YAML ({' '.join(str(exc).split())})"]) from None
    except RecursionError:
        raise DefinitionError([f"{source}: not valid YAML (nested too deeply)"]) from None
    return parse_definition(data, source)
