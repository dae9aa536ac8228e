"""Render a message's templates once per shape of context: the fast copy of render.render_plain.

A step's message goes to every member with the same context but for the recipient's names, email,
own link and calendar feed, so the templates run once per "shape" of context, with stand-ins for
those five values, and each recipient's message is that shape with their values put in. Two guards fall back
to the plain render: a template that does anything but print those values, and a second render with
other stand-ins that must agree. tests/test_render_by_shape.py holds it to render_plain for every kind.
"""

import re
from datetime import date, datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from jinja2 import nodes
from markupsafe import escape

from models.memo import Memo


def texts(templates: tuple, context: dict) -> tuple[str, ...] | None:
    """What each of `templates` renders from `context`, or None where only a plain render is sure to
    give it (render that way; it also raises what the templates raise)."""
    try:
        shape_context = _with_stand_ins(context, _STAND_INS)
        key = (templates, _frozen(shape_context))
    except (_Unfreezable, RecursionError):  # a value of another type, or a context that contains itself
        return None
    shape = _shapes.get(key, lambda: _shape_or_none(templates, context, shape_context))
    if shape is None:
        return None
    values = _personal_values(context)
    escaped = tuple(str(escape(value)) if type(value) is str else value for value in values)
    return tuple(_filled(pieces, escaped if escapes else values) for pieces, escapes in shape)


def _shape_or_none(templates: tuple, context: dict, shape_context: dict):
    try:
        return _shape(templates, context, shape_context)
    except Exception:  # a context the templates reject: the plain render raises it
        return None


# --- One render per shape ------------------------------------------------------------------------------
# Stand-ins for name, email, link and English name: private-use code points (never in real text, left alone by HTML
# escaping) around both cases of letters, edge whitespace and HTML's special characters, so that a
# template changing the value (|upper, |trim, |e, |safe ...) changes the stand-in. The second set,
# long and different, is for checking a shape: a length-dependent filter (|truncate) cuts it.
_STAND_INS = tuple(f" {chr(0xE000 + slot)} aB <&>\"' cD {chr(0xE000 + slot)} " for slot in range(5))
_CHECK_FILLER = " xY &'\"<> wORD" * 40
_CHECK_STAND_INS = tuple(f"\t{chr(0xE010 + slot)}{_CHECK_FILLER}{chr(0xE010 + slot)}\n" for slot in range(5))
# (templates, frozen shape context) -> pieces per template, or None: render plainly. A few per step.
_shapes = Memo("notifications.render_by_shape.shapes", 512)


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
    return (recipient.get("name"), recipient.get("email"), context.get("link"), recipient.get("name_en"),
            context.get("feed"))


def _with_stand_ins(context: dict, stand_ins: tuple) -> dict:
    """The context with name, email, link and English name replaced by stand_ins wherever they are replaceable."""
    if type(context) is not dict:
        raise _Unfreezable
    name, email, link, name_en, feed = _personal_values(context)
    shaped = dict(context)
    if _replaceable(link):
        shaped["link"] = stand_ins[2]
    if _replaceable(feed):
        shaped["feed"] = stand_ins[4]
    if _replaceable(name) or _replaceable(email) or _replaceable(name_en):
        shaped["recipient"] = recipient = dict(context["recipient"])
        for slot, key, value in ((0, "name", name), (1, "email", email), (3, "name_en", name_en)):
            if _replaceable(value):
                recipient[key] = stand_ins[slot]
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
    """Each template's output as pieces of text and slots (0 name, 1 email, 2 link, 3 English name, 4 feed),
    and whether it is HTML-escaped; None when the templates might not treat the values as opaque text."""
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
    """Whether the templates, and all they extend, include or import, use name, email, link and English name only
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
        return node.name in ("link", "feed") and node.ctx == "load"
    return isinstance(node, nodes.Getattr) and node.attr in ("name", "email", "name_en") and _is_recipient(node.node)


def _is_recipient(node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "recipient" and node.ctx == "load"
