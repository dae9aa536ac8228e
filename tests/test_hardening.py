"""Issue 14: bad data and operator mistakes never stop the engine, never lose or forge anything (engine side;
the command-line side is in test_hardening_cli.py). On SQLite and PostgreSQL."""

from datetime import date

import pytest
from icalendar import Calendar
from email import message_from_bytes, policy
from sqlalchemy import update
from sqlmodel import Session, select

from flows.cycle import CycleError, cancel_cycle, move_anchor, reopen_step, start_cycle
from flows.status import cycle_status, preview
from flows.steps.collect import CollectHandler
from flows.tick import next_due
from models.definition import load_definition
from models.tables import CalendarEntry, Cycle, Decision, Member, Membership, Notification, WorkingGroup
from notifications.outbox import payload_of
from tests.engine_helpers import GSWG_YAML, local, ready_to, rows, run, seed_people, start_gswg, step

APPROVERS = {"chair@example.org", "cochair.moj@example.org", "cochair.undp@example.org"}


def _other_group(session, tmp_path):
    """A second group, OTHER, with its own chair, secretariat and members, and its own cycle definition."""
    group = WorkingGroup(code="OTHER", name_lo="ໜ່ວຍງານອື່ນ", name_en="Other Sector Working Group")
    session.add(group)
    session.flush()
    for email, role in (("o.chair@example.org", "chair"), ("o.head@example.org", "secretariat-head"),
                        ("o.m1@example.org", "member"), ("o.mpi@example.org", "mpi-focal")):
        member = Member(name=email.split("@")[0], email=email, language="lo")
        session.add(member)
        session.flush()
        session.add(Membership(member_id=member.id, group_id=group.id, role=role))
    session.commit()
    path = tmp_path / "other.yaml"
    path.write_text(GSWG_YAML.read_text(encoding="utf-8").replace("group: GSWG", "group: OTHER")
                    .replace("groups: [GSWG]", "groups: [OTHER]"), encoding="utf-8")
    return load_definition(path)


def _end_roles(session, roles, day: date, group="GSWG"):
    gid = session.exec(select(WorkingGroup.id).where(WorkingGroup.code == group)).one()
    for membership in session.exec(select(Membership).where(Membership.group_id == gid,
                                                            Membership.role.in_(roles))).all():
        membership.ends_on = day
    session.commit()


# ---- 1. one group's trouble stops nobody else ---------------------------------------------------------------

def test_a_group_without_chairs_blocks_only_its_approval(engine, tmp_path):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        gswg = start_gswg(session)
        other = start_cycle(session, _other_group(session, tmp_path), 2020, {}, local(2019, 10, 1, 9, 0))
        session.commit()
        _end_roles(session, ("chair", "co-chair"), date(2020, 1, 1))  # a roster without chairs for GSWG

        report = run(session, local(2020, 2, 24, 9, 0))  # the approvals open: it used to raise max() of nothing
        assert any(line.startswith("GSWG/approval: nobody holds chair or co-chair") for line in report.blocked)
        assert step(session, gswg, "approval").state == "planned"
        assert step(session, gswg, "approval").data["blocked"]["reason"].startswith("nobody holds chair")
        assert step(session, other, "approval").state == "open"  # the other group goes on
        assert ready_to(session, "approval", "approval_request") == {"o.chair@example.org"}
        told = [r for r in rows(session, kind="step_blocked")]
        assert sorted(r.recipient for r in told) == ["head@example.org", "staff@example.org"]
        assert all(r.state == "ready" and "Step blocked" in r.subject for r in told)
        text = message_from_bytes(payload_of(session, told[0].id), policy=policy.default).get_body(("plain",))
        assert "nobody holds chair" in text.get_content()
        status = cycle_status(session, gswg, local(2020, 2, 24, 9, 0))
        assert next(s for s in status["steps"] if s["key"] == "approval")["blocked"]["reason"].startswith("nobody")

        run(session, local(2020, 2, 25, 9, 0))  # still blocked: the secretariat is not told again
        assert len(rows(session, kind="step_blocked")) == 2
        # The scheduler does not wake every second for it (its opening has passed): the sweep retries it.
        session.execute(update(Notification).where(Notification.state == "ready").values(state="sent"))  # delivered
        session.commit()
        assert next_due(session, local(2020, 2, 25, 9, 0)) > local(2020, 2, 25, 9, 0, 1)

        # A new chair from today: the approval opens and the new chair gets the request.
        gid = session.exec(select(WorkingGroup.id).where(WorkingGroup.code == "GSWG")).one()
        session.add(Membership(member_id=people["m1@example.org"].id, group_id=gid, role="chair",
                               starts_on=date(2020, 2, 26)))
        session.commit()
        report = run(session, local(2020, 2, 26, 9, 0))
        assert report.blocked == []
        approval = step(session, gswg, "approval")
        assert approval.state == "open" and "blocked" not in approval.data
        requests = [r for r in rows(session, kind="approval_request", cycle_id=gswg.id) if r.state == "ready"]
        assert [r.recipient for r in requests] == ["m1@example.org"]


