"""OCR as pure functions: Tesseract's words to lines, confidence, sizes, quote boxes, the cache format, and
read_pdf's use of OCR with Tesseract replaced by words made here (the real one: tests/e2e/test_scanned_pdfs.py)."""

from pathlib import Path

import pytest

from wbl_assistant import extraction, ocr
from wbl_assistant.config import ConfigError, Settings
from wbl_assistant.extraction import DocumentError, read_pdf
from wbl_assistant.ocr import OcrOptions, OcrPage, OcrUnavailable, OcrWord, ocr_lines, quote_boxes, words_from_data

SCALE = 200 / 72  # pixels per point at 200 dpi
PAGE_HEIGHT = round(792 * SCALE)


def word(text: str, left: float, baseline: float, size: float, line: tuple[int, int, int],
         conf: float = 95.0) -> OcrWord:
    """A word as Tesseract boxes it, for a font of `size` pixels: ascenders reach 0.72 of it above the
    baseline, descenders 0.21 below, x-height letters 0.52."""
    tall = any(ch in ocr.ASCENDERS for ch in text)
    deep = any(ch in "gjpqy,;" for ch in text)
    top = baseline - (0.72 if tall else 0.52) * size
    bottom = baseline + 0.21 * size if deep else baseline
    return OcrWord(text, round(left), round(top), round(len(text) * size * 0.5), round(bottom - top), conf, line)


def line(text: str, left: float, baseline_pt: float, size_pt: float, line_id: tuple[int, int, int],
         conf: float = 95.0, gap: float = 0.3) -> list[OcrWord]:
    """The words of one printed line, baseline and size given in points (as pypdf would report them)."""
    size = size_pt * SCALE
    baseline = PAGE_HEIGHT - baseline_pt * SCALE
    words, x = [], left * SCALE
    for token in text.split(" "):
        if token == "":
            x += 4 * size  # a wide gap: the next cell of a table row
            continue
        words.append(word(token, x, baseline, size, line_id, conf))
        x += (len(token) * 0.5 + gap) * size
    return words


def page(number: int, *lines: list[OcrWord]) -> OcrPage:
    return OcrPage(number, SCALE, round(612 * SCALE), PAGE_HEIGHT, [w for ws in lines for w in ws])


def test_words_come_from_tesseract_data_rows_of_level_five():
    data = {"level": [1, 4, 5, 5, 5], "text": ["", "", "Work-based", " ", "learning"], "left": [0, 10, 10, 50, 60],
            "top": [0, 20, 20, 20, 21], "width": [100, 90, 40, 5, 40], "height": [100, 12, 12, 12, 11],
            "conf": ["-1", "-1", "96.5", "95", "91"], "block_num": [0, 1, 1, 1, 1], "par_num": [0, 1, 1, 1, 1],
            "line_num": [0, 1, 1, 1, 1]}
    words = words_from_data(data)
    assert [(w.text, w.left, w.conf, w.line) for w in words] == [("Work-based", 10, 96.5, (1, 1, 1)),
                                                                  ("learning", 60, 91.0, (1, 1, 1))]
    assert (words[0].right, words[0].bottom) == (50, 32)


def test_lines_are_placed_in_points_from_the_page_bottom_with_their_font_size():
    ocr_page = page(2, line("Placement Agreements", 72, 700, 17, (1, 1, 1)),
                    line("Every student signs the agreement before the first day", 72, 670, 11, (2, 1, 1)),
                    line("on site, and a parent signs it too.", 72, 655, 11, (2, 1, 2)))
    lines = ocr_lines([ocr_page])[2]
    assert [ln.text for ln in lines] == ["Placement Agreements",
                                         "Every student signs the agreement before the first day",
                                         "on site, and a parent signs it too."]
    for got, (y, size) in zip(lines, [(700, 17), (670, 11), (655, 11)], strict=True):
        assert got.x == pytest.approx(72, abs=0.5)
        assert got.y == pytest.approx(y, abs=0.5)
        assert got.size == pytest.approx(size, rel=0.06)
    assert lines[1].size == lines[2].size


