"""The web app over httpx: every page, every refusal (nothing recorded), the security headers."""

import io
import logging
from email import message_from_bytes
from email.policy import default
from datetime import timedelta

import pytest
from docx import Document as DocxDocument
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from flows.status import cycle_status
from models.tables import AnswerAudit, Cycle, Decision, Document, Member, Notification, Response, Step
from notifications.outbox import payload_of
from notifications.links import sign_action
from roundtable.web.security import Csrf, RedactTokens, redact
from tests.engine_helpers import local
from tests.web_helpers import SECRET, csrf_of, make_world


@pytest.fixture
def world(sqlite_engine):
    return make_world(sqlite_engine)


@pytest.fixture
def client(world):
    with TestClient(world.app()) as test_client:
        yield test_client


def post(client, url, **data):
    page = client.get(url)
    assert page.status_code == 200, page.text
    return client.post(url, data={"csrf": csrf_of(page.text), **data}, follow_redirects=False)


def test_suggestions_file_edit_withdraw_escaped_and_a_receipt_by_mail(world, client):
    url = world.link("m1@example.org", "call_for_suggestions", "respond")
    sent = post(client, url, op="save", title="<script>alert(1)</script> ສໍາມະນາ", what="ກອງປະຊຸມ",
                months=["2", "3"], serves=["sdg16"], serves_other="ແຜນ 5 ປີ", lead="ກະຊວງພາຍໃນ")
    assert sent.status_code == 303 and sent.headers["location"].endswith("?done=saved")
    page = client.get(sent.headers["location"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ສໍາມະນາ" in page.text and "<script>" not in page.text
    assert "ບັນທຶກແລ້ວ" in page.text
    with Session(world.engine) as session:
        suggestion = session.exec(select(Response).where(Response.kind == "suggestion")).one()
        assert suggestion.data["months"] == [2, 3] and suggestion.data["serves"] == ["sdg16"]
        receipt = session.exec(select(Notification).where(Notification.kind == "suggestion_receipt")).one()
        assert (receipt.state, receipt.recipient, receipt.due_at) == ("scheduled", "m1@example.org", world.clock())
        audit = session.exec(select(AnswerAudit)).one()
        assert (audit.channel, audit.kind, audit.action) == ("web", "suggestion", "create")
    assert world.answered == [(world.steps["call_for_suggestions"], "suggestion")]
    world.tick(world.clock())  # the receipt is written by the tick (serve wakes it after each answer)
    with Session(world.engine) as session:
        mail = message_from_bytes(payload_of(session, receipt.id), policy=default)
        assert mail["To"] == "m1@example.org" and mail["Auto-Submitted"] == "auto-generated"
        text, html = (mail.get_body((kind,)).get_content() for kind in ("plain", "html"))
        assert "<script>alert(1)</script> ສໍາມະນາ" in text and "ກອງປະຊຸມ" in text and "ກຸມພາ, ມີນາ" in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; ສໍາມະນາ" in html and "<script>" not in html
        assert "February, March" in text and "/action/respond." in text  # their own link to edit or withdraw
    # edit, then withdraw
    edit_page = client.get(f"{url}?edit={suggestion.id}")
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt; ສໍາມະນາ"' in edit_page.text
    post(client, url, op="save", id=str(suggestion.id), title="Edited")
    assert "Edited" in client.get(url).text
    assert post(client, url, op="withdraw", id=str(suggestion.id)).status_code == 303
    assert world.counts()[1] == 0


def test_no_get_changes_anything(world, client):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    world.open_step("submission_to_mpi", due=local(2020, 3, 20, 17, 0))
    links = [world.link("m1@example.org", "call_for_suggestions", "respond"),
             world.link("chair@example.org", "approval", "approve", revision=1),
             world.link("m1@example.org", "annual_review_meeting", "rsvp"),
             world.link("head@example.org", "secretariat_review", "checklist"),
             world.link("mpi@example.org", "submission_to_mpi", "receipt"),
             world.link("head@example.org", "call_for_suggestions", "status"),
             world.link("m1@example.org", "comment_round", "documents")]
    before = world.counts()
    for link in links:  # a mail scanner, without cookies, opening each twice
        for _ in range(2):
            assert client.get(link).status_code == 200, link
    with Session(world.engine) as session:
        assert session.exec(select(Notification).where(Notification.kind == "suggestion_receipt")).all() == []
    assert world.counts() == before and world.answered == []


def _tampered(link: str) -> str:
    return link[:-5] + ("A" if link[-5] != "A" else "B") + link[-4:]


def test_refusals_get_a_bilingual_page_and_record_nothing(world, client):
    url = world.link("m1@example.org", "call_for_suggestions", "respond")
    good = client.get(url)
    csrf = csrf_of(good.text)
    before = world.counts()
    cases = {
        "tampered": (_tampered(url), 403, "invalid"),
        "other-purpose": (world.link("m1@example.org", "call_for_suggestions", "approve"), 403, "wrong-purpose"),
        "relabelled": (url.replace("/action/respond.", "/action/approve."), 403, "invalid"),
        "garbage": ("/action/nonsense", 403, "invalid"),
        "other-key": ("/action/" + sign_action(
            "another-key", member_id=world.people["m1@example.org"].id, step_id=world.steps["call_for_suggestions"],
            purpose="respond"), 403, "invalid"),
    }
    for name, (link, status, code) in cases.items():
        for response in (client.get(link), client.post(link, data={"csrf": csrf, "title": "x"})):
            assert response.status_code == status, name
            assert f'data-code="{code}"' in response.text, name
            assert "ບໍ່ມີຫຍັງຖືກບັນທຶກ" in response.text and "Nothing was recorded" in response.text
    # another person's form (its CSRF token is bound to their link) posted to this link, or none at all
    other = client.get(world.link("m2@example.org", "call_for_suggestions", "respond"))
    for data in ({"csrf": csrf_of(other.text), "title": "x"}, {"title": "x"}, {"csrf": "forged", "title": "x"}):
        response = client.post(url, data=data)
        assert response.status_code == 403 and 'data-code="csrf"' in response.text
    # someone else's suggestion cannot be withdrawn through one's own link
    post(client, world.link("m2@example.org", "call_for_suggestions", "respond"), op="save", title="m2's")
    with Session(world.engine) as session:
        theirs = session.exec(select(Response)).one().id
    refused = client.post(url, data={"csrf": csrf, "op": "withdraw", "id": str(theirs)})
    assert refused.status_code == 409 and "ລາຍການນີ້ບໍ່ແມ່ນຂອງທ່ານ" in refused.text
    assert world.counts()[1] == before[1] + 1  # only m2's own suggestion
    # too large a body is refused before it is read
    big = client.post(url, data={"csrf": csrf, "title": "x" * 70_000})
    assert big.status_code == 413
    chunked = client.post(url, content=(b"title=" + b"x" * 8192 for _ in range(10)),
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert chunked.status_code == 413
    # a person not in the step's audience (MPI is not asked for suggestions)
    mpi = post(client, world.link("mpi@example.org", "call_for_suggestions", "respond"), op="save", title="x")
    assert mpi.status_code == 409 and "not among the people" in mpi.text


def test_expired_after_the_step_closes_plus_grace(world, client):
    url = world.link("m1@example.org", "call_for_suggestions", "respond")
    with Session(world.engine) as session:
        due = session.get(Step, world.steps["call_for_suggestions"]).due_at
    world.now[0] = due + timedelta(hours=2)  # late, not yet closed: kept and marked late
    late = post(client, url, op="save", title="Late one")
    assert late.status_code == 303
    csrf = csrf_of(client.get(url).text)
    world.tick(due + timedelta(hours=3))  # the call closes
    world.now[0] = due + timedelta(days=3)  # within the grace: the page shows, answers are refused
    shown = client.get(url)
    assert shown.status_code == 200 and "ຂັ້ນຕອນນີ້ປິດແລ້ວ" not in shown.text and 'name="title"' not in shown.text
    refused = client.post(url, data={"csrf": csrf, "op": "save", "title": "too late"})
    assert refused.status_code == 409 and "This step is closed" in refused.text
    world.now[0] = due + timedelta(days=30)
    expired = client.get(url)
    assert expired.status_code == 410 and 'data-code="expired"' in expired.text
    with Session(world.engine) as session:
        rows = session.exec(select(Response)).all()
        assert [(r.body, r.data.get("late")) for r in rows] == [("Late one", True)]


def test_security_headers_and_token_free_access_log(world, client):
    url = world.link("m1@example.org", "call_for_suggestions", "respond")
    for response in (client.get(url), client.get("/"), client.get("/action/x.y"), client.get("/static/style.css")):
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        csp = response.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert client.get(url).headers["cache-control"] == "no-store"
    token_path = url
    assert redact(token_path) == "/action/respond.…"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", token_path + "?done=saved", "1.1", 200), None)
    RedactTokens().filter(record)
    assert token_path.split(".", 1)[1] not in record.getMessage() and "/action/respond.…" in record.getMessage()


def test_approval_approve_once_then_the_link_shows_the_decision(world, client):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    world.now[0] = local(2020, 2, 20, 10, 0)
    url = world.link("chair@example.org", "approval", "approve", revision=1)
    page = client.get(url)
    assert "ຮັບຮອງ" in page.text and 'name="reason"' in page.text
    csrf = csrf_of(page.text)
    done = client.post(url, data={"csrf": csrf, "decision": "approve"}, follow_redirects=False)
    assert done.status_code == 303
    shown = client.get(url)
    assert 'data-decision="approve"' in shown.text and 'name="decision"' not in shown.text
    replay = client.post(url, data={"csrf": csrf, "decision": "reject", "reason": "changed my mind"})
    assert replay.status_code == 409 and "already" in replay.text
    # a reject without a reason is refused
    cochair = world.link("cochair.moj@example.org", "approval", "approve", revision=1)
    empty = post(client, cochair, decision="reject", reason="  ")
    assert empty.status_code == 422
    with Session(world.engine) as session:
        assert [(d.decision, d.plan_revision) for d in session.exec(select(Decision)).all()] == [("approve", 1)]


def test_rejection_runs_the_revision_loop_and_voids_old_links(world, client):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    now = world.now[0] = local(2020, 2, 20, 10, 0)
    old = world.link("cochair.undp@example.org", "approval", "approve", revision=1)
    assert post(client, old, decision="reject", reason="Add SDG 16").status_code == 303
    world.tick(now)
    with Session(world.engine) as session:
        assert session.get(Cycle, world.cycle_id).plan_revision == 2
    voided = client.get(world.link("chair@example.org", "approval", "approve", revision=1))
    assert voided.status_code == 410 and 'data-code="voided"' in voided.text
    new = world.link("chair@example.org", "approval", "approve", revision=2)
    assert "ແຜນກໍາລັງຖືກປັບປຸງ" in client.get(new).text  # awaiting the revised plan: no buttons
    with Session(world.engine) as session:
        staff = session.exec(select(Member).where(Member.email == "staff@example.org")).one()
        from flows.answers import record_revision

        record_revision(session=session, member_id=staff.id, step_id=world.steps["approval"], now=now,
                        channel="cli", revision=2)
        session.commit()
    world.tick(now + timedelta(minutes=1))
    world.now[0] = now + timedelta(hours=1)
    assert post(client, new, decision="approve").status_code == 303
    with Session(world.engine) as session:
        requests = session.exec(select(Notification).where(Notification.kind == "approval_request",
                                                           Notification.revision == 2)).all()
        assert requests  # the revised plan went out again
        assert {(d.decision, d.plan_revision) for d in session.exec(select(Decision)).all()} == {
            ("reject", 1), ("approve", 2)}


def test_rsvp_decline_shows_in_status(world, client):
    url = world.link("m4@example.org", "annual_review_meeting", "rsvp")
    assert post(client, url, partstat="DECLINED", reason="ເດີນທາງ").status_code == 303
    assert "ບໍ່ເຂົ້າຮ່ວມ" in client.get(url).text
    with Session(world.engine) as session:
        status = cycle_status(session, session.get(Cycle, world.cycle_id))
    meeting = next(s for s in status["steps"] if s["key"] == "annual_review_meeting")
    assert meeting["rsvp"]["DECLINED"] == ["m4@example.org"]
    page = client.get(world.link("head@example.org", "annual_review_meeting", "status"))
    assert 'data-partstat="DECLINED"' in page.text and "m4@example.org" in page.text
    assert "data-satisfaction" not in page.text  # no survey answers yet


def test_survey_once_minutes_upload_checklist_receipt_and_documents(world, client):
    with Session(world.engine) as session:
        ends = session.get(Step, world.steps["annual_review_meeting"]).ends_at
    world.now[0] = ends + timedelta(hours=1)
    survey = world.link("m1@example.org", "annual_review_meeting", "survey")
    scores = {"score_overall": "4", "score_agenda": "5", "score_discussion": "3", "score_organisation": "4"}
    csrf = csrf_of(client.get(survey).text)
    assert client.post(survey, data={"csrf": csrf, "comment": "ດີ", **scores}).status_code == 200  # redirected
    assert "ທ່ານໄດ້ຕອບແບບສອບຖາມນີ້ແລ້ວ" in client.get(survey).text
    status_page = client.get(world.link("head@example.org", "annual_review_meeting", "status")).text
    assert 'data-satisfaction="80"' in status_page  # overall 4 of 5, as the seed's table reports it
    again = client.post(survey, data={"csrf": csrf, **scores})  # the same form sent twice
    assert again.status_code == 409

    minutes = world.link("staff@example.org", "annual_review_meeting", "minutes")
    page = client.get(minutes)
    bad = client.post(minutes, data={"csrf": csrf_of(page.text)}, files={"file": ("m.pdf", b"MZ not a pdf")})
    assert bad.status_code == 422
    buffer = io.BytesIO()
    DocxDocument().save(buffer)
    ok = client.post(minutes, data={"csrf": csrf_of(page.text)},
                     files={"file": ("ບົດບັນທຶກ.docx", buffer.getvalue())}, follow_redirects=False)
    assert ok.status_code == 303
    with Session(world.engine) as session:
        document = session.exec(select(Document).where(Document.kind == "minutes")).one()
    download = client.get(f"{minutes}/file/{document.id}")
    assert download.status_code == 200 and download.content == buffer.getvalue()
    assert client.get(f"{minutes}/file/999999").status_code == 404

    world.open_step("secretariat_review", due=local(2020, 1, 22, 17, 0))
    world.now[0] = local(2020, 1, 16, 9, 0)
    checklist = world.link("head@example.org", "secretariat_review", "checklist")
    assert post(client, checklist, accepted="3", merged="1", rejected="0").status_code == 303
    assert post(client, checklist, accepted="x", merged="1", rejected="0").status_code == 422

    world.open_step("submission_to_mpi", due=local(2020, 3, 20, 17, 0))
    world.now[0] = local(2020, 3, 16, 9, 0)
    receipt = world.link("mpi@example.org", "submission_to_mpi", "receipt")
    csrf = csrf_of(client.get(receipt).text)
    assert client.post(receipt, data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert "ທ່ານໄດ້ຢືນຢັນການໄດ້ຮັບແລ້ວ" in client.get(receipt).text
    assert client.post(receipt, data={"csrf": csrf}).status_code == 409
    # read-only purposes take no POST
    status = world.link("head@example.org", "submission_to_mpi", "status")
    form = Csrf(SECRET).issue(status.removeprefix("/action/"))  # a valid form token: the refusal is the purpose's
    assert client.post(status, data={"csrf": form}).status_code == 405
    with Session(world.engine) as session:
        kinds = [a.kind for a in session.exec(select(AnswerAudit).order_by(AnswerAudit.id)).all()]
    assert kinds == ["survey", "minutes", "checklist", "receipt"]


def test_comments_on_the_draft_table_and_english_first(world, client):
    with Session(world.engine) as session:
        member = session.exec(select(Member).where(Member.email == "m4@example.org")).one()
        member.language = "en"
        session.add(member)
        session.commit()
    world.open_step("comment_round", due=local(2020, 2, 10, 17, 0))
    world.now[0] = local(2020, 2, 3, 9, 0)
    url = world.link("m4@example.org", "comment_round", "respond")
    page = client.get(url)
    assert page.text.index("Comment on the draft 2020 work plan") < page.text.index("ໃຫ້ຄໍາເຫັນຕໍ່ຮ່າງແຜນວຽກປີ 2020")
    assert '<html lang="en">' in page.text
    assert post(client, url, activity="", body="Add a budget line").status_code == 303
    assert "Add a budget line" in client.get(url).text


def test_a_suggestion_and_a_decision_on_both_databases(engine):
    """SQLite runs pages on the event loop, PostgreSQL in the thread pool: both record the same."""
    world = make_world(engine)
    with TestClient(world.app()) as client:
        assert post(client, world.link("m2@example.org", "call_for_suggestions", "respond"),
                    op="save", title="ສໍາມະນາ").status_code == 303
        world.open_step("approval", due=local(2020, 3, 1, 17, 0))
        world.now[0] = local(2020, 2, 20, 10, 0)
        link = world.link("chair@example.org", "approval", "approve", revision=1)
        assert post(client, link, decision="approve").status_code == 303
        assert 'data-decision="approve"' in client.get(link).text
    assert world.counts() == (2, 1, 1)
