"""Member rosters (CSV or XLSX): check every row, then import the whole file or nothing.

The columns are `name, email, organisation, role, group, language`, and optionally `name_en`
(the name in Latin letters, for English text), `title` (ທ່ານ, ທ່ານນາງ, Mr, Ms, Dr …) and `deputy_for`
(the email of a chair or co-chair of the same group, listed in the same file, whom this person
deputises for: they get that approver's approval requests and may decide in their place), in any
order (header names are trimmed and case-insensitive). `name` is the person's name only: never a
role (the messages add the role). One row is one person in one group:
`role` may hold several roles separated by `;` (e.g. `mpi-focal;member`); `group` is one
group code loaded before with `roundtable groups load`; `language` is `lo` or `en`
(empty means `lo`). Emails are unique within a file.

Rows are numbered as a spreadsheet numbers them: the header is row 1. Every text is
normalised to NFC and trimmed; control, zero-width and bidi characters are refused.
CSV must be UTF-8 (a BOM is fine; line endings \\n, \\r\\n or \\r); in XLSX the first sheet
is read, numbers become text and formulas, dates and booleans are refused.
"""

import csv
import io
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Optional, Union

import openpyxl
from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, or_, select

from models.groups import InputFileError, control_character, decode_utf8, read_input_bytes
from models.tables import LANGUAGES, ROLES, Member, Membership, WorkingGroup

COLUMNS = ("name", "email", "organisation", "role", "group", "language")
OPTIONAL_COLUMNS = ("name_en", "title", "deputy_for")
MAX_TEXT = 200
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls


@dataclass(frozen=True)
class RosterProblem:
    row: Optional[int]  # header = row 1; None = the file as a whole
    message: str
    column: Optional[str] = None

    def __str__(self) -> str:
        where = "" if self.row is None else f"row {self.row}: "
        return where + (f"{self.column}: " if self.column else "") + self.message


@dataclass(frozen=True)
class RosterEntry:
    row: int
    name: str
    email: str  # lower-case
    organisation: str
    roles: tuple[str, ...]
    group: str  # group code
    language: str
    name_en: str = ""
    title: str = ""
    deputy_for: str = ""  # lower-case email of the chair or co-chair deputised for


