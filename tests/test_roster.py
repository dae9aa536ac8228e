"""Rosters: every bad row reported with its number and reason, exit 2, nothing written;
good files in every shape (BOM, CRLF, CR, XLSX) import; importing again updates."""

import unicodedata
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import engine_for, session_scope
from models.groups import load_groups
from models.roster import RosterInvalid, check_roster, import_roster
from models.settings import get_settings
from models.tables import Member, Membership, WorkingGroup
from roundtable.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "roster.csv"
FIXTURES = ROOT / "tests" / "fixtures" / "rosters"
HEADER = "name,email,organisation,role,group,language"
DAY1, DAY2 = date(2019, 11, 1), date(2020, 3, 1)
runner = CliRunner()


@pytest.fixture
def db(engine):
    """A database with the example groups (GSWG, PSI, LIO) loaded."""
    with session_scope(engine) as session:
        load_groups(session, ROOT / "examples" / "groups.yaml")
    return engine


@pytest.fixture
def cli_db(db, monkeypatch):
    """The same database, as the CLI sees it through ROUNDTABLE_DATABASE_URL."""
    url = db.url.render_as_string(hide_password=False)
    monkeypatch.setenv("ROUNDTABLE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield db
    engine_for(url).dispose()
    engine_for.cache_clear()


def counts(engine) -> tuple[int, int]:
    with Session(engine) as session:
        members = session.exec(select(func.count()).select_from(Member)).one()
        memberships = session.exec(select(func.count()).select_from(Membership)).one()
    return members, memberships


def members_by_email(engine) -> dict[str, Member]:
    with Session(engine) as session:
        return {member.email: member for member in session.exec(select(Member)).all()}


def memberships(engine, email: str) -> list[tuple[str, str, date | None, date | None]]:
    with Session(engine) as session:
        rows = session.exec(
            select(WorkingGroup.code, Membership.role, Membership.starts_on, Membership.ends_on)
            .join(Member, Member.id == Membership.member_id)
            .join(WorkingGroup, WorkingGroup.id == Membership.group_id)
            .where(Member.email == email)
        ).all()
    return sorted(tuple(row) for row in rows)


def write(tmp_path: Path, *lines: str, name: str = "roster.csv", newline: str = "\n", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines + ("",)).encode("utf-8"))
    return path


def do_import(engine, path: Path, today: date = DAY1):
    with session_scope(engine) as session:
        return import_roster(session, path, today)


# ---- good files -----------------------------------------------------------------------


def test_example_roster_imports(db):
    summary = do_import(db, EXAMPLE)
    assert summary.members_created == 51 and summary.memberships_started == 52
    members = members_by_email(db)
    assert members["gswg.chair@example.org"].organisation == "ກະຊວງພາຍໃນ"
    assert members["gswg.secretariat2@example.org"].language == "lo"  # empty language cell
    assert {m.language for m in members.values()} == {"lo", "en"}
    assert memberships(db, "mpi.focal@example.org") == [("GSWG", "member", DAY1, None), ("GSWG", "mpi-focal", DAY1, None)]
    with Session(db) as session:
        roles = session.exec(select(WorkingGroup.code, Membership.role).join(WorkingGroup)).all()
    assert {(code, role) for code, role in roles} >= {
        ("GSWG", "chair"), ("GSWG", "co-chair"), ("GSWG", "secretariat-head"), ("GSWG", "secretariat"),
        ("GSWG", "mpi-focal"), ("PSI", "chair"), ("PSI", "co-chair"), ("LIO", "chair"), ("LIO", "co-chair"),
    }
    assert sum(1 for code, role in roles if (code, role) == ("GSWG", "co-chair")) == 3


