"""The plan documents the cycle sends: the draft plan (comment round) and the work plan (approval, MPI).

A document is made once per cycle, kind and plan revision (python-docx, following the guideline's
work-plan template: period, activity, responsible), stored with its checksum, then reused.
"""

import hashlib
import io
from copy import deepcopy
from datetime import datetime

from docx import Document as DocxDocument
from docx.oxml.ns import qn
from docx.table import Table
from sqlmodel import select

from flows.state import CycleState
from models.tables import Document, Response, Step

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TITLES = {"draft_plan": ("ຮ່າງແຜນ", "Draft plan"), "work_plan": ("ແຜນວຽກປະຈຳປີ", "Annual work plan")}


def document_for(cs: CycleState, kind: str, revision: int, now: datetime) -> tuple[str, str, bytes]:
    """(filename, media type, bytes) of the cycle's document `kind` at plan `revision`."""
    row = cs.session.exec(select(Document).where(Document.cycle_id == cs.cycle.id, Document.kind == kind,
                                                 Document.revision == revision)).first()
    if row is None:
        content = _work_plan_docx(cs, kind, revision)
        row = Document(cycle_id=cs.cycle.id, kind=kind, revision=revision, media_type=DOCX, content=content,
                       checksum=hashlib.sha256(content).hexdigest(), created_at=now,
                       filename=f"{cs.group.code}-{cs.cycle.year}-{kind.replace('_', '-')}-r{revision}.docx")
        cs.session.add(row)
        cs.session.flush()
    return row.filename, row.media_type, row.content


def _suggestions(cs: CycleState) -> list[str]:
    rows = cs.session.exec(select(Response.body).join(Step, Step.id == Response.step_id)
                           .where(Step.cycle_id == cs.cycle.id, Response.kind == "suggestion")
                           .order_by(Response.at, Response.id)).all()
    return [body for body in rows if body.strip()]


def _work_plan_docx(cs: CycleState, kind: str, revision: int) -> bytes:
    title_lo, title_en = TITLES.get(kind, (kind, kind))
    doc = DocxDocument()
    doc.add_heading(f"{title_lo} {cs.cycle.year} — {title_en} {cs.cycle.year}", level=1)
    doc.add_paragraph(f"{cs.group.name_lo} — {cs.group.name_en}")
    doc.add_paragraph(f"ສະບັບທີ {revision} — Revision {revision}")
    table = doc.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("ໄລຍະເວລາ Period", "ກິດຈະກຳ Activity", "ຜູ້ຮັບຜິດຊອບ Responsible")):
        cell.text = text
    add_rows(table, [(f"{cs.cycle.year}", suggestion, cs.group.code) for suggestion in _suggestions(cs)])
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def add_rows(table: Table, rows: list[tuple[str, ...]]) -> None:
    """Append rows of cell texts to a python-docx table, as `cell.text = ...` would.

    python-docx builds each row element by element (~0.3 ms a row, and a plan has hundreds of
    suggestions), so a row of plain texts is a copy of the last such row with its texts replaced.
    A text python-docx writes differently (empty, tabs, line breaks, edge spaces) goes its way."""
    model = None
    for texts in rows:
        if model is not None and all(_plain(text) for text in texts):
            row = deepcopy(model)
            for element, text in zip(row.iter(qn("w:t")), texts):
                element.text = text
            table._tbl.append(row)  # noqa: SLF001 - python-docx has no public way to add an element
            continue
        added = table.add_row()
        for cell, text in zip(added.cells, texts):
            cell.text = text
        if all(_plain(text) for text in texts):
            model = added._tr  # noqa: SLF001


def _plain(text: str) -> bool:
    """A text python-docx writes as a single <w:t> without xml:space (see docx.oxml.text.run)."""
    return bool(text) and text == text.strip() and not any(c in text for c in "\t\r\n")
