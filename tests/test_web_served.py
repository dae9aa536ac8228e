"""End to end: a simulated cycle stopped in its approval step, served by `roundtable web`; a chair takes
the link out of the mail they got, opens it, and approves. The access log never shows the token."""

import email
import email.policy
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from sqlmodel import Session, select

from models.db import make_engine
from models.tables import AnswerAudit, Decision, Member
from tests.web_helpers import csrf_of, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(http://127\.0\.0\.1:\d+)(/action/[A-Za-z0-9._-]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _links_in(eml: Path) -> list[str]:
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    return [m.group(2) for m in LINK.finditer(message.get_body(("plain",)).get_content())]


def test_a_simulated_cycle_is_served_and_answered_from_its_mail(tmp_path):
    out, port = tmp_path / "sim", _free_port()
    env = {**os.environ, "ROUNDTABLE_BASE_URL": f"http://127.0.0.1:{port}", "PYTHONIOENCODING": "utf-8"}
    subprocess.run([sys.executable, "-m", "roundtable.cli", "simulate", "--definition", str(ROOT / "cycles/gswg.yaml"),
                    "--roster", str(ROOT / "examples/roster.csv"), "--year", "2020",
                    "--anchor", "annual_meeting=2019-11-13", "--out", str(out), "--until", "2020-02-26T12:00"],
                   check=True, env=env, capture_output=True, cwd=tmp_path, timeout=300)
    assert (out / "secret_key").is_file()  # no key configured: the simulation's own, for `roundtable web`
    requests = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    chair_mail = next(r for r in requests if r["kind"] == "approval_request" and "chair@" in r["to"][0]
                      and "cochair" not in r["to"][0])
    (link,) = {x for x in _links_in(out / chair_mail["file"]) if x.startswith("/action/approve.")}

    env["ROUNDTABLE_DATABASE_URL"] = f"sqlite:///{out / 'roundtable.db'}"
    server = subprocess.Popen([sys.executable, "-m", "roundtable.cli", "web", "--port", str(port)], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base + "/")
        with httpx.Client(base_url=base) as client:
            page = client.get(link)
            assert page.status_code == 200 and "ຮັບຮອງ" in page.text
            done = client.post(link, data={"csrf": csrf_of(page.text), "decision": "approve"})
            assert done.status_code == 303
            assert 'data-decision="approve"' in client.get(link).text
            # every other link in the mail gets a page (answer, or a clear refusal), never an error
            for eml in sorted((out / "mail").glob("*.eml"))[::25]:
                for other in _links_in(eml):
                    assert client.get(other).status_code in (200, 410), other
    finally:
        server.terminate()
        log = server.communicate(timeout=20)[0]
    token = link.split(".", 1)[1]
    assert "/action/approve.…" in log and token not in log and token[:20] not in log
    engine = make_engine(env["ROUNDTABLE_DATABASE_URL"])
    with Session(engine) as session:
        chair = session.exec(select(Member).where(Member.email == chair_mail["to"][0])).one()
        decision = session.exec(select(Decision).where(Decision.member_id == chair.id)).one()
        assert decision.decision == "approve" and decision.plan_revision == 1
        audit = session.exec(select(AnswerAudit).where(AnswerAudit.kind == "decision")).one()
        assert audit.channel == "web" and audit.member_id == chair.id
    engine.dispose()


def test_web_with_two_workers_serves_and_answers(tmp_path):
    """`roundtable web --workers 2`: each worker process builds its app from the settings and --now."""
    from flows.tick import tick
    from models.db import upgrade
    from models.tables import Response, Step
    from notifications.links import sign_action
    from tests.engine_helpers import CONFIG, local, seed_people, start_gswg

    url, secret, port = f"sqlite:///{tmp_path / 'roundtable.db'}", "w" * 40, _free_port()
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        tick(session, local(2019, 11, 1, 9, 0), CONFIG)
        session.commit()
        call = session.exec(select(Step).where(Step.cycle_id == cycle.id, Step.key == "call_for_suggestions")).one()
        member = people["m1@example.org"]
    link = f"/action/{sign_action(secret, member_id=member.id, step_id=call.id, purpose='respond')}"
    env = {**os.environ, "ROUNDTABLE_DATABASE_URL": url, "ROUNDTABLE_SECRET_KEY": secret, "PYTHONIOENCODING": "utf-8"}
    server = subprocess.Popen([sys.executable, "-m", "roundtable.cli", "web", "--port", str(port), "--workers", "2",
                               "--now", "2019-11-04T10:00:00+07:00"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base + "/", seconds=60)
        for n in range(6):  # new connections: both workers take some
            with httpx.Client(base_url=base) as client:
                page = client.get(link)
                assert page.status_code == 200 and "ສະເໜີກິດຈະກໍາໃໝ່" in page.text
                done = client.post(link, data={"csrf": csrf_of(page.text), "op": "save", "title": f"ກິດຈະກໍາ {n}"})
                assert done.status_code == 303
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert log.count("Started server process") == 2, log
    with Session(engine) as session:
        assert len(session.exec(select(Response).where(Response.member_id == member.id)).all()) == 6
        assert len(session.exec(select(AnswerAudit).where(AnswerAudit.member_id == member.id)).all()) == 6
    engine.dispose()
