"""The Prefect server path for real (slow): `prefect server start` with its database on PostgreSQL, the
process pool, `prefect deploy --all` from prefect.yaml, two workers, a cycle started through the
start_cycle deployment whose call and invitation are due now, several tick runs at once — and at the
SMTP server every message exactly once. The commands are README's ("When one machine is not enough").
Every process started here runs in its own process group and is stopped at teardown.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from calendars.business_days import BusinessCalendar
from models.db import make_engine, scratch_schema, upgrade
from models.tables import Notification
from tests.engine_helpers import ROOT
from tests.smtp_server import SmtpServerProcess, free_port

BIN = Path(sys.executable).parent
TICK_RUNS = 3


def _wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Processes:
    """Children in their own process groups: SIGTERM at teardown, SIGKILL for the stubborn."""

    def __init__(self, directory: Path):
        self.directory, self.started = directory, []

    def start(self, name: str, args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "w", encoding="utf-8")
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append((name, process, log))
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop_all(self) -> None:
        for _, process, _ in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process, log in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


@pytest.fixture
def prefect_database(pg_url):
    """A scratch PostgreSQL database for the Prefect server; dropped afterwards."""
    name = f"prefect_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = pg_url.split("://", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql+asyncpg://{base}/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(args: list[str], env: dict, cwd: Path, timeout: float = 180) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.timeout(600)
def test_two_workers_deliver_a_cycle_exactly_once(tmp_path, pg_url, prefect_database):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    processes = Processes(tmp_path)
    with scratch_schema(pg_url, prefix="deploy") as roundtable_url, \
            SmtpServerProcess(tmp_path / "received.jsonl") as smtp:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "ROUNDTABLE_"))}
        env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api,
                   PREFECT_API_DATABASE_CONNECTION_URL=prefect_database,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_WORKER_QUERY_SECONDS="2",
                   ROUNDTABLE_DATABASE_URL=roundtable_url, ROUNDTABLE_SMTP_HOST="127.0.0.1",
                   ROUNDTABLE_SMTP_PORT=str(smtp.port), ROUNDTABLE_SECRET_KEY="deploy-test-secret",
                   ROUNDTABLE_CHECKOUT=str(ROOT), PYTHONIOENCODING="utf-8", PATH=f"{BIN}:{env.get('PATH', '')}")
        try:
            processes.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                       "--port", str(port)], env, tmp_path)

            def healthy():
                try:
                    with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
                        return json.loads(response.read()) is True
                except OSError:
                    return False

            _wait(healthy, 180, f"the Prefect server:\n{processes.log('server')}")

            # The roster side, through the CLI, on the same PostgreSQL the workers use.
            roundtable = [str(BIN / "roundtable")]
            run(roundtable + ["init"], env, tmp_path)
            run(roundtable + ["groups", "load", str(ROOT / "examples" / "groups.yaml")], env, tmp_path)
            week_ago = (datetime.now(ZoneInfo("Asia/Vientiane")) - timedelta(days=7)).date().isoformat()
            run(roundtable + ["roster", "import", str(ROOT / "examples" / "roster.csv"), "--today", week_ago],
                env, tmp_path)

            run([str(BIN / "prefect"), "work-pool", "create", "roundtable", "--type", "process"], env, ROOT)
            run([str(BIN / "prefect"), "deploy", "--all", "--no-prompt"], env, ROOT)
            for number in (1, 2):
                processes.start(f"worker{number}", [str(BIN / "prefect"), "worker", "start", "--pool", "roundtable",
                                                    "--name", f"worker{number}"], env, ROOT)

            # A cycle whose call and meeting invitation opened in the last days (the members joined a week
            # ago): the wall-clock ticks send them now.
            zone = ZoneInfo("Asia/Vientiane")
            yesterday = (datetime.now(zone) - timedelta(days=1)).date()
            meeting = BusinessCalendar().add_business_days(yesterday, 8)
            anchors = json.dumps({"annual_meeting": meeting.isoformat()})
            run([str(BIN / "prefect"), "deployment", "run", "start_cycle/start_cycle",
                 "--param", "definition=cycles/gswg.yaml", "--param", f"year={meeting.year + 1}",
                 "--param", f"anchors={anchors}"], env, ROOT)
            engine = make_engine(roundtable_url)
            upgrade(engine)

            def cycle_started():
                with Session(engine) as session:
                    return session.exec(select(Notification.id).limit(1)).first() is not None

            _wait(cycle_started, 240, f"the start_cycle run:\n{processes.log('worker1')}\n{processes.log('worker2')}")
            for _ in range(TICK_RUNS):
                run([str(BIN / "prefect"), "deployment", "run", "tick/tick"], env, ROOT)

            ticked_from = datetime.now(timezone.utc)

            def delivered():  # every call and invitation due by now is sent (later ones stay scheduled)
                with Session(engine) as session:
                    states = Counter(session.exec(select(Notification.state).where(
                        Notification.kind.in_(["call", "invite"]), Notification.due_at <= ticked_from)).all())
                return states if states and set(states) == {"sent"} else None

            states = _wait(delivered, 300, f"delivery:\n{processes.log('worker1')}\n{processes.log('worker2')}")
            with Session(engine) as session:
                sent_ids = session.exec(select(Notification.message_id).where(Notification.state == "sent")).all()
            time.sleep(2)  # a duplicate would arrive after its row was marked sent
            received = Counter(record.message_id for record in smtp.records())
            assert sum(states.values()) > 50  # the call to every member, the invitation to every invitee
            assert set(received) == set(sent_ids), "every sent row arrived, and nothing else"
            assert set(received.values()) == {1}, [mid for mid, n in received.items() if n > 1]
            workers = [name for name in ("worker1", "worker2") if "Completed" in processes.log(name)
                       or "completed" in processes.log(name).lower()]
            print(f"{sum(states.values())} messages, each once; runs completed on {workers}")
            engine.dispose()
        finally:
            processes.stop_all()
