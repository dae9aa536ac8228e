"""`roundtable status`: where each step of the current cycle stands. Its own module, so that the
command imports what it reads and nothing of the sending side (tests/test_cli_start.py)."""

import json
import re
from typing import Optional

import typer


def register(root: typer.Typer) -> None:
    @root.command("status")
    def status_cmd(as_json: bool = typer.Option(False, "--json"), year: Optional[int] = typer.Option(None, "--year")):
        """The current cycle: each step with state, times, expected and answered counts, decisions."""
        from sqlmodel import Session

        from flows.status import cycle_status
        from roundtable.commands.common import database, parse_moment

        engine = database()
        with Session(engine) as session:
            status = cycle_status(session, _live_or_latest(session, year), parse_moment(None))
        if as_json:
            print(json.dumps(status, ensure_ascii=False, indent=2))
            return
        c = status["cycle"]
        say(f"{c['group']} — plan {c['year']} — {c['state']} (plan revision {c['plan_revision']})")
        for s in status["steps"]:
            say(f"  {s['key']:<24} {s['state']:<8} {s['outcome']:<10} due {s['due_at']}  "
                          f"answered {s['answered']}/{s['expected']}")
            if s.get("blocked"):
                say(f"      BLOCKED since {s['blocked']['since']}: {s['blocked']['reason']}")
            for d in s["decisions"]:
                say(f"      {d['member']}: {d['decision']} (revision {d['revision']}) {d['reason']}")
            if any(s["rsvp"].values()):
                say("      coming: " + ", ".join(f"{k.lower()} {len(v)}" for k, v in s["rsvp"].items()))
        for a in status["addresses"]:  # what mail came back about (mail fetch / mail ingest)
            what = f"{a['bounce']} {a['status']} {a['detail']}".strip() if a["bounce"] else f"away: {a['away_subject']}"
            say(f"  address {a['email']}: {what}")


def say(line: str) -> None:
    """One line of the report, printed plainly (Rich is not imported for it: ~25 ms of a 0.45 s command). The
    people's own text in it (a reason typed into a form, a bounce's detail) stays on its line: line breaks,
    tabs and other control characters become spaces."""
    print(_CONTROL.sub(" ", line))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _live_or_latest(session, year: Optional[int]):
    from sqlmodel import select

    from models.tables import Cycle
    from roundtable.commands.common import fail

    query = select(Cycle).order_by(Cycle.id.desc())
    if year:
        query = query.where(Cycle.year == year)
    cycle = session.exec(query.where(Cycle.state == "live")).first() or session.exec(query).first()
    if cycle is None:
        fail("no cycle yet: start one with `roundtable cycle start`")
    return cycle
