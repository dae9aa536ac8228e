"""flows.answers: the one way in for every answer, its checks and its audit rows."""

import io
from datetime import timedelta

import pytest
from docx import Document as DocxDocument
from sqlmodel import Session, select

from flows import answers
from flows.answers import AnswerRefused
from models.tables import AnswerAudit, Decision, Document, Response, Step
from tests.engine_helpers import local, run, seed_people, start_gswg, step

CALL_OPEN = local(2019, 11, 4, 10, 0)  # the call opened on 1 November (due 11 November 17:00)


def _audits(session):
    return session.exec(select(AnswerAudit).order_by(AnswerAudit.id)).all()


def _refused(code, fn, **kwargs):
    with pytest.raises(AnswerRefused) as caught:
        fn(**kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))
        session.commit()
        yield session, people, cycle


def _open(session, cycle, key, **fields):
    row = step(session, cycle, key)
    row.state = "open"
    for name, value in fields.items():
        setattr(row, name, value)
    session.commit()
    return row


def test_suggestions_several_edit_withdraw_and_audit(world):
    session, people, cycle = world
    call = step(session, cycle, "call_for_suggestions")
    m1 = people["m1@example.org"].id
    common = dict(session=session, member_id=m1, step_id=call.id, channel="web")
    first = answers.record_suggestion(**common, now=CALL_OPEN, title="ສໍາມະນາ <script>x</script>",
                                      what="w", why="y", months=[3, 2], lead="MoHA", serves=["sdg16"],
                                      serves_other="free text")
    second = answers.record_suggestion(**common, now=CALL_OPEN, title="Second")
    assert not first.late and first.row.data["months"] == [2, 3] and first.row.data["serves"] == ["sdg16"]
    answers.record_suggestion(**common, now=CALL_OPEN + timedelta(hours=1), title="First, edited",
                              suggestion_id=first.row.id)
    answers.withdraw_suggestion(**common, now=CALL_OPEN + timedelta(hours=2), suggestion_id=second.row.id)
    session.commit()
    left = session.exec(select(Response).where(Response.kind == "suggestion")).all()
    assert [r.body for r in left] == ["First, edited"]
    assert [(a.kind, a.action, a.channel) for a in _audits(session)] == [
        ("suggestion", "create", "web"), ("suggestion", "create", "web"),
        ("suggestion", "update", "web"), ("suggestion", "withdraw", "web")]
    # someone else's suggestion cannot be edited; an unknown aim is refused
    _refused("not-yours", answers.record_suggestion, session=session, member_id=people["m2@example.org"].id,
             step_id=call.id, channel="web", now=CALL_OPEN, title="x", suggestion_id=first.row.id)
    _refused("invalid", answers.record_suggestion, **common, now=CALL_OPEN, title="x", serves=["nope"])
    _refused("invalid", answers.record_suggestion, **common, now=CALL_OPEN, title="  ")


def test_late_answer_is_kept_and_marked_but_not_editable(world):
    session, people, cycle = world
    call = step(session, cycle, "call_for_suggestions")
    late_moment = call.due_at + timedelta(hours=1)  # after the deadline, before a tick closed the step
    common = dict(session=session, member_id=people["m2@example.org"].id, step_id=call.id, channel="mail")
    accepted = answers.record_suggestion(**common, now=late_moment, title="Late idea")
    assert accepted.late and accepted.row.data["late"] is True
    assert _audits(session)[-1].late
    _refused("deadline-passed", answers.record_suggestion, **common, now=late_moment, title="edit",
             suggestion_id=accepted.row.id)
    run(session, late_moment + timedelta(hours=1))  # the tick closes the call
    session.commit()
    before = len(_audits(session))
    _refused("closed", answers.record_suggestion, **common, now=late_moment + timedelta(hours=2), title="x")
    assert len(_audits(session)) == before


