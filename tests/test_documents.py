"""The work plan documents (flows/documents.py), opened as a reader would: each activity exactly once,
borders, A4, the header row repeated, the Lao font named, the properties, no personal emails."""

import io
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from docx import Document as DocxDocument
from docx.oxml.ns import qn
from docx.shared import Mm
from openpyxl import load_workbook
from sqlmodel import Session, select

from flows import plan
from flows.documents import LAO_FONT, LAO_FONT_ALT, documents_for, plan_model, render
from flows.plan import ActivityFields
from flows.state import CycleState
from models.tables import Decision, Document, Member
from tests.engine_helpers import local, run, seed_people, start_gswg, step

NOW = local(2020, 1, 20, 10, 0)
ACTIVITIES = [
    ActivityFields(title_lo="ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ", title_en="Seminar on good governance (SDG 16)",
                   start_month=4, group_code="GSWG", lead="MoHA", serves=("sdg16",), meeting=True),
    ActivityFields(title_lo="ສ້າງຂີດຄວາມສາມາດຂອງກອງເລຂາ", title_en="Capacity building of the secretariat",
                   start_month=4, end_month=7, group_code="GSWG", lead="MoHA", budget=12000, budget_source="UNDP"),
    ActivityFields(title_lo="ກອງປະຊຸມວິຊາການກ່ຽວກັບປະມວນກົດໝາຍແພ່ງ", title_en="Thematic workshop on the civil code",
                   start_month=5, group_code="LIO", lead="MoJ", serves=("legal-master-plan",), meeting=True),
    ActivityFields(title_lo="ສູນບໍລິການແບບຈຸດດຽວ", title_en="One Door Service Centre case study", start_month=9,
                   group_code="PSI", lead="MoHA", serves_other="Decree 2019 on service centres"),
]


@pytest.fixture
def made(sqlite_engine):
    with Session(sqlite_engine, expire_on_commit=False) as session:
        people = seed_people(session)
        for n, member in enumerate(people.values()):
            member.organisation = ["ກະຊວງພາຍໃນ", "UNDP", "ກະຊວງຍຸຕິທຳ", ""][n % 4]
        cycle = start_gswg(session)
        run(session, local(2020, 1, 9, 10, 0))
        staff = people["staff@example.org"].id
        for values in ACTIVITIES:
            plan.add_activity(session=session, member_id=staff, cycle_id=cycle.id, now=NOW, channel="cli",
                              values=values)
        session.commit()
        yield session, people, cycle


def _docx(session, cycle, kind="work_plan", now=NOW):
    return render(plan_model(CycleState(session, cycle), kind, cycle.plan_revision, now), "docx", now)


def _cells(table):
    return [cell.text for row in table.rows for cell in row.cells]


def test_docx_each_activity_once_bordered_a4_repeated_header(made):
    session, _people, cycle = made
    document = DocxDocument(io.BytesIO(_docx(session, cycle)))
    section = document.sections[0]
    assert abs(section.page_width - Mm(297)) < Mm(1) and abs(section.page_height - Mm(210)) < Mm(1)  # A4 landscape
    activities, meetings, stakeholders = document.tables
    texts = _cells(activities)
    everything = "\n".join([p.text for p in document.paragraphs] + [t for table in document.tables
                                                                     for t in _cells(table)])
    for values in ACTIVITIES:
        assert texts.count(values.title_lo) == 1 and texts.count(values.title_en) == 1
        assert everything.count(values.title_en) == 1 + values.meeting  # a meeting is listed among the meetings too
    assert len(activities.rows) == 1 + len(ACTIVITIES)
    first = [cell.text for cell in activities.rows[1].cells]  # in month order: April, the SDG 16 seminar first
    assert first[0] == "1" and first[2] == ACTIVITIES[0].title_en and first[4] == "GSWG" and "April" in first[3]
    capacity = next(row for row in activities.rows if row.cells[2].text == ACTIVITIES[1].title_en)
    assert "ເມສາ – ກໍລະກົດ" in capacity.cells[3].text and "April – July" in capacity.cells[3].text
    assert "12,000 USD" in capacity.cells[7].text and "UNDP" in capacity.cells[7].text
    assert "SDG 16" in first[6] and "Decree 2019" in _cells(activities)[-2]
    for table in document.tables:
        borders = table._tbl.tblPr.find(qn("w:tblBorders"))
        assert {child.tag.split("}")[1]: child.get(qn("w:val")) for child in borders} == {
            edge: "single" for edge in ("top", "left", "bottom", "right", "insideH", "insideV")}
        assert table.rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None  # repeats on every page
    assert [row.cells[0].text for row in meetings.rows[1:]] == ["GSWG", "LIO"]
    organisations = [row.cells[1].text for row in stakeholders.rows[1:]]
    assert sorted(organisations) == sorted({"ກະຊວງພາຍໃນ", "UNDP", "ກະຊວງຍຸຕິທຳ"})
    assert "@" not in everything  # no personal emails


