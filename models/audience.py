"""Who a step speaks to: members of some groups holding some roles on a given day."""

from dataclasses import dataclass
from datetime import date
from typing import Iterable

from sqlalchemy import or_
from sqlmodel import Session, select

from models.tables import Member, Membership, WorkingGroup


@dataclass(frozen=True)
class Addressee:
    member_id: int
    name: str
    email: str
    language: str
    organisation: str
    role: str  # the highest-ranking of the roles that put them in the audience
    group_code: str


# Lower index = higher rank; used to pick the one role a person is addressed by.
ROLE_RANK = ("chair", "co-chair", "secretariat-head", "secretariat", "mpi-focal", "member")
# How a role is named to its holder: (Lao, English), Lao terms from the seeds.
ROLE_TITLES = {
    "chair": ("ປະທານ", "Chair"),
    "co-chair": ("ປະທານຮ່ວມ", "Co-chair"),
    "secretariat-head": ("ຫົວໜ້າກອງເລຂາ", "Head of the secretariat"),
    "secretariat": ("ກອງເລຂາ", "Secretariat"),
    "mpi-focal": ("ຜູ້ປະສານງານ ກະຊວງແຜນການ ແລະ ການລົງທຶນ", "MPI focal point"),
    "member": ("ສະມາຊິກ", "Member"),
}


def audience(session: Session, group_codes: Iterable[str], roles: Iterable[str], on: date) -> list[Addressee]:
    """Members holding any of `roles` in any of `group_codes` on day `on`, each once, ordered by email."""
    group_codes, roles = list(group_codes), list(roles)
    if not group_codes or not roles:
        return []
    # Columns, not Member objects: a step's audience is hundreds of people, asked for at every tick.
    rows = session.exec(
        select(Member.id, Member.name, Member.email, Member.language, Member.organisation, Membership.role,
               WorkingGroup.code)
        .join(Membership, Membership.member_id == Member.id)
        .join(WorkingGroup, WorkingGroup.id == Membership.group_id)
        .where(WorkingGroup.code.in_(group_codes))
        .where(Membership.role.in_(roles))
        .where(or_(Membership.starts_on.is_(None), Membership.starts_on <= on))
        .where(or_(Membership.ends_on.is_(None), Membership.ends_on > on))
    ).all()
    best: dict[int, Addressee] = {}
    for member_id, name, email, language, organisation, role, code in rows:
        current = best.get(member_id)
        if current is None or ROLE_RANK.index(role) < ROLE_RANK.index(current.role):
            best[member_id] = Addressee(member_id, name, email, language, organisation, role, code)
    return sorted(best.values(), key=lambda a: a.email)
