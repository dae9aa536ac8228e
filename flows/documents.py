"""The plan documents the cycle sends: the draft plan (comment round) and the work plan (approvers, MPI).

In the guideline's spirit (seeds/004: priority programmes tied to the NSEDP, the dates of the group's
and sub-groups' meetings, the stakeholders): a title block (group, plan year, revision, date, and
"approved on … by …" once approved), one bordered table of activities whose header row repeats on every
page, the year's meetings per group, the stakeholder organisations from the roster (no personal
details). DOCX (python-docx) and XLSX (openpyxl), A4 landscape, a Lao font named in the styles.

Each is made once per cycle, kind, revision and format, stored with its checksum, then reused; a DOCX
the secretariat uploaded for a revision goes out in place of the generated one (which stays stored).
"""

import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from babel.dates import format_date
from docx import Document as DocxDocument
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from lxml import etree
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from sqlmodel import select

from flows.state import CycleState
from models.audience import ROLE_TITLES, open_on
from models.tables import Document, Member, Membership, PlanActivity, WorkingGroup

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = {"docx": DOCX, "xlsx": XLSX}
LAO_FONT, LAO_FONT_ALT = "Phetsarath OT", "Saysettha OT"  # Debian's fonts-lao; the government's other font
TITLES = {"draft_plan": ("ຮ່າງແຜນວຽກປະຈຳປີ", "Draft annual work plan"),
          "work_plan": ("ແຜນວຽກປະຈຳປີ", "Annual work plan")}
COLUMNS = [("ລ/ດ", "No."), ("ກິດຈະກຳ", "Activity (Lao)"), ("ກິດຈະກຳ (ພາສາອັງກິດ)", "Activity (English)"),
           ("ໄລຍະເວລາ", "Months"), ("ໜ່ວຍງານຮັບຜິດຊອບ", "Responsible\ngroup"), ("ພາກສ່ວນນຳພາ", "Lead"),
           ("ຮັບໃຊ້", "What it serves"), ("ງົບປະມານ", "Budget")]
WIDTHS_MM = [10, 57, 52, 22, 22, 24, 60, 20]  # 267 mm: A4 landscape less 15 mm margins
XLSX_WIDTHS = [6, 48, 44, 18, 14, 20, 36, 16]


@dataclass
class PlanModel:
    """Everything a plan document shows, in the order it shows it (both formats read this)."""

    kind: str
    year: int
    revision: int
    group_code: str
    group_lo: str
    group_en: str
    made_on: date
    title_lo: str
    title_en: str
    author: str
    subgroups: list[tuple[str, str, str]] = field(default_factory=list)  # (code, lo, en)
    approved: str = ""  # "ຮັບຮອງວັນທີ … ໂດຍ … — Approved on … by …" ("" = not yet)
    rows: list[list[str]] = field(default_factory=list)  # the activity table, one list of cell texts each
    activity_ids: list[int] = field(default_factory=list)
    meetings: list[tuple[str, str, str, str]] = field(default_factory=list)  # (group, months, lo, en)
    stakeholders: list[tuple[str, str, str]] = field(default_factory=list)  # (organisation, groups, roles)

    @property
    def title(self) -> str:
        return f"{self.title_lo} {self.year} — {self.title_en} {self.year}"


# ----------------------------------------------------------------------------- what the plan says


def month_name(month: int, lang: str) -> str:
    return format_date(date(2000, month, 1), "MMMM", locale=lang)


def month_span(start: int, end: int, lang: str) -> str:
    """'April – July' (one month: 'April')."""
    return month_name(start, lang) if start == end else f"{month_name(start, lang)} – {month_name(end, lang)}"


def months_text(start: int, end: int) -> str:
    """'ເມສາ – ກໍລະກົດ\nApril – July' (one month: 'ເມສາ\nApril')."""
    return f"{month_span(start, end, 'lo')}\n{month_span(start, end, 'en')}"


def _day(d: date, lang: str) -> str:
    return format_date(d, "d MMMM y", locale=lang)


