"""The outbox on SQLite and PostgreSQL: idempotent enqueue, atomic leased claims, retries with backoff,
failures reported once, files written by FileTransport. (Real SMTP faults: test_smtp_faults.py.)"""

import os
import stat
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from models.tables import Notification
from notifications import outbox
from notifications.compose import build_message, message_id_for
from notifications.outbox import (SentRow, backoff, claim_ready, deliver_due, enqueue, payload_of,
                                  store_payload)
from notifications.render import Rendered
from notifications.transports import FileTransport, PermanentError, TransientError

NOW = datetime(2019, 11, 1, 1, 0, tzinfo=timezone.utc)
SENDER = "GSWG <roundtable@gswg.example.la>"
RENDERED = Rendered("[GSWG] ຂໍຄໍາເຫັນ — Call for input", "ສະບາຍດີ\nHello\n", "<p>ສະບາຍດີ</p><p>Hello</p>\n")


def payload(key: str, to: str) -> bytes:
    return build_message(RENDERED, sender=SENDER, to=[to], reply_to="secretariat@gswg.example.la",
                         message_id=message_id_for(key, "gswg.example.la"), date=NOW)


def add_ready(engine, count: int, *, due=NOW, kind="call", prefix="k") -> list[str]:
    keys = []
    with Session(engine) as session:
        for i in range(count):
            key = f"{prefix}{i:04d}"
            to = f"m{i}@example.org" if prefix == "k" else f"{prefix}{i}@example.org"
            enqueue(session, key=key, recipient=to, kind=kind, state="ready", due_at=due, next_attempt_at=due,
                    payload=payload(key, to), subject=RENDERED.subject,
                    message_id=message_id_for(key, "gswg.example.la"), created_at=NOW)
            keys.append(key)
        session.commit()
    return keys


def rows(engine) -> dict[str, Notification]:
    with Session(engine) as session:
        return {row.key: row for row in session.exec(select(Notification)).all()}


class FakeTransport:
    """Records sends; `script` maps a recipient to the exception its send raises (once per listed item)."""

    def __init__(self, script=None, refuse_connect: Exception | None = None):
        self.sent: list[tuple[bytes, str, list[str]]] = []
        self.script = script or {}
        self.refuse_connect = refuse_connect
        self.connections = 0

    def connect(self):
        transport = self

        class _Conn:
            def __enter__(self):
                if transport.refuse_connect:
                    raise transport.refuse_connect
                transport.connections += 1
                return self

            def __exit__(self, *exc):
                return False

            def send(self, payload, sender, recipients, *, kind="message", barrier=None):
                errors = transport.script.get(recipients[0])
                if errors:
                    raise errors.pop(0) if isinstance(errors, list) else errors
                if barrier is not None:
                    barrier()
                transport.sent.append((payload, sender, recipients))
                return {}

        return _Conn()


# ---------------------------------------------------------------- enqueue

def test_enqueue_is_idempotent(engine):
    with Session(engine) as session:
        assert enqueue(session, key="1:call:7", recipient="a@example.org", kind="call", due_at=NOW) is True
        assert enqueue(session, key="1:call:7", recipient="other@example.org", kind="call", due_at=NOW) is False
        session.commit()
    (row,) = rows(engine).values()
    assert row.recipient == "a@example.org" and row.state == "scheduled" and row.cc == [] and row.context == {}


def test_payload_lives_beside_the_row(engine):
    with Session(engine) as session:
        assert enqueue(session, key="p", recipient="a@example.org", kind="call", due_at=NOW, payload=b"first")
        assert not enqueue(session, key="p", recipient="a@example.org", kind="call", due_at=NOW, payload=b"other")
        assert enqueue(session, key="bare", recipient="b@example.org", kind="call", due_at=NOW)
        session.commit()
    stored = rows(engine)
    with Session(engine) as session:
        assert payload_of(session, stored["p"].id) == b"first"  # a second enqueue of the key changes nothing
        assert payload_of(session, stored["bare"].id) is None
        store_payload(session, stored["p"].id, b"rendered again")  # replaces
        store_payload(session, stored["bare"].id, b"rendered")  # inserts
        session.commit()
    with Session(engine) as session:
        assert (payload_of(session, stored["p"].id), payload_of(session, stored["bare"].id)) == (
            b"rendered again", b"rendered")


