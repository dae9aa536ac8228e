"""Pages from Jinja2 templates: autoescaped, loaded once, Lao first (English first for `en` readers)."""

from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from notifications.render import en_date, en_datetime, lao_date, lao_datetime

TEMPLATES = Path(__file__).with_name("templates")
ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
ENVIRONMENT.filters.update(lao_date=lao_date, en_date=en_date, lao_datetime=lao_datetime, en_datetime=en_datetime)


class Bi:
    """Two languages in the reader's order: `bi(lo, en)` gives the first as the main text and the
    second beneath it; `bi.pick(lo, en)` gives only the reader's own (for attributes and options)."""

    def __init__(self, english_first: bool = False):
        self.english_first = english_first
        self.lang = "en" if english_first else "lo"

    def __call__(self, lo: str, en: str, inline: bool = False) -> Markup:
        pairs = [("lo", lo), ("en", en)]
        if self.english_first:
            pairs.reverse()
        (first_lang, first), (second_lang, second) = pairs
        sep = Markup(" · ") if inline else Markup("")
        return Markup('<span lang="{}">{}</span>{}<span class="second" lang="{}">{}</span>').format(
            first_lang, first, sep, second_lang, second) if not inline else Markup(
            '<span lang="{}">{}</span>{}<span class="second-inline" lang="{}">{}</span>').format(
            first_lang, first, sep, second_lang, second)

    def pick(self, lo: str, en: str) -> str:
        return en if self.english_first else lo

    def when(self, moment, zone) -> Markup:
        """A date and time in both languages, in the group's zone."""
        return self(lao_datetime(moment, zone), en_datetime(moment, zone))


def page(template: str, context: dict, status: int = 200) -> HTMLResponse:
    html = ENVIRONMENT.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


__all__ = ["Bi", "page", "escape"]
