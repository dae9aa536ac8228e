"""Render a message (subject, text, HTML) from its kind's templates: Lao first, then English.

Templates live in notifications/templates/<kind>/{subject.txt.j2, body.txt.j2, body.html.j2}.
The Environment is built once at import; each template compiles once, on first use
(compiling per message is ~100x slower, DESIGN §4).

render_plain runs the templates; render_message gives the same text, rendering once per shape of
context (notifications/render_by_shape.py).
"""

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from markupsafe import Markup

from notifications import render_by_shape
from notifications.kinds import KINDS, TEMPLATE_NAMES, TEMPLATES_DIR, kind_of

DEFAULT_TZ = "Asia/Vientiane"
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


def lao_day(dt, tz=DEFAULT_TZ) -> str:
    """'13 ພະຈິກ 2019': a date in a subject line, where the weekday would not fit."""
    return "" if dt is None else format_date(_local(dt, tz), "d MMMM y", locale=_LO)


def en_day(dt, tz=DEFAULT_TZ) -> str:
    """'13 Nov 2019': a date in a subject line."""
    return "" if dt is None else format_date(_local(dt, tz), "d MMM y", locale=_EN)


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


class _KindLoader(FileSystemLoader):
    """The shared layouts from notifications/templates; `<kind>/…` from the folder the kind registered
    (a step kind's own messages may keep their templates beside its module)."""

    def get_source(self, environment, template):
        kind, _, name = template.partition("/")
        registered = KINDS.get(kind)
        if name and registered is not None and registered.templates is not None:
            path = registered.templates / name
            if not path.is_file():
                raise TemplateNotFound(template)
            return path.read_text(encoding="utf-8"), str(path), lambda: True
        return super().get_source(environment, template)


def _make_environment() -> Environment:
    env = Environment(
        loader=_KindLoader(TEMPLATES_DIR),
        # select_autoescape() alone does not escape *.html.j2 (DESIGN §4).
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # no stat() per render: templates do not change under a running engine
        cache_size=-1,
    )
    env.filters.update(lao_date=lao_date, en_date=en_date, lao_day=lao_day, en_day=en_day, lao_datetime=lao_datetime,
                       en_datetime=en_datetime, hm=hm)
    env.globals.update({name: Markup(value) for name, value in _STYLES.items()})
    return env


ENVIRONMENT = _make_environment()


def _templates(kind: str):
    kind_of(kind)  # an unknown kind is refused by name
    return tuple(ENVIRONMENT.get_template(f"{kind}/{name}") for name in TEMPLATE_NAMES)


def render_plain(kind: str, context: dict) -> Rendered:
    """The three templates run on this very context: what render_message returns, only slower."""
    return _finished(*(template.render(context) for template in _templates(kind)))


def _finished(subject: str, text: str, html: str) -> Rendered:
    subject = " ".join(subject.split())  # one line, whatever the template did
    return Rendered(subject=subject, text=text.strip() + "\n", html=html.strip() + "\n")


def render_message(kind: str, context: dict) -> Rendered:
    """Render one message; a field missing from the context raises jinja2.UndefinedError.

    Equal to render_plain, at a fraction of its cost when the same shape of context comes again
    (notifications/render_by_shape.py).
    """
    texts = render_by_shape.texts(_templates(kind), context)
    return render_plain(kind, context) if texts is None else _finished(*texts)
