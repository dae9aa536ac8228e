"""build_message writes by hand the bytes the email package writes (notifications/compose_plain.py is the spec).

Seeded random inputs across every shape are built by both, the reference being handed the
boundaries build_message chose (its generator would otherwise draw them at random), and compared
byte for byte.
"""

import email.generator
import random
import re
from datetime import datetime, timedelta, timezone

import pytest

from notifications.compose import CalendarPart, build_message, message_id_for
from notifications.compose_plain import build_message as reference_build_message
from notifications.render import Rendered

LAO = "ກຂຄງຈສຊຍດຕຖທນບປຜຝພຟມຢຣລວຫອຮະັາຳິີຶືຸູົຼຽເແໂໃໄ່້໊໋໌ໍ໐໑໒໓໔໕໖໗໘໙"
ASCII = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;-—()[]\"'<>&/="
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SHARED_DOCUMENT = random.Random(0).randbytes(30_000)  # one bytes object sent again and again, as in a cycle
VIENTIANE = timezone(timedelta(hours=7))
CLOSE_DELIMITER = re.compile(rb"^--(={15}[0-9]{19}==)--\r$", re.MULTILINE)


def ics(method: str, rng: random.Random) -> bytes:
    attendees = "".join(f"ATTENDEE;CN=ສະມາຊິກ {i}:mailto:m{i}@example.org\r\n" for i in range(rng.randrange(40)))
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Roundtable//test//EN\r\n"
            f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{rng.randrange(10**9)}@gswg.example.la\r\n"
            f"SUMMARY:ກອງປະຊຸມ — Meeting\r\n{attendees}END:VEVENT\r\nEND:VCALENDAR\r\n").encode("utf-8")


def words(rng: random.Random, length: int, alphabets=(LAO, ASCII)) -> str:
    return "".join(rng.choice(rng.choice(alphabets)) for _ in range(length))


def body(rng: random.Random) -> str:
    """0..20 KB of Lao/English lines with LF, CRLF, lone CR, blank lines and odd endings."""
    if rng.random() < 0.1:
        return rng.choice(["", "\n", "\r\n\r\n", " ", "\n\n\nx"])
    target, lines = rng.randrange(20_000), []
    while sum(map(len, lines)) < target // 2:  # Lao characters weigh 3 bytes
        lines.append(words(rng, rng.choice([0, 0, 1, 5, 40, 120, 400])))
        lines.append(rng.choice(["\n", "\n", "\r\n", "\r", "\n\n", " \n", "\u2028", "\x0c"]))
    return "".join(lines[:-1] if rng.random() < 0.5 else lines)


def bare_address(rng: random.Random, local_length: int | None = None) -> str:
    local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._%+-") for _ in range(local_length or rng.randrange(1, 20)))
    local = ".".join(piece for piece in local.split(".") if piece) or "x"  # a dot-atom: no empty pieces
    return f"{local}@{rng.choice(['example.org', 'gswg.example.la', 'mpi.gov.la', 'a-b.c.example.com', '-x-.la'])}"


