"""Signed action links: a token bound to member + step + purpose (+ plan revision), with an expiry.

Token = "<purpose>.<itsdangerous URL-safe timed signature>". The purpose is also the salt, so a
survey token can never pass as an approval token; it is spelled out in front so the verifier knows
which salt to use. Opening a link (GET) must only show a confirm page; deciding once is the web
app's business (DESIGN §3).
"""

import re
from datetime import timedelta
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_PURPOSE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class ActionLinkError(ValueError):
    """The link cannot be used; `reason` is 'expired', 'invalid' or 'wrong-purpose'."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@lru_cache(maxsize=32)  # one per (key, purpose): a cycle signs a link for every message
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    if not secret:
        raise ValueError("no secret key: run `roundtable init` or set ROUNDTABLE_SECRET_KEY")
    return URLSafeTimedSerializer(secret, salt=f"roundtable.action.{purpose}")


def sign_action(secret: str, *, member_id: int, step_id: int, purpose: str, revision: int = 0) -> str:
    if not _PURPOSE.match(purpose):
        raise ValueError(f"purpose must be a short lower-case word, got {purpose!r}")
    body = {"m": member_id, "s": step_id, "p": purpose, "r": revision}
    return f"{purpose}.{_serializer(secret, purpose).dumps(body)}"


def verify_action(secret: str, token: str, *, max_age: timedelta, purpose: str | None = None) -> dict:
    """{'member_id', 'step_id', 'purpose', 'revision'}; raises ActionLinkError when expired or tampered.

    Pass `purpose` to insist on one (an approval page should only accept approval tokens).
    """
    token_purpose, _, signed = token.partition(".")
    if not _PURPOSE.match(token_purpose) or not signed:
        raise ActionLinkError("invalid", "this link is damaged or incomplete")
    if purpose is not None and token_purpose != purpose:
        raise ActionLinkError("wrong-purpose", f"this link is for {token_purpose!r}, not {purpose!r}")
    try:
        body = _serializer(secret, token_purpose).loads(signed, max_age=int(max_age.total_seconds()))
    except SignatureExpired as exc:
        raise ActionLinkError("expired", "this link has expired; ask the secretariat for a new one") from exc
    except BadSignature as exc:
        raise ActionLinkError("invalid", "this link is not valid (altered or signed with another key)") from exc
    if body.get("p") != token_purpose:
        raise ActionLinkError("invalid", "this link is not valid (purpose mismatch)")
    return {"member_id": body["m"], "step_id": body["s"], "purpose": body["p"], "revision": body["r"]}


def action_url(base_url: str, token: str) -> str:
    """The recipient's own link: <base_url>/action/<token> (tokens are URL-safe)."""
    return f"{base_url.rstrip('/')}/action/{token}"


# Calendar feeds: a secret URL per member or group, to subscribe to once. It never expires (a subscription
# lives as long as the key); the salt keeps a feed token from passing as an action token or the reverse.
_FEED_SALT = "roundtable.feed"


def feed_token(secret: str, *, group: str = "", member_id: int | None = None) -> str:
    return URLSafeTimedSerializer(secret, salt=_FEED_SALT).dumps({"g": group} if group else {"m": member_id})


def read_feed_token(secret: str, token: str) -> dict:
    """{'g': code} or {'m': member id}; raises itsdangerous.BadSignature when altered or of another key."""
    return URLSafeTimedSerializer(secret, salt=_FEED_SALT).loads(token)


def feed_url(base_url: str, token: str) -> str:
    """webcal://<host>/feeds/<token>.ics: calendar programs subscribe to a webcal link."""
    return f"webcal://{base_url.split('://', 1)[-1].rstrip('/')}/feeds/{token}.ics"
