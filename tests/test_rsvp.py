"""RSVP ingest from REPLY mails shaped like Outlook's and Gmail's, on SQLite and PostgreSQL."""

import base64
import email.charset
import mailbox
from datetime import date, datetime, timezone
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from sqlmodel import Session, select

from calendars.ics import uid_for
from calendars.rsvp import ingest_replies, read_replies, who_is_coming
from models.tables import CalendarEntry, Cycle, Member, Membership, Response, Step, WorkingGroup

MEETING_UID = uid_for("GSWG", "2020", "annual_meeting")
NOW = datetime(2019, 10, 5, 3, 0, tzinfo=timezone.utc)
SUMMARY = "ກອງປະຊຸມປະຈຳປີ — Annual review meeting"


# -- mails as the clients shape them ------------------------------------------


def reply_ics(
    uid: str = MEETING_UID,
    address: str = "khamla@undp.example",
    partstat: str = "ACCEPTED",
    sequence: int = 1,
    stamp: str = "20191002T031500Z",
    cn: str = "Khamla Vongsa",
    comment: str = "",
    method: str = "REPLY",
) -> str:
    """A REPLY as Outlook writes it: Windows zone name, COMMENT, upper-case MAILTO possible."""
    lines = [
        "BEGIN:VCALENDAR",
        f"METHOD:{method}",
        "PRODID:Microsoft Exchange Server 2010",
        "VERSION:2.0",
        "BEGIN:VTIMEZONE",
        "TZID:SE Asia Standard Time",
        "BEGIN:STANDARD",
        "DTSTART:16010101T000000",
        "TZOFFSETFROM:+0700",
        "TZOFFSETTO:+0700",
        "END:STANDARD",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        f"ATTENDEE;PARTSTAT={partstat};CN={cn}:{address}",
        *([f"COMMENT;LANGUAGE=lo-LA:{comment}"] if comment else []),
        f"SUMMARY;LANGUAGE=en-US:Accepted: {SUMMARY}",
        "DTSTART;TZID=SE Asia Standard Time:20191113T080000",
        "DTEND;TZID=SE Asia Standard Time:20191113T120000",
        f"UID:{uid}",
        f"DTSTAMP:{stamp}",
        f"SEQUENCE:{sequence}",
        "X-MICROSOFT-CDO-APPT-SEQUENCE:1",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def outlook_mail(ics: str, sender: str = "khamla@undp.example") -> bytes:
    """multipart/alternative: text/plain + text/html + text/calendar; method=REPLY, base64 utf-8."""
    message = MIMEMultipart("alternative")
    message["From"], message["To"] = sender, "secretariat@gswg.example"
    message["Subject"] = f"Accepted: {SUMMARY}"
    message.attach(MIMEText("ຂໍຂອບໃຈ", "plain", "utf-8"))
    message.attach(MIMEText("<p>ຂໍຂອບໃຈ</p>", "html", "utf-8"))
    calendar = MIMEText(ics, "calendar", "utf-8")  # utf-8 text is base64 by default
    calendar.set_param("method", "REPLY")
    message.attach(calendar)
    raw = message.as_bytes()
    assert b"Content-Transfer-Encoding: base64" in raw and b"method=\"REPLY\"" in raw
    return raw


def gmail_mail(ics: str, sender: str = "somphone@moj.example") -> bytes:
    """mixed → alternative (text, html, text/calendar in quoted-printable) + invite.ics as application/ics."""
    quoted = email.charset.Charset("utf-8")
    quoted.body_encoding = email.charset.QP
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("Somphone has declined", "plain", "utf-8"))
    alternative.attach(MIMEText("<p>Somphone has declined</p>", "html", "utf-8"))
    calendar = MIMEText(ics, "calendar", quoted)
    calendar.set_param("method", "REPLY")
    alternative.attach(calendar)
    attachment = MIMEApplication(ics.encode("utf-8"), "ics")
    attachment.set_param("name", "invite.ics")
    attachment.add_header("Content-Disposition", "attachment", filename="invite.ics")
    message = MIMEMultipart("mixed")
    message["From"], message["To"] = sender, "secretariat@gswg.example"
    message["Subject"] = f"Declined: {SUMMARY}"
    message.attach(alternative)
    message.attach(attachment)
    raw = message.as_bytes()
    assert b"Content-Transfer-Encoding: quoted-printable" in raw and b"application/ics" in raw
    return raw


