"""Templates: every kind renders, Lao before English, golden files, escaping, strictness, dates in the group's zone.

Regenerate the golden files after an intended template change:  UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_templates.py
"""

import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from notifications import render
from notifications.kinds import KINDS, TEMPLATE_NAMES, kind_of
from notifications.render import Rendered, en_date, en_datetime, lao_date, lao_datetime, render_message
from notifications.samples import sample_context

GOLDEN = Path(__file__).with_name("golden")
LAO = re.compile(r"[\u0E80-\u0EFF]")


def test_every_kind_has_its_three_templates():
    for kind in KINDS:
        for name in TEMPLATE_NAMES:
            assert (kind_of(kind).folder / name).is_file(), f"{kind}/{name} is missing"


@pytest.mark.parametrize("kind", tuple(KINDS))
def test_every_kind_renders_bilingual(kind):
    rendered = render_message(kind, sample_context(kind))
    assert isinstance(rendered, Rendered)
    for part in (rendered.subject, rendered.text, rendered.html):
        assert LAO.search(part), f"{kind}: no Lao"
        assert re.search(r"[A-Za-z]{4,}", part), f"{kind}: no English"


@pytest.mark.parametrize("language", ["lo", "en"])
@pytest.mark.parametrize("kind", tuple(KINDS))
def test_lao_comes_first_but_for_english_readers(kind, language):
    context = sample_context(kind)
    context["recipient"] = {**context["recipient"], "language": language}
    rendered = render_message(kind, context)
    first, second = rendered.subject.split(" — ")
    lao_part, english_part = (first, second) if language == "lo" else (second, first)
    assert LAO.search(lao_part) and not LAO.search(english_part), rendered.subject
    for body in (rendered.text, rendered.html):
        if language == "lo":
            assert body.index("ຮຽນ ") < body.index("ຂໍຂອບໃຈ") < body.index("Dear ") < body.index("Thank you")
        else:
            assert body.index("Dear ") < body.index("Thank you") < body.index("ຮຽນ ") < body.index("ຂໍຂອບໃຈ")


@pytest.mark.parametrize("kind", tuple(KINDS))
def test_body_names_the_recipient_their_role_and_link(kind):
    context = sample_context(kind)
    rendered = render_message(kind, context)
    recipient = context["recipient"]
    for body in (rendered.text, rendered.html):
        assert f"ຮຽນ {recipient['title_lo']} {recipient['name']} ({recipient['role_lo']})" in body
        assert f"Dear {recipient['title_en']} {recipient['name_en']} ({recipient['role_en']})" in body
        if context["link"]:
            assert context["link"] in body


@pytest.mark.parametrize("kind", tuple(KINDS))
def test_golden(kind):
    rendered = render_message(kind, sample_context(kind))
    text = f"Subject: {rendered.subject}\n\n{rendered.text}"
    text_file, html_file = GOLDEN / f"{kind}.txt", GOLDEN / f"{kind}.html"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        text_file.write_text(text, encoding="utf-8")
        html_file.write_text(rendered.html, encoding="utf-8")
    assert text_file.exists(), f"no golden file for {kind}: run with UPDATE_GOLDEN=1"
    assert text == text_file.read_text(encoding="utf-8"), f"{kind}.txt differs (UPDATE_GOLDEN=1 if intended)"
    assert rendered.html == html_file.read_text(encoding="utf-8"), f"{kind}.html differs (UPDATE_GOLDEN=1 if intended)"


def test_subject_is_one_line_even_when_a_title_has_line_breaks():
    context = sample_context("call")
    context["step"]["ask_en"] = "Suggested\nactivities\r\n  for next year  "
    subject = render_message("call", context).subject
    assert "\n" not in subject and "\r" not in subject and "  " not in subject
    assert "Suggested activities for next year" in subject


def test_html_escapes_a_hostile_name_and_text_keeps_it_verbatim():
    context = sample_context("call")
    context["recipient"]["name"] = '<script>alert("x")</script> & Co'
    context["step"]["title_en"] = "<b>bold</b>"
    rendered = render_message("call", context)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "&amp; Co" in rendered.html and "<b>bold</b>" not in rendered.html
    assert '<script>alert("x")</script> & Co' in rendered.text  # plain text is not HTML


