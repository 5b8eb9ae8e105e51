"""The sample corpus: traceability to the fact base, lengths, readable PDFs, and up-to-date builds."""

from __future__ import annotations

import re
import shutil
import tomllib

import pypdf
import pytest

from conftest import ROOT

INGEST = ROOT / "ingest"
FACT_LINE = re.compile(r"^([A-J]\d+)\.\s", re.MULTILINE)
FACTS_COMMENT = re.compile(r"<!--\s*facts:([^>]*)-->")
ID_OR_RANGE = re.compile(r"\b([A-J])(\d+)(?:\s*[–-]\s*([A-J])?(\d+))?\b")


def fact_ids() -> set[str]:
    return set(FACT_LINE.findall((INGEST / "facts.md").read_text(encoding="utf-8")))


def expand(text: str) -> set[str]:
    """'D4–D8, C1' -> {D4, D5, D6, D7, D8, C1}."""
    ids = set()
    for letter, start, end_letter, end in ID_OR_RANGE.findall(text):
        if end and (not end_letter or end_letter == letter):
            ids |= {f"{letter}{n}" for n in range(int(start), int(end) + 1)}
        else:
            ids.add(f"{letter}{start}")
    return ids


def plan_rows() -> dict[str, dict[str, str]]:
    rows = {}
    for line in (INGEST / "PLAN.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cells[0]):
            rows[cells[0]] = {"title": cells[1], "length": cells[4], "holds": cells[5]}
    return rows


def catalog() -> list[dict]:
    return tomllib.loads((INGEST / "catalog.toml").read_text(encoding="utf-8"))["documents"]


def source_ids(slug: str) -> set[str]:
    text = (INGEST / "sample" / f"{slug}.md").read_text(encoding="utf-8")
    return {i for group in FACTS_COMMENT.findall(text) for i in group.split()}


def test_expand_ranges():
    assert expand("purpose D1; roles D17; D4–D8, E1-E3 and J1") == {"D1", "D17", "D4", "D5", "D6", "D7", "D8",
                                                                   "E1", "E2", "E3", "J1"}


def test_plan_and_catalog_list_the_same_27_documents():
    assert len(plan_rows()) == 27
    assert {e["slug"] for e in catalog()} == set(plan_rows())
    for entry in catalog():
        assert entry["file"] == f"{entry['slug']}.pdf" and entry["sample"] is True
        for key in ("title", "publisher", "edition", "kind", "audience"):
            assert entry[key].strip(), (entry["slug"], key)


@pytest.mark.parametrize("slug", sorted(plan_rows()))
def test_every_fact_the_plan_assigns_is_marked_in_the_source(slug):
    required = expand(plan_rows()[slug]["holds"])
    missing = required - source_ids(slug)
    assert not missing, f"{slug} lacks facts comments for {sorted(missing)}"


@pytest.mark.parametrize("slug", sorted(plan_rows()))
def test_every_marked_fact_exists_in_the_fact_base(slug):
    unknown = source_ids(slug) - fact_ids()
    assert not unknown, f"{slug} marks unknown fact IDs {sorted(unknown)}"


def pages_allowed(length: str) -> tuple[int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", length)]
    if "+" in length:
        return numbers[0], 10_000
    return numbers[0], numbers[-1]


@pytest.mark.parametrize("entry", [e for e in catalog() if not e.get("scan")], ids=lambda e: e["slug"])
def test_pdf_is_readable_has_the_sample_notice_and_the_planned_length(entry):
    reader = pypdf.PdfReader(ROOT / "corpus" / entry["file"])
    texts = [page.extract_text() for page in reader.pages]
    for number, text in enumerate(texts, start=1):
        words = re.findall(r"[A-Za-z]{3,}", text)
        assert len(words) >= 20, f"page {number} has no readable text"
        assert f"Page {number}" in text and entry["publisher"][:20] in " ".join(text.split())
    first = " ".join(texts[0].split())
    assert "Sample edition" in first and "written for the wbl-assistant project from public information" in first
    assert f"consult {entry['publisher']}" in first
    low, high = pages_allowed(plan_rows()[entry["slug"]]["length"])
    assert low <= len(texts) <= high, f"{entry['slug']}: {len(texts)} pages, plan says {low}-{high}"


@pytest.mark.parametrize("entry", [e for e in catalog() if e.get("scan")], ids=lambda e: e["slug"])
def test_a_scan_has_images_and_no_text_layer(entry):
    """Its text is checked through OCR in tests/e2e/test_scanned_pdfs.py."""
    reader = pypdf.PdfReader(ROOT / "corpus" / entry["file"])
    assert all(not page.extract_text().strip() and len(page.images) == 1 for page in reader.pages)
    low, high = pages_allowed(plan_rows()[entry["slug"]]["length"])
    assert low <= len(reader.pages) <= high


def test_corpus_length():
    pages = {e["slug"]: len(pypdf.PdfReader(ROOT / "corpus" / e["file"]).pages) for e in catalog()}
    assert sum(pages.values()) >= 120
    assert pages["isbe-wbl-manual"] >= 20


def test_committed_pdfs_match_their_sources():
    import build_sample

    assert build_sample.main(["--check"]) == 0


def test_check_fails_when_a_source_changes(tmp_path, monkeypatch):
    import build_sample

    sources = tmp_path / "sample"
    shutil.copytree(INGEST / "sample", sources)
    path = sources / "hosa-competition.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    monkeypatch.setattr(build_sample, "SOURCES", sources)
    assert build_sample.main(["--check", "--only", "hosa-competition"]) == 1


def test_build_is_deterministic():
    import build_sample

    doc = next(d for d in build_sample.load_documents() if d.slug == "hosa-competition")
    assert build_sample.render(doc) == build_sample.render(doc)
