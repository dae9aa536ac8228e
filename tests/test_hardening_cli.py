"""Issue 14 on the command line: the clock, anchors, roster imports mid-cycle, no traceback on any user path,
escaped user text, secret key warnings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import engine_for, upgrade
from models.settings import Settings, secret_key_problems
from models.tables import Membership, Notification, Step
from tests.engine_helpers import GSWG_YAML, ROOT, seed_people

runner = CliRunner()
EXAMPLE_ROSTER = ROOT / "examples" / "roster.csv"
EXAMPLE_GROUPS = ROOT / "examples" / "groups.yaml"
START = ("cycle", "start", "--definition", GSWG_YAML, "--year", 2020, "--now", "2019-10-01T09:00")


def invoke(*args, **env):
    from models.settings import get_settings
    from roundtable.cli import app

    get_settings.cache_clear()  # each call reads its own environment
    return runner.invoke(app, [str(a) for a in args], env={k: str(v) for k, v in env.items()} or None)


def single_error(result, *parts):
    """Exit 2, no traceback, one `error:` line naming what is wrong."""
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def db():
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        seed_people(session)
    assert invoke("init").exit_code == 0
    yield engine
    engine.dispose()


def snapshot(engine):
    with Session(engine) as session:
        return (sorted((s.key, s.state, s.due_at) for s in session.exec(select(Step)).all()),
                sorted((n.key, n.state) for n in session.exec(select(Notification)).all()))


# ---- 2. the clock ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("moment", ["", "  ", "9999-12-31T23:59", "0001-01-01", "1989-12-31T23:00", "2101-01-01"])
def test_tick_refuses_empty_and_out_of_range_moments_before_writing(db, moment):
    assert invoke(*START).exit_code == 0
    before = snapshot(db)
    single_error(invoke("tick", "--now", moment), "--now")
    assert snapshot(db) == before and not Path("outbox").exists()


@pytest.mark.parametrize("command", [("preview",), ("cycle", "anchor", "annual_meeting=2019-11-20"),
                                     ("cycle", "drop", "approval"), ("cycle", "cancel"),
                                     ("cycle", "reopen", "approval")])
def test_every_moment_goes_through_one_parser(db, command):
    assert invoke(*START).exit_code == 0
    before = snapshot(db)
    for moment in ("", "9999-12-31T23:59", "tomorrow"):
        single_error(invoke(*command, "--now", moment), "--now")
    assert snapshot(db) == before
    single_error(invoke("cycle", "start", "--definition", GSWG_YAML, "--year", 2021, "--now", ""), "--now")
    single_error(invoke("cycle", "reopen", "approval", "--due", "0001-01-01"), "--due", "out of range")


# ---- 3. anchors ------------------------------------------------------------------------------------------------

def test_start_refuses_an_anchor_far_from_the_year(db):
    result = invoke(*START, "--anchor", "annual_meeting=1800-01-01")
    single_error(result, "far from planning year 2020")
    single_error(invoke(*START, "--anchor", "annual_meeting=0001-01-01T00:00+14:00"), "out of range")
    single_error(invoke(*START, "--anchor", "annual_meeting=9999-12-31T23:59"), "far from planning year")
    with Session(db) as session:
        assert session.exec(select(Step)).all() == []


def test_anchor_into_the_past_needs_force_then_reopen_and_cancel(db):
    assert invoke(*START).exit_code == 0
    assert invoke("tick", "--now", "2019-11-04T09:00").exit_code == 0
    before = snapshot(db)
    single_error(invoke("cycle", "anchor", "annual_meeting=2019-01-14", "--now", "2019-11-04T10:00"),
                 "in the past", "--force")
    assert snapshot(db) == before
    forced = invoke("cycle", "anchor", "annual_meeting=2019-01-14", "--now", "2019-11-04T10:00", "--force")
    assert forced.exit_code == 0, forced.output
    assert invoke("tick", "--now", "2019-11-04T10:00").exit_code == 0
    single_error(invoke("cycle", "anchor", "annual_meeting=2019-11-13", "--now", "2019-11-04T10:30"), "was held")
    reopened = invoke("cycle", "reopen", "call_for_suggestions", "--due", "2019-11-11T17:00", "--now", "2019-11-04T11:00")
    assert reopened.exit_code == 0 and "Reopened call_for_suggestions" in reopened.output, reopened.output
    assert invoke("cycle", "reopen", "annual_review_meeting", "--now", "2019-11-04T11:00").exit_code == 0
    assert invoke("cycle", "anchor", "annual_meeting=2019-11-13", "--now", "2019-11-04T11:00").exit_code == 0
    status = json.loads(invoke("status", "--json").stdout)
    by_key = {s["key"]: s for s in status["steps"]}
    assert by_key["call_for_suggestions"]["state"] == "open"
    assert by_key["annual_review_meeting"]["starts_at"] == "2019-11-13T08:30:00+07:00"
    cancelled = invoke("cycle", "cancel", "--now", "2019-11-05T09:00")
    assert cancelled.exit_code == 0 and "10 cancellations planned" in cancelled.output, cancelled.output


# ---- 6. roster imports mid-cycle ----------------------------------------------------------------------------------

def test_roster_import_shows_changes_and_refuses_mass_endings_without_replace(tmp_path):
    assert invoke("groups", "load", EXAMPLE_GROUPS).exit_code == 0
    assert invoke("roster", "import", EXAMPLE_ROSTER, "--today", "2019-10-01").exit_code == 0
    one_row = tmp_path / "one.csv"
    one_row.write_text("name,email,organisation,role,group,language\n"
                       "New Person,new@example.org,MoHA,member,GSWG,lo\n", encoding="utf-8")
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])

    def open_memberships():
        with Session(engine) as session:
            return len(session.exec(select(Membership).where(Membership.ends_on.is_(None))).all())

    before = open_memberships()
    diff = invoke("roster", "diff", one_row, "--today", "2019-11-01")
    assert diff.exit_code == 0, diff.output
    assert "+ new@example.org member in GSWG" in diff.output and "- gswg.chair@example.org chair in GSWG" in diff.output
    assert "needs --replace: it would end 25 memberships" in diff.output
    assert "without any chair" in diff.output and "without any secretariat" in diff.output
    assert open_memberships() == before
    refused = invoke("roster", "import", one_row, "--today", "2019-11-01")
    single_error(refused, "not imported", "--replace")
    assert "- gswg.chair@example.org chair in GSWG" in refused.output
    assert open_memberships() == before
    replaced = invoke("roster", "import", one_row, "--today", "2019-11-01", "--replace")
    assert replaced.exit_code == 0 and "25 ended" in replaced.output, replaced.output
    assert open_memberships() == before - 25 + 1


# ---- 7. no traceback on any user path -----------------------------------------------------------------------------

@pytest.mark.parametrize("url,part", [
    ("postgresql://nobody@127.0.0.1:1/none", "database postgresql"),
    ("sqlite:////nonexistent/folder/roundtable.db", "unable to open database file"),
    ("nonsense://x", "database nonsense://x"),
])
def test_bad_or_unreachable_database_is_one_line(url, part):
    single_error(invoke("status", ROUNDTABLE_DATABASE_URL=url), part)
    single_error(invoke("tick", "--now", "2019-11-01T09:00", ROUNDTABLE_DATABASE_URL=url,
                        ROUNDTABLE_SECRET_KEY="k" * 40), part)


def test_read_only_database_is_one_line(db, tmp_path):
    # Through the real entry point (main): the write fails inside the tick, the guard makes it one line.
    assert invoke(*START).exit_code == 0
    path = os.environ["ROUNDTABLE_DATABASE_URL"].removeprefix("sqlite:///")
    env = {**os.environ, "ROUNDTABLE_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"}
    result = subprocess.run([sys.executable, "-m", "roundtable.cli", "tick", "--now", "2019-11-01T09:00"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: database: attempt to write a readonly database (the file or its folder is read-only)"]


def test_database_and_file_errors_end_as_one_line(capsys):
    from roundtable.commands.common import fail_plainly  # what roundtable.cli.main does with any error

    database_down = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    with pytest.raises(SystemExit) as exited:
        fail_plainly(database_down)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: database: server closed the connection unexpectedly"

    disk_full = OSError(28, "No space left on device", "outbox/x.eml")
    with pytest.raises(SystemExit):
        fail_plainly(disk_full)
    assert capsys.readouterr().err.strip() == "error: cannot use outbox/x.eml: No space left on device"


def test_calendar_export_to_a_folder_or_a_missing_folder(db, tmp_path):
    assert invoke(*START).exit_code == 0
    single_error(invoke("calendar", "export", "--group", "GSWG", "--out", tmp_path), "is a folder")
    single_error(invoke("calendar", "export", "--group", "GSWG", "--out", tmp_path / "missing" / "x.ics"),
                 "does not exist")


def test_secret_key_path_that_is_a_directory(db, tmp_path):
    folder = tmp_path / "keydir"
    folder.mkdir()
    single_error(invoke("tick", "--now", "2019-11-01T09:00", ROUNDTABLE_SECRET_FILE=folder), "is a directory")


def test_user_text_is_printed_as_it_is(db):
    assert invoke(*START).exit_code == 0
    error = single_error(invoke("cycle", "anchor", "[/x]=2019-11-20", "--now", "2019-11-01T09:00"))
    assert "[/x]" in error and "unknown anchor" in error
    error = single_error(invoke("cycle", "anchor", "annual_meeting", "--now", "2019-11-01T09:00"))
    assert "write KEY=DATE" in error


# ---- 8. secrets ------------------------------------------------------------------------------------------------

def test_weak_secret_key_file_warns_on_every_command(db, tmp_path):
    key = Path(os.environ["ROUNDTABLE_SECRET_FILE"])
    assert secret_key_problems(Settings()) == []  # `init` wrote a good one
    key.chmod(0o644)
    problems = secret_key_problems(Settings())
    assert len(problems) == 1 and "read by group or others" in problems[0] and "chmod 600" in problems[0]
    for command in (("status",), ("preview", "--now", "2019-10-01T09:00"), ("roster", "check", EXAMPLE_ROSTER)):
        result = invoke(*command)
        assert "warning: secret key file" in result.output, (command, result.output)
    key.write_text("short\n", encoding="utf-8")
    key.chmod(0o600)
    assert [p for p in secret_key_problems(Settings()) if "shorter than 32 bytes" in p]
    assert "shorter than 32 bytes" in secret_key_problems(Settings(secret_key="x" * 10))[0]
    assert secret_key_problems(Settings(secret_key="x" * 40)) == []


def test_serve_refuses_to_start_with_a_weak_secret_key(db):
    key = Path(os.environ["ROUNDTABLE_SECRET_FILE"])
    key.chmod(0o644)
    result = invoke("serve", "--no-web")
    assert result.exit_code == 2 and "serve will not start" in result.output and "chmod 600" in result.output
    key.chmod(0o600)
    key.write_text("short\n", encoding="utf-8")
    result = invoke("serve", "--no-web")
    assert result.exit_code == 2 and "shorter than 32 bytes" in result.output
