"""The desk in a real browser (JavaScript off): the secretariat signs in by link, disposes of the
suggestions, adds an activity, closes the review, reads a comment, revises and exports; someone of
another group cannot see the desk. Screenshots of the pages go to the test's folder."""

import re
from email import message_from_bytes, policy

import pytest
from docx import Document as DocxDocument
from sqlmodel import Session, select

from flows import answers
from flows.documents import documents_for
from flows.state import CycleState
from models.tables import Cycle, Notification, NotificationPayload, PlanActivity, Step
from tests.engine_helpers import local
from tests.test_desk import make_desk_world


@pytest.fixture
def world(sqlite_engine):
    return make_desk_world(sqlite_engine)


@pytest.fixture
def site(server, world):
    target, base = server
    target.app = world.app(base_url=base)
    yield base
    target.app = None


@pytest.fixture
def page(browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    yield context.new_page()
    context.close()


def _signed_in(world, site, page, email):
    page.goto(f"{site}/login")
    page.fill("#email", email)
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("button[type=submit]")
    assert "sign-in link is on its way" in page.content()
    with Session(world.engine) as session:
        row = session.exec(select(Notification).where(Notification.kind == "sign_in",
                                                      Notification.recipient == email)
                           .order_by(Notification.id.desc())).first()
        mail = message_from_bytes(session.get(NotificationPayload, row.id).payload, policy=policy.default)
    link = re.search(r"(http://\S+/login/\S+)", mail.get_body(("plain",)).get_content()).group(1)
    page.goto(link)
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("button[type=submit]")
    assert page.url.endswith("/desk")


def test_the_secretariat_carries_the_plan_in_the_browser(world, site, page, tmp_path):
    _signed_in(world, site, page, "staff@example.org")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click(f"a[href='/desk/{world.cycle_id}']")
    assert page.locator("tr[data-step=secretariat_review][data-state=open]").count() == 1
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click(f"a.button[href='/desk/{world.cycle_id}/plan']")
    cards = page.locator(".card.suggestion")
    assert cards.count() == 3
    first = cards.nth(0)
    first.locator("input[value=accepted]").check()
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        first.locator("button[type=submit]").click()
    assert page.locator(".card.activity").count() == 1
    second = page.locator(".card.suggestion").nth(1)
    second.locator("input[value=merged]").check()
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        second.locator("button[type=submit]").click()
    third = page.locator(".card.suggestion").nth(2)
    third.locator("input[value=rejected]").check()
    third.locator("input[name=reason]").fill("ບໍ່ຢູ່ໃນຂອບເຂດ — Outside our remit")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        third.locator("button[type=submit]").click()
    assert page.locator(".left").inner_text() == "0"
    page.locator("details.add summary").click()
    form = page.locator("form.add-activity")
    form.locator("input[name=title_lo]").fill("ກອງປະຊຸມປະຈຳປີ")
    form.locator("input[name=title_en]").fill("Annual review meeting")
    form.locator("select[name=start_month]").select_option("11")
    form.locator("select[name=end_month]").select_option("11")
    form.locator("input[value=rtim-2019]").check()
    form.locator("input[name=budget]").fill("5000")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        form.locator("button[type=submit]").click()
    assert page.locator(".card.activity").count() == 2
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        page.click("form.close-review button[type=submit]")
    assert "ປິດການທົບທວນແລ້ວ" in page.content() and page.locator(".tag").first.is_visible()
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

    # The comment round: the draft goes out (revision 1 frozen), a member comments on an activity.
    with Session(world.engine) as session:
        cycle = session.get(Cycle, world.cycle_id)
        documents_for(CycleState(session, cycle), "draft_plan", 1, world.now[0])
        comments = session.get(Step, world.steps["comment_round"])
        comments.state = "open"
        session.commit()
        answers.record_comment(session=session, member_id=world.people["m2@example.org"].id, step_id=comments.id,
                               now=world.now[0], channel="web", body="Please hold it in Luang Prabang",
                               activity="Annual review meeting")
        session.commit()
    page.goto(f"{site}/desk/{world.cycle_id}/plan")
    activity = page.locator(".card.activity", has_text="Annual review meeting")
    assert "Please hold it in Luang Prabang" in activity.inner_text()
    activity.locator("summary").click()
    activity.locator("input[name=lead]").fill("ກະຊວງພາຍໃນ (MoHA), Luang Prabang")
    with page.expect_navigation():  # a form's POST and its redirect, or a link: wait for the page it lands on
        activity.locator("button[type=submit]").first.click()
    assert page.locator(".revision").inner_text() == "2"  # the draft had gone out: a new revision
    with page.expect_download() as download:
        page.click("a.export[href$='export.docx?kind=work_plan']")
    path = download.value.path()
    table = DocxDocument(path).tables[0]
    assert [row.cells[2].text for row in table.rows[1:]] == ["Seminar on SDG 16", "Annual review meeting"]
    assert "Luang Prabang" in table.rows[2].cells[5].text
    page.screenshot(path=str(tmp_path / "revised.png"), full_page=True)
    with Session(world.engine) as session:
        assert session.get(Cycle, world.cycle_id).plan_revision == 2
        assert len(session.exec(select(PlanActivity)).all()) == 2


def test_someone_of_another_group_cannot_see_this_desk(world, site, page, tmp_path):
    _signed_in(world, site, page, "m3@example.org")  # secretariat of PSI only
    assert f"/desk/{world.cycle_id}" not in page.content()
    response = page.goto(f"{site}/desk/{world.cycle_id}/plan")
    assert response.status == 403 and "You may not see this desk" in page.content()
    page.screenshot(path=str(tmp_path / "refused.png"))
