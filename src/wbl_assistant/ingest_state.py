"""What an ingest run reports, and the record that lets a run with nothing to do skip opening the index.

A complete ingest of the embedded index (no failed document) leaves `<data>/<prefix>-ingest-state.json`: a
digest of everything the run read (each PDF's name, size and mtime, the catalog and glossary files, the
settings, the package's own files) and the documents it left live. The next run computes the same digest
first, with stat calls and two small reads and without importing Chroma or the PDF libraries; when it
matches, no retired version is due for deletion and the index is as the run left it, nothing needs doing
and the run says so at once. "As it left it": embedded, both collections are still in Chroma's database (a
read-only look at its collection names); on a server, which other machines may write to, both collections
exist, the pointer still names the recorded snapshot and no run left garbage owed (three HTTP requests to
the server's API). A touched file, a changed setting, an unreadable record, a server that does not answer as
expected: the full run, which decides as before.

The record is removed (under the writer lock) before a run changes anything and written after it completes,
so a run that fails or is killed midway leaves none.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .config import Settings
from .index_names import GARBAGE_OWED_ID, POINTER_ID

if TYPE_CHECKING:
    from .editions import ChangeReport

STATUSES = ("added", "updated", "unchanged", "removed", "failed")
#: Bumped when the record's fields change: an older record then reads as absent.
STATE_FORMAT = 1


class IngestError(RuntimeError):
    """The run as a whole cannot proceed (no corpus folder, unreadable catalog, Chroma unreachable)."""


class IngestBusyError(IngestError):
    """Another ingest of the same index is running."""


@dataclass
class DocumentResult:
    doc_id: str
    file: str
    status: str
    chunks: int = 0
    pages: int = 0
    reason: str = ""
    warning: str = ""
    #: Pages read by OCR: {"page", "confidence", "words", "indexed"}.
    ocr_pages: list[dict[str, Any]] = field(default_factory=list)
    #: What changed since the previous edition, when this ingest replaced the document's file.
    changes: ChangeReport | None = None


@dataclass
class IngestReport:
    results: list[DocumentResult] = field(default_factory=list)
    seconds: float = 0.0
    snapshot: str = ""
    switched: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def chunks(self) -> int:
        return sum(r.chunks for r in self.results if r.status != "removed")

    @property
    def failed(self) -> list[DocumentResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def warnings(self) -> list[DocumentResult]:
        return [r for r in self.results if r.warning]


class Progress:
    """Receives ingest progress; the CLI and the chat page's admin tab render it. Defaults do nothing."""

    def planned(self, documents: int, to_process: int) -> None: ...

    def processing(self, name: str) -> None: ...

    def page(self, name: str, done: int, total: int) -> None: ...

    def processed(self, name: str, chunks: int) -> None: ...

    def ocr_page(self, name: str, page: int, pages: int) -> None:
        """OCR starts on page `page` of the `pages` of document `name` (a few seconds per page)."""


def corpus_pdfs(corpus: Path) -> list[Path]:
    """The PDFs an ingest reads from the corpus folder, in order."""
    return sorted(p for p in corpus.iterdir() if p.is_file() and p.suffix.lower() == ".pdf")


def state_path(settings: Settings) -> Path:
    return settings.data_dir / f"{settings.collection_prefix}-ingest-state.json"


