"""MIME composition: a rendered message (+ optional calendar part and attachments) -> RFC 5322 bytes.

Shape (DESIGN §4): multipart/alternative (text/plain, text/html[, text/calendar; method=...]);
with a calendar or attachments it is wrapped in multipart/mixed, the calendar repeated as an
application/ics attachment (clients that ignore the inline part still see the file).
Bodies are base64 so no line exceeds 998 octets and the bytes are 7-bit clean.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Sequence

from notifications.render import Rendered

_METHOD_LINE = re.compile(rb"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


class _MemoizingSMTPPolicy(EmailPolicy):
    """email.policy.SMTP that parses and folds each distinct header value once.

    Most header values repeat from message to message (From, Reply-To, the Lao Subject of a step,
    the parts' Content-Type): parsing and RFC 2047 folding them is ~70 % of composing a message.
    Header objects are immutable, so sharing them between messages changes no byte.
    """

    _LIMIT = 1_000  # distinct values remembered; cleared when full (a parsed header weighs kilobytes)
    # Values that differ in every message are not worth remembering.
    _UNIQUE = frozenset({"to", "cc", "message-id", "date"})

    def _repeats(self, name: str, value: str) -> bool:
        return name.lower() not in self._UNIQUE and "boundary=" not in value

    def header_store_parse(self, name, value):
        if type(value) is not str or not self._repeats(name, value):  # a header object, or a one-off
            return super().header_store_parse(name, value)
        return _memo(_parsed, (name, value), lambda: super(_MemoizingSMTPPolicy, self).header_store_parse(name, value))

    def fold_binary(self, name, value):
        if not self._repeats(name, str(value)):
            return super().fold_binary(name, value)
        return _memo(_folded, (name, str(value)), lambda: super(_MemoizingSMTPPolicy, self).fold_binary(name, value))


_parsed: dict = {}
_folded: dict = {}


def _memo(cache: dict, key, compute):
    found = cache.get(key)
    if found is None:
        if len(cache) >= _MemoizingSMTPPolicy._LIMIT:
            cache.clear()
        found = cache[key] = compute()
    return found


SMTP = _MemoizingSMTPPolicy(linesep="\r\n")  # the settings of email.policy.SMTP


@dataclass(frozen=True)
class CalendarPart:
    method: str  # REQUEST | CANCEL | PUBLISH ... must equal METHOD inside the ics
    ics: bytes
    filename: str = "invite.ics"


def message_id_for(key: str, domain: str) -> str:
    """The same outbox key always gives the same Message-ID, so a resend after a crash is recognisable."""
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@{domain}>"


def ics_method(ics: bytes) -> str | None:
    """The METHOD property of an iCalendar object (None when absent)."""
    match = _METHOD_LINE.search(ics)
    return match.group(1).decode("ascii").upper() if match else None


def build_message(rendered: Rendered, *, sender: str, to: list[str], cc: Sequence[str] = (),
                  reply_to: str | None, message_id: str, auto_submitted: bool = False,
                  calendar: CalendarPart | None = None,
                  attachments: Sequence[tuple[str, str, bytes]] = (), date: datetime) -> bytes:
    """Serialise one message with CRLF line ends; raises ValueError on an inconsistent calendar part."""
    if not to:
        raise ValueError("a message needs at least one To address")
    if calendar is not None:
        inside = ics_method(calendar.ics)
        if inside != calendar.method.upper():
            raise ValueError(f"calendar part says method={calendar.method!r} but the ics has METHOD:{inside}")

    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if auto_submitted:
        # RFC 3834; the second header keeps Exchange out-of-office replies away from the secretariat.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"

    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
    if calendar is not None:
        method = calendar.method.upper()
        msg.add_alternative(calendar.ics, maintype="text", subtype="calendar", cte="base64",
                            params={"method": method, "charset": "utf-8"})
        msg.add_attachment(calendar.ics, maintype="application", subtype="ics", filename=calendar.filename)
    for filename, media_type, content in attachments:
        maintype, _, subtype = media_type.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
    msg["Content-Language"] = "lo, en"  # after the body: set_content/make_mixed drop Content-* headers
    return msg.as_bytes(policy=SMTP)
