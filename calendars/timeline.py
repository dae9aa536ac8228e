"""Definition + planning year + anchors -> dated steps in the group's zone."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from calendars.business_days import BusinessCalendar
from models.definition import CycleDefinition, DefinitionError, StepDef, TimeExpr, parse_time_expr
from models.step_kinds import spec_for

# Planning years the timeline computes (anchors and ten-year offsets stay far inside what datetime holds).
PLANNING_YEARS = range(1990, 2101)
# The time of day a field falls on when its expression moves by days and names no `at`: a deadline
# (`due`, or a kind's own point ending in `_due`) at the due time; a meeting's start and end keep
# their reference's time; openings, reminders, escalations and a kind's other points at the opening time.


@dataclass
class DatedStep:
    key: str
    kind: str
    title_lo: str
    title_en: str
    opens_at: datetime | None
    due_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    escalation_at: datetime | None = None
    reminders: list[tuple[str, datetime]] = field(default_factory=list)  # (expression, moment)
    extra: dict[str, datetime | None] = field(default_factory=dict)  # the kind's own points (a meeting's agenda_at)

    @property
    def first_moment(self) -> datetime:
        return min(t for t in (self.opens_at, self.starts_at, self.due_at) if t is not None)

    def as_json(self) -> dict:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"key": self.key, "kind": self.kind, "title_lo": self.title_lo, "title_en": self.title_en,
                "opens_at": iso(self.opens_at), "due_at": iso(self.due_at),
                "starts_at": iso(self.starts_at), "ends_at": iso(self.ends_at)}


def _hhmm(text: str) -> time:
    hour, minute = (int(x) for x in text.split(":"))
    return time(hour, minute)


# An anchor this far from its default for the planning year is a typo in the year, not a plan (the engine and
# the CLI refuse it): a 2018 meeting in the 2020 cycle once closed the call and the meeting at once.
ANCHOR_TOLERANCE = timedelta(days=400)


def default_anchors(definition: CycleDefinition, year: int, zone: ZoneInfo, closed_days=()) -> dict[str, datetime]:
    """Each anchor's month/day in the planning year; one that falls on a weekend, a holiday or a closed day
    moves to the next business day (13 November 2021 was a Saturday: the meeting would be on Monday 15th)."""
    calendar = BusinessCalendar(closed_days)
    return {
        key: datetime.combine(calendar.next_business_day(date(year + a.year_offset, a.month, a.day)),
                              _hhmm(a.time), tzinfo=zone)
        for key, a in definition.anchors.items()
    }


def parse_anchor(definition: CycleDefinition, text: str, zone: ZoneInfo) -> tuple[str, datetime]:
    """`KEY=DATE` or `KEY=DATETIME` (ISO 8601; a date takes the anchor's own time, no offset = local zone)."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ValueError(f"--anchor {text!r}: write KEY=DATE, e.g. annual_meeting=2019-11-13")
    if key not in definition.anchors:
        raise ValueError(f"--anchor {text!r}: unknown anchor {key!r} (known: {', '.join(definition.anchors)})")
    try:
        day = date.fromisoformat(value)
        moment = datetime.combine(day, _hhmm(definition.anchors[key].time), tzinfo=zone)
    except ValueError:  # not a bare date: a date-time
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"--anchor {text!r}: {value!r} is not an ISO date or date-time "
                             "(e.g. 2019-11-13 or 2019-11-13T08:30)") from None
        moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)
    return key, moment


