"""Delivery benchmark: personalised bilingual invitations to an aiosmtpd server in another process.

    .venv/bin/python bench/bench_delivery.py [--n 5000] [--yagmail-n 300]

(a) ours: render + build beforehand into outbox rows (as the engine does at tick time; its rate is
    reported separately), then deliver_due over SMTP with SmtpTransport;
(b) raw smtplib sending the same prepared bytes on one connection;
(c) yagmail.SMTP.send per message, on a subset, rate extrapolated.
Figures, not a pass/fail test. Progress lines are printed (CI has no terminal).
"""

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import smtplib  # noqa: E402

import yagmail  # noqa: E402
from sqlmodel import Session  # noqa: E402

from models.db import make_engine, scratch_schema, upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402
from notifications.compose import CalendarPart, build_message, message_id_for  # noqa: E402
from notifications.outbox import deliver_due, enqueue  # noqa: E402
from notifications.render import render_message  # noqa: E402
from notifications.samples import sample_context  # noqa: E402
from notifications.transports import SmtpTransport  # noqa: E402
from smtp_server import SmtpServerProcess  # noqa: E402

NOW = datetime(2019, 11, 1, 1, 0, tzinfo=timezone.utc)
SENDER = "ກອງເລຂາ GSWG <roundtable@gswg.example.la>"
DOMAIN = "gswg.example.la"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def invite_ics(i: int, email: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Roundtable//bench//EN\r\nMETHOD:REQUEST\r\n"
            "BEGIN:VEVENT\r\nUID:gswg-2020-arm@gswg.example.la\r\nSEQUENCE:0\r\nDTSTAMP:20191101T010000Z\r\n"
            "DTSTART:20191113T013000Z\r\nDTEND:20191113T050000Z\r\n"
            "SUMMARY:ກອງປະຊຸມປະຈຳປີ — Annual Review Meeting\r\nLOCATION:ICTC\\, Vientiane\r\n"
            f"ORGANIZER;CN=GSWG:mailto:roundtable@{DOMAIN}\r\n"
            f"ATTENDEE;CN=Member {i};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{email}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode("utf-8")


def personalised(i: int) -> tuple[dict, str]:
    email = f"member{i:05d}@example.org"
    context = sample_context("invite")
    context["recipient"] = {**context["recipient"], "name": f"ສະມາຊິກ {i} Member {i}", "email": email}
    context["link"] = f"https://roundtable.example.org/action/rsvp.{i:05d}"
    return context, email


def prepare(n: int) -> tuple[list[tuple[str, str, bytes]], float]:
    """Render + build n invitations; returns (key, recipient, payload) and the rate."""
    prepared, started = [], time.perf_counter()
    for i in range(n):
        context, email = personalised(i)
        key = f"bench:arm:invite:{i}"
        rendered = render_message("invite", context)
        payload = build_message(rendered, sender=SENDER, to=[email], reply_to=f"secretariat@{DOMAIN}",
                                message_id=message_id_for(key, DOMAIN), date=NOW,
                                calendar=CalendarPart("REQUEST", invite_ics(i, email)))
        prepared.append((key, email, payload))
        if (i + 1) % 1000 == 0:
            say(f"  rendered + built {i + 1}/{n}")
    return prepared, n / (time.perf_counter() - started)


@contextmanager
def outbox_database(db_url: str):
    """The URL itself for SQLite; for PostgreSQL a fresh schema, dropped afterwards."""
    if not db_url.startswith("postgres"):
        yield db_url
        return
    with scratch_schema(db_url, prefix="bench") as url:
        yield url


def fill_outbox(prepared, db_url: str):
    engine = make_engine(db_url)
    upgrade(engine)
    with Session(engine) as session:
        for key, email, payload in prepared:
            enqueue(session, key=key, recipient=email, kind="invite", state="ready", due_at=NOW, next_attempt_at=NOW,
                    payload=payload, message_id=message_id_for(key, DOMAIN), created_at=NOW)
        session.commit()
    return engine


def bench_interleaved(prepared, port: int, engine, chunk: int, batch: int) -> tuple[float, float]:
    """(a) and (b) in alternating chunks of `chunk` messages, so both see the same machine load
    (others' jobs share these CPUs); returns the two rates over the whole run."""
    transport = SmtpTransport(Settings(smtp_host="127.0.0.1", smtp_port=port))
    smtp = smtplib.SMTP("127.0.0.1", port)
    ours_time = raw_time = 0.0
    sent = 0
    for start in range(0, len(prepared), chunk):
        part = prepared[start:start + chunk]
        began = time.perf_counter()
        done = 0
        while done < len(part):
            report = deliver_due(engine, transport, NOW + timedelta(minutes=1), batch=min(batch, len(part) - done))
            assert report.sent == report.claimed > 0, report
            done += report.sent
        ours_time += time.perf_counter() - began
        began = time.perf_counter()
        for _, email, payload in part:
            smtp.sendmail(f"roundtable@{DOMAIN}", [email], payload)
        raw_time += time.perf_counter() - began
        sent += len(part)
        say(f"  {sent}/{len(prepared)}: ours {sent / ours_time:.0f} msg/s, raw {sent / raw_time:.0f} msg/s so far")
    smtp.quit()
    return len(prepared) / ours_time, len(prepared) / raw_time


def bench_yagmail(n: int, port: int, workdir: Path) -> float:
    """yagmail the way its README shows: one send() per message (it builds the MIME itself)."""
    client = yagmail.SMTP(user=f"roundtable@{DOMAIN}", host="127.0.0.1", port=port, smtp_ssl=False,
                          smtp_starttls=False, smtp_skip_login=True, soft_email_validation=False)
    client.set_logging(None)
    started = time.perf_counter()
    for i in range(n):
        context, email = personalised(i)
        rendered = render_message("invite", context)
        ics_file = workdir / "invite.ics"
        ics_file.write_bytes(invite_ics(i, email))
        client.send(to=email, subject=rendered.subject, contents=[rendered.text, rendered.html],
                    attachments=[str(ics_file)], headers={"Reply-To": f"secretariat@{DOMAIN}"})
        if (i + 1) % 100 == 0:
            say(f"  yagmail sent {i + 1}/{n}")
    client.close()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--yagmail-n", type=int, default=300)
    parser.add_argument("--db", help="outbox database URL (default: a fresh SQLite file)")
    parser.add_argument("--chunk", type=int, default=500, help="messages per alternation of (a) and (b)")
    parser.add_argument("--batch", type=int, default=200, help="deliver_due batch size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SmtpServerProcess(Path(tmp) / "received.jsonl") as server:
        workdir = Path(tmp)
        say(f"aiosmtpd in process {server.process.pid} on port {server.port}; {args.n} invitations")
        say("render + build (tick time)")
        prepared, build_rate = prepare(args.n)
        db_url = args.db or f"sqlite:///{workdir / 'bench.db'}"
        with outbox_database(db_url) as url:
            engine = fill_outbox(prepared, url)
            say(f"{args.n} outbox rows ready in {engine.dialect.name}")
            say(f"(a) ours: deliver_due + SmtpTransport, and (b) raw smtplib on one connection, same bytes, "
                f"alternating every {args.chunk}")
            ours, raw = bench_interleaved(prepared, server.port, engine, args.chunk, args.batch)
            engine.dispose()
        say(f"(c) yagmail.SMTP.send per message, {args.yagmail_n} messages (rate extrapolated to {args.n})")
        yag = bench_yagmail(args.yagmail_n, server.port, workdir)
        expected = 2 * args.n + args.yagmail_n
        records = server.wait_for(expected)
        say(f"server received {len(records)} messages (expected {expected})")
    end_to_end = 1 / (1 / build_rate + 1 / ours)
    print()
    print(f"render + build (tick time) : {build_rate:8.0f} msg/s  ({1000 / build_rate:.2f} ms each)")
    print(f"(a) ours, deliver_due      : {ours:8.0f} msg/s  ({args.n} messages, outbox in {db_url.split(':')[0]})")
    print(f"    ours, render+build+send: {end_to_end:8.0f} msg/s")
    print(f"(b) raw smtplib            : {raw:8.0f} msg/s  ({args.n} messages)")
    print(f"(c) yagmail.send           : {yag:8.0f} msg/s  ({args.yagmail_n} messages, extrapolated: "
          f"{args.n / yag:.0f} s for {args.n})")
    print(f"ours/raw     = {ours / raw:.2f}  (goal >= 0.7)")
    print(f"ours/yagmail = {ours / yag:.1f}  (goal >= 3; end to end incl. render+build: {end_to_end / yag:.1f})")


if __name__ == "__main__":
    main()
