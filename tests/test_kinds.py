"""Kinds in one place: every message kind has its registry entry, templates, sample and golden files;
and a new step kind is one module (here: a class in this file), one template folder and one YAML step."""

from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

import flows.steps
from flows.steps.base import StepHandler
from models.definition import DefinitionError, parse_definition
from models.step_kinds import StepKindSpec
from models.tables import Notification, Response, Step
from notifications import kinds
from notifications.kinds import KINDS, LINK_PURPOSES, STEP_LINK, TEMPLATE_NAMES, MessageKind, kind_of
from notifications.samples import sample_context
from tests.engine_helpers import CONFIG, local, seed_people, step

GOLDEN = Path(__file__).with_name("golden")
TEMPLATES = Path(kinds.__file__).with_name("templates")


def test_every_kind_has_an_entry_templates_a_sample_and_golden_files():
    folders = {p.name for p in TEMPLATES.iterdir() if p.is_dir()}
    assert folders == set(KINDS), "a template folder without a registry entry, or an entry without templates"
    for name, kind in KINDS.items():
        for template in TEMPLATE_NAMES:
            assert (kind.folder / template).is_file(), f"{name}: no {template}"
        assert sample_context(name), f"{name}: no sample context"
        assert (GOLDEN / f"{name}.txt").is_file() and (GOLDEN / f"{name}.html").is_file(), f"{name}: no golden file"
        assert kind.link in (None, STEP_LINK, *LINK_PURPOSES)


def test_every_step_handler_names_a_link_purpose_and_its_opening_kind_is_registered():
    for handler in flows.steps.HANDLERS.values():
        assert handler.purpose in LINK_PURPOSES, handler.kind
        assert handler.opening is None or handler.opening in KINDS, handler.kind


def test_the_registry_refuses_what_it_cannot_honour():
    with pytest.raises(ValueError, match="late_policy"):
        kinds.register(MessageKind("x", late_policy="sometimes"))
    with pytest.raises(ValueError, match="link purpose"):
        kinds.register(MessageKind("x", link="everything"))
    with pytest.raises(ValueError, match="deadline"):
        kinds.register(MessageKind("x", deadline_event=True))
    with pytest.raises(ValueError, match="addressed_to"):
        kinds.register(MessageKind("x", addressed_to="everyone"))
    with pytest.raises(ValueError, match="unknown message kind 'x'"):
        kind_of("x")


# --- a step kind added as a user would add one ------------------------------------------------------------

class PledgeHandler(StepHandler):
    """Each member pledges a contribution to the plan by the deadline (a step kind of its own, with its own
    message kind and a definition field of its own: `amount_hint`)."""

    spec = StepKindSpec("pledge", accepts=("amount_hint",), answer="pledge")
    opening = "pledge_request"
    purpose = "respond"

    def extra(self, cs, step, row, now):
        return {"hint": cs.step_def(step.key).amount_hint}


SUBJECT = '{% from "_macros.txt.j2" import subject with context %}\n{{ subject("ຂໍຄຳໝັ້ນ", "Pledge") }}\n'
BODY_TXT = ('{% extends "_base.txt.j2" %}\n{% block lo %}\nກະລຸນາແຈ້ງ {{ extra.hint }} ກ່ອນ {{ deadline | lao_datetime(tz) }}.\n'
            '{{ link }}\n{% endblock %}\n{% block en %}\nPlease pledge {{ extra.hint }} before '
            '{{ deadline | en_datetime(tz) }}.\n{{ link }}\n{% endblock %}\n')
BODY_HTML = ('{% extends "_base.html.j2" %}\n{% block lo %}<p>ກະລຸນາແຈ້ງ {{ extra.hint }}</p>{% endblock %}\n'
             '{% block en %}<p>Please pledge {{ extra.hint }}</p>{% endblock %}\n')
DEFINITION = """
name: pledges
title_lo: ຄຳໝັ້ນ
title_en: Pledges
group: GSWG
anchors:
  annual_meeting: {month: 11, day: 13, year_offset: -1, time: "08:30"}
steps:
  - key: pledges
    kind: pledge
    title_lo: ຄຳໝັ້ນຂອງສະມາຊິກ
    title_en: Members' pledges
    audience: {roles: [member]}
    opens: annual_meeting - 5 business days
    due: annual_meeting - 1 business days
    amount_hint: a budget line
"""


@pytest.fixture
def pledge_kind(tmp_path):
    folder = tmp_path / "pledge_request"
    folder.mkdir()
    for name, text in zip(TEMPLATE_NAMES, (SUBJECT, BODY_TXT, BODY_HTML)):
        (folder / name).write_text(text, encoding="utf-8")
    kinds.register(MessageKind("pledge_request", link=STEP_LINK, deadline="due", templates=folder))
    flows.steps.register(PledgeHandler())
    yield
    flows.steps.unregister("pledge")
    kinds.unregister("pledge_request")


def test_a_new_step_kind_is_one_module_one_template_folder_and_one_yaml_step(pledge_kind, sqlite_engine, tmp_path):
    from flows.cycle import start_cycle
    from flows.tick import tick
    from notifications.outbox import deliver_due, payload_of
    from notifications.transports import FileTransport

    definition = parse_definition(yaml.safe_load(DEFINITION), "pledges.yaml")
    with Session(sqlite_engine, expire_on_commit=False) as session:
        members = seed_people(session)
        cycle = start_cycle(session, definition, 2020, {}, local(2019, 10, 1, 9, 0), sender=CONFIG.sender)
        session.commit()
        report = tick(session, local(2019, 11, 6, 9, 0), CONFIG)
        assert report.opened == ["pledges"] and report.by_kind["pledge_request"] == 4  # the four members
        row = session.exec(select(Notification).where(Notification.kind == "pledge_request")).first()
        mail = BytesParser(policy=policy.default).parsebytes(payload_of(session, row.id))
        text = mail.get_body(("plain",)).get_content()
        assert "Please pledge a budget line before Tuesday 12 November 2019, 17:00" in text
        assert "/action/respond." in text and "deadline.ics" not in text
        assert "Pledge" in row.subject and "ຂໍຄຳໝັ້ນ" in row.subject
        pledges = step(session, cycle, "pledges")
        for email in ("m1@example.org", "m2@example.org", "m3@example.org", "m4@example.org"):
            session.add(Response(step_id=pledges.id, member_id=members[email].id, kind="pledge", body="1000 USD",
                                 at=local(2019, 11, 7, 10, 0)))
        session.commit()
        tick(session, local(2019, 11, 12, 17, 0), CONFIG)
        session.refresh(pledges)
        assert (pledges.state, pledges.outcome) == ("closed", "complete")
    sent = deliver_due(sqlite_engine, FileTransport(tmp_path / "mail"), local(2019, 11, 12, 17, 0))
    assert sent.sent == 4 and len(list((tmp_path / "mail").glob("*-pledge_request.eml"))) == 4


def test_a_field_a_step_kind_does_not_accept_is_refused_with_its_path():
    data = yaml.safe_load(DEFINITION)
    data["steps"][0]["kind"] = "collect"
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.amount_hint: unknown field 'amount_hint'"):
        parse_definition(data, "pledges.yaml")
    data["steps"][0].pop("amount_hint")
    data["steps"][0]["agenda"] = [{"time": "09:00", "title_lo": "ກ", "title_en": "A"}]
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.agenda: does not apply to a collect step"):
        parse_definition(data, "pledges.yaml")
