"""Changes to the corpus folder, for the Admin tab and the CLI alike: add or replace a PDF, re-ingest.

An uploaded file is checked (a PDF by content, within the size limit, a safe name) and parsed in the
sandbox *before* it replaces anything; the edition it replaces is moved aside and put back if the new one
does not make it into the index, so a bad upload never costs the corpus a document.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .extraction import DocumentError
from .ingestion import IngestReport, Progress, file_sha256, ingest
from .ocr import OcrOptions
from .sandbox import SandboxLimits, extract_isolated

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(ValueError):
    """The uploaded file cannot go into the corpus; the message says why. Nothing was changed."""


@dataclass
class CorpusChange:
    name: str
    replaced: bool
    report: IngestReport
    restored: bool = False


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


class CorpusManager:
    """Writes to the corpus folder, one at a time within this process (ingest's lock covers processes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def add_pdf(self, source: Path, name: str | None = None, progress: Progress | None = None) -> CorpusChange:
        """Put the PDF at `source` into the corpus as `name` (default: its own name), then ingest."""
        reason = check_upload(source, self.settings.upload_max_mb)
        if reason:
            raise UploadRefused(reason)
        name = safe_upload_name(name or source.name)
        corpus = self.settings.corpus_dir.resolve()
        target = (corpus / name).resolve()
        if target.parent != corpus:
            raise UploadRefused("that file name cannot be used")
        try:
            extract_isolated(source, SandboxLimits.from_settings(self.settings),
                             OcrOptions.from_settings(self.settings, sha256=file_sha256(source)))
        except DocumentError as error:
            raise UploadRefused(f"the PDF cannot be ingested: {error}") from None
        with self._lock:
            corpus.mkdir(parents=True, exist_ok=True)
            staged = corpus / f".upload-{os.getpid()}-{threading.get_ident()}-{name}.part"
            shutil.copyfile(source, staged)
            backup = self._set_aside(target)
            os.replace(staged, target)
            try:
                report = ingest(self.settings, progress=progress)
            except BaseException:
                self._put_back(target, backup)
                raise
            failed = any(r.file == name for r in report.failed)
            if failed:
                self._put_back(target, backup)
            elif backup is not None:
                backup.unlink(missing_ok=True)
            return CorpusChange(name, backup is not None, report, restored=failed and backup is not None)

    def reingest(self, progress: Progress | None = None) -> IngestReport:
        with self._lock:
            return ingest(self.settings, progress=progress)

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
