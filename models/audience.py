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
    name_en: str = ""  # the name in Latin letters, for English text ("" = as `name`)


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


# Courtesy titles as a roster may give them, and how each language writes them: (Lao, English).
COURTESY_TITLES = {
    "ທ່ານ": ("ທ່ານ", "Mr"), "ທ່ານນາງ": ("ທ່ານນາງ", "Ms"), "ດຣ.": ("ດຣ.", "Dr"), "ປອ.": ("ປອ.", "Dr"),
    "mr": ("ທ່ານ", "Mr"), "ms": ("ທ່ານນາງ", "Ms"), "mrs": ("ທ່ານນາງ", "Mrs"), "dr": ("ດຣ.", "Dr"),
    "prof": ("ສຈ.", "Prof."), "h.e.": ("ທ່ານ", "H.E."),
}


def courtesy_titles(title: str) -> tuple[str, str]:
    """A roster's title in each language ('Dr' -> ('ດຣ.', 'Dr')); one we do not know is written as given."""
    title = (title or "").strip()
    return COURTESY_TITLES.get(title) or COURTESY_TITLES.get(title.lower().rstrip(".")) or COURTESY_TITLES.get(
        title.lower()) or (title, title)


def audience(session: Session, group_codes: Iterable[str], roles: Iterable[str], on: date) -> list[Addressee]:
    """Members holding any of `roles` in any of `group_codes` on day `on`, each once, ordered by email."""
    group_codes, roles = list(group_codes), list(roles)
    if not group_codes or not roles:
        return []
    # Columns, not Member objects: a step's audience is hundreds of people, asked for at every tick.
    rows = session.exec(
        select(Member.id, Member.name, Member.email, Member.language, Member.organisation, Membership.role,
               WorkingGroup.code, Member.name_en)
        .join(Membership, Membership.member_id == Member.id)
        .join(WorkingGroup, WorkingGroup.id == Membership.group_id)
        .where(WorkingGroup.code.in_(group_codes))
        .where(Membership.role.in_(roles), *open_on(on))
    ).all()
    best: dict[int, Addressee] = {}
    for member_id, name, email, language, organisation, role, code, name_en in rows:
        _keep_highest(best, Addressee(member_id, name, email, language, organisation, role, code, name_en))
    return sorted(best.values(), key=lambda a: a.email)


def open_on(on):
    """The conditions of a membership open on day `on` (a date, or a bound parameter standing for one)."""
    return (or_(Membership.starts_on.is_(None), Membership.starts_on <= on),
            or_(Membership.ends_on.is_(None), Membership.ends_on > on))


def _keep_highest(best: dict[int, Addressee], person: Addressee) -> None:
    """Each person once, by the highest-ranking of their roles."""
    current = best.get(person.member_id)
    if current is None or ROLE_RANK.index(person.role) < ROLE_RANK.index(current.role):
        best[person.member_id] = person


def deputies(session: Session, principal_ids: Iterable[int], group_codes: Iterable[str],
             on: date) -> dict[int, list[Addressee]]:
    """The deputies named in the roster (column deputy_for) for each of `principal_ids`, by a membership in one
    of `group_codes` open on day `on`: principal id -> deputies, each once, ordered by email."""
    principal_ids, group_codes = list(principal_ids), list(group_codes)
    if not principal_ids or not group_codes:
        return {}
    rows = session.exec(
        select(Membership.deputy_for_id, Member.id, Member.name, Member.email, Member.language, Member.organisation,
               Membership.role, WorkingGroup.code, Member.name_en)
        .join(Membership, Membership.member_id == Member.id)
        .join(WorkingGroup, WorkingGroup.id == Membership.group_id)
        .where(Membership.deputy_for_id.in_(principal_ids), WorkingGroup.code.in_(group_codes), *open_on(on))
    ).all()
    found: dict[int, dict[int, Addressee]] = {}
    for principal, member_id, name, email, language, organisation, role, code, name_en in rows:
        _keep_highest(found.setdefault(principal, {}),
                      Addressee(member_id, name, email, language, organisation, role, code, name_en))
    return {principal: sorted(mine.values(), key=lambda a: a.email) for principal, mine in found.items()}


def principals_of(session: Session, deputy_id: int, group_codes: Iterable[str], on: date) -> list[int]:
    """Whom `deputy_id` deputises for by a membership in one of `group_codes` open on day `on`."""
    rows = session.exec(
        select(Membership.deputy_for_id).join(WorkingGroup, WorkingGroup.id == Membership.group_id)
        .where(Membership.member_id == deputy_id, Membership.deputy_for_id.is_not(None),
               WorkingGroup.code.in_(list(group_codes)), *open_on(on))).all()
    return sorted(set(rows))
