"""A deputy named in the roster (deputy_for) gets a chair's approval requests and decides in the chair's place:
the rule still counts the chairs, the first decision of either counts, the notice says who decided for whom."""

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from flows import answers
from flows.answers import AnswerRefused
from models.tables import AnswerAudit, Cycle, Decision, Membership, Response
from notifications.outbox import payload_of
from tests.engine_helpers import local, rows, run, seed_people, start_gswg, step
from tests.web_helpers import csrf_of, make_world

APPROVERS = {"chair@example.org", "cochair.moj@example.org", "cochair.undp@example.org"}
OPENED = local(2020, 2, 24, 9, 0)  # the approval is open
DECIDED = local(2020, 2, 25, 10, 0)


def name_deputy(session, people, deputy="m1@example.org", principal="chair@example.org", ends_on=None):
    membership = session.exec(select(Membership).where(Membership.member_id == people[deputy].id)).one()
    membership.deputy_for_id, membership.ends_on = people[principal].id, ends_on
    session.add(membership)
    session.commit()


def text_of(session, row) -> str:
    return message_from_bytes(payload_of(session, row.id), policy=policy.default).get_body(("plain",)).get_content()


def ready(session, kind, **where):
    return [r for r in rows(session, step_key="approval", kind=kind, **where) if r.state in ("ready", "sent")]