class _Evaluator:
    def __init__(self, definition: CycleDefinition, anchors: dict[str, datetime], calendar: BusinessCalendar,
                 zone: ZoneInfo):
        self.definition, self.anchors, self.calendar, self.zone = definition, anchors, calendar, zone
        self.memo: dict[tuple[str, str], datetime | None] = {}
        self.active: list[tuple[str, str]] = []  # points being computed: a definition not checked by the loader may loop

    def point(self, step_key: str, point: str) -> datetime | None:
        node = (step_key, point)
        if node in self.active:
            loop = self.active[self.active.index(node):] + [node]
            raise DefinitionError([f"steps[{self._index(self.definition.step(step_key))}]: dependency loop: "
                                   + " → ".join(f"{s}.{p}" for s, p in loop)])
        if node not in self.memo:
            self.active.append(node)
            try:
                step = self.definition.step(step_key)
                text = getattr(step, point)
                if text is None:
                    self.memo[node] = self._fallback(step, point)
                else:
                    self.memo[node] = self.evaluate(parse_time_expr(text), step, point)
            finally:
                self.active.pop()
        return self.memo[node]

    def _fallback(self, step: StepDef, point: str) -> datetime | None:
        """A point the step does not set: derived as its kind says (a meeting opens when its invitations go,
        10 business days ahead, and is due when it ends), if the point it derives from is there."""
        spec = spec_for(step.kind)
        text = spec.derived.get(point)
        if text is None:
            return None
        expr = parse_time_expr(text)
        if expr.point and self.point(expr.ref or step.key, expr.point) is None:
            return None
        return self.evaluate(expr, step, point)

    def evaluate(self, expr: TimeExpr, owner: StepDef, field_name: str) -> datetime:
        if expr.point is None:
            base = self.anchors[expr.ref]
        else:
            base = self.point(expr.ref or owner.key, expr.point)
            if base is None:
                raise DefinitionError([f"steps[{self._index(owner)}].{field_name}: {expr.text!r} refers to "
                                       f"'{expr.ref or owner.key}.{expr.point}', which that step does not have"])
        base = base.astimezone(self.zone)
        if expr.unit == "hour":
            moment = base + timedelta(hours=expr.amount)
            moment = datetime.combine(self._business_day(moment.date(), expr.amount), moment.time(), self.zone)
        elif expr.amount == 0 and expr.at is None:
            return base  # a plain reference keeps the exact moment
        else:
            day = base.date()
            if expr.unit == "bday":
                day = self.calendar.add_business_days(day, expr.amount)
            elif expr.amount:  # without an offset ('annual_meeting at 12:15') the day stays the anchor's own
                days = expr.amount * (7 if expr.unit == "week" else 1)
                day = self._business_day(day + timedelta(days=days), expr.amount)
            moment = datetime.combine(day, self._time_of_day(expr, base, field_name), tzinfo=self.zone)
        return moment

    def _business_day(self, day: date, amount: int) -> date:
        """An offset never lands on a weekend, a holiday or a closed day. It moves away from its reference
        ('before' earlier, 'after' later), so a reminder 2 days before a Monday meeting stays before it."""
        if amount < 0:
            return self.calendar.previous_business_day(day)
        return self.calendar.next_business_day(day)

    def _time_of_day(self, expr: TimeExpr, base: datetime, field_name: str) -> time:
        if expr.at is not None:
            return expr.at
        root = field_name.split("[")[0]
        if root == "due" or root.endswith("_due"):
            return _hhmm(self.definition.defaults.due_time)
        if root in ("starts", "ends"):
            return base.timetz().replace(tzinfo=None)
        return _hhmm(self.definition.defaults.opens_time)

    def _index(self, step: StepDef) -> int:
        return self.definition.steps.index(step)


def compute_timeline(definition: CycleDefinition, year: int, anchors: dict[str, datetime] | None = None,
                     *, timezone: str = "Asia/Vientiane", closed_days=(), source: str = "") -> list[DatedStep]:
    """Dated steps, in definition order. Raises DefinitionError when the dates contradict each other."""
    if year not in PLANNING_YEARS:
        raise ValueError(f"planning year {year} is out of range ({PLANNING_YEARS[0]}–{PLANNING_YEARS[-1]})")
    zone = ZoneInfo(timezone)
    merged = default_anchors(definition, year, zone, closed_days)
    for key, moment in (anchors or {}).items():
        if key not in merged:
            raise ValueError(f"unknown anchor {key!r} (known: {', '.join(definition.anchors)})")
        # A moment without a zone is local time of the group, never the machine's.
        merged[key] = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)
    evaluator = _Evaluator(definition, merged, BusinessCalendar(closed_days), zone)
    dated: list[DatedStep] = []
    problems: list[str] = []
    prefix = f"{source}: " if source else ""
    for index, step in enumerate(definition.steps):
        try:
            points = {p: evaluator.point(step.key, p) for p in spec_for(step.kind).points}
            reminders = [(text, evaluator.evaluate(parse_time_expr(text), step, f"reminders[{i}]"))
                         for i, text in enumerate(step.reminders)]
            escalation = (evaluator.evaluate(parse_time_expr(step.escalation.after), step, "escalation.after")
                          if step.escalation else None)
        except DefinitionError as exc:
            problems.extend(prefix + p for p in exc.problems)
            continue
        where = f"{prefix}steps[{index}]"
        if points["opens"] and points["due"] and points["due"] < points["opens"]:
            problems.append(f"{where}.due: {_show(points['due'])} is before the step opens "
                            f"({_show(points['opens'])}) for planning year {year}")
        if points["starts"] and points["ends"] and points["ends"] <= points["starts"]:
            problems.append(f"{where}.ends: the meeting ends ({_show(points['ends'])}) before it starts "
                            f"({_show(points['starts'])}) for planning year {year}")
        dated.append(DatedStep(step.key, step.kind, step.title_lo, step.title_en, points.pop("opens"),
                               points.pop("due"), points.pop("starts"), points.pop("ends"), escalation, reminders,
                               extra=points))
    if problems:
        raise DefinitionError(problems)
    return dated


def check_definition(definition: CycleDefinition, source: str, years=range(2020, 2031)) -> None:
    """Refuse a definition whose dates contradict each other in any of `years` (default anchors)."""
    for year in years:
        compute_timeline(definition, year, source=source)


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %z")
