"""Working groups from YAML: the example loads, loading again updates, broken files write nothing."""

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import engine_for, session_scope
from models.groups import InputFileError, load_groups
from models.settings import get_settings
from models.tables import WorkingGroup
from roundtable.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "groups.yaml"
runner = CliRunner()


@pytest.fixture
def cli_db(engine, monkeypatch):
    """Point the CLI at the test database (SQLite or PostgreSQL)."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield engine
    engine_for(url).dispose()
    engine_for.cache_clear()


def group_count(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(WorkingGroup)).one()


def groups_by_code(engine) -> dict[str, WorkingGroup]:
    with Session(engine) as session:
        return {group.code: group for group in session.exec(select(WorkingGroup)).all()}


def test_example_loads_with_hierarchy(engine):
    with session_scope(engine) as session:
        summary = load_groups(session, EXAMPLE)
    assert summary.created == ["GSWG", "PSI", "LIO"]
    groups = groups_by_code(engine)
    assert groups["GSWG"].parent_id is None
    assert groups["PSI"].parent_id == groups["LIO"].parent_id == groups["GSWG"].id
    assert groups["GSWG"].name_lo == "ໜ່ວຍງານດ້ານການປົກຄອງ"
    assert groups["PSI"].name_lo == "ໜ່ວຍງານຍ່ອຍດ້ານການປັບປຸງບໍລິຫານລັດຖະການ"
    assert groups["LIO"].name_en == "Legal and Institutional Oversight"
    assert {group.timezone for group in groups.values()} == {"Asia/Vientiane"}


def test_loading_twice_updates_by_code(engine, tmp_path):
    with session_scope(engine) as session:
        load_groups(session, EXAMPLE)
    with session_scope(engine) as session:
        again = load_groups(session, EXAMPLE)
    assert again.created == [] and again.updated == [] and again.unchanged == ["GSWG", "PSI", "LIO"]

    changed = tmp_path / "groups.yaml"
    changed.write_text(
        EXAMPLE.read_text(encoding="utf-8")
        .replace("name_en: Public Service Improvement", "name_en: Public Service Improvement (PSI)")
        .replace("closed_days: []\n\n  - code: LIO", "closed_days: [2019-12-31, '2019-12-30']\n\n  - code: LIO"),
        encoding="utf-8",
    )
    with session_scope(engine) as session:
        summary = load_groups(session, changed)
    assert summary.updated == ["PSI"] and summary.created == []
    groups = groups_by_code(engine)
    assert len(groups) == 3
    assert groups["PSI"].name_en == "Public Service Improvement (PSI)"
    assert groups["PSI"].closed_days == ["2019-12-30", "2019-12-31"]


def test_reparenting_counts_as_update(engine, tmp_path):
    with session_scope(engine) as session:
        load_groups(session, EXAMPLE)
    moved = tmp_path / "moved.yaml"
    moved.write_text("groups:\n  - {code: LIO, parent: PSI, name_lo: ນິຕິກຳ, name_en: LIO}\n", encoding="utf-8")
    with session_scope(engine) as session:
        summary = load_groups(session, moved)
    assert summary.updated == ["LIO"]
    groups = groups_by_code(engine)
    assert groups["LIO"].parent_id == groups["PSI"].id


def test_cli_load_twice(cli_db):
    first = runner.invoke(app, ["groups", "load", str(EXAMPLE)])
    assert first.exit_code == 0, first.output
    assert "created: GSWG, PSI, LIO" in first.output
    second = runner.invoke(app, ["groups", "load", str(EXAMPLE)])
    assert second.exit_code == 0 and "unchanged: GSWG, PSI, LIO" in second.output
    assert group_count(cli_db) == 3


GOOD = """groups:
  - code: GSWG
    name_lo: ໜ່ວຍງານດ້ານການປົກຄອງ
    name_en: Governance Sector Working Group
  - code: PSI
    parent: GSWG
    name_lo: ໜ່ວຍງານຍ່ອຍດ້ານການປັບປຸງບໍລິຫານລັດຖະການ
    name_en: Public Service Improvement
