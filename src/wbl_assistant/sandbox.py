"""PDF extraction in a child process, under a time limit, a memory limit, a page cap and a character cap.

A PDF is untrusted input: a few kilobytes can hold a content stream that takes pypdf minutes and gigabytes
to walk. Documents are read by a worker process (`python -m wbl_assistant.sandbox`: a fresh interpreter
that imports only the extraction code, nothing of the caller's, so it works from any script) with an
address-space limit; a watchdog kills it when no page has been finished for `WBL_PDF_PAGE_SECONDS`, or when
the whole document took over `WBL_PDF_SECONDS` (a few pages sharing one huge content stream each cost the
same walk again; each page that OCR reads adds a page's time). That document then fails with a reason, a new
worker is started for the next one, and the others proceed.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from .config import Settings
from .extraction import DocumentError, ExtractedDocument, PdfLimits, read_info, read_pdf
from .ocr import OcrOptions

_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class SandboxLimits:
    page_seconds: float
    memory_mb: int
    pdf: PdfLimits
    total_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        return cls(settings.pdf_page_seconds, settings.pdf_memory_mb,
                   PdfLimits(settings.pdf_max_pages, settings.pdf_max_chars), settings.pdf_seconds)


def _send(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


class Sandbox:
    """A worker process that reads PDFs one at a time; restarted after a document it had to be stopped on."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self._process: subprocess.Popen | None = None
        self._buffer = b""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "wbl_assistant.sandbox", str(self.limits.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
            self._buffer = b""
        return self._process

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=10)
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
            self._process = None

    def extract(self, path: Path, ocr: OcrOptions | None = None, on_page: Callable[[int, int], None] | None = None,
                on_ocr_page: Callable[[int, int], None] | None = None) -> ExtractedDocument:
        """`read_pdf` in the worker; DocumentError with a reason when it fails or breaks a limit. `on_page` is
        called after each page is read, `on_ocr_page` before each page Tesseract reads."""
        process = self._start()
        try:
            _send(process.stdin, ("read", str(path), self.limits.pdf, replace(ocr, on_page=None) if ocr else None))
        except BrokenPipeError:
            self.close()
            raise DocumentError("the PDF reader process could not be started") from None
        last_progress = time.monotonic()
        deadline = last_progress + self.limits.total_seconds
        while True:
            message = self._receive(process, last_progress, deadline)
            if message[0] == "ocr":
                deadline += self.limits.page_seconds
            if message[0] in ("page", "ocr"):
                last_progress = time.monotonic()
                callback = on_page if message[0] == "page" else on_ocr_page
                if callback:
                    callback(message[1], message[2])
            elif message[0] == "done":
                return message[1]
            else:
                raise DocumentError(message[1])

    def info(self, path: Path) -> dict[str, str]:
        """`read_info` in the worker, within one page's time limit: the PDF's own title and author."""
        process = self._start()
        try:
            _send(process.stdin, ("info", str(path)))
        except BrokenPipeError:
            self.close()
            raise DocumentError("the PDF reader process could not be started") from None
        started = time.monotonic()
        message = self._receive(process, started, started + self.limits.page_seconds)
        if message[0] != "done":
            raise DocumentError(message[1])
        return message[1]

    def _receive(self, process: subprocess.Popen, last_progress: float, deadline: float) -> tuple:
        """The worker's next message; the worker is stopped (and the document failed) on a stall or a crash."""
        fd = process.stdout.fileno()
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if len(self._buffer) >= _HEADER.size + size:
                    payload = self._buffer[_HEADER.size:_HEADER.size + size]
                    self._buffer = self._buffer[_HEADER.size + size:]
                    return pickle.loads(payload)
            if time.monotonic() - last_progress > self.limits.page_seconds:
                self.close()
                raise DocumentError(f"a page took more than {self.limits.page_seconds:g} s to read "
                                    "(WBL_PDF_PAGE_SECONDS): stopped; the PDF may be malformed")
            if time.monotonic() > deadline:
                self.close()
                raise DocumentError(f"reading it took more than {self.limits.total_seconds:g} s (WBL_PDF_SECONDS, "
                                    "plus the page time of each OCR'd page): stopped; the PDF may be malformed")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                code = process.wait(timeout=10)
                self.close()
                raise DocumentError(f"reading it stopped the reader (exit {code}): out of memory? the limit is "
                                    f"{self.limits.memory_mb} MB (WBL_PDF_MEMORY_MB)")
            self._buffer += chunk


def extract_isolated(path: Path, limits: SandboxLimits, ocr: OcrOptions | None = None) -> ExtractedDocument:
    """One PDF through a sandbox of its own."""
    with Sandbox(limits) as sandbox:
        return sandbox.extract(path, ocr)


def pdf_info_isolated(path: Path, limits: SandboxLimits) -> dict[str, str]:
    """The PDF's own title and author (and page count), read by a sandbox of its own."""
    with Sandbox(limits) as sandbox:
        return sandbox.info(path)


def _serve(memory_mb: int) -> None:
    """The worker: read ("read", path, limits, ocr) and ("info", path) requests from stdin, answer on stdout,
    until stdin closes."""
    import resource

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if memory_mb:
        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        kind, path, *options = pickle.loads(requests.read(_HEADER.unpack(header)[0]))
        if kind == "info":
            try:
                _send(replies, ("done", read_info(Path(path))))
            except DocumentError as error:
                _send(replies, ("failed", str(error)))
            except Exception as error:  # as below: a problem of this document
                _send(replies, ("failed", f"cannot be read ({type(error).__name__}: {str(error)[:120]})"))
            continue
        pdf_limits, ocr = options
        if ocr is not None:
            ocr = replace(ocr, on_page=lambda page, pages: _send(replies, ("ocr", page, pages)))
        try:
            document = read_pdf(Path(path), pdf_limits,
                                on_page=lambda done, total: _send(replies, ("page", done, total)), ocr=ocr)
            _send(replies, ("done", document))
        except DocumentError as error:
            _send(replies, ("failed", str(error)))
        except MemoryError:
            _send(replies, ("failed", f"reading it needs more than {memory_mb} MB (WBL_PDF_MEMORY_MB)"))
        except Exception as error:  # anything else pypdf raises is a problem of this document
            _send(replies, ("failed", f"cannot be read ({type(error).__name__}: {str(error)[:120]})"))


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
