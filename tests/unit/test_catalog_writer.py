"""The catalog writer (tomlkit, a lock file, validation, an atomic rename) and the ingest history file."""

from __future__ import annotations

import json
import multiprocessing
import os
import tomllib
from pathlib import Path

import pytest

from wbl_assistant import catalog
from wbl_assistant.catalog import (
    CatalogConflict,
    CatalogError,
    clean_values,
    load_catalog,
    put_entry,
    set_fields,
)
from wbl_assistant.history import IngestHistory
from wbl_assistant.ingest_state import DocumentResult, IngestReport

CATALOG = """\
# What gets ingested: one entry per document in corpus/.
# Keep this comment.

[[documents]]
slug = "hosa-competition"  # the HOSA guide
file = "hosa-competition.pdf"
title = "HOSA Competitive Events Guide"
publisher = "HOSA"
edition = "2025"
kind = "guide"
audience = "health sciences students"

# The IMBI report comes next.
[[documents]]
slug = "imbi-micro-internship"
file = "imbi-micro-internship.pdf"
title = "IMBI Micro-Internship"
publisher = "IMBI"
edition = "2023"
kind = "report"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "catalog.toml"
    target.write_text(CATALOG, encoding="utf-8")
    return target


def test_an_edit_keeps_comments_order_and_the_other_entries_byte_for_byte(path):
    set_fields(path, "hosa-competition.pdf", {"edition": "2026", "title": "HOSA Guide"})
    text = path.read_text(encoding="utf-8")
    expected = (CATALOG.replace('edition = "2025"', 'edition = "2026"')
                .replace('title = "HOSA Competitive Events Guide"', 'title = "HOSA Guide"'))
    assert text == expected
    assert load_catalog(path)["hosa-competition.pdf"].edition == "2026"


def test_a_new_key_goes_with_its_entry_not_after_the_next_entrys_comment(path):
    put_entry(path, "hosa-competition.pdf", lambda current: {**current, "retired": True, "retired_at": "T"})
    text = path.read_text(encoding="utf-8")
    assert 'audience = "health sciences students"\nretired = true\nretired_at = "T"\n\n# The IMBI report' in text
    assert load_catalog(path)["hosa-competition.pdf"].retired


def test_a_new_entry_is_appended_after_a_blank_line_in_the_usual_key_order(path):
    set_fields(path, "new-guide.pdf", {"title": "New Guide", "publisher": "ISBE", "edition": "2026", "kind": "guide",
                                       "audience": ""}, slug="new-guide")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(CATALOG)
    assert text[len(CATALOG):] == ('\n[[documents]]\nslug = "new-guide"\nfile = "new-guide.pdf"\ntitle = "New Guide"\n'
                                   'publisher = "ISBE"\nedition = "2026"\nkind = "guide"\naudience = ""\n')
    assert set(load_catalog(path)) == {"hosa-competition.pdf", "imbi-micro-internship.pdf", "new-guide.pdf"}


def test_a_missing_catalog_is_created(tmp_path):
    path = tmp_path / "ingest" / "catalog.toml"
    set_fields(path, "a.pdf", {"title": "A", "publisher": "P", "edition": "1", "kind": "guide"}, slug="a")
    assert load_catalog(path)["a.pdf"].title == "A"


@pytest.mark.parametrize(("values", "message"), [
    ({"title": ""}, "Title is required"),
    ({"title": "   "}, "Title is required"),
    ({"edition": "2026\n[[documents]]"}, "Edition must be one line"),
    ({"title": "x" * 301}, "Title is 301 characters long"),
    ({"kind": "guide; rm -rf"}, "Kind must be a word or two"),
])
def test_an_invalid_value_is_refused_with_a_clear_message_and_the_file_is_untouched(path, values, message):
    before = path.read_bytes()
    with pytest.raises(CatalogError, match=message):
        set_fields(path, "hosa-competition.pdf", values)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("entry", "message"), [
    ({"slug": "Bad Slug", "file": "x.pdf"}, "slug 'Bad Slug'"),
    ({"slug": "x", "file": "../x.pdf"}, "must be a plain PDF name"),
    ({"slug": "x", "file": "sub/x.pdf"}, "must be a plain PDF name"),
    ({"slug": "x", "file": "x.txt"}, "must be a plain PDF name"),
    ({"slug": "imbi-micro-internship", "file": "other.pdf"}, "already used by imbi-micro-internship.pdf"),
])
def test_unsafe_slugs_and_file_names_and_repeated_slugs_are_refused(path, entry, message):
    before = path.read_bytes()
    full = {"title": "T", "publisher": "P", "edition": "1", "kind": "guide", **entry}
    with pytest.raises(CatalogError, match=message):
        put_entry(path, entry["file"], lambda _current: full)
    assert path.read_bytes() == before


def test_a_dry_run_checks_everything_and_writes_nothing(path):
    before = path.read_bytes()
    put_entry(path, "new.pdf", lambda _c: {"slug": "new", "file": "new.pdf", "title": "T", "publisher": "P",
                                           "edition": "1", "kind": "guide"}, dry_run=True)
    assert path.read_bytes() == before
    with pytest.raises(CatalogError):
        put_entry(path, "new.pdf", lambda _c: {"slug": "new", "file": "new.pdf", "title": ""}, dry_run=True)


def test_a_retired_entry_needs_only_slug_file_and_title_and_is_loaded_as_retired(path):
    put_entry(path, "old.pdf", lambda _c: {"slug": "old", "file": "old.pdf", "title": "Old", "retired": True,
                                           "retired_file": "retired/old.20260101T000000Z.pdf"})
    entry = load_catalog(path)["old.pdf"]
    assert entry.retired and entry.retired_file == "retired/old.20260101T000000Z.pdf"
    with pytest.raises(CatalogError, match="retired file"):
        put_entry(path, "old.pdf", lambda c: {**c, "retired_file": "../../etc/passwd.pdf"})


def test_the_file_is_replaced_by_a_rename_never_rewritten_in_place(path, monkeypatch):
    inode = path.stat().st_ino
    os.chmod(path, 0o640)
    set_fields(path, "hosa-competition.pdf", {"edition": "2027"})
    assert path.stat().st_ino != inode, "written in place: a reader could see half a file"
    assert path.stat().st_mode & 0o777 == 0o640

    def fail(*_args):
        raise OSError(28, "No space left on device")

    before = path.read_bytes()
    monkeypatch.setattr(catalog.os, "replace", fail)
    with pytest.raises(CatalogError, match="No space left on device"):
        set_fields(path, "hosa-competition.pdf", {"edition": "2028"})
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_field_changed_by_someone_else_since_it_was_opened_is_a_conflict_other_fields_merge(path):
    opened = load_catalog(path)["hosa-competition.pdf"].values()
    set_fields(path, "hosa-competition.pdf", {**opened, "title": "Changed by A"}, expected=opened)
    set_fields(path, "hosa-competition.pdf", {**opened, "edition": "2026 by B"}, expected=opened)
    entry = load_catalog(path)["hosa-competition.pdf"]
    assert (entry.title, entry.edition) == ("Changed by A", "2026 by B")
    before = path.read_bytes()
    with pytest.raises(CatalogConflict, match="changed by someone else"):
        set_fields(path, "hosa-competition.pdf", {**opened, "title": "Changed by C"}, expected=opened)
    assert path.read_bytes() == before


def _writer(path: str, file: str, field: str, rounds: int, start) -> None:
    start.wait()
    for n in range(rounds):
        set_fields(Path(path), file, {field: f"{field} {n}"})


def test_concurrent_writers_in_separate_processes_lose_no_update(path):
    """Four processes, each editing its own field 15 times at once: every last edit is in the file."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    jobs = [("hosa-competition.pdf", "title"), ("hosa-competition.pdf", "audience"),
            ("imbi-micro-internship.pdf", "edition"), ("imbi-micro-internship.pdf", "publisher")]
    processes = [context.Process(target=_writer, args=(str(path), file, field, 15, start)) for file, field in jobs]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    entries = load_catalog(path)
    assert entries["hosa-competition.pdf"].title == "title 14"
    assert entries["hosa-competition.pdf"].audience == "audience 14"
    assert entries["imbi-micro-internship.pdf"].edition == "edition 14"
    assert entries["imbi-micro-internship.pdf"].publisher == "publisher 14"
    text = path.read_text(encoding="utf-8")
    assert "# Keep this comment." in text and "# The IMBI report comes next." in text
    tomllib.loads(text)


