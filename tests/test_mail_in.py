"""Answers by mail on a live cycle (SQLite and PostgreSQL): a folder of replies of every shape records
exactly the answers it carries; forged meeting replies, bounces, auto-replies and strays are told apart."""

import email
import email.policy
import json
import shutil
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlmodel import Session, select
from typer.testing import CliRunner

from calendars.ics import uid_for
from flows.cycle import move_anchor
from flows.mail_in import MailConfig, handle, ingest_paths
from flows.status import cycle_status
from flows.tick import EngineConfig, tick
from models.settings import get_settings
from models.tables import AddressStatus, AnswerAudit, Cycle, InboundMail, Member, Notification, Response
from notifications.outbox import payload_of
from tests import mail_shapes as shapes
from tests.engine_helpers import local, rows, seed_people, start_gswg, step

REPLIES = "replies@gswg.example.org"
CONFIG = EngineConfig(sender="GSWG via Roundtable <roundtable@gswg.example.org>", base_url="https://rt.example.org",
                      secret="test-secret-of-at-least-32-bytes!", reply_address=REPLIES)
MAIL = MailConfig(secret=CONFIG.secret, reply_address=REPLIES, sender=CONFIG.sender)
OPENED = local(2019, 11, 1, 9, 5)  # the call and the invitations are out
READ_AT = local(2019, 11, 5, 10, 0)
MEETING_UID = uid_for("GSWG", "2020", "annual_review_meeting", domain="gswg.example.org")  # the sender's domain


def original(session: Session, step_key: str, kind: str, address: str) -> shapes.Original:
    """The sent message as a client shows it to its recipient (Message-ID, Subject, Reply-To)."""
    row = next(r for r in rows(session, step_key=step_key, kind=kind) if r.recipient == address)
    message = email.message_from_bytes(payload_of(session, row.id), policy=email.policy.default)
    reply_to = [a for _, a in getaddresses([str(message["Reply-To"] or "")])]
    return shapes.Original(row.message_id, str(message["Subject"]), reply_to=reply_to[0] if reply_to else "")


