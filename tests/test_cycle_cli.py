"""The secretariat's commands on a live cycle: start, preview, tick, status, anchor."""

import json
import os
from email import message_from_bytes, policy
from pathlib import Path

from typer.testing import CliRunner

from models.db import engine_for, upgrade
from sqlmodel import Session
from tests.engine_helpers import GSWG_YAML, seed_people

runner = CliRunner()


def invoke(*args):
    from roundtable.cli import app

    return runner.invoke(app, [str(a) for a in args])


def prepare_database():
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        seed_people(session)
    assert invoke("init").exit_code == 0


def test_start_preview_tick_status_and_move(tmp_path):
    prepare_database()
    started = invoke("cycle", "start", "--definition", GSWG_YAML, "--year", 2020, "--now", "2019-10-01T09:00:00+07:00")
    assert started.exit_code == 0, started.output
    again = invoke("cycle", "start", "--definition", GSWG_YAML, "--year", 2020, "--now", "2019-10-01T09:00:00+07:00")
    assert again.exit_code == 2 and "already has a live cycle" in again.output

    preview = json.loads(invoke("preview", "--json", "--now", "2019-10-01T09:00:00+07:00").stdout)
    calls = [row for row in preview if row["step"] == "call_for_suggestions" and row["kind"] == "call"]
    assert calls == [{"at": "2019-11-01T09:00:00+07:00", "step": "call_for_suggestions", "kind": "call", "recipients": 9}]

    ticked = invoke("tick", "--now", "2019-11-01T09:00:00+07:00")
    assert ticked.exit_code == 0, ticked.output
    assert "ROUNDTABLE_SMTP_HOST is not set" in ticked.output
    mails = sorted(Path("outbox").glob("*.eml"))
    assert len(mails) == 9 + 10  # the call to 9, the meeting invitation (due 30 Oct) to 10
    subjects = {str(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"]) for p in mails}
    assert any("ສະເໜີກິດຈະກຳ ສຳລັບແຜນວຽກປີ 2020" in s for s in subjects)
    assert invoke("tick", "--now", "2019-11-01T09:00:00+07:00").exit_code == 0
    assert len(sorted(Path("outbox").glob("*.eml"))) == len(mails)  # the same moment again sends nothing

    status = json.loads(invoke("status", "--json").stdout)
    by_key = {s["key"]: s for s in status["steps"]}
    assert by_key["call_for_suggestions"]["state"] == "open"
    assert by_key["call_for_suggestions"]["expected"] == 9 and by_key["call_for_suggestions"]["answered"] == 0
    assert set(by_key["approval"]) >= {"key", "kind", "state", "opens_at", "due_at", "expected", "answered", "decisions"}
    assert by_key["approval"]["expected"] == 3

    moved = invoke("cycle", "anchor", "annual_meeting=2019-11-20", "--now", "2019-11-01T10:00:00+07:00")
    assert moved.exit_code == 0, moved.output
    assert "10 meeting updates" in moved.output
    status = json.loads(invoke("status", "--json").stdout)
    meeting = next(s for s in status["steps"] if s["key"] == "annual_review_meeting")
    assert meeting["starts_at"] == "2019-11-20T08:30:00+07:00"


def test_bad_input_is_refused_and_changes_nothing(tmp_path):
    prepare_database()
    bad = tmp_path / "bad.yaml"
    bad.write_text(GSWG_YAML.read_text(encoding="utf-8").replace("due: annual_meeting - 2 business days",
                                                                 "due: annual_meting - 2 business days"),
                   encoding="utf-8")
    result = invoke("cycle", "start", "--definition", bad, "--year", 2020)
    assert result.exit_code == 2
    assert "steps[0].due: unknown anchor 'annual_meting'" in result.output
    result = invoke("cycle", "start", "--definition", GSWG_YAML, "--year", 2020, "--anchor", "annual=2019-11-13")
    assert result.exit_code == 2 and "unknown anchor 'annual'" in result.output
    result = invoke("tick", "--now", "yesterday")
    assert result.exit_code == 2 and "not an ISO 8601" in result.output
    assert invoke("status").exit_code == 2