def test_sizes_within_measuring_error_become_one_but_headings_stay_apart():
    rows = [line(f"Line {n} of the body text, long enough to weigh", 72, 700 - 15 * n, size, (1, 1, n))
            for n, size in enumerate([10.6, 11.0, 11.3, 11.0, 10.8], start=1)]
    heading = line("Roles and Duties", 72, 720, 13.5, (0, 1, 1))
    lines = ocr_lines([page(1, heading, *rows)])[1]
    assert len({ln.size for ln in lines[1:]}) == 1
    assert lines[0].size > lines[1].size * 1.15


def test_a_wide_gap_splits_a_line_into_table_cells_on_one_baseline():
    lines = ocr_lines([page(1, line("Employer  Supervises the student", 72, 500, 10, (3, 1, 1)))])[1]
    assert [ln.text for ln in lines] == ["Employer", "Supervises the student"]
    assert lines[0].y == lines[1].y and lines[1].x > lines[0].x + 4


def test_a_leading_bullet_glyph_is_a_bullet_and_specks_are_dropped():
    bullet_line = line("¢ Visit the site first", 90, 400, 11, (4, 1, 1), gap=0.8)
    specked = line("Keep . the records |", 90, 380, 11, (4, 1, 2))
    specked[1] = OcrWord(".", specked[1].left, specked[1].top + 20, 3, 3, 40.0, (4, 1, 2))
    lines = ocr_lines([page(1, bullet_line, specked)])[1]
    assert lines[0].text == "\u2022 Visit the site first"
    assert lines[1].text == "Keep the records"


def test_page_confidence_weighs_words_by_length():
    ocr_page = page(1, line("internship agreement", 72, 700, 11, (1, 1, 1), conf=90.0))
    ocr_page.words.append(OcrWord("x", 0, 0, 5, 5, 30.0, (1, 1, 1)))
    assert ocr_page.confidence == pytest.approx((90 * 19 + 30) / 20)
    assert OcrPage(1, SCALE, 10, 10).confidence == 0.0


def test_cached_pages_round_trip(tmp_path: Path):
    ocr_page = page(3, line("Mentor check-ins happen weekly.", 72, 700, 11, (1, 1, 1)))
    options = OcrOptions(cache_dir=tmp_path, sha256="ab" * 32)
    ocr._write_cache(options, {3: ocr_page})
    assert ocr._read_cache(options) == {3: ocr_page}
    assert ocr.load_page(tmp_path, "ab" * 32, 3) == ocr_page
    assert ocr.load_page(tmp_path, "ab" * 32, 4) is None
    assert ocr._read_cache(OcrOptions(cache_dir=tmp_path, sha256="ab" * 32, dpi=300)) == {}


def test_quote_boxes_cover_the_quoted_lines_across_a_hyphen_break():
    words = (line("Students log their hours in the work-", 72, 700, 11, (1, 1, 1))
             + line("place journal every Friday afternoon.", 72, 685, 11, (1, 1, 2))
             + line("Supervisors sign each page.", 72, 670, 11, (1, 1, 3)))
    boxes = quote_boxes(words, "They log their hours in the workplace journal every Friday", factor=0.5)
    assert boxes == []  # not on the page: "They" is not there and the first words do not match
    boxes = quote_boxes(words, "their hours in the workplace journal every Friday afternoon.", factor=0.5)
    assert len(boxes) == 2
    first, second = boxes
    assert first[1] < second[1] and first[0] > words[0].left * 0.5
    assert second[2] == pytest.approx(max(w.right for w in words if w.line == (1, 1, 2)) * 0.5)
    assert quote_boxes(words, "Supervisors sign each page.")[0][0] == words[-4].left


def test_config_validates_ocr_settings():
    assert Settings.from_env({}).ocr == "auto"
    assert Settings.from_env({"WBL_OCR": "force", "WBL_OCR_LANGUAGE": "eng+spa"}).ocr_language == "eng+spa"
    for env, message in [({"WBL_OCR": "maybe"}, "WBL_OCR must be off, auto or force"),
                         ({"WBL_OCR_MIN_CONFIDENCE": "120"}, "WBL_OCR_MIN_CONFIDENCE"),
                         ({"WBL_OCR_DPI": "20"}, "WBL_OCR_DPI"),
                         ({"WBL_OCR_LANGUAGE": "eng; rm"}, "WBL_OCR_LANGUAGE")]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)
    assert Settings(data_dir=Path("d")).ocr_cache_dir == Path("d/ocr")