def gmail_ics(partstat: str = "DECLINED", address: str = "somphone@moj.example", sequence: int = 1) -> str:
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
            "VERSION:2.0",
            "CALSCALE:GREGORIAN",
            "METHOD:REPLY",
            "BEGIN:VEVENT",
            "DTSTART:20191113T010000Z",
            "DTEND:20191113T050000Z",
            "DTSTAMP:20191003T090000Z",
            "ORGANIZER;CN=ກອງເລຂາ:mailto:secretariat@gswg.example",
            f"UID:{MEETING_UID}",
            "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT="
            f"{partstat};CN=ສົມພອນ ແກ້ວມະນີ;X-NUM-GUESTS=0:mailto:{address}",
            f"SEQUENCE:{sequence}",
            "STATUS:CONFIRMED",
            f"SUMMARY:{SUMMARY}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def write(folder: Path, name: str, raw: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(raw)
    return folder / name


# -- database rows ------------------------------------------------------------


def seed(engine) -> dict:
    """GSWG with its PSI sub-group, an unrelated group, members, a cycle, its meeting and deadline."""
    with Session(engine, expire_on_commit=False) as session:
        gswg = WorkingGroup(code="GSWG", name_lo="ໜ່ວຍງານດ້ານການປົກຄອງ", name_en="Governance Sector Working Group")
        other = WorkingGroup(code="MACRO", name_lo="ມະຫາພາກ", name_en="Macroeconomics SWG")
        session.add_all([gswg, other])
        session.flush()
        psi = WorkingGroup(code="PSI", name_lo="ການປັບປຸງບໍລິຫານລັດຖະການ", name_en="Public Service Improvement",
                           parent_id=gswg.id)
        session.add(psi)
        session.flush()
        members = {
            "khamla": (Member(name="Khamla Vongsa", email="khamla@undp.example"), gswg, "co-chair"),
            "somphone": (Member(name="ສົມພອນ ແກ້ວມະນີ", email="somphone@moj.example"), gswg, "member"),
            "psi": (Member(name="ບຸນມີ", email="bounmy@moha.example"), psi, "member"),
            "outsider": (Member(name="Outsider", email="outsider@mpi.example"), other, "member"),
        }
        for member, group, role in members.values():
            session.add(member)
            session.flush()
            session.add(Membership(member_id=member.id, group_id=group.id, role=role, starts_on=date(2019, 1, 1)))
        cycle = Cycle(group_id=gswg.id, year=2020, created_at=NOW)
        session.add(cycle)
        session.flush()
        meeting = Step(cycle_id=cycle.id, key="annual_meeting", kind="meeting")
        call = Step(cycle_id=cycle.id, key="call_for_suggestions", kind="collect")
        session.add_all([meeting, call])
        session.flush()
        session.add_all(
            [
                CalendarEntry(uid=MEETING_UID, cycle_id=cycle.id, step_id=meeting.id, kind="meeting", sequence=1),
                CalendarEntry(uid=uid_for("GSWG", "2020", "call"), cycle_id=cycle.id, step_id=call.id,
                              kind="deadline"),
                CalendarEntry(uid=uid_for("GSWG", "2020", "q1"), cycle_id=cycle.id, step_id=meeting.id,
                              kind="meeting", cancelled=True),
            ]
        )
        session.commit()
        return {"step": meeting.id, **{k: m.id for k, (m, _, _) in members.items()}}


def rsvps(engine) -> dict:
    with Session(engine) as session:
        rows = session.exec(select(Response).where(Response.kind == "rsvp")).all()
        return {(r.step_id, r.member_id): (r.body, r.data["uid"], r.data["sequence"], r.at) for r in rows}


def ingest(engine, paths):
    with Session(engine, expire_on_commit=False) as session:
        report = ingest_replies(session, read_replies(paths), NOW)
        session.commit()
        return report


# -- tests --------------------------------------------------------------------


