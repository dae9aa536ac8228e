"""The plan documents: rows added by copying a model row are the XML python-docx itself writes."""

import io
import random

from docx import Document
from lxml import etree

from flows.documents import add_rows

PIECES = ["ສໍາມະນາ", "ການປົກຄອງ", "SDG 16", "workshop", "2020", "GSWG", "ກະຊວງ", "x", "&", "<b>", "é"]
ODD = ["", " leading", "trailing ", "tab\there", "line\nbreak", "cr\rhere", "\u00a0nbsp", "a  b"]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice(ODD)
    return " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))


def table_xml(fill) -> bytes:
    document = Document()
    table = document.add_table(rows=1, cols=3)
    fill(table)
    return etree.tostring(table._tbl)


def by_cell_text(rows):
    def fill(table):
        for texts in rows:
            for cell, text in zip(table.add_row().cells, texts):
                cell.text = text
    return fill


def test_add_rows_writes_what_cell_text_writes():
    rng = random.Random(5)
    for _ in range(30):
        rows = [tuple(random_text(rng) for _ in range(3)) for _ in range(rng.randint(0, 40))]
        assert table_xml(lambda table: add_rows(table, rows)) == table_xml(by_cell_text(rows))


def test_a_plan_with_hundreds_of_rows_reads_back():
    rows = [("2020", f"ສໍາມະນາ {n} — Seminar {n}", "GSWG") for n in range(300)]
    document = Document()
    add_rows(document.add_table(rows=1, cols=3), rows)
    buffer = io.BytesIO()
    document.save(buffer)
    table = Document(io.BytesIO(buffer.getvalue())).tables[0]
    assert len(table.rows) == 301
    assert [cell.text for cell in table.rows[300].cells] == ["2020", "ສໍາມະນາ 299 — Seminar 299", "GSWG"]
