"""OCR for PDF pages without a usable text layer: Tesseract (through pytesseract) over pypdfium2 renders.

Scanned flyers, signed templates and slide decks exported as images carry no text for pypdf to read. Each such
page is rendered in grayscale, Tesseract reads it into words (text, box, confidence, block/paragraph/line
numbers), and the words become text lines with the positions and sizes that extraction's structure step
expects from pypdf, so headings, paragraphs, list items and table rows come out the same way.

OCR is slow, so its words are cached per file hash in one JSON file per document (`<data dir>/ocr/<sha256>.json`):
a re-ingest of an unchanged scan reads the cache, and the chat page highlights a quoted passage on the scanned
page from the same word boxes. A page's confidence is the mean of its words' confidences, each weighted by its
length; pages under the floor are reported, not indexed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger(__name__)

#: Bump when what is cached changes: older cache files are then ignored and the pages read again.
CACHE_FORMAT = 1
#: Largest side of a rendered page, in pixels: a poster-sized page is rendered at less than the set DPI.
MAX_PIXELS = 6000
#: Seconds Tesseract may spend on one page before that page is given up (and reported).
PAGE_TIMEOUT = 300
#: The cache file is rewritten after this many newly read pages (and at the end): an interrupted ingest of a
#: long scan keeps most of its work without rewriting a growing file after every page.
CACHE_EVERY = 10
#: How to install Tesseract, quoted in every message that says OCR cannot run.
INSTALL_HINT = ("install Tesseract (Debian/Ubuntu: apt-get install tesseract-ocr tesseract-ocr-eng; "
                "macOS: brew install tesseract) and re-ingest")

#: Letters that Tesseract reads a bullet glyph as.
BULLET_LETTERS = frozenset("eo")
#: Characters that reach below the baseline: words holding one do not tell where the baseline is.
DESCENDERS = set("gjpqyQJ(),;[]{}|/@$")
ASCENDERS = set("bdfhkl0123456789!?&%#") | set("ABCDEFGHIJKLMNOPRSTUVWXYZ")
#: Height of a word, as a fraction of the font size: with ascenders (or capitals) only, and with descenders too.
ASCENDER_HEIGHT, FULL_HEIGHT = 0.72, 0.93
#: A horizontal gap wider than this many font sizes splits an OCR line into cells (table columns).
CELL_GAP = 1.5
#: Sizes within this fraction of each other belong to one font size (OCR measures each line a little apart).
SIZE_TOLERANCE = 0.08


class OcrUnavailable(RuntimeError):
    """Tesseract cannot run here; the message says why and how to enable OCR."""


@dataclass(frozen=True)
class OcrWord:
    """One word as Tesseract read it, in pixels of the rendered page (origin top left)."""

    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float
    line: tuple[int, int, int]

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass
class OcrPage:
    """The words of one page and the scale (pixels per PDF point) at which it was rendered for OCR."""

    number: int
    scale: float
    width: int
    height: int
    words: list[OcrWord] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """Mean word confidence (0-100), each word weighted by its length; 0 for a page without words."""
        weights = [(w.conf, len(w.text)) for w in self.words if w.conf >= 0]
        total = sum(n for _, n in weights)
        return sum(c * n for c, n in weights) / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "width": self.width, "height": self.height,
                "words": [[w.text, w.left, w.top, w.width, w.height, w.conf, *w.line] for w in self.words]}

    @classmethod
    def from_json(cls, number: int, data: dict[str, Any]) -> OcrPage:
        words = [OcrWord(str(t), int(x), int(y), int(w), int(h), float(c), (int(b), int(p), int(n)))
                 for t, x, y, w, h, c, b, p, n in data["words"]]
        return cls(number, float(data["scale"]), int(data["width"]), int(data["height"]), words)


@dataclass(frozen=True)
class OcrLine:
    """A line of OCR text placed like pypdf places text: x and y in PDF points, y from the page bottom (the
    baseline), size the estimated font size in points."""

    text: str
    x: float
    y: float
    size: float


@dataclass(frozen=True)
class OcrOptions:
    """How extraction may use OCR for one document; `sha256` keys the cache, `on_page(page, pages)` is called
    before each page that Tesseract reads (cached pages are not reported)."""

    mode: str = "auto"
    min_confidence: float = 80.0
    dpi: int = 200
    language: str = "eng"
    cache_dir: Path | None = None
    sha256: str = ""
    on_page: Callable[[int, int], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, sha256: str = "",
                      on_page: Callable[[int, int], None] | None = None) -> OcrOptions:
        return cls(mode=settings.ocr, min_confidence=settings.ocr_min_confidence, dpi=settings.ocr_dpi,
                   language=settings.ocr_language, cache_dir=settings.ocr_cache_dir, sha256=sha256,
                   on_page=on_page)


def tesseract_problem(language: str = "eng") -> str | None:
    """Why Tesseract cannot OCR `language` here (with how to fix it), or None when it can."""
    import pytesseract

    try:
        pytesseract.get_tesseract_version()
        installed = set(pytesseract.get_languages(config=""))
    except pytesseract.TesseractNotFoundError:
        return f"Tesseract is not installed: {INSTALL_HINT}"
    except (OSError, RuntimeError, SystemExit) as error:
        return f"Tesseract does not run ({error}): {INSTALL_HINT}"
    missing = [code for code in language.split("+") if code not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{code}" for code in missing)
        return f"Tesseract has no language data for {'+'.join(missing)}: install {packages}"
    return None


def recognize(path: Path, pages: list[int], options: OcrOptions) -> dict[int, OcrPage]:
    """The OCR words of `pages` (1-based) of the PDF at `path`: from the cache when it holds them, else read by
    Tesseract and added to the cache. A page Tesseract fails on is left out. Raises OcrUnavailable when
    Tesseract is needed and cannot run."""
    cached = _read_cache(options)
    found = {n: cached[n] for n in pages if n in cached}
    todo = [n for n in pages if n not in found]
    if not todo:
        return found
    problem = tesseract_problem(options.language)
    if problem:
        raise OcrUnavailable(problem)
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as error:
        logger.warning("OCR cannot render %s: %s", path.name, error)
        return found
    fresh = 0
    try:
        total = len(pdf)
        with _one_thread_per_tesseract():
            for number in todo:
                if options.on_page:
                    options.on_page(number, total)
                try:
                    found[number] = cached[number] = _read_page(pdf[number - 1], number, options)
                except RuntimeError as error:  # rendering or Tesseract failed (or timed out): the others go on
                    logger.warning("OCR of page %d of %s failed: %s", number, path.name, error)
                    continue
                fresh += 1
                if fresh % CACHE_EVERY == 0:
                    _write_cache(options, cached)
    finally:
        pdf.close()
        if fresh % CACHE_EVERY:
            _write_cache(options, cached)
    return found


@contextmanager
def _one_thread_per_tesseract() -> Iterator[None]:
    """Tesseract's OpenMP threads make it several times slower on a small machine: run it single-threaded.

    pytesseract passes this process's environment to Tesseract, so the limit is set for the duration of the
    calls only (and only when the user has not set one)."""
    with _ENV_LOCK:
        added = "OMP_THREAD_LIMIT" not in os.environ
        if added:
            os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        yield
    finally:
        with _ENV_LOCK:
            if added:
                os.environ.pop("OMP_THREAD_LIMIT", None)


_ENV_LOCK = threading.Lock()


def _read_page(pdf_page: Any, number: int, options: OcrOptions) -> OcrPage:
    width, height = pdf_page.get_size()
    scale = min(options.dpi / 72, MAX_PIXELS / max(width, height, 1))
    image = pdf_page.render(scale=scale, grayscale=True).to_pil()
    data = _tesseract(image, options.language)
    return OcrPage(number, scale, image.width, image.height, words_from_data(data))


def _tesseract(image: Any, language: str) -> dict[str, list]:
    """One Tesseract run on one page image: its TSV output as columns."""
    import pytesseract

    return pytesseract.image_to_data(image, lang=language, output_type=pytesseract.Output.DICT,
                                     timeout=PAGE_TIMEOUT)


def words_from_data(data: dict[str, list]) -> list[OcrWord]:
    """The words of Tesseract's `image_to_data` output (level 5 rows with text), in reading order."""
    words = []
    for n, text in enumerate(data.get("text", [])):
        text = str(text).strip()
        if int(data["level"][n]) != 5 or not text:
            continue
        words.append(OcrWord(text, int(data["left"][n]), int(data["top"][n]), int(data["width"][n]),
                             int(data["height"][n]), round(float(data["conf"][n]), 2),
                             (int(data["block_num"][n]), int(data["par_num"][n]), int(data["line_num"][n]))))
    return words