def test_docx_title_block_lao_font_and_properties(made):
    session, _people, cycle = made
    content = _docx(session, cycle)
    document = DocxDocument(io.BytesIO(content))
    head = "\n".join(p.text for p in document.paragraphs[:8])
    assert "ແຜນວຽກປະຈຳປີ 2020" in head and "Annual work plan 2020" in head and "Revision: 1" in head
    assert "Governance Sector Working Group (GSWG)" in head and "20 January 2020" in head
    assert "Awaiting approval" in head
    fonts = document.styles["Normal"].element.rPr.find(qn("w:rFonts"))
    assert {fonts.get(qn(f"w:{slot}")) for slot in ("ascii", "hAnsi", "cs", "eastAsia")} == {LAO_FONT}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        font_table = archive.read("word/fontTable.xml").decode()
    assert f'w:name="{LAO_FONT}"' in font_table and f'w:val="{LAO_FONT_ALT}"' in font_table
    props = document.core_properties
    assert props.title == "ແຜນວຽກປະຈຳປີ 2020 — Annual work plan 2020"
    assert props.author == "ກອງເລຂາໜ່ວຍງານດ້ານການປົກຄອງ — GSWG Secretariat" and props.revision == 1
    assert abs(props.created.replace(tzinfo=timezone.utc) - NOW) < timedelta(seconds=1)
    draft = DocxDocument(io.BytesIO(_docx(session, cycle, "draft_plan")))
    assert "Draft annual work plan 2020" in draft.paragraphs[1].text
    assert any("Draft for comments" in p.text for p in draft.paragraphs[:8])


def test_docx_says_approved_on_by_once_approved(made):
    session, people, cycle = made
    approval = step(session, cycle, "approval")
    for email in ("chair@example.org", "cochair.moj@example.org"):
        session.add(Decision(step_id=approval.id, member_id=people[email].id, decision="approve", plan_revision=1,
                             at=local(2020, 3, 9, 11, 0)))
    approval.state, approval.outcome, approval.closed_at = "done", "approved", local(2020, 3, 9, 11, 0)
    session.commit()
    cs = CycleState(session, cycle)
    files = documents_for(cs, "work_plan", 1, local(2020, 3, 10, 9, 0))
    assert [name for name, _, _ in files] == ["GSWG-2020-work-plan-r1-approved.docx",
                                              "GSWG-2020-work-plan-r1-approved.xlsx"]
    text = "\n".join(p.text for p in DocxDocument(io.BytesIO(files[0][2])).paragraphs)
    assert "Approved on 9 March 2020 by" in text and "ຮັບຮອງວັນທີ 9 ມີນາ 2020 ໂດຍ" in text
    assert people["chair@example.org"].name in text


def test_xlsx_each_activity_once_bordered_a4_lao_font_properties(made):
    session, _people, cycle = made
    book = load_workbook(io.BytesIO(render(plan_model(CycleState(session, cycle), "work_plan", 1, NOW), "xlsx", NOW)))
    assert book.sheetnames == ["Activities", "Meetings", "Stakeholders"]
    sheet = book["Activities"]
    values = [cell.value for row in sheet.iter_rows() for cell in row if cell.value]
    for activity in ACTIVITIES:
        assert values.count(activity.title_lo) == 1 and values.count(activity.title_en) == 1
    head = next(r for r in range(1, sheet.max_row + 1) if sheet.cell(r, 1).value == "ລ/ດ\nNo.")
    assert sheet.print_title_rows == f"${head}:${head}"
    for row in sheet.iter_rows(min_row=head, max_row=sheet.max_row, max_col=8):
        for cell in row:
            assert all(getattr(cell.border, side).style == "thin" for side in ("left", "right", "top", "bottom"))
            assert cell.font.name == LAO_FONT
    assert sheet.max_row - head == len(ACTIVITIES)
    for ws in book.worksheets:
        assert int(ws.page_setup.paperSize) == 9 and ws.page_setup.orientation == "landscape"
    assert not any("@" in str(cell.value) for ws in book.worksheets for row in ws.iter_rows() for cell in row
                   if cell.value)
    assert book.properties.creator == "ກອງເລຂາໜ່ວຍງານດ້ານການປົກຄອງ — GSWG Secretariat"
    assert book.properties.title == "ແຜນວຽກປະຈຳປີ 2020 — Annual work plan 2020"
    assert abs(book.properties.created.replace(tzinfo=timezone.utc) - NOW) < timedelta(seconds=1)


def test_documents_are_stored_once_and_an_uploaded_docx_goes_in_place_of_the_generated_one(made):
    session, _people, cycle = made
    cs = CycleState(session, cycle)
    first = documents_for(cs, "draft_plan", 1, NOW)
    again = documents_for(cs, "draft_plan", 1, NOW + timedelta(days=1))
    assert first == again and [name for name, _, _ in first] == ["GSWG-2020-draft-plan-r1.docx",
                                                                 "GSWG-2020-draft-plan-r1.xlsx"]
    session.add(Document(cycle_id=cycle.id, kind="draft_plan", revision=1, source="uploaded", content=b"PK polished",
                         filename="GSWG-2020-draft-plan-r1-edited.docx", media_type=first[0][1], created_at=NOW))
    session.flush()
    names = [name for name, _, _ in documents_for(cs, "draft_plan", 1, NOW)]
    assert names == ["GSWG-2020-draft-plan-r1-edited.docx", "GSWG-2020-draft-plan-r1.xlsx"]
    assert len(session.exec(select(Document).where(Document.source == "generated")).all()) == 2


def test_stakeholders_are_organisations_with_their_groups_and_roles(made):
    session, people, cycle = made
    member = session.exec(select(Member).where(Member.email == "mpi@example.org")).one()
    member.organisation = "Only MPI"
    session.commit()
    model = plan_model(CycleState(session, cycle), "work_plan", 1, datetime(2020, 1, 20, tzinfo=timezone.utc))
    assert ("Only MPI", "GSWG", "ຜູ້ປະສານງານ ກະຊວງແຜນການ ແລະ ການລົງທຶນ MPI focal point") in model.stakeholders