@dataclass
class RosterReport:
    path: Path
    entries: list[RosterEntry] = field(default_factory=list)
    problems: list[RosterProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem, each naming the file."""
        return [f"{self.path}: {problem}" for problem in self.problems]

    def memberships_by_group(self) -> dict[str, int]:
        counts = Counter()
        for entry in self.entries:
            counts[entry.group] += len(entry.roles)
        return dict(sorted(counts.items()))


class RosterInvalid(Exception):
    def __init__(self, report: RosterReport):
        super().__init__("\n".join(report.lines()))
        self.report = report


# An import that ends more memberships than this (or a group's last chair or secretariat) needs --replace:
# a one-row file once ended 25 memberships of its group, and the review and the approval had nobody left.
MAX_ENDED_WITHOUT_REPLACE = 3
# Roles a group must keep someone in: the approval asks the chairs, every failure report the secretariat.
VITAL_ROLES = {"chair": ("chair", "co-chair"), "secretariat": ("secretariat-head", "secretariat")}

Change = tuple[str, str, str]  # (email, group code, role)


@dataclass
class RosterChanges:
    """What an import would do to the memberships, as of one day; `refusals` say why it needs --replace."""

    started: list[Change] = field(default_factory=list)
    reopened: list[Change] = field(default_factory=list)
    ended: list[Change] = field(default_factory=list)
    members_created: list[str] = field(default_factory=list)
    members_updated: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per change: `+` starts, `~` reopens, `-` ends a membership; members created or updated."""
        return ([f"+ {email} {role} in {group}" for email, group, role in self.started]
                + [f"~ {email} {role} in {group} (reopened)" for email, group, role in self.reopened]
                + [f"- {email} {role} in {group}" for email, group, role in self.ended]
                + [f"new member {email}" for email in self.members_created]
                + [f"updated member {email}" for email in self.members_updated])


@dataclass
class ImportSummary:
    members_created: int = 0
    members_updated: int = 0
    members_unchanged: int = 0
    memberships_started: int = 0
    memberships_reopened: int = 0
    memberships_ended: int = 0
    changes: RosterChanges = field(default_factory=RosterChanges)


class RosterRefused(Exception):
    """The file is valid, but importing it would end too much without --replace; nothing was written."""

    def __init__(self, changes: RosterChanges):
        super().__init__("; ".join(changes.refusals))
        self.changes = changes


class _BadCell(str):
    """An XLSX cell that cannot be read as text; the string is the reason."""


Cell = Union[str, _BadCell]


# ---- reading --------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes) -> list[list[Cell]]:
    reader = csv.reader(io.StringIO(decode_utf8(path, data), newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        raise InputFileError([f"{path}: line {reader.line_num}: not valid CSV: {exc}"]) from exc


def _xlsx_cell(cell) -> Cell:
    value = cell.value
    if cell.data_type == "f":
        return _BadCell(f"is a formula ({value}); paste the value instead")
    if cell.data_type == "e":
        return _BadCell(f"is a spreadsheet error ({value})")
    if value is None:
        return ""
    if isinstance(value, bool):
        return _BadCell(f"is a true/false value ({value}), expected text")
    if isinstance(value, (datetime, date, time)):
        return _BadCell(f"is a date or time ({value}), expected text")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 12.0 is what Excel stores for 12
    return str(value)


def _read_xlsx(path: Path, data: bytes) -> list[list[Cell]]:
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise InputFileError([f"{path}: not a readable XLSX workbook ({type(exc).__name__}: {exc})"]) from exc
    try:
        sheet = workbook.worksheets[0]
        return [[_xlsx_cell(cell) for cell in row] for row in sheet.iter_rows(min_row=1)]
    except Exception as exc:  # noqa: BLE001
        raise InputFileError([f"{path}: not a readable XLSX workbook ({type(exc).__name__}: {exc})"]) from exc
    finally:
        workbook.close()


def read_table(path: Path) -> list[list[Cell]]:
    """Every row of the file, row 1 first. Raises InputFileError for a file that cannot be read."""
    data = read_input_bytes(path)
    is_xlsx_name = path.suffix.lower() in (".xlsx", ".xlsm")
    if data.startswith(OLE_MAGIC) or path.suffix.lower() == ".xls":
        raise InputFileError([f"{path}: a legacy .xls workbook; save it as .xlsx or as 'CSV UTF-8'"])
    if data.startswith(ZIP_MAGIC):
        return _read_xlsx(path, data)
    if is_xlsx_name:
        raise InputFileError([f"{path}: not an XLSX workbook (an .xlsx file is a zip archive; this one is not)"])
    return _read_csv(path, data)


# ---- checking -------------------------------------------------------------------------


def _header(cells: list[Cell]) -> tuple[dict[str, int], list[RosterProblem]]:
    names = [unicodedata.normalize("NFC", str(cell)).strip().lower() for cell in cells]
    while names and names[-1] == "":
        names.pop()
    problems, index = [], {}
    for position, name in enumerate(names, start=1):
        if name == "":
            problems.append(RosterProblem(1, f"column {position} has no name in the header"))
        elif name in index:
            problems.append(RosterProblem(1, f"column {name!r} appears twice"))
        elif name not in COLUMNS + OPTIONAL_COLUMNS:
            hint = " (columns must be separated by commas)" if ";" in name or "\t" in name else ""
            problems.append(RosterProblem(1, f"unknown column {name!r}{hint}; expected: {', '.join(COLUMNS)} "
                                             f"(optional: {', '.join(OPTIONAL_COLUMNS)})"))
        else:
            index[name] = position - 1
    missing = [name for name in COLUMNS if name not in index]
    if missing:
        problems.append(RosterProblem(1, f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"))
    return index, problems


def _clean(raw: str, column: str, row: int, problems: list[RosterProblem]) -> str:
    text = unicodedata.normalize("NFC", raw).strip()
    if found := control_character(text):
        problems.append(RosterProblem(row, f"contains {found}", column))
    text = re.sub(r"\s+", " ", text)
    if len(text) > MAX_TEXT:
        problems.append(RosterProblem(row, f"longer than {MAX_TEXT} characters", column))
    return text


def _check_row(row: int, values: dict[str, str], group_codes: set[str]) -> tuple[RosterEntry, list[RosterProblem]]:
    """The row as an entry (usable only when the problem list is empty) and its problems."""
    problems: list[RosterProblem] = []
    text = {column: _clean(values.get(column, ""), column, row, problems) for column in COLUMNS + OPTIONAL_COLUMNS}

    if not text["name"]:
        problems.append(RosterProblem(row, "is empty", "name"))

    email = ""
    if not text["email"]:
        problems.append(RosterProblem(row, "is empty", "email"))
    else:
        try:
            email = validate_email(text["email"], check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            problems.append(RosterProblem(row, f"{text['email']!r} is not a valid address: {exc}", "email"))

    roles = tuple(dict.fromkeys(part.strip().lower() for part in text["role"].split(";") if part.strip()))
    if not roles:
        problems.append(RosterProblem(row, f"is empty (one or more of: {', '.join(ROLES)}, separated by ';')", "role"))
    for role in roles:
        if role not in ROLES:
            problems.append(RosterProblem(row, f"unknown role {role!r} (known: {', '.join(ROLES)}; several separated by ';')", "role"))

    group = text["group"].upper()
    if not group:
        problems.append(RosterProblem(row, "is empty", "group"))
    elif group not in group_codes:
        known = f"known: {', '.join(sorted(group_codes))}" if group_codes else "no groups loaded yet: run `roundtable groups load FILE` first"
        problems.append(RosterProblem(row, f"unknown group {text['group']!r} ({known})", "group"))

    language = text["language"].lower() or "lo"
    if language not in LANGUAGES:
        problems.append(RosterProblem(row, f"unknown language {text['language']!r} (use {' or '.join(LANGUAGES)}; empty means lo)", "language"))

    deputy_for = ""
    if text["deputy_for"]:
        try:
            deputy_for = validate_email(text["deputy_for"], check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            problems.append(RosterProblem(row, f"{text['deputy_for']!r} is not a valid address: {exc}", "deputy_for"))
        else:
            if deputy_for == email:
                problems.append(RosterProblem(row, "a person cannot deputise for themselves", "deputy_for"))

    return RosterEntry(row, text["name"], email, text["organisation"], roles, group, language, text["name_en"],
                       text["title"], deputy_for), problems


def check_roster(session: Session, path: Path) -> RosterReport:
    """Read and check a roster against the groups in the database. Writes nothing."""
    path = Path(path)
    report = RosterReport(path)
    try:
        table = read_table(path)
    except InputFileError as exc:
        report.problems = [RosterProblem(None, line.removeprefix(f"{path}: ")) for line in exc.problems]
        return report

    numbered = [(number, cells) for number, cells in enumerate(table, start=1) if any(str(c).strip() for c in cells)]
    if not numbered:
        report.problems.append(RosterProblem(None, f"file is empty (expected a header: {', '.join(COLUMNS)})"))
        return report
    header_row, header_cells = numbered[0]
    columns, header_problems = _header(header_cells)
    if header_problems:
        report.problems = [RosterProblem(header_row, p.message) for p in header_problems]
        return report
    if len(numbered) == 1:
        report.problems.append(RosterProblem(None, "no member rows (only the header)"))
        return report

    group_codes = set(session.exec(select(WorkingGroup.code)).all())
    width = max(columns.values()) + 1
    first_row_of: dict[str, int] = {}
    for row, cells in numbered[1:]:
        cell_problems = [
            RosterProblem(row, f"a cell beyond the last column {cell}" if isinstance(cell, _BadCell)
                          else f"value {cell!r} beyond the last column")
            for cell in cells[width:] if cell.strip()
        ]
        cells = list(cells) + [""] * (width - len(cells))
        unreadable = {column: cells[i] for column, i in columns.items() if isinstance(cells[i], _BadCell)}
        cell_problems += [RosterProblem(row, str(reason), column) for column, reason in unreadable.items()]
        values = {column: "" if column in unreadable else cells[i] for column, i in columns.items()}
        entry, problems = _check_row(row, values, group_codes)
        # An unreadable cell is reported once, not again as "is empty".
        problems = cell_problems + [p for p in problems if p.column not in unreadable]
        if entry.email in first_row_of:
            problems.append(RosterProblem(row, f"{entry.email} appears again (first on row {first_row_of[entry.email]})", "email"))
        elif entry.email:
            first_row_of[entry.email] = row
        report.problems += problems
        if not problems:
            report.entries.append(entry)
    report.problems += _deputy_problems(session, report.entries)
    return report


DEPUTISED_ROLES = ("chair", "co-chair")


def _deputy_problems(session: Session, entries: list[RosterEntry]) -> list[RosterProblem]:
    """Each deputy_for names a chair or co-chair of the row's group in this file (the file is the truth for
    the groups it names, so a chair only in the database would be ended by this very import)."""
    wanted = {entry.deputy_for for entry in entries if entry.deputy_for}
    if not wanted:
        return []
    chairs = {(entry.email, entry.group) for entry in entries if set(entry.roles) & set(DEPUTISED_ROLES)}
    listed = {entry.email for entry in entries}
    known = listed | set(session.exec(select(Member.email).where(Member.email.in_(sorted(wanted)))).all())
    problems = []
    for entry in entries:
        if not entry.deputy_for or (entry.deputy_for, entry.group) in chairs:
            continue
        if entry.deputy_for not in known:
            message = f"{entry.deputy_for} is not in this file nor in the database"
        else:
            message = (f"{entry.deputy_for} is not chair or co-chair of {entry.group} in this file "
                       "(a deputy stands in for a chair or co-chair of the same group)")
        problems.append(RosterProblem(entry.row, message, "deputy_for"))
    return problems


# ---- importing ------------------------------------------------------------------------


def _open_on(today: date):
    return or_(Membership.ends_on.is_(None), Membership.ends_on > today)


def roster_changes(session: Session, report: RosterReport, today: date) -> RosterChanges:
    """What importing the checked `report` as of `today` would change (see import_roster). Writes nothing."""
    changes = RosterChanges()
    members = {member.email: member for member in session.exec(select(Member)).all()}
    for entry in report.entries:
        member = members.get(entry.email)
        if member is None:
            changes.members_created.append(entry.email)
        elif (member.name, member.organisation, member.language) != (entry.name, entry.organisation, entry.language):
            changes.members_updated.append(entry.email)
    codes = {group.id: group.code for group in session.exec(select(WorkingGroup)).all()}
    named = {entry.group for entry in report.entries}
    wanted = {(entry.email, entry.group, role) for entry in report.entries for role in entry.roles}
    rows = session.exec(select(Membership, Member.email).join(Member, Member.id == Membership.member_id)
                        .where(Membership.group_id.in_([i for i, c in codes.items() if c in named]))).all()
    kept, ended_today, before = set(), set(), []
    for membership, email in sorted(rows, key=lambda r: r[0].id):
        key = (email, codes[membership.group_id], membership.role)
        if membership.ends_on == today:
            ended_today.add(key)
        if membership.ends_on is not None and membership.ends_on <= today:
            continue
        if membership.starts_on is None or membership.starts_on <= today:
            before.append(key)
        if key in wanted and key not in kept:
            kept.add(key)
        else:
            changes.ended.append(key)
    for key in sorted(wanted - kept):
        (changes.reopened if key in ended_today else changes.started).append(key)
    after = [k for k in before if k not in changes.ended] + changes.started + changes.reopened
    if len(changes.ended) > MAX_ENDED_WITHOUT_REPLACE:
        changes.refusals.append(f"it would end {len(changes.ended)} memberships (more than "
                                f"{MAX_ENDED_WITHOUT_REPLACE})")
    for group in sorted(named):
        for label, roles in VITAL_ROLES.items():
            had = any(g == group and role in roles for _, g, role in before)
            if had and not any(g == group and role in roles for _, g, role in after):
                changes.refusals.append(f"it would leave {group} without any {label} ({' or '.join(roles)})")
    return changes


def import_roster(session: Session, path: Path, today: date, *, replace: bool = False) -> ImportSummary:
    """Check the whole file, then create or update its members and memberships. The caller commits.

    Raises RosterInvalid (nothing written) when any row is bad, and RosterRefused (nothing written) when,
    without `replace`, it would end more than MAX_ENDED_WITHOUT_REPLACE memberships or leave a named group
    without a chair or a secretariat.

    Members are matched by email; name, name_en, title, organisation and language are updated.

    Memberships: the file is the truth for the groups it names, as of `today`.
    - a (member, group, role) in the file with an open membership (ends_on None or later
      than today) is kept as it is;
    - one that is not open is started today (starts_on=today), or reopened if it was
      ended today (a correction made the same day leaves no gap);
    - an open membership in a named group that the file no longer lists (a co-chair who
      rotated out, someone who left) ends today (ends_on=today, exclusive); one that had
      not started before today is deleted instead of leaving an empty interval.
    Memberships in groups the file does not name are not touched; members are never deleted.
    """
    report = check_roster(session, path)
    if not report.ok:
        raise RosterInvalid(report)
    changes = roster_changes(session, report, today)
    if changes.refusals and not replace:
        raise RosterRefused(changes)
    summary = ImportSummary(changes=changes)

    members = {member.email: member for member in session.exec(select(Member)).all()}
    for entry in report.entries:
        values = {"name": entry.name, "name_en": entry.name_en, "title": entry.title,
                  "organisation": entry.organisation, "language": entry.language}
        member = members.get(entry.email)
        if member is None:
            member = members[entry.email] = Member(email=entry.email, **values)
            session.add(member)
            summary.members_created += 1
        elif any(getattr(member, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(member, key, value)
            summary.members_updated += 1
        else:
            summary.members_unchanged += 1
    session.flush()

    group_ids = {group.code: group.id for group in session.exec(select(WorkingGroup)).all()}
    named = {group_ids[entry.group] for entry in report.entries}
    wanted = {
        (members[entry.email].id, group_ids[entry.group], role)
        for entry in report.entries for role in entry.roles
    }
    in_named_groups = select(Membership).where(Membership.group_id.in_(named))
    open_now = session.exec(in_named_groups.where(_open_on(today))).all()
    kept = set()
    for membership in sorted(open_now, key=lambda m: m.id):
        key = (membership.member_id, membership.group_id, membership.role)
        if key in wanted and key not in kept:
            kept.add(key)
        elif membership.starts_on is not None and membership.starts_on >= today:
            session.delete(membership)
            summary.memberships_ended += 1
        else:
            membership.ends_on = today
            summary.memberships_ended += 1
    session.flush()

    ended_today = {
        (m.member_id, m.group_id, m.role): m
        for m in session.exec(in_named_groups.where(Membership.ends_on == today)).all()
    }
    for key in sorted(wanted - kept):
        if key in ended_today:
            ended_today[key].ends_on = None
            summary.memberships_reopened += 1
        else:
            member_id, group_id, role = key
            session.add(Membership(member_id=member_id, group_id=group_id, role=role, starts_on=today))
            summary.memberships_started += 1
    session.flush()

    # Whom each person deputises for, on all their open memberships of the group (the file says it per row).
    deputy_for = {(members[entry.email].id, group_ids[entry.group]):
                  members[entry.deputy_for].id if entry.deputy_for else None for entry in report.entries}
    for membership in session.exec(in_named_groups.where(_open_on(today))).all():
        principal = deputy_for.get((membership.member_id, membership.group_id))
        if membership.deputy_for_id != principal:
            membership.deputy_for_id = principal
    session.flush()
    return summary