def ocr_lines(pages: list[OcrPage]) -> dict[int, list[OcrLine]]:
    """The pages' words as text lines, placed in PDF points like pypdf's lines, by page number.

    A Tesseract line becomes one line, or several when wide gaps split it into table cells. Its y is the
    baseline (the bottom of its words that have no descenders) and its size the font size estimated from its
    words' heights; sizes that differ by less than OCR's measuring error are made one across the document, so
    that paragraphs, headings and rows are recognized as in a text layer."""
    placed: list[tuple[OcrPage, list[OcrWord], float, float]] = []
    for page in pages:
        grouped: dict[tuple[int, int, int], list[OcrWord]] = {}
        for word in page.words:
            grouped.setdefault(word.line, []).append(word)
        for words in grouped.values():
            words = _clean_line(words)
            if not words:
                continue
            size, baseline = _font_size(words) / page.scale, _baseline(words)
            placed += [(page, cell, baseline, size) for cell in _cells(words, size * page.scale)]
    sizes = _snap_sizes([size for *_, size in placed], [sum(len(w.text) for w in cell) for _, cell, _, _ in placed])
    lines: dict[int, list[OcrLine]] = {page.number: [] for page in pages}
    for (page, cell, baseline, _), size in zip(placed, sizes, strict=True):
        lines[page.number].append(OcrLine(" ".join(w.text for w in cell), round(cell[0].left / page.scale, 2),
                                          round((page.height - baseline) / page.scale, 2), round(size, 1)))
    return lines


