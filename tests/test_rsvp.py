"""Meeting replies shaped like Outlook's and Gmail's: reading, and who may answer (SQLite and PostgreSQL).

Recording them (through the answers module) is tested in tests/test_mail_in.py."""

import base64
import email.charset
from datetime import date, datetime, timezone
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import parseaddr
from pathlib import Path

from sqlmodel import Session, select

from calendars.ics import uid_for
from calendars.rsvp import check_reply, is_newer, replies_in
from models.tables import CalendarEntry, Cycle, Member, Membership, Notification, Response, Step, WorkingGroup

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
        for name in ("khamla", "somphone", "psi"):  # the outsider's group was not invited
            member = members[name][0]
            session.add(Notification(key=f"invite/{name}", cycle_id=cycle.id, step_id=meeting.id, member_id=member.id,
                                     recipient=member.email, kind="invite", state="sent", due_at=NOW, created_at=NOW))
        session.commit()
        return {"step": meeting.id, **{k: m.id for k, (m, _, _) in members.items()}}


def checked(engine, paths) -> dict:
    """file name -> "ok <partstat>" or the reason check_reply gives (nothing is written)."""
    results = {}
    with Session(engine) as session:
        for path in sorted(p for folder in paths for p in (folder.iterdir() if folder.is_dir() else [folder])):
            raw = path.read_bytes()
            sender = parseaddr(str(email.message_from_bytes(raw).get("From", "")))[1]
            replies = replies_in(raw, str(path))
            result = check_reply(session, replies[0], sender, NOW)
            results[path.name] = result if isinstance(result, str) else f"ok {replies[0].partstat}"
    return results


# -- tests --------------------------------------------------------------------


def test_reading_outlook_and_gmail_shapes(tmp_path):
    outlook = outlook_mail(reply_ics(address="MAILTO:KHAMLA@UNDP.EXAMPLE", comment="ຂໍຂອບໃຈ\\, ຈະເຂົ້າຮ່ວມ"))
    replies = replies_in(outlook, "outlook.eml") + replies_in(gmail_mail(gmail_ics()), "gmail.eml")
    # Gmail's inline part and invite.ics attachment carry the same answer: read once.
    assert [(r.uid, r.attendee_email, r.partstat, r.sequence, r.source, r.problem, r.attendees) for r in replies] == [
        (MEETING_UID, "khamla@undp.example", "ACCEPTED", 1, "outlook.eml", "", 1),
        (MEETING_UID, "somphone@moj.example", "DECLINED", 1, "gmail.eml", "", 1),
    ]
    assert replies[0].comment == "ຂໍຂອບໃຈ, ຈະເຂົ້າຮ່ວມ"
    assert replies[0].stamp == datetime(2019, 10, 2, 3, 15, tzinfo=timezone.utc)


def test_outlook_and_gmail_replies_of_invited_members_pass(engine, tmp_path):
    seed(engine)
    inbox = tmp_path / "inbox"
    write(inbox, "1.eml", outlook_mail(reply_ics()))
    write(inbox, "2.eml", gmail_mail(gmail_ics()))
    write(inbox, "3.eml", outlook_mail(reply_ics(address="mailto:bounmy@moha.example", partstat="TENTATIVE"),
                                       sender="bounmy@moha.example"))
    # a sub-group member invited to the group's meeting may answer
    assert checked(engine, [inbox]) == {"1.eml": "ok ACCEPTED", "2.eml": "ok DECLINED", "3.eml": "ok TENTATIVE"}


