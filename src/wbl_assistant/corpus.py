"""Changes to the corpus and its catalog, for the Admin and Library tabs and the CLI alike: add or replace a
PDF (with its catalog entry), list the library, edit an entry, retire and restore a document, re-ingest.

An uploaded file is checked (a PDF by content, within the size limit, a safe name) and parsed in the
sandbox *before* it replaces anything; the edition it replaces is moved aside and put back if the new one
does not make it into the index, so a bad upload never costs the corpus a document. Nothing is deleted: a
retired document's PDF moves to `corpus/retired/` (timestamped) and its catalog entry is marked retired,
so `restore` undoes it. Every operation that changes files or the catalog puts them back as they were when
its ingest does not complete, and every ingest run is recorded in the ingest history with who ran it.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .catalog import (
    EDITABLE,
    REQUIRED,
    RETIRED_KEYS,
    CatalogEntry,
    clean_values,
    load_catalog,
    put_entry,
    set_fields,
    slugify,
)
from .config import Settings
from .extraction import DocumentError
from .history import IngestHistory
from .ingest_state import IngestReport, Progress
from .ingestion import file_sha256, ingest
from .ocr import OcrOptions
from .sandbox import SandboxLimits, extract_isolated, pdf_info_isolated
from .store import IndexStore

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
STATUS_INGESTED, STATUS_FAILED, STATUS_RETIRED, STATUS_PENDING = "ingested", "failed", "retired", "not ingested"


class UploadRefused(ValueError):
    """The uploaded file cannot go into the corpus; the message says why. Nothing was changed."""


class LibraryError(ValueError):
    """A library operation cannot be done (no such document, already retired, ...); nothing was changed."""


@dataclass
class CorpusChange:
    name: str
    replaced: bool
    report: IngestReport
    restored: bool = False
    entry: dict[str, Any] | None = None


@dataclass
class LibraryChange:
    """What a retire, restore or metadata edit did; `report` is None when the index did not need an ingest."""

    action: str
    file: str
    report: IngestReport | None
    entry: dict[str, Any] | None = None
    changed: bool = True


@dataclass
class LibraryRow:
    """One document of the library: in the index, failed, retired, or in the corpus folder but not ingested."""

    doc_id: str
    file: str
    title: str
    publisher: str = ""
    edition: str = ""
    kind: str = ""
    audience: str = ""
    pages: int | None = None
    chunks: int | None = None
    sha256: str = ""
    ingested_at: float | None = None
    status: str = STATUS_INGESTED
    reason: str = ""
    catalogued: bool = True
    retired_at: str = ""
    retired_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def values(self) -> dict[str, str]:
        """The editable fields, as the edit form shows them."""
        return {key: getattr(self, key) for key in EDITABLE}


@dataclass
class UploadDefaults:
    """What the upload form starts from: the existing entry of the file it replaces, or the PDF's own info."""

    name: str
    values: dict[str, str]
    replaces: LibraryRow | None
    source: str


def safe_upload_name(name: str) -> str:
    """A file name that can only land directly in the corpus folder: no path, no odd characters."""
    base = Path(name.replace("\\", "/")).name
    stem = SAFE_NAME.sub("-", Path(base).stem).strip(".-_")[:100]
    return f"{stem or 'document'}.pdf"


def check_upload(path: Path, max_mb: int) -> str | None:
    """Why an uploaded file is refused, or None. PDFs only, by content; within the size limit."""
    try:
        size = path.stat().st_size
    except OSError as error:
        return f"the upload cannot be read ({error.strerror})"
    if size == 0:
        return "the file is empty"
    if size > max_mb * 1024 * 1024:
        return f"the file is {size / 1e6:.1f} MB; the limit is {max_mb} MB"
    with path.open("rb") as handle:
        if b"%PDF-" not in handle.read(1024):
            return "the file is not a PDF (checked by its content, not its name)"
    return None


def _without_retired(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in RETIRED_KEYS}


def _restore_entry(before: dict[str, Any] | None) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """A catalog change that puts an entry back as it was (None: remove it)."""
    return lambda _current: before