def plan_model(cs: CycleState, kind: str, revision: int, now: datetime) -> PlanModel:
    # Imported here: flows.plan imports flows.cycle, which imports the step handlers, which import this module.
    from flows.plan import activities, approved, serves_label

    group = cs.group
    today = now.astimezone(cs.zone).date()
    title_lo, title_en = TITLES.get(kind, (kind, kind))
    groups = {g.code: g for g in cs.session.exec(select(WorkingGroup).where(WorkingGroup.code.in_(cs.group_codes)))}
    model = PlanModel(kind=kind, year=cs.cycle.year, revision=revision, group_code=group.code, group_lo=group.name_lo,
                      group_en=group.name_en, made_on=today, title_lo=title_lo, title_en=title_en,
                      author=f"ກອງເລຂາ{group.name_lo} — {group.code} Secretariat",
                      subgroups=[(c, groups[c].name_lo, groups[c].name_en) for c in cs.group_codes[1:] if c in groups])
    if kind == "work_plan":
        done = approved(cs.session, cs.cycle)
        if done and done["at"]:
            on = done["at"].astimezone(cs.zone).date()
            model.approved = (f"ຮັບຮອງວັນທີ {_day(on, 'lo')} ໂດຍ {', '.join(m.name for m in done['by'])} — "
                              f"Approved on {_day(on, 'en')} by {', '.join(m.name_en or m.name for m in done['by'])}")
    order = {code: n for n, code in enumerate(cs.group_codes)}
    plan: list[PlanActivity] = sorted(activities(cs.session, cs.cycle.id), key=lambda a: (
        a.start_month, a.end_month, order.get(a.group_code, 99), a.position))
    for number, activity in enumerate(plan, start=1):
        serves_lo = [serves_label(key, "lo") for key in activity.serves] + \
            ([activity.serves_other] if activity.serves_other else [])
        serves_en = [serves_label(key, "en") for key in activity.serves] + \
            ([activity.serves_other] if activity.serves_other else [])
        serves = "\n".join(p for p in ("; ".join(serves_lo), "; ".join(serves_en)) if p)
        budget = ""
        if activity.budget is not None:
            budget = f"{activity.budget:,.0f} {activity.currency}"
        if activity.budget_source:
            budget = f"{budget}\n{activity.budget_source}".strip()
        model.rows.append([str(number), activity.title_lo, activity.title_en,
                           months_text(activity.start_month, activity.end_month), activity.group_code,
                           activity.lead, serves, budget])
        model.activity_ids.append(activity.id)
        if activity.meeting:
            model.meetings.append((activity.group_code, months_text(activity.start_month, activity.end_month),
                                   activity.title_lo, activity.title_en))
    model.meetings.sort(key=lambda m: order.get(m[0], 99))  # by group, each in month order (stable)
    model.stakeholders = stakeholders(cs, today)
    return model


def stakeholders(cs: CycleState, on: date) -> list[tuple[str, str, str]]:
    """(organisation, groups, roles) of everyone in the cycle's groups on `on`: organisations only."""
    rows = cs.session.exec(
        select(Member.organisation, WorkingGroup.code, Membership.role)
        .join(Membership, Membership.member_id == Member.id).join(WorkingGroup, WorkingGroup.id == Membership.group_id)
        .where(WorkingGroup.code.in_(cs.group_codes))
        .where(*open_on(on))).all()
    order = {code: n for n, code in enumerate(cs.group_codes)}
    roles_order = list(ROLE_TITLES)
    seen: dict[str, tuple[set, set]] = {}
    for organisation, code, role in rows:
        name = (organisation or "").strip()
        if name:
            groups, roles = seen.setdefault(name, (set(), set()))
            groups.add(code)
            roles.add(role)
    out = []
    for name, (groups, roles) in seen.items():
        ordered = sorted(roles, key=lambda r: roles_order.index(r) if r in roles_order else 99)
        out.append((name, ", ".join(sorted(groups, key=lambda c: order.get(c, 99))),
                    "; ".join(f"{ROLE_TITLES[r][0]} {ROLE_TITLES[r][1]}" if r in ROLE_TITLES else r for r in ordered)))
    return sorted(out, key=lambda o: (min(order.get(c, 99) for c in o[1].split(", ")), o[0]))


# ----------------------------------------------------------------------------- stored documents


def filename_for(cs: CycleState, kind: str, revision: int, fmt: str) -> str:
    return f"{cs.group.code}-{cs.cycle.year}-{kind.replace('_', '-')}-r{revision}.{fmt}"


