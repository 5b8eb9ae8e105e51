"""OCR benchmark (not a test): pages per second of OCR beside text-layer extraction, on the same pages.

    .venv/bin/python benchmarks/ocr.py [--corpus corpus] [--doc SLUG ...]

Extracts each document's text layer (pypdf, as ingestion does for ordinary PDFs), then reads the same pages
with OCR (WBL_OCR=force: render at 200 dpi, Tesseract, lines; no cache), then again from the OCR cache, and
prints pages/s of each side by side. Also times the sample scan, which only OCR can read.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wbl_assistant.extraction import read_pdf  # noqa: E402
from wbl_assistant.ocr import OcrOptions, tesseract_problem  # noqa: E402

#: Short sample documents with a text layer (9 pages in all), and the sample scan.
DEFAULT_DOCS = ["hosa-competition", "equity-recruitment-rubric", "clairemont-mentorship-program"]
SCAN = "north-grand-makerspace-internship"


def timed(paths: list[Path], options: OcrOptions | None) -> tuple[float, int]:
    started = time.perf_counter()
    pages = sum(read_pdf(path, options).page_count for path in paths)
    return time.perf_counter() - started, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--doc", action="append", metavar="SLUG", help="a text-layer document (repeatable)")
    parser.add_argument("--dpi", type=int, default=200)
    args = parser.parse_args()
    problem = tesseract_problem()
    if problem:
        sys.exit(f"cannot benchmark OCR: {problem}")
    paths = [args.corpus / f"{slug}.pdf" for slug in args.doc or DEFAULT_DOCS]
    scan = args.corpus / f"{SCAN}.pdf"

    cache = Path(tempfile.mkdtemp(prefix="wbl-ocr-bench-"))
    try:
        text_seconds, pages = timed(paths, None)
        force = OcrOptions(mode="force", dpi=args.dpi, cache_dir=None)
        ocr_seconds, _ = timed(paths, force)
        scan_options = OcrOptions(mode="auto", dpi=args.dpi, cache_dir=cache, sha256="scan")
        scan_seconds, scan_pages = timed([scan], scan_options)
        cached_seconds, _ = timed([scan], scan_options)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    print(f"documents: {', '.join(p.stem for p in paths)} ({pages} pages); scan: {SCAN} ({scan_pages} pages)")
    print(f"text-layer extraction (pypdf):        {text_seconds:7.2f} s   {pages / text_seconds:8.1f} pages/s")
    print(f"OCR of the same pages ({args.dpi} dpi):      {ocr_seconds:7.2f} s   {pages / ocr_seconds:8.2f} pages/s   "
          f"({ocr_seconds / text_seconds:.0f}x slower)")
    print(f"OCR of the sample scan:               {scan_seconds:7.2f} s   {scan_pages / scan_seconds:8.2f} pages/s")
    print(f"the scan again, from the OCR cache:   {cached_seconds:7.2f} s   {scan_pages / cached_seconds:8.1f} pages/s")


if __name__ == "__main__":
    main()
