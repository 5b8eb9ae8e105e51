"""`wbl-assistant library list|set|retire|restore|add|history` as subprocesses on a real corpus and index, and
the Library tab's save handler called by two admins at once (no browser)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, copy_sample
from wbl_assistant.catalog import load_catalog
from wbl_assistant.config import Settings
from wbl_assistant.ingestion import ingest
from wbl_assistant.store import IndexStore

CLI = [sys.executable, "-m", "wbl_assistant.cli"]
DOCS = ["hosa-competition", "imbi-micro-internship"]
HEADER = "# Our catalog: a comment to keep.\n\n"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WBL_DATA_DIR": str(settings.data_dir), "WBL_CORPUS_DIR": str(settings.corpus_dir),
           "WBL_CATALOG": str(settings.catalog_path), "COLUMNS": "250", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)


def user_error(run: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 2, one clear line, no traceback."""
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    assert message in run.stderr, run.stderr[-3000:]


@pytest.fixture
def library(settings: Settings) -> Settings:
    settings.catalog_path.write_text(HEADER, encoding="utf-8")
    copy_sample(settings, DOCS)
    assert not ingest(settings).failed
    return settings


def live(settings: Settings) -> dict:
    return IndexStore(settings).active().documents


def test_library_list_prints_a_table_and_json(library):
    table = cli(library, "library", "list")
    assert table.returncode == 0, table.stderr[-3000:]
    hosa = live(library)["hosa-competition"]
    for text in ("hosa-competition.pdf", "imbi-micro-internship.pdf", hosa["sha256"][:12], hosa["edition"],
                 "ingested", "chunks"):
        assert text in table.stdout
    rows = json.loads(cli(library, "library", "list", "--json").stdout)
    row = next(r for r in rows if r["file"] == "hosa-competition.pdf")
    assert (row["doc_id"], row["chunks"], row["pages"], row["status"]) == ("hosa-competition", hosa["chunks"],
                                                                          hosa["pages"], "ingested")
    assert row["ingested_at"] and row["sha256"] == hosa["sha256"]


def test_library_set_validates_writes_and_reingests_without_reembedding(library):
    before = library.catalog_path.read_bytes()
    user_error(cli(library, "library", "set", "hosa-competition", "--title", ""), "error: Title is required")
    user_error(cli(library, "library", "set", "hosa-competition", "--kind", "guide; rm"), "Kind must be a word")
    user_error(cli(library, "library", "set", "no-such-document", "--title", "x"), "no document 'no-such-document'")
    assert library.catalog_path.read_bytes() == before
    assert cli(library, "library", "set", "hosa-competition").returncode == 2, "no field given"

    version = live(library)["hosa-competition"]["version"]
    run = cli(library, "library", "set", "hosa-competition.pdf", "--edition", "2026, second printing")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "updated the catalog entry of hosa-competition.pdf" in run.stderr
    assert load_catalog(library.catalog_path)["hosa-competition.pdf"].edition == "2026, second printing"
    assert library.catalog_path.read_text().startswith(HEADER)
    doc = live(library)["hosa-competition"]
    assert doc["edition"] == "2026, second printing" and doc["version"] == version
    history = [json.loads(line) for line in library.ingest_history_path.read_text().splitlines()]
    assert history[-1]["action"] == "set" and history[-1]["who"].startswith("cli ")


def test_library_retire_and_restore_move_the_file_mark_the_entry_and_update_the_index(library):
    run = cli(library, "library", "retire", "imbi-micro-internship")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "retired imbi-micro-internship.pdf (its PDF is now retired/imbi-micro-internship." in run.stderr
    assert not (library.corpus_dir / "imbi-micro-internship.pdf").exists()
    assert len(list(library.retired_dir.glob("imbi-micro-internship.*.pdf"))) == 1
    assert load_catalog(library.catalog_path)["imbi-micro-internship.pdf"].retired
    assert "imbi-micro-internship" not in live(library)
    rows = json.loads(cli(library, "library", "list", "--json").stdout)
    assert next(r for r in rows if r["file"] == "imbi-micro-internship.pdf")["status"] == "retired"
    plain = cli(library, "ingest")
    assert plain.returncode == 0 and "but it is not in" not in plain.stderr, \
        "a retired entry's missing file is reported as a failure"

    user_error(cli(library, "library", "retire", "imbi-micro-internship.pdf"), "is already retired")
    user_error(cli(library, "library", "restore", "hosa-competition"), "is not retired")
    run = cli(library, "library", "restore", "imbi-micro-internship.pdf")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (library.corpus_dir / "imbi-micro-internship.pdf").is_file()
    assert not list(library.retired_dir.glob("*.pdf"))
    assert not load_catalog(library.catalog_path)["imbi-micro-internship.pdf"].retired
    assert "imbi-micro-internship" in live(library)
    history = cli(library, "library", "history")
    assert history.returncode == 0
    lines = [line for line in history.stdout.splitlines() if "imbi-micro-internship.pdf" in line]
    assert "restore" in lines[0] and "retire" in lines[1], "not newest first"


def test_library_add_with_fields_writes_the_entry_and_a_failing_ingest_exits_1(library, make_pdf, tmp_path):
    pdf = make_pdf("# Handbook\n\nMentors meet interns every Tuesday.\n", tmp_path / "district-handbook.pdf")
    user_error(cli(library, "library", "add", str(pdf), "--title", "District Handbook"), "Publisher is required")
    assert not (library.corpus_dir / "district-handbook.pdf").exists()
    run = cli(library, "library", "add", str(pdf), "--title", "District Handbook", "--publisher", "District 99",
              "--edition", "2026", "--kind", "handbook")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "no catalog entry" not in run.stderr
    entry = load_catalog(library.catalog_path)["district-handbook.pdf"]
    assert (entry.slug, entry.edition, entry.kind) == ("district-handbook", "2026", "handbook")
    assert live(library)["district-handbook"]["edition"] == "2026"

    with library.catalog_path.open("a", encoding="utf-8") as handle:
        handle.write('\n[[documents]]\nslug = "gone"\nfile = "gone.pdf"\ntitle = "Gone"\npublisher = "P"\n'
                     'edition = "1"\nkind = "guide"\n')
    run = cli(library, "library", "set", "district-handbook", "--audience", "mentors")
    assert run.returncode == 1, "an ingest that reports a failure exits 1"
    assert "gone.pdf" in run.stderr and "Traceback" not in run.stderr


def test_two_admins_saving_through_the_handler_at_once_both_edits_land(library):
    from wbl_assistant.app import AdminGate, LibraryTab
    from wbl_assistant.corpus import CorpusManager

    password = "correct horse battery staple"
    tab = LibraryTab(library, CorpusManager(library), AdminGate(password))
    opened = tab._form("hosa-competition.pdf")[-1]
    edits = [{**opened, "title": "Title from admin A"}, {**opened, "audience": "Audience from admin B"}]
    start, replies = threading.Barrier(2), []

    def save(values: dict) -> None:
        start.wait()
        replies.append(tab.save(password, "hosa-competition.pdf", *[values[k] for k in
                                ("title", "publisher", "edition", "kind", "audience")], opened)[0])

    threads = [threading.Thread(target=save, args=(values,)) for values in edits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(replies) == 2 and all("Saved the catalog entry" in reply for reply in replies), replies
    entry = load_catalog(library.catalog_path)["hosa-competition.pdf"]
    assert (entry.title, entry.audience) == ("Title from admin A", "Audience from admin B")
    assert live(library)["hosa-competition"]["title"] == "Title from admin A"