def documents_for(cs: CycleState, kind: str, revision: int, now: datetime) -> list[tuple[str, str, bytes]]:
    """[(filename, media type, bytes)] of the cycle's document `kind` at `revision`: the DOCX (the
    uploaded one when there is one) and the XLSX."""
    from flows.plan import approved  # flows.plan imports flows.cycle, which imports the step handlers

    rows = cs.session.exec(select(Document).where(Document.cycle_id == cs.cycle.id, Document.kind == kind,
                                                  Document.revision == revision)).all()
    # The work plan MPI receives says when and by whom it was approved: made anew once it is.
    stamp = "-approved" if kind == "work_plan" and approved(cs.session, cs.cycle) else ""
    out, model = [], None
    for fmt, media_type in FORMATS.items():
        filename = filename_for(cs, kind, revision, fmt).replace(f".{fmt}", f"{stamp}.{fmt}")
        row = max((r for r in rows if r.media_type == media_type and r.source == "uploaded"), default=None,
                  key=lambda r: r.id) or \
            next((r for r in rows if r.filename == filename and r.source == "generated"), None)
        if row is None:
            model = model or plan_model(cs, kind, revision, now)  # one model for both formats
            content = render(model, fmt, now)
            row = Document(cycle_id=cs.cycle.id, kind=kind, revision=revision, media_type=media_type, content=content,
                           checksum=hashlib.sha256(content).hexdigest(), created_at=now, filename=filename)
            cs.session.add(row)
            cs.session.flush()
        out.append((row.filename, row.media_type, row.content))
    return out


def render(model: PlanModel, fmt: str, now: datetime) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (docx or xlsx)")
    return work_plan_docx(model, now) if fmt == "docx" else work_plan_xlsx(model, now)


# ----------------------------------------------------------------------------- DOCX


def _set_fonts(rpr_parent, size: float | None = None) -> None:
    """Name the Lao font for every script slot (Lao is a complex script in Word)."""
    rpr = rpr_parent.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for slot in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(slot), LAO_FONT)
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:bidi"), "lo-LA")
    if size:
        for tag in ("w:sz", "w:szCs"):
            for old in rpr.findall(qn(tag)):
                rpr.remove(old)
            rpr.append(_element(tag, val=str(int(size * 2))))


def _font_table(doc) -> None:
    """Saysettha OT as the alternative to Phetsarath OT in the font table (where the first is missing)."""
    part = next((p for p in doc.part.package.iter_parts() if str(p.partname) == "/word/fontTable.xml"), None)
    if part is None:
        return
    root = etree.fromstring(part.blob)
    ns = root.nsmap.get("w") or "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    w = f"{{{ns}}}"
    for name, alt in ((LAO_FONT, LAO_FONT_ALT), (LAO_FONT_ALT, LAO_FONT)):
        font = etree.SubElement(root, f"{w}font", {f"{w}name": name})
        etree.SubElement(font, f"{w}altName", {f"{w}val": alt})
        etree.SubElement(font, f"{w}charset", {f"{w}val": "00"})
        etree.SubElement(font, f"{w}family", {f"{w}val": "auto"})
        etree.SubElement(font, f"{w}pitch", {f"{w}val": "variable"})
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)  # noqa: SLF001


def _borders(table) -> None:
    tbl_pr = table._tbl.tblPr  # noqa: SLF001
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        for key, value in (("val", "single"), ("sz", "4"), ("space", "0"), ("color", "000000")):
            element.set(qn(f"w:{key}"), value)
        borders.append(element)
    tbl_pr.append(borders)


def _row_flags(row, header: bool = False) -> None:
    tr_pr = row._tr.get_or_add_trPr()  # noqa: SLF001
    tr_pr.append(OxmlElement("w:cantSplit"))
    if header:
        tr_pr.append(OxmlElement("w:tblHeader"))  # repeated at the top of every page


def _shade(cell, fill: str) -> None:
    shading = OxmlElement("w:shd")
    shading.set(qn("w:val"), "clear")
    shading.set(qn("w:color"), "auto")
    shading.set(qn("w:fill"), fill)
    cell._tc.get_or_add_tcPr().append(shading)  # noqa: SLF001


def _cell(cell, text: str, *, bold: bool = False, size: float = 8.5) -> None:
    lines = text.split("\n") if text else [""]
    paragraph = cell.paragraphs[0]
    for index, line in enumerate(lines):
        if index:
            paragraph = cell.add_paragraph()
        paragraph.paragraph_format.space_after = Pt(0)
        run = paragraph.add_run(line)
        _size(run._r, size, bold)  # noqa: SLF001


