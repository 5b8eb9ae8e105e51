"""Two editions of a sample document through real ingest: the change report (files, blobs, summary), the chat
answer citing both editions, the eval flag, a rebuild from the kept text, and a bounded history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, copy_sample
from wbl_assistant.config import Settings
from wbl_assistant.ingestion import ingest
from wbl_assistant.store import IndexStore

EDITION_FILE = ROOT / "ingest" / "sample" / "editions" / "cde-toolkit-2025.toml"
OLD, NEW = "2019, updated August 2024", "2025"
STEM = "2019-updated-August-2024→2025"


@pytest.fixture(scope="module")
def updated(tmp_path_factory):
    """The CDE toolkit (and its companion) ingested, then its 2025 edition: (settings, first, second report)."""
    import build_sample

    root = tmp_path_factory.mktemp("editions")
    (root / "corpus").mkdir()
    settings = Settings(data_dir=root / "data", corpus_dir=root / "corpus", catalog_path=root / "catalog.toml",
                        retire_grace=0)
    copy_sample(settings, ["cde-toolkit", "cde-toolkit-companion"])
    first = ingest(settings)
    build_sample.render_edition(EDITION_FILE, settings.corpus_dir / "cde-toolkit.pdf")
    catalog = settings.catalog_path.read_text(encoding="utf-8")
    settings.catalog_path.write_text(catalog.replace(f'edition = "{OLD}"', f'edition = "{NEW}"'), encoding="utf-8")
    second = ingest(settings)
    return settings, first, second


@pytest.fixture(scope="module")
def assistant(updated):
    from wbl_assistant.assistant import Assistant

    return Assistant(updated[0])


def report_json(settings: Settings) -> dict:
    return json.loads((settings.data_dir / "changes" / "cde-toolkit" / f"{STEM}.json").read_text(encoding="utf-8"))


def test_the_update_writes_a_change_report_and_keeps_the_old_text(updated):
    settings, first, second = updated
    statuses = {r.doc_id: r.status for r in second.results}
    assert statuses == {"cde-toolkit": "updated", "cde-toolkit-companion": "unchanged"}
    data = report_json(settings)
    assert data["old"]["label"] == OLD and data["new"]["label"] == NEW
    assert data["counts"]["added"] == 1 and data["counts"]["removed"] == 1 and data["counts"]["changed"] >= 8
    changes = [c for p in data["passages"] for c in p["changes"]]
    hours = [c for c in changes if c["kind"] == "changed" and "at least 60 hours in total" in c["old"]["text"]]
    assert hours and all("at least 80 hours in total" in c["new"]["text"] for c in hours)
    assert {"kind": "hours", "old": "60 hours", "new": "80 hours"} in hours[0]["facts"]
    sections = {(p["status"], p["old_section"] or p["new_section"]) for p in data["passages"]}
    assert ("removed", "Roles and Responsibilities > One example of dividing the work") in sections
    assert ("added", "Roles and Responsibilities > Recording and submitting hours") in sections
    assert not any("Edition:" in (c["old"] or c["new"])["text"] for c in changes), "the edition line is no change"
    markdown = (settings.data_dir / "changes" / "cde-toolkit" / f"{STEM}.md").read_text(encoding="utf-8")
    assert "| 60 hours (p. 3) | 80 hours (p. 3) |" in markdown and "(section removed)" in markdown

    store = IndexStore(settings)
    entry = store.active().documents["cde-toolkit"]
    old_version = next(r for r in first.results if r.doc_id == "cde-toolkit")
    assert old_version.status == "added"
    [kept] = entry["history"]
    assert kept["edition"] == OLD and kept["version"] != entry["version"]
    [change] = entry["changes"]
    assert (change["from"], change["to"]) == (kept["version"], entry["version"])
    assert store.has_blob(kept["text_blob"]) and store.has_blob(change["report_blob"])
    assert not list(store.records(where={"version": kept["version"]})), "the old edition's vectors are gone"


def test_the_ingest_summaries_show_the_change_counts(updated):
    from wbl_assistant import cli
    from wbl_assistant.app import change_reports, ingest_summary

    settings, _, second = updated
    [result] = [r for r in second.results if r.changes]
    counts = result.changes.counts
    line = (f"{OLD} → {NEW}: {counts['changed']} passages changed, 1 added, 1 removed; "
            f"{counts['facts']} facts moved")
    assert f"- changes in cde\\-toolkit.pdf: {OLD} → {NEW}: {counts['changed']} passages" in ingest_summary(second)
    shown = change_reports(second)
    assert "### Removed passages" in shown and "One technology academy" in shown
    with cli.console.capture() as captured:
        cli.print_ingest_summary(second, settings)
    assert f"changes cde-toolkit.pdf: {line}" in captured.get()


def citations_by_side(answer):
    old = [c for c in answer.citations if c.title.endswith("(old edition)")]
    new = [c for c in answer.citations if not c.title.endswith("(old edition)")]
    return old, new


def test_what_changed_is_answered_from_the_report_citing_both_editions(updated, assistant):
    answer = assistant.ask("What changed in the new CDE toolkit?")
    assert answer.backend == "editions" and not answer.abstained
    assert "60 hours" in answer.answer and "80 hours" in answer.answer
    assert "Recording and submitting hours" in answer.answer and "One example of dividing the work" in answer.answer
    old, new = citations_by_side(answer)
    assert old and new
    assert {c.edition for c in old} == {OLD} and {c.edition for c in new} == {NEW}
    assert all(c.title == "Career Development Experience Toolkit (old edition)" for c in old)
    data = report_json(updated[0])
    old_pages = {c["old"]["page"] for p in data["passages"] for c in p["changes"] if c["old"]}
    new_pages = {c["new"]["page"] for p in data["passages"] for c in p["changes"] if c["new"]}
    assert {c.page for c in old} <= old_pages and {c.page for c in new} <= new_pages
    for citation in answer.citations:
        assert f"[{citation.n}]" in answer.answer and citation.quote[:80] in answer.answer


def test_did_the_hour_requirement_change(updated, assistant):
    answer = assistant.ask("Did the hour requirement change?")
    assert answer.backend == "editions" and answer.answer.startswith("Yes.")
    assert "60 hours → 80 hours" in answer.answer
    old, new = citations_by_side(answer)
    assert old and new and old[0].page == 3 and new[0].page == 3
    assert "dividing the work" not in answer.answer, "changes off the subject are not listed"


def test_ordinary_answers_cite_the_current_edition_only(updated, assistant):
    answer = assistant.ask("How many hours does a career development experience require?")
    assert answer.backend == "extractive" and answer.citations
    snapshot = assistant.reader.snapshot()
    assert all(snapshot.has(c.chunk_id) and "(old edition)" not in c.title for c in answer.citations)
    assert "60 hours" not in answer.answer


def test_a_question_about_a_document_without_a_report_gets_the_ordinary_pipeline(updated, assistant):
    answer = assistant.ask("What changed in the Career Development Experience Toolkit Companion Piece?")
    assert answer.backend != "editions"


def test_the_chat_page_says_an_old_editions_page_cannot_be_shown(updated, assistant):
    from wbl_assistant.app import ChatPage

    page = ChatPage(updated[0], assistant)
    answer = assistant.ask("Did the hour requirement change?")
    old, new = citations_by_side(answer)
    image, caption = page.page_image(answer, str(old[0].n))
    assert image is None
    assert "that edition was replaced" in caption and "2019, updated August 2024 edition" in caption
    image, caption = page.page_image(answer, str(new[0].n))
    assert image is not None, caption


def test_eval_flags_the_items_whose_gold_pages_changed(updated, assistant, tmp_path):
    from wbl_assistant.evaluation.runner import run_eval

    items = [
        {"id": "hours", "question": "How many hours does a CDE require?", "answerable": True,
         "gold_docs": ["cde-toolkit"], "gold_pages": [3], "key_facts": [["80 hours"]]},
        {"id": "hours-reviewed", "question": "How many hours does a CDE require?", "answerable": True,
         "gold_docs": ["cde-toolkit"], "gold_pages": [3], "key_facts": [["80 hours"]], "edition": NEW},
        {"id": "forms", "question": "Which forms can a CDE take?", "answerable": True,
         "gold_docs": ["cde-toolkit"], "gold_pages": [6], "key_facts": [["internship"]], "edition": OLD},
        {"id": "old-fact", "question": "How long is a CDE?", "answerable": True, "gold_docs": ["cde-toolkit"],
         "key_facts": [["60 hours"]], "edition": OLD},
    ]
    dataset = tmp_path / "items.jsonl"
    dataset.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    run = run_eval(assistant, dataset, tmp_path / "run")
    review = {r["id"]: r for r in run.summary["items_to_review"]}
    assert set(review) == {"hours", "old-fact"}
    assert "gold page 3 changed" in review["hours"]["why"] and review["hours"]["editions"] == f"{OLD} → {NEW}"
    assert "key fact “60 hours”" in review["old-fact"]["why"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in summary["items_to_review"]] == ["hours", "old-fact"]
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "## Items to review (2)" in report and "gold page 3 changed" in report


def test_a_report_is_rebuilt_from_the_kept_edition_text(updated):
    from wbl_assistant.editions import rebuild_reports

    settings = updated[0]
    before = report_json(settings)
    shutil.rmtree(settings.data_dir / "changes")
    [rebuilt] = rebuild_reports(settings, "cde-toolkit")
    assert rebuilt.old.label == OLD and rebuilt.new.label == NEW
    assert report_json(settings) == before


def write_catalog(settings: Settings, edition: str) -> None:
    settings.catalog_path.write_text(
        f'[[documents]]\nslug = "guide"\nfile = "guide.pdf"\ntitle = "Internship Guide"\npublisher = "District"\n'
        f'edition = "{edition}"\nkind = "guide"\n', encoding="utf-8")


def edition_text(n: int) -> str:
    return (f"# Hours\n\nInterns must log at least {10 * n} hours of work on site (form #7).\n\n"
            f"# Contacts\n\nCall the coordinator in room {100 + n} with questions.\n")


def test_the_history_is_bounded_and_the_admin_tab_shows_the_report(settings, make_pdf, tmp_path):
    from wbl_assistant.app import ChatPage
    from wbl_assistant.assistant import Assistant

    settings = settings.with_changes(editions_kept=2, retire_grace=0, admin_password="a-long-password")
    store = IndexStore(settings)
    versions = []
    for n in range(1, 4):
        write_catalog(settings, f"202{n}")
        make_pdf(edition_text(n), settings.corpus_dir / "guide.pdf", title="Internship Guide", edition=f"202{n}")
        assert not ingest(settings).failed
        versions.append(store.active().documents["guide"]["version"])
    write_catalog(settings, "2024")
    (tmp_path / "upload").mkdir()
    upload = make_pdf(edition_text(4), tmp_path / "upload" / "guide.pdf", title="Internship Guide", edition="2024")
    shown = ChatPage(settings, Assistant(settings)).admin_upload("a-long-password", str(upload))
    assert "Replaced guide.pdf" in shown and "## Changes in Internship Guide: 2023 → 2024" in shown
    assert "\\(form \\#7\\)" in shown, "document text in the Admin tab is escaped"
    assert "| 30 hours (p. 1) | 40 hours (p. 1) |" in shown

    entry = store.active().documents["guide"]
    assert [item["edition"] for item in entry["history"]] == ["2023", "2022"]
    assert [item["version"] for item in entry["history"]] == versions[:0:-1]
    assert [(c["from_edition"], c["to_edition"]) for c in entry["changes"]] == [("2023", "2024"), ("2022", "2023")]
    found = store.meta().get(where={"part": {"$gte": 0}}, include=["metadatas"])
    kept = {m["blob"] for m in found["metadatas"] if m["blob"].startswith(("edition-text:", "change-report:"))}
    assert kept == {*(item["text_blob"] for item in entry["history"]), *(c["report_blob"] for c in entry["changes"])}
    assert not store.has_blob(f"edition-text:guide:{versions[0]}"), "the oldest edition's text is dropped"
    assert (settings.data_dir / "changes" / "guide" / "2021→2022.md").exists(), "report files stay on disk"


def test_the_cli_lists_and_prints_change_reports(updated):
    import os
    import subprocess
    import sys

    settings = updated[0]
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "COLUMNS": "200"}
    listed = subprocess.run([sys.executable, "-m", "wbl_assistant.cli", "changes"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert f"cde-toolkit: {OLD} → {NEW}:" in listed.stdout
    shown = subprocess.run([sys.executable, "-m", "wbl_assistant.cli", "changes", "cde-toolkit"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "### Facts that moved" in shown.stdout
    assert Path(settings.data_dir / "changes" / "cde-toolkit").is_dir()


def test_a_rebuild_keeps_the_history_and_the_report_follows_the_new_chunks(updated):
    from wbl_assistant.assistant import Assistant

    settings = updated[0]
    before = IndexStore(settings).active().documents["cde-toolkit"]
    report = ingest(settings, rebuild=True)
    assert not any(r.changes for r in report.results), "reading the same file again is no new edition"
    entry = IndexStore(settings).active().documents["cde-toolkit"]
    assert entry["version"] != before["version"] and entry["history"] == before["history"]
    assert entry["changes"][0]["to"] == entry["version"]
    assistant = Assistant(settings)
    answer = assistant.ask("Did the hour requirement change?")
    old, new = citations_by_side(answer)
    snapshot = assistant.reader.snapshot()
    assert old and new and all(snapshot.has(c.chunk_id) for c in new)
    assert not any(snapshot.has(c.chunk_id) for c in old)


@pytest.mark.server
def test_a_replica_of_a_chroma_server_answers_from_the_stored_report(settings, make_pdf, chroma_server):
    from wbl_assistant.assistant import Assistant

    host, port = chroma_server
    remote = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="editions_test",
                                   retire_grace=0)
    for n in (1, 2):
        write_catalog(remote, f"202{n}")
        make_pdf(edition_text(n), remote.corpus_dir / "guide.pdf", title="Internship Guide", edition=f"202{n}")
        assert not ingest(remote).failed
    replica = remote.with_changes(data_dir=settings.data_dir.parent / "replica")
    answer = Assistant(replica).ask("What changed in the internship guide?")
    assert answer.backend == "editions"
    assert "10 hours → 20 hours" in answer.answer
    assert {c.edition for c in answer.citations} == {"2021", "2022"}
