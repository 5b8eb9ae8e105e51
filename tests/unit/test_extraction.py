"""Extraction and cleaning on real PDFs rendered by the sample builder."""

import re
from pathlib import Path

import pytest

from wbl_assistant.extraction import HYPHEN_BREAK, Block, DocumentError, _resolve_hyphens, read_pdf

LONG = " ".join(["Coordinators review every placement before students begin their work."] * 4)

MARKDOWN = f"""
# Planning a placement

{LONG}

## Roles

Each partner has a part:

- The employer supervises the student and provides a safe site.
- The school handles paperwork and visits the site.

Table: Who does what
| Role | Task |
|---|---|
| Employer | Supervises the student on site and completes the evaluations at the end |
| School | Handles the paperwork |

<!-- pagebreak -->
# Second chapter

Work-based learning is the subject of this chapter.
Internationalization of apprenticeship responsibilities requires interdisciplinary accountability
for multidimensional characteristics of organizational undertakings, especially where work-based learning
meets internationalization and organizational characteristics again and again.
"""


@pytest.fixture
def document(tmp_path: Path, make_pdf):
    return read_pdf(make_pdf(MARKDOWN, tmp_path / "guide.pdf", title="Placement Guide", publisher="Board"))


def test_running_header_footer_and_page_numbers_are_dropped(document):
    text = " ".join(b.text for b in document.blocks)
    assert "Page 1" not in text and "Page 2" not in text
    assert "for wbl-assistant" not in text


def test_headings_have_levels_and_title_is_not_a_section(document):
    headings = [(b.level, b.text) for b in document.blocks if b.kind == "heading"]
    assert (0, "Placement Guide") in headings
    assert (1, "Planning a placement") in headings
    assert (2, "Roles") in headings
    assert (1, "Second chapter") in headings


def test_list_items_and_table_rows_are_recovered(document):
    items = [b.text for b in document.blocks if b.kind == "item"]
    assert "The employer supervises the student and provides a safe site." in items
    rows = [b.text for b in document.blocks if b.kind == "row"]
    assert rows[0] == "Role | Task"
    assert rows[1] == "Employer | Supervises the student on site and completes the evaluations at the end"


def test_page_numbers_follow_the_text(document):
    by_text = {b.text: b.page for b in document.blocks}
    assert by_text["Second chapter"] == 2
    assert by_text["Planning a placement"] == 1


def test_words_hyphenated_across_line_breaks_are_joined(document, tmp_path):
    import pypdf

    raw = " ".join(page.extract_text() for page in pypdf.PdfReader(tmp_path / "guide.pdf").pages)
    broken = re.findall(r"(\w+)-\n(\w+)", raw)
    assert broken, "the test PDF should have words hyphenated at line ends"
    text = " ".join(b.text for b in document.blocks)
    for left, right in broken:
        assert f"{left}{right}" in text
        assert f"{left}-{right}" not in text


def test_line_end_hyphen_of_a_compound_is_kept():
    blocks = [
        Block("paragraph", f"Work{HYPHEN_BREAK}based learning is one thing.", 1, 1),
        Block("paragraph", "Students in work-based learning earn credit. A pro-", 1, 1),
        Block("paragraph", f"The pro{HYPHEN_BREAK}gram and the program.", 1, 1),
    ]
    _resolve_hyphens(blocks)
    assert blocks[0].text.startswith("Work-based")
    assert blocks[2].text.startswith("The program")


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (b"just some text, not a PDF", "not a PDF"),
    (b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "corrupt PDF"),
])
def test_bad_bytes_get_a_one_line_reason(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=reason) as error:
        read_pdf(path)
    assert "\n" not in str(error.value)


def test_truncated_pdf(tmp_path: Path, make_pdf):
    whole = make_pdf(MARKDOWN, tmp_path / "whole.pdf").read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DocumentError, match="truncated"):
        read_pdf(path)


def test_encrypted_pdf_without_password(tmp_path: Path, make_pdf):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=str(make_pdf(MARKDOWN, tmp_path / "plain.pdf")))
    writer.encrypt(user_password="secret", algorithm="AES-256")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    with pytest.raises(DocumentError, match="encrypted PDF"):
        read_pdf(path)


def test_scanned_pdf_without_text_layer(tmp_path: Path):
    from PIL import Image, ImageDraw
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = Image.new("RGB", (800, 1000), "white")
    ImageDraw.Draw(image).text((50, 50), "A scanned page of a manual", fill="black")
    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.drawImage(ImageReader(image), 0, 0, 595, 842)
    pdf.showPage()
    pdf.save()
    with pytest.raises(DocumentError, match="OCR is needed"):
        read_pdf(path)
