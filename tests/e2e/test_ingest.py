"""Ingestion into a real embedded Chroma (and a real Chroma server), from real PDFs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, copy_sample, drop_chunk_collections
from wbl_assistant.ingest_state import IngestError
from wbl_assistant.ingestion import ingest
from wbl_assistant.store import IndexStore

THREE = ["imbi-final-projects", "equity-recruitment-rubric", "wbl-quality-criteria"]


def index_records(settings):
    """The live manifest and the chunk records of its live versions."""
    store = IndexStore(settings)
    manifest = store.active()
    live = manifest.live_versions
    return manifest, {r[0]: r[2] for r in store.records() if r[2]["version"] in live}


def chunk_ids_of(records, doc_id):
    return {cid for cid, meta in records.items() if meta["doc_id"] == doc_id}


def test_cold_ingest_writes_chunks_with_full_metadata_then_skips_unchanged(settings):
    copy_sample(settings, THREE)
    first = ingest(settings)
    assert {r.doc_id: r.status for r in first.results} == dict.fromkeys(THREE, "added")
    manifest, records = index_records(settings)
    assert len(records) == first.chunks > 0
    entry = manifest.documents["equity-recruitment-rubric"]
    assert entry["title"] == "Rubric for Equity-Centered Recruitment"
    assert entry["publisher"] == "EdSystems" and entry["edition"] == "undated" and entry["kind"] == "rubric"
    assert len(entry["sha256"]) == 64 and entry["chunks"] > 0 and entry["pages"] >= 1
    chunk_id, meta = next((cid, m) for cid, m in records.items() if m["doc_id"] == "equity-recruitment-rubric")
    assert 1 <= meta["page"] <= meta["page_end"] and meta["section"]
    assert meta["version"] == entry["version"] and chunk_id.startswith("equity-recruitment-rubric:")
    sentences = json.loads(meta["sentences"])
    assert sentences and all(isinstance(text, str) and page >= 1 for text, page, _ in sentences)
    assert len(meta["sentence_vectors"]) > 100

    second = ingest(settings)
    assert {r.status for r in second.results} == {"unchanged"}
    assert not second.switched and second.snapshot == first.snapshot


def test_garbage_collection_drops_unnamed_blobs_and_keeps_the_live_ones(settings):
    copy_sample(settings, THREE[:1])
    ingest(settings)
    store = IndexStore(settings)
    manifest = store.active()
    store.save_blob("orphan", b"x" * 3_500_000)  # two parts
    assert store.has_blob("orphan")
    store.collect_garbage(manifest, grace_seconds=0)
    assert not store.has_blob("orphan") and store.load_blob("orphan") is None
    assert store.load_blob(manifest.lexical)
    assert store.active() == manifest


def test_changed_document_is_replaced_and_removed_one_is_gone(settings, make_pdf):
    copy_sample(settings, THREE)
    ingest(settings)
    _, before = index_records(settings)
    make_pdf("# New edition\n\nThe mentorship program now meets every week.\n",
             settings.corpus_dir / "imbi-final-projects.pdf")
    (settings.corpus_dir / "wbl-quality-criteria.pdf").unlink()
    settings.catalog_path.write_text(settings.catalog_path.read_text().replace(
        'file = "wbl-quality-criteria.pdf"', 'file = "wbl-quality-criteria-old.pdf"'))

    report = ingest(settings)
    statuses = {r.doc_id: r.status for r in report.results}
    assert statuses["imbi-final-projects"] == "updated"
    assert statuses["equity-recruitment-rubric"] == "unchanged"
    assert "removed" in [r.status for r in report.results if r.doc_id == "wbl-quality-criteria"]
    _, after = index_records(settings)
    assert not chunk_ids_of(after, "wbl-quality-criteria")
    new_ids = chunk_ids_of(after, "imbi-final-projects")
    assert new_ids and not new_ids & chunk_ids_of(before, "imbi-final-projects")
    assert chunk_ids_of(after, "equity-recruitment-rubric") == chunk_ids_of(before, "equity-recruitment-rubric")
    assert any("every week" in IndexStore(settings).chunks().get(ids=[i])["documents"][0] for i in new_ids)


def test_catalog_change_refreshes_metadata_without_new_chunks(settings):
    copy_sample(settings, THREE)
    ingest(settings)
    _, before = index_records(settings)
    settings.catalog_path.write_text(settings.catalog_path.read_text().replace('edition = "undated"',
                                                                               'edition = "2025"'))
    report = ingest(settings)
    assert report.switched
    manifest, after = index_records(settings)
    assert set(after) == set(before)
    assert manifest.documents["equity-recruitment-rubric"]["edition"] == "2025"


def test_uncatalogued_pdf_is_ingested_with_a_warning(settings, make_pdf):
    make_pdf("# Overview\n\nA district handbook for internships.\n", settings.corpus_dir / "handbook.pdf",
             title="District Internship Handbook")
    report = ingest(settings)
    [result] = report.results
    assert result.status == "added" and "no catalog entry" in result.warning
    manifest, _ = index_records(settings)
    assert {d["title"] for d in manifest.documents.values()} == {"District Internship Handbook"}


def write_bad_files(corpus: Path, make_pdf) -> None:
    import pypdf

    (corpus / "empty.pdf").write_bytes(b"")
    (corpus / "notes.pdf").write_text("these are meeting notes, saved with the wrong extension")
    good = make_pdf("# A\n\nSome text that will be cut in half by a failed download.\n", corpus / "tmp.pdf")
    (corpus / "cut.pdf").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (corpus / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 16 + b"\n%%EOF\n")
    writer = pypdf.PdfWriter(clone_from=str(good))
    writer.encrypt(user_password="secret", algorithm="AES-256")
    with (corpus / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    good.unlink()
    from reportlab.pdfgen import canvas

    scan = canvas.Canvas(str(corpus / "scan.pdf"))
    scan.rect(50, 50, 400, 600, fill=1)
    scan.showPage()
    scan.save()


BAD_REASONS = {
    "empty.pdf": "empty file",
    "notes.pdf": "not a PDF",
    "cut.pdf": "truncated",
    "garbage.pdf": "corrupt",
    "locked.pdf": "encrypted",
    "scan.pdf": "no text layer",
    "missing.pdf": "not in",
}


def test_bad_files_get_a_reason_and_the_others_are_ingested(settings, make_pdf):
    copy_sample(settings, ["equity-recruitment-rubric"])
    write_bad_files(settings.corpus_dir, make_pdf)
    with settings.catalog_path.open("a") as handle:
        handle.write('[[documents]]\nslug = "gone"\nfile = "missing.pdf"\ntitle = "Gone"\npublisher = "X"\n'
                     'edition = "1"\nkind = "manual"\n')
    report = ingest(settings)
    reasons = {r.file: r.reason for r in report.failed}
    assert set(reasons) == set(BAD_REASONS)
    for file, expected in BAD_REASONS.items():
        assert expected in reasons[file], (file, reasons[file])
    assert [r.doc_id for r in report.results if r.status == "added"] == ["equity-recruitment-rubric"]


def test_a_broken_new_edition_keeps_the_previous_version(settings):
    copy_sample(settings, THREE)
    ingest(settings)
    _, before = index_records(settings)
    (settings.corpus_dir / "wbl-quality-criteria.pdf").write_bytes(b"%PDF-1.7\n")
    report = ingest(settings)
    [failed] = report.failed
    assert failed.doc_id == "wbl-quality-criteria" and "previously ingested version stays" in failed.reason
    _, after = index_records(settings)
    assert chunk_ids_of(after, "wbl-quality-criteria") == chunk_ids_of(before, "wbl-quality-criteria")


def test_rebuild_reembeds_everything(settings):
    copy_sample(settings, THREE[:2])
    first = ingest(settings)
    _, before = index_records(settings)
    second = ingest(settings, rebuild=True)
    assert {r.status for r in second.results} == {"updated"}
    assert second.snapshot != first.snapshot
    _, records = index_records(settings)
    assert len(records) == first.chunks and not set(records) & set(before)


def test_no_corpus_or_empty_corpus_is_a_clear_error(settings):
    with pytest.raises(IngestError, match="holds no PDF"):
        ingest(settings)
    with pytest.raises(IngestError, match="no corpus folder"):
        ingest(settings.with_changes(corpus_dir=settings.corpus_dir / "nope"))


def test_an_exception_midway_leaves_the_previous_index_serving(settings, make_pdf, monkeypatch):
    import wbl_assistant.ingestion as ingestion

    copy_sample(settings, THREE[:2])
    first = ingest(settings)
    _, before = index_records(settings)
    make_pdf("# New\n\nA new document.\n", settings.corpus_dir / "a-new.pdf")
    make_pdf("# Newer\n\nAnother new document.\n", settings.corpus_dir / "b-new.pdf")

    def failing(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError("disk full")

    original = ingestion._write_documents
    monkeypatch.setattr(ingestion, "_write_documents", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest(settings)
    active, after = index_records(settings)
    assert active.snapshot == first.snapshot and after == before
    assert IndexStore(settings).chunks().count() == len(before), "the failed run's chunks are left behind"


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from wbl_assistant.config import Settings
    from wbl_assistant.ingest_state import Progress
    from wbl_assistant.ingestion import ingest

    class StallAfterFirst(Progress):
        def processed(self, name, chunks):
            Path(sys.argv[1]).write_text(name)
            time.sleep(120)

    ingest(Settings.from_env(), progress=StallAfterFirst())
""")


