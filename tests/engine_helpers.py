"""People and a cycle for engine tests: GSWG with PSI and LIO, a handful of members in each role."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from flows.cycle import start_cycle
from flows.tick import EngineConfig, tick
from models.definition import load_definition
from models.tables import Member, Membership, Notification, Response, Step, WorkingGroup

ROOT = Path(__file__).resolve().parents[1]
GSWG_YAML = ROOT / "cycles" / "gswg.yaml"
LAO = ZoneInfo("Asia/Vientiane")
CONFIG = EngineConfig(sender="GSWG via Roundtable <roundtable@gswg.example.org>",
                      base_url="https://rt.example.org", secret="test-secret")

PEOPLE = [  # (email, role, group, name)
    ("chair@example.org", "chair", "GSWG", "ປະທານ ກະຊວງພາຍໃນ"),
    ("cochair.moj@example.org", "co-chair", "GSWG", "ປະທານຮ່ວມ ກະຊວງຍຸຕິທຳ"),
    ("cochair.undp@example.org", "co-chair", "GSWG", "UNDP Resident Representative"),
    ("head@example.org", "secretariat-head", "GSWG", "ຫົວໜ້າກອງເລຂາ"),
    ("staff@example.org", "secretariat", "GSWG", "ພະນັກງານກອງເລຂາ"),
    ("m1@example.org", "member", "GSWG", "ສະມາຊິກ 1"),
    ("m2@example.org", "member", "GSWG", "ສະມາຊິກ 2"),
    ("m3@example.org", "member", "PSI", "ສະມາຊິກ 3"),
    ("m4@example.org", "member", "LIO", "Member Four"),
    ("mpi@example.org", "mpi-focal", "GSWG", "ຜູ້ປະສານງານ MPI"),
]


def local(*args) -> datetime:
    return datetime(*args, tzinfo=LAO)


def seed_people(session: Session) -> dict[str, Member]:
    gswg = WorkingGroup(code="GSWG", name_lo="ໜ່ວຍງານດ້ານການປົກຄອງ", name_en="Governance Sector Working Group")
    session.add(gswg)
    session.flush()
    groups = {"GSWG": gswg}
    for code, lo, en in (("PSI", "ໜ່ວຍງານຍ່ອຍດ້ານການປັບປຸງບໍລິຫານລັດຖະການ", "Public Service Improvement"),
                         ("LIO", "ໜ່ວຍງານຍ່ອຍດ້ານນິຕິກຳ", "Legal and Institutional Oversight")):
        groups[code] = WorkingGroup(code=code, name_lo=lo, name_en=en, parent_id=gswg.id)
        session.add(groups[code])
    session.flush()
    members = {}
    for email, role, code, name in PEOPLE:
        member = Member(name=name, email=email, organisation="", language="lo")
        session.add(member)
        session.flush()
        session.add(Membership(member_id=member.id, group_id=groups[code].id, role=role))
        members[email] = member
    session.commit()
    return members


def start_gswg(session: Session, year: int = 2020, anchors=None, now=None):
    definition = load_definition(GSWG_YAML)
    cycle = start_cycle(session, definition, year, anchors or {}, now or local(2019, 10, 1, 9, 0), sender=CONFIG.sender)
    session.commit()
    return cycle


def step(session: Session, cycle, key: str) -> Step:
    return session.exec(select(Step).where(Step.cycle_id == cycle.id, Step.key == key)).one()


def rows(session: Session, **where) -> list[Notification]:
    query = select(Notification)
    for name, value in where.items():
        query = query.where(getattr(Notification, name) == value)
    return list(session.exec(query.order_by(Notification.id)).all())


def ready_to(session: Session, step_key: str, kind: str) -> set[str]:
    """Addresses with a rendered (ready or sent) message of this kind for this step."""
    return {r.recipient for r in rows(session, step_key=step_key, kind=kind) if r.state in ("ready", "sent")}


def answer(session: Session, step_row: Step, member: Member, kind: str, at: datetime, body: str = "ok") -> None:
    session.add(Response(step_id=step_row.id, member_id=member.id, kind=kind, body=body, at=at))
    session.commit()


def run(session: Session, now: datetime):
    return tick(session, now, CONFIG)