def _clean_line(words: list[OcrWord]) -> list[OcrWord]:
    """Drop what a scan adds besides text, and read a leading bullet as a bullet.

    Specks and rules come out of Tesseract as tokens without letters or digits: tiny, bars (table borders),
    or barely recognized; slivers read as a letter come with a very low confidence. A leading token of one or
    two such characters, smaller than the text and set apart from it, is the line's bullet glyph."""
    height = statistics.median(w.height for w in words)
    out = []
    for n, word in enumerate(words):
        glyphs = any(ch.isalnum() for ch in word.text)
        if (n == 0 and len(words) > 1 and len(word.text) <= 2 and (not glyphs or word.text in BULLET_LETTERS)
                and 0.2 * height <= word.height <= 1.2 * height and words[1].text[:1].isalnum()
                and words[1].left - word.right >= 0.3 * height):
            out.append(OcrWord("\u2022", word.left, word.top, word.width, word.height, word.conf, word.line))
        elif not _noise(word, glyphs, height):
            out.append(word)
    return out


def _noise(word: OcrWord, glyphs: bool, height: float) -> bool:
    if glyphs:
        return len(word.text) <= 2 and word.conf < 30
    return word.height < 0.4 * height or word.conf < 50 or not word.text.strip("|_")


def _font_size(words: list[OcrWord]) -> float:
    """Font size in pixels from word heights: a word with ascenders or capitals is about 0.72 of it high, one
    that also reaches below the baseline about 0.93. Words of x-height letters only do not count. Specks that
    Tesseract joins to a word and skew only ever make a word taller, so the lower quartile is taken."""
    estimates = []
    for word in words:
        tall = any(ch in ASCENDERS for ch in word.text)
        deep = any(ch in DESCENDERS for ch in word.text)
        if tall:
            estimates.append(word.height / (FULL_HEIGHT if deep else ASCENDER_HEIGHT))
    if not estimates:
        estimates = [w.height / FULL_HEIGHT for w in words]
    return sorted(estimates)[(len(estimates) - 1) // 4]


def _baseline(words: list[OcrWord]) -> float:
    flat = [w.bottom for w in words if not any(ch in DESCENDERS for ch in w.text)]
    return statistics.median(flat or [w.bottom - 0.22 * w.height for w in words])


def _cells(words: list[OcrWord], size: float) -> list[list[OcrWord]]:
    cells = [[words[0]]]
    for word in words[1:]:
        if word.left - cells[-1][-1].right > CELL_GAP * size:
            cells.append([word])
        else:
            cells[-1].append(word)
    return cells


def _snap_sizes(sizes: list[float], weights: list[int]) -> list[float]:
    """Give lines whose sizes differ by less than OCR's measuring error one size.

    Sizes are binned to half points; the bin with the most text within SIZE_TOLERANCE around it becomes a size,
    every line within that tolerance takes it, and the rest are grouped the same way. Grouping around the most
    printed sizes, rather than chaining neighbours, keeps body text, table text and headings apart."""
    bins: dict[float, int] = {}
    for size, weight in zip(sizes, weights, strict=True):
        key = round(size * 2) / 2
        bins[key] = bins.get(key, 0) + weight
    centers: dict[float, float] = {}
    while bins:
        def mass(center: float) -> int:
            return sum(w for key, w in bins.items() if abs(key - center) <= center * SIZE_TOLERANCE)

        center = max(bins, key=lambda key: (mass(key), bins[key]))
        for key in [key for key in bins if abs(key - center) <= center * SIZE_TOLERANCE]:
            centers[key] = center
            del bins[key]
    return [centers[round(size * 2) / 2] for size in sizes]


def cache_file(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / f"{sha256}.json"


def load_page(cache_dir: Path, sha256: str, page: int) -> OcrPage | None:
    """The cached OCR words of one page, or None (never read, or the cache is gone or unreadable)."""
    try:
        data = json.loads(cache_file(cache_dir, sha256).read_text(encoding="utf-8"))
        return OcrPage.from_json(page, data["pages"][str(page)])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_cache(options: OcrOptions) -> dict[int, OcrPage]:
    if options.cache_dir is None or not options.sha256:
        return {}
    try:
        data = json.loads(cache_file(options.cache_dir, options.sha256).read_text(encoding="utf-8"))
        if (data.get("format"), data.get("dpi"), data.get("language")) != (CACHE_FORMAT, options.dpi,
                                                                              options.language):
            return {}
        return {int(n): OcrPage.from_json(int(n), page) for n, page in data["pages"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_cache(options: OcrOptions, pages: dict[int, OcrPage]) -> None:
    """Write the whole cache file anew (atomically: a reader never sees half a file)."""
    if options.cache_dir is None or not options.sha256:
        return
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_file(options.cache_dir, options.sha256)
    data = {"format": CACHE_FORMAT, "sha256": options.sha256, "dpi": options.dpi, "language": options.language,
            "pages": {str(n): page.to_json() for n, page in sorted(pages.items())}}
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    temporary.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, target)


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).lower())


def quote_boxes(words: list[OcrWord], quote: str, factor: float = 1.0) -> list[tuple[float, float, float, float]]:
    """Rectangles (left, top, right, bottom) in image pixels, one per line, covering the quoted passage.

    The quote is found in the page's words compared letters and digits only, so hyphens at line ends, spacing
    and punctuation do not matter; when the whole quote is not there, its first words locate it. `factor`
    scales from the OCR render to the image shown."""
    keys = [_key(w.text) for w in words]
    stream = "".join(keys)
    owner = [n for n, key in enumerate(keys) for _ in key]
    target = _key(quote)
    if len(target) < 8:
        return []
    quote_words = [k for k in (_key(w) for w in quote.split()) if k]
    start = stream.find(target)
    length = len(target)
    if start < 0:
        for count in (8, 5, 3):
            prefix = "".join(quote_words[:count])
            start = stream.find(prefix) if len(prefix) >= 8 else -1
            if start >= 0:
                break
        else:
            return []
    chosen = sorted({owner[n] for n in range(start, min(start + length, len(stream)))})
    boxes: dict[tuple[int, int, int], list[float]] = {}
    for n in chosen:
        word = words[n]
        box = boxes.setdefault(word.line, [word.left, word.top, word.right, word.bottom])
        box[:] = [min(box[0], word.left), min(box[1], word.top), max(box[2], word.right), max(box[3], word.bottom)]
    return [(a * factor, b * factor, c * factor, d * factor) for a, b, c, d in boxes.values()]


def page_quote_boxes(cache_dir: Path, sha256: str, page: int, quote: str,
                     scale: float) -> list[tuple[float, float, float, float]]:
    """The quote's rectangles on a page rendered at `scale` pixels per point, from the cached OCR words."""
    ocr_page = load_page(cache_dir, sha256, page)
    if ocr_page is None:
        return []
    return quote_boxes(ocr_page.words, quote, scale / ocr_page.scale)
