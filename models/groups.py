"""Working groups declared in YAML (examples/groups.yaml): schema, validation and loading.

    groups:
      - code: GSWG
        name_lo: ໜ່ວຍງານດ້ານການປົກຄອງ
        name_en: Governance Sector Working Group
        timezone: Asia/Vientiane        # optional, this is the default
        closed_days: [2019-11-12]       # decreed days off the holidays package does not know
      - code: PSI
        parent: GSWG
        ...

Loading again updates groups by code. Everything is validated before anything is written:
on any error nothing is written and every problem is reported as `FILE: FIELD PATH: reason`.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session, select

from models.settings import known_zone
from models.strict_yaml import strict_loader
from models.tables import WorkingGroup

CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InputFileError(Exception):
    """A file that cannot be used; `problems` lists every reason, each naming the file."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def read_input_bytes(path: Path) -> bytes:
    """The bytes of a user-supplied file, or an InputFileError that says plainly what is wrong."""
    if not path.exists():
        raise InputFileError([f"{path}: no such file"])
    if path.is_dir():
        raise InputFileError([f"{path}: is a directory, not a file"])
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc


def decode_utf8(path: Path, data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); other encodings are refused with the offending byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputFileError([f"{path}: file is UTF-16; save it as UTF-8 (in Excel: 'CSV UTF-8')"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputFileError(
            [f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"]
        ) from exc


def control_character(text: str) -> Optional[str]:
    """The first control, format (zero-width, bidi) or line-separator character in text, named."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"
    return None


def _text(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


class GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    name_lo: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    parent: Optional[str] = None
    timezone: str = "Asia/Vientiane"
    closed_days: list[date] = Field(default_factory=list)

    @field_validator("code", "name_lo", "name_en", "parent", "timezone", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return _text(value) if isinstance(value, str) else value

    @field_validator("name_lo", "name_en")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        if found := control_character(value):
            raise ValueError(f"contains {found}")
        return value

    @field_validator("code", "parent")
    @classmethod
    def _code_shape(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not CODE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a group code (capital letters, digits, '-' or '_'; at most 32)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("closed_days", mode="before")
    @classmethod
    def _iso_dates_only(cls, value: Any) -> Any:
        # YAML turns 2019-11-12 into a date already; a string must be exactly YYYY-MM-DD,
        # and numbers are refused (pydantic would read them as Unix timestamps).
        if value is None:
            return []
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str) and ISO_DATE.match(item.strip()):
                    continue
                if isinstance(item, date) and not hasattr(item, "hour"):
                    continue
                raise ValueError(f"{item!r} is not an ISO date (YYYY-MM-DD)")
        return value

    @field_validator("closed_days")
    @classmethod
    def _sorted_unique(cls, value: list[date]) -> list[date]:
        return sorted(set(value))


class GroupsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[GroupSpec] = Field(min_length=1)


@dataclass
class GroupsSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_groups(path: Path) -> list[GroupSpec]:
    """Read and validate a groups file on its own (no database). Raises InputFileError."""
    path = Path(path)
    text = decode_utf8(path, read_input_bytes(path))
    try:
        data = yaml.load(text, Loader=strict_loader(dates_as_text=True))  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise InputFileError([f"{path}: {where}not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from exc
    if data is None:
        raise InputFileError([f"{path}: file is empty (expected a 'groups:' list)"])
    if not isinstance(data, dict):
        raise InputFileError([f"{path}: expected a mapping with a 'groups:' list at the top"])
    try:
        specs = GroupsFile.model_validate(data).groups
    except ValidationError as exc:
        raise InputFileError(
            [f"{path}: {_field_path(err['loc'])}: {_plain(err)}" for err in exc.errors()]
        ) from exc
    problems = []
    first_index: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec.code in first_index:
            problems.append(f"{path}: groups[{index}].code: duplicate code {spec.code!r} (first at groups[{first_index[spec.code]}])")
        else:
            first_index[spec.code] = index
    if problems:
        raise InputFileError(problems)
    return specs


def _plain(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        allowed = GroupSpec.model_fields if len(err["loc"]) > 1 else GroupsFile.model_fields
        return f"unknown key (allowed: {', '.join(allowed)})"
    return err["msg"].removeprefix("Value error, ")


def _parent_problems(path: Path, specs: list[GroupSpec], existing: dict[str, WorkingGroup]) -> list[str]:
    """Unknown parents and loops, checked on the hierarchy as it will be after loading."""
    by_id = {group.id: code for code, group in existing.items()}
    parent_of = {code: by_id.get(group.parent_id) for code, group in existing.items()}
    parent_of.update({spec.code: spec.parent for spec in specs})
    known = sorted(parent_of)
    problems = []
    for index, spec in enumerate(specs):
        if spec.parent is not None and spec.parent not in parent_of:
            problems.append(f"{path}: groups[{index}].parent: unknown group {spec.parent!r} (known: {', '.join(known)})")
    if problems:
        return problems
    for index, spec in enumerate(specs):
        chain, code = [spec.code], spec.parent
        while code is not None:
            chain.append(code)
            if code == spec.code:
                problems.append(f"{path}: groups[{index}].parent: parent loop {' -> '.join(chain)}")
                break
            if len(chain) > len(parent_of) + 1:
                break  # a loop further up; it is reported at its own members
            code = parent_of.get(code)
    return problems


def load_groups(session: Session, path: Path) -> GroupsSummary:
    """Create or update (by code) the groups of a YAML file. The caller commits.

    Raises InputFileError listing every problem before anything is written.
    """
    path = Path(path)
    specs = parse_groups(path)
    existing = {group.code: group for group in session.exec(select(WorkingGroup)).all()}
    problems = _parent_problems(path, specs, existing)
    if problems:
        raise InputFileError(problems)

    summary = GroupsSummary()
    rows: dict[str, WorkingGroup] = dict(existing)
    for spec in specs:
        values = {
            "name_lo": spec.name_lo,
            "name_en": spec.name_en,
            "timezone": spec.timezone,
            "closed_days": [day.isoformat() for day in spec.closed_days],
        }
        group = rows.get(spec.code)
        if group is None:
            group = rows[spec.code] = WorkingGroup(code=spec.code, **values)
            session.add(group)
            summary.created.append(spec.code)
        else:
            changed = any(getattr(group, key) != value for key, value in values.items())
            for key, value in values.items():
                setattr(group, key, value)
            (summary.updated if changed else summary.unchanged).append(spec.code)
    session.flush()  # new groups get their ids before parents are linked
    for spec in specs:
        group = rows[spec.code]
        parent_id = rows[spec.parent].id if spec.parent else None
        if group.parent_id != parent_id:
            group.parent_id = parent_id
            if spec.code in summary.unchanged:
                summary.unchanged.remove(spec.code)
                summary.updated.append(spec.code)
    session.flush()
    return summary