"""


def third(extra: str) -> str:
    return GOOD + "  - code: LIO\n    name_lo: ໜ່ວຍງານຍ່ອຍດ້ານນິຕິກຳ\n    name_en: Legal and Institutional Oversight\n" + extra


BROKEN = {
    "unknown parent": (third("    parent: GSWX\n"), "groups[2].parent: unknown group 'GSWX' (known: GSWG, LIO, PSI)"),
    "unknown key": (third("    colour: blue\n"), "groups[2].colour: unknown key (allowed: code, name_lo, name_en, parent, timezone, closed_days)"),
    "unknown top-level key": (GOOD + "version: 2\n", "version: unknown key (allowed: groups)"),
    "bad time zone": (third("    timezone: Asia/Vientianne\n"), "groups[2].timezone: unknown time zone 'Asia/Vientianne'"),
    "parent loop": (
        GOOD.replace("    name_lo: ໜ່ວຍງານດ້ານການປົກຄອງ", "    parent: PSI\n    name_lo: ໜ່ວຍງານດ້ານການປົກຄອງ"),
        "groups[0].parent: parent loop GSWG -> PSI -> GSWG",
    ),
    "own parent": (third("    parent: LIO\n"), "groups[2].parent: parent loop LIO -> LIO"),
    "duplicate code": (GOOD + "  - {code: PSI, name_lo: ສອງ, name_en: Twice}\n", "groups[2].code: duplicate code 'PSI' (first at groups[1])"),
    "duplicate yaml key": (third("    name_en: Again\n"), "line 12: not valid YAML: duplicate key 'name_en'"),
    "bad closed day": (third("    closed_days: [2019-02-30]\n"), "groups[2].closed_days[0]"),
    "closed day as number": (third("    closed_days: [20191112]\n"), "groups[2].closed_days: 20191112 is not an ISO date (YYYY-MM-DD)"),
    "missing name": (GOOD + "  - code: LIO\n    name_en: LIO\n", "groups[2].name_lo: Field required"),
    "empty name": (third("").replace("name_lo: ໜ່ວຍງານຍ່ອຍດ້ານນິຕິກຳ", "name_lo: '  '"), "groups[2].name_lo: String should have at least 1 character"),
    "control character": (
        third("").replace("name_en: Legal and Institutional Oversight", 'name_en: "Legal\\u200b Oversight"'),
        "groups[2].name_en: contains U+200B ZERO WIDTH SPACE",
    ),
    "lower-case code": (GOOD + "  - {code: lio, name_lo: ນິຕິກຳ, name_en: LIO}\n", "groups[2].code: 'lio' is not a group code"),
    "invalid yaml": ("groups:\n  - code: [GSWG\n", "line 3: not valid YAML: expected ',' or ']'"),
    "empty file": ("", "file is empty"),
    "a list at the top": ("- code: GSWG\n", "expected a mapping with a 'groups:' list"),
    "no groups": ("groups: []\n", "groups: List should have at least 1 item"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_groups_file_writes_nothing(cli_db, tmp_path, case):
    text, expected = BROKEN[case]
    path = tmp_path / "groups.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["groups", "load", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {expected}" in result.output
    assert "nothing written" in result.output
    assert group_count(cli_db) == 0


def test_loop_through_groups_already_loaded(engine, tmp_path):
    with session_scope(engine) as session:
        load_groups(session, EXAMPLE)
    path = tmp_path / "loop.yaml"
    path.write_text("groups:\n  - {code: GSWG, parent: PSI, name_lo: ກ, name_en: G}\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"groups\[0\]\.parent: parent loop GSWG -> PSI -> GSWG"):
        with session_scope(engine) as session:
            load_groups(session, path)
    assert groups_by_code(engine)["GSWG"].parent_id is None


def test_every_problem_is_reported(tmp_path, sqlite_engine):
    path = tmp_path / "groups.yaml"
    path.write_text(third("    timezone: Mars/Olympus\n    parent: NOPE\n    extra: 1\n"), encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        with session_scope(sqlite_engine) as session:
            load_groups(session, path)
    assert [line.split(": ")[1] for line in caught.value.problems] == ["groups[2].timezone", "groups[2].extra"]


@pytest.mark.parametrize("kind", ["missing", "directory", "latin-1"])
def test_unreadable_groups_file(cli_db, tmp_path, kind):
    path = tmp_path / "groups.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "latin-1":
        path.write_bytes(GOOD.replace("ໜ່ວຍງານດ້ານການປົກຄອງ", "Gouvernance é").encode("latin-1", "replace"))
    result = runner.invoke(app, ["groups", "load", str(path)])
    assert result.exit_code == 2
    expected = {"missing": "no such file", "directory": "is a directory", "latin-1": "not UTF-8 (byte 0xe9 on line 3)"}
    assert f"{path}: {expected[kind]}" in result.output
    assert group_count(cli_db) == 0
