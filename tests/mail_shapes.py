"""Inbound mails shaped like those Gmail, Outlook and Thunderbird send: replies with quoted history,
HTML-only replies, Lao in base64 and quoted-printable, iTIP replies, out-of-office replies and DSNs."""

import base64
import quopri
from email.header import Header
from dataclasses import dataclass
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from datetime import datetime, timezone

DATE = datetime(2019, 11, 4, 2, 30, tzinfo=timezone.utc)
QUOTED_LO = "ກະລຸນາສົ່ງຄຳເຫັນ ກ່ຽວກັບກິດຈະກຳປີໜ້າ"  # what the call said (appears quoted)


@dataclass
class Original:
    """The message being answered, as the replier's client sees it."""

    message_id: str
    subject: str
    sender: str = "GSWG Secretariat via Roundtable <roundtable@gswg.example.org>"
    reply_to: str = ""  # where "Reply" sends: the signed reply address when configured


def _b64(text: str) -> str:
    return base64.encodebytes(text.encode("utf-8")).decode("ascii")


def _qp(text: str) -> str:
    return quopri.encodestring(text.encode("utf-8")).decode("ascii")


def _head(original: Original | None, sender: str, *, subject: str | None = None, to: str | None = None,
          in_reply_to: bool = True, extra: str = "", message_id: str | None = None) -> str:
    subject = subject if subject is not None else "Re: " + original.subject
    if not subject.isascii():  # as clients send it: RFC 2047 encoded words
        subject = Header(subject, "utf-8").encode()
    if not sender.isascii():
        sender = formataddr(parseaddr(sender), charset="utf-8")
    lines = [f"From: {sender}", f"To: {to or (original.reply_to or original.sender if original else 'x@example.org')}",
             f"Subject: {subject}",
             f"Date: {format_datetime(DATE)}", f"Message-ID: {message_id or make_msgid(domain='client.example')}",
             "MIME-Version: 1.0"]
    if original is not None and in_reply_to:
        lines += [f"In-Reply-To: {original.message_id}", f"References: {original.message_id}"]
    return "\r\n".join(lines) + ("\r\n" + extra if extra else "") + "\r\n"


def gmail_reply(original: Original, sender: str, text: str) -> bytes:
    """multipart/alternative, both parts base64 UTF-8, "On … wrote:" and ">" quotes; HTML gmail_quote."""
    plain = (f"{text}\n\nOn Mon, Nov 4, 2019 at 9:00 AM GSWG Secretariat <roundtable@gswg.example.org> wrote:\n\n"
             f"> {QUOTED_LO}\n> Please send your suggestions.\n>\n")
    html = (f"<div dir=\"ltr\">{text.replace(chr(10), '<br>')}</div><br><div class=\"gmail_quote\">"
            f"<div dir=\"ltr\" class=\"gmail_attr\">On Mon, Nov 4, 2019 at 9:00 AM GSWG wrote:<br></div>"
            f"<blockquote class=\"gmail_quote\">{QUOTED_LO}<br>Please send your suggestions.</blockquote></div>")
    return (_head(original, sender) + 'Content-Type: multipart/alternative; boundary="g0"\r\n\r\n'
            f"--g0\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{_b64(plain)}\r\n--g0\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{_b64(html)}\r\n--g0--\r\n").encode("ascii")


def outlook_reply(original: Original, sender: str, text: str, *, in_reply_to: bool = True) -> bytes:
    """quoted-printable UTF-8; the original under a line of underscores and a From/Sent/To/Subject block;
    a signature block; Thread-Index (Outlook) and, optionally, no In-Reply-To."""
    plain = (f"{text}\n\nສົມໃຈ ວົງສາ\nກະຊວງພາຍໃນ\n\n________________________________\n"
             f"From: GSWG Secretariat <roundtable@gswg.example.org>\nSent: Monday, November 4, 2019 9:00 AM\n"
             f"To: {sender}\nSubject: {original.subject}\n\n{QUOTED_LO}\nPlease send your suggestions.\n")
    html = (f"<html><body><div>{text}</div><div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\">"
            f"<b>From:</b> GSWG<br><b>Sent:</b> Monday</div><div>{QUOTED_LO}</div></body></html>")
    return (_head(original, sender, in_reply_to=in_reply_to, extra="Thread-Index: AQHVkqXzabc=\r\n"
                  "X-MS-Has-Attach: \r\nContent-Language: lo-LA")
            + 'Content-Type: multipart/alternative; boundary="o0"\r\n\r\n'
            f"--o0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            f"\r\n{_qp(plain)}\r\n--o0\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(html)}\r\n--o0--\r\n").encode("ascii")


