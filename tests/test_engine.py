"""The deadline engine: who gets what, when; nothing twice; downtime; moved anchors; approvals."""

from email import message_from_bytes, policy

from icalendar import Calendar
from sqlmodel import Session, select

from flows.cycle import move_anchor
from models.tables import CalendarEntry, Decision, Notification, Response
from notifications.outbox import payload_of
from tests.engine_helpers import answer, local, ready_to, rows, run, seed_people, start_gswg, step

def decide(session, approval, member, decision, at, revision=1, reason=""):
    session.add(Decision(step_id=approval.id, member_id=member.id, decision=decision, reason=reason,
                         plan_revision=revision, at=at))
    session.commit()


CALL_AUDIENCE = {"chair@example.org", "cochair.moj@example.org", "cochair.undp@example.org", "head@example.org",
                 "staff@example.org", "m1@example.org", "m2@example.org", "m3@example.org", "m4@example.org"}


def test_call_reaches_every_member_once_and_reminders_only_the_silent(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        first = run(session, local(2019, 11, 1, 9, 0))
        assert "call_for_suggestions" in first.opened
        assert ready_to(session, "call_for_suggestions", "call") == CALL_AUDIENCE
        total = len(rows(session))
        again = run(session, local(2019, 11, 1, 9, 0))
        assert again.prepared == 0 and len(rows(session)) == total  # a second tick at the same moment adds nothing

        call = step(session, cycle, "call_for_suggestions")
        answer(session, call, people["m1@example.org"], "suggestion", local(2019, 11, 2, 10, 0))
        answer(session, call, people["m3@example.org"], "suggestion", local(2019, 11, 4, 10, 0))
        run(session, local(2019, 11, 6, 9, 0))
        first_reminded = {r.recipient for r in rows(session, kind="reminder", slot="r0") if r.state == "ready"}
        assert first_reminded == CALL_AUDIENCE - {"m1@example.org", "m3@example.org"}

        answer(session, call, people["m2@example.org"], "suggestion", local(2019, 11, 7, 10, 0))
        run(session, local(2019, 11, 8, 9, 0))
        second_reminded = {r.recipient for r in rows(session, kind="reminder", slot="r1") if r.state == "ready"}
        assert second_reminded == CALL_AUDIENCE - {"m1@example.org", "m2@example.org", "m3@example.org"}
        skipped = {r.recipient for r in rows(session, kind="reminder", slot="r1") if r.state == "skipped"}
        assert skipped == {"m1@example.org", "m2@example.org", "m3@example.org"}


def test_downtime_follows_the_late_policy(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))  # t0: the meeting invitation goes
        assert len(ready_to(session, "annual_review_meeting", "invite")) == 10
        report = run(session, local(2019, 11, 9, 9, 0))  # t0 + 10 days: the engine was down
        # The call is sent late; both stale reminders fold into one digest per person.
        assert ready_to(session, "call_for_suggestions", "call") == CALL_AUDIENCE
        assert ready_to(session, "call_for_suggestions", "reminder") == set()
        digests = [r for r in rows(session, kind="digest") if r.state == "ready"]
        assert sorted(r.recipient for r in digests) == sorted(CALL_AUDIENCE)
        assert {r.state for r in rows(session, step_key="call_for_suggestions", kind="reminder")} == {"folded"}
        assert report.folded == 2 * len(CALL_AUDIENCE)
        # The agenda (send late) goes; nothing went twice.
        assert len(ready_to(session, "annual_review_meeting", "agenda")) == 10
        keys = [r.message_id for r in rows(session) if r.message_id]
        assert len(keys) == len(set(keys))

        # Down again past the escalation moment: a stale escalation is skipped, the closed step's
        # reminders are not sent, the meeting survey (skip if stale) is dropped.
        run(session, local(2019, 11, 25, 9, 0))
        assert {r.state for r in rows(session, kind="escalation", step_key="call_for_suggestions")} == {"skipped"}
        assert {r.state for r in rows(session, kind="survey")} == {"skipped"}
        assert step(session, cycle, "call_for_suggestions").state == "closed"


