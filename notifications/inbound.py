"""Reading one inbound mail: who sent it, what it answers, and what kind of mail it is.

Pure parsing, no database: `parse(raw)` gives an `Inbound` that flows/mail_in.py matches against
the outbox and records. Kinds told apart here: delivery status notifications (RFC 3464), auto-replies
(RFC 3834 headers and out-of-office subjects in English, Lao and French), iTIP replies (parsed by
calendars/rsvp.py), and plain replies, whose new text is kept without the quoted history and the
signature (mail-parser-reply, with the Lao "wrote" and Outlook header lines added).
"""

import email
import email.header
import email.policy
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024  # a reply is a few kB; a bigger file is not read at all


class TooLarge(ValueError):
    pass


def read_limited(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; never reads more than limit + 1 bytes
    (a device such as /dev/zero, or a file that grows, cannot make us read it whole)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise TooLarge("not a regular file")
    if info.st_size > limit:
        raise TooLarge(f"{info.st_size} bytes: over the {limit // (1024 * 1024)} MB limit for a mail")
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"over the {limit // (1024 * 1024)} MB limit for a mail")
    return data


@dataclass(frozen=True)
class Dsn:
    """One recipient of a delivery status notification."""

    recipient: str
    status: str  # e.g. 5.1.1
    action: str  # failed | delayed | delivered | relayed | expanded
    diagnostic: str = ""

    @property
    def hard(self) -> bool:
        return self.status.startswith("5") or (not self.status and self.action == "failed")

    @property
    def soft(self) -> bool:
        return self.status.startswith("4") or (not self.status and self.action == "delayed")


@dataclass
class Inbound:
    key: str  # the Message-ID, or a digest of the bytes when there is none
    message_id: str
    sender: str  # the From address, lower-case
    subject: str
    recipients: list[str]  # To, Cc, Delivered-To, X-Original-To: where a reply address token may be
    references: list[str]  # In-Reply-To first, then References, newest first
    auto_reply: str = ""  # why this is an auto-reply ("" when it is not)
    report: bool = False  # a delivery status notification (multipart/report; report-type=delivery-status)
    dsn: list[Dsn] = field(default_factory=list)
    original_message_id: str = ""  # of the message a DSN is about
    message: Message | None = None  # the parsed mail (calendar parts are read from it)
    text: str = ""  # the new text of a reply: no quoted history, no signature


_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def parse(raw: bytes) -> Inbound:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    message_id = (_MESSAGE_ID.findall(_header(message, "Message-ID")) or [""])[0]
    key = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    recipients = [address.lower() for _, address in getaddresses(
        [str(value) for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
         for value in message.get_all(name, [])]) if address]
    references = _MESSAGE_ID.findall(_header(message, "In-Reply-To"))
    references += reversed(_MESSAGE_ID.findall(_header(message, "References")))
    inbound = Inbound(key=key[:255], message_id=message_id[:255], sender=parseaddr(_header(message, "From"))[1].lower(),
                      subject=_header(message, "Subject"), recipients=recipients,
                      references=list(dict.fromkeys(references)), message=message)
    if _is_delivery_report(message):
        inbound.report = True
        inbound.dsn, inbound.original_message_id = _delivery_status(message)
        return inbound
    inbound.auto_reply = auto_reply_reason(message, inbound.subject)
    if not inbound.auto_reply:
        inbound.text = drop_name_block(new_text(message), parseaddr(_header(message, "From"))[0])
    return inbound


def drop_name_block(text: str, name: str) -> str:
    """Outlook signatures carry no "-- " marker: drop a short last block that starts with the sender's name."""
    head, sep, last = text.rpartition("\n\n")
    lines = last.strip().split("\n")
    name = " ".join(name.split()).strip('"').lower()
    if sep and name and len(lines) <= 5 and all(len(line) <= 80 for line in lines) \
            and lines[0].strip().lower().startswith(name):
        return head.rstrip()
    return text


