"""render_message renders once per shape of context and puts each recipient's name, email and link in:
it must return exactly what the full render returns, never another message's text, and fall back to
the full render wherever a template does more with those values than print them."""

import random
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from jinja2 import ChoiceLoader, DictLoader, UndefinedError
from markupsafe import Markup, escape

from notifications import render, render_by_shape
from notifications.kinds import KINDS as REGISTRY
from notifications.render import render_message
from notifications.samples import sample_context

KINDS = tuple(REGISTRY)

LOOKALIKES = [*render_by_shape._STAND_INS, *render_by_shape._CHECK_STAND_INS,
              *(str(escape(s)) for s in render_by_shape._STAND_INS),
              "\ue000", "\ue001 \ue001", "\ue010x", "{0}", "{name}", "\\1", "%s"]
NAMES = ["Khamphone Sisavath", "ສົມໃຈ ພົມມະຈັນ", "Anna Berg", "ນາງ ວິໄລ ອິນທະວົງ (Vilay)", "O'Neil & Sons",
         'Bob "the builder" <b>', "<script>alert(1)</script>", "a & b &amp; c", "  spaced   out\n", "x",
         "Dear Anna (member),", '<p style="margin:0 0 12px 0;">ຮຽນ</p>', "ຂໍຂອບໃຈ, — Thank you", "Ω≈ç √ 🙂"]
LINKS = [None, "https://roundtable.example.org/action/call.TOKEN", "https://x.example/a?b=1&c=<2>&d=\"e\"",
         "https://roundtable.example.org/action/" + "T0k3n-" * 400, "https://x.example/ລາວ?q='&amp;'"]
ROLES = [("member", "ສະມາຊິກ", "member"), ("chair", "ປະທານ", "chair"), ("secretariat", "ກອງເລຂາ", "secretariat")]


def random_value(rng: random.Random, choices: list) -> str | None:
    """One of the choices, sometimes glued to another (a name holding a stand-in's text, say)."""
    value, other = rng.choice(choices), rng.choice(choices)
    return value + other if rng.random() < 0.3 and value is not None and other is not None else value


def random_recipient_context(kind: str, rng: random.Random) -> dict:
    context = sample_context(kind)
    role, role_lo, role_en = rng.choice(ROLES)
    context["recipient"] = {**context["recipient"], "name": random_value(rng, NAMES + LOOKALIKES),
                            "email": random_value(rng, ["vilay@example.org", "a&b@example.org", *LOOKALIKES]),
                            "role": role, "role_lo": role_lo, "role_en": role_en, "language": rng.choice("lo en".split())}
    if context["link"] is not None:  # kinds without a link keep None, as the engine gives them
        context["link"] = random_value(rng, LINKS + LOOKALIKES)
    return context


def shape_of(kind: str, context: dict):
    """The cached shape this context used (None: rendered fully), so a test can tell the cache was at work."""
    shape_context = render_by_shape._with_stand_ins(context, render_by_shape._STAND_INS)
    key = (render._templates(kind), render_by_shape._frozen(shape_context))
    return render_by_shape._shapes[key]


def templates_with(monkeypatch, old: str, new: str, base: str = "_base.html.j2"):
    """Point render at an Environment whose `base` layout has `old` replaced by `new`."""
    source = (render.TEMPLATES_DIR / base).read_text(encoding="utf-8")
    if old == GREETING:  # the layouts show the role only if the name does not already say it
        new = new.removesuffix(" (") + "{% if recipient.show_role_lo %} ("
    assert old in source
    environment = render._make_environment()
    environment.loader = ChoiceLoader([DictLoader({base: source.replace(old, new)}), environment.loader])
    templates = {kind: tuple(environment.get_template(f"{kind}/{name}")
                             for name in ("subject.txt.j2", "body.txt.j2", "body.html.j2")) for kind in KINDS}
    monkeypatch.setattr(render, "_templates", templates.__getitem__)


GREETING = "{{ recipient.name }}{% if recipient.show_role_lo %} ("  # the Lao greeting, in both layouts


@pytest.fixture(autouse=True)
def empty_cache():
    render_by_shape._shapes.clear()
    yield
    render_by_shape._shapes.clear()