def test_moving_the_anchor_updates_the_invitation_without_resending(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))
        invites = {r.id: (r.state, payload_of(session, r.id)) for r in rows(session, kind="invite")}
        entry = session.exec(select(CalendarEntry).where(CalendarEntry.kind == "meeting")).first()
        uid = entry.uid
        january = step(session, cycle, "secretariat_review").due_at
        call_due = {r.key: r.due_at for r in rows(session, kind="call", step_key="call_for_suggestions")}

        report = move_anchor(session, cycle, "annual_meeting", local(2019, 11, 20, 8, 30), local(2019, 10, 31, 9, 0))
        session.commit()
        assert report["updates"] == 10
        meeting = step(session, cycle, "annual_review_meeting")
        assert meeting.starts_at == local(2019, 11, 20, 8, 30)
        assert step(session, cycle, "secretariat_review").due_at == january  # January does not move
        calls = rows(session, kind="call", step_key="call_for_suggestions")
        assert all(r.due_at > call_due[r.key] for r in calls) and len(calls) == 9  # the call moves a week later

        run(session, local(2019, 10, 31, 9, 0))
        assert {r.id: (r.state, payload_of(session, r.id)) for r in rows(session, kind="invite")} == invites  # nothing resent
        updates = [r for r in rows(session, kind="update") if r.state == "ready"]
        assert len(updates) == 10
        mail = message_from_bytes(payload_of(session, updates[0].id), policy=policy.default)
        calendar_part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
        event = Calendar.from_ical(calendar_part.get_content()).walk("VEVENT")[0]
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART") == local(2019, 11, 20, 8, 30)
        run(session, local(2019, 10, 31, 9, 0))
        assert len([r for r in rows(session, kind="update") if r.state == "ready"]) == 10


def test_rejection_sends_the_plan_back_and_a_revision_is_approved(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2020, 2, 24, 9, 0))
        approval = step(session, cycle, "approval")
        assert approval.state == "open"
        approvers = {"chair@example.org", "cochair.moj@example.org", "cochair.undp@example.org"}
        assert ready_to(session, "approval", "approval_request") == approvers

        decide(session, approval, people["chair@example.org"], "approve", local(2020, 2, 25, 10, 0))
        decide(session, approval, people["cochair.moj@example.org"], "reject", local(2020, 2, 25, 10, 0),
               reason="ຂໍເພີ່ມ SDG 16 — add SDG 16")
        run(session, local(2020, 2, 25, 11, 0))
        session.refresh(cycle)
        assert cycle.plan_revision == 2
        assert ready_to(session, "approval", "revision_request") == {"head@example.org", "staff@example.org"}
        assert len([r for r in rows(session, kind="decision_notice") if r.state == "ready"]) == 4  # 2 decisions × 2
        # Reminders of the rejected revision are no longer sent.
        run(session, local(2020, 2, 26, 9, 0))
        session.add(Response(step_id=approval.id, member_id=people["head@example.org"].id, kind="revision",
                             body="revised", data={"revision": 2}, at=local(2020, 2, 27, 9, 0)))
        session.commit()
        run(session, local(2020, 2, 27, 9, 0))
        second = {r.recipient for r in rows(session, kind="approval_request", revision=2) if r.state == "ready"}
        assert second == approvers
        for email in approvers:
            decide(session, approval, people[email], "approve", local(2020, 2, 28, 10, 0), revision=2)
        run(session, local(2020, 2, 28, 11, 0))
        approval = step(session, cycle, "approval")
        assert (approval.state, approval.outcome) == ("done", "approved")
        run(session, local(2020, 3, 31, 9, 0))
        submissions = [r for r in rows(session, kind="submission") if r.state == "ready"]
        assert [r.recipient for r in submissions] == ["mpi@example.org"]
        assert submissions[0].cc == ["head@example.org"]
        mail = message_from_bytes(payload_of(session, submissions[0].id), policy=policy.default)
        names = [p.get_filename() for p in mail.iter_attachments()]
        assert any(n and n.endswith(".docx") and "r2" in n for n in names)


