"""The plan documents the cycle sends: the draft plan (comment round) and the work plan (approval, MPI).

A document is made once per cycle, kind and plan revision (python-docx, following the guideline's
work-plan template: period, activity, responsible), stored with its checksum, then reused.
"""

import hashlib
import io
from datetime import datetime

from docx import Document as DocxDocument
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
    for suggestion in _suggestions(cs):
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = f"{cs.cycle.year}", suggestion, cs.group.code
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()
