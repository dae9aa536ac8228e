"""`mail fetch` against a real Dovecot (one per test session): each message handled once, filed in
Processed or Needs attention, nothing recorded twice after a crash between recording and moving."""

import json
import os
import shutil
import ssl
import tempfile
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows.mail_in import NEEDS_ATTENTION, PROCESSED, fetch_once
from models.db import make_engine
from models.settings import Settings, get_settings
from models.tables import InboundMail, Response
from tests import dovecot
from tests import mail_shapes as shapes
from tests.test_mail_in import (CONFIG, MEETING_UID, READ_AT, REPLIES, live, original,  # noqa: F401 - live is a fixture
                                simulated_call_round)


@pytest.fixture(scope="session")
def imap_server():
    problem = dovecot.unavailable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Dovecot is needed under CI: {problem}")
        pytest.skip(problem)
    # Not under pytest's tmp folder: it is 0700 root, and Dovecot's processes run as dovecot / dovenull.
    base = Path(tempfile.mkdtemp(prefix="roundtable-dovecot-"))
    server = dovecot.start(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def client(server) -> IMAPClient:
    imap = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    imap.login(server.user, server.password)
    return imap


@pytest.fixture
def mailbox(imap_server):
    """An empty mailbox for each test (the server is shared by the session)."""
    with client(imap_server) as imap:
        for _flags, _sep, name in imap.list_folders():
            imap.select_folder(name)
            imap.delete_messages(imap.search(["ALL"]))
            imap.expunge()
            imap.close_folder()
            if name != "INBOX":
                imap.delete_folder(name)
    return imap_server


def settings_for(server, **extra) -> Settings:
    return Settings(imap_host="127.0.0.1", imap_port=server.port, imap_user=server.user, imap_password=server.password,
                    reply_address=REPLIES, secret_key=CONFIG.secret, sender=CONFIG.sender, **extra)


def deliver(server, *mails: bytes) -> int:
    """Append to INBOX; the UID of the first (UIDs go on across tests: the server is shared)."""
    with client(server) as imap:
        first = imap.folder_status("INBOX", ["UIDNEXT"])[b"UIDNEXT"]
        for raw in mails:
            imap.append("INBOX", raw)
    return first


def folders(server) -> dict[str, int]:
    with client(server) as imap:
        return {name: imap.folder_status(name, ["MESSAGES"])[b"MESSAGES"] for _f, _s, name in imap.list_folders()}


def test_fetch_files_each_message_once(mailbox, live):
    engine, session, _cycle = live
    call = original(session, "call_for_suggestions", "call", "m1@example.org")
    reply = shapes.gmail_reply(call, "m1@example.org", "ຂໍສະເໜີ ເພີ່ມ ການຝຶກອົບຮົມ.")  # To: its reply address
    first = deliver(mailbox, reply, reply,  # the same mail delivered twice
            shapes.itip_reply(MEETING_UID, "m2@example.org", "m2@example.org", shape="gmail"),
            shapes.out_of_office("m3@example.org"), shapes.dsn("m4@example.org", call.message_id),
            shapes.unrelated())
    summary = fetch_once(engine, settings_for(mailbox), READ_AT)
    assert summary["recorded"] == {"suggestion": 1, "comment": 0, "rsvp": 1}
    assert (summary["bounces"], summary["away"], summary["needs_attention"]) == (1, 1, 1)
    assert [(i["uid"] - first, i["reason"][:15]) for i in summary["ignored"]] == [(1, "already handled"),
                                                                                (5, "not a reply to ")]
    assert folders(mailbox) == {"INBOX": 0, PROCESSED: 5, NEEDS_ATTENTION: 1}
    # A second fetch finds nothing new; nothing is recorded again.
    again = fetch_once(engine, settings_for(mailbox), READ_AT)
    assert again == {"recorded": {"suggestion": 0, "comment": 0, "rsvp": 0}, "ignored": [], "bounces": 0,
                     "away": 0, "needs_attention": 0}
    session.expire_all()
    assert len(session.exec(select(Response)).all()) == 2
    remembered = session.exec(select(InboundMail).order_by(InboundMail.uid)).all()
    assert [r.uid - first for r in remembered] == [0, 1, 2, 3, 4, 5] and all(r.moved for r in remembered)
    assert len({r.uidvalidity for r in remembered}) == 1


def test_a_crash_between_recording_and_moving_records_nothing_twice(mailbox, live):
    engine, session, _cycle = live
    call = original(session, "call_for_suggestions", "call", "m1@example.org")
    first = deliver(mailbox, shapes.thunderbird_reply(call, "m1@example.org", "Legal aid clinics."))

    def crash(_client, _uid, _folder):
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        fetch_once(engine, settings_for(mailbox), READ_AT, move=crash)
    assert folders(mailbox)["INBOX"] == 1  # recorded, not moved
    summary = fetch_once(engine, settings_for(mailbox), READ_AT)
    assert summary["recorded"]["suggestion"] == 0 and summary["needs_attention"] == 0
    assert [(i["uid"], i["reason"][:15]) for i in summary["ignored"]] == [(first, "already handled")]
    assert "(suggestion); moved now" in summary["ignored"][0]["reason"]
    assert folders(mailbox) == {"INBOX": 0, PROCESSED: 1, NEEDS_ATTENTION: 0}
    session.expire_all()
    assert [r.body for r in session.exec(select(Response)).all()] == ["Legal aid clinics."]


def test_cli_fetch_on_a_simulated_cycle(mailbox, tmp_path, monkeypatch):
    """The "done when" of issue 12 over IMAP: the same replies, fetched by `roundtable mail fetch --json`."""
    from roundtable.cli import app

    out, mails = simulated_call_round(tmp_path)
    huge = b"From: x@y.z\r\nSubject: big\r\n\r\n" + b"x" * (11 * 1024 * 1024)
    first = deliver(mailbox, *mails.values(), huge)
    for name, value in {"DATABASE_URL": f"sqlite:///{out / 'roundtable.db'}", "IMAP_HOST": "127.0.0.1",
                        "IMAP_PORT": str(mailbox.port), "IMAP_USER": mailbox.user,
                        "IMAP_PASSWORD": mailbox.password, "IMAP_TLS": "none"}.items():
        monkeypatch.setenv(f"ROUNDTABLE_{name}", value)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["mail", "fetch", "--json", "--now", "2019-11-05T12:00"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recorded"] == {"suggestion": 3, "comment": 0, "rsvp": 1}
    assert (summary["bounces"], summary["away"], summary["needs_attention"]) == (1, 1, 2)
    reasons = {item["uid"] - first + 1: item["reason"] for item in summary["ignored"]}
    assert set(reasons) == {5, 8, 9}, reasons
    assert "is not the ATTENDEE" in reasons[5] and "over the 10 MB limit" in reasons[9]
    assert folders(mailbox) == {"INBOX": 0, PROCESSED: 7, NEEDS_ATTENTION: 2}
    with Session(make_engine(f"sqlite:///{out / 'roundtable.db'}")) as s:
        assert sorted(r.kind for r in s.exec(select(Response)).all()) == ["rsvp"] + ["suggestion"] * 3


def test_fetch_with_a_wrong_password_is_one_clear_line(mailbox, monkeypatch):
    from roundtable.cli import app

    for name, value in {"IMAP_HOST": "127.0.0.1", "IMAP_PORT": str(mailbox.port), "IMAP_USER": mailbox.user,
                        "IMAP_PASSWORD": "wrong"}.items():
        monkeypatch.setenv(f"ROUNDTABLE_{name}", value)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["mail", "fetch"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "IMAP 127.0.0.1" in result.output and "wrong" not in result.output


def test_a_mail_that_breaks_the_handling_is_filed_for_a_person_and_the_rest_go_on(mailbox, live, monkeypatch):
    engine, session, _cycle = live
    import flows.mail_in

    call = original(session, "call_for_suggestions", "call", "m1@example.org")
    first = deliver(mailbox, shapes.unrelated(), shapes.gmail_reply(call, "m1@example.org", "ຂໍສະເໜີ"))
    real = flows.mail_in._reply

    def fragile(session, inbound, row, now, config):
        if "Lunch" in inbound.subject:
            raise ValueError("a bug met a strange mail")
        return real(session, inbound, row, now, config)

    monkeypatch.setattr(flows.mail_in, "_reply", fragile)
    summary = fetch_once(engine, settings_for(mailbox), READ_AT)
    assert summary["recorded"]["suggestion"] == 1 and summary["needs_attention"] == 1
    assert summary["ignored"] == [{"uid": first, "reason": "could not be handled: ValueError: a bug met a strange mail"}]
    assert folders(mailbox) == {"INBOX": 0, PROCESSED: 1, NEEDS_ATTENTION: 1}
    assert fetch_once(engine, settings_for(mailbox), READ_AT)["ignored"] == []


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_fetch_over_tls(mailbox, live, tls):
    engine, session, _cycle = live
    call = original(session, "call_for_suggestions", "call", "m2@example.org")
    deliver(mailbox, shapes.outlook_reply(call, "m2@example.org", "ປັບປຸງ ລະບົບ."))
    port = mailbox.tls_port if tls == "ssl" else mailbox.port
    settings = settings_for(mailbox, imap_tls=tls, imap_ca_file=mailbox.ca_file).model_copy(update={"imap_port": port})
    assert fetch_once(engine, settings, READ_AT)["recorded"]["suggestion"] == 1
    untrusted = settings.model_copy(update={"imap_ca_file": None})  # a certificate nobody vouches for: refused
    with pytest.raises(ssl.SSLCertVerificationError):
        fetch_once(engine, untrusted, READ_AT)