@pytest.mark.parametrize("kind", KINDS)
def test_every_recipient_gets_exactly_the_full_render(kind):
    rng = random.Random(f"recipients-{kind}")
    for _ in range(60):
        context = random_recipient_context(kind, rng)
        assert render_message(kind, context) == render.render_plain(kind, context), context["recipient"]
        assert shape_of(kind, context) is not None, f"{kind} was rendered fully"


@pytest.mark.parametrize("kind", KINDS)
def test_the_sample_and_its_golden_text_come_from_a_shape(kind):
    context = sample_context(kind)
    first, again = render_message(kind, context), render_message(kind, sample_context(kind))
    assert first == again == render.render_plain(kind, context)
    assert shape_of(kind, context) is not None


def test_interleaved_kinds_and_recipients_never_mix():
    rng = random.Random("interleaved")
    messages = [(kind, random_recipient_context(kind, rng)) for kind in KINDS for _ in range(12)]
    rng.shuffle(messages)
    for kind, context in messages:
        rendered = render_message(kind, context)
        assert rendered == render.render_plain(kind, context)
        if context["recipient"]["name"] not in LOOKALIKES:
            assert context["recipient"]["name"].strip().split()[0] in rendered.text


def test_a_full_cache_is_cleared_and_stays_right(monkeypatch):
    monkeypatch.setattr(render_by_shape._shapes, "size", 3)
    rng = random.Random("small cache")
    for _ in range(80):
        kind = rng.choice(KINDS)
        context = random_recipient_context(kind, rng)
        assert render_message(kind, context) == render.render_plain(kind, context)
        assert len(render_by_shape._shapes) <= 3


def changed(context: dict, path: str, value) -> dict:
    """A copy of context with the field at dotted `path` set to value."""
    *parents, last = path.split(".")
    copy = {**context}
    node = copy
    for name in parents:
        node[name] = node = {**node[name]}
    node[last] = value
    return copy


@pytest.mark.parametrize("kind, path, value", [
    ("reminder", "step.ask_en", "Comments on the draft plan"),
    ("reminder", "step.ask_lo", "ສົ່ງອີເມວຂໍຄໍາເຫັນ"),
    ("reminder", "deadline", datetime(2019, 11, 9, 17, 0, tzinfo=ZoneInfo("Asia/Vientiane"))),
    ("reminder", "extra.days_left", 1),
    ("reminder", "extra.days_left", 0),
    ("reminder", "recipient.role_en", "chair"),
    ("reminder", "recipient.role_lo", "ປະທານ"),
    ("reminder", "group.name_en", "Health Sector Working Group"),
    ("reminder", "link", None),
    ("call", "year", 2021),
    ("call", "tz", "Asia/Bangkok"),
    ("call", "deadline_event", False),
    ("invite", "step.location_en", "MoHA, meeting room 2"),
    ("invite", "agenda", []),
    ("escalation", "extra.late", [{"name": "Vilay Inthavong", "email": "vilay@example.org"}]),
    ("call", "recipient.language", "en"),
    ("call", "recipient.title_en", "Dr"),
    ("call", "attachments", ["GSWG-2020-draft-plan-r1.docx"]),
])
def test_a_changed_field_outside_the_personal_three_changes_the_message(kind, path, value):
    context = sample_context(kind)
    before = render_message(kind, context)
    after = render_message(kind, changed(context, path, value))
    assert after != before
    assert after == render.render_plain(kind, changed(context, path, value))


@pytest.mark.parametrize("days_left", [1, True, 1.0, Decimal("1.0"), -0.0, 0.0])
def test_values_python_calls_equal_but_that_print_differently_are_different_shapes(days_left):
    # 1 == True == 1.0 and 0.0 == -0.0: with each already cached, the next must not take its text
    for warm_up in (1, True, 1.0, 0.0, -0.0):
        render_message("reminder", changed(sample_context("reminder"), "extra.days_left", warm_up))
    context = changed(sample_context("reminder"), "extra.days_left", days_left)
    assert render_message("reminder", context) == render.render_plain("reminder", context)


def test_the_same_instant_in_zones_of_other_names_is_another_shape(monkeypatch):
    templates_with(monkeypatch, GREETING, "Dear {{ recipient.name }} {{ step.due_at.strftime('%Z') }} (", "_base.txt.j2")
    due = sample_context("call")["step"]["due_at"]
    for zone in (timezone(due.utcoffset(), "ICT"), timezone(due.utcoffset(), "Indochina Time"), timezone.utc):
        context = changed(sample_context("call"), "step.due_at", due.astimezone(zone))
        assert render_message("call", context) == render.render_plain("call", context)
        assert shape_of("call", context) is not None


