"""Render a message (subject, text, HTML) from its kind's templates: Lao first, then English.

Templates live in notifications/templates/<kind>/{subject.txt.j2, body.txt.j2, body.html.j2}.
The Environment is built once at import; each template compiles once, on first use
(compiling per message is ~100x slower, DESIGN §4).

A step's message goes to every member with the same context but for the recipient's name, email
and own link, so the templates run once per "shape" of context, with stand-ins for those three
values, and each recipient's message is that shape with their values put in (see render_message).
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from jinja2 import Environment, FileSystemLoader, StrictUndefined, nodes, select_autoescape
from markupsafe import Markup, escape

KINDS = ("call", "reminder", "digest", "invite", "update", "cancel", "agenda", "minutes_due", "survey",
         "task", "approval_request", "decision_notice", "revision_request", "escalation", "submission",
         "failure_report", "step_blocked")

DEFAULT_TZ = "Asia/Vientiane"
TEMPLATES_DIR = Path(__file__).with_name("templates")
# Lao fonts first (Phetsarath OT is the government's; Windows ships Lao UI / Leelawadee UI), then fallbacks.
FONT_STACK = "'Noto Sans Lao','Phetsarath OT','Lao UI','Leelawadee UI',Arial,sans-serif"
# Inline styles (Gmail keeps them; most clients ignore <style>). The font is set on each cell and
# inherited; Outlook's Word engine does not inherit it into <p> and falls back to Times when the
# first font is missing, so the layout adds an Outlook-only (mso) rule for that.
_STYLES = {
    "font_stack": FONT_STACK,
    "p_style": "margin:0 0 12px 0;",
    "small_style": "margin:0 0 12px 0;font-size:12px;color:#5f6b7a;word-break:break-all;",
    "li_style": "margin:0 0 4px 0;",
    "cell_style": "padding:3px 10px 3px 0;vertical-align:top;",
    "button_style": ("display:inline-block;background-color:#1f4e79;color:#ffffff;text-decoration:none;"
                     "padding:10px 18px;border-radius:4px;font-weight:bold;"),
}
_LO = Locale.parse("lo")
_EN = Locale.parse("en")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=16)
def _zone(tz) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz or DEFAULT_TZ)


def _local(value, tz):
    """An aware datetime (or ISO string, as stored in JSON contexts) in the group's zone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime in a message context: {value.isoformat()}")
        return value.astimezone(_zone(tz))
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date or datetime, got {type(value).__name__}")


def lao_date(dt, tz=DEFAULT_TZ) -> str:
    """'ວັນພຸດ 13 ພະຈິກ 2019' (None renders as '')."""
    if dt is None:
        return ""
    return format_date(_local(dt, tz), "EEEE d MMMM y", locale=_LO)


def en_date(dt, tz=DEFAULT_TZ) -> str:
    """'Wednesday 13 November 2019' (None renders as '')."""
    if dt is None:
        return ""
    return format_date(_local(dt, tz), "EEEE d MMMM y", locale=_EN)


def lao_datetime(dt, tz=DEFAULT_TZ) -> str:
    """'ວັນພຸດ 13 ພະຈິກ 2019 ເວລາ 08:30 ໂມງ' in the group's zone."""
    if dt is None:
        return ""
    local = _local(dt, tz)
    return f"{format_date(local, 'EEEE d MMMM y', locale=_LO)} ເວລາ {format_time(local, 'HH:mm', locale=_LO)} ໂມງ"


def en_datetime(dt, tz=DEFAULT_TZ) -> str:
    """'Wednesday 13 November 2019, 08:30 (Indochina Time)' in the group's zone."""
    if dt is None:
        return ""
    local = _local(dt, tz)
    zone_name = _zone_name(str(_zone(tz)))
    return f"{format_date(local, 'EEEE d MMMM y', locale=_EN)}, {format_time(local, 'HH:mm', locale=_EN)} ({zone_name})"


def hm(dt, tz=DEFAULT_TZ) -> str:
    """'16:30' in the group's zone."""
    return "" if dt is None else _local(dt, tz).strftime("%H:%M")


@lru_cache(maxsize=16)
def _zone_name(tz: str) -> str:
    return get_timezone_name(ZoneInfo(tz), "long", locale=_EN)