def thunderbird_reply(original: Original, sender: str, text: str) -> bytes:
    """text/plain, format=flowed, 8bit UTF-8; "On 04/11/2019 09:00, X wrote:" and a "-- " signature."""
    plain = (f"{text}\n\n-- \nKhamla Vongsa\nLegal Aid Office\n\n"
             f"On 04/11/2019 09:00, GSWG Secretariat via Roundtable wrote:\n> {QUOTED_LO}\n> Please send.\n")
    return (_head(original, sender, extra="User-Agent: Mozilla/5.0 Thunderbird/68.2.1")
            + "Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + plain.replace("\n", "\r\n")).encode("utf-8")


def html_only_reply(original: Original, sender: str, text: str, *, wrote: str = "On Mon, 4 Nov 2019 GSWG wrote:") -> bytes:
    """Only text/html, base64: the new text, then the quoted original in a blockquote."""
    html = (f"<html><head><style>p{{margin:0}}</style></head><body><p>{text.replace(chr(10), '</p><p>')}</p>"
            f"<div class=\"moz-cite-prefix\">{wrote}</div><blockquote type=\"cite\">{QUOTED_LO}</blockquote>"
            f"</body></html>")
    return (_head(original, sender) + "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"
            f"\r\n\r\n{_b64(html)}").encode("ascii")


def lao_gmail_reply(original: Original, sender: str, text: str) -> bytes:
    """Gmail with a Lao interface: the "wrote" line is in Lao; text/plain quoted-printable only."""
    plain = (f"{text}\n\nເມື່ອ ວັນຈັນ, 4 ພ.ຈ. 2019 ເວລາ 09:00 GSWG <roundtable@gswg.example.org> ຂຽນວ່າ:\n\n"
             f"> {QUOTED_LO}\n")
    return (_head(original, sender) + "Content-Type: text/plain; charset=UTF-8\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(plain)}").encode("ascii")


def french_reply(original: Original, sender: str, text: str) -> bytes:
    plain = f"{text}\n\nLe lun. 4 nov. 2019 à 09:00, GSWG <roundtable@gswg.example.org> a écrit :\n> {QUOTED_LO}\n"
    return (_head(original, sender) + "Content-Type: text/plain; charset=ISO-8859-1\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + quopri.encodestring(plain.replace(QUOTED_LO, "...").encode("latin-1")).decode("ascii")).encode("ascii")


def itip_reply(uid: str, attendee: str, sender: str, partstat: str = "ACCEPTED", *, sequence: int = 0,
               shape: str = "outlook", attendees: tuple[str, ...] = (), to: str = "roundtable@gswg.example.org",
               message_id: str | None = None) -> bytes:
    """An iTIP REPLY: Outlook puts it in text/calendar inside multipart/alternative; Gmail adds an
    invite.ics attachment of the same calendar."""
    people = "".join(f"ATTENDEE;PARTSTAT={partstat};CN=Someone:mailto:{a}\r\n" for a in (attendee, *attendees))
    ics = ("BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nPRODID:" + ("Microsoft Exchange Server 2010" if shape == "outlook"
                                                             else "-//Google Inc//Google Calendar 70.9054//EN")
           + f"\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n{people}UID:{uid}\r\nDTSTAMP:20191104T023000Z\r\n"
           f"SEQUENCE:{sequence}\r\nDTSTART:20191113T010000Z\r\nDTEND:20191113T051500Z\r\n"
           "SUMMARY:Accepted: Annual Review Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    head = _head(None, sender, subject=f"{partstat.title()}: Annual Review Meeting", to=to, message_id=message_id)
    body = ('Content-Type: multipart/mixed; boundary="m0"\r\n\r\n--m0\r\n'
            'Content-Type: multipart/alternative; boundary="a0"\r\n\r\n'
            "--a0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI will come.\r\n"
            f'--a0\r\nContent-Type: text/calendar; charset="utf-8"; method=REPLY\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{base64.encodebytes(ics.encode()).decode()}\r\n--a0--\r\n")
    if shape == "gmail":
        body += ('--m0\r\nContent-Type: application/ics; name="invite.ics"\r\n'
                 'Content-Disposition: attachment; filename="invite.ics"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                 f"{base64.encodebytes(ics.encode()).decode()}\r\n")
    return (head + body + "--m0--\r\n").encode("ascii")


def out_of_office(sender: str, *, lao: bool = False, to: str = "roundtable@gswg.example.org",
                  original: Original | None = None) -> bytes:
    """Outlook's automatic reply: Auto-Submitted and X-Auto-Response-Suppress; or a Lao subject only."""
    if lao:
        subject = "=?utf-8?b?" + base64.b64encode("ຕອບກັບອັດຕະໂນມັດ: ບໍ່ຢູ່ຫ້ອງການ".encode()).decode() + "?="
        extra = ""
    else:
        subject, extra = "Automatic reply: Call for suggestions", "Auto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All"
    return (_head(original, sender, subject=subject, to=to, extra=extra)
            + "Content-Type: text/plain; charset=utf-8\r\n\r\nI am away until 20 November.\r\n").encode("utf-8")


def dsn(recipient: str, original_message_id: str, *, status: str = "5.1.1",
        to: str = "roundtable@gswg.example.org") -> bytes:
    """A delivery status notification as Postfix writes it (multipart/report; report-type=delivery-status)."""
    action = "failed" if status.startswith("5") else "delayed"
    diagnostic = ("smtp; 550 5.1.1 <%s>: Recipient address rejected: User unknown" % recipient if action == "failed"
                  else "smtp; 452 4.2.2 Mailbox full")
    head = _head(None, "MAILER-DAEMON@mx.example.org (Mail Delivery System)",
                 subject="Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still being retried)",
                 to=to, extra="Auto-Submitted: auto-replied")
    return (head + 'Content-Type: multipart/report; report-type=delivery-status; boundary="d0"\r\n\r\n'
            "--d0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is the mail system at host mx.\r\n\r\n"
            "--d0\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\nAction: {action}\r\n"
            f"Status: {status}\r\nDiagnostic-Code: {diagnostic}\r\n\r\n"
            "--d0\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: roundtable@gswg.example.org\r\nTo: {recipient}\r\nMessage-ID: {original_message_id}\r\n"
            "Subject: Call\r\n\r\n--d0--\r\n").encode("ascii")


def unrelated(sender: str = "someone@elsewhere.example") -> bytes:
    return (_head(None, sender, subject="Lunch on Friday?", to="roundtable@gswg.example.org")
            + "Content-Type: text/plain; charset=utf-8\r\n\r\nAre you free on Friday?\r\n").encode("utf-8")