def test_dict_order_is_part_of_the_shape():
    context = sample_context("escalation")
    render_message("escalation", context)
    reordered = changed(context, "extra.late", [{"email": p["email"], "name": p["name"]} for p in context["extra"]["late"]])
    assert shape_of("escalation", context) is not None
    with pytest.raises(KeyError):
        shape_of("escalation", reordered)


@pytest.mark.parametrize("odd", [{"a", "b"}, Markup("<b>x</b>"), object(), Decimal("2.50")])
def test_values_it_cannot_freeze_are_rendered_fully(odd):
    context = changed(sample_context("decision_notice"), "extra.reason", odd)
    assert render_message("decision_notice", context) == render.render_plain("decision_notice", context)


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_name_or_link_stays_as_it_is(empty):
    context = changed(changed(sample_context("call"), "recipient.name", empty), "link", empty)
    assert render_message("call", context) == render.render_plain("call", context)
    assert "respond.TOKEN" not in render_message("call", context).text


def test_a_field_holding_a_stand_ins_text_is_rendered_fully():
    context = changed(sample_context("call"), "step.ask_en", "About " + render_by_shape._STAND_INS[0])
    assert render_message("call", context) == render.render_plain("call", context)
    assert shape_of("call", context) is None


def test_a_missing_field_still_raises():
    context = sample_context("call")
    del context["step"]["ask_en"]
    for _ in range(2):
        with pytest.raises(UndefinedError):
            render_message("call", context)


# --- The guard: templates that do more with a personal value than print it ------------------------------

@pytest.mark.parametrize("base, new", [
    ("_base.txt.j2", "Dear {{ recipient.name | upper }} ("),
    ("_base.txt.j2", "Dear {{ recipient.name | truncate(12) }} ("),
    ("_base.html.j2", "Dear {{ recipient.name | truncate }} ("),
    ("_base.html.j2", "Dear {{ recipient.name | safe }} ("),
    ("_base.txt.j2", "Dear {{ recipient.name | e }} ("),
    ("_base.txt.j2", "Dear {{ recipient.name | replace('Anna', 'Ms Berg') }} ("),
    ("_base.txt.j2", "Dear {% if recipient.name == 'Anna Berg' %}Ms Berg{% endif %} ("),
    ("_base.txt.j2", "Dear {{ recipient.get('name') | lower }} ("),
    ("_base.html.j2", "Dear <a href=\"?n={{ link | urlencode }}\">{{ recipient.name }}</a> ("),
    # Not to be seen in the template's tree: the stand-ins show it.
    ("_base.txt.j2", "Dear {% filter upper %}{{ recipient.name }}{% endfilter %} ("),
    ("_base.html.j2", "{% set dear %}{{ recipient.name }}{% endset %}Dear {{ dear | truncate(40) }} ("),
    ("_base.txt.j2", "{% set dear %}{{ recipient.name }}{% endset %}Dear {{ dear | trim }} ("),
    ("_base.txt.j2", "{% set dear %}{{ recipient.name }}{% endset %}Dear {{ dear | wordcount }} ("),
])
def test_a_template_transforming_a_personal_value_is_rendered_fully(monkeypatch, base, new):
    templates_with(monkeypatch, GREETING, new, base)
    rng = random.Random(new)
    for kind in ("call", "reminder", "invite", "cancel"):
        for name in ("Anna Berg", " anna ", "ສົມໃຈ & <Co>", "A" * 300, *rng.sample(NAMES, 4)):
            context = changed(sample_context(kind), "recipient.name", name)
            assert render_message(kind, context) == render.render_plain(kind, context), (kind, name)
        assert shape_of(kind, context) is None


def test_a_changed_template_that_only_prints_the_name_is_still_served_from_shapes(monkeypatch):
    templates_with(monkeypatch, GREETING, "Dear {{ recipient.name }}, {{ recipient.name }} (")
    context = changed(sample_context("call"), "recipient.name", "O'Neil & <Sons>")
    assert render_message("call", context) == render.render_plain("call", context)
    assert "Dear O&#39;Neil &amp; &lt;Sons&gt;, O&#39;Neil" in render_message("call", context).html
    assert shape_of("call", context) is not None
