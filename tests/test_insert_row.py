"""models.db.insert_row (one INSERT, no unit of work) writes exactly what insert_row_plain (add + flush)
writes, on both databases, and leaves a row the session goes on tracking."""

from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from models.db import insert_row, insert_row_plain
from models.tables import AnswerAudit, Decision, Response, Step
from tests.engine_helpers import local, seed_people, start_gswg

NOW = local(2019, 11, 4, 10, 0)


def _rows(step_id: int, member_id: int, n: int) -> list:
    """Rows of the tables answers write: JSON columns, zoned times, defaults left to the model."""
    return [Response(step_id=step_id, member_id=member_id, kind="suggestion", body=f"ສໍາມະນາ {n}",
                     data={"title": f"ສໍາມະນາ {n}", "months": [3, 4], "late": n % 2 == 0}, at=NOW + timedelta(n)),
            Response(step_id=step_id, member_id=member_id, kind="receipt", at=NOW),  # body, data: defaults
            AnswerAudit(at=NOW, member_id=member_id, step_id=step_id, kind="suggestion", action="create",
                        channel="web", late=bool(n), ref_id=n, detail={"title": "<b>x</b>"}),
            Decision(step_id=step_id, member_id=member_id, decision="reject", reason="ເຫດຜົນ", plan_revision=n, at=NOW)]


def _columns(session: Session, row) -> dict:
    """The row as stored, but its id and its step (each way writes to a step of its own: a decision is once)."""
    table = row.__table__
    found = session.execute(select(table).where(table.c.id == row.id)).mappings().one()
    return {name: value for name, value in found.items() if name not in ("id", "step_id")}


def _steps(session: Session, cycle_id: int) -> list[int]:
    return list(session.execute(select(Step.id).where(Step.cycle_id == cycle_id).order_by(Step.id)).scalars())


def test_insert_row_writes_what_the_unit_of_work_writes(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        session.commit()
        member = people["m1@example.org"].id
        one, other = _steps(session, cycle.id)[:2]
        plain = [insert_row_plain(session, row) for row in _rows(one, member, 0)]
        fast = [insert_row(session, row) for row in _rows(other, member, 0)]
        session.commit()
        for a, b in zip(plain, fast):
            assert b.id is not None and b.id != a.id
            assert _columns(session, a) == _columns(session, b), type(a).__name__
    with Session(engine) as session:  # and as a new session reads them
        for a, b in zip(plain, fast):
            assert _columns(session, a) == _columns(session, b)


def test_a_row_inserted_fast_is_tracked_like_any_other(engine):
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        row = insert_row(session, _rows(_steps(session, cycle.id)[0], people["m2@example.org"].id, 1)[0])
        assert row in session and session.get(Response, row.id) is row  # the identity map has it
        row.body = "changed"
        row.data = {**row.data, "uid": "abc"}  # what mail_in does to an RSVP it has just recorded
        session.commit()
    with Session(engine) as session:
        again = session.get(Response, row.id)
        assert again.body == "changed" and again.data["uid"] == "abc" and again.data["months"] == [3, 4]
