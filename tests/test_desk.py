"""The secretariat's desk over HTTP (httpx): sign-in by one-time link, who sees what, the review into
the plan, the outbox actions, the audit trail, uploads and the calendar feeds."""

import io
import re
from email import message_from_bytes, policy
from datetime import timedelta

import pytest
from docx import Document as DocxDocument
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows import answers
from flows.documents import documents_for
from flows.state import CycleState
from models.tables import (AnswerAudit, Cycle, Disposition, Document, Member, Membership, Notification,
                           NotificationPayload, PlanActivity, SignIn, Step, WorkingGroup)
from roundtable.cli import app as cli
from flows.desk import sign_in_link
from tests.engine_helpers import local
from tests.web_helpers import CSRF, SECRET, make_world

BASE = "https://rt.example.org"
REVIEW = local(2020, 1, 9, 10, 0)


def make_desk_world(engine):
    """The web test world at the secretariat review: three suggestions filed, a PSI secretariat (m3)."""
    world = make_world(engine)
    with Session(engine) as session:
        for email, title in (("m1@example.org", "ສໍາມະນາ SDG 16 — Seminar on SDG 16"),
                             ("m2@example.org", "Seminar on SDG 16, again"), ("m3@example.org", "English courses")):
            answers.record_suggestion(session=session, member_id=world.people[email].id,
                                      step_id=world.steps["call_for_suggestions"], now=world.now[0], channel="web",
                                      title=title, months=[4])
        psi = session.exec(select(WorkingGroup).where(WorkingGroup.code == "PSI")).one()
        session.add(Membership(member_id=world.people["m3@example.org"].id, group_id=psi.id, role="secretariat"))
        session.commit()
    world.now[0] = REVIEW
    world.tick(REVIEW)
    return world


@pytest.fixture
def world(sqlite_engine):
    return make_desk_world(sqlite_engine)


def _client(world) -> TestClient:
    return TestClient(world.app(base_url=BASE), base_url="https://testserver")


def _sign_in(world, client, email) -> None:
    with Session(world.engine) as session:
        member = session.get(Member, world.people[email].id)
        link = sign_in_link(session, SECRET, BASE, member, world.now[0])
        session.commit()
    path = link.removeprefix(BASE)
    shown = client.get(path)
    assert shown.status_code == 200
    used = client.post(path, data={"csrf": CSRF.search(shown.text).group(1)}, follow_redirects=False)
    assert used.status_code == 303 and used.headers["location"] == "/desk"


def _csrf(client, url) -> str:
    return CSRF.search(client.get(url).text).group(1)


