"""Business days in Laos: weekends, Lao public holidays (holidays package), a group's closed days."""

import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from calendars.business_days import BusinessCalendar, lao_holidays

VIENTIANE = ZoneInfo("Asia/Vientiane")
CALENDAR = BusinessCalendar()


@pytest.mark.parametrize("day, lao, english", [
    (date(2020, 1, 1), "ວັນປີໃໝ່ສາກົນ", "New Year's Day"),
    (date(2020, 4, 14), "ບຸນປີໃໝ່ລາວ", "Lao New Year's Day"),
    (date(2020, 12, 2), "ວັນຊາດ", "Lao National Day"),
    (date(2021, 12, 2), "ວັນຊາດ", "Lao National Day"),
])
def test_holiday_names_in_lao_and_english(day, lao, english):
    assert CALENDAR.holiday_name(day, "lo") == lao
    assert CALENDAR.holiday_name(day, "en_US") == english
    assert not CALENDAR.is_business_day(day)


def test_holiday_names_do_not_follow_the_process_locale(monkeypatch):
    for name in ("LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.setenv(name, "lo_LA.UTF-8")
    lao_holidays.cache_clear()
    try:
        assert CALENDAR.holiday_name(date(2024, 12, 2), "en_US") == "Lao National Day"
        assert CALENDAR.holiday_name(date(2024, 12, 2), "lo") == "ວັນຊາດ"
    finally:
        lao_holidays.cache_clear()


def test_closed_days_have_a_name_in_both_languages_and_accept_iso_strings():
    calendar = BusinessCalendar(["2019-11-12", date(2019, 11, 14), datetime(2019, 11, 15, 9, 0, tzinfo=VIENTIANE)])
    assert calendar.closed_days == {date(2019, 11, 12), date(2019, 11, 14), date(2019, 11, 15)}
    assert calendar.holiday_name(date(2019, 11, 12), "lo") == "ວັນພັກພິເສດ"
    assert calendar.holiday_name(date(2019, 11, 12), "en_US") == "Decreed day off"
    assert calendar.holiday_name(date(2019, 11, 13)) is None
    assert calendar.add_business_days(date(2019, 11, 11), 1) == date(2019, 11, 13)
    assert calendar.add_business_days(date(2019, 11, 13), 1) == date(2019, 11, 18)


def test_every_planning_year_knows_the_fixed_holidays():
    for year in range(2000, 2061):
        days = lao_holidays(year, "en_US")
        assert date(year, 1, 1) in days and date(year, 12, 2) in days and date(year, 4, 14) in days, year


@pytest.mark.parametrize("start, count, expected", [
    # New Year: 1 January 2020 is a Wednesday holiday.
    (date(2019, 12, 31), 1, date(2020, 1, 2)),
    (date(2020, 1, 2), -1, date(2019, 12, 31)),
    (date(2019, 12, 27), 3, date(2020, 1, 2)),  # Fri 27 Dec: Mon 30, Tue 31, (Wed 1 Jan), Thu 2
    # Lao New Year 2020: 13–16 April and 17 April in lieu (Monday to Friday).
    (date(2020, 4, 10), 1, date(2020, 4, 20)),
    (date(2020, 4, 20), -1, date(2020, 4, 10)),
    (date(2020, 4, 8), 5, date(2020, 4, 22)),  # Thu 9, Fri 10, (13–17 off), Mon 20, Tue 21, Wed 22
    # Lao New Year 2021: 14–16 April (Wednesday to Friday).
    (date(2021, 4, 13), 1, date(2021, 4, 19)),
    (date(2021, 4, 19), -2, date(2021, 4, 12)),
    # National Day: Wednesday 2 December 2020, Monday 2 December 2019.
    (date(2020, 12, 1), 1, date(2020, 12, 3)),
    (date(2020, 12, 3), -1, date(2020, 12, 1)),
    (date(2019, 11, 29), 1, date(2019, 12, 3)),
    (date(2019, 12, 3), -1, date(2019, 11, 29)),
    # Zero rolls forward to a business day; a weekend start counts from there.
    (date(2019, 11, 16), 0, date(2019, 11, 18)),
    (date(2019, 11, 16), 1, date(2019, 11, 18)),
    (date(2019, 11, 16), -1, date(2019, 11, 15)),
])
def test_add_business_days_across_holidays(start, count, expected):
    assert CALENDAR.add_business_days(start, count) == expected


def test_business_day_arithmetic_round_trips_in_every_year():
    rng = random.Random(2)
    for year in range(2000, 2061):
        for _ in range(20):
            day = CALENDAR.next_business_day(date(year, 1, 1) + timedelta(days=rng.randrange(365)))
            count = rng.randint(1, 60)
            later = CALENDAR.add_business_days(day, count)
            assert CALENDAR.is_business_day(later)
            assert CALENDAR.add_business_days(later, -count) == day
            between = sum(CALENDAR.is_business_day(day + timedelta(days=i)) for i in range(1, (later - day).days + 1))
            assert between == count


def test_an_absurd_count_is_refused_not_spun():
    with pytest.raises(ValueError, match="too far"):
        CALENDAR.add_business_days(date(2020, 1, 1), 10**9)


def test_next_and_previous_business_day():
    saturday = date(2019, 11, 16)
    assert CALENDAR.next_business_day(saturday) == date(2019, 11, 18)
    assert CALENDAR.previous_business_day(saturday) == date(2019, 11, 15)
    assert CALENDAR.next_business_day(date(2019, 11, 13)) == date(2019, 11, 13)
    assert CALENDAR.next_business_day(date(2019, 11, 13), include_today=False) == date(2019, 11, 14)
    assert CALENDAR.previous_business_day(date(2020, 4, 17), include_today=False) == date(2020, 4, 10)


@pytest.mark.parametrize("moment, expected", [
    (datetime(2019, 11, 15, 17, 0), datetime(2019, 11, 18, 9, 0)),  # Friday evening -> Monday
    (datetime(2019, 11, 15, 8, 0), datetime(2019, 11, 15, 9, 0)),  # Friday early -> the same morning
    (datetime(2019, 11, 15, 9, 0), datetime(2019, 11, 18, 9, 0)),  # strictly after
    (datetime(2019, 11, 16, 8, 0), datetime(2019, 11, 18, 9, 0)),  # Saturday morning
    (datetime(2020, 12, 1, 18, 0), datetime(2020, 12, 3, 9, 0)),  # eve of National Day
    (datetime(2020, 12, 2, 7, 0), datetime(2020, 12, 3, 9, 0)),  # National Day morning
    (datetime(2020, 4, 10, 12, 0), datetime(2020, 4, 20, 9, 0)),  # before Lao New Year
    (datetime(2019, 12, 31, 23, 59), datetime(2020, 1, 2, 9, 0)),  # New Year's Eve
])
def test_next_business_morning(moment, expected):
    result = CALENDAR.next_business_morning(moment.replace(tzinfo=VIENTIANE))
    assert result == expected.replace(tzinfo=VIENTIANE)
    assert result.isoformat().endswith("+07:00")


def test_next_business_morning_keeps_the_zone_and_the_hour_asked_for():
    paris = ZoneInfo("Europe/Paris")
    result = CALENDAR.next_business_morning(datetime(2019, 11, 15, 17, 0, tzinfo=paris), at=time(8, 30))
    assert result == datetime(2019, 11, 18, 8, 30, tzinfo=paris) and result.tzinfo is paris
    closed = BusinessCalendar([date(2019, 11, 18)])
    assert closed.next_business_morning(datetime(2019, 11, 15, 17, 0, tzinfo=VIENTIANE)).date() == date(2019, 11, 19)
    with pytest.raises(ValueError, match="no time zone"):
        CALENDAR.next_business_morning(datetime(2019, 11, 15, 17, 0))
