"""SmtpTransport + deliver_due against a real SMTP server (aiosmtpd on 127.0.0.1) with injected faults.

For each fault: nothing lost, nothing sent twice (deliveries counted per Message-ID at the server).
Backoffs are never slept through: deliver_due is called again with a later `now`.
"""

import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from models.settings import Settings
from models.tables import Notification
from notifications.compose import build_message, message_id_for
from notifications.outbox import deliver_due, enqueue
from notifications.render import render_message
from notifications.samples import sample_context
from notifications.transports import SmtpTransport, TransientError, transport_from_settings, FileTransport
from smtp_server import LoopbackSmtp

NOW = datetime(2019, 11, 1, 1, 0, tzinfo=timezone.utc)
DOMAIN = "gswg.example.la"
SECRETARIAT = ["GSWG Secretariat <secretariat@gswg.example.la>"]
RENDERED = render_message("call", sample_context("call"))


@pytest.fixture
def server():
    with LoopbackSmtp() as smtp:
        yield smtp


def smtp_for(server, **settings) -> SmtpTransport:
    return SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_port=server.port, **settings), timeout=10)


def add_ready(engine, count: int, cc: dict[int, list[str]] | None = None) -> dict[str, str]:
    """count rows due at NOW; returns key -> Message-ID."""
    ids = {}
    with Session(engine) as session:
        for i in range(count):
            key, to = f"c1:call:{i:03d}", f"m{i}@example.org"
            copies = (cc or {}).get(i, [])
            message_id = message_id_for(key, DOMAIN)
            payload = build_message(RENDERED, sender=f"GSWG <roundtable@{DOMAIN}>", to=[to], cc=copies,
                                    reply_to="secretariat@gswg.example.la", message_id=message_id, date=NOW)
            enqueue(session, key=key, recipient=to, cc=copies, kind="call", state="ready", due_at=NOW,
                    next_attempt_at=NOW, payload=payload, subject=RENDERED.subject, message_id=message_id,
                    created_at=NOW)
            ids[key] = message_id
        session.commit()
    return ids


def states(engine) -> dict[str, Notification]:
    with Session(engine) as session:
        return {row.key: row for row in session.exec(select(Notification)).all()}


def drive(engine, transport, start=NOW, step=timedelta(minutes=30), rounds=6):
    """Call deliver_due at advancing `now` values until nothing is due (never sleeps)."""
    reports, now = [], start
    for _ in range(rounds):
        reports.append(deliver_due(engine, transport, now, secretariat=SECRETARIAT))
        now += step
    return reports


def assert_each_delivered_once(server, message_ids):
    counts = server.count_by_message_id()
    assert {mid: counts[mid] for mid in message_ids.values()} == {mid: 1 for mid in message_ids.values()}


def test_clean_batch_on_one_connection(engine, server):
    ids = add_ready(engine, 25)
    report = deliver_due(engine, smtp_for(server), NOW)
    assert (report.sent, report.retried, report.failed) == (25, 0, 0)
    assert server.handler.connections == 1
    assert_each_delivered_once(server, ids)
    assert {m.mail_from for m in server.messages} == {f"roundtable@{DOMAIN}"}
    assert all(row.state == "sent" for row in states(engine).values())


def test_421_at_connect(engine, server):
    ids = add_ready(engine, 10)
    server.faults.refuse_connections = 2
    first = deliver_due(engine, smtp_for(server), NOW)
    assert (first.retried, first.sent) == (10, 0)
    assert all("421" in row.last_error for row in states(engine).values())
    # one minute later the server still refuses; two minutes after that it accepts
    assert deliver_due(engine, smtp_for(server), NOW + timedelta(minutes=1)).retried == 10
    assert deliver_due(engine, smtp_for(server), NOW + timedelta(minutes=2)).claimed == 0  # backing off
    assert deliver_due(engine, smtp_for(server), NOW + timedelta(minutes=3)).sent == 10
    assert_each_delivered_once(server, ids)


def test_451_at_data(engine, server):
    ids = add_ready(engine, 10)
    server.faults.data_replies.extend(["451 4.3.0 try again later"] * 3)
    first = deliver_due(engine, smtp_for(server), NOW)
    assert (first.sent, first.retried) == (7, 3)  # the connection stays usable after a 451
    drive(engine, smtp_for(server), start=NOW + timedelta(minutes=1))
    assert_each_delivered_once(server, ids)
    assert all(row.state == "sent" for row in states(engine).values())


def test_550_for_the_only_recipient_fails_and_reports_once(engine, server):
    ids = add_ready(engine, 8)
    server.faults.reject_recipients["m3@example.org"] = "550 5.1.1 <m3@example.org>: no such user"
    server.faults.reject_recipients["m5@example.org"] = "553 5.1.3 bad address"
    report = deliver_due(engine, smtp_for(server), NOW, secretariat=SECRETARIAT)
    assert (report.sent, report.failed, report.retried) == (7, 2, 0)  # 6 + the failure report
    rows = states(engine)
    assert rows["c1:call:003"].state == "failed" and "550 5.1.1" in rows["c1:call:003"].last_error
    assert rows["c1:call:005"].state == "failed"
    reports = [row for row in rows.values() if row.kind == "failure_report"]
    assert len(reports) == 1 and reports[0].recipient == "secretariat@gswg.example.la"
    at_server = [m for m in server.messages if m.rcpt_tos == ["secretariat@gswg.example.la"]]
    assert len(at_server) == 1 and at_server[0].message_id == reports[0].message_id
    drive(engine, smtp_for(server), start=NOW + timedelta(minutes=1))  # later calls: nothing new, no new report
    assert sum(row.kind == "failure_report" for row in states(engine).values()) == 1
    delivered = {k: v for k, v in ids.items() if k not in ("c1:call:003", "c1:call:005")}
    assert_each_delivered_once(server, delivered)
    assert server.count_by_message_id()[ids["c1:call:003"]] == 0