def test_refusals_write_nothing(world):
    session, people, cycle = world
    call = step(session, cycle, "call_for_suggestions")
    approval = step(session, cycle, "approval")
    mpi = people["mpi@example.org"].id  # not in the call's audience
    _refused("not-in-audience", answers.record_suggestion, session=session, member_id=mpi, step_id=call.id,
             now=CALL_OPEN, channel="web", title="x")
    _refused("not-open", answers.record_decision, session=session, member_id=people["chair@example.org"].id,
             step_id=approval.id, now=CALL_OPEN, channel="web", decision="approve")
    _refused("wrong-step", answers.record_receipt, session=session, member_id=mpi, step_id=call.id,
             now=CALL_OPEN, channel="web")
    _refused("unknown-step", answers.record_comment, session=session, member_id=mpi, step_id=99999,
             now=CALL_OPEN, channel="web", body="x")
    session.commit()
    assert _audits(session) == [] and session.exec(select(Response)).all() == []
    with pytest.raises(ValueError):
        answers.record_suggestion(session=session, member_id=mpi, step_id=call.id, now=CALL_OPEN,
                                  channel="pigeon", title="x")


def test_decisions_once_per_revision_reason_required_and_stale_revision(world):
    session, people, cycle = world
    approval = _open(session, cycle, "approval", due_at=local(2020, 3, 1, 17, 0))
    now = local(2020, 2, 20, 10, 0)
    chair = dict(session=session, member_id=people["chair@example.org"].id, step_id=approval.id, channel="web")
    _refused("invalid", answers.record_decision, **chair, now=now, decision="reject", reason=" ")
    _refused("stale-revision", answers.record_decision, **chair, now=now, decision="approve", revision=2)
    answers.record_decision(**chair, now=now, decision="approve", revision=1)
    _refused("already-answered", answers.record_decision, **chair, now=now, decision="reject", reason="no")
    _refused("not-in-audience", answers.record_decision, session=session, step_id=approval.id, channel="web",
             member_id=people["m1@example.org"].id, now=now, decision="approve")
    _refused("invalid", answers.record_decision, session=session, step_id=approval.id, channel="mail",
             member_id=people["cochair.moj@example.org"].id, now=now, decision="approve")
    session.commit()
    assert [(d.decision, d.plan_revision) for d in session.exec(select(Decision)).all()] == [("approve", 1)]
    audit = _audits(session)[-1]
    assert (audit.kind, audit.channel, audit.detail) == ("decision", "web", {"decision": "approve", "revision": 1})


def test_rejection_then_revision_through_the_engine(world):
    session, people, cycle = world
    approval = _open(session, cycle, "approval", due_at=local(2020, 3, 1, 17, 0))
    now = local(2020, 2, 20, 10, 0)
    answers.record_decision(session=session, member_id=people["cochair.moj@example.org"].id, step_id=approval.id,
                            now=now, channel="web", decision="reject", reason="Add SDG 16", revision=1)
    session.commit()
    run(session, now)
    session.commit()
    assert cycle.plan_revision == 2 and approval.data["awaiting_revision"] == 2
    chair = dict(session=session, member_id=people["chair@example.org"].id, step_id=approval.id, channel="web")
    _refused("awaiting-revision", answers.record_decision, **chair, now=now, decision="approve")
    _refused("not-in-audience", answers.record_revision, **chair, now=now, revision=2)
    staff = people["staff@example.org"].id
    _refused("stale-revision", answers.record_revision, session=session, member_id=staff, step_id=approval.id,
             now=now, channel="cli", revision=3)
    answers.record_revision(session=session, member_id=staff, step_id=approval.id, now=now + timedelta(days=1),
                            channel="cli", revision=2)
    session.commit()
    run(session, now + timedelta(days=1))
    session.commit()
    assert not approval.data.get("awaiting_revision")
    answers.record_decision(**chair, now=now + timedelta(days=2), decision="approve", revision=2)


