"""Running it for real: four figures side by side, each against its baseline (issue 13).

(a) Prefect overhead per tick flow run: an idle tick called directly vs. as a Prefect flow on the
    ephemeral API (heartbeat off, as serve --prefect runs it; and Prefect's default heartbeat).
(b) Lateness in `roundtable serve`: N reminders due at random moments over two minutes; from each due
    moment to its acceptance by an SMTP server (this process; serve is a child process). Baseline: a
    per-minute cron (Prefect's schedule), computed for the same due moments.
(c) End to end through the CLI: a 3,000-member call, one `roundtable tick` (a child process), an SMTP
    server in another process; against raw smtplib sending the same prepared bytes on one connection
    to the same kind of server. Every member must get the call.
(d) CLI start: `python -c pass`, `roundtable --help`, `roundtable status` (wall, median of runs).

    .venv/bin/python bench/bench_run.py                 # all four (~6 min)
    .venv/bin/python bench/bench_run.py --only a,d      # some of them
    .venv/bin/python bench/bench_run.py --quick         # smaller sizes (~2 min)
"""

import argparse
import csv
import json
import os
import random
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import ROOT, log, machine, median_ms, table  # noqa: E402  (puts the checkout on sys.path)

BIN = Path(sys.executable).parent
SEED = 20191113


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cli_env(directory: Path, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUNDTABLE_")}
    env.update(ROUNDTABLE_DATABASE_URL=f"sqlite:///{directory / 'rt.db'}",
               ROUNDTABLE_SECRET_KEY="bench-secret-of-at-least-32-bytes",  # a short one is warned about, each run
               PYTHONIOENCODING="utf-8", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def roundtable(directory: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "roundtable"), *args], cwd=directory, env=env, capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"roundtable {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def write_roster(path: Path, members: int) -> None:
    """The example roster (chairs, secretariat, MPI) plus members up to `members` people."""
    with open(ROOT / "examples" / "roster.csv", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
        header = list(rows[0])
    while len(rows) < members:
        n = len(rows)
        rows.append({**dict.fromkeys(header, ""), "name": f"ສະມາຊິກ {n}", "email": f"member{n:05d}@example.org",
                     "organisation": "ອົງການ", "role": "member", "group": "GSWG", "language": "lo"})
    with open(path, "w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def live_cycle(directory: Path, env: dict, members: int) -> None:
    roundtable(directory, env, "init")
    roundtable(directory, env, "groups", "load", str(ROOT / "examples" / "groups.yaml"))
    write_roster(directory / "roster.csv", members)
    roundtable(directory, env, "roster", "import", str(directory / "roster.csv"), "--today", "2019-09-01")
    roundtable(directory, env, "cycle", "start", "--definition", str(ROOT / "cycles" / "gswg.yaml"), "--year", "2020",
               "--now", "2019-10-01T09:00:00+07:00")


# -- (a) Prefect overhead -------------------------------------------------------------------------
def bench_prefect(work: Path, runs: int) -> list[list]:
    directory = work / "a"
    directory.mkdir()
    env = cli_env(directory)
    live_cycle(directory, env, 60)
    roundtable(directory, env, "tick", "--now", "2019-11-01T09:00:00+07:00")  # the call goes; then idle
    os.environ.update(env, PREFECT_HOME=str(directory / "prefect-home"))
    os.chdir(directory)
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.delivery import tick_and_deliver
    from flows.prefect_flows import run_tick_flow, tick_flow
    from models.db import engine_for
    from models.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    engine = engine_for(settings.database_url)
    moment = datetime.fromisoformat("2019-11-01T10:00:00+07:00")

    def timed(call, count):
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        return samples

    direct = timed(lambda: tick_and_deliver(engine, settings, moment), runs)
    log("(a) starting Prefect's ephemeral API (first flow run, not timed)")
    run_tick_flow(moment)
    quiet = timed(lambda: run_tick_flow(moment), runs)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):
        beating = timed(lambda: tick_flow(now=moment.isoformat()), max(3, runs // 4))
    base = median_ms(direct)
    return [["direct call tick_and_deliver", len(direct), f"{base:.1f}", "–"],
            ["tick flow, heartbeat off (serve --prefect)", len(quiet), f"{median_ms(quiet):.1f}",
             f"{median_ms(quiet) - base:.1f}"],
            ["tick flow, Prefect's default heartbeat", len(beating), f"{median_ms(beating):.1f}",
             f"{median_ms(beating) - base:.1f}"]]


# -- (b) lateness in serve ------------------------------------------------------------------------
def bench_lateness(work: Path, count: int, spread: float) -> list[list]:
    from models.db import make_engine, upgrade
    from tests.outbox_helpers import enqueue_ready
    from tests.smtp_server import LoopbackSmtp, free_port

    directory = work / "b"
    directory.mkdir()
    arrived: dict[str, float] = {}

    server = LoopbackSmtp().start()
    handle_data = server.handler.handle_DATA

    async def stamped(smtp, session, envelope):  # the moment the server accepts the message
        reply = await handle_data(smtp, session, envelope)
        if reply.startswith("250"):
            arrived[server.handler.messages[-1].key] = time.time()
        return reply

    server.handler.handle_DATA = stamped
    env = cli_env(directory, ROUNDTABLE_SMTP_HOST="127.0.0.1", ROUNDTABLE_SMTP_PORT=str(server.port))
    engine = make_engine(env["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    rng = random.Random(SEED)
    start = datetime.now(timezone.utc) + timedelta(seconds=25)  # after serve has started
    due = {f"b:reminder:{i:04d}": start + timedelta(seconds=rng.uniform(0, spread)) for i in range(count)}
    enqueue_ready(engine, list(due.items()))
    port = free_port()
    serve_log = open(directory / "serve.log", "w", encoding="utf-8")
    process = subprocess.Popen([str(BIN / "roundtable"), "serve", "--port", str(port)], cwd=directory, env=env,
                               stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log(f"(b) serve started; {count} reminders due from {start:%H:%M:%S} over {spread:.0f} s")
        deadline = time.monotonic() + spread + 120
        while len(arrived) < count and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
        serve_log.close()
        server.stop()
    late = [arrived[key] - moment.timestamp() for key, moment in due.items() if key in arrived]
    early = sum(1 for value in late if value < 0)

    def cron_lateness(moment: datetime) -> float:  # next whole minute, plus a flow run's start (~2 s here)
        return 60 - (moment.timestamp() % 60) + 2.0

    cron = [cron_lateness(moment) for moment in due.values()]
    return [["roundtable serve (wake at the due moment)", f"{len(late)}/{count}", f"{statistics.median(late):.3f}",
             f"{percentile(late, 0.99):.3f}", f"{max(late):.3f}", early],
            ["per-minute cron (computed, +2 s per run)", count, f"{statistics.median(cron):.3f}",
             f"{percentile(cron, 0.99):.3f}", f"{max(cron):.3f}", 0]]


# -- (c) end to end through the CLI ---------------------------------------------------------------
def bench_end_to_end(work: Path, members: int) -> list[list]:
    from sqlalchemy import text

    from models.db import make_engine
    from tests.smtp_server import SmtpServerProcess

    directory = work / "c"
    directory.mkdir()
    env = cli_env(directory)
    log(f"(c) a live cycle with {members} people")
    live_cycle(directory, env, members)
    with SmtpServerProcess(directory / "ours.jsonl") as smtp:
        env.update(ROUNDTABLE_SMTP_HOST="127.0.0.1", ROUNDTABLE_SMTP_PORT=str(smtp.port))
        started = time.perf_counter()
        result = roundtable(directory, env, "tick", "--now", "2019-11-01T09:00:00+07:00")
        ours = time.perf_counter() - started
        log(f"(c) {result.stdout.strip()}")
        for line in result.stderr.splitlines():
            log(f"(c)   {line}")
        records = smtp.wait_for(0, timeout=1)
    engine = make_engine(env["ROUNDTABLE_DATABASE_URL"])
    with engine.connect() as connection:
        payloads = [row[0] for row in connection.execute(text(
            "SELECT p.payload FROM notification_payload p JOIN notification n ON n.id = p.notification_id "
            "WHERE n.state = 'sent' ORDER BY n.id"))]
        envelopes = list(connection.execute(text("SELECT recipient FROM notification WHERE state = 'sent' "
                                                 "ORDER BY id")).scalars())
        called = set(connection.execute(text("SELECT recipient FROM notification WHERE kind = 'call' "
                                              "AND state = 'sent'")).scalars())
        members_count = connection.execute(text("SELECT count(*) FROM member")).scalar_one()
    engine.dispose()
    message_ids = [record.message_id for record in records]
    assert len(message_ids) == len(set(message_ids)) == len(payloads), "lost or repeated"
    with SmtpServerProcess(directory / "raw.jsonl") as smtp:
        started = time.perf_counter()
        client = smtplib.SMTP("127.0.0.1", smtp.port)
        for payload, recipient in zip(payloads, envelopes):
            client.sendmail("roundtable@gswg.example.la", [recipient], payload)
        client.quit()
        raw = time.perf_counter() - started
        assert len(smtp.wait_for(len(payloads))) == len(payloads)
    n = len(payloads)
    return [["roundtable tick (process start, render, send)", n, f"{ours:.2f}", f"{n / ours:.0f}", "1.00"],
            ["raw smtplib, prepared bytes, one connection", n, f"{raw:.2f}", f"{n / raw:.0f}", f"{ours / raw:.2f}"],
            [f"members with the call: {len(called)} of {members_count}", "", "", "",
             f"ours/raw throughput {raw / ours:.2f}x"]]


# -- (d) CLI start --------------------------------------------------------------------------------
def bench_cli(work: Path, runs: int) -> list[list]:
    directory = work / "d"
    directory.mkdir()
    env = cli_env(directory)
    live_cycle(directory, env, 60)
    rows = []
    for label, args in (("python -c pass", [sys.executable, "-c", "pass"]),
                        ("roundtable --help", [str(BIN / "roundtable"), "--help"]),
                        ("roundtable status", [str(BIN / "roundtable"), "status"])):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(args, cwd=directory, env=env, capture_output=True, check=True)
            samples.append(time.perf_counter() - started)
        rows.append([label, runs, f"{statistics.median(samples):.3f}", f"{min(samples):.3f}", f"{max(samples):.3f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c,d")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the working directory here")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    log(machine())
    results = {}
    try:
        if "d" in only:
            results["d"] = bench_cli(work, 5 if args.quick else 10)
        if "c" in only:
            results["c"] = bench_end_to_end(work, 300 if args.quick else 3000)
        if "b" in only:
            results["b"] = bench_lateness(work, 50 if args.quick else 200, 30.0 if args.quick else 120.0)
        if "a" in only:
            results["a"] = bench_prefect(work, 5 if args.quick else 20)
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    headers = {"a": ["(a) Prefect overhead per tick", "runs", "median ms", "overhead ms"],
               "b": ["(b) lateness in serve", "sent", "p50 s", "p99 s", "max s", "early"],
               "c": ["(c) end to end through the CLI", "messages", "seconds", "msg/s", "time vs ours"],
               "d": ["(d) CLI start (wall)", "runs", "median s", "min s", "max s"]}
    print()
    for key in "abcd":
        if key in results:
            print(table(headers[key], results[key]))
            print()
    print(json.dumps({"machine": machine(), **results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
