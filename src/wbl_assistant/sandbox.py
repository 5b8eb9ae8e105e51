"""PDF extraction in a child process, under a time limit, a memory limit, a page cap and a character cap.

A PDF is untrusted input: a few kilobytes can hold a content stream that takes pypdf minutes and gigabytes
to walk. Each document is read in a fresh process forked from a small fork server (cheap to start, nothing
shared with the ingest's model or Chroma client), with an address-space limit; a watchdog kills it when no
page has been finished for `pdf_page_seconds`, or when the whole document took over `pdf_seconds` (a few
pages sharing one huge content stream each cost the same walk again). That document then fails with a
reason; the others proceed.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from .config import Settings
from .extraction import DocumentError, ExtractedDocument, PdfLimits, read_pdf


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


@functools.cache
def _context():
    """The fork server's context, started on first use, with extraction's imports preloaded."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["wbl_assistant.extraction"])
    return context


def _worker(connection: Connection, path: str, limits: SandboxLimits) -> None:
    import resource

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if limits.memory_mb:
        cap = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        document = read_pdf(Path(path), limits.pdf, on_page=lambda done, total: connection.send(("page", done, total)))
        connection.send(("done", document))
    except DocumentError as error:
        connection.send(("failed", str(error)))
    except MemoryError:
        connection.send(("failed", f"reading it needs more than {limits.memory_mb} MB (WBL_PDF_MEMORY_MB)"))
    except Exception as error:  # anything else pypdf raises is a document problem, reported as such
        connection.send(("failed", f"cannot be read ({type(error).__name__}: {str(error)[:120]})"))
    finally:
        connection.close()


def extract_isolated(path: Path, limits: SandboxLimits,
                     on_page: Callable[[int, int], None] | None = None) -> ExtractedDocument:
    """`read_pdf` in a child process; DocumentError with a reason when it fails or breaks a limit."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_worker, args=(sender, str(path), limits), daemon=True)
    process.start()
    sender.close()
    started = last_progress = time.monotonic()
    try:
        while True:
            if receiver.poll(0.2):
                try:
                    message = receiver.recv()
                except EOFError:
                    break
                if message[0] == "page":
                    last_progress = time.monotonic()
                    if on_page:
                        on_page(message[1], message[2])
                    continue
                if message[0] == "done":
                    return message[1]
                raise DocumentError(message[1])
            if not process.is_alive() and not receiver.poll(0):
                break
            if time.monotonic() - last_progress > limits.page_seconds:
                raise DocumentError(f"a page took more than {limits.page_seconds:g} s to read "
                                    "(WBL_PDF_PAGE_SECONDS): stopped; the PDF may be malformed")
            if time.monotonic() - started > limits.total_seconds:
                raise DocumentError(f"reading it took more than {limits.total_seconds:g} s (WBL_PDF_SECONDS): "
                                    "stopped; the PDF may be malformed")
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        receiver.close()
    if process.exitcode and process.exitcode < 0:
        raise DocumentError(f"reading it was stopped by signal {-process.exitcode} (out of memory? "
                            f"the limit is {limits.memory_mb} MB, WBL_PDF_MEMORY_MB)")
    raise DocumentError("reading it failed: the reader stopped without a result (out of memory? "
                        f"the limit is {limits.memory_mb} MB, WBL_PDF_MEMORY_MB)")