class CorpusManager:
    """Writes to the corpus folder and the catalog, one operation at a time within this process (the catalog's
    lock file and ingest's writer lock cover other processes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.history = IngestHistory(settings.ingest_history_path)
        self._lock = threading.Lock()

    # -- adding ---------------------------------------------------------------------------------------------

    def add_pdf(self, source: Path, name: str | None = None, progress: Progress | None = None,
                metadata: Mapping[str, Any] | None = None, who: str = "") -> CorpusChange:
        """Put the PDF at `source` into the corpus as `name` (default: its own name), then ingest. With
        `metadata` (title, publisher, edition, kind, audience) its catalog entry is written too: checked
        before anything lands, put back as it was if the new file does not make it into the index."""
        reason = check_upload(source, self.settings.upload_max_mb)
        if reason:
            raise UploadRefused(reason)
        name = safe_upload_name(name or source.name)
        corpus = self.settings.corpus_dir.resolve()
        target = (corpus / name).resolve()
        if target.parent != corpus:
            raise UploadRefused("that file name cannot be used")
        entry_change = self._upload_entry(name, metadata) if metadata is not None else None
        if entry_change is not None:
            put_entry(self.settings.catalog_path, name, entry_change, dry_run=True)
        try:
            extract_isolated(source, SandboxLimits.from_settings(self.settings),
                             OcrOptions.from_settings(self.settings, sha256=file_sha256(source)))
        except DocumentError as error:
            raise UploadRefused(f"the PDF cannot be ingested: {error}") from None
        with self._lock:
            before = after = None
            if entry_change is not None:
                before, after = put_entry(self.settings.catalog_path, name, entry_change)
            corpus.mkdir(parents=True, exist_ok=True)
            staged = corpus / f".upload-{os.getpid()}-{threading.get_ident()}-{name}.part"
            try:
                shutil.copyfile(source, staged)
                backup = self._set_aside(target)
                os.replace(staged, target)
            except BaseException:
                staged.unlink(missing_ok=True)
                self._revert_entry(name, entry_change, before)
                raise
            try:
                report = ingest(self.settings, progress=progress)
            except BaseException:
                self._put_back(target, backup)
                self._revert_entry(name, entry_change, before)
                raise
            failed = any(r.file == name for r in report.failed)
            if failed:
                self._put_back(target, backup)
                self._revert_entry(name, entry_change, before)
            elif backup is not None:
                backup.unlink(missing_ok=True)
            self.history.record(report, who, "upload", name)
            return CorpusChange(name, backup is not None, report, restored=failed and backup is not None,
                                entry=None if failed else after)

    def _upload_entry(self, name: str, metadata: Mapping[str, Any]) -> Callable[[dict | None], dict]:
        """The catalog change of an upload: the form's values over the file's entry (a retired one comes back),
        or a new entry whose slug comes from the file name."""
        values = clean_values({key: metadata.get(key, "") for key in EDITABLE})

        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            base = _without_retired(current) if current else {"slug": slugify(name), "file": name}
            return {**base, **values}

        return change

    def _revert_entry(self, name: str, change: Callable | None, before: dict[str, Any] | None) -> None:
        if change is not None:
            put_entry(self.settings.catalog_path, name, _restore_entry(before))

    def upload_defaults(self, source: Path, name: str | None = None) -> UploadDefaults:
        """The values the upload form starts from: the catalog entry (or the index's entry) of the document the
        file replaces, else the PDF's own title and author, read in the sandbox."""
        reason = check_upload(source, self.settings.upload_max_mb)
        if reason:
            raise UploadRefused(reason)
        name = safe_upload_name(name or source.name)
        existing = next((row for row in self.library() if row.file == name), None)
        if existing is not None:
            return UploadDefaults(name, self.editable_values(existing), existing,
                                  "catalog" if existing.catalogued else "index")
        try:
            info = pdf_info_isolated(source, SandboxLimits.from_settings(self.settings))
        except DocumentError as error:
            raise UploadRefused(f"the PDF cannot be read: {error}") from None
        title = info.get("title") or Path(name).stem.replace("_", " ").replace("-", " ").strip()
        values = {"title": title, "publisher": info.get("author", ""), "edition": "", "kind": "", "audience": ""}
        return UploadDefaults(name, values, None, "pdf")

    # -- the library ----------------------------------------------------------------------------------------

    def library(self) -> list[LibraryRow]:
        """Every document: those in the active index (with the last run's failure, if any), retired ones,
        and PDFs or catalog entries that are not in the index (failed, or not ingested yet). By title."""
        catalog = load_catalog(self.settings.catalog_path)
        manifest = IndexStore(self.settings).active()
        failures = self.history.last_failures()
        rows: list[LibraryRow] = []
        seen: set[str] = set()
        for doc_id, doc in (manifest.documents if manifest else {}).items():
            file = str(doc.get("file", ""))
            seen.add(file)
            reason = failures.get(file) or failures.get(doc_id, "")
            rows.append(LibraryRow(
                doc_id, file, str(doc.get("title", "")), str(doc.get("publisher", "")), str(doc.get("edition", "")),
                str(doc.get("kind", "")), str(doc.get("audience", "")), int(doc.get("pages", 0)),
                int(doc.get("chunks", 0)), str(doc.get("sha256", "")), doc.get("ingested_at"),
                STATUS_FAILED if reason else STATUS_INGESTED, reason, bool(doc.get("catalogued", True))))
        for entry in catalog.values():
            if entry.file in seen:
                continue
            seen.add(entry.file)
            reason = failures.get(entry.file, "")
            status = STATUS_RETIRED if entry.retired else STATUS_FAILED if reason else STATUS_PENDING
            rows.append(self._catalog_row(entry, status, reason))
        corpus = self.settings.corpus_dir
        pdfs = sorted(p.name for p in corpus.iterdir() if p.is_file() and p.suffix.lower() == ".pdf") \
            if corpus.is_dir() else []
        for file in pdfs:
            if file not in seen:
                reason = failures.get(file, "")
                rows.append(LibraryRow(slugify(file), file, Path(file).stem, status=STATUS_FAILED if reason
                                       else STATUS_PENDING, reason=reason, catalogued=False))
        return sorted(rows, key=lambda row: (row.status == STATUS_RETIRED, row.title.casefold(), row.file))

    @staticmethod
    def _catalog_row(entry: CatalogEntry, status: str, reason: str) -> LibraryRow:
        return LibraryRow(entry.slug, entry.file, entry.title, entry.publisher, entry.edition, entry.kind,
                          entry.audience, status=status, reason=reason, retired_at=entry.retired_at,
                          retired_file=entry.retired_file)

    def find(self, key: str) -> LibraryRow:
        """The document named by its file name or its slug (doc_id)."""
        key = (key or "").strip()
        rows = self.library()
        found = next((r for r in rows if r.file == key), None) or next((r for r in rows if r.doc_id == key), None)
        if found is None:
            raise LibraryError(f"no document {key!r} in the library (give its file name or its slug)")
        return found

    def editable_values(self, row: LibraryRow) -> dict[str, str]:
        """What the edit form starts from: the catalog entry (the source of the index's metadata), else the
        index's values of an uncatalogued document."""
        entry = load_catalog(self.settings.catalog_path).get(row.file)
        return entry.values() if entry is not None else row.values()

    def pdf_path(self, row: LibraryRow) -> Path | None:
        """The PDF of a document (a retired one's in retired/), if it is there and inside the corpus folder."""
        corpus = self.settings.corpus_dir.resolve()
        path = (corpus / (row.retired_file if row.status == STATUS_RETIRED else row.file)).resolve()
        inside = path.parent in (corpus, self.settings.retired_dir.resolve())
        return path if row.file and inside and path.is_file() else None

    # -- editing, retiring, restoring -----------------------------------------------------------------------

    def set_metadata(self, key: str, values: Mapping[str, Any], expected: Mapping[str, Any] | None = None,
                     who: str = "", progress: Progress | None = None) -> LibraryChange:
        """Change catalog fields of a document (an uncatalogued one gets an entry), then ingest: a catalog-only
        change updates the index without re-embedding. `expected`: the values the editor started from (see
        catalog.set_fields). Put back as it was if the ingest does not complete."""
        with self._lock:
            row = self.find(key)
            defaults = {**row.values(), "kind": row.kind or "document"}
            before, after = set_fields(self.settings.catalog_path, row.file, values, slug=row.doc_id,
                                       expected=expected, defaults=defaults)
            if before == after:
                return LibraryChange("set", row.file, None, after, changed=False)
            if row.status == STATUS_RETIRED:
                return LibraryChange("set", row.file, None, after)
            report = self._ingest_or_undo(row.file, before, None, progress)
            self.history.record(report, who, "set", row.file)
            return LibraryChange("set", row.file, report, after)

    def _ingest_or_undo(self, file: str, before: dict[str, Any] | None, move: tuple[Path, Path] | None,
                        progress: Progress | None) -> IngestReport:
        """After a catalog write: move the PDF (source, target) if asked, then ingest. If either does not
        complete, the file goes back and the catalog entry is put back as it was (`before`)."""
        moved = False
        try:
            if move is not None:
                move[1].parent.mkdir(parents=True, exist_ok=True)
                os.replace(*move)
                moved = True
            return ingest(self.settings, progress=progress)
        except BaseException:
            if moved:
                os.replace(move[1], move[0])
            put_entry(self.settings.catalog_path, file, _restore_entry(before))
            raise

    def retire(self, key: str, who: str = "", progress: Progress | None = None) -> LibraryChange:
        """Take a document out of the corpus and the index: its PDF moves to corpus/retired/ (timestamped), its
        catalog entry is marked retired (an uncatalogued document gets one). Undone by `restore`."""
        with self._lock:
            row = self.find(key)
            if row.status == STATUS_RETIRED:
                raise LibraryError(f"{row.file} is already retired")
            source = self.settings.corpus_dir / row.file
            if not source.is_file() and not row.catalogued:
                raise LibraryError(f"{row.file} is not in the corpus folder, so there is nothing to retire")
            folder = self.settings.retired_dir
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = folder / f"{Path(row.file).stem}.{stamp}.pdf"
            for n in range(2, 100):
                if not target.exists():
                    break
                target = folder / f"{Path(row.file).stem}.{stamp}-{n}.pdf"
            moves = source.is_file()  # else: a catalog entry whose file is gone; retiring it clears its failure
            marks = {"retired": True, "retired_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     **({"retired_file": f"retired/{target.name}"} if moves else {})}

            def change(current: dict[str, Any] | None) -> dict[str, Any]:
                base = current or {"slug": row.doc_id, "file": row.file, "title": row.title or row.file}
                return {**base, **marks}

            before, after = put_entry(self.settings.catalog_path, row.file, change)
            report = self._ingest_or_undo(row.file, before, (source, target) if moves else None, progress)
            self.history.record(report, who, "retire", row.file)
            return LibraryChange("retire", row.file, report, after)

    def restore(self, key: str, who: str = "", progress: Progress | None = None) -> LibraryChange:
        """Undo `retire`: the PDF goes back into the corpus folder, the entry is active again, and it is ingested.
        An entry that retire wrote for an uncatalogued document is removed (the document is uncatalogued again)."""
        with self._lock:
            row = self.find(key)
            if row.status != STATUS_RETIRED:
                raise LibraryError(f"{row.file} is not retired")
            source = self.pdf_path(row)
            if source is None:
                raise LibraryError(f"the retired PDF of {row.file} ({row.retired_file or 'unknown'}) is not in "
                                   f"{self.settings.retired_dir}")
            target = self.settings.corpus_dir / row.file
            if target.exists():
                raise LibraryError(f"a file named {row.file} is in the corpus folder already (a newer upload?); "
                                   "retire or rename it first")

            def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
                active = _without_retired(current or {})
                return active if all(str(active.get(k, "")).strip() for k in REQUIRED) else None

            before, after = put_entry(self.settings.catalog_path, row.file, change)
            report = self._ingest_or_undo(row.file, before, (source, target), progress)
            self.history.record(report, who, "restore", row.file)
            return LibraryChange("restore", row.file, report, after)

    def reingest(self, progress: Progress | None = None, who: str = "") -> IngestReport:
        with self._lock:
            report = ingest(self.settings, progress=progress)
            self.history.record(report, who, "reingest")
            return report

    def _set_aside(self, target: Path) -> Path | None:
        """Move the edition being replaced out of the corpus folder (into the data dir), if there is one."""
        if not target.exists():
            return None
        folder = self.settings.data_dir / "replaced"
        folder.mkdir(parents=True, exist_ok=True)
        backup = folder / f"{target.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}.pdf"
        shutil.copy2(target, backup)
        return backup

    def _put_back(self, target: Path, backup: Path | None) -> None:
        if backup is None:
            target.unlink(missing_ok=True)
        else:
            os.replace(backup, target)
