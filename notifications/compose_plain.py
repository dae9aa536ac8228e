"""The plain composer, and the spec of notifications/compose.py: build_message as it was before it
serialised by hand.

It assembles the message with email.message.EmailMessage and lets the email package's generator
write it with the stock email.policy.SMTP; notifications.compose.build_message must produce the same
bytes, given the same MIME boundaries (tests/test_compose_equivalence.py checks it). Kept as it
was: do not "improve" it, or the comparison stops meaning anything. Not used on the engine's path.
"""

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Sequence

from notifications.compose import CalendarPart, check_message, subject_value
from notifications.render import Rendered


def build_message(rendered: Rendered, *, sender: str, to: list[str], cc: Sequence[str] = (),
                  reply_to: str | None, message_id: str, auto_submitted: bool = False,
                  calendar: CalendarPart | None = None,
                  attachments: Sequence[tuple[str, str, bytes]] = (), date: datetime) -> bytes:
    """Serialise one message with CRLF line ends; raises ValueError on an inconsistent calendar part."""
    check_message(to, calendar)

    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if reply_to:
        msg["Reply-To"] = reply_to
    if rendered.subject.isascii():
        msg["Subject"] = rendered.subject
    else:  # pre-encoded so that no space is lost (see compose.subject_value)
        msg.set_raw("Subject", subject_value(rendered.subject))
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
