"""The pages in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

One browser and one server for the whole session (tests/browser.py, through conftest); each test puts its own app (its own database) behind
the server. JavaScript is off in every context: the pages must work without it.
"""

import struct
import zlib
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from flows.answers import record_revision
from flows.status import cycle_status
from models.tables import AnswerAudit, Cycle, Decision, Member, Notification, Response
from tests.engine_helpers import local
from tests.web_helpers import make_world

LAO_FONTS = ("Phetsarath OT", "Saysettha OT", "Noto Sans Lao", "Noto Serif Lao", "DokChampa", "Lao UI")


@pytest.fixture
def world(sqlite_engine):
    return make_world(sqlite_engine)


@pytest.fixture
def site(server, world):
    target, base = server
    target.app = world.app()
    yield base
    target.app = None


@pytest.fixture
def page(browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 412, "height": 900})
    yield context.new_page()
    context.close()


def test_a_member_files_a_suggestion_in_lao_and_sees_it_after_reload(world, site, page):
    page.goto(site + world.link("m1@example.org", "call_for_suggestions", "respond"))
    page.fill("#title", "ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ ຂັ້ນທ້ອງຖິ່ນ")
    page.fill("#what", "ກອງປະຊຸມສອງມື້ ສໍາລັບເຈົ້າໜ້າທີ່ແຂວງ")
    page.check("input[name=months][value='3']")
    page.check("input[name=serves][value='sdg16']")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("form.answer button[type=submit]")
    page.reload()
    assert page.locator("article.suggestion h3").inner_text().startswith("ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ")
    assert "ມີນາ" in page.locator("article.suggestion").inner_text()
    with Session(world.engine) as session:
        audit = session.exec(select(AnswerAudit)).one()
        assert (audit.kind, audit.channel) == ("suggestion", "web")


def test_a_cookieless_get_of_an_approval_link_records_nothing(world, site, page):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    world.now[0] = local(2020, 2, 20, 10, 0)
    before = world.counts()
    response = page.goto(site + world.link("chair@example.org", "approval", "approve", revision=1))
    assert response.status == 200 and page.context.cookies() == []
    assert page.locator("button.approve").is_visible()
    assert world.counts() == before and world.answered == []


def test_a_chair_approves(world, site, page):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    world.now[0] = local(2020, 2, 20, 10, 0)
    page.goto(site + world.link("chair@example.org", "approval", "approve", revision=1))
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("button.approve")
    assert page.locator(".decided").get_attribute("data-decision") == "approve"
    with Session(world.engine) as session:
        assert [(d.decision, d.plan_revision) for d in session.exec(select(Decision)).all()] == [("approve", 1)]


def test_a_cochair_rejects_with_a_reason_and_the_revision_loop_runs(world, site, page):
    world.open_step("approval", due=local(2020, 3, 1, 17, 0))
    now = world.now[0] = local(2020, 2, 20, 10, 0)
    link = site + world.link("cochair.moj@example.org", "approval", "approve", revision=1)
    page.goto(link)
    page.click("button.reject")  # no reason: the browser's `required` stops it; nothing is sent
    assert world.counts()[2] == 0
    page.fill("#reason", "ກະລຸນາເພີ່ມກິດຈະກໍາ SDG 16")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("button.reject")
    assert page.locator(".decided").get_attribute("data-decision") == "reject"
    world.tick(now)  # the engine reacts: plan revision 2, the secretariat is asked to revise
    page.goto(link)
    assert page.locator("[data-code=voided]").count() == 1
    with Session(world.engine) as session:
        assert session.get(Cycle, world.cycle_id).plan_revision == 2
        staff = session.exec(select(Member).where(Member.email == "staff@example.org")).one()
        record_revision(session=session, member_id=staff.id, step_id=world.steps["approval"],
                        now=now + timedelta(days=1), channel="cli", revision=2)
        session.commit()
    world.tick(now + timedelta(days=1))
    world.now[0] = now + timedelta(days=2)
    page.goto(site + world.link("cochair.moj@example.org", "approval", "approve", revision=2))
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("button.approve")
    assert page.locator(".decided").get_attribute("data-decision") == "approve"
    with Session(world.engine) as session:
        assert session.exec(select(Notification).where(Notification.kind == "approval_request",
                                                       Notification.revision == 2)).all()
        assert {(d.decision, d.plan_revision) for d in session.exec(select(Decision)).all()} == {
            ("reject", 1), ("approve", 2)}


def test_an_rsvp_decline_shows_in_status(world, site, page):
    page.goto(site + world.link("m3@example.org", "annual_review_meeting", "rsvp"))
    page.check("input[name=partstat][value=DECLINED]")
    page.fill("#reason", "ໄປຕ່າງແຂວງ")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("form.answer button[type=submit]")
    assert "ບໍ່ເຂົ້າຮ່ວມ" in page.locator(".answer-state").inner_text()
    with Session(world.engine) as session:
        status = cycle_status(session, session.get(Cycle, world.cycle_id))
        assert session.exec(select(Response)).one().data["comment"] == "ໄປຕ່າງແຂວງ"
    meeting = next(s for s in status["steps"] if s["key"] == "annual_review_meeting")
    assert meeting["rsvp"]["DECLINED"] == ["m3@example.org"]
    page.goto(site + world.link("head@example.org", "annual_review_meeting", "status"))
    assert "m3@example.org" in page.locator("li[data-partstat=DECLINED]").inner_text()


def test_a_lao_page_shows_lao_glyphs(world, site, page, tmp_path):
    page.goto(site + world.link("m1@example.org", "call_for_suggestions", "respond"))
    heading = page.locator("h1 span[lang=lo]")
    # Which font Chromium drew the Lao heading with (DevTools knows): a Lao font, for every glyph.
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "h1 span[lang=lo]"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    lao = [f for f in fonts if f["familyName"] in LAO_FONTS]
    assert lao and lao[0]["glyphCount"] >= 20, fonts
    # Ink: the heading as drawn, against the same number of code points no font has (what a page
    # without a Lao font shows: empty boxes). Glyphs put ink in many places a box outline does not.
    drawn = _ink(heading.screenshot(path=str(tmp_path / "lao.png")))
    count = len(heading.inner_text())
    page.set_content('<h1 style="font-size:23px"><span id="t">' + "\u0e83" * count + "</span></h1>")
    boxes = _ink(page.locator("#t").screenshot(path=str(tmp_path / "boxes.png")))
    assert drawn > 0.05 and abs(drawn - boxes) > 0.01, (drawn, boxes)


def _ink(png: bytes) -> float:
    """The share of dark pixels in a PNG (Chromium writes 8-bit RGB or RGBA, not interlaced)."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    data, offset = b"", 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        if kind == b"IDAT":
            data += png[offset + 8:offset + 8 + length]
        offset += 12 + length
    raw, stride = zlib.decompress(data), width * channels
    previous, dark = bytearray(stride), 0
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        dark += sum(1 for x in range(0, stride, channels) if sum(line[x:x + 3]) < 3 * 160)
        previous = line
    return dark / (width * height)
