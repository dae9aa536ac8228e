"""The demo tells the whole story of the plan: the simulated secretariat disposes of the suggestions
through flows.answers, the plan is the seed's 2020 plan, and the documents that go out hold it."""

import io
from email import policy
from email.parser import BytesParser

from docx import Document as DocxDocument
from openpyxl import load_workbook
from sqlmodel import Session, select
from typer.testing import CliRunner

from flows import plan
from flows.simulate_desk import DEMO_PLAN, REJECTED
from models.db import make_engine
from models.tables import AnswerAudit, Disposition, Response
from roundtable.cli import app
from tests.test_demo import demo  # noqa: F401 - the demo, run once for this module


def _attachments(path):
    mail = BytesParser(policy=policy.default).parse(path.open("rb"))
    return {part.get_filename(): part.get_content() for part in mail.iter_attachments() if part.get_filename()}


def _seed_titles():
    return [(entry["values"].title_lo, entry["values"].title_en) for entry in plan.load_plan(DEMO_PLAN)]


def _activity_texts(content: bytes) -> list[str]:
    table = DocxDocument(io.BytesIO(content)).tables[0]
    return [cell.text for row in table.rows[1:] for cell in row.cells]


def test_the_secretariat_disposed_of_every_suggestion_through_the_answers_module(demo):
    out, _messages, _output = demo
    engine = make_engine(f"sqlite:///{out / 'roundtable.db'}")
    with Session(engine) as session:
        suggestions = session.exec(select(Response).where(Response.kind == "suggestion")).all()
        dispositions = session.exec(select(Disposition)).all()
        assert len(suggestions) > 20 and len(dispositions) == len(suggestions)
        outcomes = {d.outcome for d in dispositions}
        assert outcomes == {"accepted", "merged", "rejected"}
        assert all(d.reason == REJECTED for d in dispositions if d.outcome == "rejected")
        audits = session.exec(select(AnswerAudit).where(AnswerAudit.kind == "disposition")).all()
        assert len(audits) == len(dispositions) and {a.channel for a in audits} == {"simulator"}
        checklist = session.exec(select(Response).where(Response.kind == "checklist")).all()
        assert len(checklist) == 1 and sum(checklist[0].data.values()) == len(suggestions)
        titles = [(a.title_lo, a.title_en) for a in plan.activities(session, 1)]
        assert sorted(titles) == sorted(_seed_titles())  # the demo's plan is the seed's
    engine.dispose()


def test_the_documents_that_go_out_hold_the_plan(demo):
    out, messages, _output = demo
    comment_call = next(m for m in messages if m["step"] == "comment_round" and m["kind"] == "call")
    draft = _attachments(out / comment_call["file"])
    assert sorted(draft) == ["GSWG-2020-draft-plan-r1.docx", "GSWG-2020-draft-plan-r1.xlsx", "deadline.ics"]
    submission = next(m for m in messages if m["kind"] == "submission")
    sent = _attachments(out / submission["file"])
    docx = next(content for name, content in sent.items() if name.endswith("-approved.docx"))
    xlsx = next(content for name, content in sent.items() if name.endswith("-approved.xlsx"))
    texts = _activity_texts(docx)
    values = [c.value for row in load_workbook(io.BytesIO(xlsx))["Activities"].iter_rows() for c in row if c.value]
    for title_lo, title_en in _seed_titles():
        assert texts.count(title_lo) == texts.count(title_en) == 1
        assert values.count(title_lo) == values.count(title_en) == 1
    body = "\n".join(p.text for p in DocxDocument(io.BytesIO(docx)).paragraphs)
    assert "Approved on" in body and "ຮັບຮອງວັນທີ" in body


def test_plan_export_writes_both_documents(demo, monkeypatch, tmp_path):
    out, _messages, _output = demo
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", f"sqlite:///{out / 'roundtable.db'}")
    runner = CliRunner()
    for fmt in ("docx", "xlsx"):
        target = tmp_path / f"plan.{fmt}"
        result = runner.invoke(app, ["plan", "export", "--group", "GSWG", "--year", "2020", "--format", fmt,
                                     "--out", str(target)])
        assert result.exit_code == 0, result.output
        assert "10 activities" in result.output and target.stat().st_size > 5000
    assert len(_activity_texts((tmp_path / "plan.docx").read_bytes())) == 10 * 8
    bad = runner.invoke(app, ["plan", "export", "--format", "pdf", "--out", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and "docx or xlsx" in bad.output and not (tmp_path / "x.pdf").exists()
    none = runner.invoke(app, ["plan", "export", "--group", "PSI", "--format", "docx", "--out", str(tmp_path / "y")])
    assert none.exit_code == 2 and "no cycle for group PSI" in none.output
    shown = runner.invoke(app, ["plan", "show"])
    assert shown.exit_code == 0 and "without a disposition 0" in shown.output


def test_each_author_is_told_what_became_of_their_suggestions(demo):
    out, messages, _output = demo
    told = [m for m in messages if m["kind"] == "review_outcome"]
    engine = make_engine(f"sqlite:///{out / 'roundtable.db'}")
    with Session(engine) as session:
        authors = {r.member_id for r in session.exec(select(Response).where(Response.kind == "suggestion"))}
        rejected = session.exec(select(Disposition).where(Disposition.outcome == "rejected")).first()
        author_of_rejected = session.get(Response, rejected.response_id).member_id
        from models.tables import Member

        email = session.get(Member, author_of_rejected).email
    engine.dispose()
    assert len(told) == len(authors) and len({m["to"][0] for m in told}) == len(authors)
    entry = next(m for m in told if m["to"] == [email])
    mail = BytesParser(policy=policy.default).parse((out / entry["file"]).open("rb"))
    assert REJECTED.split(" — ")[1] in mail.get_body(("plain",)).get_content()
