"""MIME composition: invitation structure, headers, encodings, deterministic Message-IDs."""

import email
from datetime import datetime, timezone
from email import policy

import pytest

from notifications.compose import CalendarPart, build_message, ics_method, message_id_for
from notifications.render import Rendered, render_message
from notifications.samples import sample_context

NOW = datetime(2019, 11, 1, 1, 0, tzinfo=timezone.utc)
SENDER = "ກອງເລຂາ GSWG <roundtable@gswg.example.la>"


def ics(method: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Roundtable//test//EN\r\n"
            f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:arm-2019@gswg.example.la\r\nSEQUENCE:0\r\n"
            "DTSTAMP:20191101T010000Z\r\nDTSTART:20191113T013000Z\r\nDTEND:20191113T050000Z\r\n"
            "SUMMARY:ກອງປະຊຸມປະຈຳປີ — Annual Review Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode("utf-8")


def build(kind="invite", **overrides) -> bytes:
    rendered = render_message(kind, sample_context(kind))
    arguments = dict(sender=SENDER, to=["Khamphone Sisavath <khamphone@example.org>"], cc=["deputy@example.org"],
                     reply_to="secretariat@gswg.example.la", message_id=message_id_for("c1:arm:invite:7", "gswg.example.la"),
                     date=NOW)
    arguments.update(overrides)
    return build_message(rendered, **arguments)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_invitation_structure():
    raw = build(calendar=CalendarPart("REQUEST", ics("REQUEST")))
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html, calendar = alternative.get_payload()
    assert (plain.get_content_type(), html.get_content_type(), calendar.get_content_type()) == (
        "text/plain", "text/html", "text/calendar")
    assert calendar.get_param("method") == "REQUEST" and calendar.get_param("charset") == "utf-8"
    assert calendar.get_payload(decode=True) == ics("REQUEST")
    assert attachment.get_content_type() == "application/ics" and attachment.get_filename() == "invite.ics"
    assert attachment.get_payload(decode=True) == ics("REQUEST")
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("base64", "quoted-printable")


def test_cancel_and_publish_use_the_same_shape():
    for method, filename in (("CANCEL", "invite.ics"), ("PUBLISH", "deadline.ics")):
        message = parse(build("call", calendar=CalendarPart(method, ics(method), filename)))
        alternative, attachment = message.get_payload()
        assert alternative.get_payload()[2].get_param("method") == method
        assert attachment.get_filename() == filename


def test_method_must_match_the_ics():
    with pytest.raises(ValueError, match="METHOD:CANCEL"):
        build(calendar=CalendarPart("REQUEST", ics("CANCEL")))
    with pytest.raises(ValueError, match="METHOD:None"):
        build(calendar=CalendarPart("REQUEST", ics("REQUEST").replace(b"METHOD:REQUEST\r\n", b"")))
    assert ics_method(ics("publish".upper())) == "PUBLISH"


def test_plain_message_is_just_the_alternative():
    message = parse(build("reminder"))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.get_payload()] == ["text/plain", "text/html"]


def test_headers():
    raw = build(calendar=CalendarPart("REQUEST", ics("REQUEST")))
    message = parse(raw)
    rendered = render_message("invite", sample_context("invite"))
    assert message["Subject"] == rendered.subject
    assert message["From"].addresses[0].display_name == "ກອງເລຂາ GSWG"
    assert message["From"].addresses[0].addr_spec == "roundtable@gswg.example.la"
    assert message["To"].addresses[0].addr_spec == "khamphone@example.org"
    assert message["Cc"] == "deputy@example.org"
    assert message["Reply-To"] == "secretariat@gswg.example.la"
    assert message["Message-ID"] == message_id_for("c1:arm:invite:7", "gswg.example.la")
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Language"] == "lo, en"
    assert message["Date"].datetime == NOW
    assert "Auto-Submitted" not in message
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head  # the Lao subject and display name are RFC 2047 encoded


def test_auto_submitted():
    message = parse(build("reminder", auto_submitted=True))
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"


