"""Every message of the demo, read as its recipient reads it: the deadline it states is its own, the
people it goes to are the right ones, each link does one thing, names and languages are right, and
whatever it attaches or dates is named in its body."""

import json
import re
import sqlite3
from collections import Counter
from datetime import datetime
from email import policy
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from typer.testing import CliRunner

import flows.steps
from flows.simulate import SIM_SENDER
from models.settings import get_settings
from notifications.kinds import STEP_LINK, kind_of
from notifications.links import verify_action
from roundtable.cli import app

LAO = re.compile(r"[\u0E80-\u0EFF]")
DOMAIN = SIM_SENDER.rpartition("@")[2].rstrip(">")
VIENTIANE = ZoneInfo("Asia/Vientiane")
# "before Friday 8 November 2019, 17:00 (Laos Time)", "Due: …", "before Wednesday 20 November 2019"
STATED = re.compile(r"(?:before|Deadline:|Due:) (?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) "
                    r"(\d{1,2} [A-Z][a-z]+ \d{4})(?:, (\d{2}:\d{2}))?")
LINK = re.compile(r"https?://\S+/action/([a-z]+)\.(\S+)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_mail")
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    db = sqlite3.connect(out / "roundtable.db")
    members = {email: (name, name_en, language) for email, name, name_en, language
               in db.execute("select email, name, name_en, language from member")}
    mails = []
    for entry in entries:
        mail = BytesParser(policy=policy.default).parse((out / entry["file"]).open("rb"))
        text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
        mails.append((entry, mail, text))
    # The key the links were signed with: the configured one, or the simulation's, written beside its database.
    key_file = out / "secret_key"
    secret = key_file.read_text().strip() if key_file.exists() else get_settings().resolved_secret_key()
    yield {"out": out, "mails": mails, "db": db, "members": members, "secret": secret}
    db.close()


def english_part(text: str, language: str) -> str:
    """The English half of a text body (the halves are separated by a line of dashes)."""
    first, second = text.split("-" * 60)
    return first if language == "en" else second


def test_the_demo_sends_every_kind_it_should(demo):
    kinds = Counter(entry["kind"] for entry, _, _ in demo["mails"])
    for kind in ("call", "reminder", "invite", "agenda", "survey", "minutes_due", "task", "approval_request",
                 "decision_notice", "escalation", "submission"):
        assert kinds[kind], kind


def test_every_deadline_a_message_states_is_its_own_and_not_past(demo):
    db = demo["db"]
    ends = {key: datetime.fromisoformat(value + "+00:00") for key, value in
            db.execute("select key, ends_at from step where ends_at is not null")}
    checked = Counter()
    for entry, _mail, text in demo["mails"]:
        kind = kind_of(entry["kind"])
        if not kind.deadline:
            continue
        sent = datetime.fromisoformat(entry["at"])
        english = english_part(text, demo["members"][entry["to"][0]][2])
        stated = STATED.findall(english)
        assert stated, (entry["kind"], english)
        for day, hour in stated:
            moment = datetime.strptime(f"{day} {hour or '23:59'}", "%d %B %Y %H:%M").replace(tzinfo=VIENTIANE)
            assert moment >= sent, (entry["kind"], entry["to"], day, hour, entry["at"])
            if entry["kind"] in ("minutes_due", "survey"):  # not the meeting's end: days after it
                assert (moment - ends[entry["step"]]).days >= 4, (entry["kind"], moment)
        checked[entry["kind"]] += 1
    assert checked["minutes_due"] and checked["survey"] and checked["call"] and checked["approval_request"]


def test_survey_and_thanks_only_to_those_who_did_not_decline(demo):
    db = demo["db"]
    declined = {email for (email,) in db.execute(
        "select m.email from response r join member m on m.id = r.member_id join step s on s.id = r.step_id "
        "where s.key = 'annual_review_meeting' and r.kind = 'rsvp' and r.body = 'DECLINED'")}
    invited = {entry["to"][0] for entry, _, _ in demo["mails"] if entry["kind"] == "invite"
               and entry["step"] == "annual_review_meeting"}
    surveyed = {entry["to"][0] for entry, _, _ in demo["mails"] if entry["kind"] == "survey"}
    assert declined, "the demo should have someone who declined"
    assert surveyed == invited - declined


def expected_purpose(entry) -> str | None:
    kind = kind_of(entry["kind"])
    step_kind = {"call_for_suggestions": "collect", "annual_review_meeting": "meeting",
                 "secretariat_review": "review", "comment_round": "collect", "approval": "approval",
                 "submission_to_mpi": "submit"}[entry["step"]]
    return flows.steps.handler_for(step_kind).purpose if kind.link == STEP_LINK else kind.link


