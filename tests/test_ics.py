"""Invites, updates, cancellations, deadlines and feeds, read back by icalendar AND vobject.

Every test compares parsed fields with what was meant; "it parsed" proves nothing.
"""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import vobject
from icalendar import Calendar

from calendars.ics import (
    PRODID,
    Attendee,
    Deadline,
    Meeting,
    Person,
    deadline_calendar,
    feed,
    for_caldav,
    meeting_invite,
    parse_method,
    uid_for,
)

VIENTIANE = timedelta(hours=7)
STAMP = datetime(2019, 10, 1, 2, 0, tzinfo=timezone.utc)

# Long enough that every Lao line must be folded (75 octets = 25 Lao characters).
AGENDA_LO = (
    "ວາລະກອງປະຊຸມ\n"
    "08:00 ລົງທະບຽນ — ທຸກທ່ານ\n"
    "08:30 ພາກກ່າວເປີດກອງປະຊຸມ ໂດຍ ປະທານ ແລະ ປະທານຮ່ວມ\n"
    "09:00 ບົດລາຍງານຄວາມຄືບໜ້າ ແລະ ຮ່າງແຜນວຽກປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ\n"
    "10:00 ພັກຜ່ອນດື່ມກາເຟ\n"
    "10:15 ສົນທະນາລວມ\n"
    "11:30 ພາກກ່າວປິດ\n"
    "12:00 ຮັບປະທານອາຫານທ່ຽງ"
)
AGENDA_EN = (
    "Agenda\n08:00 Registration — all participants\n08:30 Opening session by the chair and co-chairs\n"
    "09:00 Progress report and draft annual work plan of the Governance Sector Working Group\n"
    "10:00 Refreshment break\n10:15 Discussion\n11:30 Closing session\n12:00 Lunch"
)
URL = "https://roundtable.example/m/annual_meeting/tok-123"

MEETING = Meeting(
    uid=uid_for("GSWG", "2020", "annual_meeting"),
    sequence=0,
    summary_lo="ກອງປະຊຸມປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ",
    summary_en="Annual review meeting of the Governance Sector Working Group",
    description_lo=AGENDA_LO,
    description_en=AGENDA_EN,
    starts_at=datetime(2019, 11, 13, 1, 0, tzinfo=timezone.utc),  # 08:00 in Vientiane
    ends_at=datetime(2019, 11, 13, 5, 0, tzinfo=timezone.utc),  # 12:00
    timezone="Asia/Vientiane",
    location="ICTC, Vientiane",
    organizer=Person("ກອງເລຂາ GSWG", "secretariat@gswg.example"),
    url=URL,
)
ATTENDEES = [
    Attendee("ທ່ານ ປະທານ", "Chair@MoHA.example", "CHAIR"),
    Attendee("Vongsa, Khamla", "khamla@undp.example"),  # a comma must be quoted in CN
    Attendee("ສົມພອນ ແກ້ວມະນີ", "somphone@moj.example", "OPT-PARTICIPANT"),
]
SUMMARY = MEETING.summary_lo + " — " + MEETING.summary_en
DESCRIPTION = AGENDA_LO + "\n\n" + AGENDA_EN + "\n\n" + URL

DEADLINE = Deadline(
    uid=uid_for("GSWG", "2020", "call_for_suggestions"),
    sequence=0,
    title_lo="ກຳນົດສົ່ງຄຳເຫັນກ່ຽວກັບກິດຈະກຳປີໜ້າ",
    title_en="Suggested activities for next year are due",
    description_lo="ສົ່ງອີເມວເຖິງບັນດາສະມາຊິກຂອງໜ່ວຍງານເພື່ອຂໍຄໍາເຫັນກ່ຽວກັບກິດຈະກຳປີໜ້າ",
    description_en="Please send your suggested activities for next year.",
    due_at=datetime(2019, 11, 8, 10, 0, tzinfo=timezone.utc),  # 17:00 in Vientiane
    timezone="Asia/Vientiane",
    url="https://roundtable.example/f/call/tok-9",
)


def both(ics: bytes):
    """The calendar as icalendar and as vobject read it."""
    return Calendar.from_ical(ics), vobject.readOne(ics.decode("utf-8"))


def ical_attendees(event) -> dict:
    return {
        a.email.lower(): (str(a.params["CN"]), a.params["PARTSTAT"], a.params["RSVP"], a.params["ROLE"])
        for a in event.attendees
    }


