"""The main job: the demo runs the seed cycle end to end, each step in the seed's month, and its mail
reads as proper bilingual messages and invitations."""

import json
from datetime import datetime
from email import message_from_bytes, policy
from email.parser import BytesParser

import pytest
from icalendar import Calendar
from typer.testing import CliRunner

from roundtable.cli import app

LAO_LETTERS = range(0x0E80, 0x0F00)


def has_lao(text: str) -> bool:
    return any(ord(ch) in LAO_LETTERS for ch in text)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    messages = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    return out, messages, result.output


def first(messages, step, kind):
    return min(datetime.fromisoformat(m["at"]) for m in messages if m["step"] == step and m["kind"] == kind)


def test_each_step_happens_in_the_seed_month(demo):
    _out, messages, output = demo
    assert "cycle finished" in output
    call = first(messages, "call_for_suggestions", "call")
    assert (call.year, call.month) == (2019, 11) and call.day <= 8  # early November
    invite = first(messages, "annual_review_meeting", "invite")
    assert invite < datetime.fromisoformat("2019-11-13T08:30:00+07:00")
    survey = first(messages, "annual_review_meeting", "survey")
    assert survey.date().isoformat() == "2019-11-13"
    review = first(messages, "secretariat_review", "task")
    assert (review.year, review.month) == (2020, 1)
    comments = first(messages, "comment_round", "call")
    assert (comments.year, comments.month) == (2020, 2)
    submission = first(messages, "submission_to_mpi", "submission")
    assert submission <= datetime.fromisoformat("2020-03-31T23:59:00+07:00")
    assert all(datetime.fromisoformat(m["at"]).utcoffset().total_seconds() == 7 * 3600 for m in messages)


def test_every_message_is_a_file_with_a_unique_message_id(demo):
    out, messages, _ = demo
    ids = [m["message_id"] for m in messages]
    assert len(ids) == len(set(ids))
    files = sorted(p.name for p in (out / "mail").glob("*.eml"))
    assert sorted(m["file"].removeprefix("mail/") for m in messages) == files
    for entry in messages[:: max(1, len(messages) // 60)]:
        mail = BytesParser(policy=policy.default).parse((out / entry["file"]).open("rb"))
        assert mail["Message-ID"] == entry["message_id"]
        assert has_lao(str(mail["Subject"])) and "\n" not in str(mail["Subject"])
        text = mail.get_body(("plain",)).get_content()
        lao_at = next(i for i, ch in enumerate(text) if ord(ch) in LAO_LETTERS)
        assert any(ch.isascii() and ch.isalpha() for ch in text[lao_at:])  # English follows the Lao
        assert mail.get_body(("html",)) is not None


def test_invitations_are_invitations(demo):
    out, messages, _ = demo
    invite = next(m for m in messages if m["kind"] == "invite")
    raw = (out / invite["file"]).read_bytes()
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail.get_content_type() == "multipart/mixed"
    alternative = next(p for p in mail.iter_parts() if p.get_content_type() == "multipart/alternative")
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    calendar_part = list(alternative.iter_parts())[2]
    assert calendar_part.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(calendar_part.get_content())
    assert str(calendar["METHOD"]) == "REQUEST"
    event = calendar.walk("VEVENT")[0]
    assert event.decoded("DTSTART") == datetime.fromisoformat("2019-11-13T08:30:00+07:00")
    assert event.decoded("DTSTART").utcoffset().total_seconds() == 7 * 3600
    assert has_lao(str(event["SUMMARY"]))
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    assert [str(a).lower().removeprefix("mailto:") for a in attendees] == [invite["to"][0]]
    assert attendees[0].params["PARTSTAT"] == "NEEDS-ACTION" and attendees[0].params["RSVP"] == "TRUE"
    assert any(p.get_content_type() == "application/ics" for p in mail.iter_attachments())


def test_reminders_only_for_those_who_had_not_answered(demo):
    out, messages, _ = demo
    import sqlite3

    db = sqlite3.connect(out / "roundtable.db")
    answered_before = db.execute(
        "select m.email, min(r.at) from response r join member m on m.id = r.member_id join step s on s.id = r.step_id "
        "where s.key = 'call_for_suggestions' and r.kind = 'suggestion' group by m.email").fetchall()
    first_answer = {email: datetime.fromisoformat(at + "+00:00") for email, at in answered_before}
    for m in messages:
        if m["step"] == "call_for_suggestions" and m["kind"] == "reminder":
            answered = first_answer.get(m["to"][0])
            assert answered is None or answered > datetime.fromisoformat(m["at"])


def test_the_chairs_deputy_is_asked_too_and_the_chair_decides_once(demo):
    """examples/roster.csv names a deputy for the GSWG chair (column deputy_for)."""
    out, messages, _ = demo
    asked = {m["to"][0] for m in messages if m["step"] == "approval" and m["kind"] == "approval_request"}
    assert asked == {"gswg.chair@example.org", "gswg.cochair.moj@example.org", "gswg.cochair.undp@example.org",
                     "gswg.cochair.sdc@example.org", "gswg.moha.planning@example.org"}
    import sqlite3

    db = sqlite3.connect(out / "roundtable.db")
    chair = db.execute("select count(*) from decision d join member m on m.id = d.member_id "
                       "where m.email = 'gswg.chair@example.org' group by d.plan_revision").fetchall()
    assert chair and all(count == 1 for (count,) in chair)


def test_a_members_feed_from_the_demo_has_every_meeting_and_deadline(demo):
    out, _messages, _ = demo
    from sqlmodel import Session

    from calendars.feeds import member_feed
    from models.db import make_engine

    engine = make_engine(f"sqlite:///{out / 'roundtable.db'}")
    with Session(engine) as session:
        feed = Calendar.from_ical(member_feed(session, "gswg.chair@example.org",
                                              datetime.fromisoformat("2020-04-01T09:00:00+07:00")))
    engine.dispose()
    events = {str(e["UID"]): e for e in feed.walk("VEVENT")}
    starts = sorted(e.decoded("DTSTART") for e in events.values())
    assert datetime.fromisoformat("2019-11-13T08:30:00+07:00") in starts  # the annual review meeting
    assert datetime.fromisoformat("2019-11-11T17:00:00+07:00") in starts  # the call's deadline
    assert any(uid.endswith("approval-deadline@roundtable.local") or "approval" in uid for uid in events)
    assert all(s.utcoffset().total_seconds() == 7 * 3600 for s in starts)


def test_simulate_until_leaves_a_live_cycle(tmp_path):
    from tests.engine_helpers import GSWG_YAML, ROOT

    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--definition", str(GSWG_YAML), "--roster",
                                      str(ROOT / "examples" / "roster.csv"), "--year", "2020", "--out", str(out),
                                      "--until", "2019-11-05T12:00:00+07:00", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "stopped at" in result.output
    messages = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert messages and max(datetime.fromisoformat(m["at"]) for m in messages) <= datetime.fromisoformat(
        "2019-11-05T12:00:00+07:00")
    import sqlite3

    db = sqlite3.connect(out / "roundtable.db")
    assert db.execute("select state from cycle").fetchone() == ("live",)
    states = dict(db.execute("select key, state from step").fetchall())
    assert states["call_for_suggestions"] == "open" and states["approval"] == "planned"
    # Answers are recorded up to the stop, including those after the engine's last moment, and none later.
    answers = [datetime.fromisoformat(at + "+00:00") for (at,) in db.execute("select at from response")]
    assert answers and max(answers) <= datetime.fromisoformat("2019-11-05T12:00:00+07:00")