def _make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # select_autoescape() alone does not escape *.html.j2 (DESIGN §4).
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # no stat() per render: templates do not change under a running engine
        cache_size=-1,
    )
    env.filters.update(lao_date=lao_date, en_date=en_date, lao_datetime=lao_datetime, en_datetime=en_datetime, hm=hm)
    env.globals.update({name: Markup(value) for name, value in _STYLES.items()})
    return env


ENVIRONMENT = _make_environment()


@lru_cache(maxsize=len(KINDS))
def _templates(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r} (known: {', '.join(KINDS)})")
    return tuple(ENVIRONMENT.get_template(f"{kind}/{name}")
                 for name in ("subject.txt.j2", "body.txt.j2", "body.html.j2"))


def _render_fully(kind: str, context: dict) -> Rendered:
    """The three templates run on this very context: what render_message returns, only slower."""
    return _finished(*(template.render(context) for template in _templates(kind)))


def _finished(subject: str, text: str, html: str) -> Rendered:
    subject = " ".join(subject.split())  # one line, whatever the template did
    return Rendered(subject=subject, text=text.strip() + "\n", html=html.strip() + "\n")


def render_message(kind: str, context: dict) -> Rendered:
    """Render one message; a field missing from the context raises jinja2.UndefinedError.

    Equal to _render_fully, at a fraction of its cost when the same shape of context comes again.
    """
    templates = _templates(kind)
    try:
        shape_context = _with_stand_ins(context, _STAND_INS)
        key = (templates, _frozen(shape_context))
    except (_Unfreezable, RecursionError):  # a value of another type, or a context that contains itself
        return _render_fully(kind, context)
    shape = _shapes.get(key, _UNSEEN)
    if shape is _UNSEEN:
        try:
            shape = _shape(templates, context, shape_context)
        except Exception:  # a context the templates reject: the full render below raises it
            shape = None
        if len(_shapes) >= _SHAPE_LIMIT:
            _shapes.clear()
        _shapes[key] = shape
    if shape is None:
        return _render_fully(kind, context)
    values = _personal_values(context)
    escaped = tuple(str(escape(value)) if type(value) is str else value for value in values)
    return _finished(*(_filled(pieces, escaped if escapes else values) for pieces, escapes in shape))


# --- One render per shape ------------------------------------------------------------------------------
# Stand-ins for name, email and link: private-use code points (never in real text, left alone by HTML
# escaping) around both cases of letters, edge whitespace and HTML's special characters, so that a
# template changing the value (|upper, |trim, |e, |safe ...) changes the stand-in. The second set,
# long and different, is for checking a shape: a length-dependent filter (|truncate) cuts it.
_STAND_INS = tuple(f" {chr(0xE000 + slot)} aB <&>\"' cD {chr(0xE000 + slot)} " for slot in range(3))
_CHECK_FILLER = " xY &'\"<> wORD" * 40
_CHECK_STAND_INS = tuple(f"\t{chr(0xE010 + slot)}{_CHECK_FILLER}{chr(0xE010 + slot)}\n" for slot in range(3))
_SHAPE_LIMIT = 512  # shapes remembered (a few per step); cleared when full
_shapes: dict = {}  # (templates, frozen shape context) -> pieces per template, or None: render fully
_UNSEEN = object()


class _Unfreezable(Exception):
    """A context value whose equality does not settle what the templates would make of it."""


def _replaceable(value) -> bool:
    # Only plain non-empty text: the stand-in must be exactly as truthy, and a None link stays None
    # so that `{% if link %}` decides as it would.
    return type(value) is str and value != ""


def _personal_values(context: dict) -> tuple:
    recipient = context.get("recipient")
    if type(recipient) is not dict:
        recipient = {}
    return recipient.get("name"), recipient.get("email"), context.get("link")


def _with_stand_ins(context: dict, stand_ins: tuple) -> dict:
    """The context with name, email and link replaced by stand_ins wherever they are replaceable."""
    if type(context) is not dict:
        raise _Unfreezable
    name, email, link = _personal_values(context)
    shaped = dict(context)
    if _replaceable(link):
        shaped["link"] = stand_ins[2]
    if _replaceable(name) or _replaceable(email):
        shaped["recipient"] = recipient = dict(context["recipient"])
        if _replaceable(name):
            recipient["name"] = stand_ins[0]
        if _replaceable(email):
            recipient["email"] = stand_ins[1]
    return shaped


