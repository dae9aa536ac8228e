"""Prefect flows around the engine: thin wrappers, the logic stays in plain functions.

`tick` (one tick, then delivery of everything due within `max_seconds`) and `start_cycle` (launch a
cycle from a definition file). At scale they run as deployments from prefect.yaml on a Prefect server
with workers (README: "When one machine is not enough"); `roundtable serve --prefect` runs each tick
as a flow on the ephemeral API (run_tick_flow). Run names say group, year and step.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.delivery import tick_and_deliver
from models.db import engine_for, upgrade
from models.settings import get_settings

TICK_BUDGET = 50.0  # seconds: the deployment runs every minute; the next run finds what is left

# What an in-process run (serve --prefect) hands the flow that cannot travel as a parameter.
_hooks: dict[str, Callable | None] = {"stop": None, "on_sent": None}


def _engine():
    settings = get_settings()
    engine = engine_for(settings.database_url)
    upgrade(engine)
    return engine, settings


def _moment(now: str | None) -> datetime:
    if not now:
        return datetime.now(timezone.utc)
    moment = datetime.fromisoformat(now)
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(get_settings().timezone))


def _tick_run_name() -> str:
    """'tick GSWG 2020 call_for_suggestions 2019-11-01T02:00Z': each live cycle with the steps that are open
    or open at this moment."""
    from sqlmodel import Session, select

    from models.tables import Cycle, Step, WorkingGroup

    moment = _moment(flow_run.parameters.get("now"))
    parts = []
    try:
        with Session(engine_for(get_settings().database_url)) as session:  # the flow itself brings the schema up
            rows = session.exec(select(WorkingGroup.code, Cycle.year, Step.key)
                                .join(Cycle, Cycle.group_id == WorkingGroup.id)
                                .join(Step, Step.cycle_id == Cycle.id)
                                .where(Cycle.state == "live",
                                       (Step.state == "open") | ((Step.state == "planned") & (Step.opens_at <= moment)))
                                .order_by(Cycle.id, Step.position)).all()
            cycles = session.exec(select(WorkingGroup.code, Cycle.year).join(Cycle, Cycle.group_id == WorkingGroup.id)
                                  .where(Cycle.state == "live")).all()
        for code, year in cycles:
            steps = [key for c, y, key in rows if (c, y) == (code, year)]
            parts.append(f"{code} {year} {'+'.join(steps) or 'waiting'}")
    except Exception:  # noqa: BLE001 - a name must never fail the run
        pass
    return f"tick {'; '.join(parts) or 'no live cycle'} {moment.astimezone(timezone.utc):%Y-%m-%dT%H:%MZ}"


def _start_run_name() -> str:
    parameters = flow_run.parameters
    try:
        from models.definition import load_definition

        group = load_definition(Path(parameters["definition"])).group
    except Exception:  # noqa: BLE001
        group = Path(str(parameters.get("definition"))).stem
    return f"start_cycle {group} {parameters.get('year')}"


@flow(name="tick", flow_run_name=_tick_run_name, log_prints=False)
def tick_flow(now: str | None = None, max_seconds: float | None = TICK_BUDGET) -> dict:
    """One tick then delivery of everything due (within `max_seconds`). `now` (ISO 8601) defaults to the
    moment the run starts."""
    engine, settings = _engine()
    logger = get_run_logger()
    summary = tick_and_deliver(engine, settings, _moment(now), notice=logger.info, max_seconds=max_seconds,
                               stop=_hooks["stop"], on_sent=_hooks["on_sent"])
    logger.info("tick %s: opened %s, closed %s; %s prepared, %s sent, %s to retry, %s failed",
                summary["now"], summary["opened"], summary["closed"], summary["prepared"], summary["sent"],
                summary["retried"], summary["failed"])
    return summary


@flow(name="start_cycle", flow_run_name=_start_run_name, log_prints=False)
def start_cycle_flow(definition: str, year: int, anchors: dict[str, str] | None = None,
                     now: str | None = None) -> dict:
    """Launch a live cycle: `definition` is a path (relative to the checkout), `anchors` KEY -> date or
    date-time (the configured zone when it has no offset)."""
    from sqlmodel import Session

    from calendars.timeline import check_definition, parse_anchor
    from flows.cycle import start_cycle
    from models.definition import load_definition

    engine, settings = _engine()
    parsed = load_definition(Path(definition))
    check_definition(parsed, definition)
    zone = ZoneInfo(settings.timezone)
    moments = dict(parse_anchor(parsed, f"{key}={value}", zone) for key, value in (anchors or {}).items())
    with Session(engine, expire_on_commit=False) as session:
        cycle = start_cycle(session, parsed, year, moments, _moment(now), definition_path=definition)
        session.commit()
        result = {"cycle": cycle.id, "group": parsed.group, "year": year}
    get_run_logger().info("started the %s cycle for the %s plan (cycle %s)", parsed.group, year, result["cycle"])
    return result


def run_tick_flow(moment: datetime, *, stop: Callable[[], bool] | None = None,
                  on_sent: Callable | None = None, max_seconds: float | None = None) -> dict:
    """tick_flow in this process (serve --prefect), without the ~1 s wait for the heartbeat thread at
    the end of each run (DESIGN §4): the scheduler here is what notices a stuck tick."""
    import prefect.context

    _hooks.update(stop=stop, on_sent=on_sent)
    try:
        with prefect.context.SettingsContext(**_without_heartbeat()):
            return tick_flow(now=moment.isoformat(), max_seconds=max_seconds)
    finally:
        _hooks.update(stop=None, on_sent=None)


_quiet: dict = {}  # id of the settings it was derived from -> (those settings, the derived ones)


def _without_heartbeat() -> dict:
    """The current Prefect settings with the heartbeat off, derived once: deriving them (what
    temporary_settings does on every entry) costs ~0.1 s of pydantic-settings work."""
    import prefect.context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = prefect.context.get_settings_context()
    base, derived = _quiet.get(id(context.settings), (None, None))
    if base is not context.settings:
        derived = context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        _quiet.clear()
        _quiet[id(context.settings)] = (context.settings, derived)
    return {"profile": context.profile, "settings": derived}
