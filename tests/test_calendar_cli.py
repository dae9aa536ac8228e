"""`roundtable calendar export` and `roundtable rsvp ingest` through the real CLI (CliRunner)."""

import os
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from icalendar import Calendar
from sqlmodel import Session, select
from typer.testing import CliRunner

from calendars.ics import uid_for
from models.db import engine_for, upgrade
from models.tables import Member, Notification, Response, Step
from roundtable.cli import app
from test_feeds import seed  # the rows of the sibling test module (tests/ is on sys.path under pytest)

runner = CliRunner()
MEETING_UID = uid_for("GSWG", "2020", "annual_review_meeting")


@pytest.fixture
def db():
    """The database the CLI will open (ROUNDTABLE_DATABASE_URL, set per test by conftest), seeded."""
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        seed(session)
        session.commit()
    yield engine
    engine.dispose()


def run(*args: str):
    return runner.invoke(app, list(args))


def uids(ics: bytes) -> set[str]:
    return {str(e["UID"]) for e in Calendar.from_ical(ics).walk("VEVENT")}


def test_export_member_to_stdout(db):
    result = run("calendar", "export", "--member", "mpi@mpi.example")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"BEGIN:VCALENDAR\r\n")
    assert uids(result.stdout_bytes) == {MEETING_UID, uid_for("GSWG", "2020", "submission_to_mpi", "deadline")}
    assert "ກອງປະຊຸມປະຈຳປີ".encode() in result.stdout_bytes


def test_export_group_to_a_file(db, tmp_path):
    out = tmp_path / "psi.ics"
    result = run("calendar", "export", "--group", "PSI", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and "BEGIN:VCALENDAR" not in result.stdout
    assert MEETING_UID in uids(out.read_bytes())


@pytest.mark.parametrize("args", [[], ["--member", "chair@gswg.example", "--group", "GSWG"]])
def test_export_needs_exactly_one_of_member_or_group(db, args):
    result = run("calendar", "export", *args)
    assert result.exit_code == 2
    assert "exactly one of --member EMAIL or --group CODE" in result.stderr


def test_export_unknown_member_or_group(db):
    result = run("calendar", "export", "--member", "nobody@example.org")
    assert result.exit_code == 2 and "nobody@example.org" in result.stderr and not result.stdout
    result = run("calendar", "export", "--group", "XYZ")
    assert result.exit_code == 2 and "'XYZ'" in result.stderr


def reply_mail(address: str, partstat: str = "ACCEPTED") -> bytes:
    ics = "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "METHOD:REPLY", "BEGIN:VEVENT",
        f"UID:{MEETING_UID}", "SEQUENCE:0", "DTSTAMP:20191101T030000Z",
        "DTSTART;TZID=Asia/Vientiane:20191113T083000",
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{address}", "END:VEVENT", "END:VCALENDAR", "",
    ])
    message = MIMEMultipart("alternative")
    message["From"], message["To"], message["Subject"] = address, "secretariat@gswg.example", "Accepted"
    message.attach(MIMEText("ຂໍຂອບໃຈ", "plain", "utf-8"))
    part = MIMEText(ics, "calendar", "utf-8")
    part.set_param("method", "REPLY")
    message.attach(part)
    return message.as_bytes()


def test_rsvp_ingest_records_then_reports_unchanged_and_lists_strangers(db, tmp_path):
    """`rsvp ingest` is an alias of `mail ingest`: the same checks, the same summary."""
    with Session(db) as session:  # the invitation went out and the meeting step is open
        meeting = session.exec(select(Step).where(Step.key == "annual_review_meeting")).one()
        member = session.exec(select(Member).where(Member.email == "member@gswg.example")).one()
        meeting.state = "open"
        session.add(Notification(key="invite/member", cycle_id=meeting.cycle_id, step_id=meeting.id,
                                 member_id=member.id, recipient=member.email, kind="invite", state="sent",
                                 due_at=meeting.opens_at, created_at=meeting.opens_at))
        session.commit()
    mails = tmp_path / "mails"
    mails.mkdir()
    (mails / "member.eml").write_bytes(reply_mail("member@gswg.example"))
    (mails / "stranger.eml").write_bytes(reply_mail("stranger@example.org"))

    first = run("rsvp", "ingest", str(mails), "--now", "2019-11-05T10:00")
    assert first.exit_code == 0, first.output  # an ignored reply does not fail the run
    assert f"ignored: {mails / 'stranger.eml'}: stranger@example.org is not an expected attendee" in first.stdout
    assert "recorded 0 suggestions, 0 comments, 1 meeting replies" in first.stdout
    with Session(db) as session:
        assert [r.body for r in session.exec(select(Response).where(Response.kind == "rsvp"))] == ["ACCEPTED"]

    again = run("rsvp", "ingest", str(mails / "member.eml"), "--now", "2019-11-05T10:00")
    assert again.exit_code == 0
    assert "already handled" in again.stdout and "1 meeting replies" not in again.stdout


def test_rsvp_ingest_missing_path_is_exit_2_and_writes_nothing(db, tmp_path):
    (tmp_path / "member.eml").write_bytes(reply_mail("member@gswg.example"))
    result = run("rsvp", "ingest", str(tmp_path / "member.eml"), str(tmp_path / "missing"))
    assert result.exit_code == 2 and "missing" in result.stderr
    with Session(db) as session:
        assert session.exec(select(Response)).all() == []
