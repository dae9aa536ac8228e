"""Pages from Jinja2 templates: autoescaped, loaded once, Lao first (English first for `en` readers)."""

from functools import lru_cache
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import FileSystemLoader
from markupsafe import Markup, escape

from models.memo import Memo
from notifications.render import en_datetime, lao_datetime, template_environment

TEMPLATES = Path(__file__).with_name("templates")
ENVIRONMENT = template_environment(FileSystemLoader(TEMPLATES), escape_strings=True)


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
        """A date and time in both languages, in the group's zone (`when_plain` is the computation; Babel's
        formatting cost ~0.1 ms a page, and every page of a step shows the same deadline)."""
        return _whens.get((moment, str(zone), self.english_first), lambda: self.when_plain(moment, zone))

    def when_plain(self, moment, zone) -> Markup:
        return self(lao_datetime(moment, zone), en_datetime(moment, zone))


# Keyed by the moment itself (an aware datetime: equal instants in other zones format alike, as the text is
# made in `zone`), the zone and the reader's order: only what the text is made of. tests/test_web_speed.py.
_whens = Memo("roundtable.web.render.whens", 1024)


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