def ingest_then_kill_midway(settings):
    """Ingest one document, then kill -9 an ingest of two more after its first; the first report and the
    records from before."""
    copy_sample(settings, THREE[:1])
    first = ingest(settings)
    _, before = index_records(settings)
    copy_sample(settings, THREE[1:])
    marker = settings.data_dir.parent / "marker"
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path)}
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(marker)], env=env)
    deadline = time.time() + 120
    while not marker.exists():
        assert child.poll() is None and time.time() < deadline, "the ingest subprocess never got going"
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    return first, before


def test_kill_9_midway_leaves_the_previous_index_and_the_next_run_repairs(settings, make_pdf):
    first, before = ingest_then_kill_midway(settings)

    active, after = index_records(settings)
    assert active.snapshot == first.snapshot and after == before
    assert IndexStore(settings).chunks().count() > len(before), "the killed run should have left orphan chunks"

    report = ingest(settings)
    assert sorted(r.status for r in report.results) == ["added", "added", "unchanged"]
    _, records = index_records(settings)
    assert IndexStore(settings).chunks().count() == len(records) == report.chunks


def test_orphans_of_a_killed_run_are_deleted_by_the_next_run_even_with_nothing_to_write(settings):
    first, before = ingest_then_kill_midway(settings)
    for doc_id in THREE[1:]:
        (settings.corpus_dir / f"{doc_id}.pdf").unlink()
    assert IndexStore(settings).chunks().count() > len(before)

    report = ingest(settings)
    assert [r.status for r in report.results if r.doc_id == THREE[0]] == ["unchanged"]
    assert not report.switched and report.snapshot == first.snapshot
    assert IndexStore(settings).chunks().count() == len(before)