def test_enqueue_race_inserts_once(engine):
    results, errors = [], []
    barrier = threading.Barrier(6)

    def worker():
        try:
            with Session(engine) as session:
                barrier.wait()
                results.append(enqueue(session, key="race", recipient="a@example.org", kind="call", due_at=NOW))
                session.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(results) == [False] * 5 + [True]
    assert len(rows(engine)) == 1


# ---------------------------------------------------------------- claim

def test_claim_takes_only_due_ready_rows_under_a_lease(engine):
    add_ready(engine, 3)
    add_ready(engine, 2, due=NOW + timedelta(hours=1), prefix="later")
    with Session(engine, expire_on_commit=False) as session:
        enqueue(session, key="planned", recipient="p@example.org", kind="call", due_at=NOW - timedelta(days=1))
        session.commit()
        claimed = claim_ready(session, NOW, limit=10)
        session.commit()
    assert sorted(row.key for row in claimed) == ["k0000", "k0001", "k0002"]
    assert all(row.state == "sending" and row.lease_until == NOW + outbox.DEFAULT_LEASE for row in claimed)
    with Session(engine) as session:
        assert claim_ready(session, NOW + timedelta(minutes=1)) == []  # leased, not yet stale


def test_claim_respects_limit_and_reclaims_stale_leases(engine):
    add_ready(engine, 5)
    with Session(engine, expire_on_commit=False) as session:
        first = claim_ready(session, NOW, limit=2, lease=timedelta(minutes=5))
        session.commit()
        assert len(first) == 2
        rest = claim_ready(session, NOW, limit=10)
        session.commit()
        assert len(rest) == 3 and not {r.id for r in first} & {r.id for r in rest}
        # a crashed worker's claims come back once the lease has passed
        again = claim_ready(session, NOW + timedelta(minutes=6), limit=10)
        session.commit()
    assert len(again) == 5


def test_concurrent_claims_are_disjoint(engine):
    add_ready(engine, 60)
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker():
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            got = claim_ready(session, NOW, limit=20)
            session.commit()
            claimed.append([row.id for row in got])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row_id for ids in claimed for row_id in ids]
    assert len(every) == len(set(every)) == 60


# ---------------------------------------------------------------- deliver

def test_deliver_sends_each_once_and_records_it(engine):
    keys = add_ready(engine, 5)
    transport, seen = FakeTransport(), []
    report = deliver_due(engine, transport, NOW, on_sent=lambda row, path: seen.append((row.key, path, row)))
    assert (report.sent, report.retried, report.failed, report.claimed) == (5, 0, 0, 5)
    assert transport.connections == 1  # one connection for the batch
    assert sorted(key for key, _, _ in seen) == keys and all(path is None for _, path, _ in seen)
    with Session(engine) as session:
        assert all(isinstance(row, SentRow) and row.state == "sent" and row.sent_at == NOW and row.attempts == 1
                   and payload_of(session, row.id) for _, _, row in seen)
    assert {sender for _, sender, _ in transport.sent} == {"roundtable@gswg.example.la"}
    stored = rows(engine)
    assert all(row.state == "sent" and row.sent_at == NOW and row.lease_until is None for row in stored.values())
    # on_sent's record is the row as committed, column for column
    assert all(row == SentRow(**stored[key].model_dump()) for key, _, row in seen)
    assert deliver_due(engine, transport, NOW + timedelta(days=1)).claimed == 0


def test_outcomes_store_times_as_the_orm_does(engine):
    """Outcomes bypass SQLAlchemy's execute; their times must be stored exactly as the ORM stores them
    (SQLite: naive UTC text), or ordering and comparisons by text would break."""
    add_ready(engine, 1)
    deliver_due(engine, FakeTransport(), NOW)  # due_at and next_attempt_at (NOW) went in through the ORM
    with engine.connect() as connection:
        (stored,) = connection.exec_driver_sql("SELECT due_at, next_attempt_at, sent_at FROM notification").all()
    assert stored[0] == stored[1] == stored[2]


