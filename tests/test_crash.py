"""Crash safety: a worker process delivering 2,000 prepared messages is killed with SIGKILL at
random (seeded) moments and restarted each time with a `now` past the lease, until all are sent.

At the SMTP server (another process) every key must have arrived; a key arrives twice only if its
message was in flight at a kill (accepted by the server, not yet marked sent), and then with the
same Message-ID.

Run as a script with --worker, this file is that worker.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

MESSAGES = 2000
MIN_KILLS = 20
SEED = 20191113
BASE_NOW = datetime(2019, 11, 1, 1, 0, tzinfo=timezone.utc)
LEASE_STEP = timedelta(minutes=10)  # each restart's `now` is past the previous run's 5-minute leases
DOMAIN = "gswg.example.la"
REPO = Path(__file__).resolve().parents[1]


def _worker(db_url: str, port: int, now: datetime) -> None:
    from models.db import make_engine
    from models.settings import Settings
    from notifications.outbox import deliver_due
    from notifications.transports import SmtpTransport

    engine = make_engine(db_url)
    transport = SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_port=port), timeout=10)
    print("READY", flush=True)
    while deliver_due(engine, transport, now, batch=50).claimed:
        pass
    print("DONE", flush=True)


def _prepare(engine) -> dict[str, str]:
    """MESSAGES ready rows; the payload is one real composed message, personalised per key."""
    from sqlmodel import Session

    from notifications.compose import build_message, message_id_for
    from notifications.outbox import enqueue
    from notifications.render import render_message
    from notifications.samples import sample_context

    rendered = render_message("call", sample_context("call"))
    template = build_message(rendered, sender=f"GSWG <roundtable@{DOMAIN}>", to=["MEMBER"], reply_to=None,
                             message_id="<MESSAGE-ID>", date=BASE_NOW)
    ids = {}
    with Session(engine) as session:
        for i in range(MESSAGES):
            key, to = f"c1:call:m{i:04d}", f"m{i:04d}@example.org"
            message_id = message_id_for(key, DOMAIN)
            payload = (f"X-Test-Key: {key}\r\n".encode()
                       + template.replace(b"<MESSAGE-ID>", message_id.encode()).replace(b"MEMBER", to.encode()))
            enqueue(session, key=key, recipient=to, kind="call", state="ready", due_at=BASE_NOW,
                    next_attempt_at=BASE_NOW, payload=payload, message_id=message_id, created_at=BASE_NOW)
            ids[key] = message_id
        session.commit()
    return ids


def _start_worker(db_url: str, port: int, now: datetime) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", "--db", db_url, "--port", str(port), "--now", now.isoformat()],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert process.stdout.readline().strip() == "READY"
    return process


def _state_counts(engine) -> tuple[Counter, set[str]]:
    from sqlmodel import Session, select

    from models.tables import Notification

    with Session(engine) as session:
        rows = session.exec(select(Notification.key, Notification.state)).all()
    return Counter(state for _, state in rows), {key for key, state in rows if state == "sending"}


def test_kill_minus_nine_loses_nothing_and_resends_only_in_flight(tmp_path):
    from models.db import make_engine, upgrade
    from smtp_server import SmtpServerProcess

    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    ids = _prepare(engine)
    rng = random.Random(SEED)
    in_flight_at_kill: list[set[str]] = []
    started = time.monotonic()

    with SmtpServerProcess(tmp_path / "received.jsonl") as server:
        now, effective_kills = BASE_NOW, 0
        while effective_kills < MIN_KILLS:
            assert time.monotonic() - started < 150, "crash test is too slow"
            before = len(server.records())
            worker = _start_worker(db_url, server.port, now)
            time.sleep(rng.uniform(0.03, 0.12))  # after READY: while it claims and sends
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker.stdout.close()
            time.sleep(0.05)  # let the server finish writing whatever it accepted
            received = {record.key for record in server.records()}
            counts, sending = _state_counts(engine)
            in_flight = sending & received  # at the server, but never marked sent
            assert len(in_flight) <= 1, f"more than the in-flight message was lost track of: {in_flight}"
            in_flight_at_kill.append(in_flight)
            if counts["sent"] == MESSAGES:
                break
            effective_kills += len(server.records()) > before
            now += LEASE_STEP
        # restart without killing until everything is sent
        for _ in range(5):
            counts, _ = _state_counts(engine)
            if counts["sent"] == MESSAGES:
                break
            now += LEASE_STEP
            worker = _start_worker(db_url, server.port, now)
            assert worker.stdout.readline().strip() == "DONE"
            worker.wait()
            worker.stdout.close()
        records = server.wait_for(MESSAGES)

    assert effective_kills >= MIN_KILLS, f"only {effective_kills} kills interrupted a delivery"
    counts, _ = _state_counts(engine)
    assert counts == Counter({"sent": MESSAGES})
    arrivals = Counter(record.key for record in records)
    assert set(arrivals) == set(ids), "a message was lost"
    duplicates = {key: n for key, n in arrivals.items() if n > 1}
    in_flight_count = Counter(key for keys in in_flight_at_kill for key in keys)
    for key, n in duplicates.items():
        assert n - 1 <= in_flight_count[key], f"{key} sent {n} times but in flight at {in_flight_count[key]} kills"
    message_ids = defaultdict(set)
    for record in records:
        message_ids[record.key].add(record.message_id)
    assert all(found == {ids[key]} for key, found in message_ids.items()), "a resend changed its Message-ID"
    print(f"\n{len(in_flight_at_kill)} kills ({effective_kills} mid-delivery), {len(duplicates)} duplicate(s), "
          f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--now", required=True)
    args = parser.parse_args()
    _worker(args.db, args.port, datetime.fromisoformat(args.now))