def test_no_message_for_a_step_before_it_opens(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        start_gswg(session)
        run(session, local(2019, 10, 20, 9, 0))
        assert session.exec(select(Notification).where(Notification.state != "scheduled")).all() == []


def test_a_session_kept_across_ticks_sees_what_the_tick_decided(engine):
    # The tick writes its decisions on due rows in bulk; the copies a long-lived session holds follow.
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        start_gswg(session)
        held = rows(session, step_key="call_for_suggestions", kind="call")
        assert held and all(r.state == "scheduled" and r.subject == "" for r in held)
        run(session, local(2019, 11, 1, 9, 0))
        assert all(r.state == "ready" and "Suggest activities for the 2020 work plan" in r.subject for r in held)
        assert all(r.message_id and r.next_attempt_at == local(2019, 11, 1, 9, 0) for r in held)


def test_dropping_a_meeting_cancels_it_for_every_invitee(engine):
    from flows.cycle import drop_step

    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))
        uid = session.exec(select(CalendarEntry).where(CalendarEntry.kind == "meeting")).first().uid
        report = drop_step(session, cycle, "annual_review_meeting", local(2019, 11, 4, 9, 0))
        session.commit()
        assert report["cancellations"] == 10
        run(session, local(2019, 11, 4, 9, 0))
        cancels = [r for r in rows(session, kind="cancel") if r.state == "ready"]
        assert len(cancels) == 10
        mail = message_from_bytes(payload_of(session, cancels[0].id), policy=policy.default)
        part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
        assert part.get_param("method") == "CANCEL"
        event = Calendar.from_ical(part.get_content()).walk("VEVENT")[0]
        assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1 and str(event["STATUS"]) == "CANCELLED"
        # The agenda and the survey of the dropped meeting never go.
        run(session, local(2019, 11, 14, 9, 0))
        assert {r.state for r in rows(session, kind="agenda")} == {"skipped"}
        assert {r.state for r in rows(session, kind="survey")} == {"skipped"}


def test_reminders_and_escalation_name_only_the_silent(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))
        call = step(session, cycle, "call_for_suggestions")
        for email in ("m1@example.org", "m2@example.org", "chair@example.org"):
            answer(session, call, people[email], "suggestion", local(2019, 11, 5, 9, 0))
        for moment in (local(2019, 11, 6, 9, 0), local(2019, 11, 8, 9, 0), local(2019, 11, 11, 17, 0),
                       local(2019, 11, 12, 9, 0)):
            run(session, moment)
        escalations = [r for r in rows(session, kind="escalation") if r.state == "ready"]
        assert [r.recipient for r in escalations] == ["head@example.org"]
        text = message_from_bytes(payload_of(session, escalations[0].id), policy=policy.default).get_body(("plain",)).get_content()
        assert "m3@example.org" in text and "m4@example.org" in text
        assert "m1@example.org" not in text and "chair@example.org" not in text


def _approval_with_rule(session, rule: dict):
    people = seed_people(session)
    cycle = start_gswg(session)
    definition = dict(cycle.definition)
    definition["steps"] = [dict(s, approval=rule) if s["key"] == "approval" else s for s in definition["steps"]]
    cycle.definition = definition
    session.commit()
    run(session, local(2020, 2, 24, 9, 0))
    return people, cycle, step(session, cycle, "approval")


def test_approval_rule_any_settles_on_the_first_approval(engine):
    with Session(engine, expire_on_commit=False) as session:
        people, cycle, approval = _approval_with_rule(session, {"rule": "any", "k": None})
        decide(session, approval, people["cochair.undp@example.org"], "approve", local(2020, 2, 25, 10, 0))
        run(session, local(2020, 2, 25, 11, 0))
        assert step(session, cycle, "approval").outcome == "approved"


