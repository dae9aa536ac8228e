"""The timeline: definition + planning year + anchors -> dated steps in Asia/Vientiane."""

import random
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calendars.business_days import BusinessCalendar
from calendars.timeline import (DatedStep, check_definition, compute_timeline, default_anchors, parse_anchor)
from models.definition import CycleDefinition, DefinitionError, load_definition, parse_time_expr

ROOT = Path(__file__).resolve().parents[1]
SEED = load_definition(ROOT / "cycles" / "gswg.yaml")
EVERY_OFFSET = load_definition(ROOT / "tests" / "fixtures" / "definitions" / "every_offset.yaml")
VIENTIANE = ZoneInfo("Asia/Vientiane")
SEVEN_HOURS = timedelta(hours=7)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VIENTIANE)


def by_key(steps: list[DatedStep]) -> dict[str, DatedStep]:
    return {s.key: s for s in steps}


def all_moments(step: DatedStep) -> list[datetime]:
    moments = [step.opens_at, step.due_at, step.starts_at, step.ends_at, *step.extra.values(),
               step.escalation_at, *(m for _, m in step.reminders)]
    return [m for m in moments if m is not None]


def offset_moments(definition: CycleDefinition, dated: list[DatedStep]):
    """(step, field, expression, moment) for every moment an offset computed, meetings' default opening included."""
    for step, when in zip(definition.steps, dated):
        fields = {"opens": when.opens_at, "due": when.due_at, "starts": when.starts_at, "ends": when.ends_at,
                  **when.extra, "escalation.after": when.escalation_at}
        fields.update({f"reminders[{i}]": m for i, (_, m) in enumerate(when.reminders)})
        for field, text in step.expressions().items():
            expr = parse_time_expr(text)
            if expr.amount or expr.unit == "bday":
                yield step.key, field, text, fields[field]
        if step.kind == "meeting" and step.opens is None:
            yield step.key, "opens", "starts - 10 business days", when.opens_at


def assert_on_business_days(definition, dated, calendar: BusinessCalendar, context: str) -> None:
    for key, field, text, moment in offset_moments(definition, dated):
        assert calendar.is_business_day(moment.date()), (
            f"{context}: {key}.{field} = {text!r} -> {moment:%a %Y-%m-%d %H:%M} "
            f"({calendar.holiday_name(moment.date()) or 'weekend'})")


# ---------------------------------------------------------------- the seed cycle, 2020 plan

EXPECTED_2020 = {  # key: (opens, due, starts, ends)
    "call_for_suggestions": ("2019-11-01 09:00", "2019-11-11 17:00", None, None),
    "annual_review_meeting": ("2019-10-30 09:00", "2019-11-13 12:15", "2019-11-13 08:30", "2019-11-13 12:15"),
    "secretariat_review": ("2020-01-08 09:00", "2020-01-22 17:00", "2020-01-15 09:00", "2020-01-15 12:00"),
    "comment_round": ("2020-02-03 09:00", "2020-02-17 17:00", None, None),
    "approval": ("2020-02-24 09:00", "2020-03-10 17:00", None, None),  # 9 March: Women's Day in lieu
    "submission_to_mpi": ("2020-03-11 09:00", "2020-03-18 17:00", None, None),
}


def test_seed_timeline_for_the_2020_plan():
    dated = by_key(compute_timeline(SEED, 2020))
    call, meeting = dated["call_for_suggestions"], dated["annual_review_meeting"]
    assert date(2019, 11, 1) <= call.opens_at.date() <= date(2019, 11, 8)
    assert call.due_at < meeting.starts_at
    assert (meeting.starts_at, meeting.ends_at) == (at("2019-11-13 08:30"), at("2019-11-13 12:15"))
    review = dated["secretariat_review"]
    assert {m.date().replace(day=1) for m in (review.opens_at, review.starts_at, review.ends_at, review.due_at)} == {date(2020, 1, 1)}
    comments = dated["comment_round"]
    assert (comments.opens_at.month, comments.due_at.month, comments.opens_at.year) == (2, 2, 2020)
    assert dated["approval"].due_at <= at("2020-03-31 23:59")
    assert dated["submission_to_mpi"].due_at <= at("2020-03-31 23:59")
    for key, expected in EXPECTED_2020.items():
        got = dated[key]
        assert (got.opens_at, got.due_at, got.starts_at, got.ends_at) == tuple(at(t) if t else None for t in expected), key
    assert meeting.extra["agenda_at"] == at("2019-11-08 09:00")  # 3 business days before, in the morning
    assert meeting.extra["minutes_due"] == at("2019-11-20 17:00")
    assert meeting.extra["survey_due"] == at("2019-11-20 17:00")  # the kind's default: ends + 5 business days
    assert call.reminders == [("due - 3 business days", at("2019-11-06 09:00")), ("due - 1 business days", at("2019-11-08 09:00"))]
    assert call.escalation_at == at("2019-11-12 09:00")