def _grid(doc, header: list[str], rows: list[list[str]], widths_mm: list[float]):
    table = doc.add_table(rows=1, cols=len(header))
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    _borders(table)
    for cell, text in zip(table.rows[0].cells, header):
        _cell(cell, text, bold=True)
        _shade(cell, "D9E2F3")
    _row_flags(table.rows[0], header=True)
    for texts in rows:
        row = table.add_row()
        _row_flags(row)
        for cell, text in zip(row.cells, texts):
            _cell(cell, text)
    # LibreOffice and Word lay a fixed table out by its grid: the cells' widths alone are not enough.
    table._tbl.tblPr.append(_element("w:tblLayout", type="fixed"))  # noqa: SLF001
    for grid_col, width in zip(table._tbl.tblGrid.findall(qn("w:gridCol")), widths_mm):  # noqa: SLF001
        grid_col.set(qn("w:w"), str(int(Mm(width).twips)))
    for index, width in enumerate(widths_mm):
        for cell in table.columns[index].cells:
            cell.width = Mm(width)
    return table


def _element(tag: str, **attributes: str):
    element = OxmlElement(tag)
    for key, value in attributes.items():
        element.set(qn(f"w:{key}"), value)
    return element


def _size(r, size: float, bold: bool = False) -> None:
    """Size (and weight) for Latin and complex scripts alike: Lao text takes w:szCs and w:bCs."""
    rpr = r.get_or_add_rPr()
    if bold:
        rpr.append(_element("w:b"))
        rpr.append(_element("w:bCs"))
    rpr.append(_element("w:sz", val=str(int(size * 2))))
    rpr.append(_element("w:szCs", val=str(int(size * 2))))


def work_plan_docx(model: PlanModel, now: datetime) -> bytes:
    doc = DocxDocument()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Mm(297), Mm(210)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(15))
    section.footer_distance = Mm(7)
    for name in ("Normal", "Title", "Heading 1", "Heading 2"):
        style = doc.styles[name]
        _set_fonts(style.element)
        if name != "Normal":
            style.font.color.rgb = None
    for name, size in (("Normal", 10), ("Heading 1", 15), ("Heading 2", 12)):
        _set_fonts(doc.styles[name].element, size=size)
    _font_table(doc)
    footer = section.footer.paragraphs[0]
    footer.text = f"{model.group_code} · {model.year} · ສະບັບທີ {model.revision} Revision {model.revision}"
    _size(footer.runs[0]._r, 8)  # noqa: SLF001

    doc.add_heading(f"{model.title_lo} {model.year}", level=1)
    doc.add_heading(f"{model.title_en} {model.year}", level=2)
    block = [f"{model.group_lo} — {model.group_en} ({model.group_code})"]
    if model.subgroups:
        block.append("ແລະ " + ", ".join(lo for _c, lo, _e in model.subgroups) + " — and the sub-groups "
                     + ", ".join(f"{en} ({code})" for code, _l, en in model.subgroups))
    block.append(f"ປີແຜນ Plan year: {model.year}    ສະບັບທີ Revision: {model.revision}    "
                 f"ວັນທີ Date: {_day(model.made_on, 'lo')} — {_day(model.made_on, 'en')}")
    block.append(model.approved or ("ຮ່າງ ເພື່ອຂໍຄໍາເຫັນ — Draft for comments" if model.kind == "draft_plan"
                                    else "ລໍຖ້າການຮັບຮອງ — Awaiting approval by the chair and co-chairs"))
    for line in block:
        paragraph = doc.add_paragraph(line)
        paragraph.paragraph_format.space_after = Pt(2)
    doc.add_heading("1. ກິດຈະກຳ — Activities", level=2)
    _grid(doc, [f"{lo}\n{en}" for lo, en in COLUMNS], model.rows, WIDTHS_MM)
    doc.add_heading(f"2. ກອງປະຊຸມໃນປີ {model.year} — Meetings in {model.year}", level=2)
    if model.meetings:
        _grid(doc, ["ໜ່ວຍງານ\nGroup", "ເດືອນ\nMonth", "ກອງປະຊຸມ\nMeeting"],
              [[g, m, f"{lo}\n{en}".strip()] for g, m, lo, en in model.meetings], [25, 35, 207])
    else:
        doc.add_paragraph("ຍັງບໍ່ມີ — None planned yet")
    doc.add_heading("3. ພາກສ່ວນກ່ຽວຂ້ອງ — Stakeholders", level=2)
    _grid(doc, ["ລ/ດ\nNo.", "ອົງການ\nOrganisation", "ໜ່ວຍງານ\nGroups", "ບົດບາດ\nRoles"],
          [[str(n), name, groups, roles] for n, (name, groups, roles) in enumerate(model.stakeholders, start=1)],
          [12, 110, 40, 105])

    props = doc.core_properties
    props.title, props.author, props.last_modified_by = model.title, model.author, model.author
    props.subject = f"{model.group_en} — {model.title_en} {model.year}"
    props.created = props.modified = _utc_naive(now)
    props.revision = model.revision
    props.language = "lo-LA"
    props.comments = ""
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def _utc_naive(now: datetime) -> datetime:
    """python-docx and openpyxl write W3CDTF with a Z: they want the UTC time without a zone."""
    return now.astimezone(timezone.utc).replace(tzinfo=None)


