"""`roundtable simulate` and `roundtable demo`: a whole cycle in simulated time."""

from collections import Counter
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from calendars.timeline import compute_timeline
from flows import plan
from flows.simulate import simulate as run_simulation
from models.db import make_engine
from models.groups import InputFileError
from models.roster import RosterInvalid
from models.tables import Cycle
from roundtable.commands.common import console, fail, parse_moment, progress, settings
from roundtable.commands.cycle import _anchors, _definition

ROOT = Path(__file__).resolve().parents[2]
DEMO_DEFINITION = ROOT / "cycles" / "gswg.yaml"
DEMO_ROSTER = ROOT / "examples" / "roster.csv"
DEMO_GROUPS = ROOT / "examples" / "groups.yaml"


def _run(definition: Path, roster: Path, groups: Path, year: int, anchor: list[str], out: Path,
         respond_rate: float, seed: int, until: Optional[str]) -> None:
    for label, path in (("--roster", roster), ("--groups", groups)):
        if not path.is_file():
            fail(f"{label} {path}: file not found")
    parsed = _definition(definition)
    anchors = _anchors(parsed, anchor, year)
    zone = ZoneInfo(settings().timezone)
    stop = None
    if until is not None:
        stop = parse_moment(until, "--until", default_now=False)
    timeline = compute_timeline(parsed, year, anchors, timezone=zone.key)
    console.print(f"Timeline of {parsed.title_en} — plan {year}")
    for step in timeline:
        console.print(f"  {step.key:<24} {step.kind:<9} opens {step.opens_at:%Y-%m-%d %H:%M}  "
                      f"due {step.due_at:%Y-%m-%d %H:%M %z}  {step.title_lo}")
    try:
        result = run_simulation(parsed, roster, groups, year, anchors, out, respond_rate=respond_rate, seed=seed,
                                until=stop, definition_path=str(definition), progress=progress,
                                secret=settings().resolved_secret_key(), base_url=settings().base_url)
    except (ValueError, RosterInvalid, InputFileError) as exc:  # a roster or groups file the importer refused
        fail(str(exc))
    console.print(f"\n{result.messages} messages in {out / 'messages.jsonl'} and {out / 'mail'}/ "
                  f"({result.ticks} ticks; {'cycle finished' if result.finished else 'stopped at ' + str(result.stopped_at)})")
    console.print("Messages per step and kind:")
    for (step, kind), count in sorted(result.by_step_kind.items()):
        console.print(f"  {step:<24} {kind:<18} {count}")
    console.print("Answers: " + ", ".join(f"{k} {v}" for k, v in sorted(result.answers.items())))
    _plan_summary(out, result.cycle_ids)
    console.print(f"Links point to {settings().base_url}: serve them with "
                  f"ROUNDTABLE_DATABASE_URL=sqlite:///{out / 'roundtable.db'} roundtable web")
    console.print("Decisions:")
    for d in result.decisions:
        by = f" by {d['by']} (deputy)" if d.get("by") else ""
        console.print(f"  {d['at']}  {d['member']}: {d['decision']} (revision {d['revision']}){by}")


def _plan_summary(out: Path, cycle_ids: list[int]) -> None:
    """What the review made of the suggestions, and the plan's activities per responsible group."""
    engine = make_engine(f"sqlite:///{out / 'roundtable.db'}")
    with Session(engine) as session:
        for cycle_id in cycle_ids:
            counts = plan.review_counts(session, cycle_id)
            groups = Counter(a.group_code for a in plan.activities(session, cycle_id))
            console.print(f"Plan (cycle {cycle_id}, revision {session.get(Cycle, cycle_id).plan_revision}): "
                          f"{sum(groups.values())} activities ({', '.join(f'{g} {n}' for g, n in groups.items())}); "
                          f"suggestions accepted {counts['accepted']}, merged {counts['merged']}, "
                          f"rejected {counts['rejected']}, left {counts['left']}", markup=False)
    engine.dispose()


def register(root: typer.Typer) -> None:
    @root.command("simulate")
    def simulate_cmd(
        definition: Path = typer.Option(..., "--definition"), roster: Path = typer.Option(..., "--roster"),
        groups: Path = typer.Option(DEMO_GROUPS, "--groups"), year: int = typer.Option(..., "--year", min=2000, max=2100),
        anchor: list[str] = typer.Option([], "--anchor"), out: Path = typer.Option(..., "--out"),
        respond_rate: float = typer.Option(0.6, "--respond-rate", min=0.0, max=1.0),
        seed: int = typer.Option(1, "--seed"), until: Optional[str] = typer.Option(None, "--until"),
    ):
        """Run a cycle on a fresh database in DIR/roundtable.db with a virtual clock."""
        _run(definition, roster, groups, year, anchor, out, respond_rate, seed, until)

    @root.command("demo")
    def demo_cmd(out: Path = typer.Option(Path("demo"), "--out")):
        """The seed cycle: gswg.yaml with the example roster, 2020 plan, annual meeting 2019-11-13."""
        _run(DEMO_DEFINITION, DEMO_ROSTER, DEMO_GROUPS, 2020, ["annual_meeting=2019-11-13"], out, 0.6, 1, None)