def test_reading_outlook_and_gmail_shapes(tmp_path):
    outlook = write(tmp_path, "outlook.eml", outlook_mail(reply_ics(
        address="MAILTO:KHAMLA@UNDP.EXAMPLE", comment="ຂໍຂອບໃຈ\\, ຈະເຂົ້າຮ່ວມ")))
    gmail = write(tmp_path, "gmail.eml", gmail_mail(gmail_ics()))
    replies = read_replies([outlook, gmail])
    # Gmail's inline part and invite.ics attachment carry the same answer: read once.
    assert [(r.uid, r.attendee_email, r.partstat, r.sequence, r.source, r.problem) for r in replies] == [
        (MEETING_UID, "khamla@undp.example", "ACCEPTED", 1, str(outlook), ""),
        (MEETING_UID, "somphone@moj.example", "DECLINED", 1, str(gmail), ""),
    ]
    assert replies[0].comment == "ຂໍຂອບໃຈ, ຈະເຂົ້າຮ່ວມ"
    assert replies[0].stamp == datetime(2019, 10, 2, 3, 15, tzinfo=timezone.utc)


def test_outlook_and_gmail_replies_are_recorded(engine, tmp_path):
    ids = seed(engine)
    inbox = tmp_path / "inbox"
    write(inbox, "1.eml", outlook_mail(reply_ics()))
    write(inbox, "2.eml", gmail_mail(gmail_ics()))
    write(inbox, "3.eml", outlook_mail(reply_ics(address="mailto:bounmy@moha.example", partstat="TENTATIVE")))
    report = ingest(engine, [inbox])
    assert report.ignored == [] and report.unchanged == []
    assert len(report.recorded) == 3
    assert rsvps(engine) == {
        (ids["step"], ids["khamla"]): ("ACCEPTED", MEETING_UID, 1, NOW),
        (ids["step"], ids["somphone"]): ("DECLINED", MEETING_UID, 1, NOW),
        (ids["step"], ids["psi"]): ("TENTATIVE", MEETING_UID, 1, NOW),  # a sub-group member is expected
    }
    with Session(engine) as session:
        assert who_is_coming(session, ids["step"]) == {
            "ACCEPTED": ["khamla@undp.example"],
            "TENTATIVE": ["bounmy@moha.example"],
            "DECLINED": ["somphone@moj.example"],
        }


def test_maildir_new_and_cur(engine, tmp_path):
    ids = seed(engine)
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add(mailbox.MaildirMessage(outlook_mail(reply_ics())))  # lands in new/
    seen = mailbox.MaildirMessage(gmail_mail(gmail_ics()))
    seen.set_subdir("cur")
    seen.add_flag("S")
    maildir.add(seen)
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 1
    assert len(list((tmp_path / "Maildir" / "cur").iterdir())) == 1
    report = ingest(engine, [tmp_path / "Maildir"])
    assert report.ignored == [] and len(report.recorded) == 2
    assert {k: v[0] for k, v in rsvps(engine).items()} == {
        (ids["step"], ids["khamla"]): "ACCEPTED",
        (ids["step"], ids["somphone"]): "DECLINED",
    }


def test_unknown_uid_and_unexpected_people_write_nothing(engine, tmp_path):
    seed(engine)
    inbox = tmp_path / "inbox"
    write(inbox, "unknown_uid.eml", outlook_mail(reply_ics(uid="someone-else@outlook.example")))
    write(inbox, "stranger.eml", outlook_mail(reply_ics(address="mailto:stranger@example.org")))
    write(inbox, "outsider.eml", outlook_mail(reply_ics(address="mailto:outsider@mpi.example")))
    write(inbox, "deadline.eml", outlook_mail(reply_ics(uid=uid_for("GSWG", "2020", "call"))))
    write(inbox, "cancelled.eml", outlook_mail(reply_ics(uid=uid_for("GSWG", "2020", "q1"))))
    write(inbox, "delegated.eml", outlook_mail(reply_ics(partstat="DELEGATED")))
    report = ingest(engine, [inbox])
    assert report.recorded == [] and report.unchanged == []
    reasons = {Path(reply.source).name: reason for reply, reason in report.ignored}
    assert reasons == {
        "cancelled.eml": f"meeting {uid_for('GSWG', '2020', 'q1')!r} is cancelled",
        "deadline.eml": f"UID {uid_for('GSWG', '2020', 'call')!r} is not a meeting invitation",
        "delegated.eml": "PARTSTAT DELEGATED is not an answer we record",
        "outsider.eml": f"outsider@mpi.example is not an expected attendee of {MEETING_UID!r}",
        "stranger.eml": f"stranger@example.org is not an expected attendee of {MEETING_UID!r}",
        "unknown_uid.eml": "unknown UID 'someone-else@outlook.example'",
    }
    assert rsvps(engine) == {}


