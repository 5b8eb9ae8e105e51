"""Scanned PDFs through the real Tesseract, real ingest into embedded Chroma, and the real assistant."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from conftest import ROOT
from wbl_assistant import ocr
from wbl_assistant.assistant import Assistant
from wbl_assistant.evaluation.dataset import load_dataset
from wbl_assistant.evaluation.metrics import fact_present
from wbl_assistant.extraction import read_pdf
from wbl_assistant.ingest_state import Progress
from wbl_assistant.ingestion import file_sha256, ingest
from wbl_assistant.ocr import OcrOptions, ocr_lines, recognize
from wbl_assistant.store import IndexStore
from wbl_assistant.text import normalize

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def tesseract_installed():
    """These tests need the real Tesseract (scripts/setup.sh installs Debian's): fail loudly, never skip."""
    problem = ocr.tesseract_problem()
    if problem:
        pytest.fail(problem)

APPRENTICESHIP = """
# Greenfield Robotics Apprenticeship

Greenfield High School runs a robotics apprenticeship for juniors and seniors. Apprentices build and repair
the robots used in the district's engineering classes, under a technician from a local manufacturer.

<!-- pagebreak -->
# Stipends

Each apprentice in the Greenfield robotics apprenticeship receives a stipend of 640 dollars per semester,
paid by the Lakeside Manufacturing Council.
"""

TEXT_PAGE = """
# Orientation Week

New interns at the Riverside clinic spend orientation week shadowing the front desk staff before they work
with patients.
"""

SCANNED_PAGE = """
# Badges

Interns at the Riverside clinic earn a green badge after 12 supervised shifts and a blue badge after 30.
"""


class Recorder(Progress):
    def __init__(self) -> None:
        self.ocr: list[tuple[str, int, int]] = []

    def ocr_page(self, name: str, page: int, pages: int) -> None:
        self.ocr.append((name, page, pages))


@pytest.fixture
def tesseract_calls() -> Recorder:
    """Counts Tesseract runs: ingest reports each page before Tesseract reads it (cached pages are not
    reported), from the PDF reader's worker process. Pass it as the ingest's progress."""
    return Recorder()


@pytest.fixture
def make_scan(make_pdf, tmp_path: Path):
    """A Markdown document rendered by the sample builder, then scanned into page images without text."""
    import build_sample

    def make(markdown: str, path: Path, **scan) -> Path:
        make_pdf(markdown, tmp_path / f"{path.stem}-print.pdf", title="Greenfield Robotics Apprenticeship")
        pdf = (tmp_path / f"{path.stem}-print.pdf").read_bytes()
        path.write_bytes(build_sample.scan(pdf, path.stem, **scan))
        return path

    return make


def manifest(settings) -> dict:
    return IndexStore(settings).active().documents


def chunk_pages(settings, doc_id: str) -> list[tuple[int, int, str]]:
    store = IndexStore(settings)
    live = store.active().live_versions
    return [(meta["page"], meta["page_end"], text) for _, text, meta, _ in store.records()
            if meta["doc_id"] == doc_id and meta["version"] in live]


def test_an_image_only_pdf_is_ocrd_ingested_and_answered_with_the_right_page(settings, make_scan, tesseract_calls):
    path = make_scan(APPRENTICESHIP, settings.corpus_dir / "greenfield.pdf")
    assert not "".join(page.extract_text() for page in pypdf.PdfReader(path).pages).strip()
    report = ingest(settings, progress=tesseract_calls)
    [result] = report.results
    assert result.status == "added", result.reason
    assert tesseract_calls.ocr == [("greenfield.pdf", 1, 2), ("greenfield.pdf", 2, 2)]
    entry = manifest(settings)["greenfield"]
    assert [row["page"] for row in entry["ocr_pages"]] == [1, 2]
    assert all(row["indexed"] and row["confidence"] >= settings.ocr_min_confidence for row in entry["ocr_pages"])
    assert result.ocr_pages == entry["ocr_pages"]
    assert (settings.ocr_cache_dir / f"{file_sha256(path)}.json").is_file()

    assistant = Assistant(settings)
    answer = assistant.ask("How much is the stipend for the Greenfield robotics apprenticeship?")
    assert not answer.abstained and "640" in answer.answer
    cited = [c for c in answer.citations if "640" in c.quote]
    assert cited and {(c.doc_id, c.page) for c in cited} == {("greenfield", 2)}

    from wbl_assistant.app import ChatPage

    image, caption = ChatPage(settings, assistant).page_image(answer, str(cited[0].n))
    assert image is not None and "page 2" in caption, caption
    highlighted = sum(1 for r, _, b in Image.open(image).convert("RGB").getdata() if r - b > 40)
    assert highlighted > 500, "the quoted passage is shaded on the scanned page"


def test_a_mixed_document_ocrs_only_its_image_pages(settings, make_pdf, make_scan, tmp_path, tesseract_calls):
    text = make_pdf(TEXT_PAGE, tmp_path / "text.pdf", title="Riverside Clinic Internship")
    scanned = make_scan(SCANNED_PAGE, tmp_path / "scanned.pdf")
    writer = pypdf.PdfWriter()
    writer.add_page(pypdf.PdfReader(text).pages[0])
    writer.add_page(pypdf.PdfReader(scanned).pages[0])
    with (settings.corpus_dir / "riverside.pdf").open("wb") as handle:
        writer.write(handle)

    report = ingest(settings, progress=tesseract_calls)
    assert report.results[0].status == "added", report.results[0].reason
    assert len(tesseract_calls.ocr) == 1, "only the page without a text layer is OCR'd"
    assert [row["page"] for row in manifest(settings)["riverside"]["ocr_pages"]] == [2]
    pages = chunk_pages(settings, "riverside")
    assert any(first == 1 and "shadowing the front desk" in text for first, _, text in pages)
    assert any(last == 2 and "green badge after 12" in text for _, last, text in pages)

    answer = Assistant(settings).ask("How many supervised shifts does a Riverside intern need for a green badge?")
    assert "12" in answer.answer and ("riverside", 2) in {(c.doc_id, c.page) for c in answer.citations}


def test_ocr_is_cached_by_file_hash(settings, make_scan, tesseract_calls):
    make_scan(APPRENTICESHIP, settings.corpus_dir / "greenfield.pdf")
    ingest(settings, progress=tesseract_calls)
    assert len(tesseract_calls.ocr) == 2
    before = sorted(text for *_, text in chunk_pages(settings, "greenfield"))

    rebuilt = ingest(settings, rebuild=True, progress=tesseract_calls)
    assert rebuilt.results[0].status == "updated" and len(tesseract_calls.ocr) == 2, "--rebuild reads the cache"
    assert sorted(text for *_, text in chunk_pages(settings, "greenfield")) == before

    fresh = settings.with_changes(data_dir=settings.data_dir.parent / "fresh")
    shutil.copytree(settings.ocr_cache_dir, fresh.ocr_cache_dir)
    assert ingest(fresh, progress=tesseract_calls).results[0].status == "added" and len(tesseract_calls.ocr) == 2
    assert sorted(text for *_, text in chunk_pages(fresh, "greenfield")) == before


def test_with_ocr_off_a_scan_is_refused_with_how_to_enable_it(settings, make_scan, tesseract_calls):
    make_scan(APPRENTICESHIP, settings.corpus_dir / "greenfield.pdf")
    [result] = ingest(settings.with_changes(ocr="off"), progress=tesseract_calls).results
    assert result.status == "failed" and not tesseract_calls.ocr
    assert "no text layer" in result.reason and "set WBL_OCR=auto" in result.reason


def test_without_tesseract_a_scan_is_refused_with_how_to_install_it(settings, make_scan, monkeypatch, tmp_path):
    make_scan(APPRENTICESHIP, settings.corpus_dir / "greenfield.pdf")
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    [result] = ingest(settings).results
    assert result.status == "failed"
    assert "OCR is needed, but Tesseract is not installed" in result.reason
    assert "apt-get install tesseract-ocr tesseract-ocr-eng" in result.reason


def test_a_skewed_low_resolution_page_gives_a_warning_not_garbage_chunks(settings, make_scan, make_pdf, tmp_path):
    clean = make_scan(APPRENTICESHIP, tmp_path / "clean.pdf")
    poor = make_scan(APPRENTICESHIP, tmp_path / "poor.pdf", dpi=45, skew=2.5, specks=0)
    writer = pypdf.PdfWriter()
    writer.add_page(pypdf.PdfReader(clean).pages[0])
    writer.add_page(pypdf.PdfReader(poor).pages[1])
    with (settings.corpus_dir / "greenfield.pdf").open("wb") as handle:
        writer.write(handle)
    shutil.copy(poor, settings.corpus_dir / "greenfield-fax.pdf")

    report = ingest(settings)
    results = {r.doc_id: r for r in report.results}
    mixed, fax = results["greenfield"], results["greenfield-fax"]
    assert mixed.status == "added"
    assert "under the floor of 80" in mixed.warning and "on page 2" in mixed.warning
    rows = {row["page"]: row for row in mixed.ocr_pages}
    assert rows[1]["indexed"] and not rows[2]["indexed"] and rows[2]["words"] > 0
    assert rows[2]["confidence"] < settings.ocr_min_confidence
    assert {last for _, last, _ in chunk_pages(settings, "greenfield")} == {1}
    assert fax.status == "failed" and "could not read it reliably" in fax.reason
    assert not chunk_pages(settings, "greenfield-fax")


@pytest.fixture(scope="module")
def sample_scan(tmp_path_factory):
    """The sample corpus's scan, OCR'd once for this module."""
    path = ROOT / "corpus" / "north-grand-makerspace-internship.pdf"
    options = OcrOptions(cache_dir=tmp_path_factory.mktemp("ocr-cache"), sha256=file_sha256(path))
    return path, options


def test_the_sample_scan_reads_back_with_its_notice_page_numbers_and_publisher(sample_scan):
    path, options = sample_scan
    pages = recognize(path, [1, 2, 3], options)
    assert all(page.confidence >= 90 for page in pages.values())
    lines = ocr_lines(list(pages.values()))
    texts = {n: " ".join(line.text for line in page_lines) for n, page_lines in lines.items()}
    assert "Sample edition" in texts[1] and "written for the wbl-assistant project from public" in texts[1]
    for number, text in texts.items():
        assert re.search(rf"Page\s*{number}\b", text) and "North Grand High School" in text


def test_golden_facts_of_the_scanned_document_are_in_its_ocr_text(sample_scan):
    """Every golden item citing the scan finds its key facts in the OCR text: on its gold pages when only
    the scan answers it, anywhere in the scan when other documents do too."""
    path, options = sample_scan
    document = read_pdf(path, ocr=options)
    pages: dict[int, str] = {}
    for block in document.blocks:
        pages[block.page] = pages.get(block.page, "") + " " + normalize(block.text)
    whole = " ".join(pages.values())
    items = [i for i in load_dataset(ROOT / "evals" / "golden.jsonl") if path.stem in i.gold_docs]
    assert sum("scanned" in item.tags for item in items) >= 4
    for item in items:
        only = item.gold_docs == [path.stem]
        text = " ".join(pages.get(p, "") for p in item.gold_pages) if only else whole
        missing = [alts for alts in item.key_facts if not fact_present(text, alts)]
        assert not missing, (item.id, missing)


def test_manifest_rows_survive_a_reingest_of_an_unchanged_scan(settings, make_scan):
    make_scan(APPRENTICESHIP, settings.corpus_dir / "greenfield.pdf")
    first = ingest(settings)
    second = ingest(settings)
    assert second.results[0].status == "unchanged"
    assert second.results[0].ocr_pages == first.results[0].ocr_pages
    assert json.loads(json.dumps(manifest(settings)["greenfield"]["ocr_pages"])) == first.results[0].ocr_pages


def test_force_ocrs_text_pages_too(settings, make_pdf, tesseract_calls):
    make_pdf(TEXT_PAGE, settings.corpus_dir / "riverside.pdf")
    report = ingest(settings.with_changes(ocr="force"), progress=tesseract_calls)
    assert report.results[0].status == "added" and len(tesseract_calls.ocr) == 1
    assert manifest(settings)["riverside"]["ocr_pages"][0]["indexed"]