def test_rsvp_replaces_survey_once_minutes_and_receipt(world):
    session, people, cycle = world
    meeting = step(session, cycle, "annual_review_meeting")
    assert meeting.state == "open"
    m4 = dict(session=session, member_id=people["m4@example.org"].id, step_id=meeting.id, channel="web")
    answers.record_rsvp(**m4, now=CALL_OPEN, partstat="accepted")
    answers.record_rsvp(**m4, now=CALL_OPEN, partstat="DECLINED", reason="travelling")
    _refused("invalid", answers.record_rsvp, **m4, now=CALL_OPEN, partstat="MAYBE")
    rsvps = session.exec(select(Response).where(Response.kind == "rsvp")).all()
    assert [(r.body, r.data["comment"]) for r in rsvps] == [("DECLINED", "travelling")]

    scores = {"overall": 4, "agenda": 5, "discussion": 3, "organisation": 4}
    _refused("not-open", answers.record_survey, **m4, now=CALL_OPEN, scores=scores)
    after = meeting.ends_at + timedelta(hours=2)
    _refused("invalid", answers.record_survey, **m4, now=after, scores={**scores, "overall": 6})
    _refused("invalid", answers.record_survey, **m4, now=after, scores={"overall": 4})
    answers.record_survey(**m4, now=after, scores=scores, comment="good")
    _refused("already-answered", answers.record_survey, **m4, now=after, scores=scores)
    _refused("closed", answers.record_survey, session=session, member_id=people["m1@example.org"].id,
             step_id=meeting.id, channel="web", now=after + timedelta(days=30), scores=scores)

    staff = dict(session=session, member_id=people["staff@example.org"].id, step_id=meeting.id, channel="web")
    _refused("invalid", answers.record_minutes, **staff, now=after, filename="minutes.pdf", content=b"not a pdf")
    _refused("not-in-audience", answers.record_minutes, **m4, now=after, filename="m.pdf", content=b"%PDF-1.4 x")
    buffer = io.BytesIO()
    DocxDocument().save(buffer)
    accepted = answers.record_minutes(**staff, now=after, filename="../minutes.docx", content=buffer.getvalue())
    document = session.get(Document, accepted.row.data["document_id"])
    assert document.kind == "minutes" and document.filename == "minutes.docx" and len(document.checksum) == 64
    assert document.media_type == answers.DOCX

    submit = _open(session, cycle, "submission_to_mpi", due_at=local(2020, 3, 20, 17, 0))
    mpi = dict(session=session, member_id=people["mpi@example.org"].id, step_id=submit.id, channel="web")
    answers.record_receipt(**mpi, now=local(2020, 3, 16, 9, 0))
    _refused("already-answered", answers.record_receipt, **mpi, now=local(2020, 3, 16, 9, 0))
    session.commit()
    kinds = [a.kind for a in _audits(session)]
    assert kinds == ["rsvp", "rsvp", "survey", "minutes", "receipt"]


def test_checklist_and_comment(world):
    session, people, cycle = world
    review = _open(session, cycle, "secretariat_review", due_at=local(2020, 1, 22, 17, 0))
    head = people["head@example.org"].id
    answers.record_checklist(session=session, member_id=head, step_id=review.id, now=local(2020, 1, 16, 9, 0),
                             channel="web", accepted=3, merged=1, rejected=0)
    _refused("invalid", answers.record_checklist, session=session, member_id=head, step_id=review.id,
             now=local(2020, 1, 16, 9, 0), channel="web", accepted=-1, merged=0, rejected=0)
    comments = _open(session, cycle, "comment_round", due_at=local(2020, 2, 10, 17, 0))
    m3 = dict(session=session, member_id=people["m3@example.org"].id, step_id=comments.id, channel="web")
    first = answers.record_comment(**m3, now=local(2020, 2, 3, 9, 0), body="ok", activity="Seminar")
    answers.record_comment(**m3, now=local(2020, 2, 3, 10, 0), body="better", comment_id=first.row.id)
    session.commit()
    assert session.get(Response, first.row.id).body == "better"
    assert session.exec(select(Step).where(Step.key == "comment_round")).one().state == "open"