def vobj_attendees(vevent) -> dict:
    return {
        a.value.lower().removeprefix("mailto:"): tuple(a.params[k][0] for k in ("CN", "PARTSTAT", "RSVP", "ROLE"))
        for a in vevent.attendee_list
    }


EXPECTED_ATTENDEES = {
    "chair@moha.example": ("ທ່ານ ປະທານ", "NEEDS-ACTION", "TRUE", "CHAIR"),
    "khamla@undp.example": ("Vongsa, Khamla", "NEEDS-ACTION", "TRUE", "REQ-PARTICIPANT"),
    "somphone@moj.example": ("ສົມພອນ ແກ້ວມະນີ", "NEEDS-ACTION", "TRUE", "OPT-PARTICIPANT"),
}


def check_times(ical_event, vevent, start: datetime, end: datetime) -> None:
    for parsed_start, parsed_end in ((ical_event.start, ical_event.end), (vevent.dtstart.value, vevent.dtend.value)):
        assert parsed_start == start and parsed_end == end
        assert parsed_start.utcoffset() == VIENTIANE and parsed_end.utcoffset() == VIENTIANE
    assert ical_event["DTSTART"].params["TZID"] == "Asia/Vientiane"
    assert ical_event["DTEND"].params["TZID"] == "Asia/Vientiane"
    # vobject resolves the TZID through the VTIMEZONE we wrote
    assert vevent.dtstart.params["X-VOBJ-ORIGINAL-TZID"] == ["Asia/Vientiane"]


def check_vtimezone(cal: Calendar) -> None:
    (zone,) = cal.walk("VTIMEZONE")
    assert zone["TZID"] == "Asia/Vientiane"
    assert [p.name for p in zone.subcomponents] == ["STANDARD"]  # no DST in Laos
    assert zone.subcomponents[0]["TZOFFSETTO"].td == VIENTIANE


def check_raw(ics: bytes) -> None:
    """CRLF everywhere, folded at 75 octets, and no fold splits a UTF-8 character."""
    assert ics.endswith(b"\r\n") and b"\n" not in ics.replace(b"\r\n", b"")
    for line in ics.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")  # a split multibyte character would fail here


def ical_alarms(event) -> list:
    return [(str(a["ACTION"]), a["TRIGGER"].dt) for a in event.walk("VALARM")]


def vobj_alarms(vevent) -> list:
    return [(a.action.value, a.trigger.value) for a in vevent.valarm_list]


def test_invite_carries_what_was_meant():
    ics = meeting_invite(MEETING, ATTENDEES, stamp=STAMP)
    check_raw(ics)
    cal, vcal = both(ics)
    (event,) = cal.events
    vevent = vcal.vevent

    assert cal["METHOD"] == vcal.method.value == "REQUEST"
    assert parse_method(ics) == "REQUEST"
    assert cal["PRODID"] == vcal.prodid.value == PRODID
    assert cal["VERSION"] == "2.0"
    assert not cal.walk("VTODO")
    check_vtimezone(cal)

    assert event.uid == vevent.uid.value == "gswg-2020-annual_meeting@roundtable.local"
    assert event.sequence == int(vevent.sequence.value) == 0
    assert event.stamp == vevent.dtstamp.value == STAMP
    assert event.status == vevent.status.value == "CONFIRMED"
    check_times(event, vevent, MEETING.starts_at, MEETING.ends_at)
    assert event.start.hour == 8 and event.end.hour == 12  # local wall time in Vientiane

    assert event.summary == vevent.summary.value == SUMMARY
    assert event.description == vevent.description.value == DESCRIPTION
    assert event.location == vevent.location.value == "ICTC, Vientiane"
    assert event.url == vevent.url.value == URL

    assert event.organizer.email == "secretariat@gswg.example"
    assert event.organizer.params["CN"] == vevent.organizer.params["CN"][0] == "ກອງເລຂາ GSWG"
    assert ical_attendees(event) == vobj_attendees(vevent) == EXPECTED_ATTENDEES

    expected_alarms = [("DISPLAY", -timedelta(days=1)), ("DISPLAY", -timedelta(hours=1))]
    assert ical_alarms(event) == vobj_alarms(vevent) == expected_alarms
    assert all(a["DESCRIPTION"] == SUMMARY for a in event.walk("VALARM"))