@pytest.fixture
def live(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        tick(session, OPENED, CONFIG)
        yield engine, session, cycle


def write(folder: Path, name: str, raw: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(raw)


def test_invitations_and_calls_carry_the_reply_mailbox(live):
    engine, session, cycle = live
    call = original(session, "call_for_suggestions", "call", "m1@example.org")
    assert call.reply_to.startswith("replies+") and call.reply_to.endswith("@gswg.example.org")
    invite = next(r for r in rows(session, kind="invite") if r.recipient == "m1@example.org")
    message = email.message_from_bytes(payload_of(session, invite.id), policy=email.policy.default)
    assert "head@example.org" in str(message["Reply-To"])  # the secretariat stays reachable
    ics = next(p for p in message.walk() if p.get_content_type() == "text/calendar").get_content()
    organizer = Calendar.from_ical(ics).walk("VEVENT")[0]["ORGANIZER"]
    assert str(organizer) == "mailto:replies@gswg.example.org"
    assert organizer.params["CN"] == "ກອງເລຂາ GSWG · GSWG Secretariat"


def test_a_folder_of_every_shape_records_exactly_its_answers(live, tmp_path):
    engine, session, cycle = live
    folder = tmp_path / "replies"
    call = "call_for_suggestions"
    texts = {
        "m1@example.org": "ຂໍສະເໜີ ເພີ່ມການຝຶກອົບຮົມ ໃຫ້ພະນັກງານ ແຂວງ.",
        "m2@example.org": "ສະເໜີ ປັບປຸງ ລະບົບ ການຮັບຄຳຮ້ອງ.",
        "m3@example.org": "Legal aid clinics in three provinces.",
        "m4@example.org": "ຄູ່ມື ພາສາລາວ ສຳລັບ ເຈົ້າໜ້າທີ່.",
        "chair@example.org": "ເຫັນດີ ແລະ ສະເໜີ ກອງປະຊຸມ ປະຈຳໄຕມາດ.",
    }
    write(folder, "01-gmail.eml", shapes.gmail_reply(original(session, call, "call", "m1@example.org"),
                                                     "Somchai <m1@example.org>", texts["m1@example.org"]))
    write(folder, "02-outlook-no-in-reply-to.eml", shapes.outlook_reply(
        original(session, call, "call", "m2@example.org"), "ສົມໃຈ ວົງສາ <m2@example.org>", texts["m2@example.org"],
        in_reply_to=False))
    write(folder, "03-thunderbird.eml", shapes.thunderbird_reply(original(session, call, "call", "m3@example.org"),
                                                                 "m3@example.org", texts["m3@example.org"]))
    write(folder, "04-html-only.eml", shapes.html_only_reply(original(session, call, "call", "m4@example.org"),
                                                             "M4 <M4@Example.org>", texts["m4@example.org"]))
    write(folder, "05-lao-gmail.eml", shapes.lao_gmail_reply(original(session, call, "call", "chair@example.org"),
                                                             "chair@example.org", texts["chair@example.org"]))
    write(folder, "06-itip-outlook.eml", shapes.itip_reply(MEETING_UID, "m1@example.org", "m1@example.org"))
    write(folder, "07-itip-gmail.eml", shapes.itip_reply(MEETING_UID, "m2@example.org", "m2@example.org", "DECLINED",
                                                         shape="gmail"))
    write(folder, "08-forged-from.eml", shapes.itip_reply(MEETING_UID, "chair@example.org", "m3@example.org",
                                                          "DECLINED"))
    write(folder, "09-many-attendees.eml", shapes.itip_reply(MEETING_UID, "m3@example.org", "m3@example.org",
                                                             "DECLINED", attendees=("m4@example.org", "m1@example.org")))
    write(folder, "10-outsider.eml", shapes.itip_reply(MEETING_UID, "x@elsewhere.example", "x@elsewhere.example"))
    write(folder, "11-out-of-office.eml", shapes.out_of_office("m4@example.org", lao=True))
    undp = original(session, call, "call", "cochair.undp@example.org")
    write(folder, "12-hard-dsn.eml", shapes.dsn("cochair.undp@example.org", undp.message_id))
    write(folder, "13-soft-dsn.eml", shapes.dsn("m3@example.org", original(session, call, "call", "m3@example.org")
                                                .message_id, status="4.2.2"))
    write(folder, "14-unrelated.eml", shapes.unrelated())
    write(folder, "15-someone-else-replies.eml", shapes.gmail_reply(original(session, call, "call", "m1@example.org"),
                                                                    "m2@example.org", "I answer for m1"))
    write(folder, "16-quote-only.eml", shapes.gmail_reply(original(session, call, "call", "staff@example.org"),
                                                          "staff@example.org", ""))
    shutil.copy(folder / "01-gmail.eml", folder / "17-gmail-again.eml")

    summary = ingest_paths(engine, [folder], READ_AT, MAIL).as_dict()

    assert summary["recorded"] == {"suggestion": 5, "comment": 0, "rsvp": 2}
    assert summary["bounces"] == 2 and summary["away"] == 1
    reasons = {Path(item["file"]).name: item["reason"] for item in summary["ignored"]}
    assert set(reasons) == {"08-forged-from.eml", "09-many-attendees.eml", "10-outsider.eml", "14-unrelated.eml",
                            "15-someone-else-replies.eml", "16-quote-only.eml", "17-gmail-again.eml"}
    assert "is not the ATTENDEE chair@example.org" in reasons["08-forged-from.eml"]
    assert "3 ATTENDEEs" in reasons["09-many-attendees.eml"]
    assert "not an expected attendee" in reasons["10-outsider.eml"]
    assert "not a reply to a message Roundtable sent" in reasons["14-unrelated.eml"]
    assert "From m2@example.org is not m1@example.org" in reasons["15-someone-else-replies.eml"]
    assert "no new text" in reasons["16-quote-only.eml"]
    assert "already handled" in reasons["17-gmail-again.eml"]
    assert summary["needs_attention"] == 2  # the stray and the reply from someone else
    json.dumps(summary)

    session.expire_all()
    members = {m.id: m.email for m in session.exec(select(Member)).all()}
    suggestions = session.exec(select(Response).where(Response.kind == "suggestion")).all()
    assert {members[r.member_id]: r.body for r in suggestions} == texts
    assert {r.data["what"] for r in suggestions} == set(texts.values())
    audit = session.exec(select(AnswerAudit)).all()
    assert sorted(a.kind for a in audit if a.channel == "mail") == ["rsvp"] * 2 + ["suggestion"] * 5
    rsvps = session.exec(select(Response).where(Response.kind == "rsvp")).all()
    assert {members[r.member_id]: r.body for r in rsvps} == {"m1@example.org": "ACCEPTED", "m2@example.org": "DECLINED"}
    statuses = {s.email: s for s in session.exec(select(AddressStatus)).all()}
    assert statuses["cochair.undp@example.org"].bounce == "bouncing"
    assert statuses["cochair.undp@example.org"].bounce_status == "5.1.1"
    assert statuses["m3@example.org"].bounce == "deferred" and statuses["m4@example.org"].away
    shown = {a["email"]: a for a in cycle_status(session, cycle)["addresses"]}  # `roundtable status`
    assert shown["cochair.undp@example.org"]["bounce"] == "bouncing" and shown["m4@example.org"]["away"]

    # The secretariat is told once per address and state, even when the bounce comes again.
    reports = [r for r in rows(session, kind="failure_report")]
    assert sorted(r.key for r in reports) == ["bounce_report:bouncing:cochair.undp@example.org",
                                              "bounce_report:deferred:m3@example.org"]
    assert reports[0].recipient == "head@example.org" and reports[0].cc == ["staff@example.org"]
    write(tmp_path / "again", "dsn.eml", shapes.dsn("cochair.undp@example.org", undp.message_id))
    assert ingest_paths(engine, [tmp_path / "again"], READ_AT, MAIL).bounces == 1
    assert len(rows(session, kind="failure_report")) == 2

    # No further mail to the hard-bouncing address: its reminder is skipped, the others go.
    tick(session, local(2019, 11, 6, 10, 0), CONFIG)
    session.expire_all()
    reminders = {r.recipient: r for r in rows(session, step_key=call, kind="reminder", slot="r0")}
    assert reminders["cochair.undp@example.org"].state == "skipped"
    assert "bounces" in reminders["cochair.undp@example.org"].last_error
    assert reminders["staff@example.org"].state == "ready"


def test_meeting_replies_older_sequence_and_after_the_meeting_are_refused(live, tmp_path):
    engine, session, cycle = live
    move_anchor(session, cycle, "annual_meeting", local(2019, 11, 14, 9, 0), OPENED + timedelta(hours=1))
    session.commit()
    tick(session, OPENED + timedelta(hours=2), CONFIG)  # the updates go out with SEQUENCE 1
    old = shapes.itip_reply(MEETING_UID, "m1@example.org", "m1@example.org", sequence=0)
    new = shapes.itip_reply(MEETING_UID, "m2@example.org", "m2@example.org", sequence=1)
    late = shapes.itip_reply(MEETING_UID, "m3@example.org", "m3@example.org", sequence=1)
    with Session(engine) as s:
        assert "SEQUENCE 0 is older than the invitation's SEQUENCE 1" in handle(s, old, READ_AT, MAIL, source="old").reason
        assert handle(s, new, READ_AT, MAIL, source="new").outcome == "rsvp"
        after = handle(s, late, local(2019, 11, 15, 9, 0), MAIL, source="late")
        assert after.outcome == "ignored" and "replies after it are not recorded" in after.reason
        s.commit()


def test_a_reply_to_an_approval_request_decides_nothing(live):
    engine, session, cycle = live
    approval = step(session, cycle, "approval")
    approval.state = "open"
    chair = session.exec(select(Member).where(Member.email == "chair@example.org")).one()
    session.add(Notification(key="test/approval_request", cycle_id=cycle.id, step_id=approval.id, step_key="approval",
                             member_id=chair.id, recipient=chair.email, kind="approval_request", revision=1,
                             state="sent", due_at=OPENED, created_at=OPENED, message_id="<approve-me@gswg.example.org>",
                             subject="Approval"))
    session.commit()
    reply = shapes.gmail_reply(shapes.Original("<approve-me@gswg.example.org>", "Approval"), "chair@example.org",
                               "I approve. ອະນຸມັດ.")
    with Session(engine) as s:
        outcome = handle(s, reply, READ_AT, MAIL, source="approve.eml")
        s.commit()
    assert outcome.outcome == "approval_reply" and outcome.folder == "Needs attention"
    session.expire_all()
    again = [r for r in rows(session, kind="approval_request") if r.slot.startswith("mail")]
    assert len(again) == 1 and again[0].recipient == "chair@example.org" and again[0].state == "scheduled"
    kept = session.exec(select(InboundMail).where(InboundMail.outcome == "approval_reply")).one()
    assert kept.text == "I approve. ອະນຸມັດ." and kept.member_id == chair.id
    assert session.exec(select(Response).where(Response.member_id == chair.id)).all() == []
    tick(session, READ_AT + timedelta(minutes=1), CONFIG)  # the next tick sends it, with the chair's own link
    session.expire_all()
    sent_again = session.get(Notification, again[0].id)
    assert sent_again.state == "ready", sent_again.last_error
    assert b"/action/approve." in payload_of(session, sent_again.id).replace(b"=\r\n", b"") or \
        "/action/approve." in email.message_from_bytes(payload_of(session, sent_again.id), policy=email.policy.default
                                                       ).get_body(("plain",)).get_content()


def simulated_call_round(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """`roundtable simulate --until` a moment in the call round (nobody answers by themselves), and
    replies of every shape to the simulated mail: name -> bytes (names sort in Maildir order)."""
    from roundtable.cli import app

    out = tmp_path / "sim"
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(app, ["simulate", "--definition", str(root / "cycles" / "gswg.yaml"), "--roster",
                                      str(root / "examples" / "roster.csv"), "--year", "2020", "--anchor",
                                      "annual_meeting=2019-11-13", "--out", str(out), "--respond-rate", "0",
                                      "--until", "2019-11-05T12:00"])
    assert result.exit_code == 0, result.output
    sent = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    calls = [m for m in sent if m["kind"] == "call"]
    invites = [m for m in sent if m["kind"] == "invite"]

    def orig(message):
        return shapes.Original(message["message_id"], message["subject"])

    uid = uid_for("GSWG", "2020", "annual_review_meeting", domain="gswg.example.org")  # the simulator's sender
    return out, {
        "1.host": shapes.gmail_reply(orig(calls[0]), calls[0]["to"][0], "ຂໍສະເໜີ ທີ 1"),
        "2.host": shapes.outlook_reply(orig(calls[1]), calls[1]["to"][0], "Suggestion 2"),
        "3.host": shapes.html_only_reply(orig(calls[2]), calls[2]["to"][0], "ສາມ"),
        "4.host": shapes.itip_reply(uid, invites[0]["to"][0], invites[0]["to"][0]),
        "5.host": shapes.itip_reply(uid, invites[1]["to"][0], invites[2]["to"][0]),  # forged From
        "6.host": shapes.out_of_office(calls[3]["to"][0]),
        "7.host": shapes.dsn(calls[4]["to"][0], calls[4]["message_id"]),
        "8.host": shapes.unrelated(),
    }


def test_cli_on_a_simulated_cycle(tmp_path, monkeypatch):
    """`mail ingest --json` of replies to a simulated call round: exactly the answers they carry are
    recorded, every other mail says why not."""
    from roundtable.cli import app

    runner = CliRunner()
    out, mails = simulated_call_round(tmp_path)
    mails_to = {7: email.message_from_bytes(mails["7.host"]).get_payload()[1].get_payload()[1]["Final-Recipient"]
                .split(";")[1].strip()}
    folder = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True)
    for name, raw in mails.items():
        (folder / ("cur" if name == "3.host" else "new") / (name + (":2,S" if name == "3.host" else ""))
         ).write_bytes(raw)
    big = tmp_path / "huge.eml"
    with open(big, "wb") as handle:
        handle.truncate(11 * 1024 * 1024)

    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", f"sqlite:///{out / 'roundtable.db'}")
    get_settings.cache_clear()  # `simulate` read the settings before the database URL changed
    result = runner.invoke(app, ["mail", "ingest", str(folder), str(big), "/dev/zero", "--json",
                                 "--now", "2019-11-05T12:00"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == {"recorded", "ignored", "bounces", "away", "needs_attention"}
    assert summary["recorded"] == {"suggestion": 3, "comment": 0, "rsvp": 1}
    assert (summary["bounces"], summary["away"], summary["needs_attention"]) == (1, 1, 1)
    reasons = {Path(i["file"]).name: i["reason"] for i in summary["ignored"]}
    assert set(reasons) == {"5.host", "8.host", "huge.eml", "zero"}, reasons
    assert "is not the ATTENDEE" in reasons["5.host"] and "over the 10 MB" in reasons["huge.eml"]
    assert "not a regular file" in reasons["zero"]

    again = runner.invoke(app, ["rsvp", "ingest", str(folder), "/dev/zero", "--json", "--now", "2019-11-05T12:00"])
    again = json.loads(again.stdout)  # `rsvp ingest` is an alias: the same mails are not handled twice
    assert again["recorded"] == {"suggestion": 0, "comment": 0, "rsvp": 0} and len(again["ignored"]) == 9
    status = runner.invoke(app, ["status"])
    assert f"address {mails_to[7]}: bouncing 5.1.1" in status.output, status.output
    assert runner.invoke(app, ["mail", "clear", mails_to[7].upper()]).exit_code == 0
    assert mails_to[7] not in runner.invoke(app, ["status"]).output
    assert runner.invoke(app, ["mail", "clear", "nobody@example.org"]).exit_code == 2
    from models.db import make_engine

    with Session(make_engine(f"sqlite:///{out / 'roundtable.db'}")) as s:
        kinds = sorted(r.kind for r in s.exec(select(Response)).all())
        assert kinds == ["rsvp", "suggestion", "suggestion", "suggestion"]
        assert s.exec(select(Cycle)).one().state == "live"


def test_a_reply_to_the_comment_call_is_a_comment_and_a_calendar_attachment_does_not_make_it_an_rsvp(live):
    engine, session, cycle = live
    comments = step(session, cycle, "comment_round")
    comments.state = "open"
    m1 = session.exec(select(Member).where(Member.email == "m1@example.org")).one()
    session.add(Notification(key="test/comment_call", cycle_id=cycle.id, step_id=comments.id,
                             step_key="comment_round", member_id=m1.id, recipient=m1.email, kind="call",
                             state="sent", due_at=OPENED, created_at=OPENED, message_id="<draft@gswg.example.org>",
                             subject="Draft plan"))
    session.commit()
    reply = shapes.outlook_reply(shapes.Original("<draft@gswg.example.org>", "Draft plan"), "ສົມໃຈ ວົງສາ <m1@example.org>",
                                 "ກິດຈະກຳ 3 ຄວນເລີ່ມໃນໄຕມາດ 2.")
    # the sender attached the deadline event (METHOD:PUBLISH) they had received
    publish = ("BEGIN:VCALENDAR\r\nMETHOD:PUBLISH\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20191104T023000Z\r\n"
               "END:VEVENT\r\nEND:VCALENDAR\r\n")
    reply = reply.replace(b"--o0--", b"--o0\r\nContent-Type: text/calendar; method=PUBLISH; charset=utf-8\r\n\r\n"
                          + publish.encode() + b"\r\n--o0--")
    with Session(engine) as s:
        outcome = handle(s, reply, READ_AT, MAIL, source="comment.eml")
        s.commit()
    assert outcome.outcome == "comment", outcome
    session.expire_all()
    comment = session.exec(select(Response).where(Response.kind == "comment")).one()
    assert comment.body == "ກິດຈະກຳ 3 ຄວນເລີ່ມໃນໄຕມາດ 2." and comment.member_id == m1.id