# ----------------------------------------------------------------------------- XLSX


def _lines(text: str, width: int) -> int:
    """How many lines `text` wraps to in a column `width` characters wide (Lao marks take no width)."""
    def spacing(line: str) -> int:
        return sum(1 for ch in line if not ("\u0eb1" <= ch <= "\u0ecd" and ch not in "\u0eb2\u0eb3\u0ebd"))
    return sum(max(1, -(-spacing(line) // max(width - 1, 1))) for line in text.split("\n"))


def work_plan_xlsx(model: PlanModel, now: datetime) -> bytes:
    wb = Workbook()
    normal = wb._named_styles["Normal"]  # noqa: SLF001 - openpyxl's way to set the workbook's default font
    normal.font = Font(name=LAO_FONT, size=10)
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    head_fill = PatternFill("solid", fgColor="D9E2F3")
    wrap = Alignment(wrap_text=True, vertical="top")
    lao = Font(name=LAO_FONT, size=10)
    bold = Font(name=LAO_FONT, size=10, bold=True)

    def sheet(ws, title_lines: list[str], header: list[str], rows: list[list[str]], widths: list[int]) -> None:
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        for line in title_lines:
            ws.append([line])
            ws.cell(ws.max_row, 1).font = Font(name=LAO_FONT, size=12 if ws.max_row == 1 else 10, bold=ws.max_row == 1)
        ws.append([])  # an empty row between the title and the table
        head_row = len(title_lines) + 2
        ws.append(header)
        for row in rows:
            ws.append(row)
        for r in range(head_row, ws.max_row + 1):
            for c in range(1, len(header) + 1):
                cell = ws.cell(r, c)
                cell.border, cell.alignment = border, wrap
                cell.font = bold if r == head_row else lao
                if r == head_row:
                    cell.fill = head_fill
        for index, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        # Spreadsheet programs keep a row's default height on opening: size each row for its wrapped lines.
        for r in range(head_row, ws.max_row + 1):
            lines = max(_lines(str(ws.cell(r, c).value or ""), widths[c - 1]) for c in range(1, len(header) + 1))
            ws.row_dimensions[r].height = 15 * max(lines, 1) + 6
        ws.print_title_rows = f"{head_row}:{head_row}"  # the header row repeats on every printed page
        ws.freeze_panes = ws.cell(head_row + 1, 1)

    title = [f"{model.title_lo} {model.year} — {model.title_en} {model.year}",
             f"{model.group_lo} — {model.group_en} ({model.group_code})",
             f"ປີແຜນ Plan year: {model.year} · ສະບັບທີ Revision: {model.revision} · "
             f"ວັນທີ Date: {_day(model.made_on, 'lo')} — {_day(model.made_on, 'en')}",
             model.approved or ("ຮ່າງ ເພື່ອຂໍຄໍາເຫັນ — Draft for comments" if model.kind == "draft_plan"
                                else "ລໍຖ້າການຮັບຮອງ — Awaiting approval by the chair and co-chairs")]
    ws = wb.active
    ws.title = "Activities"
    sheet(ws, title, [f"{lo}\n{en}" for lo, en in COLUMNS], model.rows, XLSX_WIDTHS)
    sheet(wb.create_sheet("Meetings"), [f"ກອງປະຊຸມໃນປີ {model.year} — Meetings in {model.year}"],
          ["ໜ່ວຍງານ\nGroup", "ເດືອນ\nMonth", "ກອງປະຊຸມ\nMeeting (Lao)", "Meeting (English)"],
          [list(m) for m in model.meetings], [12, 18, 70, 60])
    sheet(wb.create_sheet("Stakeholders"), ["ພາກສ່ວນກ່ຽວຂ້ອງ — Stakeholders"],
          ["ລ/ດ\nNo.", "ອົງການ\nOrganisation", "ໜ່ວຍງານ\nGroups", "ບົດບາດ\nRoles"],
          [[str(n), *s] for n, s in enumerate(model.stakeholders, start=1)], [6, 50, 18, 60])
    wb.properties.title, wb.properties.creator = model.title, model.author
    wb.properties.lastModifiedBy = model.author
    wb.properties.created = wb.properties.modified = _utc_naive(now)
    wb.properties.subject = f"{model.group_en} — {model.title_en} {model.year}"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