def test_wire_format_is_crlf_7bit_and_short_lines():
    raw = build(calendar=CalendarPart("REQUEST", ics("REQUEST")),
                attachments=[("ແຜນວຽກ 2020.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                              b"PK\x03\x04" + bytes(range(256)) * 20)])
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert max(len(line) for line in lines) <= 998


def test_bodies_decode_to_the_rendered_text():
    rendered = render_message("invite", sample_context("invite"))
    plain, html = parse(build()).get_payload()
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html


def test_attachment_with_a_lao_filename_round_trips():
    content = b"%PDF-1.4 work plan"
    message = parse(build("submission", attachments=[("ແຜນວຽກປະຈຳປີ 2020.pdf", "application/pdf", content)]))
    attachment = message.get_payload()[1]
    assert attachment.get_filename() == "ແຜນວຽກປະຈຳປີ 2020.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_payload(decode=True) == content


def test_message_id_is_deterministic_per_key():
    first = message_id_for("1:call:7", "gswg.example.la")
    assert first == message_id_for("1:call:7", "gswg.example.la")
    assert first != message_id_for("1:call:8", "gswg.example.la")
    assert first.startswith("<") and first.endswith("@gswg.example.la>") and len(first.split("@")[0]) == 33


def test_a_message_needs_a_recipient():
    with pytest.raises(ValueError, match="To address"):
        build(to=[])


# ---------------------------------------------------------------- signed action links

from datetime import timedelta  # noqa: E402

from notifications.links import ActionLinkError, action_url, sign_action, verify_action  # noqa: E402

SECRET = "test-secret-key"


def test_action_token_round_trip():
    token = sign_action(SECRET, member_id=7, step_id=3, purpose="approve", revision=2)
    assert token.startswith("approve.")
    assert verify_action(SECRET, token, max_age=timedelta(days=60)) == {
        "member_id": 7, "step_id": 3, "purpose": "approve", "revision": 2}
    assert verify_action(SECRET, token, max_age=timedelta(days=60), purpose="approve")["member_id"] == 7
    assert action_url("https://rt.example.org/", token) == f"https://rt.example.org/action/{token}"


@pytest.mark.parametrize("spoil,reason", [
    (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "invalid"),   # tampered signature
    (lambda t: "survey." + t.partition(".")[2], "invalid"),                       # purpose swapped (other salt)
    (lambda t: "approve", "invalid"),                                             # truncated
])
def test_action_token_tampering_is_refused(spoil, reason):
    token = sign_action(SECRET, member_id=7, step_id=3, purpose="approve")
    with pytest.raises(ActionLinkError) as refused:
        verify_action(SECRET, spoil(token), max_age=timedelta(days=1))
    assert refused.value.reason == reason


def test_action_token_expiry_other_key_and_purpose():
    token = sign_action(SECRET, member_id=7, step_id=3, purpose="approve")
    with pytest.raises(ActionLinkError, match="expired") as expired:
        verify_action(SECRET, token, max_age=timedelta(seconds=-1))
    assert expired.value.reason == "expired"
    with pytest.raises(ActionLinkError, match="not valid"):
        verify_action("another-key", token, max_age=timedelta(days=1))
    with pytest.raises(ActionLinkError) as wrong:
        verify_action(SECRET, token, max_age=timedelta(days=1), purpose="survey")
    assert wrong.value.reason == "wrong-purpose"
    with pytest.raises(ValueError, match="secret"):
        sign_action("", member_id=1, step_id=1, purpose="approve")


@pytest.mark.parametrize("subject", [
    "[GSWG] ສະເໜີກິດຈະກຳ ສຳລັບແຜນວຽກປີ 2020 — Suggest activities for the 2020 work plan",
    "[GSWG] Suggest activities for the 2020 work plan — ສະເໜີກິດຈະກຳ ສຳລັບແຜນວຽກປີ 2020",
    "[GSWG] Reminder: Comments on the draft plan, 5 days left — ແຈ້ງເຕືອນ: ຄໍາເຫັນຕໍ່ຮ່າງແຜນ, ເຫຼືອ 5 ວັນ",
    "ລາວ " * 40 + "end",
])
def test_a_bilingual_subject_reads_back_with_every_space(subject):
    raw = build_message(Rendered(subject, "x", "<p>x</p>"), sender="a@example.org", to=["b@example.org"],
                        reply_to=None, message_id="<m@example.org>", date=datetime(2020, 1, 1, tzinfo=timezone.utc))
    head = raw.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert str(email.message_from_bytes(raw, policy=policy.default)["Subject"]) == subject
