"""Prefect flows around the engine: thin wrappers, the logic stays in plain functions.

Embedded mode runs them on Prefect's ephemeral API (APScheduler wakes them: flows/scheduler.py);
at scale the same flows run as deployments from prefect.yaml on a Prefect server with workers.
"""

from datetime import datetime, timezone

from prefect import flow, get_run_logger
from flows.delivery import tick_and_deliver
from models.db import engine_for, upgrade
from models.settings import get_settings


@flow(name="roundtable-tick", log_prints=False)
def tick_flow(now: str | None = None) -> dict:
    """One tick then delivery. `now` (ISO 8601 with offset) defaults to the moment the run starts."""
    settings = get_settings()
    moment = datetime.fromisoformat(now) if now else datetime.now(timezone.utc)
    engine = engine_for(settings.database_url)
    upgrade(engine)
    summary = tick_and_deliver(engine, settings, moment)
    get_run_logger().info("tick %s", summary)
    return summary