@pytest.fixture
def approval_open(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        name_deputy(session, people)
        cycle = start_gswg(session)
        run(session, OPENED)
        session.commit()
        yield session, people, cycle, step(session, cycle, "approval")


def decide(session, people, email, approval, decision, at=DECIDED, reason=""):
    accepted = answers.record_decision(session=session, member_id=people[email].id, step_id=approval.id, now=at,
                                       channel="web", decision=decision, reason=reason)
    session.commit()
    return accepted


def test_the_deputy_gets_the_request_and_approves_for_the_chair(approval_open):
    session, people, cycle, approval = approval_open
    assert approval.state == "open"
    requests = ready(session, "approval_request")
    assert {r.recipient for r in requests} == APPROVERS | {"m1@example.org"}
    deputy_mail = text_of(session, next(r for r in requests if r.recipient == "m1@example.org"))
    assert "deputy for ປະທານ ກະຊວງພາຍໃນ" in deputy_mail and "ໃນຖານະຜູ້ແທນ ຂອງ ປະທານ ກະຊວງພາຍໃນ" in deputy_mail
    assert "deputy for" not in text_of(session, next(r for r in requests if r.recipient == "chair@example.org"))
    # The deputy's reminders are planned with the chair's.
    reminded = {r.recipient for r in rows(session, step_key="approval", kind="reminder")}
    assert "m1@example.org" in reminded and "chair@example.org" in reminded

    accepted = decide(session, people, "m1@example.org", approval, "approve")
    decision = accepted.row
    assert (decision.member_id, decision.by_member_id) == (people["chair@example.org"].id, people["m1@example.org"].id)
    audit = session.exec(select(AnswerAudit).order_by(AnswerAudit.id.desc())).first()
    assert (audit.member_id, audit.kind, audit.detail) == (
        people["m1@example.org"].id, "decision",
        {"decision": "approve", "revision": 1, "for": people["chair@example.org"].id})
    # The chair comes too late: the decision is taken, and the chair's link shows it.
    with pytest.raises(AnswerRefused) as refused:
        decide(session, people, "chair@example.org", approval, "reject", reason="no")
    assert refused.value.code == "already-answered" and "by member" in refused.value.message
    assert answers.decision_for(session, member_id=people["chair@example.org"].id, step_id=approval.id,
                                now=DECIDED).id == decision.id

    run(session, DECIDED + timedelta(hours=1))
    session.commit()
    notice = next(r for r in ready(session, "decision_notice") if r.slot == f"d{decision.id}")
    text = text_of(session, notice)
    assert "ສະມາຊິກ 1 ແທນ ປະທານ ກະຊວງພາຍໃນ ໄດ້ຮັບຮອງ" in text and "ສະມາຊິກ 1 for ປະທານ ກະຊວງພາຍໃນ approved" in text
    # `all`: the co-chairs are still awaited (the deputy counted once, for the chair).
    assert step(session, cycle, "approval").state == "open"
    for email in ("cochair.moj@example.org", "cochair.undp@example.org"):
        decide(session, people, email, approval, "approve", at=DECIDED + timedelta(hours=2))
    run(session, DECIDED + timedelta(hours=3))
    session.commit()
    assert (step(session, cycle, "approval").state, step(session, cycle, "approval").outcome) == ("done", "approved")
    assert len(session.exec(select(Decision)).all()) == 3


def test_once_the_chair_decided_the_deputy_is_not_asked_and_cannot_decide(approval_open):
    session, people, cycle, approval = approval_open
    chair = decide(session, people, "chair@example.org", approval, "approve").row
    assert chair.by_member_id is None
    with pytest.raises(AnswerRefused) as refused:
        decide(session, people, "m1@example.org", approval, "reject", reason="no")
    assert refused.value.code == "already-answered"
    assert answers.decision_for(session, member_id=people["m1@example.org"].id, step_id=approval.id,
                                now=DECIDED).id == chair.id
    run(session, local(2020, 3, 20, 9, 0))  # well past every reminder
    session.commit()
    late = {r.recipient for r in rows(session, step_key="approval", kind="reminder")
            if r.state in ("ready", "sent") and r.due_at >= DECIDED}
    assert not late & {"chair@example.org", "m1@example.org"}


def test_a_deputys_reject_sends_the_plan_back_and_the_revision_comes_to_them(approval_open):
    session, people, cycle, approval = approval_open
    decide(session, people, "m1@example.org", approval, "reject", reason="ຂໍເພີ່ມ SDG 16")
    run(session, DECIDED + timedelta(hours=1))
    session.commit()
    session.refresh(cycle)
    assert cycle.plan_revision == 2 and approval.data["awaiting_revision"] == 2
    assert {r.recipient for r in ready(session, "revision_request")} == {"head@example.org", "staff@example.org"}
    session.add(Response(step_id=approval.id, member_id=people["head@example.org"].id, kind="revision",
                         body="revised", data={"revision": 2}, at=DECIDED + timedelta(days=1)))
    session.commit()
    run(session, DECIDED + timedelta(days=1))
    session.commit()
    assert {r.recipient for r in ready(session, "approval_request", revision=2)} == APPROVERS | {"m1@example.org"}


def test_a_deputy_whose_membership_ended_decides_nothing(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        name_deputy(session, people, ends_on=local(2020, 2, 1, 0, 0).date())
        cycle = start_gswg(session)
        run(session, OPENED)
        session.commit()
        approval = step(session, cycle, "approval")
        assert "m1@example.org" not in {r.recipient for r in ready(session, "approval_request")}
        with pytest.raises(AnswerRefused) as refused:
            decide(session, people, "m1@example.org", approval, "approve")
        assert refused.value.code == "not-in-audience"
        assert session.exec(select(Decision)).all() == []


def test_the_web_page_works_for_the_deputy_and_shows_the_decision_on_the_chairs_link(sqlite_engine):
    world = make_world(sqlite_engine)
    with Session(world.engine) as session:
        name_deputy(session, world.people)
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    world.now[0] = local(2020, 2, 20, 10, 0)
    deputy = world.link("m1@example.org", "approval", "approve", revision=1)
    chair = world.link("chair@example.org", "approval", "approve", revision=1)
    with TestClient(world.app()) as client:
        page = client.get(deputy)
        assert page.status_code == 200 and 'name="reason"' in page.text
        done = client.post(deputy, data={"csrf": csrf_of(page.text), "decision": "approve"}, follow_redirects=False)
        assert done.status_code == 303
        mine = client.get(deputy).text
        assert 'data-decision="approve"' in mine and "You have approved" in mine
        theirs = client.get(chair).text
        assert 'data-decision="approve"' in theirs and 'name="decision"' not in theirs
        assert "ສະມາຊິກ 1 ແທນ ປະທານ ກະຊວງພາຍໃນ ໄດ້ຮັບຮອງແຜນນີ້ແລ້ວ." in theirs
    with Session(world.engine) as session:
        assert session.get(Cycle, world.cycle_id).plan_revision == 1
        [decision] = session.exec(select(Decision)).all()
        assert (decision.member_id, decision.by_member_id) == (world.people["chair@example.org"].id,
                                                               world.people["m1@example.org"].id)