def test_every_datetime_carries_plus_seven_hours():
    for year in (2020, 2035, 2060):
        for step in compute_timeline(SEED, year) + compute_timeline(EVERY_OFFSET, year):
            for moment in all_moments(step):
                assert moment.utcoffset() == SEVEN_HOURS and moment.isoformat().endswith("+07:00")
            assert all(v is None or v.endswith("+07:00") for k, v in step.as_json().items() if k.endswith("_at"))


def test_as_json_has_exactly_the_public_fields():
    step = compute_timeline(SEED, 2020)[1]
    assert step.as_json() == {
        "key": "annual_review_meeting", "kind": "meeting", "title_lo": "ກອງປະຊຸມປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ",
        "title_en": "Annual Review Meeting of the Governance Sector Working Group",
        "opens_at": "2019-10-30T09:00:00+07:00", "due_at": "2019-11-13T12:15:00+07:00",
        "starts_at": "2019-11-13T08:30:00+07:00", "ends_at": "2019-11-13T12:15:00+07:00"}
    assert compute_timeline(SEED, 2020)[0].as_json()["starts_at"] is None


def test_moving_the_annual_meeting_moves_its_dependents_only():
    before = by_key(compute_timeline(SEED, 2020))
    after = by_key(compute_timeline(SEED, 2020, {"annual_meeting": at("2019-11-20 08:30")}))
    week = timedelta(days=7)  # no holiday between 1 and 20 November 2019: every offset moves one week
    for key in ("call_for_suggestions", "annual_review_meeting"):
        assert all_moments(after[key]) == [m + week for m in all_moments(before[key])], key
    for key in ("secretariat_review", "comment_round", "approval", "submission_to_mpi"):
        assert all_moments(after[key]) == all_moments(before[key]), key


def test_an_anchor_given_in_another_zone_or_without_one():
    utc = compute_timeline(SEED, 2020, {"annual_meeting": datetime(2019, 11, 20, 1, 30, tzinfo=ZoneInfo("UTC"))})
    naive = compute_timeline(SEED, 2020, {"annual_meeting": datetime(2019, 11, 20, 8, 30)})  # local time of the group
    assert by_key(utc)["annual_review_meeting"].starts_at == at("2019-11-20 08:30")
    assert utc == naive
    assert by_key(naive)["annual_review_meeting"].starts_at.tzinfo == VIENTIANE


def test_unknown_anchor_and_planning_years_out_of_range():
    with pytest.raises(ValueError, match=r"unknown anchor 'annual_meting' \(known: annual_meeting, review_meeting\)"):
        compute_timeline(SEED, 2020, {"annual_meting": at("2019-11-20 08:30")})
    for year in (0, 1989, 2101, 99999):
        with pytest.raises(ValueError, match="out of range"):
            compute_timeline(SEED, year)


# ---------------------------------------------------------------- anchors on weekends and holidays

def test_a_default_anchor_on_a_weekend_moves_to_the_next_business_day():
    # 13 November 2021 is a Saturday: the 2022 plan's annual meeting is on Monday 15th, the whole morning.
    meeting = by_key(compute_timeline(SEED, 2022))["annual_review_meeting"]
    assert (meeting.starts_at, meeting.ends_at) == (at("2021-11-15 08:30"), at("2021-11-15 12:15"))
    assert default_anchors(SEED, 2022, VIENTIANE)["review_meeting"] == at("2022-01-17 09:00")  # 15 Jan: Saturday
    moved = default_anchors(SEED, 2020, VIENTIANE, closed_days=[date(2019, 11, 13)])
    assert moved["annual_meeting"] == at("2019-11-14 08:30")


def test_a_meeting_given_on_a_saturday_stays_one_morning():
    # An explicit anchor is kept as given; 'annual_meeting at 12:15' is the same day, not the next Monday.
    meeting = by_key(compute_timeline(SEED, 2022, {"annual_meeting": at("2021-11-13 08:30")}))["annual_review_meeting"]
    assert (meeting.starts_at, meeting.ends_at) == (at("2021-11-13 08:30"), at("2021-11-13 12:15"))


def test_before_offsets_move_earlier_and_after_offsets_later():
    dated = by_key(compute_timeline(EVERY_OFFSET, 2020))
    call = dated["call"]
    assert call.due_at == at("2019-11-11 17:00")  # 2 days before Wed 13 Nov
    assert dict(call.reminders) == {  # due Monday 11th: a day before is Sunday -> Friday, never Monday itself
        "due - 1 day": at("2019-11-08 09:00"), "due - 30 hours": at("2019-11-08 11:00"),
        "due - 2 business days at 10:00": at("2019-11-07 10:00")}
    assert dated["review"].due_at == at("2020-01-27 12:00")  # 25 January is a Saturday -> Monday
    assert dated["review"].reminders[0] == ("due - 48 hours", at("2020-01-24 12:00"))  # Saturday -> Friday


# ---------------------------------------------------------------- no offset lands on a day off