def test_a_step_that_cannot_render_blocks_itself_not_the_tick(engine, monkeypatch):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)

        def broken(self, cs, step_row, row, now):
            raise RuntimeError("template data missing")

        monkeypatch.setattr(CollectHandler, "extra", broken)
        report = run(session, local(2019, 11, 1, 9, 0))  # the call (collect) and the meeting invitation are due
        assert report.blocked == ["GSWG/call_for_suggestions: RuntimeError: template data missing"]
        assert len(ready_to(session, "annual_review_meeting", "invite")) == 10  # the meeting goes on
        assert {r.state for r in rows(session, kind="call")} == {"scheduled"}  # kept for the next try
        assert step(session, cycle, "call_for_suggestions").data["blocked"]["reason"].startswith("RuntimeError")

        monkeypatch.undo()
        report = run(session, local(2019, 11, 1, 10, 0))
        assert report.blocked == [] and len(ready_to(session, "call_for_suggestions", "call")) == 9
        assert "blocked" not in step(session, cycle, "call_for_suggestions").data


def test_a_cycle_whose_dates_cannot_be_computed_blocks_only_itself(engine, tmp_path):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        gswg = start_gswg(session)
        other = start_cycle(session, _other_group(session, tmp_path), 2020, {}, local(2019, 10, 1, 9, 0))
        session.commit()
        gswg.anchors = {**gswg.anchors, "annual_meeting": "not a date"}  # a hand-edited row
        session.commit()
        report = run(session, local(2019, 11, 1, 9, 0))
        assert report.blocked and report.blocked[0].startswith("GSWG/call_for_suggestions: the cycle's dates")
        assert step(session, other, "call_for_suggestions").state == "open"


# ---- 3. anchors ------------------------------------------------------------------------------------------------

def test_anchor_far_from_the_year_is_refused(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        with pytest.raises(CycleError, match="far from planning year 2020"):
            start_gswg(session, anchors={"annual_meeting": local(1800, 1, 1, 8, 30)})
        session.rollback()
        cycle = start_gswg(session)
        with pytest.raises(CycleError, match="far from planning year"):
            move_anchor(session, cycle, "annual_meeting", local(2031, 11, 13, 8, 30), local(2019, 10, 2, 9, 0))


def test_a_move_into_the_past_needs_force_and_reopen_is_the_way_back(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        now = local(2019, 11, 4, 9, 0)
        run(session, now)
        with pytest.raises(CycleError, match="in the past") as refused:
            move_anchor(session, cycle, "annual_meeting", local(2019, 1, 14, 8, 30), now)
        assert "call_for_suggestions" in str(refused.value) and "--force" in str(refused.value)
        session.rollback()
        assert step(session, cycle, "call_for_suggestions").due_at == local(2019, 11, 11, 17, 0)  # unchanged

        # Forced (the operator's mistake): the call and the meeting close at the next tick.
        move_anchor(session, cycle, "annual_meeting", local(2019, 1, 14, 8, 30), now, force=True)
        session.commit()
        run(session, local(2019, 11, 4, 10, 0))
        assert step(session, cycle, "annual_review_meeting").state == "closed"
        with pytest.raises(CycleError, match="was held"):  # 4. no move after the meeting was held
            move_anchor(session, cycle, "annual_meeting", local(2019, 11, 13, 8, 30), local(2019, 11, 4, 11, 0))
        session.rollback()

        # The way back: reopen both, move the anchor back; nothing sent is sent again.
        sent = {r.key: r.message_id for r in rows(session) if r.state == "ready"}
        with pytest.raises(CycleError, match="give a new one with --due"):
            reopen_step(session, cycle, "call_for_suggestions", local(2019, 11, 4, 11, 0))
        session.rollback()
        reopen_step(session, cycle, "call_for_suggestions", local(2019, 11, 4, 11, 0), due=local(2019, 11, 11, 17, 0))
        reopen_step(session, cycle, "annual_review_meeting", local(2019, 11, 4, 11, 0))
        move_anchor(session, cycle, "annual_meeting", local(2019, 11, 13, 8, 30), local(2019, 11, 4, 11, 0))
        session.commit()
        run(session, local(2019, 11, 6, 9, 0))
        call = step(session, cycle, "call_for_suggestions")
        assert call.state == "open" and call.due_at == local(2019, 11, 11, 17, 0)
        assert step(session, cycle, "annual_review_meeting").state == "open"
        assert {r.key: r.message_id for r in rows(session) if r.key in sent} == sent
        assert len(ready_to(session, "call_for_suggestions", "reminder")) > 0  # its reminders are planned again
        run(session, local(2019, 11, 13, 13, 0))
        assert step(session, cycle, "annual_review_meeting").state == "closed"


def test_cancel_sends_cancellations_for_announced_meetings_and_nothing_else(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))  # the annual meeting's invitation went out
        report = cancel_cycle(session, cycle, local(2019, 10, 31, 9, 0))
        session.commit()
        assert report["cancellations"] == 10
        before = {r.id for r in rows(session) if r.state == "ready"}
        run(session, local(2020, 4, 30, 9, 0))
        new = [r for r in rows(session) if r.state == "ready" and r.id not in before]
        assert {r.kind for r in new} == {"cancel"} and len(new) == 10
        assert session.get(Cycle, cycle.id).state == "cancelled"
        assert all(s["state"] == "skipped" for s in cycle_status(session, cycle)["steps"])
        with pytest.raises(CycleError, match="not live"):
            cancel_cycle(session, cycle, local(2019, 10, 31, 9, 0))


# ---- 4. updates ------------------------------------------------------------------------------------------------

def test_two_moves_before_a_tick_send_one_update_at_the_latest_sequence(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 10, 30, 9, 0))
        move_anchor(session, cycle, "annual_meeting", local(2019, 11, 20, 8, 30), local(2019, 10, 31, 9, 0))
        move_anchor(session, cycle, "annual_meeting", local(2019, 11, 27, 8, 30), local(2019, 10, 31, 9, 5))
        session.commit()
        run(session, local(2019, 10, 31, 10, 0))
        updates = [r for r in rows(session, kind="update") if r.state == "ready"]
        assert len(updates) == 10 and len({r.recipient for r in updates}) == 10
        event = _event(session, updates[0])
        assert int(event["SEQUENCE"]) == 2 and event.decoded("DTSTART") == local(2019, 11, 27, 8, 30)
        entry = session.exec(select(CalendarEntry).where(CalendarEntry.uid == str(event["UID"]))).one()
        assert entry.sequence == 2


