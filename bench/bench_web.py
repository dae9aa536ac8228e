"""The web app under load: 3,000 members, 50 concurrent clients on loopback, SQLite.

Setup: GSWG with 3,000 members, cycles/gswg.yaml started and ticked to the opening of the call for
suggestions (every member has a `respond` link). One uvicorn process (one worker, as `roundtable web`
runs) serves the app and, in the same process, a bare FastAPI page (`/bare`: one route returning a
small HTML string, no database) — the floor the framework, the server and the loopback set.

Measured from another process (wrk when installed, else httpx/asyncio; 50 clients, each a different
member with its own link):
  - GET of the action page (the suggestion form with the member's own suggestions),
  - POST of a suggestion (CSRF checked, answer recorded with its audit row, the receipt scheduled in the
    outbox for the tick to write, committed; the 303 redirect is not followed),
  - GET of the bare page,
each phase on its own: p50, p99, requests/s.
Goal: p99 ≤ 100 ms (GET) and ≤ 150 ms (POST) on SQLite; the ratio to the bare page is printed.

    .venv/bin/python bench/bench_web.py                  # 3,000 members, 50 clients
    .venv/bin/python bench/bench_web.py --quick          # 300 members, 10 clients, fewer requests
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, log, machine, table  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from models.db import make_engine, upgrade  # noqa: E402
from models.tables import Member, Membership, Step, WorkingGroup  # noqa: E402
from notifications.links import sign_action  # noqa: E402
from roundtable.web.app import SERVER_OPTIONS  # noqa: E402
from tests.web_helpers import wait_until_serving  # noqa: E402

SECRET = "bench-web-secret"
NOW = "2019-11-04T10:00:00+07:00"  # the call for suggestions is open
FILED_EACH = 5


def served_app():
    """The app uvicorn runs (--factory): the roundtable app, and the bare page beside it."""
    from datetime import datetime

    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from roundtable.web.app import create_app

    moment = datetime.fromisoformat(os.environ["BENCH_WEB_NOW"])
    roundtable = create_app(engine=make_engine(os.environ["BENCH_WEB_DB"]), secret=SECRET, clock=lambda: moment)
    bare = FastAPI()

    @bare.get("/bare")
    def bare_page() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>bare</title><p>ok</p>")

    async def app(scope, receive, send):
        target = bare if scope["type"] == "http" and scope["path"] == "/bare" else roundtable
        await target(scope, receive, send)

    return app


def build(db_url: str, members: int) -> list[str]:
    """The database: GSWG's seed people plus `members` members, the call open. Returns their links."""
    from tests.engine_helpers import CONFIG, local, seed_people, start_gswg  # the engine tests' GSWG people
    from flows.tick import tick

    engine = make_engine(db_url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        gswg = session.exec(select(WorkingGroup).where(WorkingGroup.code == "GSWG")).scalars().one()
        session.execute(insert(Member), [{"name": f"ສະມາຊິກ {i}", "email": f"member{i}@bench.example.org",
                                          "organisation": "ກະຊວງ", "language": "lo"} for i in range(members)])
        ids = session.execute(select(Member.id).where(Member.email.like("%@bench.example.org"))).scalars().all()
        session.execute(insert(Membership), [{"member_id": i, "group_id": gswg.id, "role": "member"} for i in ids])
        session.commit()
        cycle = start_gswg(session)
        tick(session, local(2019, 11, 1, 9, 0), CONFIG)
        session.commit()
        call = session.execute(select(Step.id).where(Step.cycle_id == cycle.id,
                                                     Step.key == "call_for_suggestions")).scalar_one()
    engine.dispose()
    return [f"/action/{sign_action(SECRET, member_id=i, step_id=call, purpose='respond')}" for i in ids]


def _uvicorn_flags(options: dict) -> list[str]:
    """SERVER_OPTIONS as uvicorn's command line: --loop=asyncio, --no-proxy-headers, ..."""
    flags = []
    for name, value in options.items():
        flag = name.replace("_", "-")
        flags.append((f"--{flag}" if value else f"--no-{flag}") if isinstance(value, bool) else f"--{flag}={value}")
    return flags


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


async def _phase(base: str, clients: int, per_client: int, request) -> tuple[list[float], float, int]:
    """`clients` concurrent clients, each sending `per_client` requests; (latencies, seconds, failures)."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def one_client(index: int):
            nonlocal failures
            state = {}
            for n in range(per_client):
                started = time.perf_counter()
                try:
                    ok = await request(client, index, n, state)
                except httpx.TransportError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                failures += not ok
        started = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        return latencies, time.perf_counter() - started, failures


async def run(base: str, links: list[str], clients: int, gets: int, posts: int) -> dict:
    from roundtable.web.security import Csrf

    csrf = Csrf(SECRET)  # the form token the page would carry (issued here: the GET is measured on its own)
    async def bare(client, index, n, state):
        return (await client.get("/bare")).status_code == 200

    async def get_page(client, index, n, state):
        return (await client.get(links[index])).status_code == 200

    posted = iter(range(10**9))  # members take turns: each files at most FILED_EACH suggestions, as people do

    async def post_suggestion(client, index, n, state):
        link = links[clients + next(posted) // FILED_EACH]  # members not used by the GET phase
        response = await client.post(link, data={
            "csrf": csrf.issue(link.removeprefix("/action/")), "op": "save",
            "title": f"ສໍາມະນາ ທີ {n} ກ່ຽວກັບການປົກຄອງທີ່ດີ", "what": "ກອງປະຊຸມສອງມື້", "why": "SDG 16",
            "months": ["3", "4"], "serves": ["sdg16"], "lead": "ກະຊວງພາຍໃນ"})
        return response.status_code == 303

    # Warm both apps (templates compiled, connections opened) before measuring.
    await _phase(base, clients, 2, bare)
    await _phase(base, clients, 2, get_page)
    results = {}
    phases = (("bare page GET", bare, gets), ("action page GET", get_page, gets), ("suggestion POST", post_suggestion, posts))
    for name, request, count in phases:
        latencies, seconds, failures = await _phase(base, clients, count, request)
        results[name] = (latencies, seconds, failures)
        log(f"{name}: {len(latencies)} requests in {seconds:.1f}s, {failures} failed")
    # One client alone: the cost of a request without queueing behind 49 others.
    for name, request, count in phases:
        latencies, seconds, failures = await _phase(base, 1, 100, request)
        results[f"{name}, 1 client"] = (latencies, seconds, failures)
    return results


# --- wrk: the same phases from a load generator written in C ----------------------------------------------
# httpx in one Python process spends ~1-2 ms of CPU a request on a 2-core machine the server shares: at
# 50 clients it measured the client as much as the server (the bare page itself had a 1.2 s p99). wrk
# (Debian package `wrk`) keeps 50 connections open from two threads and reports the latency percentiles.

_WRK_SCRIPT = """
local requests = {%s}
local counter = 0
local threads = 0
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function setup(thread)
  thread:set("offset", threads * math.floor(#requests / 2))
  threads = threads + 1
end
function request()
  counter = counter + 1
  local r = requests[((counter + (offset or 0)) %% #requests) + 1]
  return wrk.format(r[1], r[2], nil, r[3])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%.3f %%.3f %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _lua(text: str) -> str:
    return "[[" + text.replace("]]", "] ]") + "]]"


def _wrk_phase(base: str, clients: int, seconds: int, requests: list[tuple[str, str, str | None]], tmp: Path):
    """(requests, seconds, p50 ms, p99 ms, failed) of `clients` connections sending `requests` in turn."""
    script = tmp / "phase.lua"
    rows = ", ".join("{%s, %s, %s}" % (_lua(method), _lua(path), _lua(body) if body else "nil")
                     for method, path, body in requests)
    script.write_text(_WRK_SCRIPT % rows, encoding="utf-8")
    out = subprocess.run(["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{seconds}s", "--timeout",
                          "30s", "-s", str(script), base], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    count, micros, p50, p99, errors, bad_status = line.split()[1:]
    return int(count), int(micros) / 1e6, float(p50), float(p99), int(errors) + int(bad_status)


def run_wrk(base: str, links: list[str], clients: int, seconds: int, tmp: Path) -> list[list]:
    """The three phases at `clients` connections, then with one; rows for the table."""
    from urllib.parse import urlencode

    from roundtable.web.security import Csrf

    csrf = Csrf(SECRET)
    gets = [("GET", link, None) for link in links[:clients]]
    posts = []
    for link in links[clients:]:
        for n in range(FILED_EACH):  # members take turns: each files at most FILED_EACH suggestions, as people do
            posts.append(("POST", link, urlencode({
                "csrf": csrf.issue(link.removeprefix("/action/")), "op": "save",
                "title": f"ສໍາມະນາ ທີ {n} ກ່ຽວກັບການປົກຄອງທີ່ດີ", "what": "ກອງປະຊຸມສອງມື້", "why": "SDG 16",
                "months": ["3", "4"], "serves": ["sdg16"], "lead": "ກະຊວງພາຍໃນ"}, doseq=True)))
    phases = (("bare page GET", [("GET", "/bare", None)]), ("action page GET", gets), ("suggestion POST", posts))
    _wrk_phase(base, clients, 2, phases[0][1] + gets, tmp)  # warm both apps
    results = {}
    for connections, suffix in ((clients, ""), (1, ", 1 client")):
        for name, requests in phases:
            if name == "suggestion POST":  # each suggestion once: a new slice of the members for each run
                requests, posts = posts[: len(posts) // 2], posts[len(posts) // 2:]
            results[name + suffix] = _wrk_phase(base, connections, seconds, requests, tmp)
            count, duration, p50, p99, failed = results[name + suffix]
            log(f"wrk {name}{suffix}: {count} requests in {duration:.1f}s, {failed} failed")
    rows = []
    for name, (count, duration, p50, p99, failed) in results.items():
        bare = results["bare page GET" + (", 1 client" if name.endswith("1 client") else "")]
        rows.append([name, count, f"{p50:.1f}", f"{p99:.1f}", f"{count / duration:.0f}", failed,
                     f"{p50 / bare[2]:.1f}×", f"{p99 / bare[3]:.1f}×"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--gets", type=int, default=40, help="GET requests per client")
    parser.add_argument("--posts", type=int, default=10, help="POST requests per client")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx",
                        help="load generator: wrk (C, apt-get install wrk; the default when present) or httpx")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk phase")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (`roundtable web --workers`)")
    args = parser.parse_args()
    if args.quick:
        args.members, args.clients, args.gets, args.posts = 300, 10, 10, 5
    log(machine())
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        links = build(db_url, args.members)
        log(f"database ready: {args.members} members + 10 seed people, call for suggestions open")
        port = _free_port()
        env = {**os.environ, "BENCH_WEB_DB": db_url, "BENCH_WEB_NOW": NOW, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "bench_web:served_app",
                                   "--app-dir", str(Path(__file__).resolve().parent), "--host", "127.0.0.1",
                                   "--port", str(port), "--log-level", "warning", "--no-access-log",
                                   "--timeout-keep-alive", "120", "--workers", str(args.workers),
                                   *_uvicorn_flags(SERVER_OPTIONS)],
                                  env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_serving(base + "/bare", seconds=60)
            if args.client == "wrk":
                rows = run_wrk(base, links, args.clients, 3 if args.quick else args.seconds, Path(tmp))
            else:
                results = asyncio.run(run(base, links, args.clients, args.gets, args.posts))
        finally:
            server.terminate()
            server.wait(20)
    if args.client == "wrk":
        _report(args, rows, float(rows[1][3]), float(rows[2][3]))
        return
    rows = []
    for name, (latencies, seconds, failures) in results.items():
        bare = results["bare page GET" + (", 1 client" if name.endswith("1 client") else "")][0]
        rows.append([name, len(latencies), f"{_pct(latencies, 0.5):.1f}", f"{_pct(latencies, 0.99):.1f}",
                     f"{len(latencies) / seconds:.0f}", failures,
                     f"{_pct(latencies, 0.5) / _pct(bare, 0.5):.1f}×", f"{_pct(latencies, 0.99) / _pct(bare, 0.99):.1f}×"])
    _report(args, rows, _pct(results["action page GET"][0], 0.99), _pct(results["suggestion POST"][0], 0.99))


def _report(args, rows: list[list], get99: float, post99: float) -> None:
    print()
    workers = "one uvicorn worker" if args.workers == 1 else f"{args.workers} uvicorn workers"
    print(f"{args.members} members, {args.clients} concurrent clients (then 1) from {args.client}, SQLite, "
          f"{workers}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table(["request", "n", "p50 ms", "p99 ms", "req/s", "failed", "p50/bare", "p99/bare"], rows))
    print(f"goal p99 ≤ 100 ms GET: {'met' if get99 <= 100 else 'NOT met'} ({get99:.0f} ms); "
          f"≤ 150 ms POST: {'met' if post99 <= 150 else 'NOT met'} ({post99:.0f} ms)")


if __name__ == "__main__":
    main()
