"""The web pages' speed-ups give what the plain code gives (bench/bench_web.py measures them)."""

from datetime import datetime, timedelta, timezone

from roundtable.web import render
from roundtable.web.render import Bi


def test_remembered_when_is_the_plain_when():
    render._whens.clear()
    start = datetime(2019, 11, 4, 3, 0, tzinfo=timezone.utc)
    moments = [start + timedelta(hours=7 * i, minutes=13 * i) for i in range(60)]
    moments += [m.astimezone(timezone(timedelta(hours=7))) for m in moments[:10]]  # equal instants, other zones
    for zone in ("Asia/Vientiane", "UTC", "Europe/Paris"):
        for english_first in (False, True):
            bi = Bi(english_first=english_first)
            for moment in moments:
                for _ in range(2):  # computed, then remembered
                    assert bi.when(moment, zone) == bi.when_plain(moment, zone)
    assert 0 < len(render._whens) <= render._whens.size