class CountingStore(IndexStore):
    """An IndexStore that counts how often the chunk collection is opened."""

    opened = 0

    def chunks(self, create: bool = True):
        collection = super().chunks(create)
        CountingStore.opened += 1
        return collection


def ingest_then_replace_one(settings, make_pdf) -> None:
    """Ingest two documents, then a new edition of one: its old version is retired, within its grace."""
    copy_sample(settings, THREE[:2])
    ingest(settings)
    make_pdf("# New edition\n\nThe mentorship program now meets every week.\n",
             settings.corpus_dir / "imbi-final-projects.pdf")
    ingest(settings)


def test_a_no_op_ingest_does_not_read_the_chunk_collection(settings, make_pdf):
    ingest_then_replace_one(settings, make_pdf)
    CountingStore.opened = 0
    report = ingest(settings, store=CountingStore(settings))
    assert {r.status for r in report.results} == {"unchanged"}
    assert CountingStore.opened == 1, "only the existence check may open the chunk collection"


def test_versions_past_their_grace_are_deleted_and_leave_the_manifest(settings, make_pdf):
    ingest_then_replace_one(settings, make_pdf)
    store = IndexStore(settings)
    manifest = store.active()
    assert manifest.retired, "the replaced version (and lexical index) should be retired, within their grace"
    assert store.chunks().count() > manifest.live_chunks

    ingest(settings.with_changes(retire_grace=0))
    manifest = IndexStore(settings).active()
    assert manifest.retired == ()
    assert IndexStore(settings).chunks().count() == manifest.live_chunks


@pytest.mark.server
def test_server_mode_ingests_through_http(settings, chroma_server):
    host, port = chroma_server
    remote = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="ingest_test")
    copy_sample(remote, THREE[:2])
    first = ingest(remote)
    assert first.count("added") == 2
    assert not (settings.data_dir / "chroma").exists()
    _, records = index_records(remote)
    assert len(records) == first.chunks
    second = ingest(remote)
    assert {r.status for r in second.results} == {"unchanged"}


