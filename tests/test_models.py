from datetime import datetime, timezone, timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from models.tables import Cycle, WorkingGroup

EXPECTED_TABLES = {
    "working_group", "member", "membership", "cycle", "step", "response",
    "decision", "notification", "notification_payload", "calendar_entry", "document",
}


def test_migrations_create_every_table(engine):
    assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())


def test_datetimes_come_back_aware_in_utc(engine):
    vientiane = timezone(timedelta(hours=7))
    with Session(engine) as session:
        group = WorkingGroup(code="GSWG", name_lo="ໜ່ວຍງານດ້ານການປົກຄອງ", name_en="Governance")
        session.add(group)
        session.flush()
        session.add(Cycle(group_id=group.id, year=2020, created_at=datetime(2019, 11, 1, 9, 0, tzinfo=vientiane)))
        session.commit()
    with Session(engine) as session:
        cycle = session.exec(select(Cycle)).one()
        assert cycle.created_at == datetime(2019, 11, 1, 2, 0, tzinfo=timezone.utc)
        assert cycle.created_at.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused_and_nothing_written(engine):
    with Session(engine) as session:
        group = WorkingGroup(code="PSI", name_lo="ການປັບປຸງບໍລິຫານລັດຖະການ", name_en="PSI")
        session.add(group)
        session.flush()
        session.add(Cycle(group_id=group.id, year=2020, created_at=datetime(2019, 11, 1, 9, 0)))
        with pytest.raises(StatementError, match="naive datetime refused"):
            session.commit()
    with Session(engine) as session:
        assert session.exec(select(Cycle)).all() == []
