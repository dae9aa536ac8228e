"""`roundtable timeline`: a table for people, JSON for scripts, clear refusals (exit 2)."""

import json
import os
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session
from typer.testing import CliRunner

from models.db import engine_for, upgrade
from models.settings import get_settings
from models.tables import WorkingGroup

ROOT = Path(__file__).resolve().parents[1]
GSWG_YAML = ROOT / "cycles" / "gswg.yaml"
SEED = yaml.safe_load(GSWG_YAML.read_text(encoding="utf-8"))
runner = CliRunner()


def invoke(*args):
    from roundtable.cli import app

    return runner.invoke(app, ["timeline", *map(str, args)])


def timeline_json(*args) -> list[dict]:
    result = invoke("--definition", GSWG_YAML, "--year", 2020, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds the JSON and nothing else


def test_json_lists_every_step_with_exactly_the_public_fields():
    steps = timeline_json()
    assert [s["key"] for s in steps] == [s["key"] for s in SEED["steps"]]
    for step, raw in zip(steps, SEED["steps"]):
        assert list(step) == ["key", "kind", "title_lo", "title_en", "opens_at", "due_at", "starts_at", "ends_at"]
        assert (step["kind"], step["title_lo"], step["title_en"]) == (raw["kind"], raw["title_lo"], raw["title_en"])
        for name in ("opens_at", "due_at", "starts_at", "ends_at"):
            assert step[name] is None or step[name].endswith("+07:00")
    meeting = steps[1]
    assert (meeting["starts_at"], meeting["ends_at"]) == ("2019-11-13T08:30:00+07:00", "2019-11-13T12:15:00+07:00")
    assert steps[0]["starts_at"] is None and steps[0]["opens_at"] == "2019-11-01T09:00:00+07:00"
    assert steps[-1]["due_at"] == "2020-03-18T17:00:00+07:00"


def test_json_keeps_lao_text_as_text():
    result = invoke("--definition", GSWG_YAML, "--year", 2020, "--json")
    assert "ການຮັບຮອງໂດຍປະທານ ແລະ ປະທານຮ່ວມ" in result.stdout and "\\u0e" not in result.stdout


def test_anchor_moves_the_meeting_and_its_call_only():
    before, after = timeline_json(), timeline_json("--anchor", "annual_meeting=2019-11-20")
    assert after[1]["starts_at"] == "2019-11-20T08:30:00+07:00"
    assert after[0]["due_at"] == "2019-11-18T17:00:00+07:00"
    assert after[2:] == before[2:]
    both = timeline_json("--anchor", "annual_meeting=2019-11-20T07:30", "--anchor", "review_meeting=2020-01-20")
    assert both[1]["starts_at"] == "2019-11-20T07:30:00+07:00" and both[2]["starts_at"] == "2020-01-20T09:00:00+07:00"


def test_an_anchor_that_makes_the_dates_contradict():
    # The meeting ends 'annual_meeting at 12:15': starting it at 14:00 would end it before it starts.
    result = invoke("--definition", GSWG_YAML, "--year", 2020, "--anchor", "annual_meeting=2019-11-20T14:00")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{GSWG_YAML}: steps[1].ends: the meeting ends (2019-11-20 12:15 +0700) before it starts" in result.stderr


def test_table_shows_everything_without_a_terminal():
    result = invoke("--definition", GSWG_YAML, "--year", 2021)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for raw in SEED["steps"]:  # whole titles, never cut with an ellipsis
        assert raw["key"] in out and raw["title_lo"] in out and raw["title_en"] in out
    assert "…" not in out
    assert "Fri 2020-11-13 08:30 +07:00" in out and "Fri 2020-11-13 12:15 +07:00" in out
    assert "8 Mar International Women's Rights Day" in out  # inside the approval window of 2021
    assert "anchor annual_meeting: Fri 2020-11-13 08:30 +07:00" in out


def test_table_says_when_a_default_anchor_moved():
    result = invoke("--definition", GSWG_YAML, "--year", 2022)
    assert result.exit_code == 0, result.output
    assert ("anchor annual_meeting: Mon 2021-11-15 08:30 +07:00 (13 Nov is a Saturday: moved to the next business day)"
            in result.stdout)
    given = invoke("--definition", GSWG_YAML, "--year", 2022, "--anchor", "annual_meeting=2021-11-12")
    assert "anchor annual_meeting: Fri 2021-11-12 08:30 +07:00 (given)" in given.stdout


def test_no_database_is_created_just_to_read_a_timeline(tmp_path):
    database = Path(get_settings().database_url.removeprefix("sqlite:///"))
    assert timeline_json() and not database.exists()
    assert not list(tmp_path.glob("*.db*"))


def _group_in_database(timezone: str, closed_days: list[str]) -> None:
    engine = engine_for(os.environ["ROUNDTABLE_DATABASE_URL"])
    upgrade(engine)
    with Session(engine) as session:
        session.add(WorkingGroup(code="GSWG", name_lo="ໜ່ວຍງານດ້ານການປົກຄອງ", name_en="Governance Sector Working Group",
                                 timezone=timezone, closed_days=closed_days))
        session.commit()


def test_the_groups_zone_and_closed_days_come_from_the_database():
    _group_in_database("Asia/Tokyo", ["2019-11-12", "2019-11-11"])
    steps = timeline_json()
    assert steps[1]["starts_at"] == "2019-11-13T08:30:00+09:00"
    assert steps[0]["due_at"] == "2019-11-07T17:00:00+09:00"  # 2 business days before, skipping the closed 11th and 12th
    table = invoke("--definition", GSWG_YAML, "--year", 2020).stdout
    assert "times in Asia/Tokyo" in table and "Decreed day off" in table


def test_a_database_without_the_group_or_the_tables_falls_back_to_settings(monkeypatch, tmp_path):
    engine_for(os.environ["ROUNDTABLE_DATABASE_URL"]).connect().close()  # an empty file, no tables
    assert timeline_json()[1]["starts_at"] == "2019-11-13T08:30:00+07:00"
    monkeypatch.setenv("ROUNDTABLE_TIMEZONE", "Asia/Bangkok")
    get_settings.cache_clear()
    assert timeline_json()[1]["starts_at"] == "2019-11-13T08:30:00+07:00"
    monkeypatch.setenv("ROUNDTABLE_TIMEZONE", "UTC")
    get_settings.cache_clear()
    assert timeline_json()[1]["starts_at"] == "2019-11-13T08:30:00+00:00"


def test_an_unreachable_database_is_a_note_not_a_failure(monkeypatch):
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    get_settings.cache_clear()
    result = invoke("--definition", GSWG_YAML, "--year", 2020, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[1]["starts_at"] == "2019-11-13T08:30:00+07:00"
    assert "note: could not read group GSWG from the database" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--year", 99999], "--year 99999: planning years run from 1990 to 2100"),
    (["--year", 0], "--year 0: planning years run from 1990 to 2100"),
    (["--year", 2020, "--anchor", "annual_meting=2019-11-20"],
     "unknown anchor 'annual_meting' (known: annual_meeting, review_meeting)"),
    (["--year", 2020, "--anchor", "annual_meeting"], "write KEY=DATE"),
    (["--year", 2020, "--anchor", "annual_meeting=13/11/2019"], "is not an ISO date or date-time"),
    (["--year", 2020, "--anchor", "annual_meeting=2091-11-13"], "is far from planning year 2020 (its default is 2019-11-13)"),
])
def test_bad_year_and_bad_anchors(args, message):
    result = invoke("--definition", GSWG_YAML, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()) and result.stdout == ""


