"""meeting_invite / deadline_calendar from a per-shape template give the very bytes of building the whole calendar.

The reference is the builder the functions fall back to (_invite_calendar / _deadline_calendar), i.e. the
calendar built by icalendar from scratch, for many seeded random recipients, links and meetings.
"""

import random
import string
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from icalendar.parser import Contentline

from calendars import ics, ics_per_recipient
from calendars.ics import Attendee, Deadline, Meeting, deadline_calendar, meeting_invite, uid_for
from tests import test_ics

STAMPS = (
    datetime(2019, 10, 1, 2, 0, tzinfo=timezone.utc),
    datetime(2019, 10, 2, 9, 30, 15, tzinfo=ZoneInfo("Asia/Vientiane")),
)

LAO_WORDS = ("ທ່ານ", "ສົມພອນ", "ແກ້ວມະນີ", "ປະທານ", "ກອງເລຂາ", "ຄຳຫລ້າ", "ວົງສາ", "ພູມມະຫາໄຊ")
ENGLISH_WORDS = ("Khamla", "Vongsa", "Dr.", "Somphone", "UNDP", "Ministry", "of", "Home", "Affairs")
AWKWARD = (",", ";", ":", '"', "\\", "^", "'", "\\n")  # "\\n" is a backslash and an n, not a newline

# The invite and deadline of test_ics, with an English agenda full of what TEXT escapes.
MEETING = replace(
    test_ics.MEETING,
    description_en='Agenda\n08:00 Registration, all participants; chair\n09:00 Report: the "annual" plan \\ draft',
    url=None,
)
# Another meeting of the same shape but for a few fields, interleaved with the first one.
OTHER_MEETING = replace(
    MEETING,
    uid=uid_for("GSWG", "2020", "mid_year"),
    sequence=3,
    summary_en="Mid-year review",
    description_lo="ບົດລາຍງານ",
    description_en="Report,\nthen questions",
    starts_at=datetime(2020, 5, 20, 2, 0, tzinfo=timezone.utc),
    ends_at=datetime(2020, 5, 20, 4, 0, tzinfo=timezone.utc),
    location=None,
    alarms=(timedelta(hours=2),),
)
DEADLINE = replace(test_ics.DEADLINE, url=None)
OTHER_DEADLINE = replace(
    DEADLINE, uid=uid_for("GSWG", "2020", "comments"), sequence=2, description_en="", cancelled=True
)


def random_text(rng: random.Random, words: int) -> str:
    pool = LAO_WORDS + ENGLISH_WORDS + AWKWARD
    return " ".join(rng.choice(pool) for _ in range(words))


def random_name(rng: random.Random) -> str:
    kind = rng.choice(("lao", "english", "awkward", "long"))
    if kind == "lao":
        return " ".join(rng.choices(LAO_WORDS, k=rng.randint(1, 3)))
    if kind == "english":
        return ", ".join(rng.choices(ENGLISH_WORDS, k=rng.randint(1, 3)))
    if kind == "awkward":
        return random_text(rng, rng.randint(1, 6))
    return random_text(rng, rng.randint(20, 60))  # folds inside CN, often inside a Lao character's bytes


def random_url(rng: random.Random) -> str | None:
    kind = rng.choice(("none", "short", "long", "awkward"))
    token = "".join(rng.choices(string.ascii_letters + string.digits + "-_.", k=rng.randint(8, 40)))
    if kind == "none":
        return None
    if kind == "short":
        return f"https://rt.example/m/{token}"
    if kind == "long":  # DESCRIPTION and URL fold inside the link
        return f"https://roundtable.example/gswg/2020/annual_meeting/respond/{token * rng.randint(5, 8)}?lang=lo"
    return f"https://rt.example/m/{token};x=1,y=2\\z^w/{token}"  # escaped in DESCRIPTION, not in URL


def random_attendee(rng: random.Random) -> Attendee:
    user = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789.", k=rng.randint(1, 30)))
    email = f"{user}@{rng.choice(('moha.example', 'undp.example', 'MoJ.Example', 'x.la'))}"
    return Attendee(random_name(rng), email, rng.choice(("CHAIR", "REQ-PARTICIPANT", "req-participant")))


def assert_same_invite(meeting: Meeting, attendee: Attendee, method: str = "REQUEST", stamp: datetime = STAMPS[0]):
    reference = ics._invite_calendar(meeting, [attendee], method.upper(), stamp).to_ical()
    assert meeting_invite(meeting, [attendee], method, stamp=stamp) == reference


def assert_same_deadline(deadline: Deadline, method: str = "PUBLISH", stamp: datetime = STAMPS[0]):
    reference = ics._deadline_calendar(deadline, method.upper(), stamp).to_ical()
    assert deadline_calendar(deadline, method, stamp=stamp) == reference


@pytest.fixture(autouse=True)
def empty_cache():
    ics_per_recipient._templates.clear()
    yield
    ics_per_recipient._templates.clear()


@pytest.mark.parametrize("seed", range(8))
def test_invites_are_byte_identical_to_building_the_whole_calendar(seed):
    rng = random.Random(seed)
    meetings = [MEETING, OTHER_MEETING, replace(MEETING, cancelled=True)]
    if seed % 2:  # a description long and awkward enough to fold everywhere, commas and newlines included
        agenda = random_text(rng, 120).replace(" of ", "\n")
        meetings.append(replace(OTHER_MEETING, description_en=agenda, location=""))
    for _ in range(120):
        meeting = replace(rng.choice(meetings), url=random_url(rng))
        method = rng.choice(("REQUEST", "CANCEL", "request"))
        assert_same_invite(meeting, random_attendee(rng), method, rng.choice(STAMPS))
    assert 0 < len(ics_per_recipient._templates) < 120  # the calls above did share templates


