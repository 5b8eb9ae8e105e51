"""The Library tab in a real browser (Debian chromium through Playwright) against a real app, index and corpus:
list, sort, filter, open a first page, upload with metadata, edit in place, retire and restore, the history;
a wrong password on every action, an invalid catalog value, two admins saving at once."""

from __future__ import annotations

import json
import logging
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import copy_sample, free_port
from wbl_assistant.catalog import load_catalog
from wbl_assistant.config import Settings
from wbl_assistant.ingestion import ingest
from wbl_assistant.store import IndexStore

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
DOCS = ["hosa-competition", "imbi-micro-internship", "wbl-quality-criteria"]
HEADER = "# The district's catalog: keep this comment.\n\n"
COLUMNS = {"title": 0, "edition": 2, "pages": 4, "chunks": 5, "file": 6, "sha": 7, "ingested": 8, "status": 9,
           "open": 10}


@dataclass
class LibraryApp:
    settings: Settings
    url: str
    gate: object


@pytest.fixture(scope="module")
def library_app(tmp_path_factory):
    from wbl_assistant.app import LibraryTab, launch

    root = tmp_path_factory.mktemp("library-page")
    (root / "corpus").mkdir()
    settings = Settings(data_dir=root / "data", corpus_dir=root / "corpus", catalog_path=root / "catalog.toml",
                        admin_password=PASSWORD)
    settings.catalog_path.write_text(HEADER, encoding="utf-8")
    copy_sample(settings, DOCS)
    assert not ingest(settings).failed
    port = free_port()
    app = launch(settings, "127.0.0.1", port, block=False)
    tab = next(f.fn.__self__ for f in app.fns.values() if isinstance(getattr(f.fn, "__self__", None), LibraryTab))
    tab.gate.free = 1000  # these tests send many wrong passwords: no backoff (test_hardening covers it)
    yield LibraryApp(settings, f"http://127.0.0.1:{port}", tab.gate)
    app.close()


def new_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url, wait_until="load")
    page.wait_for_selector("#question textarea")
    page.get_by_role("tab", name="Library").click()
    return page


@pytest.fixture
def page(browser, library_app, tmp_path):
    page = new_page(browser, library_app.url)
    yield page
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    page.context.close()


# -- helpers ------------------------------------------------------------------------------------------------


def wait_text(page, selector: str, pattern: str, timeout: float = 180_000) -> str:
    """Wait until the element's text matches the regular expression; return the text."""
    page.wait_for_function("([s, p]) => new RegExp(p).test(document.querySelector(s)?.innerText || '')",
                           arg=[selector, pattern], timeout=timeout)
    return page.inner_text(selector)


def show_library(page, password: str = PASSWORD) -> None:
    page.fill("#library-password input", password)
    page.click("#library-show")
    wait_text(page, "#library-status", r"\d+ documents")
    page.wait_for_function("() => document.querySelectorAll('#library-table .virtual-row').length > 0")


def column(page, name: str) -> list[str]:
    """The visible rows' cells of one column, in display order."""
    return page.evaluate("n => Array.from(document.querySelectorAll('#library-table .virtual-row'))"
                         ".map(r => r.querySelector(`[data-col=\"${n}\"]`)?.innerText.trim())", COLUMNS[name])


def row_of(page, file: str):
    return page.locator("#library-table .virtual-row").filter(has=page.locator(f"[data-col='{COLUMNS['file']}']",
                                                                                 has_text=file))


def cell(page, file: str, name: str) -> str:
    return row_of(page, file).locator(f"[data-col='{COLUMNS[name]}']").inner_text().strip()


def pick(page, file: str, caption: str = "") -> None:
    """Click the row's "open page 1" cell: the form is filled and the first page shown (its caption holding
    `caption`, when the caption of an earlier pick would match too)."""
    row_of(page, file).locator(f"[data-col='{COLUMNS['open']}']").click()
    wait_text(page, "#library-caption", "^(?!processing)[^]*" + re.escape(caption) + "[^]*" + re.escape(f"({file}"))
    page.wait_for_function("f => document.querySelector('#library-doc input')?.value.includes(f)", arg=file)


def field(page, prefix: str, key: str):
    return page.locator(f"#{prefix}-{key}").locator("textarea, input").first