def test_clean_values_trims_and_keeps_only_editable_fields():
    assert clean_values({"title": "  A  ", "slug": "x", "audience": None}) == {"title": "A", "audience": ""}


def report(*results: DocumentResult) -> IngestReport:
    return IngestReport(results=list(results), seconds=1.5, switched=True)


def test_history_lines_record_who_counts_failures_and_changed_documents(tmp_path):
    history = IngestHistory(tmp_path / "data" / "ingest-history.jsonl")
    history.record(report(DocumentResult("a", "a.pdf", "added", chunks=3)), "cli alice", "ingest")
    history.record(report(DocumentResult("a", "a.pdf", "updated", chunks=4),
                          DocumentResult("b", "b.pdf", "failed", reason="encrypted PDF")), "admin 10.0.0.5", "upload",
                   "a.pdf")
    newest = history.newest_first()
    assert [e["who"] for e in newest] == ["admin 10.0.0.5", "cli alice"]
    assert newest[0]["counts"] == {"added": 0, "updated": 1, "unchanged": 0, "removed": 0, "failed": 1}
    assert newest[0]["failures"] == [{"doc_id": "b", "file": "b.pdf", "reason": "encrypted PDF"}]
    assert newest[0]["updated"] == [{"doc_id": "a", "file": "a.pdf"}] and newest[0]["target"] == "a.pdf"
    assert history.last_failures() == {"b.pdf": "encrypted PDF"}


