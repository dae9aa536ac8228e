"""`roundtable serve` for real: a child process with the web app's /healthz and /metrics, the scheduler
waking at due moments, an SMTP server in another process. SIGTERM mid-delivery stops it within 10 s
after the message in flight; a restart sends the rest; every message arrives exactly once."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from models.db import make_engine, upgrade
from models.tables import Notification, Step
from notifications.links import sign_action
from tests.engine_helpers import LAO, seed_people, start_gswg
from tests.outbox_helpers import enqueue_ready
from tests.smtp_server import SmtpServerProcess, free_port
from tests.web_helpers import csrf_of

MESSAGES = 1500


class ServeProcess:
    def __init__(self, tmp_path, env: dict, *args: str):
        self.port = free_port()
        self.log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "roundtable.cli", "serve", "--port", str(self.port), *args],
            cwd=tmp_path, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            return response.status, response.read().decode("utf-8")

    def wait_healthy(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                return json.loads(self.get("/healthz")[1])
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"serve not healthy within {timeout} s:\n{self.output()}")

    def terminate(self, within: float) -> float:
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=within + 20)
        return time.monotonic() - started

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def smtp(tmp_path):
    with SmtpServerProcess(tmp_path / "received.jsonl") as server:
        yield server


@pytest.fixture
def serve_env(tmp_path, smtp):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = make_engine(url)
    upgrade(engine)
    env = {**os.environ, "ROUNDTABLE_DATABASE_URL": url, "ROUNDTABLE_SMTP_HOST": "127.0.0.1",
           "ROUNDTABLE_SMTP_PORT": str(smtp.port), "ROUNDTABLE_SECRET_KEY": "serve-test-secret-of-at-least-32-bytes",
           "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    yield engine, env
    engine.dispose()


@pytest.mark.timeout(300)
def test_serve_delivers_stops_on_sigterm_and_resumes_without_repeats(tmp_path, smtp, serve_env):
    engine, env = serve_env
    now = datetime.now(timezone.utc)
    enqueue_ready(engine, [(f"c1:reminder:m{i:05d}", now + timedelta(seconds=3)) for i in range(MESSAGES)])
    enqueue_ready(engine, [("c1:reminder:later", now + timedelta(seconds=2400))])  # not due during the test
    first = ServeProcess(tmp_path, env)
    try:
        health = first.wait_healthy()
        assert health["status"] == "ok" and health["database"] == "ok" and health["scheduler"] is True
        assert smtp.wait_for(100, timeout=90) and len(smtp.records()) >= 100, first.output()
        took = first.terminate(within=10)
        log = first.output()
        assert first.process.returncode == 0, log
        assert took < 10, f"SIGTERM took {took:.1f} s"
        assert "stopping: the message in flight goes out" in log
        assert "sent reminder c1:reminder:m00000 to c1-reminder-m00000@example.org" in log
    finally:
        first.kill()
    after_first = Counter(record.key for record in smtp.records())
    assert set(after_first.values()) == {1}

    second = ServeProcess(tmp_path, env)
    try:
        second.wait_healthy()
        records = smtp.wait_for(MESSAGES, timeout=120)
        counts = Counter(record.key for record in records)
        assert len(counts) == MESSAGES and set(counts.values()) == {1}, "lost or repeated across the restart"
        status, metrics = second.get("/metrics")
        assert status == 200
        assert 'roundtable_messages{kind="reminder",state="sent"} 1500.0' in metrics
        assert 'roundtable_messages{kind="reminder",state="ready"} 1.0' in metrics
        assert "roundtable_delivery_lateness_seconds_count" in metrics and "roundtable_tick_seconds_count" in metrics
        health = second.wait_healthy()
        # the one message left is due in 40 minutes: the scheduler sleeps until then (or the sweep)
        assert health["next_wake"] is not None
        assert second.terminate(within=10) < 10
        assert second.process.returncode == 0
    finally:
        second.kill()
    print(f"first run sent {len(after_first)} before SIGTERM; the second sent the other {MESSAGES - len(after_first)}")


@pytest.mark.timeout(120)
def test_serve_without_web_wakes_at_the_due_moment(tmp_path, smtp, serve_env):
    engine, env = serve_env
    due = datetime.now(timezone.utc) + timedelta(seconds=15)
    enqueue_ready(engine, [("c1:reminder:wake", due)])
    serve = ServeProcess(tmp_path, env, "--no-web")
    try:
        records = smtp.wait_for(1, timeout=60)
        arrived = datetime.now(timezone.utc)
        assert [r.key for r in records] == ["c1:reminder:wake"], serve.output()
        assert due <= arrived < due + timedelta(seconds=5), (due, arrived)
        assert "engine only" in serve.output() and "sent reminder c1:reminder:wake" in serve.output()
        assert serve.terminate(within=10) < 10 and serve.process.returncode == 0
    finally:
        serve.kill()


@pytest.mark.timeout(240)
def test_serve_runs_a_live_cycle_a_web_answer_gets_its_receipt_at_once(tmp_path, smtp, serve_env):
    """A live GSWG cycle whose call for suggestions is open today: serve opens it and mails the call; a member
    files a suggestion on serve's own page and the receipt reaches the SMTP server within seconds (the answer
    wakes the tick), not at the next sweep."""
    engine, env = serve_env
    today = datetime.now(LAO).date()
    meeting = BusinessCalendar().add_business_days(today, 5)  # the call opened 3 business days ago
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session, year=meeting.year + 1, anchors={"annual_meeting": datetime(
            meeting.year, meeting.month, meeting.day, 9, 0, tzinfo=LAO)}, now=datetime.now(LAO))
        call = session.exec(select(Step).where(Step.cycle_id == cycle.id, Step.key == "call_for_suggestions")).one()
    link = "/action/" + sign_action(env["ROUNDTABLE_SECRET_KEY"], member_id=people["m1@example.org"].id,
                                    step_id=call.id, purpose="respond")
    serve = ServeProcess(tmp_path, env)
    try:
        serve.wait_healthy()
        called = len(people)  # everyone in GSWG and its sub-groups is asked
        assert len(smtp.wait_for(called, timeout=90)) >= called, serve.output()
        with httpx.Client(base_url=f"http://127.0.0.1:{serve.port}") as client:
            page = client.get(link)
            assert page.status_code == 200 and "ສະເໜີກິດຈະກຳ" in page.text
            assert "server" not in page.headers  # as `roundtable web` runs it (roundtable.web.app.SERVER_OPTIONS)
            before = len(smtp.records())
            posted = time.monotonic()
            done = client.post(link, data={"csrf": csrf_of(page.text), "op": "save", "title": "ສໍາມະນາ ປີ 2027",
                                           "months": ["3"]})
            assert done.status_code == 303, done.text
        arrived = smtp.wait_for(before + 1, timeout=30)
        took = time.monotonic() - posted
        with Session(engine) as session:
            receipt = session.exec(select(Notification).where(Notification.kind == "suggestion_receipt")).one()
        assert receipt.message_id and receipt.message_id in {r.message_id for r in arrived}, serve.output()
        assert took < 10, f"the receipt took {took:.1f} s"
        assert f"sent suggestion_receipt {receipt.key} to m1@example.org" in serve.output()
        assert serve.terminate(within=10) < 10 and serve.process.returncode == 0
    finally:
        serve.kill()