def test_login_mails_a_one_time_link_to_desk_people_only(world):
    client = _client(world)
    form = client.get("/login")
    token = CSRF.search(form.text).group(1)
    for email in ("staff@example.org", "m1@example.org", "nobody@example.org"):
        answer = client.post("/login", data={"csrf": token, "email": email}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login?done=sent"  # the same either way
    assert client.post("/login", data={"email": "staff@example.org"}).status_code == 403  # no CSRF token
    with Session(world.engine) as session:
        mails = session.exec(select(Notification).where(Notification.kind == "sign_in")).all()
        assert [m.recipient for m in mails] == ["staff@example.org"] and mails[0].state == "ready"
        mail = message_from_bytes(session.get(NotificationPayload, mails[0].id).payload, policy=policy.default)
    text = mail.get_body(("plain",)).get_content()
    assert "15" in text and "ເຂົ້າສູ່" in text
    link = re.search(r"https://rt\.example\.org(/login/\S+)", text).group(1)
    shown = client.get(link)  # a mail scanner's GET signs nobody in
    assert shown.status_code == 200 and "rt_desk" not in shown.headers.get("set-cookie", "")
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/login"
    used = client.post(link, data={"csrf": CSRF.search(shown.text).group(1)}, follow_redirects=False)
    cookie = used.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "GSWG 2020" in client.get("/desk").text
    again = client.post(link, data={"csrf": CSRF.search(shown.text).group(1)})
    assert again.status_code == 410 and "used" in again.text


def test_a_form_sent_again_and_again_mails_three_links_a_quarter_hour(world):
    client = _client(world)
    token = CSRF.search(client.get("/login").text).group(1)

    def ask() -> None:
        answer = client.post("/login", data={"csrf": token, "email": "head@example.org"}, follow_redirects=False)
        assert answer.headers["location"] == "/login?done=sent"  # the page never tells that one was held back

    def mailed() -> int:
        with Session(world.engine) as session:
            return len(session.exec(select(Notification).where(Notification.kind == "sign_in")).all())

    for _ in range(10):
        ask()
    assert mailed() == 3
    world.now[0] += timedelta(minutes=16)  # the first three have expired: a new one may go
    ask()
    assert mailed() == 4


def test_a_link_expires_after_15_minutes_and_a_forged_cookie_is_nobody(world):
    client = _client(world)
    with Session(world.engine) as session:
        link = sign_in_link(session, SECRET, BASE, session.get(Member, world.people["head@example.org"].id),
                            world.now[0]).removeprefix(BASE)
        session.commit()
    csrf = CSRF.search(client.get(link).text).group(1)
    world.now[0] = REVIEW + timedelta(minutes=16)
    late = client.post(link, data={"csrf": csrf})
    assert late.status_code == 410 and "15" in late.text
    assert client.get("/login/not-a-token").status_code == 403
    client.cookies.set("rt_desk", "eyJtIjo1LCJpIjoxfQ.forged.signature")
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/login"
    with Session(world.engine) as session:
        assert session.exec(select(SignIn)).one().used_at is None


def test_other_groups_cannot_see_the_desk_and_a_chair_only_views(world):
    psi = _client(world)
    _sign_in(world, psi, "m3@example.org")  # secretariat of PSI, not of GSWG
    assert "GSWG 2020" not in psi.get("/desk").text
    assert psi.get(f"/desk/{world.cycle_id}").status_code == 403
    assert psi.get(f"/desk/{world.cycle_id}/plan").status_code == 403
    assert psi.get(f"/desk/{world.cycle_id}/export.docx").status_code == 403
    chair = _client(world)
    _sign_in(world, chair, "chair@example.org")
    page = chair.get(f"/desk/{world.cycle_id}/plan")
    assert page.status_code == 200 and "/dispose/" not in page.text
    refused = chair.post(f"/desk/{world.cycle_id}/activities", data={"csrf": CSRF.search(page.text).group(1),
                                                                      "title_en": "x", "start_month": "3"})
    assert refused.status_code == 409 and "view" in refused.text
    with Session(world.engine) as session:
        assert session.exec(select(PlanActivity)).first() is None


def test_the_secretariat_carries_the_review_into_the_plan(world):
    client = _client(world)
    _sign_in(world, client, "staff@example.org")
    plan_url = f"/desk/{world.cycle_id}/plan"
    page = client.get(plan_url)
    ids = re.findall(r'action="/desk/\d+/dispose/(\d+)"', page.text)
    csrf = CSRF.search(page.text).group(1)
    assert len(ids) == 3 and client.post(f"/desk/{world.cycle_id}/dispose/{ids[0]}",
                                         data={"outcome": "accepted"}).status_code == 403  # no CSRF token
    client.post(f"/desk/{world.cycle_id}/dispose/{ids[0]}", data={"csrf": csrf, "outcome": "accepted"})
    with Session(world.engine) as session:
        activity = session.exec(select(PlanActivity)).one()
    client.post(f"/desk/{world.cycle_id}/dispose/{ids[1]}", data={"csrf": csrf, "outcome": "merged",
                                                                  "into": str(activity.id)})
    no_reason = client.post(f"/desk/{world.cycle_id}/dispose/{ids[2]}", data={"csrf": csrf, "outcome": "rejected"})
    assert no_reason.status_code == 409 and "reason is required" in no_reason.text
    early = client.post(f"/desk/{world.cycle_id}/close-review", data={"csrf": csrf})
    assert early.status_code == 409 and "still have no disposition" in early.text
    client.post(f"/desk/{world.cycle_id}/dispose/{ids[2]}", data={"csrf": csrf, "outcome": "rejected",
                                                                  "reason": "Outside our remit"})
    added = client.post(f"/desk/{world.cycle_id}/activities", follow_redirects=False, data={
        "csrf": csrf, "title_lo": "ກອງປະຊຸມປະຈຳປີ", "title_en": "Annual review meeting", "start_month": "11",
        "end_month": "11", "group_code": "GSWG", "lead": "MoHA", "serves": ["rtim-2019", "sdg16"],
        "meeting": "on", "budget": "5000", "budget_source": "UNDP"})
    assert added.status_code == 303
    bad = client.post(f"/desk/{world.cycle_id}/activities", data={"csrf": csrf, "title_en": "x", "start_month": "9",
                                                                  "end_month": "2"})
    assert bad.status_code == 409 and "before the start" in bad.text
    closed = client.post(f"/desk/{world.cycle_id}/close-review", data={"csrf": csrf}, follow_redirects=False)
    assert closed.headers["location"].endswith("done=closed") and world.answered[-1][1] == "desk"
    page = client.get(plan_url)
    assert page.text.count('class="card activity"') == 2 and "Outside our remit" in page.text
    with Session(world.engine) as session:
        assert [d.outcome for d in session.exec(select(Disposition).order_by(Disposition.id))] == \
            ["accepted", "merged", "rejected"]
        added = session.exec(select(PlanActivity).where(PlanActivity.title_en == "Annual review meeting")).one()
        assert (added.serves, added.meeting, added.budget) == (["rtim-2019", "sdg16"], True, 5000.0)
        audit = session.exec(select(AnswerAudit).where(AnswerAudit.channel == "web",
                                                       AnswerAudit.kind.in_(("disposition", "activity", "checklist")))
                             ).all()
        assert len(audit) == 5
    exported = client.get(f"/desk/{world.cycle_id}/export.docx?kind=draft_plan")
    table = DocxDocument(io.BytesIO(exported.content)).tables[0]
    assert [row.cells[2].text for row in table.rows[1:]] == ["Seminar on SDG 16", "Annual review meeting"]
    xlsx = client.get(f"/desk/{world.cycle_id}/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    csv = client.get(f"/desk/{world.cycle_id}/audit.csv?kind=plan").content.decode("utf-8-sig")
    assert csv.splitlines()[0] == "at,who,what,action,channel,late,detail"
    assert "disposition" in csv and "suggestion,create" not in csv
    everything = client.get(f"/desk/{world.cycle_id}/audit.csv").content.decode("utf-8-sig")
    assert "suggestion,create" in everything and "sign-in,sign-in" in everything


def test_dashboard_timeline_outbox_retry_resend_and_paused_reminders(world):
    client = _client(world)
    _sign_in(world, client, "head@example.org")
    with Session(world.engine) as session:
        sent = session.exec(select(Notification).where(Notification.state == "sent")).first()
        assert sent is None  # the test world renders, it does not deliver: make one sent and one failed
        rows = session.exec(select(Notification).where(Notification.state == "ready")
                            .order_by(Notification.id)).all()
        rows[0].state, rows[0].sent_at = "sent", REVIEW - timedelta(days=60)
        rows[1].state, rows[1].last_error = "failed", "550 5.1.1 mailbox unavailable"
        failed_id, sent_id, sent_to = rows[1].id, rows[0].id, rows[0].recipient
        session.commit()
    dash_url = f"/desk/{world.cycle_id}"
    page = client.get(dash_url)
    assert 'data-step="secretariat_review" data-state="open"' in page.text
    assert "550 5.1.1 mailbox unavailable" in page.text and "ປະທານ ກະຊວງພາຍໃນ" in page.text  # who has not answered
    csrf = CSRF.search(page.text).group(1)
    client.post(f"{dash_url}/outbox/{failed_id}/retry", data={"csrf": csrf})
    assert client.post(f"{dash_url}/outbox/{sent_id}/retry", data={"csrf": csrf}).status_code == 409
    assert f"/outbox/{sent_id}/resend" in client.get(f"{dash_url}?to={sent_to}").text
    messages = client.get(f"{dash_url}/audit.csv?kind=messages").content.decode("utf-8-sig").splitlines()
    assert len(messages) == 2 and f"{sent_to},message: " in messages[1]
    client.post(f"{dash_url}/outbox/{sent_id}/resend", data={"csrf": csrf})
    review = world.steps["secretariat_review"]
    client.post(f"{dash_url}/steps/{review}/pause", data={"csrf": csrf})
    with Session(world.engine) as session:
        assert session.get(Notification, failed_id).state == "ready"
        assert session.get(Notification, sent_id).state == "ready"
        assert session.get(Step, review).data["reminders_paused"] is True
        reminder = session.exec(select(Notification).where(Notification.step_id == review,
                                                           Notification.kind == "reminder")).first()
        due = reminder.due_at
        actions = [(a.kind, a.action)
                   for a in session.exec(select(AnswerAudit).where(AnswerAudit.kind != "suggestion"))]
        assert actions == [("message", "retry"), ("message", "resend"), ("reminders", "pause")]
    world.tick(due + timedelta(minutes=1))
    with Session(world.engine) as session:
        assert {n.state for n in session.exec(select(Notification).where(Notification.step_id == review,
                                                                         Notification.kind == "reminder",
                                                                         Notification.due_at <= due))} == {"skipped"}
    client.post(f"{dash_url}/steps/{review}/resume", data={"csrf": csrf})
    with Session(world.engine) as session:
        assert session.get(Step, review).data["reminders_paused"] is False


def test_the_dashboard_trail_is_the_newest_of_the_whole_trail(world):
    from flows.desk import audit_trail

    _sign_in(world, _client(world), "head@example.org")
    with Session(world.engine) as session:
        ready = session.exec(select(Notification).where(Notification.state == "ready")
                             .order_by(Notification.id)).all()
        for row, sent_at in zip(ready, (REVIEW - timedelta(days=1), REVIEW, REVIEW)):  # moments shared with others
            row.state, row.sent_at = "sent", sent_at
        session.commit()
        cycle = session.get(Cycle, world.cycle_id)
        whole = audit_trail(session, cycle, REVIEW)
        assert {"suggestion", "sign-in"} <= {row["what"] for row in whole}
        assert sum(row["what"].startswith("message: ") for row in whole) == 3
        for limit in range(1, len(whole) + 2):  # each source asked for `limit` rows at most, the names read after
            assert audit_trail(session, cycle, REVIEW, limit=limit) == whole[:limit]


def _docx_bytes(text: str) -> bytes:
    document = DocxDocument()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_an_uploaded_docx_goes_out_for_its_revision(world):
    client = _client(world)
    _sign_in(world, client, "staff@example.org")
    plan_url = f"/desk/{world.cycle_id}/plan"
    csrf = _csrf(client, plan_url)
    upload = f"/desk/{world.cycle_id}/upload"
    refused = client.post(upload, data={"csrf": csrf, "kind": "work_plan"},
                          files={"document": ("plan.pdf", b"%PDF-1.4 not a docx", "application/pdf")})
    assert refused.status_code == 409 and "not a Word" in refused.text
    content = _docx_bytes("The polished plan")
    done = client.post(upload, data={"csrf": csrf, "kind": "work_plan"}, follow_redirects=False,
                       files={"document": ("Polished plan.docx", content, "application/octet-stream")})
    assert done.status_code == 303
    with Session(world.engine) as session:
        cycle = session.get(Cycle, world.cycle_id)
        files = documents_for(CycleState(session, cycle), "work_plan", 1, REVIEW)
        assert files[0] == ("GSWG-2020-work-plan-r1-edited.docx", files[0][1], content)
        assert files[1][0] == "GSWG-2020-work-plan-r1.xlsx"
        stored = session.exec(select(Document).where(Document.source == "uploaded")).one()
        assert stored.path == "Polished plan.docx" and len(stored.checksum) == 64
        session.commit()
    page = client.get(plan_url)
    assert "GSWG-2020-work-plan-r1-edited.docx" in page.text and "uploaded" in page.text


def test_calendar_feeds_over_http_with_etag(world):
    client = _client(world)
    _sign_in(world, client, "staff@example.org")
    page = client.get(f"/desk/{world.cycle_id}").text
    urls = re.findall(r'href="webcal://rt\.example\.org(/feeds/[^"]+\.ics)"', page)
    assert len(urls) == 4  # GSWG, LIO, PSI and the person's own
    anonymous = TestClient(world.app(base_url=BASE))  # a calendar app: no cookie, only the secret URL
    first = anonymous.get(urls[0])
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/calendar")
    assert b"BEGIN:VCALENDAR" in first.content
    world.now[0] = REVIEW + timedelta(minutes=5)  # a later DTSTAMP does not change the ETag
    again = anonymous.get(urls[0], headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert anonymous.get("/feeds/forged.ics").status_code == 404


def test_cli_prints_a_login_link(world, monkeypatch, tmp_path):
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", str(world.engine.url))
    monkeypatch.setenv("ROUNDTABLE_SECRET_KEY", SECRET)
    monkeypatch.setenv("ROUNDTABLE_BASE_URL", BASE)
    runner = CliRunner()
    result = runner.invoke(cli, ["web", "login-link", "Head@Example.org", "--now", "2020-01-09T10:00"])
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith(f"{BASE}/login/"), result.output
    client = _client(world)
    shown = client.get(link.removeprefix(BASE))
    assert shown.status_code == 200 and "head@example.org" in shown.text
    for email, words in (("m1@example.org", "not secretariat"), ("nobody@example.org", "no member")):
        refused = runner.invoke(cli, ["web", "login-link", email])
        assert refused.exit_code == 2 and words in refused.output


def test_a_rejection_reopens_editing_with_the_reason_and_the_revision_goes_out(world):
    from models.tables import Decision

    client = _client(world)
    _sign_in(world, client, "staff@example.org")
    with Session(world.engine) as session:
        approval = session.get(Step, world.steps["approval"])
        approval.state = "open"
        session.add(Decision(step_id=approval.id, member_id=world.people["cochair.moj@example.org"].id,
                             decision="reject", reason="ກະລຸນາເພີ່ມ SDG 16 — Please add SDG 16", plan_revision=1,
                             at=REVIEW))
        session.commit()
    plan_url = f"/desk/{world.cycle_id}/plan"
    csrf = _csrf(client, plan_url)
    held = client.post(f"/desk/{world.cycle_id}/activities", data={"csrf": csrf, "title_en": "x", "start_month": "3"})
    assert held.status_code == 409 and "with the chair and co-chairs" in held.text
    world.tick(REVIEW + timedelta(minutes=1))  # the engine reads the rejection: revision 2 awaited
    page = client.get(plan_url)
    assert "Please add SDG 16" in page.text and 'class="revision">2<' in page.text
    client.post(f"/desk/{world.cycle_id}/activities", data={"csrf": csrf, "title_en": "SDG 16 seminar",
                                                            "start_month": "4", "serves": ["sdg16"]})
    sent = client.post(f"/desk/{world.cycle_id}/send-revision", data={"csrf": csrf}, follow_redirects=False)
    assert sent.headers["location"].endswith("done=revised")
    with Session(world.engine) as session:
        assert session.exec(select(PlanActivity)).one().revision == 2
        revision = session.exec(select(AnswerAudit).where(AnswerAudit.kind == "revision")).one()
        assert revision.channel == "web" and revision.detail == {"revision": 2}


def test_the_comment_page_shows_the_draft_docx_not_the_xlsx_beside_it(world):
    client = _client(world)
    with Session(world.engine) as session:
        staff = world.people["staff@example.org"].id
        from flows import plan

        plan.add_activity(session, member_id=staff, cycle_id=world.cycle_id, now=REVIEW, channel="cli",
                          values=plan.ActivityFields(title_lo="ກອງປະຊຸມວິຊາການ", title_en="Thematic workshop",
                                                     start_month=5))
        files = documents_for(CycleState(session, session.get(Cycle, world.cycle_id)), "draft_plan", 1, REVIEW)
        assert [name.rsplit(".", 1)[1] for name, _, _ in files] == ["docx", "xlsx"]
        session.commit()
    world.open_step("comment_round")
    page = client.get(world.link("m1@example.org", "comment_round", "respond"))
    assert page.status_code == 200 and "Thematic workshop" in page.text
    assert 'value="ກອງປະຊຸມວິຊາການ"' in page.text  # a comment can name the activity