def test_lao_text_needs_folding_and_survives_it():
    ics = meeting_invite(MEETING, ATTENDEES[:1], stamp=STAMP)
    lines = ics.split(b"\r\n")
    folded = [line for line in lines if line.startswith(b" ")]
    assert len(folded) > 10  # the long Lao agenda really was folded
    # some fold lands between Lao characters, not only in ASCII
    assert any("\u0e80" <= line.decode()[1] <= "\u0eff" for line in folded)
    cal, vcal = both(ics)
    assert cal.events[0].description == vcal.vevent.description.value == DESCRIPTION
    assert cal.events[0].summary == vcal.vevent.summary.value == SUMMARY


def test_one_attendee_per_invite_and_configurable_alarms():
    meeting = replace(MEETING, alarms=(timedelta(days=2),))
    ics = meeting_invite(meeting, [ATTENDEES[1]], stamp=STAMP)
    cal, vcal = both(ics)
    assert ical_attendees(cal.events[0]) == vobj_attendees(vcal.vevent) == {
        "khamla@undp.example": EXPECTED_ATTENDEES["khamla@undp.example"]
    }
    assert ical_alarms(cal.events[0]) == vobj_alarms(vcal.vevent) == [("DISPLAY", -timedelta(days=2))]


def test_update_and_cancellation_keep_the_uid():
    moved = replace(
        MEETING,
        sequence=1,
        starts_at=datetime(2019, 11, 14, 2, 0, tzinfo=timezone.utc),
        ends_at=datetime(2019, 11, 14, 6, 0, tzinfo=timezone.utc),
    )
    invite = meeting_invite(MEETING, ATTENDEES, stamp=STAMP)
    update = meeting_invite(moved, ATTENDEES, stamp=STAMP + timedelta(days=1))
    cancel = meeting_invite(replace(moved, sequence=2), ATTENDEES, method="CANCEL", stamp=STAMP + timedelta(days=2))

    for ics, method, sequence, status in (
        (invite, "REQUEST", 0, "CONFIRMED"),
        (update, "REQUEST", 1, "CONFIRMED"),
        (cancel, "CANCEL", 2, "CANCELLED"),
    ):
        check_raw(ics)
        cal, vcal = both(ics)
        event, vevent = cal.events[0], vcal.vevent
        assert parse_method(ics) == cal["METHOD"] == vcal.method.value == method
        assert event.uid == vevent.uid.value == MEETING.uid
        assert event.sequence == int(vevent.sequence.value) == sequence
        assert event.status == vevent.status.value == status
        assert ical_attendees(event) == vobj_attendees(vevent) == EXPECTED_ATTENDEES
        assert event.summary == vevent.summary.value == SUMMARY
        if sequence:
            check_times(event, vevent, moved.starts_at, moved.ends_at)
            assert event.start.hour == 9  # 02:00 UTC = 09:00 in Vientiane


def test_deadline_is_a_short_transparent_event_with_alarms():
    ics = deadline_calendar(DEADLINE, stamp=STAMP)
    check_raw(ics)
    cal, vcal = both(ics)
    (event,) = cal.events
    vevent = vcal.vevent
    assert parse_method(ics) == vcal.method.value == "PUBLISH"
    assert not cal.walk("VTODO") and not hasattr(vcal, "vtodo")
    check_vtimezone(cal)
    assert event.uid == vevent.uid.value == DEADLINE.uid
    check_times(event, vevent, DEADLINE.due_at, DEADLINE.due_at + timedelta(minutes=30))
    assert event.start.hour == 17
    assert event["TRANSP"] == vevent.transp.value == "TRANSPARENT"
    assert event["X-MICROSOFT-CDO-BUSYSTATUS"] == "FREE"
    assert event.summary == vevent.summary.value == DEADLINE.title_lo + " — " + DEADLINE.title_en
    assert event.description == vevent.description.value == (
        DEADLINE.description_lo + "\n\n" + DEADLINE.description_en + "\n\n" + DEADLINE.url
    )
    assert not event.attendees and "ORGANIZER" not in event
    expected_alarms = [("DISPLAY", -timedelta(days=1)), ("DISPLAY", -timedelta(hours=2))]
    assert ical_alarms(event) == vobj_alarms(vevent) == expected_alarms