def test_cli_check_and_import_example(cli_db):
    check = runner.invoke(app, ["roster", "check", str(EXAMPLE)])
    assert check.exit_code == 0, check.output
    assert f"OK {EXAMPLE}: 51 members, 52 memberships (GSWG 25, LIO 14, PSI 13)" in check.output
    assert counts(cli_db) == (0, 0)  # check writes nothing
    first = runner.invoke(app, ["roster", "import", str(EXAMPLE), "--today", "2019-11-01"])
    assert first.exit_code == 0, first.output
    assert "members 51 created, 0 updated, 0 unchanged; memberships 52 started" in first.output
    again = runner.invoke(app, ["roster", "import", str(EXAMPLE), "--today", "2019-11-02"])
    assert again.exit_code == 0 and "members 0 created, 0 updated, 51 unchanged" in again.output
    assert counts(cli_db) == (51, 52)


def test_cli_import_defaults_to_today_in_the_group_zone(cli_db, tmp_path):
    path = write(tmp_path, HEADER, "Chair,chair@example.org,MoHA,chair,GSWG,lo")
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert memberships(cli_db, "chair@example.org")[0][2] is not None
    bad_day = runner.invoke(app, ["roster", "import", str(path), "--today", "1 Nov"])
    assert bad_day.exit_code == 2 and "--today: '1 Nov' is not a date" in bad_day.output


LINES = [HEADER, "ລັດຖະມົນຕີ ກະຊວງພາຍໃນ,chair@example.org,ກະຊວງພາຍໃນ,chair,GSWG,lo",
         '"Resident Representative, UNDP",undp@example.org,UNDP,co-chair,GSWG,en']


@pytest.mark.parametrize(("newline", "bom"), [("\n", False), ("\r\n", False), ("\r", False), ("\r\n", True), ("\n", True)],
                         ids=["LF", "CRLF", "CR", "BOM+CRLF", "BOM+LF"])
def test_line_endings_and_bom(db, tmp_path, newline, bom):
    path = write(tmp_path, *LINES, newline=newline, bom=bom)
    report_entries = do_import(db, path)
    assert report_entries.members_created == 2
    members = members_by_email(db)
    assert members["chair@example.org"].name == "ລັດຖະມົນຕີ ກະຊວງພາຍໃນ"
    assert members["undp@example.org"].name == "Resident Representative, UNDP"
    assert members["undp@example.org"].language == "en"


def test_header_is_case_insensitive_trimmed_and_in_any_order(db, tmp_path):
    path = write(tmp_path, " Email ,NAME,Group,Role,Language,Organisation",
                 "  Chair@Example.ORG , Minister  of Home Affairs ,gswg, Chair ; Member ,EN,MoHA")
    do_import(db, path)
    member = members_by_email(db)["chair@example.org"]
    assert (member.name, member.organisation, member.language) == ("Minister of Home Affairs", "MoHA", "en")
    assert memberships(db, "chair@example.org") == [("GSWG", "chair", DAY1, None), ("GSWG", "member", DAY1, None)]


def test_text_is_normalised_to_nfc(db, tmp_path):
    lao = "ທ່ານ ຢູ່ ວຽງຈັນ"  # ຢູ່ written with the tone mark before the vowel: not canonical order
    lao_unordered = lao.replace("ຢູ່", "\u0ea2\u0ec8\u0eb9")
    latin_decomposed = "Rene\u0301 Cafe\u0301"
    assert not unicodedata.is_normalized("NFC", lao_unordered)
    path = write(tmp_path, HEADER, f"{lao_unordered},lao@example.org,{latin_decomposed},member,PSI,",
                 f"{latin_decomposed},caf\u0065\u0301@example.org,UNDP,member,LIO,en")
    do_import(db, path)
    members = members_by_email(db)
    assert members["lao@example.org"].name == lao == unicodedata.normalize("NFC", lao_unordered)
    assert members["lao@example.org"].organisation == "René Café"
    assert "café@example.org" in members and members["café@example.org"].name == "René Café"


