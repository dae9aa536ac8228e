"""One tick finishes its work: every due message, batch after batch on one connection, within a budget."""

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, select

from flows.delivery import deliver, still_due
from models.settings import Settings
from models.tables import Notification
from tests.outbox_helpers import enqueue_ready
from tests.smtp_server import LoopbackSmtp

NOW = datetime(2019, 11, 1, 2, 0, tzinfo=timezone.utc)


def states(engine) -> Counter:
    with Session(engine) as session:
        return Counter(session.exec(select(Notification.state)).all())


def test_one_delivery_sends_every_batch_on_one_connection(engine):
    enqueue_ready(engine, [(f"c1:call:m{i:04d}", NOW - timedelta(minutes=1)) for i in range(450)])
    lines = []
    with LoopbackSmtp() as server:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=server.port)
        report = deliver(engine, settings, NOW, lines.append, batch=100)
        assert report.sent == 450 and report.claimed == 450
        assert server.handler.connections == 1  # five batches, one connection
        assert set(server.count_by_message_id().values()) == {1}
    assert states(engine) == {"sent": 450}
    assert still_due(engine, NOW) == 0


def test_budget_and_stop_leave_the_rest_ready(engine, tmp_path):
    enqueue_ready(engine, [(f"c1:call:m{i:04d}", NOW) for i in range(30)])
    settings = Settings(outbox_dir=tmp_path / "out")
    lines = []
    assert deliver(engine, settings, NOW, lines.append, max_seconds=0).sent == 0
    assert any("30 messages still due" in line for line in lines)
    sent = []
    report = deliver(engine, settings, NOW, on_sent=lambda row, path: sent.append(row.key),
                     stop=lambda: len(list((tmp_path / "out").glob("*.eml"))) >= 7, batch=10)
    assert report.sent == 7
    assert states(engine) == {"sent": 7, "ready": 23}  # nothing left claimed ("sending") by the stop
    assert deliver(engine, settings, NOW).sent == 23


def test_a_server_that_takes_nothing_ends_the_run(engine):
    enqueue_ready(engine, [(f"c1:call:m{i:04d}", NOW) for i in range(50)])
    with LoopbackSmtp() as server:
        server.faults.refuse_connections = 100
        report = deliver(engine, Settings(smtp_host="127.0.0.1", smtp_port=server.port), NOW, batch=10)
        assert server.handler.connections == 1  # one try, not one per batch
    assert report.sent == 0 and report.retried == 10
    assert states(engine) == {"ready": 50}


def test_concurrent_ticks_send_each_message_once(engine, tmp_path):
    """Two workers ticking at the same moment (PostgreSQL: the advisory lock; SQLite: one writer)."""
    import threading

    from flows.delivery import tick_and_deliver
    from tests.engine_helpers import local, seed_people, start_gswg

    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        start_gswg(session)
    settings = Settings(outbox_dir=tmp_path / "out", secret_key="test-secret")
    results, errors = [], []

    def work():
        try:
            results.append(tick_and_deliver(engine, settings, local(2019, 11, 1, 9, 0)))
        except Exception as exc:  # noqa: BLE001 - SQLite may refuse the second writer; it must not duplicate
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if engine.dialect.name == "postgresql":
        assert not errors
    assert sum(r["prepared"] for r in results) == 19
    tick_and_deliver(engine, settings, local(2019, 11, 1, 9, 0))  # whatever a refused writer left
    files = sorted((tmp_path / "out").glob("*.eml"))
    ids = Counter(p.read_bytes().split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for p in files)
    assert len(ids) == 19 and set(ids.values()) == {1}