def test_newer_reply_wins_and_older_does_not_override(engine, tmp_path):
    ids = seed(engine)
    key = (ids["step"], ids["khamla"])
    first = write(tmp_path, "a.eml", outlook_mail(reply_ics(partstat="ACCEPTED", sequence=2)))
    assert len(ingest(engine, [first]).recorded) == 1

    older_sequence = write(tmp_path, "b.eml", outlook_mail(reply_ics(partstat="DECLINED", sequence=1,
                                                                     stamp="20191004T000000Z")))
    report = ingest(engine, [older_sequence])
    assert report.recorded == [] and len(report.unchanged) == 1
    assert rsvps(engine)[key][:3] == ("ACCEPTED", MEETING_UID, 2)

    same_sequence_earlier = write(tmp_path, "c.eml", outlook_mail(reply_ics(partstat="DECLINED", sequence=2,
                                                                            stamp="20191001T000000Z")))
    assert len(ingest(engine, [same_sequence_earlier]).unchanged) == 1
    assert rsvps(engine)[key][0] == "ACCEPTED"

    same_sequence_later = write(tmp_path, "d.eml", outlook_mail(reply_ics(partstat="TENTATIVE", sequence=2,
                                                                          stamp="20191006T000000Z")))
    assert len(ingest(engine, [same_sequence_later]).recorded) == 1
    assert rsvps(engine)[key][:3] == ("TENTATIVE", MEETING_UID, 2)

    higher_sequence = write(tmp_path, "e.eml", outlook_mail(reply_ics(partstat="DECLINED", sequence=3,
                                                                      stamp="20191005T000000Z")))
    assert len(ingest(engine, [higher_sequence]).recorded) == 1
    assert rsvps(engine)[key][:3] == ("DECLINED", MEETING_UID, 3)

    # Reading the whole folder again, in any order, changes nothing and adds no row.
    report = ingest(engine, [tmp_path])
    assert report.recorded == [] and len(report.unchanged) == 5
    assert rsvps(engine)[key][:3] == ("DECLINED", MEETING_UID, 3)
    with Session(engine) as session:
        assert len(session.exec(select(Response)).all()) == 1


def test_malformed_files_are_reported_never_fatal(engine, tmp_path):
    ids = seed(engine)
    inbox = tmp_path / "inbox"
    write(inbox, "garbage.eml", bytes(range(256)) * 4)
    write(inbox, "plain.eml", b"From: a@example.org\r\nSubject: hello\r\n\r\nsee you there\r\n")
    write(inbox, "request.eml", outlook_mail(reply_ics(method="REQUEST")))
    write(inbox, "broken_ics.eml", outlook_mail("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nSEQUENCE:x\r\n"))
    bad_base64 = outlook_mail(reply_ics()).replace(
        base64.encodebytes(reply_ics().encode())[:20], b"!!!!not base64 at all")
    assert bad_base64 != outlook_mail(reply_ics())
    write(inbox, "bad_base64.eml", bad_base64)
    write(inbox, "bad_sequence.eml", outlook_mail(reply_ics().replace("SEQUENCE:1", "SEQUENCE:one")))
    write(inbox, "no_event.eml", outlook_mail("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n"))
    write(inbox, "good.eml", outlook_mail(reply_ics()))
    report = ingest(engine, [inbox, tmp_path / "missing.eml"])
    assert [Path(r.source).name for r in report.recorded] == ["good.eml"]
    reasons = {Path(reply.source).name: reason for reply, reason in report.ignored}
    assert reasons.pop("missing.eml").startswith("unreadable: FileNotFoundError")
    assert reasons.pop("bad_base64.eml").startswith("calendar part cannot be parsed: ")
    assert reasons == {
        "garbage.eml": "no calendar part in the message",
        "plain.eml": "no calendar part in the message",
        "request.eml": "no METHOD:REPLY calendar (found METHOD REQUEST)",
        "broken_ics.eml": "calendar part holds no complete VCALENDAR",
        "bad_sequence.eml": "broken calendar properties: SEQUENCE: Expected int, got: one",
        "no_event.eml": "the REPLY holds no VEVENT with an ATTENDEE",
    }
    assert list(rsvps(engine)) == [(ids["step"], ids["khamla"])]