def test_xlsx_roster_with_numbers(db, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Email", "Organisation", "Role", "Group", "Language"])
    sheet.append(["ຜູ້ຕາງໜ້າ ກະຊວງການເງິນ", "mof@example.org", "ກະຊວງການເງິນ", "member", "GSWG", "lo"])
    sheet.append([])  # a blank row is skipped but still counted
    sheet.append(["Programme Officer", "sdc@example.org", 2020.0, "member", "PSI", None])
    path = tmp_path / "roster.xlsx"
    workbook.save(path)
    summary = do_import(db, path)
    assert summary.members_created == 2
    members = members_by_email(db)
    assert members["sdc@example.org"].organisation == "2020" and members["sdc@example.org"].language == "lo"


# ---- broken files ---------------------------------------------------------------------

GOOD_ROW = "ຜູ້ຕາງໜ້າ ກະຊວງການເງິນ,mof@example.org,ກະຊວງການເງິນ,member,GSWG,lo"

BROKEN_CSV = {
    "unknown role": (["Adviser,a@example.org,GIZ,chiar,LIO,en"],
                     "row 3: role: unknown role 'chiar' (known: chair, co-chair, secretariat-head, secretariat, member, mpi-focal"),
    "role list with commas": (['Adviser,a@example.org,GIZ,"chair, member",LIO,en'], "row 3: role: unknown role 'chair, member'"),
    "empty role": (["Adviser,a@example.org,GIZ,,LIO,en"], "row 3: role: is empty"),
    "unknown group": (["Adviser,a@example.org,GIZ,member,GSWX,en"], "row 3: group: unknown group 'GSWX' (known: GSWG, LIO, PSI)"),
    "empty group": (["Adviser,a@example.org,GIZ,member,,en"], "row 3: group: is empty"),
    "bad email": (["Adviser,not-an-address,GIZ,member,LIO,en"], "row 3: email: 'not-an-address' is not a valid address"),
    "empty email": (["Adviser,,GIZ,member,LIO,en"], "row 3: email: is empty"),
    "empty name": ([" ,a@example.org,GIZ,member,LIO,en"], "row 3: name: is empty"),
    "unknown language": (["Adviser,a@example.org,GIZ,member,LIO,fr"], "row 3: language: unknown language 'fr' (use lo or en"),
    "duplicate email": (["Adviser,MOF@Example.ORG,GIZ,member,LIO,en"], "row 3: email: mof@example.org appears again (first on row 2)"),
    "duplicate email after NFC": (["Cafe\u0301,caf\u00e9@example.org,X,member,LIO,en", "Café,cafe\u0301@example.org,X,member,LIO,en"],
                                  "row 4: email: café@example.org appears again (first on row 3)"),
    "NUL in name": (["Advi\x00ser,a@example.org,GIZ,member,LIO,en"], "row 3: name: contains U+0000"),
    "tab inside a field": (["Legal\tAdviser,a@example.org,GIZ,member,LIO,en"], "row 3: name: contains U+0009"),
    "newline inside a quoted field": (['"Legal\nAdviser",a@example.org,GIZ,member,LIO,en'], "row 3: name: contains U+000A"),
    "zero-width space": (["Legal\u200bAdviser,a@example.org,GIZ,member,LIO,en"], "row 3: name: contains U+200B ZERO WIDTH SPACE"),
    "bidi override": (["Adviser,a@example.org,\u202eZIG,member,LIO,en"], "row 3: organisation: contains U+202E RIGHT-TO-LEFT OVERRIDE"),
    "name too long": (["A" * 201 + ",a@example.org,GIZ,member,LIO,en"], "row 3: name: longer than 200 characters"),
    "value beyond the last column": (["Adviser,a@example.org,GIZ,member,LIO,en,extra"], "row 3: value 'extra' beyond the last column"),
    "broken quoting": (['"Adviser"x,a@example.org,GIZ,member,LIO,en'], "line 3: not valid CSV"),
}


@pytest.mark.parametrize("case", list(BROKEN_CSV))
def test_broken_row_is_reported_and_nothing_written(cli_db, tmp_path, case):
    rows, expected = BROKEN_CSV[case]
    path = write(tmp_path, HEADER, GOOD_ROW, *rows)
    before = counts(cli_db)
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {expected}" in result.output
    assert "nothing written" in result.output
    assert counts(cli_db) == before == (0, 0)
    check = runner.invoke(app, ["roster", "check", str(path)])
    assert check.exit_code == 2 and f"{path}: {expected}" in check.output


BROKEN_FILES = {
    "missing column": ("name,email,organisation,role,group\n", "row 1: missing column: language"),
    "unknown column": (HEADER + ",phone\n", "row 1: unknown column 'phone'; expected: name, email, organisation, role, group, language"),
    "duplicate column": ("name,email,organisation,role,group,language,Email\n", "row 1: column 'email' appears twice"),
    "semicolon separated": ("name;email;organisation;role;group;language\n",
                            "row 1: unknown column 'name;email;organisation;role;group;language' (columns must be separated by commas)"),
    "unnamed column": ("name,email,,organisation,role,group,language\n", "row 1: column 3 has no name in the header"),
    "empty file": ("", "file is empty (expected a header: name, email"),
    "blank lines only": ("\n\n , ,\n", "file is empty"),
    "header only": (HEADER + "\n", "no member rows (only the header)"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_file_is_reported(cli_db, tmp_path, case):
    text, expected = BROKEN_FILES[case]
    path = tmp_path / "roster.csv"
    path.write_text(text + (GOOD_ROW + "\n" if "row 1" in expected else ""), encoding="utf-8")
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {expected}" in result.output
    assert counts(cli_db) == (0, 0)


@pytest.mark.parametrize("kind", ["latin-1", "utf-16", "missing", "directory"])
def test_unreadable_file(cli_db, tmp_path, kind):
    path = tmp_path / "roster.csv"
    text = f"{HEADER}\nRené,rene@example.org,UNDP,member,GSWG,en\n"
    expected = {
        "latin-1": "not UTF-8 (byte 0xe9 on line 2); save it as UTF-8",
        "utf-16": "file is UTF-16; save it as UTF-8",
        "missing": "no such file",
        "directory": "is a directory, not a file",
    }[kind]
    if kind == "directory":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(text.encode("latin-1" if kind == "latin-1" else "utf-16"))
    result = runner.invoke(app, ["roster", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}: {expected}" in result.output
    assert "Traceback" not in result.output


def test_every_bad_row_is_reported(cli_db):
    path = FIXTURES / "many_bad_rows.csv"
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2
    problems = [line.removeprefix(f"{path}: ") for line in result.output.splitlines() if line.startswith(str(path))]
    assert problems == [
        "row 3: name: is empty",
        "row 4: email: 'not-an-address' is not a valid address: An email address must have an @-sign.",
        "row 5: role: unknown role 'chiar' (known: chair, co-chair, secretariat-head, secretariat, member, mpi-focal; several separated by ';')",
        "row 6: group: unknown group 'GSWX' (known: GSWG, LIO, PSI)",
        "row 7: language: unknown language 'fr' (use lo or en; empty means lo)",
        "row 7: email: mof@example.org appears again (first on row 2)",
        "row 8: role: is empty (one or more of: chair, co-chair, secretariat-head, secretariat, member, mpi-focal, separated by ';')",
    ]
    assert "error: 7 problem(s)" in result.output
    assert counts(cli_db) == (0, 0)


def test_output_is_plain_and_unwrapped(cli_db):
    path = FIXTURES / "many_bad_rows.csv"
    result = runner.invoke(app, ["roster", "check", str(path)], env={"COLUMNS": "40"})
    assert "\x1b[" not in result.output
    long_line = f"{path}: row 5: role: unknown role 'chiar' (known: chair, co-chair, secretariat-head, secretariat, member, mpi-focal; several separated by ';')"
    assert long_line in result.output.splitlines()


def test_check_without_groups_says_to_load_them(engine, tmp_path):
    path = write(tmp_path, HEADER, GOOD_ROW)
    with Session(engine) as session:
        report = check_roster(session, path)
    assert [str(p) for p in report.problems] == [
        "row 2: group: unknown group 'GSWG' (no groups loaded yet: run `roundtable groups load FILE` first)"
    ]


def test_import_api_refuses_a_bad_file_and_writes_nothing(db, tmp_path):
    do_import(db, EXAMPLE)
    before = counts(db)
    bad = write(tmp_path, HEADER, "Changed Name,gswg.chair@example.org,X,chair,GSWG,lo", "Bad,bad,X,member,GSWG,lo")
    with pytest.raises(RosterInvalid) as caught:
        do_import(db, bad, DAY2)
    assert [p.row for p in caught.value.report.problems] == [3]
    assert counts(db) == before
    assert members_by_email(db)["gswg.chair@example.org"].name == "ສົມພອນ ວົງສະຫວັນ"


# ---- XLSX -----------------------------------------------------------------------------


def xlsx(tmp_path: Path, *rows: list) -> Path:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    path = tmp_path / "roster.xlsx"
    workbook.save(path)
    return path


COLUMNS = ["name", "email", "organisation", "role", "group", "language"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (["Adviser", '=LOWER("A@EXAMPLE.ORG")', "GIZ", "member", "LIO", "en"],
         'row 3: email: is a formula (=LOWER("A@EXAMPLE.ORG")); paste the value instead'),
        (["Adviser", "a@example.org", datetime(2020, 1, 1), "member", "LIO", "en"], "row 3: organisation: is a date or time"),
        (["Adviser", "a@example.org", "GIZ", True, "LIO", "en"], "row 3: role: is a true/false value (True), expected text"),
        (["Adviser", "a@example.org", "GIZ", 12, "LIO", "en"], "row 3: role: unknown role '12'"),
        (["Adviser", "a@example.org", "GIZ", "member", "LIO", "en", None, "stray"], "row 3: value 'stray' beyond the last column"),
    ],
    ids=["formula", "date", "boolean", "number as role", "stray cell"],
)
def test_bad_xlsx_cells(cli_db, tmp_path, row, expected):
    path = xlsx(tmp_path, COLUMNS, ["Chair", "chair@example.org", "MoHA", "chair", "GSWG", "lo"], row)
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {expected}" in result.output
    assert "error: 1 problem(s)" in result.output  # an unreadable cell is not also "empty"
    assert counts(cli_db) == (0, 0)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("roster.xlsx", f"{HEADER}\n{GOOD_ROW}\n".encode(), "not an XLSX workbook (an .xlsx file is a zip archive; this one is not)"),
        ("roster.xlsx", b"PK\x03\x04 this is not really a zip", "not a readable XLSX workbook"),
        ("roster.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "a legacy .xls workbook; save it as .xlsx or as 'CSV UTF-8'"),
    ],
    ids=["text named xlsx", "broken zip", "legacy xls"],
)
def test_not_really_xlsx(cli_db, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(app, ["roster", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}: {expected}" in result.output
    assert "Traceback" not in result.output


def test_xlsx_saved_under_a_csv_name_is_read_as_xlsx(db, tmp_path):
    path = xlsx(tmp_path, COLUMNS, ["Chair", "chair@example.org", "MoHA", "chair", "GSWG", "lo"])
    renamed = path.rename(tmp_path / "roster.csv")
    assert do_import(db, renamed).members_created == 1


# ---- importing again ------------------------------------------------------------------


def test_reimport_updates_members_without_duplicating(db, tmp_path):
    do_import(db, EXAMPLE)
    before = counts(db)
    original = next(line for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if "gswg.giz@" in line)
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        original, "Senior Governance Adviser,GSWG.GIZ@example.org,GIZ Laos,member,GSWG,lo,,")
    assert "GSWG.GIZ@" in text
    changed = tmp_path / "roster.csv"
    changed.write_text(text, encoding="utf-8")
    summary = do_import(db, changed, DAY2)
    assert (summary.members_created, summary.members_updated, summary.members_unchanged) == (0, 1, 50)
    assert (summary.memberships_started, summary.memberships_ended) == (0, 0)
    assert counts(db) == before
    member = members_by_email(db)["gswg.giz@example.org"]
    assert (member.name, member.organisation, member.language) == ("Senior Governance Adviser", "GIZ Laos", "lo")


def test_co_chair_rotation_ends_and_starts_memberships(db, tmp_path):
    do_import(db, EXAMPLE)
    # SDC hands the GSWG co-chair to the EU; the GSWG file alone is imported.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines[1:] if ",GSWG," in line and "gswg.cochair.sdc@" not in line]
    rows = [row.replace("gswg.eu@example.org,EU,member", "gswg.eu@example.org,EU,co-chair") for row in rows]
    rotated = write(tmp_path, lines[0], *rows)
    summary = do_import(db, rotated, DAY2)
    assert (summary.memberships_started, summary.memberships_ended, summary.memberships_reopened) == (1, 2, 0)
    assert memberships(db, "gswg.cochair.sdc@example.org") == [("GSWG", "co-chair", DAY1, DAY2)]
    assert memberships(db, "gswg.eu@example.org") == [("GSWG", "co-chair", DAY2, None), ("GSWG", "member", DAY1, DAY2)]
    assert "gswg.cochair.sdc@example.org" in members_by_email(db)  # members are never deleted
    assert memberships(db, "psi.chair@example.org") == [("PSI", "chair", DAY1, None)]  # PSI not named: untouched

    # Undoing the rotation the same day reopens, without a gap or a duplicate row.
    summary = do_import(db, EXAMPLE, DAY2)
    assert (summary.memberships_reopened, summary.memberships_ended, summary.memberships_started) == (2, 1, 0)
    assert memberships(db, "gswg.cochair.sdc@example.org") == [("GSWG", "co-chair", DAY1, None)]
    assert memberships(db, "gswg.eu@example.org") == [("GSWG", "member", DAY1, None)]  # co-chair of one day: deleted


def test_membership_added_and_removed_the_same_day_leaves_nothing(db, tmp_path):
    first = write(tmp_path, HEADER, "Chair,chair@example.org,MoHA,chair;member,GSWG,lo", name="a.csv")
    second = write(tmp_path, HEADER, "Chair,chair@example.org,MoHA,chair,GSWG,lo", name="b.csv")
    do_import(db, first)
    summary = do_import(db, second)
    assert summary.memberships_ended == 1
    assert memberships(db, "chair@example.org") == [("GSWG", "chair", DAY1, None)]


def test_optional_name_en_and_title_columns(db, tmp_path):
    path = write(tmp_path, HEADER + ",name_en,title", "ສົມພອນ ວົງສະຫວັນ,chair@example.org,ກະຊວງພາຍໃນ,chair,GSWG,lo,Somphone Vongsavanh,ທ່ານ",
                 "Anna Berg,anna@example.org,UNDP,co-chair,GSWG,en,,Ms")
    do_import(db, path)
    members = members_by_email(db)
    assert (members["chair@example.org"].name_en, members["chair@example.org"].title) == ("Somphone Vongsavanh", "ທ່ານ")
    assert (members["anna@example.org"].name_en, members["anna@example.org"].title) == ("", "Ms")
    with Session(db) as session:
        report = check_roster(session, write(tmp_path, HEADER + ",nickname", "A,a@example.org,X,member,GSWG,lo,Al",
                                             name="nick.csv"))
    assert [str(p) for p in report.problems] == [
        "row 1: unknown column 'nickname'; expected: name, email, organisation, role, group, language "
        "(optional: name_en, title, deputy_for)"]


# ---- deputies -------------------------------------------------------------------------

DEPUTY_HEADER = "name,email,organisation,role,group,language,deputy_for"


def deputy_of(engine, email: str) -> set[tuple[str, str, str | None]]:
    """(group, role, email deputised for) of the person's open memberships."""
    with Session(engine) as session:
        emails = {m.id: m.email for m in session.exec(select(Member)).all()}
        rows = session.exec(select(WorkingGroup.code, Membership.role, Membership.deputy_for_id)
                            .join(WorkingGroup, WorkingGroup.id == Membership.group_id)
                            .join(Member, Member.id == Membership.member_id)
                            .where(Member.email == email, Membership.ends_on.is_(None))).all()
    return {(code, role, emails.get(deputy)) for code, role, deputy in rows}


def test_deputy_for_is_stored_on_the_memberships_and_updated(db, tmp_path):
    first = write(tmp_path, DEPUTY_HEADER,
                  "Chair,chair@x.org,MoHA,chair,GSWG,lo,",
                  "Co,co@x.org,UNDP,co-chair,GSWG,en,",
                  "Deputy,dep@x.org,MoHA,member;secretariat,GSWG,lo,Chair@X.org",
                  "Head,head@x.org,MoHA,secretariat-head,GSWG,lo,")
    do_import(db, first)
    assert deputy_of(db, "dep@x.org") == {("GSWG", "member", "chair@x.org"), ("GSWG", "secretariat", "chair@x.org")}
    assert deputy_of(db, "chair@x.org") == {("GSWG", "chair", None)}
    # The deputy now stands in for the co-chair; a file without the column clears it.
    second = write(tmp_path, DEPUTY_HEADER,
                   "Chair,chair@x.org,MoHA,chair,GSWG,lo,", "Co,co@x.org,UNDP,co-chair,GSWG,en,",
                   "Deputy,dep@x.org,MoHA,member;secretariat,GSWG,lo,co@x.org",
                   "Head,head@x.org,MoHA,secretariat-head,GSWG,lo,", name="second.csv")
    do_import(db, second, DAY2)
    assert deputy_of(db, "dep@x.org") == {("GSWG", "member", "co@x.org"), ("GSWG", "secretariat", "co@x.org")}
    third = write(tmp_path, HEADER, "Chair,chair@x.org,MoHA,chair,GSWG,lo", "Co,co@x.org,UNDP,co-chair,GSWG,en",
                  "Deputy,dep@x.org,MoHA,member;secretariat,GSWG,lo", "Head,head@x.org,MoHA,secretariat-head,GSWG,lo",
                  name="third.csv")
    do_import(db, third, DAY2)
    assert deputy_of(db, "dep@x.org") == {("GSWG", "member", None), ("GSWG", "secretariat", None)}


@pytest.mark.parametrize(("row", "expected"), [
    ("Deputy,dep@x.org,MoHA,member,GSWG,lo,dep@x.org", "row 4: deputy_for: a person cannot deputise for themselves"),
    ("Deputy,dep@x.org,MoHA,member,GSWG,lo,nobody@x.org",
     "row 4: deputy_for: nobody@x.org is not in this file nor in the database"),
    ("Deputy,dep@x.org,MoHA,member,GSWG,lo,m@x.org", "row 4: deputy_for: m@x.org is not chair or co-chair of GSWG"),
    ("Deputy,dep@x.org,MoHA,member,PSI,lo,chair@x.org", "row 4: deputy_for: chair@x.org is not chair or co-chair of PSI"),
    ("Deputy,dep@x.org,MoHA,member,GSWG,lo,not an address", "row 4: deputy_for: 'not an address' is not a valid address"),
])
def test_bad_deputy_for_is_refused_naming_row_and_column(cli_db, tmp_path, row, expected):
    path = write(tmp_path, DEPUTY_HEADER, "Chair,chair@x.org,MoHA,chair,GSWG,lo,", "M,m@x.org,MoHA,member,GSWG,lo,",
                 row)
    before = counts(cli_db)
    result = runner.invoke(app, ["roster", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert counts(cli_db) == before


def test_deputy_for_a_chair_known_only_to_the_database_is_refused(db, tmp_path):
    do_import(db, write(tmp_path, HEADER, "Chair,chair@x.org,MoHA,chair,GSWG,lo", "Head,head@x.org,MoHA,secretariat-head,GSWG,lo"))
    path = write(tmp_path, DEPUTY_HEADER, "Deputy,dep@x.org,MoHA,member,PSI,lo,chair@x.org", name="psi.csv")
    with pytest.raises(RosterInvalid) as caught:
        do_import(db, path, DAY2)
    assert [str(p) for p in caught.value.report.problems] == [
        "row 2: deputy_for: chair@x.org is not chair or co-chair of PSI in this file "
        "(a deputy stands in for a chair or co-chair of the same group)"]
