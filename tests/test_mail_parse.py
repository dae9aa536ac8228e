"""Reading inbound mail without a database: new text of every client's reply shape, Lao intact in
any transfer encoding, auto-replies, DSNs, reply addresses, and files too big to read."""

import os
from pathlib import Path

import pytest

from notifications.inbound import MAX_BYTES, TooLarge, parse, read_limited, strip_quotes
from notifications.inbound_address import is_reply_address, reply_address, reply_to_header, row_of
from tests import mail_shapes as shapes

LAO = "ຂໍສະເໜີ ເພີ່ມການຝຶກອົບຮົມ ໃຫ້ພະນັກງານ ແຂວງ.\n- ກອງປະຊຸມ ປຶກສາຫາລື\n- ຄູ່ມື ພາສາລາວ"
ORIGINAL = shapes.Original("<abc123@gswg.example.org>", "[GSWG] ຂໍຄໍາເຫັນ — Call for suggestions")
SENDER = "m1@example.org"


@pytest.mark.parametrize("shape", ["gmail_reply", "outlook_reply", "thunderbird_reply", "html_only_reply",
                                   "lao_gmail_reply"])
def test_new_text_of_each_client_shape_keeps_lao_and_drops_history(shape):
    inbound = parse(getattr(shapes, shape)(ORIGINAL, SENDER, LAO))
    assert inbound.sender == SENDER and inbound.references == [ORIGINAL.message_id]
    assert not inbound.auto_reply and not inbound.report
    text = inbound.text
    for line in LAO.split("\n"):
        assert line.strip() in text, (shape, text)
    assert shapes.QUOTED_LO not in text, (shape, text)
    for gone in ("wrote", "ຂຽນວ່າ", "From:", "Sent:", "Khamla", "________"):
        assert gone not in text, (shape, gone, text)


def test_outlook_signature_goes_when_it_starts_with_the_senders_name():
    # Outlook has no signature marker: a short last block starting with the From name is the signature.
    assert parse(shapes.outlook_reply(ORIGINAL, "ສົມໃຈ ວົງສາ <m1@example.org>", "ok")).text == "ok"
    kept = parse(shapes.outlook_reply(ORIGINAL, "Other Name <m1@example.org>", "ok")).text
    assert kept.startswith("ok") and "Please send" not in kept  # unknown block: kept, history still gone


def test_french_reply_in_latin1():
    text = parse(shapes.french_reply(ORIGINAL, SENDER, "Je propose un atelier à Vientiane.")).text
    assert text == "Je propose un atelier à Vientiane."


def test_quotes_without_a_wrote_line_and_plain_text_without_quotes():
    assert strip_quotes("ເຫັນດີ\n> ຂໍ້ຄວາມເກົ່າ\n> more") == "ເຫັນດີ"
    assert strip_quotes("ທົດລອງ ພາສາລາວ\n\nສອງແຖວ") == "ທົດລອງ ພາສາລາວ\n\nສອງແຖວ"


@pytest.mark.parametrize("raw,reason", [
    (shapes.out_of_office("m1@example.org"), "Auto-Submitted"),
    (shapes.out_of_office("m1@example.org", lao=True), "out-of-office subject"),
    (b"From: a@b.c\r\nSubject: hi\r\nX-Autoreply: yes\r\n\r\nx", "X-Autoreply"),
    (b"From: a@b.c\r\nSubject: hi\r\nPrecedence: bulk\r\n\r\nx", "Precedence: bulk"),
    (b"From: a@b.c\r\nSubject: hi\r\nPrecedence: auto_reply\r\n\r\nx", "Precedence: auto_reply"),
    (b"From: a@b.c\r\nSubject: Out of Office: back Monday\r\n\r\nx", "out-of-office subject"),
])
def test_auto_replies(raw, reason):
    assert reason in parse(raw).auto_reply


def test_a_normal_reply_is_not_an_auto_reply():
    raw = b"From: a@b.c\r\nSubject: Re: Call\r\nAuto-Submitted: no\r\n\r\nMy idea"
    assert parse(raw).auto_reply == ""


def test_hard_and_soft_dsn():
    hard = parse(shapes.dsn("m2@example.org", "<orig@gswg.example.org>"))
    assert hard.report and hard.original_message_id == "<orig@gswg.example.org>"
    assert [(d.recipient, d.status, d.hard) for d in hard.dsn] == [("m2@example.org", "5.1.1", True)]
    assert "User unknown" in hard.dsn[0].diagnostic
    soft = parse(shapes.dsn("m2@example.org", "<orig@gswg.example.org>", status="4.2.2"))
    assert soft.dsn[0].soft and not soft.dsn[0].hard and not soft.auto_reply


def test_reply_addresses_are_short_signed_and_case_blind():
    address = reply_address("replies@example.org", "k" * 32, 4711)
    local = address.split("@")[0]
    assert address.startswith("replies+4711x") and len(local) <= 32
    assert row_of("replies@example.org", "k" * 32, address) == 4711
    assert row_of("replies@example.org", "k" * 32, address.upper()) == 4711
    assert row_of("replies@example.org", "another key" * 3, address) is None
    assert row_of("replies@example.org", "k" * 32, address.replace("4711x", "4712x")) is None
    assert row_of("replies@example.org", "k" * 32, "replies@example.org") is None
    assert is_reply_address("replies@example.org", "REPLIES+junk@example.org")
    assert not is_reply_address("replies@example.org", "replies@other.example")
    assert reply_to_header("replies@example.org", "k" * 32, 5, "head@example.org").endswith(", head@example.org")
    assert reply_to_header(None, "k" * 32, 5, "head@example.org") == "head@example.org"


def test_big_files_and_devices_are_not_read(tmp_path):
    big = tmp_path / "big.eml"
    with open(big, "wb") as handle:  # sparse: 60 MB on paper, nothing written
        handle.truncate(60 * 1024 * 1024)
    with pytest.raises(TooLarge, match="over the 10 MB"):
        read_limited(big)
    with pytest.raises(TooLarge, match="not a regular file"):
        read_limited(Path("/dev/zero"))
    small = tmp_path / "ok.eml"
    small.write_bytes(b"x" * 100)
    assert read_limited(small) == b"x" * 100
    assert MAX_BYTES == 10 * 1024 * 1024
    assert os.path.getsize(big) > MAX_BYTES


def test_outlook_html_only_reply_and_an_unknown_charset_label():
    html = ("<html><body><div dir='ltr'>ຂໍເພີ່ມ ກິດຈະກຳ ຢູ່ ແຂວງ ຫຼວງພະບາງ</div><div id='appendonsend'></div>"
            "<hr><div id='divRplyFwdMsg'><b>From:</b> GSWG<br><b>Sent:</b> Monday</div>"
            f"<div>{shapes.QUOTED_LO}</div></body></html>")
    raw = ("From: m1@example.org\r\nSubject: RE: Call\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=\"x-windows-lao\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + html).encode("utf-8")
    assert parse(raw).text == "ຂໍເພີ່ມ ກິດຈະກຳ ຢູ່ ແຂວງ ຫຼວງພະບາງ"


def test_fetch_once_without_a_mailbox_reads_nothing():
    from flows.mail_in import fetch_once
    from models.settings import Settings

    assert fetch_once(None, Settings(), None) == {"recorded": {"suggestion": 0, "comment": 0, "rsvp": 0},
                                                   "ignored": [], "bounces": 0, "away": 0, "needs_attention": 0}