def test_cli_reports_failures_with_exit_1_and_no_traceback(settings, make_pdf):
    copy_sample(settings, ["equity-recruitment-rubric"])
    (settings.corpus_dir / "empty.pdf").write_bytes(b"")
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "COLUMNS": "200"}
    cli = [sys.executable, "-m", "wbl_assistant.cli"]
    run = subprocess.run([*cli, "ingest"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "Ingest summary" in run.stderr and "empty.pdf: empty file (0 bytes)" in run.stderr
    assert "documents" in run.stderr

    (settings.corpus_dir / "empty.pdf").unlink()
    again = subprocess.run([*cli, "ingest"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "index unchanged" in again.stderr

    missing = subprocess.run([*cli, "ingest"], env={**env, "WBL_CORPUS_DIR": "/nonexistent"},
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "no corpus folder" in missing.stderr and "Traceback" not in missing.stderr


# -- a run with nothing to do, answered from the record the last complete run left (ingest_state.py) ----------

def comparable(report):
    return [(r.doc_id, r.file, r.status, r.chunks, r.pages, r.warning, r.ocr_pages) for r in report.results]


def test_a_no_op_is_answered_from_the_record_without_opening_the_index(settings, make_pdf, monkeypatch):
    ingest_then_replace_one(settings, make_pdf)
    make_pdf("# Notes\n\nA document the catalog does not list.\n", settings.corpus_dir / "notes.pdf")
    ingest(settings)
    full = ingest(settings, store=IndexStore(settings))  # a store given: the full path, which records again
    assert not full.switched and full.warnings
    monkeypatch.setattr("wbl_assistant.ingestion.IndexStore", None)  # any use of the index would fail now
    quick = ingest(settings)
    assert comparable(quick) == comparable(full)
    assert quick.snapshot == full.snapshot and not quick.switched


def test_anything_ingest_reads_that_changed_takes_the_full_path(settings, make_pdf):
    from wbl_assistant.ingest_state import unchanged_report

    copy_sample(settings, THREE[:2])
    ingest(settings)
    assert unchanged_report(settings) is not None
    pdf = settings.corpus_dir / f"{THREE[0]}.pdf"
    os.utime(pdf, ns=(pdf.stat().st_atime_ns, pdf.stat().st_mtime_ns + 1_000_000))  # touched, same bytes
    assert unchanged_report(settings) is None
    report = ingest(settings)
    assert {r.status for r in report.results} == {"unchanged"} and not report.switched
    assert unchanged_report(settings) is not None, "the full run recorded its inputs again"

    settings.catalog_path.write_text(settings.catalog_path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert unchanged_report(settings) is None
    ingest(settings)
    assert unchanged_report(settings.with_changes(chunk_size=settings.chunk_size + 1)) is None
    make_pdf("# Extra\n\nOne more document.\n", settings.corpus_dir / "extra.pdf")
    assert unchanged_report(settings) is None
    assert [r.status for r in ingest(settings).results if r.doc_id == "extra"] == ["added"]


def test_a_run_with_a_failure_or_a_missing_collection_leaves_no_shortcut(settings):
    from wbl_assistant.ingest_state import state_path, unchanged_report

    copy_sample(settings, THREE[:1])
    (settings.corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    assert ingest(settings).failed
    assert not state_path(settings).exists()
    assert ingest(settings).failed, "the failure is reported again, not skipped"
    (settings.corpus_dir / "broken.pdf").unlink()
    ingest(settings)
    assert unchanged_report(settings) is not None
    assert drop_chunk_collections(settings)
    assert unchanged_report(settings) is None
    repaired = ingest(settings)
    assert repaired.switched and repaired.chunks > 0


def test_a_retired_version_due_for_deletion_takes_the_full_path(settings, make_pdf, monkeypatch):
    from types import SimpleNamespace

    from wbl_assistant import ingest_state

    ingest_then_replace_one(settings, make_pdf)
    due = json.loads(ingest_state.state_path(settings).read_text(encoding="utf-8"))["gc_due"]
    assert due is not None and ingest_state.unchanged_report(settings) is not None
    monkeypatch.setattr(ingest_state, "time", SimpleNamespace(time=lambda: due + 1, perf_counter=time.perf_counter))
    assert ingest_state.unchanged_report(settings) is None


def test_the_cli_answers_a_no_op_without_importing_chroma(settings):
    copy_sample(settings, THREE[:1])
    ingest(settings)
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "HF_HUB_OFFLINE": "1"}
    code = textwrap.dedent("""
        import sys
        from wbl_assistant.cli import main
        try:
            main(["ingest"])
        except SystemExit as end:
            print("exit", end.code, "chromadb" in sys.modules, "pypdf" in sys.modules)
    """)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.stdout.split() == ["exit", "0", "False", "False"], run.stdout + run.stderr[-2000:]
    assert "index unchanged" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.server
def test_on_a_server_the_no_op_also_checks_the_pointer_and_owed_garbage(settings, chroma_server):
    from dataclasses import replace

    from wbl_assistant.ingest_state import unchanged_report

    host, port = chroma_server
    remote = settings.with_changes(chroma_host=host, chroma_port=port, collection_prefix="noop_test")
    copy_sample(remote, THREE[:1])
    first = ingest(remote)
    quick = unchanged_report(remote)
    assert quick is not None and quick.snapshot == first.snapshot and comparable(quick)[0][2] == "unchanged"

    store = IndexStore(remote)  # another machine writes to the same server: the record no longer holds
    store.owe_garbage_collection()
    assert unchanged_report(remote) is None
    ingest(remote)
    assert unchanged_report(remote) is not None
    store.activate(replace(store.active(), snapshot="s-from-another-machine"))
    assert unchanged_report(remote) is None