def test_transient_errors_back_off_exponentially_then_fail(engine):
    add_ready(engine, 1)
    never = FakeTransport({"m0@example.org": TransientError("451 4.3.0 try later", code=451)})
    now, waits = NOW, []
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        report = deliver_due(engine, never, now, secretariat=["secretariat@gswg.example.la"])
        assert report.retried == 1
        row = rows(engine)["k0000"]
        assert row.state == "ready" and row.last_error.startswith("451")
        waits.append(row.next_attempt_at - now)
        assert deliver_due(engine, never, row.next_attempt_at - timedelta(seconds=1)).claimed == 0  # not before
        now = row.next_attempt_at
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(waits) == outbox.BACKOFF_CAP
    report = deliver_due(engine, never, now, secretariat=["secretariat@gswg.example.la"])
    assert report.failed == 1 and report.failure_report_key
    stored = rows(engine)
    assert stored["k0000"].state == "failed" and "gave up after" in stored["k0000"].last_error
    assert stored[report.failure_report_key].state == "sent"


def test_backoff_values():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(50) == outbox.BACKOFF_CAP


def test_permanent_failures_give_one_report_per_call(engine):
    add_ready(engine, 6)
    transport = FakeTransport({"m1@example.org": PermanentError("550 5.1.1 no such user", code=550),
                               "m4@example.org": PermanentError("554 5.7.1 rejected", code=554)})
    report = deliver_due(engine, transport, NOW, secretariat=["GSWG Secretariat <secretariat@gswg.example.la>",
                                                              "head@gswg.example.la"])
    assert (report.sent, report.failed) == (5, 2)  # 4 messages + the report
    stored = rows(engine)
    reports = [row for row in stored.values() if row.kind == "failure_report"]
    assert len(reports) == 1
    (failure_report,) = reports
    assert failure_report.recipient == "secretariat@gswg.example.la" and failure_report.cc == ["head@gswg.example.la"]
    assert failure_report.state == "sent" and failure_report.key == report.failure_report_key
    body = transport.sent[-1][0]
    assert transport.sent[-1][2] == ["secretariat@gswg.example.la", "head@gswg.example.la"]
    assert b"Auto-Submitted: auto-generated" in body
    failures = failure_report.context["extra"]["failures"]
    assert sorted(f["recipient"] for f in failures) == ["m1@example.org", "m4@example.org"]
    assert {f["error"] for f in failures} == {"550 5.1.1 no such user", "554 5.7.1 rejected"}
    # nothing new failed: no second report
    add_ready(engine, 2, prefix="n")
    assert deliver_due(engine, transport, NOW, secretariat=["secretariat@gswg.example.la"]).failure_report_key is None
    assert sum(row.kind == "failure_report" for row in rows(engine).values()) == 1


def test_no_secretariat_no_report(engine):
    add_ready(engine, 1)
    report = deliver_due(engine, FakeTransport({"m0@example.org": PermanentError("550 no", code=550)}), NOW)
    assert report.failed == 1 and report.failure_report_key is None
    assert [row.kind for row in rows(engine).values()] == ["call"]


def test_connect_failure_retries_every_claimed_row(engine):
    add_ready(engine, 4)
    down = FakeTransport(refuse_connect=TransientError("cannot connect", connection_lost=True))
    report = deliver_due(engine, down, NOW)
    assert (report.claimed, report.retried, report.sent) == (4, 4, 0)
    assert all(row.state == "ready" and row.attempts == 1 and row.next_attempt_at == NOW + timedelta(minutes=1)
               for row in rows(engine).values())
    up = FakeTransport()
    assert deliver_due(engine, up, NOW + timedelta(minutes=1)).sent == 4


def test_lost_connection_gives_back_the_untried_rows(engine):
    add_ready(engine, 5)
    transport = FakeTransport({"m2@example.org": [TransientError("connection lost", connection_lost=True)]})
    report = deliver_due(engine, transport, NOW)
    assert (report.sent, report.retried) == (2, 1)
    stored = rows(engine)
    assert [stored[k].state for k in ("k0000", "k0001")] == ["sent", "sent"]
    assert stored["k0002"].attempts == 1 and stored["k0002"].next_attempt_at == NOW + timedelta(minutes=1)
    assert all(stored[k].state == "ready" and stored[k].attempts == 0 and stored[k].lease_until is None
               for k in ("k0003", "k0004"))
    assert deliver_due(engine, transport, NOW).sent == 2  # the untried ones go at once
    assert deliver_due(engine, transport, NOW + timedelta(minutes=1)).sent == 1
    assert sorted(recipients[0] for _, _, recipients in transport.sent) == [f"m{i}@example.org" for i in range(5)]


