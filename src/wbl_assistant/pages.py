"""The cited page as an image: rendered from the PDF in the corpus folder, the quoted passage highlighted.

Any chat user can ask for a render, and a PDF can declare a page of any size, so the render is capped in
pixels (`WBL_RENDER_MAX_PX` on the longest side) whatever the page's size. On a scanned page the quote is
found among the OCR words (see ocr.py) instead of the missing text layer.

Each image is encoded once into a cache folder, under a name made from what it shows, and written under a
temporary name then renamed: twenty sessions citing the same page at once cost one render and one encoding
(the others wait for it, then find it in the cache), and none of them can be served a half-written file (the
page hands out a file path; the web server streams it). Encoding uses WebP's fastest method: a quarter of the
default's CPU time (about 24 against 85 ms for a page here) for files about a quarter larger.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from PIL import Image, ImageDraw

from .ocr import page_quote_boxes

#: Scale of a normal page (points to pixels) when the cap does not bind: about 115 dpi.
PAGE_SCALE = 1.6

#: Images kept in the cache folder; beyond this the least recently used go.
CACHED_IMAGES = 256


class PageError(ValueError):
    """The page cannot be shown; the message says why."""


def render_page(path: Path, page: int, quote: str, max_px: int, cache_dir: Path,
                ocr_words: tuple[Path, str] | None = None) -> Path:
    """The image file of page `page` (1-based) of the PDF at `path`, the lines of `quote` shaded, no side over
    `max_px`, in `cache_dir`.

    A scanned page has no text layer to find the quote in: with `ocr_words` (the OCR cache folder and the
    file's hash) the quote is found among the page's OCR words instead."""
    try:
        stat = path.stat()
    except OSError:
        raise PageError("the PDF is no longer in the corpus folder") from None
    shown = [str(path.resolve()), stat.st_mtime_ns, stat.st_size, page, quote, max_px,
             [str(ocr_words[0]), ocr_words[1]] if ocr_words else None]
    target = cache_dir / f"{hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:32]}.webp"
    if _touch(target):
        return target
    with _PDFIUM:
        if _touch(target):  # rendered by another session while this one waited
            return target
        image = _render_locked(str(path), page, quote, max_px, ocr_words)
        _write_image(image, target)
    _prune(cache_dir, CACHED_IMAGES)
    return target


#: PDFium is not thread-safe: two renders at once crash the process (seen with concurrent chat sessions).
#: The lock is held through the encoding too, so that sessions waiting for the same page find it done.
_PDFIUM = threading.Lock()


def _touch(target: Path) -> bool:
    """Whether `target` exists; marks it recently used if it does."""
    try:
        os.utime(target)
    except OSError:
        return False
    return True


def _write_image(image: Image.Image, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".render-", suffix=".webp")
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, format="WEBP", method=0)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _prune(cache_dir: Path, keep: int) -> None:
    """Drop the least recently used images beyond `keep` (another process may be pruning too)."""
    images = []
    for entry in os.scandir(cache_dir):
        if entry.name.endswith(".webp") and not entry.name.startswith("."):
            try:
                images.append((entry.stat().st_mtime_ns, entry.path))
            except OSError:
                continue
    for _, stale in sorted(images, reverse=True)[keep:]:
        Path(stale).unlink(missing_ok=True)


def _render_locked(path: str, page: int, quote: str, max_px: int, ocr_words: tuple[Path, str] | None) -> Image.Image:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        raise PageError(f"the PDF cannot be opened ({error})") from None
    try:
        if not 1 <= page <= len(pdf):
            raise PageError(f"page {page} is not in this PDF")
        pdf_page = pdf[page - 1]
        width, height = pdf_page.get_size()
        scale = min(PAGE_SCALE, max_px / max(width, height, 1.0))
        image = pdf_page.render(scale=scale).to_pil().convert("RGB")
        if ocr_words is not None and not pdf_page.get_textpage().count_chars():
            _shade(image, page_quote_boxes(ocr_words[0], ocr_words[1], page, quote, scale))
        else:
            _highlight(pdf_page, image, quote, scale)
        return image
    finally:
        pdf.close()


def _shade(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> None:
    """Shade rectangles (left, top, right, bottom, in image pixels) as _highlight does."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for left, top, right, bottom in boxes:
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(255, 214, 0, 90))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _highlight(pdf_page, image: Image.Image, quote: str, scale: float) -> None:
    """Shade the lines of the quoted passage, found by its first words, on the rendered page."""
    words = quote.split()
    if len(words) < 3:
        return
    textpage = pdf_page.get_textpage()
    height = pdf_page.get_height()
    for length in (8, 5, 3):
        found = textpage.search(" ".join(words[:length]), match_case=False).get_next()
        if found:
            break
    else:
        return
    start = found[0]
    count = min(len(quote), textpage.count_chars() - start)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for index in range(textpage.count_rects(start, count)):
        left, bottom, right, top = textpage.get_rect(index)
        draw.rectangle([left * scale - 2, (height - top) * scale - 2, right * scale + 2,
                        (height - bottom) * scale + 2], fill=(255, 214, 0, 90))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
