"""MIME composition: a rendered message (+ optional calendar part and attachments) -> RFC 5322 bytes.

The fast path: the bytes are written by hand. notifications/compose_plain.py builds the same message
with email.message.EmailMessage, as this did before; tests/test_compose_equivalence.py holds the
two to the same bytes.

Shape (DESIGN §4): multipart/alternative (text/plain, text/html[, text/calendar; method=...]);
with a calendar or attachments it is wrapped in multipart/mixed, the calendar repeated as an
application/ics attachment (clients that ignore the inline part still see the file).
Bodies are base64 so no line exceeds 998 octets and the bytes are 7-bit clean.
"""

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage, MIMEPart
from functools import lru_cache
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Sequence

from models.memo import Memo
from notifications.render import Rendered

_METHOD_LINE = re.compile(rb"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


class _MemoizingSMTPPolicy(EmailPolicy):
    """email.policy.SMTP that parses and folds each distinct header value once.

    Most header values repeat from message to message (From, Reply-To, the Lao Subject of a step,
    the parts' Content-Type): parsing and RFC 2047 folding them is ~70 % of composing a message.
    Header objects are immutable, so sharing them between messages changes no byte.
    """

    # Values that differ in every message are not worth remembering.
    _UNIQUE = frozenset({"to", "cc", "message-id", "date"})

    def _repeats(self, name: str, value: str) -> bool:
        return name.lower() not in self._UNIQUE and "boundary=" not in value

    def header_store_parse(self, name, value):
        if type(value) is not str or not self._repeats(name, value):  # a header object, or a one-off
            return super().header_store_parse(name, value)
        return _parsed.get((name, value), lambda: super(_MemoizingSMTPPolicy, self).header_store_parse(name, value))

    def fold_binary(self, name, value):
        if not self._repeats(name, str(value)):
            return super().fold_binary(name, value)
        return _folded.get((name, str(value)), lambda: super(_MemoizingSMTPPolicy, self).fold_binary(name, value))


# Distinct values remembered; a parsed header weighs kilobytes.
_parsed = Memo("notifications.compose.parsed_headers", 1_000)
_folded = Memo("notifications.compose.folded_headers", 1_000)
_subjects = Memo("notifications.compose.encoded_subjects", 1_000)


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


def check_message(to: Sequence[str], calendar: CalendarPart | None) -> None:
    """Refuse a message without a To address or whose calendar part's method differs from the ics's."""
    if not to:
        raise ValueError("a message needs at least one To address")
    if calendar is not None:
        inside = ics_method(calendar.ics)
        if inside != calendar.method.upper():
            raise ValueError(f"calendar part says method={calendar.method!r} but the ics has METHOD:{inside}")


def build_message(rendered: Rendered, *, sender: str, to: list[str], cc: Sequence[str] = (),
                  reply_to: str | None, message_id: str, auto_submitted: bool = False,
                  calendar: CalendarPart | None = None,
                  attachments: Sequence[tuple[str, str, bytes]] = (), date: datetime) -> bytes:
    """Serialise one message with CRLF line ends; raises ValueError on an inconsistent calendar part.

    The bytes are those EmailMessage (set_content, add_alternative, add_attachment) and
    as_bytes(policy=SMTP) would give with the same boundaries (notifications/compose_plain.py is that
    spec), written directly: the email package costs ~1.4 ms a message. The boundaries derive from
    the Message-ID, so the same input gives the same bytes.
    """
    check_message(to, calendar)
    plain_head, html_head = _text_part_heads()
    alternatives = [plain_head + b"\r\n" + _text_body(rendered.text),
                    html_head + b"\r\n" + _text_body(rendered.html)]
    attached = []
    if calendar is not None:
        ics_body = _base64_lines(calendar.ics)
        alternatives.append(_calendar_head(calendar.method.upper()) + b"\r\n" + ics_body)
        attached.append(_attachment_head("application", "ics", calendar.filename) + b"\r\n" + ics_body)
    for filename, media_type, content in attachments:
        maintype, _, subtype = media_type.partition("/")
        attached.append(_attachment_head(maintype, subtype or "octet-stream", filename) + b"\r\n"
                        + _attachment_body(content))

    content_type, body = _multipart("alternative", message_id, alternatives)
    if attached:
        # The alternative becomes the mixed's first part; its Content-Type is its only header.
        content_type, body = _multipart("mixed", message_id, [content_type + b"\r\n" + body, *attached])

    head = [_header("From", sender), _address_header("To", to)]
    if cc:
        head.append(_address_header("Cc", cc))
    if reply_to:
        # a list: with a reply mailbox each message has its own address (too many to remember in SMTP)
        head.append(_address_header("Reply-To", [a.strip() for a in reply_to.split(",")]))
    head += [_subject_header(rendered.subject), _date_header(format_datetime(date)),
             _message_id_header(message_id)]
    if auto_submitted:
        # RFC 3834; the second header keeps Exchange out-of-office replies away from the secretariat.
        head += [_header("Auto-Submitted", "auto-generated"), _header("X-Auto-Response-Suppress", "All")]
    head += [_header("MIME-Version", "1.0"), content_type, _header("Content-Language", "lo, en"), b"\r\n"]
    return b"".join(head) + body


# ---------------------------------------------------------------- writing the parts by hand

_LINE_LIMIT = SMTP.max_line_length  # a header line no longer than this is not folded
# The email package's boundary shape (Generator._make_boundary): 15 '=', 19 digits, '=='.
_BOUNDARY_PLACEHOLDER = "=" * 15 + "0" * 19 + "=="
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_PLAIN_MESSAGE_ID = re.compile(r"<[0-9A-Za-z]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")


def _header(name: str, value: str) -> bytes:
    """One header line as the generator writes it (SMTP remembers the values that repeat)."""
    return SMTP.fold_binary(name, SMTP.header_store_parse(name, value)[1])


def subject_value(subject: str) -> str:
    """The Subject as RFC 2047 words that keep every space. The email package's own folding can put
    the space between the two languages at a fold between two encoded words, where every reader
    drops it ("plan —ສະເໜີ"); Header encodes the whole text, so each space sits inside a word."""
    if subject.isascii():
        return subject
    # A step's subject repeats for each recipient; encoding it costs ~0.5 ms.
    return _subjects.get(subject, lambda: Header(subject, "utf-8", header_name="Subject").encode(linesep="\n"))


def _subject_header(subject: str) -> bytes:
    if subject.isascii():
        return _header("Subject", subject)
    return SMTP.fold_binary("Subject", subject_value(subject))  # already folded: written as it is


def _address_header(name: str, addresses: Sequence[str]) -> bytes:
    value = ", ".join(addresses)
    # Short lists of bare ASCII addresses come out of the policy as they went in; parsing them
    # would cost ~60 µs a message.
    if len(name) + 2 + len(value) <= _LINE_LIMIT and all(_BARE_ADDRESS.fullmatch(a) for a in addresses):
        return f"{name}: {value}\r\n".encode("ascii")
    return _header(name, value)


def _message_id_header(message_id: str) -> bytes:
    # A short <letters-and-digits@domain>, as message_id_for makes, comes out of the policy
    # unchanged (parsing it: ~30 µs).
    if len(message_id) + 12 <= _LINE_LIMIT and _PLAIN_MESSAGE_ID.fullmatch(message_id):
        return f"Message-ID: {message_id}\r\n".encode("ascii")
    return _header("Message-ID", message_id)


@lru_cache(maxsize=64)
def _date_header(value: str) -> bytes:
    # A batch shares one date; the policy re-parses and re-formats it (~45 µs), so remember it.
    return _header("Date", value)


def _headers_of(part: MIMEPart) -> bytes:
    """A part's header block as BytesGenerator._write_headers writes it (without the blank line)."""
    return b"".join(SMTP.fold_binary(name, value) for name, value in part.raw_items())


# The header blocks are taken from parts the email package itself assembles (with empty content:
# they do not depend on it), so its quirks carry over: the text/plain part, moved out of the root by
# make_alternative, has no MIME-Version and every added part has one; set_param moves the calendar
# part's Content-Type after its Content-Transfer-Encoding; long parameters are folded.

@lru_cache(maxsize=1)
def _text_part_heads() -> tuple[bytes, bytes]:
    """Header blocks of the text/plain and the text/html part."""
    message = EmailMessage(policy=SMTP)
    message.set_content("", subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative("", subtype="html", charset="utf-8", cte="base64")
    plain, html = message.iter_parts()
    return _headers_of(plain), _headers_of(html)


@lru_cache(maxsize=16)
def _calendar_head(method: str) -> bytes:
    """Header block of the inline text/calendar part (as add_alternative makes it)."""
    part = EmailMessage(policy=SMTP)
    part.set_content(b"", maintype="text", subtype="calendar", cte="base64",
                     params={"method": method, "charset": "utf-8"})
    return _headers_of(part)


@lru_cache(maxsize=256)
def _attachment_head(maintype: str, subtype: str, filename: str) -> bytes:
    """Header block of an attachment (as add_attachment makes it)."""
    part = EmailMessage(policy=SMTP)
    part.set_content(b"", maintype=maintype, subtype=subtype, filename=filename)
    return _headers_of(part)


@lru_cache(maxsize=2)
def _multipart_head(subtype: str) -> bytes:
    """'Content-Type: multipart/...; boundary=...' as the generator folds it, with a placeholder
    boundary: every boundary has the placeholder's length and characters, so folds the same."""
    part = MIMEPart(policy=SMTP)
    part["Content-Type"] = f"multipart/{subtype}"
    part.set_boundary(_BOUNDARY_PLACEHOLDER)
    return _headers_of(part)


def _multipart(subtype: str, message_id: str, parts: list[bytes]) -> tuple[bytes, bytes]:
    """(Content-Type header, body) of a multipart holding parts (each a header block, blank line, body),
    laid out as Generator._handle_multipart does."""
    boundary = _boundary(f"{message_id} {subtype}", parts)
    delimiter = b"\r\n--" + boundary + b"\r\n"
    body = b"--" + boundary + b"\r\n" + delimiter.join(parts) + b"\r\n--" + boundary + b"--\r\n"
    return _multipart_head(subtype).replace(_BOUNDARY_PLACEHOLDER.encode("ascii"), boundary), body


def _boundary(seed: str, parts: list[bytes]) -> bytes:
    """A boundary of the email package's shape, drawn from seed instead of at random (same input,
    same bytes) and drawn again while it occurs in a part. The seeds of the inner and the outer
    multipart differ; the outer's parts hold the inner boundary, so the two cannot be the same."""
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{seed} {attempt}".encode("utf-8")).digest()
        boundary = b"=" * 15 + b"%019d" % (int.from_bytes(digest[:8], "big") % 10**19) + b"=="
        if not any(boundary in part for part in parts):
            return boundary
        attempt += 1


def _base64_lines(data: bytes) -> bytes:
    # = contentmanager._encode_base64 at max_line_length 78 (57 bytes, 76 characters a line), CRLF ends.
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _text_body(text: str) -> bytes:
    # set_text_content ends every line, the last one included, with CRLF before encoding.
    return _base64_lines(b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n")


def _attachment_body(content: bytes) -> bytes:
    # bytearray and memoryview are accepted too (as add_attachment does) but cannot be remembered.
    return _remembered_base64_lines(content) if type(content) is bytes else _base64_lines(content)


@lru_cache(maxsize=16)
def _remembered_base64_lines(content: bytes) -> bytes:
    # The same document goes to thousands of members; bytes keep their hash, so a hit costs little.
    return _base64_lines(content)