def test_approval_rule_k_of_n_rejects_when_k_is_out_of_reach(engine):
    with Session(engine, expire_on_commit=False) as session:
        people, cycle, approval = _approval_with_rule(session, {"rule": "k-of-n", "k": 2})
        decide(session, approval, people["chair@example.org"], "reject", local(2020, 2, 25, 10, 0))
        run(session, local(2020, 2, 25, 11, 0))
        session.refresh(cycle)
        assert cycle.plan_revision == 1 and step(session, cycle, "approval").state == "open"  # 2 of 2 left
        decide(session, approval, people["cochair.moj@example.org"], "approve", local(2020, 2, 25, 10, 0))
        decide(session, approval, people["cochair.undp@example.org"], "approve", local(2020, 2, 26, 10, 0))
        run(session, local(2020, 2, 26, 11, 0))
        assert step(session, cycle, "approval").outcome == "approved"


def test_a_late_approval_moves_the_submission_window(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2020, 2, 24, 9, 0))
        approval = step(session, cycle, "approval")
        for email in ("chair@example.org", "cochair.moj@example.org", "cochair.undp@example.org"):
            decide(session, approval, people[email], "approve", local(2020, 3, 20, 10, 0))
        run(session, local(2020, 3, 20, 10, 30))
        submission = step(session, cycle, "submission_to_mpi")
        assert submission.state == "open"
        assert submission.due_at == local(2020, 3, 27, 17, 0)  # the planned 5 business days, from the approval
        assert ready_to(session, "submission_to_mpi", "submission") == {"mpi@example.org"}
        reminder = rows(session, kind="reminder", step_key="submission_to_mpi")[0]
        assert reminder.due_at == local(2020, 3, 26, 9, 0)


def test_no_minutes_request_once_the_minutes_are_in_and_no_survey_for_who_declined(engine):
    with Session(engine, expire_on_commit=False) as session:
        members = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))  # the invitations
        meeting = step(session, cycle, "annual_review_meeting")
        answer(session, meeting, members["m1@example.org"], "rsvp", local(2019, 11, 1, 9, 0), body="DECLINED")
        answer(session, meeting, members["head@example.org"], "minutes", local(2019, 11, 13, 12, 10), body="m.pdf")
        run(session, local(2019, 11, 13, 12, 15))  # the meeting ends: survey and minutes request are due
        assert ready_to(session, "annual_review_meeting", "minutes_due") == set()
        surveyed = ready_to(session, "annual_review_meeting", "survey")
        assert "m1@example.org" not in surveyed and "m2@example.org" in surveyed and len(surveyed) == 9


def test_operator_actions_are_in_the_audit_trail(engine):
    from flows.cycle import drop_step, reopen_step
    from flows.desk import audit_trail

    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        move_anchor(session, cycle, "annual_meeting", local(2019, 11, 20, 8, 30), local(2019, 10, 2, 9, 0))
        drop_step(session, cycle, "secretariat_review", local(2019, 10, 3, 9, 0))
        reopen_step(session, cycle, "secretariat_review", local(2019, 10, 4, 9, 0), due=local(2020, 1, 31, 17, 0))
        session.commit()
        trail = audit_trail(session, cycle, local(2019, 10, 5, 9, 0), "operator")
        assert [row["action"] for row in trail] == ["reopen", "drop", "anchor"]  # newest first
        anchor = trail[-1]
        assert anchor["detail"]["key"] == "annual_meeting" and anchor["detail"]["moment"].startswith("2019-11-20T08:30")
        assert anchor["detail"]["report"]["steps_moved"] and trail[0]["detail"]["due"].startswith("2020-01-31")
        assert {row["what"] for row in audit_trail(session, cycle, local(2019, 10, 5, 9, 0))} >= {"operator: anchor"}
