"""PDF to structured text: pages of headings, paragraphs, list items and table rows, with page numbers.

pypdf gives the text; its visitor gives each line's position and font size, from which we recover what the
plain text loses: running headers and footers (dropped), headings (font size), paragraphs (line spacing),
list items (bullet glyphs) and table rows (cells that share a baseline). Cleaning also joins words
hyphenated across line breaks and normalizes whitespace. Pages without a usable text layer (scans) are read
by OCR (see ocr.py) into lines of the same kind, so they go through the same structure step.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from .ocr import OcrOptions, OcrUnavailable, ocr_lines, recognize


class DocumentError(Exception):
    """A PDF that cannot be ingested; the message is the one-line reason shown to the user."""


@dataclass
class Line:
    text: str
    page: int
    x: float = 0.0
    y: float = 0.0
    size: float = 0.0
    bold: bool = False


@dataclass
class Block:
    """A unit of document structure. kind: heading, paragraph, item or row."""

    kind: str
    text: str
    page: int
    page_end: int
    level: int = 0
    page_starts: list[tuple[int, int]] = field(default_factory=list)

    def page_at(self, offset: int) -> int:
        """The page on which the character at `offset` of `text` was printed."""
        page = self.page
        for start, number in self.page_starts:
            if offset >= start:
                page = number
        return page


@dataclass
class ExtractedDocument:
    blocks: list[Block]
    page_count: int
    info_title: str
    #: One row per page that OCR read: {"page", "confidence" (0-100), "words", "indexed"}.
    ocr_pages: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


STRONG_BULLETS = "\u2022\u00b7\u25aa\u25a0\u25cf\u25e6\u2023\u2043\uf0b7\uf0a7\u2610\u2612\u2713\u274f\u2751"
WEAK_BULLETS = "\u2013\u2014*o-"
BULLET = re.compile(rf"^([{re.escape(STRONG_BULLETS)}]\s*|[{re.escape(WEAK_BULLETS)}]\s+)(?=\S)")
NUMBERED = re.compile(r"^(\(?\d{1,2}[.)]|\(?[a-z][.)])\s+(?=\S)")
PAGE_NUMBER = re.compile(r"^(page\s*)?\d+(\s*(of|/)\s*\d+)?$", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?:;][\"'\u201d\u2019)]?$")
MARGIN_BAND = 0.075
#: A page with fewer characters of text than this has no usable text layer: OCR reads it.
MIN_PAGE_CHARS = 20
NO_TEXT = "no text layer (a scanned document?)"
OCR_OFF = "OCR is needed, but it is off: set WBL_OCR=auto (with Tesseract installed) to read scans"


@dataclass(frozen=True)
class PdfLimits:
    """Caps on what one PDF may cost: its pages and the characters extracted from it (0: no cap)."""

    max_pages: int = 0
    max_chars: int = 0


def read_pdf(path: Path, limits: PdfLimits | None = None, on_page: Callable[[int, int], None] | None = None,
             ocr: OcrOptions | None = None) -> ExtractedDocument:
    """Extract a PDF's structure, or raise DocumentError with a one-line reason.

    `on_page(done, total)` is called after each page is read (progress, and the watchdog of `sandbox`).
    With `ocr` (mode auto or force), pages without a usable text layer (force: every page) are read by OCR;
    without it, a scan is refused with a message that says how to enable OCR."""
    limits = limits or PdfLimits()
    reader = _open(path)
    total = len(reader.pages)
    if limits.max_pages and total > limits.max_pages:
        raise DocumentError(f"the PDF has {total:,} pages; the limit is {limits.max_pages:,} (WBL_PDF_MAX_PAGES)")
    raw_pages: list[list[Line]] = []
    heights: list[float] = []
    chars = 0
    try:
        for number, page in enumerate(reader.pages, start=1):
            lines = _page_lines(page, number)
            chars += sum(len(line.text) for line in lines)
            if limits.max_chars and chars > limits.max_chars:
                raise DocumentError(f"more than {limits.max_chars:,} characters of text by page {number} "
                                    "(WBL_PDF_MAX_CHARS): not a guidance document, or a malformed one")
            raw_pages.append(lines)
            heights.append(float(page.mediabox.height) or 792.0)
            if on_page:
                on_page(number, total)
    except DocumentError:
        raise
    except DependencyError as error:
        raise DocumentError(f"cannot decrypt: {error}") from None
    except Exception as error:  # pypdf raises many kinds on damaged content streams
        raise DocumentError(f"corrupt PDF: page {len(raw_pages) + 1} cannot be read ({_short(error)})") from None
    if not raw_pages:
        raise DocumentError("the PDF has no pages")
    outcome = _apply_ocr(path, raw_pages, ocr)
    text_chars = sum(len(line.text) for lines in raw_pages for line in lines)
    if text_chars < 20 * len(raw_pages) and text_chars < 200:
        raise DocumentError(outcome.no_text_reason(ocr))
    pages = _drop_running_lines(raw_pages, heights, tolerant=any(row["indexed"] for row in outcome.pages))
    blocks = _structure(pages)
    if not any(b.kind != "heading" for b in blocks):
        raise DocumentError("no body text found after removing headers and footers")
    info_title = ""
    try:
        info_title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:  # a broken info dictionary only costs us the title
        info_title = ""
    return ExtractedDocument(blocks=blocks, page_count=len(raw_pages), info_title=info_title,
                             ocr_pages=outcome.pages, warnings=outcome.warnings)


@dataclass
class _OcrOutcome:
    pages: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unavailable: str = ""
    low: list[tuple[int, float]] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def no_text_reason(self, options: OcrOptions | None) -> str:
        if options is None or options.mode == "off":
            return f"{NO_TEXT}: {OCR_OFF}"
        if self.unavailable:
            return f"{NO_TEXT}: OCR is needed, but {self.unavailable}"
        if self.low:
            return (f"{NO_TEXT}, and OCR could not read it reliably: confidence {_confidences(self.low)}, under "
                    f"the floor of {options.min_confidence:g} (WBL_OCR_MIN_CONFIDENCE); a straight, sharp scan "
                    "(300 dpi) reads better")
        if self.failed:
            return f"{NO_TEXT}, and OCR failed on {_page_list(self.failed)} (see the log)"
        return f"{NO_TEXT}, and OCR found no text in it"


def read_info(path: Path) -> dict[str, str]:
    """What the PDF says about itself (title, author): suggestions for its catalog entry, with its page count.
    The same checks as `read_pdf` open it (DocumentError when it cannot be read); no page is parsed."""
    reader = _open(path)
    info: dict[str, str] = {"pages": str(len(reader.pages))}
    try:
        metadata = reader.metadata or {}
        for key, name in (("/Title", "title"), ("/Author", "author")):
            info[name] = " ".join(str(metadata.get(key) or "").split())[:300]
    except Exception:  # a broken info dictionary only costs the suggestions
        info.update(title="", author="")
    return info


def _apply_ocr(path: Path, raw_pages: list[list[Line]], options: OcrOptions | None) -> _OcrOutcome:
    """Replace the lines of pages without a usable text layer (force: of every page) by their OCR lines, when
    OCR reads them with at least the minimum confidence; report the others."""
    outcome = _OcrOutcome()
    if options is None or options.mode == "off":
        return outcome
    wanted = [n for n, lines in enumerate(raw_pages, start=1)
              if options.mode == "force" or sum(len(line.text) for line in lines) < MIN_PAGE_CHARS]
    if not wanted:
        return outcome
    try:
        read = recognize(path, wanted, options)
    except OcrUnavailable as error:
        outcome.unavailable = str(error)
        if len(wanted) < len(raw_pages):
            outcome.warnings.append(f"{_page_list(wanted)} without a text layer not read: {error}")
        return outcome
    outcome.failed = [number for number in wanted if number not in read]
    good = []
    for number in sorted(read):
        page = read[number]
        indexed = bool(page.words) and page.confidence >= options.min_confidence
        if indexed:
            good.append(page)
        elif page.words:
            outcome.low.append((number, page.confidence))
        outcome.pages.append({"page": number, "confidence": round(page.confidence, 1), "words": len(page.words),
                              "indexed": indexed})
    for number, ocr_page_lines in ocr_lines(good).items():
        lines = [Line(_normalize(line.text), number, line.x, line.y, line.size) for line in ocr_page_lines]
        if any(line.text for line in lines):
            raw_pages[number - 1] = [line for line in lines if line.text]
    if outcome.low:
        outcome.warnings.append(
            f"OCR confidence {_confidences(outcome.low)} under the floor of {options.min_confidence:g}: "
            f"the OCR text of {'that page' if len(outcome.low) == 1 else 'those pages'} was not indexed; a "
            "straight, sharp scan (300 dpi) reads better")
    if outcome.failed:
        outcome.warnings.append(f"OCR failed on {_page_list(outcome.failed)}: not indexed")
    return outcome


def _page_list(numbers: list[int]) -> str:
    return f"page{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def _confidences(pages: list[tuple[int, float]]) -> str:
    return ", ".join(f"{confidence:.0f} on page {number}" for number, confidence in pages)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:120]


def _open(path: Path) -> pypdf.PdfReader:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DocumentError(f"cannot read the file ({error.strerror})") from None
    if size == 0:
        raise DocumentError("empty file (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(1024)
        handle.seek(max(0, size - 2048))
        tail = handle.read()
    if b"%PDF-" not in head:
        raise DocumentError("not a PDF (the file does not start with a PDF header)")
    if b"%%EOF" not in tail:
        raise DocumentError("truncated PDF: the file ends before the PDF end marker")
    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise DocumentError("encrypted PDF: it needs a password, which ingestion does not have")
            except FileNotDecryptedError:
                raise DocumentError("encrypted PDF: it needs a password, which ingestion does not have") from None
            except DependencyError as error:
                raise DocumentError(f"encrypted PDF: {_short(error)}") from None
        len(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as error:
        raise DocumentError(f"corrupt PDF: {_short(error)}") from None
    return reader


def _page_lines(page: pypdf.PageObject, number: int) -> list[Line]:
    """The page's text lines from pypdf, each with the position and font of its visitor fragments."""
    fragments: list[list] = []
    current: list = []

    def visit(text, cm, tm, font, size):
        if not text:
            return
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = (abs(cm[3]) or 1.0) * (abs(tm[3]) or 1.0)
        name = str((font or {}).get("/BaseFont", "")) if hasattr(font, "get") else ""
        for part in re.split(r"(\n)", text):
            if part == "\n":
                if current:
                    fragments.append(current.copy())
                    current.clear()
            elif part.strip():
                current.append((part, x, y, size * scale if size * scale < 200 else size, "bold" in name.lower()))
            elif part and current:
                current.append((part, x, y, 0.0, False))

    text = page.extract_text(visitor_text=visit)
    if current:
        fragments.append(current.copy())
    visited = []
    for frags in fragments:
        chars = [f for f in frags if f[3] > 0]
        if not chars:
            continue
        sizes = Counter()
        bold = 0
        for part, _, _, size, is_bold in chars:
            sizes[round(size, 1)] += len(part)
            bold += len(part) if is_bold else 0
        key = re.sub(r"\s+", "", "".join(f[0] for f in frags))
        total = sum(sizes.values())
        visited.append((key, chars[0][1], chars[0][2], sizes.most_common(1)[0][0], bold * 2 > total))
    lines: list[Line] = []
    j = 0
    for raw in (text or "").splitlines():
        clean = _normalize(raw)
        if not clean:
            continue
        key = re.sub(r"\s+", "", raw)
        meta = None
        for ahead in range(j, min(j + 6, len(visited))):
            joined = ""
            for end in range(ahead, min(ahead + 4, len(visited))):
                joined += visited[end][0]
                if joined == key:
                    meta = visited[ahead]
                    j = end + 1
                    break
                if not key.startswith(joined):
                    break
            if meta:
                break
        if meta:
            lines.append(Line(clean, number, meta[1], meta[2], meta[3], meta[4]))
        else:
            previous = lines[-1] if lines else None
            lines.append(Line(clean, number, previous.x if previous else 0.0,
                              previous.y - 1 if previous else 0.0, previous.size if previous else 0.0, False))
    return lines


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    text = text.replace("\x7f", "\u2022")
    return re.sub(r"\s+", " ", text).strip()