def test_html_layout_names_lao_fonts_and_inline_styles():
    html = render_message("invite", sample_context("invite")).html
    assert "font-family:'Noto Sans Lao','Phetsarath OT'" in html
    assert "sans-serif" in html
    assert '<td lang="lo"' in html and '<td lang="en"' in html
    # inline styles only, apart from the Outlook-only font rule inside a conditional comment
    assert re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S).count("<style") == 0
    assert "<!--[if mso]><style" in html


@pytest.mark.parametrize("path,kind", [(("recipient", "role_lo"), "call"), (("extra", "days_left"), "reminder"),
                                       (("extra", "failures"), "failure_report"), (("group", "name_en"), "invite")])
def test_missing_field_raises(path, kind):
    context = sample_context(kind)
    del context[path[0]][path[1]]
    with pytest.raises(UndefinedError):
        render_message(kind, context)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown message kind"):
        render_message("newsletter", sample_context("call"))


def test_dates_are_shown_in_the_groups_zone():
    # 18:30 UTC on 12 November is 01:30 on 13 November in Vientiane (UTC+7).
    moment = datetime(2019, 11, 12, 18, 30, tzinfo=timezone.utc)
    assert lao_date(moment, "Asia/Vientiane") == "ວັນພຸດ 13 ພະຈິກ 2019"
    assert en_date(moment, "Asia/Vientiane") == "Wednesday 13 November 2019"
    assert lao_datetime(moment, "Asia/Vientiane") == "ວັນພຸດ 13 ພະຈິກ 2019 ເວລາ 01:30 ໂມງ"
    assert en_datetime(moment, "Asia/Vientiane").startswith("Wednesday 13 November 2019, 01:30")
    assert en_date(moment, "Europe/Berlin") == "Tuesday 12 November 2019"
    assert lao_date(moment.isoformat(), "Asia/Vientiane") == "ວັນພຸດ 13 ພະຈິກ 2019"  # JSON-stored contexts
    assert lao_date(None) == ""
    context = sample_context("call", tz="Asia/Vientiane", deadline=moment)
    assert "ວັນພຸດ 13 ພະຈິກ 2019 ເວລາ 01:30 ໂມງ" in render_message("call", context).text


def test_naive_datetime_in_context_is_refused():
    context = sample_context("call", deadline=datetime(2019, 11, 8, 17, 0))
    with pytest.raises(ValueError, match="naive"):
        render_message("call", context)


def test_templates_compile_once(monkeypatch):
    render_message("call", sample_context("call"))
    loads = []
    original = render.ENVIRONMENT.loader.get_source
    monkeypatch.setattr(render.ENVIRONMENT.loader, "get_source",
                        lambda env, name: loads.append(name) or original(env, name))
    for _ in range(3):
        render_message("call", sample_context("call"))
    assert loads == []


def test_reminder_on_the_last_day_and_decision_outcomes():
    last_day = render_message("reminder", sample_context("reminder", extra={"days_left": 0}))
    assert "ມື້ນີ້ແມ່ນວັນສຸດທ້າຍ" in last_day.text and "Today is the last day" in last_day.text
    base = sample_context("decision_notice")["extra"]
    approved = render_message("decision_notice", sample_context(
        "decision_notice", extra={**base, "decision": "approve", "reason": "", "outcome": "approved", "approved": 4}))
    assert approved.subject.endswith(": approved") and "Reason:" not in approved.text
    assert "is approved (4 of 4)" in approved.text
    pending = render_message("decision_notice", sample_context(
        "decision_notice", extra={**base, "decision": "approve", "reason": "", "outcome": "pending"}))
    assert "2 of 4 approved; waiting for Anna Berg." in pending.text
    assert "Bounmy Phommachanh approved the 2020 annual work plan (revision 1)." in pending.text
    assert "ບຸນມີ ພົມມະຈັນ ໄດ້ຮັບຮອງ ແຜນວຽກປະຈຳປີ 2020" in pending.text  # the Lao part names the Lao name