def test_unknown_uid_unexpected_people_and_forgeries_are_refused(engine, tmp_path):
    seed(engine)
    inbox = tmp_path / "inbox"
    write(inbox, "unknown_uid.eml", outlook_mail(reply_ics(uid="someone-else@outlook.example")))
    write(inbox, "stranger.eml", outlook_mail(reply_ics(address="mailto:stranger@example.org"),
                                              sender="stranger@example.org"))
    write(inbox, "outsider.eml", outlook_mail(reply_ics(address="mailto:outsider@mpi.example"),
                                              sender="outsider@mpi.example"))
    write(inbox, "deadline.eml", outlook_mail(reply_ics(uid=uid_for("GSWG", "2020", "call"))))
    write(inbox, "cancelled.eml", outlook_mail(reply_ics(uid=uid_for("GSWG", "2020", "q1"))))
    write(inbox, "delegated.eml", outlook_mail(reply_ics(partstat="DELEGATED")))
    write(inbox, "forged.eml", outlook_mail(reply_ics(), sender="somphone@moj.example"))
    write(inbox, "old_sequence.eml", outlook_mail(reply_ics(sequence=0)))
    assert checked(engine, [inbox]) == {
        "cancelled.eml": f"meeting {uid_for('GSWG', '2020', 'q1')!r} is cancelled",
        "deadline.eml": f"UID {uid_for('GSWG', '2020', 'call')!r} is not a meeting invitation",
        "delegated.eml": "PARTSTAT DELEGATED is not an answer we record",
        "forged.eml": "From somphone@moj.example is not the ATTENDEE khamla@undp.example",
        "old_sequence.eml": "SEQUENCE 0 is older than the invitation's SEQUENCE 1",
        "outsider.eml": f"outsider@mpi.example is not an expected attendee of {MEETING_UID!r}",
        "stranger.eml": f"stranger@example.org is not an expected attendee of {MEETING_UID!r}",
        "unknown_uid.eml": "unknown UID 'someone-else@outlook.example'",
    }


def test_newer_reply_wins_and_older_does_not_override():
    stored = Response(step_id=1, member_id=1, kind="rsvp", body="ACCEPTED",
                      data={"sequence": 2, "stamp": "2019-10-05T00:00:00+00:00"})

    def reply(sequence, stamp, partstat="DECLINED"):
        return replies_in(outlook_mail(reply_ics(partstat=partstat, sequence=sequence, stamp=stamp)), "r")[0]

    assert not is_newer(reply(1, "20191009T000000Z"), stored)  # older SEQUENCE, whatever its stamp
    assert not is_newer(reply(2, "20191001T000000Z"), stored)  # same SEQUENCE, earlier DTSTAMP
    assert is_newer(reply(2, "20191006T000000Z"), stored)  # same SEQUENCE, later DTSTAMP
    assert is_newer(reply(3, "20191001T000000Z"), stored)  # higher SEQUENCE


def test_malformed_files_are_reported_never_fatal(tmp_path):
    bad_base64 = outlook_mail(reply_ics()).replace(
        base64.encodebytes(reply_ics().encode())[:20], b"!!!!not base64 at all")
    assert bad_base64 != outlook_mail(reply_ics())
    mails = {
        "garbage.eml": bytes(range(256)) * 4,
        "plain.eml": b"From: a@example.org\r\nSubject: hello\r\n\r\nsee you there\r\n",
        "request.eml": outlook_mail(reply_ics(method="REQUEST")),
        "broken_ics.eml": outlook_mail("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nSEQUENCE:x\r\n"),
        "bad_base64.eml": bad_base64,
        "bad_sequence.eml": outlook_mail(reply_ics().replace("SEQUENCE:1", "SEQUENCE:one")),
        "no_event.eml": outlook_mail("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n"),
    }
    reasons = {name: [r.problem for r in replies_in(raw, name)] for name, raw in mails.items()}
    assert reasons.pop("bad_base64.eml")[0].startswith("calendar part cannot be parsed: ")
    assert reasons == {
        "garbage.eml": ["no calendar part in the message"],
        "plain.eml": ["no calendar part in the message"],
        "request.eml": ["no METHOD:REPLY calendar (found METHOD REQUEST)"],
        "broken_ics.eml": ["calendar part holds no complete VCALENDAR"],
        "bad_sequence.eml": ["broken calendar properties: SEQUENCE: Expected int, got: one"],
        "no_event.eml": ["the REPLY holds no VEVENT with an ATTENDEE"],
    }
