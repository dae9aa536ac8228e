"""The tick as a Prefect flow, on Prefect's ephemeral API: the same work as `roundtable tick`."""

import os
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session

from models.db import engine_for, upgrade
from tests.engine_helpers import ROOT, seed_people, start_gswg


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def test_tick_flow_sends_the_call(prefect_harness, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUNDTABLE_SECRET_KEY", "flow-test-secret")
    from models.settings import get_settings

    get_settings.cache_clear()
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        seed_people(session)
        start_gswg(session)
    from flows.prefect_flows import tick_flow

    summary = tick_flow(now="2019-11-01T09:00:00+07:00")
    assert summary["sent"] == 19 and "call_for_suggestions" in summary["opened"]
    assert len(list(Path("outbox").glob("*-call.eml"))) == 9


def test_prefect_yaml_deploys_the_tick_flow():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deployment = config["deployments"][0]
    module, _, name = deployment["entrypoint"].partition(":")
    assert (ROOT / module).is_file() and name == "tick_flow"
    assert deployment["schedules"][0]["timezone"] == "Asia/Vientiane"