@pytest.fixture
def blank_pdf(tmp_path: Path) -> Path:
    """Two pages with no text layer (what a scan looks like to pypdf)."""
    from reportlab.pdfgen import canvas

    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    for _ in range(2):
        pdf.rect(100, 100, 50, 50, fill=1)
        pdf.showPage()
    pdf.save()
    return path


SCANNED = {
    1: page(1, line("Transportation", 72, 700, 17, (1, 1, 1)),
            line("Students travel to the site by district bus on Tuesdays and Thursdays.", 72, 670, 11, (2, 1, 1))),
    2: page(2, line("Students bring a signed permission form before the first visit.", 72, 700, 11, (1, 1, 1),
                    conf=40.0)),
}


def fake_recognize(pages: dict[int, OcrPage], calls: list):
    def recognize(path, numbers, options):
        calls.append((numbers, options.mode))
        return {n: pages[n] for n in numbers if n in pages}
    return recognize


def test_read_pdf_takes_ocr_lines_and_skips_a_page_under_the_floor(blank_pdf, monkeypatch):
    calls = []
    monkeypatch.setattr(extraction, "recognize", fake_recognize(SCANNED, calls))
    doc = read_pdf(blank_pdf, ocr=OcrOptions(min_confidence=80))
    assert calls == [([1, 2], "auto")]
    assert [(b.kind, b.page, b.text[:14]) for b in doc.blocks] == [("heading", 1, "Transportation"),
                                                                   ("paragraph", 1, "Students trave")]
    assert doc.ocr_pages == [{"page": 1, "confidence": 95.0, "words": 13, "indexed": True},
                             {"page": 2, "confidence": 40.0, "words": 10, "indexed": False}]
    [warning] = doc.warnings
    assert "40 on page 2" in warning and "floor of 80" in warning and "not indexed" in warning


def test_a_scan_read_below_the_floor_everywhere_is_refused_with_the_reason(blank_pdf, monkeypatch):
    monkeypatch.setattr(extraction, "recognize", fake_recognize({2: SCANNED[2]}, []))
    with pytest.raises(DocumentError, match="could not read it reliably: confidence 40 on page 2"):
        read_pdf(blank_pdf, ocr=OcrOptions(min_confidence=80))


def test_without_ocr_or_tesseract_a_scan_is_refused_with_how_to_enable_ocr(blank_pdf, monkeypatch):
    with pytest.raises(DocumentError, match="OCR is needed, but it is off: set WBL_OCR=auto"):
        read_pdf(blank_pdf)
    with pytest.raises(DocumentError, match="OCR is needed, but it is off"):
        read_pdf(blank_pdf, ocr=OcrOptions(mode="off"))

    def unavailable(path, numbers, options):
        raise OcrUnavailable(f"Tesseract is not installed: {ocr.INSTALL_HINT}")

    monkeypatch.setattr(extraction, "recognize", unavailable)
    with pytest.raises(DocumentError, match="OCR is needed, but Tesseract is not installed: install Tesseract "
                                            r"\(Debian/Ubuntu: apt-get install tesseract-ocr"):
        read_pdf(blank_pdf, ocr=OcrOptions())


def test_text_pages_are_not_ocrd_unless_forced(tmp_path: Path, make_pdf, monkeypatch):
    calls = []
    monkeypatch.setattr(extraction, "recognize", fake_recognize({}, calls))
    path = make_pdf("# Overview\n\nEvery page of this guide has a text layer.\n", tmp_path / "text.pdf")
    assert read_pdf(path, ocr=OcrOptions()).ocr_pages == [] and calls == []
    read_pdf(path, ocr=OcrOptions(mode="force"))
    assert calls == [([1], "force")]
