"""The cited page as an image: rendered from the PDF in the corpus folder, the quoted passage highlighted.

Any chat user can ask for a render, and a PDF can declare a page of any size, so the render is capped in
pixels (`WBL_RENDER_MAX_PX` on the longest side) whatever the page's size. On a scanned page the quote is
found among the OCR words (see ocr.py) instead of the missing text layer.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from .ocr import page_quote_boxes

#: Scale of a normal page (points to pixels) when the cap does not bind: about 115 dpi.
PAGE_SCALE = 1.6


class PageError(ValueError):
    """The page cannot be shown; the message says why."""


def render_page(path: Path, page: int, quote: str, max_px: int,
                ocr_words: tuple[Path, str] | None = None) -> Image.Image:
    """Page `page` (1-based) of the PDF at `path`, the lines of `quote` shaded, no side over `max_px`.

    A scanned page has no text layer to find the quote in: with `ocr_words` (the OCR cache folder and the
    file's hash) the quote is found among the page's OCR words instead."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise PageError("the PDF is no longer in the corpus folder") from None
    return _render(str(path), mtime, page, quote, max_px, ocr_words)


#: PDFium is not thread-safe: two renders at once crash the process (seen with concurrent chat sessions).
_PDFIUM = threading.Lock()


@lru_cache(maxsize=64)
def _render(path: str, mtime: float, page: int, quote: str, max_px: int,
            ocr_words: tuple[Path, str] | None) -> Image.Image:
    with _PDFIUM:
        return _render_locked(path, page, quote, max_px, ocr_words)


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
