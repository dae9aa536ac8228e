"""Member and group feeds from database rows, read back by icalendar and vobject, on SQLite and PostgreSQL."""

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import vobject
from icalendar import Calendar
from sqlmodel import Session, select

from calendars.feeds import UnknownGroup, UnknownMember, group_feed, member_feed
from calendars.ics import uid_for
from calendars.timeline import compute_timeline
from models.definition import load_definition
from models.tables import CalendarEntry, Cycle, Member, Membership, Step, WorkingGroup

ROOT = Path(__file__).parents[1]
VIENTIANE = ZoneInfo("Asia/Vientiane")
NOW = datetime(2019, 10, 1, 2, 0, tzinfo=timezone.utc)

# Who holds what: (email, name, group, role, ends_on)
PEOPLE = [
    ("chair@gswg.example", "ທ່ານ ປະທານ", "GSWG", "chair", None),
    ("member@gswg.example", "ສະມາຊິກ ໜຶ່ງ", "GSWG", "member", None),
    ("mpi@mpi.example", "ຜູ້ປະສານງານ MPI", "GSWG", "mpi-focal", None),
    ("secretariat@gswg.example", "ກອງເລຂາ", "GSWG", "secretariat", None),
    ("psi@psi.example", "ສະມາຊິກ PSI", "PSI", "member", None),
    ("left@gswg.example", "ອອກໄປແລ້ວ", "GSWG", "member", date(2019, 12, 1)),  # gone before the comment round
]


def seed(session: Session, year: int = 2020, state: str = "live") -> Cycle:
    """GSWG with PSI under it, the people above, and one cycle of cycles/gswg.yaml with its steps and entries,
    shaped as flows/cycle.py writes them."""
    gswg = session.exec(select(WorkingGroup).where(WorkingGroup.code == "GSWG")).first()
    if gswg is None:
        gswg = WorkingGroup(code="GSWG", name_lo="ໜ່ວຍງານດ້ານການປົກຄອງ", name_en="Governance Sector Working Group")
        session.add(gswg)
        session.flush()
        psi = WorkingGroup(code="PSI", name_lo="ການບໍລິການສາທາລະນະ", name_en="Public Service Improvement",
                           parent_id=gswg.id)
        session.add(psi)
        session.flush()
        codes = {"GSWG": gswg.id, "PSI": psi.id}
        for address, name, code, role, ends_on in PEOPLE:
            member = Member(name=name, email=address)
            session.add(member)
            session.flush()
            session.add(Membership(member_id=member.id, group_id=codes[code], role=role, ends_on=ends_on))
    definition = load_definition(ROOT / "cycles" / "gswg.yaml")
    cycle = Cycle(group_id=gswg.id, year=year, state=state, definition=definition.model_dump(mode="json"),
                  created_at=NOW)
    session.add(cycle)
    session.flush()
    for position, dated in enumerate(compute_timeline(definition, year)):
        step = Step(cycle_id=cycle.id, key=dated.key, kind=dated.kind, position=position, opens_at=dated.opens_at,
                    due_at=dated.due_at, starts_at=dated.starts_at, ends_at=dated.ends_at)
        session.add(step)
        session.flush()
        if dated.starts_at:
            session.add(CalendarEntry(uid=uid_for("GSWG", str(year), dated.key), cycle_id=cycle.id, step_id=step.id,
                                      kind="meeting", starts_at=dated.starts_at, ends_at=dated.ends_at))
        if dated.due_at and dated.kind != "meeting":
            session.add(CalendarEntry(uid=uid_for("GSWG", str(year), dated.key, "deadline"), cycle_id=cycle.id,
                                      step_id=step.id, kind="deadline", starts_at=dated.due_at, ends_at=dated.due_at))
    session.flush()
    return cycle


def uids(*keys: str, year: int = 2020) -> set[str]:
    """'annual_review_meeting' -> the meeting UID; 'approval!' -> the deadline UID."""
    return {uid_for("GSWG", str(year), k[:-1], "deadline") if k.endswith("!") else uid_for("GSWG", str(year), k)
            for k in keys}


def events(ics: bytes) -> dict:
    return {str(e["UID"]): e for e in Calendar.from_ical(ics).walk("VEVENT")}


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        seed(session)
        session.commit()
        yield session


EVERYONE = ("call_for_suggestions!", "annual_review_meeting", "comment_round!")


@pytest.mark.parametrize("address, expected", [
    ("member@gswg.example", EVERYONE),
    ("chair@gswg.example", EVERYONE + ("approval!",)),
    ("mpi@mpi.example", ("annual_review_meeting", "submission_to_mpi!")),
    ("secretariat@gswg.example", EVERYONE + ("secretariat_review", "secretariat_review!")),
    ("psi@psi.example", EVERYONE),  # a sub-group member: empty audience groups take in PSI
    ("left@gswg.example", ("call_for_suggestions!", "annual_review_meeting")),  # membership ended 1 Dec 2019
])
def test_member_feed_holds_exactly_the_steps_whose_audience_includes_them(session, address, expected):
    assert set(events(member_feed(session, address, NOW))) == uids(*expected)


def test_email_is_matched_case_insensitively(session):
    assert member_feed(session, " Chair@GSWG.example ", NOW) == member_feed(session, "chair@gswg.example", NOW)