def test_550_for_one_of_two_recipients(engine, server):
    ids = add_ready(engine, 4, cc={1: ["gone@example.org"]})
    server.faults.reject_recipients["gone@example.org"] = "550 5.1.1 no such user"
    report = deliver_due(engine, smtp_for(server), NOW, secretariat=SECRETARIAT)
    rows = states(engine)
    # the message reached its main recipient: it is sent, not retried (a retry would send it twice)
    assert rows["c1:call:001"].state == "sent" and "refused gone@example.org: 550" in rows["c1:call:001"].last_error
    (failure_report,) = [row for row in rows.values() if row.kind == "failure_report"]
    assert failure_report.context["extra"]["failures"][0]["recipient"] == "gone@example.org"
    assert report.sent == 5 and report.failed == 0
    assert_each_delivered_once(server, ids)
    (partial,) = [m for m in server.messages if m.message_id == ids["c1:call:001"]]
    assert partial.rcpt_tos == ["m1@example.org"]


def test_hang_up_in_the_middle_of_a_batch(engine, server):
    ids = add_ready(engine, 20)
    server.faults.hang_up_after = 7
    first = deliver_due(engine, smtp_for(server), NOW)
    assert (first.sent, first.retried) == (7, 1)
    rows = states(engine)
    assert sum(row.state == "ready" and row.attempts == 0 for row in rows.values()) == 12  # given back untried
    assert all(row.state != "sending" for row in rows.values())
    drive(engine, smtp_for(server), start=NOW)  # the untried go at once, the in-flight one after its backoff
    assert_each_delivered_once(server, ids)


def test_server_down_then_back(engine, server):
    ids = add_ready(engine, 12)
    server.faults.hang_up_after = 5
    deliver_due(engine, smtp_for(server), NOW)
    server.stop()
    down = deliver_due(engine, smtp_for(server), NOW + timedelta(minutes=1))
    assert down.sent == 0 and down.retried == down.claimed > 0
    assert all("cannot connect" in row.last_error for row in states(engine).values() if row.state == "ready")
    server.start()
    drive(engine, smtp_for(server), start=NOW + timedelta(minutes=5))
    assert_each_delivered_once(server, ids)
    assert all(row.state == "sent" for row in states(engine).values())


def test_5xx_at_data_fails_with_reason(engine, server):
    ids = add_ready(engine, 3)
    server.faults.data_replies.append("554 5.7.1 message refused as spam")
    report = deliver_due(engine, smtp_for(server), NOW, secretariat=SECRETARIAT)
    assert report.failed == 1
    rows = states(engine)
    assert rows["c1:call:000"].state == "failed" and "554 5.7.1" in rows["c1:call:000"].last_error
    assert sum(row.kind == "failure_report" for row in rows.values()) == 1
    assert server.count_by_message_id()[ids["c1:call:000"]] == 0


def test_every_fault_at_once(engine, server):
    ids = add_ready(engine, 40)
    server.faults.refuse_connections = 1
    server.faults.data_replies.extend(["451 4.3.0 later", "452 4.3.1 full"])
    server.faults.reject_recipients["m9@example.org"] = "550 5.1.1 no such user"
    server.faults.hang_up_after = 15
    now = NOW
    for _ in range(12):
        deliver_due(engine, smtp_for(server), now, secretariat=SECRETARIAT, batch=10)
        now += timedelta(minutes=7)
    rows = states(engine)
    assert {row.state for key, row in rows.items() if key in ids and key != "c1:call:009"} == {"sent"}
    assert rows["c1:call:009"].state == "failed"
    assert_each_delivered_once(server, {k: v for k, v in ids.items() if k != "c1:call:009"})
    assert sum(row.kind == "failure_report" for row in rows.values()) == 1


def test_login_and_secrets_stay_out_of_logs(engine, caplog):
    caplog.set_level(logging.DEBUG)
    password = "s3cr3t-Pa55word"
    with LoopbackSmtp(credentials=("roundtable", password)) as server:
        ids = add_ready(engine, 2)
        wrong = smtp_for(server, smtp_user="roundtable", smtp_password="not-it")
        with pytest.raises(TransientError, match="login refused") as refused:
            with wrong.connect():
                pass
        assert "not-it" not in str(refused.value)
        right = smtp_for(server, smtp_user="roundtable", smtp_password=password)
        assert password not in repr(right) and password not in str(vars(right))
        report = deliver_due(engine, right, NOW)
        assert report.sent == 2
        assert_each_delivered_once(server, ids)
    assert password not in caplog.text and "not-it" not in caplog.text


def test_transport_from_settings():
    assert isinstance(transport_from_settings(Settings()), FileTransport)
    assert isinstance(transport_from_settings(Settings(smtp_host="127.0.0.1")), SmtpTransport)
    with pytest.raises(ValueError, match="PASSWORD"):
        SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_user="someone"))


def test_a_failing_barrier_abandons_the_message_unaccepted(server):
    transport = smtp_for(server)
    payload = build_message(RENDERED, sender=f"roundtable@{DOMAIN}", to=["m@example.org"], reply_to=None,
                            message_id=message_id_for("x", DOMAIN), date=NOW)

    def database_down():
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        with transport.connect() as conn:
            conn.send(payload, f"roundtable@{DOMAIN}", ["m@example.org"], barrier=database_down)
    with transport.connect() as conn:
        assert conn.send(payload, f"roundtable@{DOMAIN}", ["m@example.org"], barrier=lambda: None) == {}
    assert server.count_by_message_id() == {message_id_for("x", DOMAIN): 1}