def _header(message: Message, name: str) -> str:
    """A header as text: RFC 2047 words decoded (a Lao subject arrives as =?utf-8?b?...?=)."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value)))).strip()
    except (LookupError, ValueError, UnicodeDecodeError):
        return str(value).strip()


# -- auto-replies ----------------------------------------------------------------------------------

# Subjects of out-of-office replies (Outlook, Gmail, Thunderbird) in English, Lao and French.
_AWAY_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|out of (?:the )?office|"
    r"away from (?:the )?office|on (?:annual )?leave|vacation|absent|"
    r"réponse automatique|absence|"
    r"ຕອບກັບອັດຕະໂນມັດ|ຕອບອັດຕະໂນມັດ|ການຕອບກັບອັດຕະໂນມັດ|ບໍ່ຢູ່ຫ້ອງການ|ບໍ່ຢູ່ໃນຫ້ອງການ|ອອກນອກຫ້ອງການ|ລາພັກ)",
    re.IGNORECASE)


def auto_reply_reason(message: Message, subject: str) -> str:
    """Why the mail is an automatic reply (RFC 3834 and the headers clients add), or ""."""
    submitted = _header(message, "Auto-Submitted").lower()
    if submitted and submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.get(name) is not None:
            return f"{name} header"
    precedence = _header(message, "Precedence").lower()
    if precedence in ("bulk", "auto_reply", "junk"):
        return f"Precedence: {precedence}"
    if _AWAY_SUBJECT.match(subject or ""):
        return f"out-of-office subject {subject[:60]!r}"
    return ""


# -- delivery status notifications -----------------------------------------------------------------


def _is_delivery_report(message: Message) -> bool:
    return (message.get_content_type() == "multipart/report"
            and (message.get_param("report-type") or "").lower() == "delivery-status")


def _delivery_status(message: Message) -> tuple[list[Dsn], str]:
    found: list[Dsn] = []
    original = ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            blocks = part.get_payload()
            if isinstance(blocks, str):  # some servers send it as text: parse the header blocks ourselves
                blocks = [email.message_from_string(b) for b in re.split(r"\r?\n\r?\n", blocks) if b.strip()]
            for block in blocks[1:] if len(blocks) > 1 else blocks:
                recipient = parseaddr(_after_type(block.get("Final-Recipient") or block.get("Original-Recipient")
                                                  or ""))[1].lower()
                if not recipient:
                    continue
                found.append(Dsn(recipient, _status(block.get("Status", "")), str(block.get("Action", "")).strip().lower(),
                                 " ".join(_after_type(block.get("Diagnostic-Code", "")).split())[:300]))
        elif content_type in ("message/rfc822", "text/rfc822-headers") and not original:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                original = (_MESSAGE_ID.findall(str(inner[0].get("Message-ID", ""))) or [""])[0]
            else:
                headers = part.get_payload(decode=True) or b""
                match = re.search(rb"^Message-ID:\s*(<[^<>\s]+>)", headers, re.IGNORECASE | re.MULTILINE)
                original = match.group(1).decode("ascii", "replace") if match else ""
    return found, original


def _after_type(value: str) -> str:
    """'rfc822; someone@example.org' -> 'someone@example.org' ('smtp; 550 ...' -> '550 ...')."""
    value = str(value)
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _status(value: str) -> str:
    match = re.search(r"\b([245])\.\d{1,3}\.\d{1,3}\b", str(value))
    return match.group(0) if match else ""


# -- the new text of a reply -----------------------------------------------------------------------


def new_text(message: Message) -> str:
    """What the sender wrote: the text part (or the HTML part turned into text), without the quoted
    history, the "On … wrote:" line, the forwarded-headers block and the signature."""
    plain, html = _body_parts(message)
    if plain is None and html is not None:
        plain = html_to_text(_drop_html_quotes(html))
    return strip_quotes(plain or "")


def _body_parts(message: Message) -> tuple[str | None, str | None]:
    plain = html = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain" and plain is None:
            plain = decoded_text(part)
        elif content_type == "text/html" and html is None:
            html = decoded_text(part)
    return plain, html


def decoded_text(part: Message) -> str:
    """A text part decoded from its transfer encoding (base64, quoted-printable) and its charset."""
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # a charset name Python does not know
        return payload.decode("utf-8", errors="replace")


# Quoted history in the HTML of Gmail, Thunderbird, Apple Mail and Outlook (web and desktop).
_HTML_QUOTES = ("//blockquote", "//div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]",
                "//div[contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]",
                "//div[@id='divRplyFwdMsg']", "//div[@id='appendonsend']")


def _drop_html_quotes(html: str) -> str:
    import lxml.html  # comes with inscriptis (and python-docx)

    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return html
    for path in _HTML_QUOTES:
        for element in tree.xpath(path):
            if element.getparent() is None:
                continue
            if element.get("id") in ("divRplyFwdMsg", "appendonsend"):
                for later in list(element.itersiblings()):  # Outlook: what follows is the original message
                    later.getparent().remove(later)
            element.drop_tree()
    return lxml.html.tostring(tree, encoding="unicode")


def html_to_text(html: str) -> str:
    from inscriptis import get_text

    return get_text(html)


def _register_lao() -> None:
    """mail-parser-reply knows English, French and others, but not Lao: add its "wrote" line and
    the Outlook header block of a Lao Outlook."""
    from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE

    MAIL_LANGUAGES.setdefault("lo", {
        # Gmail: "ເມື່ອ ວັນຈັນ ທີ 4 ພ.ຈ. 2019, GSWG <…> ຂຽນວ່າ:"; Thunderbird: "ໃນ 4/11/2019 GSWG ໄດ້ຂຽນ:"
        "wrote_header": r"^(" + QUOTED_MATCH_INCLUDE + r"(?:ເມື່ອ|ໃນ|ວັນ).{0,300}?(?:ໄດ້)?ຂຽນ(?:ວ່າ)?\s*:)$",
        "from_header": r"((?:(?:^|\n|\n" + QUOTED_MATCH_INCLUDE
                       + r")[* ]*(?:ຈາກ|ສົ່ງ|ສົ່ງເມື່ອ|ເຖິງ|ຫົວຂໍ້|ຫົວເລື່ອງ|ວັນທີ|ສຳເນົາ):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "signatures": ["ດ້ວຍຄວາມເຄົາລົບ", "ຂໍສະແດງຄວາມນັບຖື", "ດ້ວຍຄວາມນັບຖື", "ຂອບໃຈ,"],
        "sent_from": "ສົ່ງຈາກ",
    })


_QUOTE_LANGUAGES = ["en", "fr", "lo"]


def strip_quotes(text: str) -> str:
    from mailparser_reply.parser import EmailMessage

    _register_lao()
    text = text.replace("\r\n", "\n").replace("\u00a0", " ")
    # keep_hyphen_lists: members list their suggestions as "- item" lines; only "-- " starts a signature.
    parsed = EmailMessage(text=text, languages=_QUOTE_LANGUAGES, keep_hyphen_lists=True).read()
    body = parsed.replies[0].body if parsed.replies else text
    # Lines quoted with ">" that no "wrote" line introduced (a client that only prefixes them).
    lines = [line for line in body.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()