def test_group_feeds_own_cycle_in_full_and_parent_cycle_where_audience_covers_the_sub_group(session):
    everything = EVERYONE + ("secretariat_review", "secretariat_review!", "approval!", "submission_to_mpi!")
    assert set(events(group_feed(session, "GSWG", NOW))) == uids(*everything)
    # secretariat review and approval name groups: [GSWG]; the others leave groups empty
    psi = events(group_feed(session, "PSI", NOW))
    assert set(psi) == uids(*EVERYONE, "submission_to_mpi!")
    assert "ການບໍລິການສາທາລະນະ" in Calendar.from_ical(group_feed(session, "PSI", NOW))["X-WR-CALNAME"]


def test_times_are_vientiane_and_fields_agree_in_icalendar_and_vobject(session):
    ics = member_feed(session, "mpi@mpi.example", NOW)
    assert b"DTSTART;TZID=Asia/Vientiane:20191113T083000" in ics
    assert b"BEGIN:VTIMEZONE\r\nTZID:Asia/Vientiane" in ics
    assert b"X-WR-TIMEZONE:Asia/Vientiane" in ics
    meeting_uid = uid_for("GSWG", "2020", "annual_review_meeting")
    by_icalendar = events(ics)
    by_vobject = {e.uid.value: e for e in vobject.readOne(ics.decode("utf-8")).vevent_list}
    assert set(by_vobject) == set(by_icalendar)
    for uid, event in by_icalendar.items():
        theirs = by_vobject[uid]
        assert theirs.dtstart.value == event.decoded("DTSTART")
        assert theirs.dtstart.value.utcoffset() == timedelta(hours=7)
        assert theirs.summary.value == str(event["SUMMARY"])
        assert int(theirs.sequence.value) == 0
    meeting = by_vobject[meeting_uid]
    assert meeting.dtstart.value == datetime(2019, 11, 13, 8, 30, tzinfo=VIENTIANE)
    assert meeting.dtend.value == datetime(2019, 11, 13, 12, 15, tzinfo=VIENTIANE)
    assert meeting.summary.value.startswith("ກອງປະຊຸມປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ — Annual Review Meeting")
    assert meeting.location.value == "ICTC (ຫຼັກ5) / ICTC (Km 5)"
    assert "ລົງທະບຽນ" in meeting.description.value and "Registration" in meeting.description.value
    deadline = by_vobject[uid_for("GSWG", "2020", "submission_to_mpi", "deadline")]
    assert deadline.summary.value.startswith("ສົ່ງແຜນວຽກປະຈຳປີເຖິງກະຊວງແຜນການ")
    assert deadline.transp.value == "TRANSPARENT"
    assert deadline.dtstart.value.time().hour == 17  # the definition's due_time
    assert by_icalendar[meeting_uid]["DTSTAMP"].dt == NOW  # stamp = now, never the wall clock


def test_a_moved_meeting_shows_its_new_time_and_sequence_and_a_cancelled_one_its_status(session):
    meeting = session.exec(select(CalendarEntry).where(
        CalendarEntry.uid == uid_for("GSWG", "2020", "annual_review_meeting"))).one()
    step = session.get(Step, meeting.step_id)
    moved = datetime(2019, 11, 20, 8, 30, tzinfo=VIENTIANE)
    meeting.sequence, meeting.starts_at, meeting.ends_at = 1, moved, moved.replace(hour=12, minute=15)
    step.starts_at, step.ends_at = meeting.starts_at, meeting.ends_at
    review = session.exec(select(CalendarEntry).where(
        CalendarEntry.uid == uid_for("GSWG", "2020", "secretariat_review"))).one()
    review.cancelled, review.sequence = True, 1
    session.commit()

    found = events(member_feed(session, "secretariat@gswg.example", NOW))
    annual = found[meeting.uid]
    assert annual.decoded("DTSTART") == moved and int(annual["SEQUENCE"]) == 1
    assert str(annual["STATUS"]) == "CONFIRMED"
    assert str(found[review.uid]["STATUS"]) == "CANCELLED" and int(found[review.uid]["SEQUENCE"]) == 1
    assert str(found[uid_for("GSWG", "2020", "secretariat_review", "deadline")]["STATUS"]) == "CONFIRMED"


def test_regenerating_gives_the_same_bytes_for_the_same_now(session):
    first = member_feed(session, "chair@gswg.example", NOW)
    assert member_feed(session, "chair@gswg.example", NOW) == first
    assert group_feed(session, "GSWG", NOW) == group_feed(session, "GSWG", NOW)
    later = member_feed(session, "chair@gswg.example", NOW + timedelta(days=30))
    assert later != first and set(events(later)) == set(events(first))  # only DTSTAMP moved


def test_finished_cycles_stay_and_cancelled_cycles_are_left_out(session):
    seed(session, year=2019, state="finished")
    seed(session, year=2021, state="cancelled")
    session.commit()
    found = set(events(member_feed(session, "member@gswg.example", NOW)))
    assert found == uids(*EVERYONE) | uids(*EVERYONE, year=2019)


def test_unknown_member_or_group_is_a_clear_error(session):
    with pytest.raises(UnknownMember, match="nobody@example.org"):
        member_feed(session, "nobody@example.org", NOW)
    with pytest.raises(UnknownGroup, match="'XYZ'"):
        group_feed(session, "XYZ", NOW)
    assert issubclass(UnknownMember, ValueError) and issubclass(UnknownGroup, ValueError)


def test_a_member_of_no_cycle_gets_an_empty_but_valid_feed(session):
    session.add(Member(name="Nobody", email="new@example.org"))
    session.commit()
    calendar = Calendar.from_ical(member_feed(session, "new@example.org", NOW))
    assert calendar.walk("VEVENT") == [] and str(calendar["METHOD"]) == "PUBLISH"