#: Letters of a margin line compared when OCR read it: OCR misreads a few characters differently on each page.
RUNNING_KEY_LETTERS = 20


def _running_key(text: str, tolerant: bool = False) -> str:
    key = re.sub(r"\d+", "#", text.lower())
    return re.sub(r"[^a-z#]+", "", key)[:RUNNING_KEY_LETTERS] if tolerant else key


def _drop_running_lines(pages: list[list[Line]], heights: list[float], tolerant: bool = False) -> list[list[Line]]:
    """Remove running headers, footers and page numbers: margin-band lines repeated across pages. `tolerant`
    (a document with OCR'd pages) compares only the first letters of each line."""
    def in_band(line: Line, height: float) -> bool:
        return line.y > height * (1 - MARGIN_BAND) or 0 < line.y < height * MARGIN_BAND

    counts = Counter()
    for lines, height in zip(pages, heights, strict=True):
        counts.update({_running_key(line.text, tolerant) for line in lines if in_band(line, height)})
    repeated = max(2, len(pages) // 2) if len(pages) > 2 else 1
    kept = []
    for lines, height in zip(pages, heights, strict=True):
        kept.append([
            line for line in lines
            if not (in_band(line, height)
                    and (counts[_running_key(line.text, tolerant)] >= repeated or PAGE_NUMBER.match(line.text)))
        ])
    return kept


def _body_size(pages: list[list[Line]]) -> float:
    sizes = Counter()
    for lines in pages:
        for line in lines:
            if line.size:
                sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _heading_levels(pages: list[list[Line]], body: float) -> dict[float, int]:
    """Heading font sizes, largest first, to levels 1..n. A size used once, on page 1, is the title (0)."""
    sizes = Counter()
    pages_of: dict[float, set[int]] = {}
    for lines in pages:
        previous_heading = 0.0
        for line in lines:
            if _looks_like_heading(line, body):
                if line.size != previous_heading:
                    sizes[line.size] += 1
                    pages_of.setdefault(line.size, set()).add(line.page)
                previous_heading = line.size
            else:
                previous_heading = 0.0
    ordered = sorted(sizes, reverse=True)
    levels: dict[float, int] = {}
    level = 1
    for n, size in enumerate(ordered):
        if n == 0 and sizes[size] == 1 and pages_of[size] == {1} and len(ordered) > 1:
            levels[size] = 0
            continue
        levels[size] = level
        level += 1
    return levels


def _looks_like_heading(line: Line, body: float) -> bool:
    if not body or len(line.text.split()) > 16 or BULLET.match(line.text) or re.search(r"[.,;]$", line.text):
        return False
    return line.size >= body * 1.12 or (line.bold and line.size >= body * 1.03 and not line.text.endswith(":"))


HYPHEN_BREAK = "\ue000"


def _join(left: str, right: str) -> str:
    """Join two lines of one paragraph. A hyphen at the break is marked, and resolved per document."""
    if left.endswith("-") and len(left) > 1 and left[-2].isalpha() and right[:1].islower():
        return left[:-1] + HYPHEN_BREAK + right
    return f"{left} {right}"


def _resolve_hyphens(blocks: list[Block]) -> None:
    """Decide each line-end hyphen from the document's own vocabulary: 'pro-gram' joins because
    'program' occurs elsewhere; 'work-based' keeps its hyphen because 'work-based' (or both halves) does."""
    text = " ".join(b.text for b in blocks)
    words = Counter(re.findall(r"[a-z]+", re.sub(rf"\w*{HYPHEN_BREAK}\w*", " ", text.lower())))
    compounds = {pair for token in re.findall(r"[a-z]+(?:-[a-z]+)+", text.lower())
                 for pair in map("-".join, itertools.pairwise(token.split("-")))}

    def decide(match: re.Match) -> str:
        left, right = match.group(1), match.group(2)
        lower = (left + right).lower()
        if words[lower]:
            return left + right
        if f"{left}-{right}".lower() in compounds or (words[left.lower()] and words[right.lower()]
                                                      and len(left) > 1 and len(right) > 2):
            return f"{left}-{right}"
        return left + right

    for block in blocks:
        if HYPHEN_BREAK in block.text:
            block.text = re.sub(rf"(\w+){HYPHEN_BREAK}(\w+)", decide, block.text).replace(HYPHEN_BREAK, "")


def _structure(pages: list[list[Line]]) -> list[Block]:
    body = _body_size(pages)
    levels = _heading_levels(pages, body)
    blocks: list[Block] = []
    for lines in pages:
        _page_blocks(lines, body, levels, blocks)
    _resolve_hyphens(blocks)
    return [b for b in blocks if b.text]


def _page_blocks(lines: list[Line], body: float, levels: dict[float, int], blocks: list[Block]) -> None:
    previous: Line | None = None
    table: _Table | None = None
    for line in lines:
        same_row = previous is not None and line.y >= previous.y - 1 and line.x > previous.x + 4
        if table is not None:
            if table.accepts(line, previous):
                table.add(line, previous)
                previous = line
                continue
            blocks.extend(table.rows())
            table = None
        elif same_row and blocks and previous is not None:
            table = _Table.start(blocks.pop(), previous, line)
            previous = line
            continue
        heading = levels.get(line.size) if _looks_like_heading(line, body) else None
        if heading is not None:
            last = blocks[-1] if blocks else None
            if (last and last.kind == "heading" and last.level == heading and previous is not None
                    and last.page_end == line.page and 0 < previous.y - line.y <= line.size * 1.6):
                last.text = f"{last.text} {line.text}"
            else:
                blocks.append(Block("heading", line.text, line.page, line.page, level=heading))
        elif BULLET.match(line.text) or NUMBERED.match(line.text):
            text = BULLET.sub("", line.text) if BULLET.match(line.text) else line.text
            blocks.append(Block("item", text, line.page, line.page))
        elif _continues(blocks, previous, line):
            last = blocks[-1]
            if line.page != last.page_end:
                last.page_starts.append((len(last.text) + 1, line.page))
            last.text = _join(last.text, line.text)
            last.page_end = line.page
        else:
            blocks.append(Block("paragraph", line.text, line.page, line.page))
        previous = line
    if table is not None:
        blocks.extend(table.rows())


def _continues(blocks: list[Block], previous: Line | None, line: Line) -> bool:
    """Whether `line` continues the last paragraph or list item (same page or across a page break)."""
    if not blocks or blocks[-1].kind not in ("paragraph", "item"):
        return False
    last = blocks[-1]
    if previous is None:
        return last.page_end == line.page - 1 and not SENTENCE_END.search(last.text) and line.text[:1].islower()
    gap = previous.y - line.y
    return 0 < gap <= max(line.size, previous.size) * 1.6 and abs(line.size - previous.size) < 0.6


class _Table:
    """Cells drawn one after another, several per baseline: rebuilt into rows joined with ' | '."""

    def __init__(self, first: Line, page: int) -> None:
        self.columns = [first.x]
        self.cells: list[list[list[str]]] = [[[first.text]]]
        self.row_top = first.y
        self.page = page

    @classmethod
    def start(cls, last_block: Block, previous: Line, line: Line) -> _Table:
        table = cls(previous, previous.page)
        table.cells[0][0] = [last_block.text] if last_block.kind != "heading" else [previous.text]
        table.add(line, previous)
        return table

    def _column(self, x: float) -> int | None:
        for n, column in enumerate(self.columns):
            if abs(column - x) <= 3:
                return n
        return None

    def accepts(self, line: Line, previous: Line | None) -> bool:
        if previous is None or line.page != self.page:
            return False
        if line.y >= previous.y - 1:
            return line.x > previous.x + 4 or self._column(line.x) is not None
        if previous.y - line.y > max(line.size, previous.size) * 2.2:
            return False
        return self._column(line.x) is not None

    def add(self, line: Line, previous: Line) -> None:
        row = self.cells[-1]
        if line.y >= previous.y - 1:
            if self._column(line.x) is None:
                self.columns.append(line.x)
            row.append([line.text])
        elif self._column(line.x) == 0 and abs(line.x - previous.x) > 3:
            self.cells.append([[line.text]])
            self.row_top = line.y
        else:
            row[-1].append(line.text)

    def rows(self) -> list[Block]:
        out = []
        for row in self.cells:
            cells = []
            for parts in row:
                text = parts[0]
                for part in parts[1:]:
                    text = _join(text, part)
                cells.append(text)
            out.append(Block("row", " | ".join(cells), self.page, self.page))
        return out