def test_history_is_read_forgivingly_and_capped_by_dropping_the_oldest_lines(tmp_path):
    path = tmp_path / "ingest-history.jsonl"
    history = IngestHistory(path, max_bytes=4000)
    for n in range(40):
        history.record(report(DocumentResult("a", "a.pdf", "unchanged")), f"cli run{n}", "ingest")
    assert path.stat().st_size <= 4000
    whos = [e["who"] for e in history.newest_first()]
    assert whos[0] == "cli run39" and "cli run0" not in whos
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"torn": ')
    read = history.read()
    assert read.skipped_lines and read.entries[-1]["who"] == "cli run39"
    assert json.loads(path.read_text().splitlines()[0])["action"] == "ingest"


def test_the_parse_cache_gives_the_same_entries_and_follows_every_edit(path, tmp_path, monkeypatch):
    cache = tmp_path / "data"
    parsed = load_catalog(path, cache_dir=cache)
    assert (cache / catalog.CACHE_FILE).is_file()

    def no_parsing(text):
        raise AssertionError("an unchanged catalog should come from the cache")

    monkeypatch.setattr(catalog.tomllib, "loads", no_parsing)
    assert load_catalog(path, cache_dir=cache) == parsed
    monkeypatch.undo()

    set_fields(path, "imbi-micro-internship.pdf", {"edition": "2024"})
    assert load_catalog(path, cache_dir=cache)["imbi-micro-internship.pdf"].edition == "2024"
    (cache / catalog.CACHE_FILE).write_text("{not json", encoding="utf-8")
    assert load_catalog(path, cache_dir=cache)["imbi-micro-internship.pdf"].edition == "2024"
