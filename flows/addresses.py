"""What mail said about addresses: hard bounces (no more mail to them), soft bounces, people away.

Written by flows/mail_in.py from delivery reports and auto-replies; read by the tick (before it sends)
and by `status` and the desk. Kept apart from mail_in so that those readers import no mail parsing.
"""

from sqlmodel import Session, select

from models.tables import AddressStatus


def bouncing_addresses(session: Session) -> set[str]:
    """Addresses that bounce hard: no mail goes to them until the roster gives the member another one."""
    return set(session.exec(select(AddressStatus.email).where(AddressStatus.bounce == "bouncing")).all())


def clear_address(session: Session, address: str) -> bool:
    """The secretariat says the address works again (or the member is back): mail goes to it again."""
    status = session.exec(select(AddressStatus).where(AddressStatus.email == address.strip().lower())).first()
    if status is None:
        return False
    session.delete(status)
    return True


def address_problems(session: Session) -> list[dict]:
    """For `status` and the desk: every address that bounces, is deferred, or is away."""
    rows = session.exec(select(AddressStatus).where((AddressStatus.bounce != "") | AddressStatus.away)
                        .order_by(AddressStatus.email)).all()
    return [{"email": r.email, "bounce": r.bounce, "status": r.bounce_status, "detail": r.bounce_detail,
             "bounced_at": r.bounced_at.isoformat() if r.bounced_at else None, "away": r.away,
             "away_subject": r.away_subject} for r in rows]
