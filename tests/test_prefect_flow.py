"""The tick and start_cycle as Prefect flows, on Prefect's test harness: the same work as the CLI."""

import os
from pathlib import Path

import yaml
from sqlmodel import Session

from models.db import engine_for, upgrade
from tests.engine_helpers import GSWG_YAML, ROOT, seed_people


def _database(monkeypatch):
    monkeypatch.setenv("ROUNDTABLE_SECRET_KEY", "flow-test-secret")
    from models.settings import get_settings

    get_settings.cache_clear()
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        seed_people(session)
    return engine


def test_start_cycle_and_tick_flows_send_the_call(prefect_harness, monkeypatch):
    _database(monkeypatch)
    from prefect.client.orchestration import get_client

    from flows.prefect_flows import start_cycle_flow, tick_flow

    started = start_cycle_flow(definition=str(GSWG_YAML), year=2020, anchors={"annual_meeting": "2019-11-13"},
                               now="2019-10-01T09:00:00+07:00")
    assert started["group"] == "GSWG" and started["year"] == 2020
    summary = tick_flow(now="2019-11-01T09:00:00+07:00")
    assert summary["sent"] == 19 and "call_for_suggestions" in summary["opened"]
    assert len(list(Path("outbox").glob("*-call.eml"))) == 9

    # The synchronous client: a session-wide browser fixture (Playwright's sync API) may hold an event loop
    # in this thread, where asyncio.run is refused.
    with get_client(sync_client=True) as client:
        names = {run.name for run in client.read_flow_runs()}
    assert "start_cycle GSWG 2020" in names
    assert "tick GSWG 2020 call_for_suggestions+annual_review_meeting 2019-11-01T02:00Z" in names, names


def test_run_tick_flow_in_process_passes_stop_and_on_sent(prefect_harness, monkeypatch):
    _database(monkeypatch)
    from datetime import datetime

    from flows.prefect_flows import run_tick_flow, start_cycle_flow

    start_cycle_flow(definition=str(GSWG_YAML), year=2020, now="2019-10-01T09:00:00+07:00")
    import itertools

    sent, asked = [], itertools.count()
    summary = run_tick_flow(datetime.fromisoformat("2019-11-01T09:00:00+07:00"),
                            on_sent=lambda row, path: sent.append(row.kind), stop=lambda: next(asked) >= 5)
    assert summary["sent"] == len(sent) and 0 < len(sent) < 19  # stop() is asked before each message


def test_prefect_yaml_deploys_both_flows_on_a_process_pool():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deployments = {d["name"]: d for d in config["deployments"]}
    for name, function in (("tick", "tick_flow"), ("start_cycle", "start_cycle_flow")):
        module, _, attribute = deployments[name]["entrypoint"].partition(":")
        assert (ROOT / module).is_file() and attribute == function
        assert deployments[name]["work_pool"]["name"] == config["deployments"][0]["work_pool"]["name"]
    assert deployments["tick"]["schedules"][0]["cron"] == "* * * * *"
    assert not deployments["start_cycle"].get("schedules")
    assert config["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
