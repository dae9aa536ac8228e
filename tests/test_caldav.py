"""Our events stored in and read back from a real CalDAV server (Radicale on loopback)."""

import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from icalendar import Calendar

from calendars.ics import Attendee, Deadline, Meeting, Person, deadline_calendar, for_caldav, meeting_invite, uid_for

MEETING = Meeting(
    uid=uid_for("GSWG", "2020", "annual_meeting"),
    sequence=1,
    summary_lo="ກອງປະຊຸມປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ",
    summary_en="Annual review meeting of the Governance Sector Working Group",
    description_lo="ວາລະກອງປະຊຸມ: ລົງທະບຽນ · ພາກກ່າວເປີດກອງປະຊຸມ · ສົນທະນາລວມ · ພັກຜ່ອນດື່ມກາເຟ · ພາກກ່າວປິດ",
    description_en="Agenda: registration · opening session · discussion · refreshment break · closing session",
    starts_at=datetime(2019, 11, 13, 1, 0, tzinfo=timezone.utc),
    ends_at=datetime(2019, 11, 13, 5, 0, tzinfo=timezone.utc),
    timezone="Asia/Vientiane",
    location="ICTC, Vientiane",
    organizer=Person("ກອງເລຂາ", "secretariat@gswg.example"),
    url="https://roundtable.example/m/1",
)
DEADLINE = Deadline(
    uid=uid_for("GSWG", "2020", "comment_round"),
    sequence=0,
    title_lo="ສົ່ງອີເມວຂໍຄໍາເຫັນກ່ຽວກັບຮ່າງແຜນ",
    title_en="Comments on the draft plan are due",
    description_lo="ຮ່າງແຜນວຽກປະຈຳປີ",
    description_en="Draft annual work plan",
    due_at=datetime(2020, 2, 14, 10, 0, tzinfo=timezone.utc),
    timezone="Asia/Vientiane",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def radicale(tmp_path_factory):
    """A Radicale server on a free loopback port: no auth, no rights rules, temp storage."""
    folder = tmp_path_factory.mktemp("radicale")
    port = free_port()
    log = open(folder / "radicale.log", "wb")  # a file, not a pipe nobody drains
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "radicale",
            "--config", "",  # read no system or user configuration
            "--server-hosts", f"127.0.0.1:{port}",
            "--auth-type", "none",
            "--rights-type", "authenticated",  # with auth none: everyone may read and write
            "--storage-filesystem-folder", str(folder / "collections"),
            "--web-type", "none",
            "--logging-level", "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"radicale exited: {(folder / 'radicale.log').read_text(errors='replace')}")
            try:
                httpx.request("OPTIONS", base + "/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("radicale did not answer within 20 s")
                time.sleep(0.05)
        print(f"radicale answered after {time.monotonic() - started:.2f} s")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def mkcalendar(client: httpx.Client, path: str) -> None:
    """MKCOL the parent (a plain collection, like a user's home) once, then MKCALENDAR the calendar."""
    parent = path.rstrip("/").rsplit("/", 1)[0] + "/"
    if client.request("PROPFIND", parent, headers={"Depth": "0"}).status_code == 404:
        assert client.request("MKCOL", parent).status_code == 201
    response = client.request("MKCALENDAR", path)
    assert response.status_code == 201, response.text


def put_and_get(client: httpx.Client, path: str, ics: bytes) -> Calendar:
    body = for_caldav(ics)
    put = client.put(path, content=body, headers={"Content-Type": "text/calendar; charset=utf-8"})
    assert put.status_code in (201, 204), put.text
    got = client.get(path)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(got.content)


def test_meeting_and_deadline_round_trip_through_caldav(radicale):
    with httpx.Client(base_url=radicale, timeout=10) as client:
        mkcalendar(client, "/gswg/2020/")

        invite = meeting_invite(MEETING, [Attendee("ສົມພອນ", "somphone@moj.example")])
        stored = put_and_get(client, f"/gswg/2020/{MEETING.uid}.ics", invite)
        assert "METHOD" not in stored
        (event,) = stored.events
        assert event.uid == MEETING.uid
        assert event.sequence == 1
        assert event.start == MEETING.starts_at and event.end == MEETING.ends_at
        assert event.start.utcoffset() == timedelta(hours=7)
        assert event["DTSTART"].params["TZID"] == "Asia/Vientiane"
        assert event.summary == MEETING.summary_lo + " — " + MEETING.summary_en
        assert event.description.startswith(MEETING.description_lo + "\n\n" + MEETING.description_en)
        assert [a.email for a in event.attendees] == ["somphone@moj.example"]

        stored = put_and_get(client, f"/gswg/2020/{DEADLINE.uid}.ics", deadline_calendar(DEADLINE))
        (event,) = stored.events
        assert event.uid == DEADLINE.uid
        assert event.start == DEADLINE.due_at and event.start.hour == 17
        assert event.end - event.start == timedelta(minutes=30)
        assert event["TRANSP"] == "TRANSPARENT"
        assert event.summary == DEADLINE.title_lo + " — " + DEADLINE.title_en
        assert len(event.walk("VALARM")) == 2

        # The server indexed both under their UIDs: a calendar-query REPORT finds them.
        report = client.request(
            "REPORT",
            "/gswg/2020/",
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            content=(
                '<?xml version="1.0" encoding="utf-8"?>'
                '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                "<D:prop><C:calendar-data/></D:prop>"
                '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter>'
                "</C:calendar-query>"
            ).encode(),
        )
        assert report.status_code == 207
        text = report.content.decode("utf-8")
        assert MEETING.uid in text and DEADLINE.uid in text


def test_update_replaces_the_stored_event(radicale):
    """An update (SEQUENCE+1, new time) replaces the stored event under the same UID."""
    with httpx.Client(base_url=radicale, timeout=10) as client:
        mkcalendar(client, "/gswg/update/")
        path = f"/gswg/update/{MEETING.uid}.ics"
        put_and_get(client, path, meeting_invite(MEETING, []))
        moved = replace(
            MEETING, sequence=2, starts_at=MEETING.starts_at + timedelta(days=1), ends_at=MEETING.ends_at + timedelta(days=1)
        )
        (event,) = put_and_get(client, path, meeting_invite(moved, [])).events
        assert event.uid == MEETING.uid and event.sequence == 2
        assert event.start == moved.starts_at
