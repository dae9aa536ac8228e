"""Pages from Jinja2 templates: autoescaped, loaded once, Lao first (English first for `en` readers)."""

from functools import lru_cache
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
    second beneath it (`inline=True`: after it); `bi.pick(lo, en)` gives only the reader's own."""

    def __init__(self, english_first: bool = False):
        self.english_first = english_first
        self.lang = "en" if english_first else "lo"

    def __call__(self, lo: str, en: str, inline: bool = False) -> Markup:
        return _pair(lo, en, inline, self.english_first)

    def pick(self, lo: str, en: str) -> str:
        return en if self.english_first else lo

    def when(self, moment, zone) -> Markup:
        """A date and time in both languages, in the group's zone."""
        return self(lao_datetime(moment, zone), en_datetime(moment, zone))


@lru_cache(maxsize=4096)  # most pairs are the pages' own fixed texts: built once
def _pair(lo: str, en: str, inline: bool, english_first: bool) -> Markup:
    (first_lang, first), (second_lang, second) = (("en", en), ("lo", lo)) if english_first else (("lo", lo), ("en", en))
    if inline:
        return Markup(f'<span lang="{first_lang}">{escape(first)}</span> · '
                      f'<span class="second-inline" lang="{second_lang}">{escape(second)}</span>')
    return Markup(f'<span lang="{first_lang}">{escape(first)}</span>'
                  f'<span class="second" lang="{second_lang}">{escape(second)}</span>')


def page(template: str, context: dict, status: int = 200) -> HTMLResponse:
    html = ENVIRONMENT.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