def _event(session, row):
    mail = message_from_bytes(payload_of(session, row.id), policy=policy.default)
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    return Calendar.from_ical(part.get_content()).walk("VEVENT")[0]


# ---- 6. audiences on the day a message is decided ---------------------------------------------------------------

def test_someone_removed_gets_nothing_more_and_a_new_chair_gets_the_open_request(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))
        assert "m2@example.org" in ready_to(session, "call_for_suggestions", "call")
        _end_roles(session, ("member",), date(2019, 11, 4))  # m1, m2 (GSWG members) leave on 4 November
        run(session, local(2019, 11, 6, 9, 0))  # first reminder
        reminded = ready_to(session, "call_for_suggestions", "reminder")
        assert "m3@example.org" in reminded and not reminded & {"m1@example.org", "m2@example.org"}
        skipped = [r for r in rows(session, kind="reminder", recipient="m2@example.org") if r.state == "skipped"]
        assert skipped and skipped[0].last_error.startswith("not in the audience")

        run(session, local(2020, 2, 24, 9, 0))
        assert ready_to(session, "approval", "approval_request") == APPROVERS
        _end_roles(session, ("co-chair",), date(2020, 2, 25))  # the co-chairs rotate out, m4 comes in
        gid = session.exec(select(WorkingGroup.id).where(WorkingGroup.code == "GSWG")).one()
        session.add(Membership(member_id=people["m4@example.org"].id, group_id=gid, role="co-chair",
                               starts_on=date(2020, 2, 25)))
        session.commit()
        run(session, local(2020, 2, 25, 9, 0))
        assert ready_to(session, "approval", "approval_request") == APPROVERS | {"m4@example.org"}
        # The verdict counts today's approvers: the chair and the new co-chair.
        approval = step(session, cycle, "approval")
        for email in ("chair@example.org", "m4@example.org"):
            session.add(Decision(step_id=approval.id, member_id=people[email].id, decision="approve",
                                 plan_revision=1, at=local(2020, 2, 26, 10, 0)))
        session.commit()
        run(session, local(2020, 2, 26, 11, 0))
        assert step(session, cycle, "approval").outcome == "approved"
        reminders = {r.recipient for r in rows(session, step_key="approval", kind="reminder") if r.state == "ready"}
        assert not reminders & {"cochair.moj@example.org", "cochair.undp@example.org"}


# ---- 10. preview ------------------------------------------------------------------------------------------------

def test_preview_leaves_out_what_the_next_tick_skips_as_stale(engine):
    with Session(engine, expire_on_commit=False) as session:
        seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))
        down = local(2019, 11, 9, 9, 0)  # both reminders of the call are stale: one digest per person
        listed = [r for r in preview(session, cycle, down) if r["at"] == down.isoformat()]
        call = {r["kind"]: r["recipients"] for r in listed if r["step"] == "call_for_suggestions"}
        assert call.get("digest") == 9 and "reminder" not in call
        report = run(session, down)
        assert report.by_kind["digest"] == 9 and report.by_kind["reminder"] == 0

        later = local(2019, 11, 25, 9, 0)  # down again: the survey and the escalation are stale
        kinds = {(r["step"], r["kind"]) for r in preview(session, cycle, later) if r["at"] == later.isoformat()}
        assert ("annual_review_meeting", "survey") not in kinds
        assert ("call_for_suggestions", "escalation") not in kinds
        assert ("annual_review_meeting", "minutes_due") in kinds  # send late: still listed
        report = run(session, later)
        assert report.by_kind["survey"] == 0 and report.by_kind["escalation"] == 0
        assert report.by_kind["minutes_due"] == 2
