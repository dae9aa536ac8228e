"""Reply addresses: `replies+<row>x<signature>@example.org`, one per outbox row.

Short (a row id and 13 characters of HMAC-SHA256), lower-case only (some servers fold the local
part's case), and signed with the deployment's secret, so a reply is tied to the message it answers
even when the client drops In-Reply-To. With no reply mailbox configured, Reply-To stays the
secretariat and replies are matched by In-Reply-To / References instead.
"""

import base64
import hashlib
import hmac
import re
from email.utils import parseaddr

_TOKEN = re.compile(r"^(\d{1,12})x([a-z2-7]{13})$")


def _signature(secret: str, row_id: int) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"roundtable.reply.{row_id}".encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:8]).decode("ascii").lower().rstrip("=")  # 64 bits, 13 characters


def reply_address(mailbox: str, secret: str, row_id: int) -> str:
    """replies@example.org + row 42 -> replies+42x<signature>@example.org."""
    local, _, domain = parseaddr(mailbox)[1].partition("@")
    return f"{local}+{row_id}x{_signature(secret, row_id)}@{domain}"


def row_of(mailbox: str, secret: str, address: str) -> int | None:
    """The outbox row a reply address belongs to; None when it is not ours or the signature is wrong."""
    local, _, domain = parseaddr(mailbox)[1].lower().partition("@")
    their_local, _, their_domain = address.lower().partition("@")
    base, plus, token = their_local.partition("+")
    if not plus or base != local or their_domain != domain:
        return None
    match = _TOKEN.match(token)
    if match is None or not secret:
        return None
    row_id = int(match.group(1))
    return row_id if hmac.compare_digest(match.group(2), _signature(secret, row_id)) else None


def is_reply_address(mailbox: str, address: str) -> bool:
    """Whether `address` is the reply mailbox itself or one of its + addresses (signed or not)."""
    local, _, domain = parseaddr(mailbox)[1].lower().partition("@")
    their_local, _, their_domain = address.lower().partition("@")
    return bool(local) and their_domain == domain and their_local.partition("+")[0] == local


def reply_to_header(mailbox: str | None, secret: str, row_id: int, secretariat: str | None) -> str | None:
    """The Reply-To of an outgoing message: the row's reply address and the secretariat (so a reply
    still reaches a person), or only the secretariat when no reply mailbox is configured."""
    if not mailbox or not secret:
        return secretariat
    own = reply_address(mailbox, secret, row_id)
    return f"{own}, {secretariat}" if secretariat else own


def organizer(mailbox: str, group_code: str) -> tuple[str, str]:
    """(CN, address) of the ORGANIZER of invitations when replies come back to `mailbox`."""
    return f"{group_code} Secretariat", parseaddr(mailbox)[1]