def address(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"{words(rng, rng.randrange(1, 12), (LAO,))} {words(rng, 5, (ASCII[:26],))} <{bare_address(rng)}>"
    if kind == 1:
        return f'"{words(rng, 6, (LAO,))}, {words(rng, 6, (ASCII[:26],))}" <{bare_address(rng)}>'  # comma inside
    if kind == 2:
        return f"{' '.join(['Khamphone', 'Sisavath', 'Phommachanh', 'Vongsa'] * rng.randrange(1, 5))} <{bare_address(rng)}>"
    return bare_address(rng, rng.choice([None, None, 40, 60, 70, 73, 74, 75, 80]))


def arguments(rng: random.Random, method: str | None, attachment_count: int) -> dict:
    subject_length = rng.choice([1, 5, 20, 40, 60, 75, 100, 200, 300])
    rendered = Rendered(subject=words(rng, subject_length), text=body(rng), html=body(rng))
    calendar = None
    if method is not None:
        filename = rng.choice(["invite.ics", "deadline.ics", "ກອງປະຊຸມປະຈຳປີ 2020.ics"])
        calendar = CalendarPart(rng.choice([method, method.lower()]), ics(method, rng), filename)
    attachments = []
    for _ in range(attachment_count):
        media_type = rng.choice([DOCX, "application/pdf", "text/csv", "application"])
        filename = rng.choice(["plan.docx", "ແຜນວຽກ 2020.docx", "ແຜນວຽກປະຈຳປີ ຂອງກະຊວງແຜນການ ແລະ ການລົງທຶນ 2020.pdf",
                               f"report {rng.randrange(100)}.pdf"])
        content = SHARED_DOCUMENT if rng.random() < 0.4 else rng.randbytes(rng.choice([0, 1, 56, 57, 58, 3000, 30_000]))
        attachments.append((filename, media_type, content))
    moment = datetime(2019, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
    message_id = rng.choice([message_id_for(str(rng.random()), rng.choice(["gswg.example.la", "x.la"])),
                             message_id_for(str(rng.random()), "gswg.example.la"), "<MESSAGE-ID>",
                             f"<{rng.randrange(10**40)}@{'very-long-domain.' * rng.randrange(1, 4)}example.org>"])
    return dict(rendered=rendered,
                sender=rng.choice(["ກອງເລຂາ GSWG <roundtable@gswg.example.la>", "roundtable@gswg.example.la"]),
                to=[address(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))],
                cc=[address(rng) for _ in range(rng.choice([0, 0, 1, 2, 4]))],
                reply_to=rng.choice([None, "secretariat@gswg.example.la", "ກອງເລຂາ <secretariat@gswg.example.la>"]),
                message_id=message_id, auto_submitted=rng.random() < 0.5, calendar=calendar,
                attachments=attachments, date=moment.astimezone(rng.choice([timezone.utc, VIENTIANE])))


def boundaries(raw: bytes) -> list[str]:
    """The boundaries in the order the email generator draws them: the inner multipart's first, as
    its close-delimiter comes first. (Read from the delimiters, not by parsing: the email package
    itself folds some long address lists with an empty line, which ends the header early.)"""
    return [found.decode() for found in CLOSE_DELIMITER.findall(raw)]


def reference(monkeypatch, arguments: dict, chosen: list[str]) -> bytes:
    handed = iter(chosen)
    with monkeypatch.context() as patch:
        patch.setattr(email.generator.Generator, "_make_boundary", classmethod(lambda cls, text=None: next(handed)))
        raw = reference_build_message(arguments["rendered"], **{k: v for k, v in arguments.items() if k != "rendered"})
    assert next(handed, None) is None, "the reference asked for fewer boundaries than build_message used"
    return raw


def build(arguments: dict) -> bytes:
    return build_message(arguments["rendered"], **{k: v for k, v in arguments.items() if k != "rendered"})


@pytest.mark.parametrize("attachment_count", [0, 1, 2])
@pytest.mark.parametrize("method", [None, "REQUEST", "CANCEL", "PUBLISH"])
def test_same_bytes_as_the_email_package(monkeypatch, method, attachment_count):
    for seed in range(25):
        rng = random.Random(f"{method} {attachment_count} {seed}")
        given = arguments(rng, method, attachment_count)
        ours = build(given)
        assert ours == reference(monkeypatch, given, boundaries(ours)), f"seed {seed}"


@pytest.mark.parametrize("line_length", range(74, 84))
def test_address_and_message_id_lines_around_the_folding_limit(monkeypatch, line_length):
    """Bare addresses and plain Message-IDs are written without the policy only while it would not fold them."""
    def bare(length):  # an address of exactly this many characters
        return "a" * (length - len("@example.org")) + "@example.org"

    given = arguments(random.Random(line_length), None, 0)
    for to, cc in (([bare(line_length - 4)], []), (["b@example.org", bare(line_length - 4 - 15)], []),
                   (["b@example.org"], [bare(line_length - 4)]), (["b@example.org"], ["c@example.org", bare(line_length - 19)])):
        given.update(to=to, cc=cc, message_id="<" + "f" * (line_length - 12 - len("<@x.la>")) + "@x.la>")
        ours = build(given)
        assert ours == reference(monkeypatch, given, boundaries(ours))


def test_the_same_input_gives_the_same_bytes():
    for seed in range(20):
        given = arguments(random.Random(seed), "REQUEST" if seed % 2 else None, seed % 3)
        assert build(given) == build(dict(given))


def test_boundaries_occur_only_as_delimiters():
    for seed in range(40):
        given = arguments(random.Random(seed), [None, "REQUEST"][seed % 2], seed % 3)
        raw = build(given)
        calendars = given["calendar"] is not None
        alternatives = 2 + calendars
        mixed = 1 + calendars + len(given["attachments"])  # the alternative, the .ics, the attachments
        part_counts = [alternatives, mixed] if mixed > 1 else [alternatives]
        for boundary, parts in zip(boundaries(raw), part_counts, strict=True):
            # once in its Content-Type, once before each part, once closing
            assert raw.count(boundary.encode()) == parts + 2, f"seed {seed}"


def test_a_boundary_found_in_a_part_is_drawn_again(monkeypatch):
    given = arguments(random.Random(1), None, 1)
    first_choice = boundaries(build(given))[-1]
    given["attachments"] = [(f"{first_choice}.pdf", "application/pdf", b"%PDF")]
    raw = build(given)
    assert boundaries(raw)[-1] != first_choice
    assert raw == reference(monkeypatch, given, boundaries(raw))