def test_cancelled_deadline_keeps_its_uid():
    cal, vcal = both(deadline_calendar(replace(DEADLINE, sequence=1), method="CANCEL", stamp=STAMP))
    assert cal["METHOD"] == "CANCEL"
    assert cal.events[0].uid == vcal.vevent.uid.value == DEADLINE.uid
    assert cal.events[0].status == vcal.vevent.status.value == "CANCELLED"
    assert cal.events[0].sequence == 1


def test_feed_lists_meetings_and_deadlines_without_attendees():
    cancelled = replace(MEETING, uid=uid_for("GSWG", "2020", "q1_meeting"), sequence=3, cancelled=True)
    name = "ໜ່ວຍງານດ້ານການປົກຄອງ — GSWG 2020"
    ics = feed(name, [MEETING, cancelled], [DEADLINE], "Asia/Vientiane", stamp=STAMP)
    check_raw(ics)
    cal, vcal = both(ics)
    assert parse_method(ics) == vcal.method.value == "PUBLISH"
    assert cal["X-WR-CALNAME"] == vcal.contents["x-wr-calname"][0].value == name
    assert cal["X-WR-TIMEZONE"] == "Asia/Vientiane"
    check_vtimezone(cal)  # exactly one VTIMEZONE for three events
    by_uid = {e.uid: e for e in cal.events}
    assert set(by_uid) == {v.uid.value for v in vcal.vevent_list} == {MEETING.uid, cancelled.uid, DEADLINE.uid}
    assert all(not e.attendees for e in cal.events)
    assert by_uid[MEETING.uid].status == "CONFIRMED" and by_uid[MEETING.uid]["TRANSP"] == "OPAQUE"
    assert by_uid[cancelled.uid].status == "CANCELLED" and by_uid[cancelled.uid].sequence == 3
    assert by_uid[DEADLINE.uid]["TRANSP"] == "TRANSPARENT"
    vevents = {v.uid.value: v for v in vcal.vevent_list}
    check_times(by_uid[MEETING.uid], vevents[MEETING.uid], MEETING.starts_at, MEETING.ends_at)
    assert vevents[MEETING.uid].description.value == DESCRIPTION


def test_for_caldav_strips_only_the_method():
    ics = meeting_invite(MEETING, ATTENDEES, stamp=STAMP)
    stripped = for_caldav(ics)
    assert parse_method(stripped) == "" and b"METHOD" not in stripped
    original, again = Calendar.from_ical(ics), Calendar.from_ical(stripped)
    assert again.events[0].uid == original.events[0].uid
    assert again.events[0].description == DESCRIPTION
    assert ical_attendees(again.events[0]) == EXPECTED_ATTENDEES


def test_same_input_same_bytes():
    assert meeting_invite(MEETING, ATTENDEES, stamp=STAMP) == meeting_invite(MEETING, ATTENDEES, stamp=STAMP)
    assert feed("x", [MEETING], [DEADLINE], "Asia/Vientiane", stamp=STAMP) == feed(
        "x", [MEETING], [DEADLINE], "Asia/Vientiane", stamp=STAMP
    )


def test_uid_for_is_stable_and_sanitised():
    assert uid_for("GSWG", "2020", "annual_meeting") == "gswg-2020-annual_meeting@roundtable.local"
    assert uid_for("GSWG", "2020", "Annual Meeting / Q1!", domain="gswg.example") == (
        "gswg-2020-annual-meeting-q1@gswg.example"
    )
    lao = uid_for("GSWG", "ກອງປະຊຸມປະຈຳປີ")
    assert lao == uid_for("GSWG", "ກອງປະຊຸມປະຈຳປີ") != uid_for("GSWG", "ບົດບັນທຶກກອງປະຊຸມ")
    assert lao.isascii() and " " not in lao
    with pytest.raises(ValueError):
        uid_for()


def test_refuses_what_would_be_wrong():
    with pytest.raises(ValueError):
        meeting_invite(MEETING, ATTENDEES, method="PUBLISH")
    with pytest.raises(ValueError):
        meeting_invite(MEETING, [Attendee("x", "x@example.org", "GUEST")])
    with pytest.raises(ValueError):
        meeting_invite(replace(MEETING, starts_at=datetime(2019, 11, 13, 8, 0)), ATTENDEES)  # naive
    with pytest.raises(ValueError):
        deadline_calendar(DEADLINE, method="REQUEST")