def _frozen(value):
    """A hashable stand-in for `value`, equal for two values only if a template would render both alike:
    types are kept (1, 1.0 and True are equal in Python, not on the page) and so is dict order."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is dict:
        return (dict, tuple([(key if type(key) is str else _frozen(key), _frozen(item))
                             for key, item in value.items()]))
    if kind is list or kind is tuple:
        return (kind, tuple([_frozen(item) for item in value]))
    if kind is int or kind is bool or kind is date:
        return (kind, value)
    if kind is float:
        return (kind, repr(value))  # -0.0 == 0.0
    if kind is datetime:
        # Aware datetimes in other zones are equal when they are the same instant; fold is ignored.
        return (kind, value, _zone_key(value.tzinfo), value.fold)
    raise _Unfreezable


def _zone_key(zone):
    if zone is None or type(zone) is ZoneInfo:  # ZoneInfo compares by identity
        return zone
    if type(zone) is timezone:
        return repr(zone)  # timezones compare by offset only, and their names can be printed
    raise _Unfreezable


def _shape(templates: tuple, context: dict, shape_context: dict):
    """Each template's output as pieces of text and slots (0 name, 1 email, 2 link) and whether it
    is HTML-escaped; None when the templates might not treat the values as opaque text."""
    if not _prints_personal_values_plainly(templates):
        return None
    check_context = _with_stand_ins(context, _CHECK_STAND_INS)
    shape = []
    for template in templates:
        escapes = _escapes(template)
        pieces = _pieces(template.render(shape_context), _forms(_STAND_INS, escapes))
        # Putting the other stand-ins into the shape must give what the template makes of them;
        # if not, the template transformed a value (or another field holds a stand-in's text).
        if _filled(pieces, _forms(_CHECK_STAND_INS, escapes)) != template.render(check_context):
            return None
        shape.append((pieces, escapes))
    return tuple(shape)


def _escapes(template) -> bool:
    autoescape = template.environment.autoescape
    return autoescape(template.name) if callable(autoescape) else autoescape


def _forms(values: tuple, escapes: bool) -> tuple:
    return tuple(str(escape(value)) for value in values) if escapes else values


def _pieces(text: str, stand_ins: tuple) -> tuple:
    """`text` split at the stand-ins: literal strings, and each stand-in's slot number in its place."""
    parts = re.split("(" + "|".join(map(re.escape, stand_ins)) + ")", text)  # text, stand-in, text ...
    return tuple(stand_ins.index(part) if i % 2 else part for i, part in enumerate(parts) if i % 2 or part)


def _filled(pieces: tuple, values: tuple) -> str:
    return "".join([values[piece] if type(piece) is int else piece for piece in pieces])


@lru_cache(maxsize=64)
def _prints_personal_values_plainly(templates: tuple) -> bool:
    """Whether the templates, and all they extend, include or import, use name, email and link only
    as `{{ value }}` or as an if's test. Anything else (a filter, a comparison, a macro argument)
    could turn the value into text that putting it in place of its stand-in would not give."""
    environment = templates[0].environment
    pending, seen = [template.name for template in templates], set()
    while pending:
        name = pending.pop()
        if name is None:  # a template made from a string: no source to read
            return False
        if name in seen:
            continue
        seen.add(name)
        tree = environment.parse(environment.loader.get_source(environment, name)[0])
        for reference in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            if not (isinstance(reference.template, nodes.Const) and isinstance(reference.template.value, str)):
                return False  # a template chosen at render time
            pending.append(reference.template.value)
        if not _uses_plainly(tree):
            return False
    return True


def _uses_plainly(node) -> bool:
    for child in node.iter_child_nodes():
        if _is_personal_value(child):
            printed = isinstance(node, nodes.Output)
            tested = isinstance(node, (nodes.If, nodes.CondExpr)) and child is node.test
            if not (printed or tested):
                return False
        elif _is_recipient(child):
            # recipient.role_lo and the like are fine; the whole dict, or recipient.get("name"), is not
            if not (isinstance(node, nodes.Getattr) and not hasattr(dict, node.attr)):
                return False
        elif not _uses_plainly(child):
            return False
    return True


def _is_personal_value(node) -> bool:
    if isinstance(node, nodes.Name):
        return node.name == "link" and node.ctx == "load"
    return isinstance(node, nodes.Getattr) and node.attr in ("name", "email") and _is_recipient(node.node)


def _is_recipient(node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "recipient" and node.ctx == "load"