@pytest.mark.parametrize("seed", range(4))
def test_deadlines_are_byte_identical_to_building_the_whole_calendar(seed):
    rng = random.Random(seed)
    deadlines = [DEADLINE, OTHER_DEADLINE, replace(DEADLINE, description_lo="", description_en="")]
    for _ in range(120):
        deadline = replace(rng.choice(deadlines), url=random_url(rng))
        assert_same_deadline(deadline, rng.choice(("PUBLISH", "CANCEL")), rng.choice(STAMPS))


def test_the_calendar_is_built_once_per_meeting_and_the_recipients_are_the_callers(monkeypatch):
    built = []
    build = ics._invite_calendar
    monkeypatch.setattr(ics, "_invite_calendar", lambda *args: built.append(args[0].uid) or build(*args))
    members = [
        Attendee(f"ສະມາຊິກ {i}, Member {i}", f"member{i}@gswg.example", "CHAIR" if i == 0 else "REQ-PARTICIPANT")
        for i in range(40)
    ]
    for i, member in enumerate(members):
        for meeting in (MEETING, OTHER_MEETING):
            url = f"https://rt.example/m/{meeting.sequence}/{i}-{'x' * i}"
            ics_bytes = meeting_invite(replace(meeting, url=url), [member], stamp=STAMPS[0])
            (event,) = Calendar.from_ical(ics_bytes).walk("VEVENT")
            assert str(event["ATTENDEE"]) == f"mailto:{member.email}"
            assert event["ATTENDEE"].params["CN"] == member.name
            assert event["ATTENDEE"].params["ROLE"] == member.role
            assert str(event["URL"]) == url
            assert str(event["DESCRIPTION"]).endswith("\n\n" + url)
            assert str(event["UID"]) == meeting.uid
    assert built == [MEETING.uid, OTHER_MEETING.uid]


def test_a_deadline_parsed_back_carries_the_recipients_link():
    for i in range(5):
        url = f"https://rt.example/f/{i}/" + "t" * 30 * i
        (event,) = Calendar.from_ical(deadline_calendar(replace(DEADLINE, url=url), stamp=STAMPS[1])).walk("VEVENT")
        assert str(event["URL"]) == url
        assert str(event["DESCRIPTION"]).endswith("\n\n" + url)


def test_without_a_stamp_or_with_several_attendees_the_calendar_is_built_whole():
    attendees = [Attendee("A", "a@x.example"), Attendee("B", "b@x.example", "CHAIR")]
    assert meeting_invite(MEETING, attendees, stamp=STAMPS[0]) == ics._invite_calendar(
        MEETING, attendees, "REQUEST", STAMPS[0]
    ).to_ical()
    (event,) = Calendar.from_ical(meeting_invite(MEETING, attendees[:1])).walk("VEVENT")  # DTSTAMP is now
    assert abs(event.DTSTAMP - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert len(ics_per_recipient._templates) == 0


def test_datetimes_that_differ_only_in_fold_do_not_share_a_template():
    # 01:30 happens twice in New York on 3 November 2019; written in Vientiane they are an hour apart.
    first = datetime(2019, 11, 3, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first == second and hash(first) == hash(second)
    attendee = Attendee("A", "a@x.example")
    for starts_at in (first, second):
        meeting = replace(MEETING, starts_at=starts_at, url="https://rt.example/m/1")
        assert_same_invite(meeting, attendee)
    for stamp in (first, second):
        assert_same_deadline(DEADLINE, stamp=stamp)


def test_unhashable_fields_and_a_full_cache_still_give_the_same_bytes(monkeypatch):
    attendee = Attendee("A", "a@x.example")
    listed = replace(MEETING, alarms=[timedelta(days=1)], url="https://rt.example/m/1")  # a list: not hashable
    assert_same_invite(listed, attendee)
    monkeypatch.setattr(ics_per_recipient._templates, "size", 5)
    for sequence in range(12):
        meeting = replace(MEETING, sequence=sequence, url=f"https://rt.example/m/{sequence}")
        assert_same_invite(meeting, attendee)
        assert len(ics_per_recipient._templates) <= 5


def test_invalid_input_is_refused_as_before_even_for_a_known_shape():
    meeting = replace(MEETING, url="https://rt.example/m/1")
    meeting_invite(meeting, [Attendee("A", "a@x.example")], stamp=STAMPS[0])
    with pytest.raises(ValueError, match="role"):
        meeting_invite(meeting, [Attendee("A", "a@x.example", "GUEST")], stamp=STAMPS[0])
    with pytest.raises(ValueError, match="starts_at"):
        naive = replace(meeting, starts_at=MEETING.starts_at.replace(tzinfo=None))
        meeting_invite(naive, [Attendee("A", "a@x.example")], stamp=STAMPS[0])


# Backslashes and carets are carried over a fold; Lao and emoji are 3 and 4 bytes: the worst cases.
@pytest.mark.parametrize("alphabet", ("ab\\^ລວ😀,", "ab ,:;", "abລວ😀\"", "ab\\^", "\\", "ລ^"))
def test_lines_are_folded_as_icalendar_folds_them(alphabet):
    rng = random.Random(alphabet)
    for length in range(600):
        line = "DESCRIPTION:" + "".join(rng.choices(alphabet, k=length))
        assert ics_per_recipient._fold(line) == Contentline(line).to_ical()