def test_one_purpose_per_link(demo):
    from datetime import timedelta

    purposes = Counter()
    for entry, _mail, text in demo["mails"]:
        links = set(LINK.findall(text))
        wanted = expected_purpose(entry)
        if wanted is None:
            assert not links, entry["kind"]
            continue
        assert len(links) == 1, (entry["kind"], links)
        ((purpose, _),) = links
        assert purpose == wanted, (entry["step"], entry["kind"], purpose)
        token = LINK.search(text).group(0).rpartition("/action/")[2]
        assert verify_action(demo["secret"], token, max_age=timedelta(days=36500))["purpose"] == wanted
        purposes[(entry["step"], entry["kind"], purpose)] += 1
    assert purposes[("annual_review_meeting", "agenda", "documents")]
    assert purposes[("annual_review_meeting", "survey", "survey")]
    assert purposes[("secretariat_review", "invite", "rsvp")]
    assert purposes[("secretariat_review", "task", "checklist")]
    assert any(step_kind == "escalation" for _, step_kind, purpose in purposes if purpose == "status")


def test_names_greetings_and_language_order(demo):
    for entry, mail, text in demo["mails"]:
        name, name_en, language = demo["members"][entry["to"][0]]
        opening = text.lstrip().split("\n", 1)[0]
        lao_greeting = next(line for line in text.splitlines() if line.startswith("ຮຽນ "))
        english_greeting = next(line for line in text.splitlines() if line.startswith("Dear "))
        assert (opening == english_greeting) == (language == "en"), (entry["to"], opening)
        assert name in lao_greeting and (name_en or name) in english_greeting
        assert not LAO.search(english_greeting), english_greeting  # every demo member has a Latin name
        for greeting in (lao_greeting, english_greeting):
            assert greeting.count("(") == 1, greeting  # the role once, never twice
        subject = str(mail["Subject"])
        first, _, second = subject.partition(" — ")
        assert second, subject
        assert bool(LAO.search(first)) == (language != "en") and bool(LAO.search(second)) == (language == "en"), subject
        assert len(subject) <= 100, subject
        display = mail["From"].addresses[0].display_name
        assert LAO.search(display) and re.search(r"[A-Za-z]{5,}", display), display


def test_members_read_what_they_are_asked_and_decisions_say_where_the_round_stands(demo):
    for entry, mail, text in demo["mails"]:
        subject = str(mail["Subject"])
        assert "Call to all members" not in subject and "ສົ່ງອີເມວເຖິງບັນດາສະມາຊິກ" not in subject
        if entry["kind"] == "call" and entry["step"] == "call_for_suggestions":
            assert "Suggest activities for the 2020 work plan" in subject
        if entry["kind"] == "decision_notice":
            english = english_part(text, demo["members"][entry["to"][0]][2])
            assert re.search(r"approved the 2020 annual work plan|did not approve", english), english
            assert re.search(r"\d of \d approved; waiting for \S|is approved \(\d of \d\)|goes back", english)
            lao = text.split("-" * 60)[0]
            decider = re.search(r"^(.+?) (?:ໄດ້ຮັບຮອງ|ບໍ່ຮັບຮອງ)", lao.split("\n", 2)[2].strip()).group(1)
            assert LAO.search(decider) or decider in {n for n, _, _ in demo["members"].values()}


def test_every_attachment_and_calendar_part_is_named_in_the_body(demo):
    for entry, mail, text in demo["mails"]:
        for part in mail.iter_attachments():
            filename = part.get_filename()
            assert filename and filename in text, (entry["kind"], filename)
        for part in mail.walk():
            if part.get_content_type() == "text/calendar":
                calendar = Calendar.from_ical(part.get_content())
                if str(calendar["METHOD"]) == "PUBLISH":  # a deadline: its moment is in the text
                    due = calendar.walk("VEVENT")[0].decoded("DTSTART").astimezone(VIENTIANE)
                    assert f"{due:%B} {due.year}, {due:%H:%M}" in text, (entry["kind"], due)
                    assert "deadline.ics" in text


def test_the_agenda_is_the_seeds_and_each_language_has_its_location(demo):
    agenda = next(text for entry, _, text in demo["mails"] if entry["kind"] == "agenda")
    assert "09:30-09:40  Group photo" in agenda and "ຖ່າຍຮູບລວມ" in agenda
    where = next(line for line in agenda.splitlines() if line.startswith("Where:"))
    assert where == "Where: ICTC (Km 5)"
    assert next(line for line in agenda.splitlines() if line.startswith("ສະຖານທີ່:")) == "ສະຖານທີ່: ICTC (ຫຼັກ5)"


def test_uids_and_message_ids_use_the_senders_domain(demo):
    uids = set()
    for entry, mail, _text in demo["mails"]:
        assert mail["Message-ID"].endswith(f"@{DOMAIN}>"), mail["Message-ID"]
        for part in mail.walk():
            if part.get_content_type() == "text/calendar":
                uid = str(Calendar.from_ical(part.get_content()).walk("VEVENT")[0]["UID"])
                assert uid.endswith(f"@{DOMAIN}"), uid
                uids.add(uid)
    assert uids


def test_invitations_offer_the_members_own_calendar_feed(demo):
    from notifications.links import read_feed_token

    ids = {email: member_id for member_id, email in demo["db"].execute("select id, email from member")}
    invites = [(entry, text) for entry, _, text in demo["mails"] if entry["kind"] == "invite"]
    assert invites
    for entry, text in invites:
        feeds = set(re.findall(r"webcal://\S+/feeds/(\S+)\.ics", text))
        assert len(feeds) == 1, entry["to"]
        assert read_feed_token(demo["secret"], feeds.pop()) == {"m": ids[entry["to"][0]]}
