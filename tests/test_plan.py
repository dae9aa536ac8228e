"""flows.plan: dispositions (through flows.answers), activities, revisions, closing the review."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from flows import answers, plan
from flows.documents import documents_for
from flows.plan import ActivityFields
from flows.state import CycleState
from models.tables import AnswerAudit, Disposition, Notification, PlanActivity, Response
from tests.engine_helpers import local, run, seed_people, start_gswg, step
from tests.test_answers import _refused

CALL = local(2019, 11, 4, 10, 0)  # the call is open (1-11 November)
REVIEW = local(2020, 1, 9, 10, 0)  # the secretariat review is open (8-22 January)


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))
        call = step(session, cycle, "call_for_suggestions")
        ids = {}
        for email, title in (("m1@example.org", "ສໍາມະນາ SDG 16 — Seminar on SDG 16"),
                             ("m2@example.org", "Seminar on SDG 16 at local level"),
                             ("m3@example.org", "English courses")):
            ids[email] = answers.record_suggestion(session=session, member_id=people[email].id, step_id=call.id,
                                                   now=CALL, channel="web", title=title, months=[4, 5],
                                                   lead="MoHA", serves=["sdg16"]).row.id
        session.commit()
        run(session, REVIEW)
        session.commit()
        assert step(session, cycle, "secretariat_review").state == "open"
        yield session, people, cycle, ids


def test_dispose_accept_merge_reject_then_close(world):
    session, people, cycle, ids = world
    staff, m1 = people["staff@example.org"].id, people["m1@example.org"].id
    common = dict(session=session, member_id=staff, now=REVIEW, channel="web")
    # a member is not the secretariat; a rejection needs a reason; closing waits for every suggestion
    _refused("not-in-audience", plan.dispose, **{**common, "member_id": m1}, suggestion_id=ids["m3@example.org"],
             outcome="rejected", reason="no")
    _refused("invalid", plan.dispose, **common, suggestion_id=ids["m3@example.org"], outcome="rejected")
    accepted = plan.dispose(**common, suggestion_id=ids["m1@example.org"], outcome="accepted")
    activity = session.get(PlanActivity, accepted.activity_id)
    assert (activity.title_lo, activity.title_en) == ("ສໍາມະນາ SDG 16", "Seminar on SDG 16")
    assert (activity.start_month, activity.end_month, activity.group_code, activity.lead, activity.serves) == \
        (4, 5, "GSWG", "MoHA", ["sdg16"])
    _refused("invalid", plan.close_review, **common, cycle_id=cycle.id)
    merged = plan.dispose(**common, suggestion_id=ids["m2@example.org"], outcome="merged", into=activity.id)
    assert merged.activity_id == activity.id
    _refused("invalid", plan.dispose, **common, suggestion_id=ids["m3@example.org"], outcome="merged", into=9999)
    plan.dispose(**common, suggestion_id=ids["m3@example.org"], outcome="rejected", reason="Outside our remit")
    assert plan.review_counts(session, cycle.id) == {"accepted": 1, "merged": 1, "rejected": 1, "left": 0}
    signed = plan.close_review(**common, cycle_id=cycle.id)
    assert signed.row.kind == "checklist" and signed.row.data == {"accepted": 1, "merged": 1, "rejected": 1}
    assert plan.signed_off(session, cycle.id)
    session.commit()
    _refused("closed", plan.dispose, **common, suggestion_id=ids["m3@example.org"], outcome="rejected",
             reason="changed my mind")  # signed off: final
    review = step(session, cycle, "secretariat_review")
    run(session, REVIEW + timedelta(minutes=5))
    assert review.state == "open"  # its meeting (15 January) still takes replies
    run(session, review.ends_at + timedelta(minutes=1))  # the meeting is over: so is the review, before its deadline
    assert (review.state, review.outcome) == ("closed", "complete") and review.closed_at < review.due_at
    audit = session.exec(select(AnswerAudit).where(AnswerAudit.kind.in_(("disposition", "checklist")))
                         .order_by(AnswerAudit.id)).all()
    assert [(a.kind, a.channel, a.detail.get("outcome")) for a in audit] == [
        ("disposition", "web", "accepted"), ("disposition", "web", "merged"), ("disposition", "web", "rejected"),
        ("checklist", "web", None)]


def test_a_second_disposition_replaces_the_first_and_drops_its_activity(world):
    session, people, cycle, ids = world
    common = dict(session=session, member_id=people["head@example.org"].id, now=REVIEW, channel="cli")
    first = plan.dispose(**common, suggestion_id=ids["m3@example.org"], outcome="accepted",
                         values=ActivityFields(title_en="English courses", start_month=9, group_code="psi"))
    assert session.get(PlanActivity, first.activity_id).group_code == "PSI"
    again = plan.dispose(**common, suggestion_id=ids["m3@example.org"], outcome="rejected", reason="Not now")
    assert again.id == first.id and again.outcome == "rejected" and again.activity_id is None
    assert plan.activities(session, cycle.id) == []
    assert len(session.exec(select(Disposition)).all()) == 1
    actions = [a.action for a in session.exec(select(AnswerAudit).where(AnswerAudit.kind == "disposition"))]
    assert actions == ["create", "update"]


def test_activity_fields_are_checked(world):
    session, people, cycle, _ids = world
    common = dict(session=session, member_id=people["staff@example.org"].id, cycle_id=cycle.id, now=REVIEW,
                  channel="web")
    for values, word in ((ActivityFields(), "title"), (ActivityFields(title_en="x", start_month=13), "months"),
                         (ActivityFields(title_en="x", start_month=5, end_month=3), "before the start"),
                         (ActivityFields(title_en="x", group_code="XYZ"), "XYZ"),
                         (ActivityFields(title_en="x", serves=("nope",)), "nope"),
                         (ActivityFields(title_en="x", budget="lots"), "budget")):
        refused = _refused("invalid", plan.add_activity, **common, values=values)
        assert word in refused.message
    _refused("not-in-audience", plan.add_activity, **{**common, "member_id": people["m1@example.org"].id},
             values=ActivityFields(title_en="x"))
    made = plan.add_activity(**common, values=ActivityFields(title_lo="ກອງປະຊຸມ", start_month=3, end_month=3,
                                                             group_code="LIO", budget="12000",
                                                             budget_source="UNDP", meeting=True))
    assert (made.budget, made.origin, made.revision, made.position) == (12000.0, "direct", 1, 1)


def test_editing_after_a_round_went_out_raises_the_revision_and_the_approval_follows(world):
    session, people, cycle, _ids = world
    staff = people["staff@example.org"].id
    made = plan.add_activity(session=session, member_id=staff, cycle_id=cycle.id, now=REVIEW, channel="web",
                             values=ActivityFields(title_en="Workshop", start_month=5))
    later = REVIEW + timedelta(hours=1)
    plan.edit_activity(session, member_id=staff, activity_id=made.id, now=later, channel="web",
                       values=ActivityFields(title_en="Workshop", start_month=6))
    assert cycle.plan_revision == 1  # nothing has gone out yet: the same revision
    documents_for(CycleState(session, cycle), "draft_plan", 1, later)  # the draft goes to the comment round
    edited = plan.edit_activity(session, member_id=staff, activity_id=made.id, now=later, channel="web",
                                values=ActivityFields(title_en="Workshop on the civil code", start_month=6))
    assert cycle.plan_revision == 2 and edited.revision == 2
    requests = session.exec(select(Notification).where(Notification.step_key == "approval",
                                                       Notification.kind == "approval_request")).all()
    assert {r.revision for r in requests} == {1, 2}  # revision 1's requests are dropped at send time
    # unchanged values change nothing; a removal is a change
    plan.edit_activity(session, member_id=staff, activity_id=made.id, now=later, channel="web",
                       values=ActivityFields(title_en="Workshop on the civil code", start_month=6))
    plan.edit_activity(session, member_id=staff, activity_id=made.id, now=later, channel="web", remove=True)
    assert plan.activities(session, cycle.id) == []
    actions = [a.action for a in session.exec(select(AnswerAudit).where(AnswerAudit.kind == "activity"))]
    assert actions == ["create", "update", "update", "withdraw"]


def test_the_plan_cannot_change_while_with_the_approvers_or_once_approved(world):
    session, people, cycle, _ids = world
    staff = people["staff@example.org"].id
    made = plan.add_activity(session=session, member_id=staff, cycle_id=cycle.id, now=REVIEW, channel="web",
                             values=ActivityFields(title_en="Workshop", start_month=5))
    approval = step(session, cycle, "approval")
    approval.state = "open"
    _refused("with-approvers", plan.edit_activity, session=session, member_id=staff, activity_id=made.id,
             now=REVIEW, channel="web", values=ActivityFields(title_en="Changed"))
    approval.data["awaiting_revision"] = 2  # a chair sent it back: editing reopens
    plan.edit_activity(session, member_id=staff, activity_id=made.id, now=REVIEW, channel="web",
                       values=ActivityFields(title_en="Changed"))
    approval.data["awaiting_revision"] = None
    approval.state, approval.outcome = "done", "approved"
    _refused("approved", plan.add_activity, session=session, member_id=staff, cycle_id=cycle.id, now=REVIEW,
             channel="web", values=ActivityFields(title_en="Late idea"))


def test_a_closed_review_takes_no_disposition(world):
    session, people, cycle, ids = world
    review = step(session, cycle, "secretariat_review")
    review.state = "closed"
    _refused("closed", plan.dispose, session=session, member_id=people["staff@example.org"].id,
             suggestion_id=ids["m1@example.org"], now=REVIEW, channel="web", outcome="rejected", reason="late")
    assert session.exec(select(Response).where(Response.kind == "checklist")).first() is None


def test_the_seed_plan_loads():
    seed = plan.load_plan(plan.Path(__file__).resolve().parents[1] / "examples" / "plan_2020.yaml")
    by_group = {}
    for entry in seed:
        by_group.setdefault(entry["values"].group_code, []).append(entry["key"])
    assert {g: len(keys) for g, keys in by_group.items()} == {"GSWG": 4, "PSI": 3, "LIO": 3}
    known = {item["key"] for item in plan.reference()}
    assert all(set(entry["values"].serves) <= known for entry in seed)