@pytest.mark.parametrize("definition", [SEED, EVERY_OFFSET], ids=["gswg", "every_offset"])
def test_no_offset_lands_on_a_day_off_for_any_november_anchor(definition):
    calendar = BusinessCalendar()
    for year in range(2000, 2061):
        assert_on_business_days(definition, compute_timeline(definition, year), calendar, f"{year} default anchors")
        for day in range(1, 31):
            anchor = datetime(year - 1, 11, day, 8, 30, tzinfo=VIENTIANE)
            dated = compute_timeline(definition, year, {"annual_meeting": anchor})
            assert_on_business_days(definition, dated, calendar, f"{year}, annual_meeting {anchor:%Y-%m-%d}")


@pytest.mark.parametrize("definition", [SEED, EVERY_OFFSET], ids=["gswg", "every_offset"])
def test_no_offset_lands_on_a_closed_day(definition):
    rng = random.Random(13)
    for year in range(2000, 2061):
        season = [date(year - 1, 10, 1) + timedelta(days=i) for i in range(200)]  # October to mid-April
        closed = rng.sample(season, 30) + [date(year - 1, 11, 12), date(year, 1, 16)]
        calendar = BusinessCalendar(closed)
        anchors = {"annual_meeting": datetime(year - 1, 11, rng.randint(1, 30), 8, 30, tzinfo=VIENTIANE),
                   "review_meeting": datetime(year, 1, rng.randint(5, 31), 9, 0, tzinfo=VIENTIANE)}
        for given in ({}, anchors):
            dated = compute_timeline(definition, year, given, closed_days=closed)
            assert_on_business_days(definition, dated, calendar, f"{year} {given} closed {sorted(closed)}")
        for moment in default_anchors(definition, year, VIENTIANE, closed).values():
            assert calendar.is_business_day(moment.date())


def test_the_seed_has_no_contradiction_in_any_planning_year():
    check_definition(SEED, "cycles/gswg.yaml", years=range(2000, 2061))
    check_definition(EVERY_OFFSET, "every_offset.yaml", years=range(2000, 2061))


def test_seeded_random_anchors_keep_the_steps_in_order():
    rng = random.Random(7)
    for _ in range(300):
        year = rng.randint(2000, 2060)
        anchors = {"annual_meeting": datetime(year - 1, 11, 1, 8, 30, tzinfo=VIENTIANE) + timedelta(days=rng.randrange(30)),
                   "review_meeting": datetime(year, 1, 6, 9, 0, tzinfo=VIENTIANE) + timedelta(days=rng.randrange(25))}
        dated = compute_timeline(SEED, year, anchors)
        assert_on_business_days(SEED, dated, BusinessCalendar(), f"{year} {anchors}")
        firsts = [s.first_moment for s in dated[2:]]  # from the January review on, each step opens after the last
        assert firsts == sorted(firsts)
        for step in dated:
            assert step.due_at >= step.opens_at


# ---------------------------------------------------------------- contradictions and loops at compute time

def test_a_definition_not_checked_by_the_loader_cannot_recurse_for_ever():
    data = SEED.model_dump()
    data["steps"][1]["opens"] = None
    data["steps"][1]["starts"] = "opens + 1 day"  # the meeting's default opening reads `starts`
    definition = CycleDefinition.model_validate(data)
    with pytest.raises(DefinitionError) as caught:
        compute_timeline(definition, 2020, source="snapshot")
    assert caught.value.problems[0] == ("snapshot: steps[1]: dependency loop: annual_review_meeting.opens → "
                                        "annual_review_meeting.starts → annual_review_meeting.opens")


# ---------------------------------------------------------------- --anchor parsing

@pytest.mark.parametrize("text, expected", [
    ("annual_meeting=2019-11-20", at("2019-11-20 08:30")),  # a date takes the anchor's own time
    ("annual_meeting=20191120", at("2019-11-20 08:30")),
    (" review_meeting = 2020-01-20 ", at("2020-01-20 09:00")),
    ("annual_meeting=2019-11-20T14:00", at("2019-11-20 14:00")),
    ("annual_meeting=2019-11-20T07:00+00:00", at("2019-11-20 14:00")),
])
def test_parse_anchor(text, expected):
    key, moment = parse_anchor(SEED, text, VIENTIANE)
    assert key == text.split("=")[0].strip() and moment == expected and moment.tzinfo == VIENTIANE


@pytest.mark.parametrize("text, message", [
    ("annual_meeting", "write KEY=DATE"),
    ("=2019-11-20", "write KEY=DATE"),
    ("annual_meeting=", "write KEY=DATE"),
    ("annual_meting=2019-11-20", r"unknown anchor 'annual_meting' \(known: annual_meeting, review_meeting\)"),
    ("annual_meeting=2019-13-45", "is not an ISO date or date-time"),
    ("annual_meeting=next week", "is not an ISO date or date-time"),
])
def test_parse_anchor_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_anchor(SEED, text, VIENTIANE)