def test_row_without_payload_fails(engine):
    with Session(engine) as session:
        enqueue(session, key="empty", recipient="a@example.org", kind="call", state="ready", due_at=NOW,
                next_attempt_at=NOW)
        session.commit()
    report = deliver_due(engine, FakeTransport(), NOW)
    assert report.failed == 1 and "no prepared payload" in rows(engine)["empty"].last_error


def test_file_transport_writes_exact_bytes(engine, tmp_path):
    keys = add_ready(engine, 3)
    paths = []
    deliver_due(engine, FileTransport(tmp_path / "outbox"), NOW, on_sent=lambda row, path: paths.append(path))
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == ["0001-call.eml", "0002-call.eml", "0003-call.eml"] == [p.name for p in paths]
    stored = rows(engine)
    with Session(engine) as session:
        assert sorted(f.read_bytes() for f in files) == sorted(payload_of(session, stored[k].id) for k in keys)
    add_ready(engine, 1, prefix="more")
    deliver_due(engine, FileTransport(tmp_path / "outbox"), NOW)
    assert (tmp_path / "outbox" / "0004-call.eml").exists()  # numbering continues across runs


def test_one_file_transport_keeps_numbering_and_never_overwrites(engine, tmp_path):
    transport = FileTransport(tmp_path / "outbox")
    add_ready(engine, 1)
    deliver_due(engine, transport, NOW)
    (tmp_path / "outbox" / "0002-call.eml").write_bytes(b"written by another process")
    add_ready(engine, 1, prefix="more")
    deliver_due(engine, transport, NOW)
    assert (tmp_path / "outbox" / "0002-call.eml").read_bytes() == b"written by another process"
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["0001-call.eml", "0002-call.eml",
                                                                       "0003-call.eml"]


def test_file_connections_in_one_process_never_share_a_temporary_file(tmp_path):
    transport = FileTransport(tmp_path / "outbox")
    with transport.connect() as first, transport.connect() as second:
        # the second connection writes and links a whole message while the first's bytes wait unlinked
        first.send(b"first message", "a@example.org", ["b@example.org"],
                   barrier=lambda: second.send(b"second message", "a@example.org", ["b@example.org"]))
        assert first.last_path.read_bytes() == b"first message"
        assert second.last_path.read_bytes() == b"second message"
    assert sorted(path.name for path in (tmp_path / "outbox").iterdir()) == ["0001-message.eml", "0002-message.eml"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(first.last_path.stat().st_mode) == 0o666 & ~umask  # as open() would have made it


def test_naive_now_is_refused(engine):
    add_ready(engine, 1)
    with pytest.raises(Exception, match="naive"):
        deliver_due(engine, FakeTransport(), datetime(2019, 11, 1, 1, 0))


def test_each_outcome_is_committed_before_the_next_message_can_be_accepted(engine):
    """The crash guarantee: when message k+1 may be accepted, message k is already recorded as sent."""
    keys = add_ready(engine, 6)
    seen_committed = []

    class CheckingTransport(FakeTransport):
        def connect(self):
            inner = super().connect()

            class _Conn:
                def __enter__(self):
                    self.conn = inner.__enter__()
                    return self

                def __exit__(self, *exc):
                    return False

                def send(self, payload, sender, recipients, *, kind="message", barrier=None):
                    def checked_barrier():
                        barrier()
                        with Session(engine) as other:  # another connection sees only committed data
                            seen_committed.append(sorted(
                                row.key for row in other.exec(select(Notification)).all() if row.state == "sent"))
                    return self.conn.send(payload, sender, recipients, kind=kind, barrier=checked_barrier)

            return _Conn()

    deliver_due(engine, CheckingTransport(), NOW)
    assert seen_committed == [keys[:i] for i in range(6)]
    assert all(row.state == "sent" for row in rows(engine).values())
