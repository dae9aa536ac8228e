"""What every response of the web app shares: security headers, request size limits, CSRF tokens,
and an access log that never shows an action token."""

import hashlib
import logging
import re

from itsdangerous import BadSignature, URLSafeTimedSerializer

# No inline script or style anywhere: the pages work with JavaScript off and load one stylesheet.
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),  # the token in the URL must not leak to a linked site
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
]
FORM_LIMIT = 64 * 1024  # a form of text fields
UPLOAD_LIMIT = 21 * 1024 * 1024  # the minutes (a 20 MB file and the form around it)
CSRF_MAX_AGE = 12 * 3600  # seconds a page's form stays usable
_ACTION_PATH = re.compile(r"(/action/[a-z][a-z0-9_-]{0,39})\.[A-Za-z0-9_.\-]+")


def redact(path: str) -> str:
    """'/action/approve.eyJt…' -> '/action/approve.…' (the purpose stays, the capability goes)."""
    return _ACTION_PATH.sub(r"\1.…", path)


class RedactTokens(logging.Filter):
    """On uvicorn's access logger: its record args are (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())


class Guard:
    """ASGI middleware: security headers on every response; bodies over the limit get 413 before the
    application reads them (by Content-Length, and by counting when the body comes in chunks)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        uploads = path.startswith("/action/minutes.") or (path.startswith("/desk/") and path.endswith("/upload"))
        limit = UPLOAD_LIMIT if uploads else FORM_LIMIT
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _too_large(send)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge()
            return message

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        try:
            await self.app(scope, counted_receive, with_headers)
        except TooLarge:
            await _too_large(send)


class TooLarge(Exception):
    """Raised from `receive` when a body without Content-Length grows over the limit."""


async def _too_large(send) -> None:
    body = "ຂໍ້ມູນທີ່ສົ່ງມາໃຫຍ່ເກີນໄປ — The request is too large.\n".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())] + HEADERS})
    await send({"type": "http.response.body", "body": body})


class Csrf:
    """A form token of our own (no cookie: mail links are opened in any browser): signed, timed, and
    bound to the action token of the page, so a form of one link cannot be posted to another."""

    def __init__(self, secret: str):
        self._serializer = URLSafeTimedSerializer(secret, salt="roundtable.csrf")

    @staticmethod
    def _bind(action_token: str) -> str:
        return hashlib.sha256(action_token.encode()).hexdigest()[:32]

    def issue(self, action_token: str) -> str:
        return self._serializer.dumps(self._bind(action_token))

    def valid(self, action_token: str, form_token: str | None) -> bool:
        if not form_token:
            return False
        try:
            return self._serializer.loads(form_token, max_age=CSRF_MAX_AGE) == self._bind(action_token)
        except BadSignature:
            return False