def inputs_digest(settings: Settings, pdfs: list[Path]) -> str:
    """A digest of what an ingest reads; any change to it (or to the code) gives another digest."""
    digest = hashlib.sha256()
    shown = {f.name: str(getattr(settings, f.name)) for f in fields(settings) if not f.metadata.get("secret")}
    digest.update(json.dumps(shown, sort_keys=True).encode())
    for path in pdfs:
        stat = path.stat()
        digest.update(f"\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    for path in (settings.catalog_path, settings.glossary_path):
        digest.update(b"\0file\0" + (path.read_bytes() if path.is_file() else b"-"))
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")) + sorted(package.glob("*.json")):
        stat = path.stat()
        digest.update(f"\0{path.relative_to(package)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def clear_state(settings: Settings) -> None:
    state_path(settings).unlink(missing_ok=True)


def save_state(settings: Settings, digest: str, report: IngestReport, gc_due: float | None) -> None:
    """Record a complete run: `digest` of its inputs (taken before it read them), what it left live, and when
    its oldest retired version becomes due for deletion (`gc_due`, None if there is none)."""
    if report.failed:
        return
    live = [[r.doc_id, r.file, r.chunks, r.pages, r.warning, r.ocr_pages]
            for r in report.results if r.status != "removed"]
    state = {"format": STATE_FORMAT, "digest": digest, "snapshot": report.snapshot, "gc_due": gc_due,
             "documents": live}
    path = state_path(settings)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.write_text(json.dumps(state), encoding="utf-8")
        os.replace(staging, path)
    except OSError:
        staging.unlink(missing_ok=True)  # without the record the next run takes the full path


def unchanged_report(settings: Settings, digest: str = "",
                     clock: Callable[[], float] = time.perf_counter) -> IngestReport | None:
    """The report of a run with nothing to do, if the record shows there is nothing to do; else None.
    `digest`: the inputs' digest, when the caller took it already."""
    started = clock()
    report = _unchanged(settings, digest)
    if report is not None:
        report.seconds = clock() - started
    return report


def _unchanged(settings: Settings, digest: str) -> IngestReport | None:
    if not settings.corpus_dir.is_dir():
        return None
    try:
        state = json.loads(state_path(settings).read_text(encoding="utf-8"))
        pdfs = [] if digest else corpus_pdfs(settings.corpus_dir)
        if (state.get("format") != STATE_FORMAT or not (digest or pdfs)
                or state["digest"] != (digest or inputs_digest(settings, pdfs))
                or (state["gc_due"] is not None and time.time() >= state["gc_due"])
                or not _index_as_left(settings, state["snapshot"])):
            return None
        results = [DocumentResult(doc_id, file, "unchanged", chunks=chunks, pages=pages, warning=warning,
                                  ocr_pages=ocr_pages)
                   for doc_id, file, chunks, pages, warning, ocr_pages in state["documents"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return IngestReport(results, snapshot=state["snapshot"])


def _index_as_left(settings: Settings, snapshot: str) -> bool:
    return _server_as_left(settings, snapshot) if settings.uses_server else _collections_in_place(settings)


#: Seconds the no-op check waits for each answer of a Chroma server before taking the full path.
SERVER_TIMEOUT = 5.0


def _server_as_left(settings: Settings, snapshot: str) -> bool:
    """Both collections on the server, the pointer at `snapshot`, no garbage owed (Chroma's HTTP API v2)."""
    base = (f"http://{settings.chroma_host}:{settings.chroma_port}/api/v2/tenants/default_tenant/databases/"
            "default_database/collections")
    try:
        meta = _server_json(f"{base}/{quote(settings.meta_collection, safe='')}")
        _server_json(f"{base}/{quote(settings.chunks_collection, safe='')}")
        found = _server_json(f"{base}/{quote(str(meta['id']), safe='')}/get",
                             {"ids": [POINTER_ID, GARBAGE_OWED_ID], "include": ["metadatas"]})
        records = dict(zip(found["ids"], found["metadatas"], strict=True))
    except (OSError, ValueError, KeyError, TypeError):  # unreachable, a 404, another API: the full run decides
        return False
    return GARBAGE_OWED_ID not in records and (records.get(POINTER_ID) or {}).get("snapshot") == snapshot


def _server_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as response:
        return json.loads(response.read())


def _collections_in_place(settings: Settings) -> bool:
    """Both of the index's collections are in Chroma's database and no older-format one is left to drop. A
    read-only look at the database's collection names; if that schema is not what it was, the full run."""
    database = settings.chroma_path / "chroma.sqlite3"
    if not database.is_file():
        return False
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1.0)
        try:
            names = {row[0] for row in connection.execute("SELECT name FROM collections")}
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    legacy = settings.legacy_collection_pattern
    return ({settings.chunks_collection, settings.meta_collection} <= names
            and not any(legacy.match(name) for name in names))