def test_bad_definitions_name_the_file_and_the_field(tmp_path):
    missing = invoke("--definition", tmp_path / "nope.yaml", "--year", 2020, "--json")
    assert missing.exit_code == 2 and f"{tmp_path / 'nope.yaml'}: file not found" in missing.stderr
    assert missing.stdout == ""

    broken = tmp_path / "broken.yaml"
    broken.write_text(GSWG_YAML.read_text(encoding="utf-8").replace("kind: review", "kind: reveiw"), encoding="utf-8")
    result = invoke("--definition", broken, "--year", 2020, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{broken}: steps[2].kind: unknown step kind 'reveiw'" in result.stderr
    assert "1 problem(s) in" in result.stderr

    contradiction = tmp_path / "contradiction.yaml"
    contradiction.write_text(GSWG_YAML.read_text(encoding="utf-8").replace(
        "due: annual_meeting - 2 business days", "due: annual_meeting - 9 business days"), encoding="utf-8")
    result = invoke("--definition", contradiction, "--year", 2020)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{contradiction}: steps[0].due: 2019-10-31 17:00 +0700 is before the step opens" in result.stderr


def test_titles_with_brackets_are_printed_as_written(tmp_path):
    data = yaml.safe_load(GSWG_YAML.read_text(encoding="utf-8"))
    data["steps"][0]["title_en"] = "Call [draft] for [bold]suggestions[/bold]"
    path = tmp_path / "brackets.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = invoke("--definition", path, "--year", 2020)
    assert result.exit_code == 0, result.output
    assert "Call [draft] for [bold]suggestions[/bold]" in result.stdout