def sort_by(page, name: str, direction: str) -> None:
    header = f"#library-table th[data-heading='{COLUMNS[name]}']"
    page.hover(header)
    page.click(f"{header} button[aria-label='Open cell menu']")
    page.locator("button", has_text=f"Sort {direction}").click()
    page.wait_for_timeout(300)


def live(settings: Settings) -> dict:
    manifest = IndexStore(settings).active()
    return manifest.documents if manifest else {}


def state(settings: Settings) -> dict:
    """Everything a library action could change: catalog bytes, corpus files, the index, the history."""
    history = settings.ingest_history_path
    return {"catalog": settings.catalog_path.read_bytes(),
            "corpus": sorted((str(p.relative_to(settings.corpus_dir)), p.stat().st_size)
                             for p in settings.corpus_dir.rglob("*") if p.is_file()),
            "index": IndexStore(settings).active().snapshot,
            "history": history.read_text().count("\n") if history.exists() else 0}


def gradio_cache() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def files_holding(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data]


# -- the tests ----------------------------------------------------------------------------------------------


def test_library_events_are_private_and_their_named_routes_answer_404(library_app):
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"{library_app.url}/gradio_api/info", timeout=60) as response:
        endpoints = json.loads(response.read())["named_endpoints"]
    handlers = {"show", "pick", "pick_row", "open_page", "save", "retire", "restore", "prefill", "upload"}
    assert "/respond" in endpoints and not handlers & {name.strip("/") for name in endpoints}
    for name in ("save", "retire", "show"):
        request = urllib.request.Request(f"{library_app.url}/gradio_api/call/{name}", method="POST",
                                         data=json.dumps({"data": [PASSWORD]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 404, name


def test_the_library_lists_sorts_filters_and_opens_a_first_page(page, library_app, tmp_path):
    settings = library_app.settings
    assert page.locator("#library-table .virtual-row").count() == 0, "the table is empty before the password"
    show_library(page)
    rows = page.locator("#library-table .virtual-row")
    docs = live(settings)
    assert rows.count() == len(docs) >= 3
    hosa = docs["hosa-competition"]
    assert cell(page, "hosa-competition.pdf", "title") == hosa["title"]
    assert cell(page, "hosa-competition.pdf", "edition") == hosa["edition"]
    assert cell(page, "hosa-competition.pdf", "pages") == str(hosa["pages"])
    assert cell(page, "hosa-competition.pdf", "chunks") == str(hosa["chunks"])
    assert cell(page, "hosa-competition.pdf", "sha") == hosa["sha256"][:12]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", cell(page, "hosa-competition.pdf", "ingested"))
    assert cell(page, "hosa-competition.pdf", "status") == "ingested"
    headers = page.locator("#library-table thead th").all_inner_texts()
    assert [h.strip() for h in headers][:10] == ["Title", "Publisher", "Edition", "Kind", "Pages", "Chunks", "File",
                                                 "SHA-256", "Ingested at", "Status"]

    sort_by(page, "chunks", "ascending")
    chunks = [int(c) for c in column(page, "chunks")]
    assert chunks == sorted(chunks) and len(set(chunks)) > 1
    sort_by(page, "chunks", "descending")
    assert [int(c) for c in column(page, "chunks")] == sorted(chunks, reverse=True)
    page.fill("#library-table input[placeholder='Search...']", "HOSA")
    page.wait_for_function("() => document.querySelectorAll('#library-table .virtual-row').length === 1")
    assert column(page, "file") == ["hosa-competition.pdf"]
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)

    pick(page, "hosa-competition.pdf")
    page.wait_for_selector("#library-page img")
    caption = page.inner_text("#library-caption")
    assert f"page 1 of {hosa['pages']}" in caption and "\\" not in caption
    assert field(page, "library-edit", "title").input_value() == load_catalog(settings.catalog_path)[
        "hosa-competition.pdf"].title
    page.fill("#library-table input[placeholder='Search...']", "")
    page.screenshot(path=str(tmp_path / "first-page.png"), full_page=True)


def test_a_wrong_password_is_refused_on_every_action_and_nothing_changes(page, library_app, make_pdf, tmp_path,
                                                                        caplog):
    settings = library_app.settings
    caplog.set_level(logging.WARNING, logger="wbl_assistant.app")
    show_library(page)
    pick(page, "hosa-competition.pdf")
    upload = make_pdf(f"# Intruder\n\nToken {time.time_ns()}.\n", tmp_path / "intruder.pdf", title="Intruder")
    data = upload.read_bytes()
    before = state(settings)
    page.fill("#library-password input", "wrong password")
    failures = 0

    def refused(selector: str = "#library-status") -> None:
        nonlocal failures
        failures += 1
        deadline = time.time() + 60
        while caplog.text.count("wrong admin password from") < failures:
            assert time.time() < deadline, f"action {failures} never reached the password check"
            page.wait_for_timeout(100)
        assert "Refused" in wait_text(page, selector, "Refused")

    page.click("#library-show")
    refused()
    row_of(page, "imbi-micro-internship.pdf").locator(f"[data-col='{COLUMNS['open']}']").click()
    refused()
    assert "hosa-competition.pdf" in page.evaluate("() => document.querySelector('#library-doc input').value")
    page.click("#library-open")
    refused()
    field(page, "library-edit", "title").fill("Hacked title")
    page.click("#library-save")
    refused()
    page.click("#library-retire")
    refused()
    page.click("#library-restore")
    refused()
    page.set_input_files("#library-file input[type=file]", str(upload))
    refused("#library-upload-status")
    for key, value in {"title": "Intruder", "publisher": "Nobody", "edition": "1", "kind": "guide"}.items():
        field(page, "library-new", key).fill(value)
    page.click("#library-upload")
    refused("#library-upload-status")
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    assert state(settings) == before
    assert "Hacked" not in settings.catalog_path.read_text()
    assert files_holding(gradio_cache(), data) == [], "a refused upload stayed in Gradio's cache"


def test_upload_with_metadata_catalogs_a_new_document_and_its_citations_show_the_edition(page, library_app,
                                                                                         make_pdf, tmp_path):
    settings = library_app.settings
    token = f"F{time.time_ns()}"
    pdf = make_pdf(f"# Youth Apprenticeship\n\nApprentices log their hours on form {token} every Friday.\n",
                   tmp_path / "youth-apprenticeship.pdf", title="Youth Apprenticeship Guide",
                   publisher="Illinois Youth Apprenticeship Network")
    data = pdf.read_bytes()
    show_library(page)
    page.set_input_files("#library-file input[type=file]", str(pdf))
    assert "new document" in wait_text(page, "#library-upload-status", "new document|Refused|Cannot")
    assert field(page, "library-new", "title").input_value() == "Youth Apprenticeship Guide"
    assert field(page, "library-new", "publisher").input_value() == "Illinois Youth Apprenticeship Network"
    field(page, "library-new", "edition").fill("2026 pilot")
    field(page, "library-new", "kind").fill("guide")
    field(page, "library-new", "audience").fill("district apprenticeship coordinators")
    page.click("#library-upload")
    status = wait_text(page, "#library-upload-status", "Added|Replaced|Not uploaded|could not")
    page.screenshot(path=str(tmp_path / "uploaded.png"), full_page=True)
    assert "Added youth-apprenticeship.pdf with its catalog entry" in status, status
    assert "\\" not in status and "no catalog entry" not in status
    entry = load_catalog(settings.catalog_path)["youth-apprenticeship.pdf"]
    assert (entry.slug, entry.title, entry.edition, entry.kind) == ("youth-apprenticeship", "Youth Apprenticeship "
                                                                     "Guide", "2026 pilot", "guide")
    assert settings.catalog_path.read_text().startswith(HEADER)
    assert live(settings)["youth-apprenticeship"]["edition"] == "2026 pilot"
    page.wait_for_function("() => document.querySelector('#library-table').innerText.includes('2026 pilot')")
    assert files_holding(gradio_cache(), data) == []

    page.get_by_role("tab", name="Chat").click()
    page.fill("#question textarea", "On which form do apprentices log their hours?")
    page.click("#ask")
    page.wait_for_function("t => document.querySelector('#chat').innerText.includes(t)", arg=token, timeout=60_000)
    wait_text(page, "#sources", "Youth Apprenticeship Guide, 2026 pilot", timeout=60_000)


def test_upload_of_a_new_edition_starts_from_its_entry_and_updates_it(page, library_app, make_pdf, tmp_path):
    settings = library_app.settings
    current = load_catalog(settings.catalog_path)["hosa-competition.pdf"]
    token = f"H{time.time_ns()}"
    pdf = make_pdf(f"# HOSA 2027\n\nThe 2027 conference check-in code is {token}.\n", tmp_path / "hosa-competition.pdf",
                   title="Something else entirely")
    show_library(page)
    page.set_input_files("#library-file input[type=file]", str(pdf))
    note = wait_text(page, "#library-upload-status", "replaces|Refused|Cannot")
    assert "replaces" in note and "update the edition" in note
    assert field(page, "library-new", "title").input_value() == current.title, "not pre-filled from the entry"
    assert field(page, "library-new", "publisher").input_value() == current.publisher
    field(page, "library-new", "edition").fill("2027")
    page.click("#library-upload")
    status = wait_text(page, "#library-upload-status", "Added|Replaced|Not uploaded|could not")
    assert "Replaced hosa-competition.pdf with its catalog entry" in status, status
    entry = load_catalog(settings.catalog_path)["hosa-competition.pdf"]
    assert (entry.title, entry.publisher, entry.edition) == (current.title, current.publisher, "2027")
    assert (settings.corpus_dir / "hosa-competition.pdf").read_bytes() == pdf.read_bytes()
    assert live(settings)["hosa-competition"]["edition"] == "2027"
    assert not list((settings.data_dir / "replaced").glob("*.pdf")), "the previous edition was not cleaned up"


def test_an_invalid_catalog_value_gets_a_clear_message_and_the_catalog_stays_byte_identical(page, library_app,
                                                                                           make_pdf, tmp_path):
    settings = library_app.settings
    before = state(settings)
    show_library(page)
    pick(page, "wbl-quality-criteria.pdf")
    field(page, "library-edit", "title").fill("")
    page.click("#library-save")
    assert "Title is required" in wait_text(page, "#library-status", "Not saved")
    field(page, "library-edit", "title").fill("Quality Criteria")
    field(page, "library-edit", "kind").fill("guide; rm -rf /")
    page.click("#library-save")
    assert "Kind must be a word or two" in wait_text(page, "#library-status", "Kind must")
    field(page, "library-edit", "kind").fill("criteria")
    field(page, "library-edit", "edition").fill("x" * 101)
    page.click("#library-save")
    assert "Edition is 101 characters long" in wait_text(page, "#library-status", "Edition is")

    pdf = make_pdf("# Unfinished\n\nA handbook without an edition.\n", tmp_path / "unfinished.pdf", title="Unfinished")
    page.set_input_files("#library-file input[type=file]", str(pdf))
    wait_text(page, "#library-upload-status", "new document")
    field(page, "library-new", "kind").fill("handbook")
    page.click("#library-upload")
    status = wait_text(page, "#library-upload-status", "Not uploaded|Added")
    page.screenshot(path=str(tmp_path / "invalid.png"), full_page=True)
    assert "Not uploaded" in status and "Edition is required" in status, status
    assert state(settings) == before


def test_editing_metadata_in_place_reingests_without_reembedding_and_shows_markup_as_text(page, library_app,
                                                                                         tmp_path):
    settings = library_app.settings
    version = live(settings)["wbl-quality-criteria"]["version"]
    original = load_catalog(settings.catalog_path)["wbl-quality-criteria.pdf"]
    show_library(page)
    pick(page, "wbl-quality-criteria.pdf")
    field(page, "library-edit", "edition").fill("2024, revised 2026")
    page.click("#library-save")
    status = wait_text(page, "#library-status", "Saved|Not saved")
    assert "Saved the catalog entry of wbl-quality-criteria.pdf" in status, status
    assert "updated: 0" in status and "added: 0" in status
    entry = load_catalog(settings.catalog_path)["wbl-quality-criteria.pdf"]
    assert entry.edition == "2024, revised 2026" and entry.title == original.title
    doc = live(settings)["wbl-quality-criteria"]
    assert doc["edition"] == "2024, revised 2026" and doc["version"] == version, "re-embedded for a catalog edit"
    assert settings.catalog_path.read_text().startswith(HEADER)
    assert cell(page, "wbl-quality-criteria.pdf", "edition") == "2024, revised 2026"

    markup = '<img src=x onerror="alert(1)"> Quality <b>Criteria</b>'
    field(page, "library-edit", "title").fill(markup)
    page.click("#library-save")
    page.wait_for_function("() => document.querySelector('#library-table').innerText.includes('onerror')",
                           timeout=180_000)
    pick(page, "wbl-quality-criteria.pdf", caption="<img src=x")
    assert cell(page, "wbl-quality-criteria.pdf", "title") == markup
    assert "<img src=x" in page.inner_text("#library-caption")
    assert page.locator("#library-table img[src='x'], #library-caption img[src='x'], #library-table b").count() == 0
    assert page.dialogs == []
    page.screenshot(path=str(tmp_path / "markup.png"), full_page=True)
    field(page, "library-edit", "title").fill(original.title)
    page.click("#library-save")
    page.wait_for_function("() => !document.querySelector('#library-table').innerText.includes('onerror')",
                           timeout=180_000)
    assert load_catalog(settings.catalog_path)["wbl-quality-criteria.pdf"].title == original.title


def test_retire_and_restore_from_the_tab_and_the_history_shows_them_newest_first(page, library_app, tmp_path):
    settings = library_app.settings
    file = "imbi-micro-internship.pdf"
    show_library(page)
    pick(page, file)
    page.click("#library-retire")
    status = wait_text(page, "#library-status", "Retired|Not retired")
    page.screenshot(path=str(tmp_path / "retired.png"), full_page=True)
    assert f"Retired {file}" in status, status
    assert not (settings.corpus_dir / file).exists()
    moved = list(settings.retired_dir.glob("imbi-micro-internship.*.pdf"))
    assert len(moved) == 1
    entry = load_catalog(settings.catalog_path)[file]
    assert entry.retired and entry.retired_file == f"retired/{moved[0].name}"
    assert "imbi-micro-internship" not in live(settings)
    assert cell(page, file, "status").startswith("retired")
    assert "retired" in page.inner_text("#library-caption"), "the retired PDF's first page is still viewable"
    page.wait_for_selector("#library-page img")

    page.click("#library-restore")
    status = wait_text(page, "#library-status", "Restored|Not restored")
    assert f"Restored {file}" in status, status
    assert (settings.corpus_dir / file).is_file() and not list(settings.retired_dir.glob("imbi-*"))
    raw = tomllib.loads(settings.catalog_path.read_text())["documents"]
    assert not {"retired", "retired_at", "retired_file"} & set(next(d for d in raw if d["file"] == file))
    assert "imbi-micro-internship" in live(settings)
    assert cell(page, file, "status") == "ingested"

    runs = page.evaluate("() => Array.from(document.querySelector('#library-history ul').children)"
                         ".map(li => li.innerText)")
    assert f"restore {file}" in runs[0] and f"retire {file}" in runs[1], runs[:2]
    assert "admin 127.0.0.1" in runs[0] and "added 1" in runs[0] and "removed 1" in runs[1]
    history = [json.loads(line) for line in settings.ingest_history_path.read_text().splitlines()]
    assert [h["action"] for h in history[-2:]] == ["retire", "restore"]


def test_two_admins_saving_at_once_both_edits_land_and_a_same_field_edit_is_a_conflict(browser, library_app,
                                                                                       tmp_path):
    settings = library_app.settings
    file = "hosa-competition.pdf"
    first, second = new_page(browser, library_app.url), new_page(browser, library_app.url)
    try:
        for admin in (first, second):
            show_library(admin)
            pick(admin, file)
        stamp = time.time_ns()
        field(first, "library-edit", "title").fill(f"HOSA guide, title by A {stamp}")
        field(second, "library-edit", "audience").fill(f"audience by B {stamp}")
        first.click("#library-save")
        second.click("#library-save")
        for admin in (first, second):
            assert "Saved the catalog entry" in wait_text(admin, "#library-status", "Saved|Not saved")
        entry = load_catalog(settings.catalog_path)[file]
        assert entry.title == f"HOSA guide, title by A {stamp}" and entry.audience == f"audience by B {stamp}"

        pick(first, file)
        pick(second, file)
        field(first, "library-edit", "edition").fill("edition by A")
        first.click("#library-save")
        wait_text(first, "#library-status", "Saved|Not saved")
        field(second, "library-edit", "edition").fill("edition by B")
        second.click("#library-save")
        status = wait_text(second, "#library-status", "changed by someone else|Saved the catalog entry")
        second.screenshot(path=str(tmp_path / "conflict.png"), full_page=True)
        assert "changed by someone else" in status and "edition by A" in status
        assert load_catalog(settings.catalog_path)[file].edition == "edition by A"
    finally:
        first.context.close()
        second.context.close()
