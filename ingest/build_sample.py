"""Render the sample corpus sources (`ingest/sample/<slug>.md`) into `corpus/<slug>.pdf`.

The PDFs are laid out like the official publications they stand in for (title block, running header and
footer, numbered pages, headings, lists, tables), so that ingestion meets what real guidance PDFs contain.
Output is deterministic: the same sources give the same bytes, which `--check` relies on.

A catalog entry with `scan = true` becomes a scan: its pages rendered as above, rasterized in grayscale at
SCAN_DPI with a slight skew and specks, and wrapped as images into a PDF without a text layer, so that the
corpus holds a document that only OCR can read.

    python ingest/build_sample.py            # rebuild every PDF
    python ingest/build_sample.py --only cde-toolkit
    python ingest/build_sample.py --check    # exit 1 when a committed PDF is out of date
    python ingest/build_sample.py --edition ingest/sample/editions/cde-toolkit-2025.toml --out /tmp/cde.pdf

An *edition file* (`ingest/sample/editions/<slug>-<edition>.toml`) describes a later edition of one sample
document as edits of its source (text replaced, sections removed, sections added). It is rendered only on
request, for the tests of change reports between editions; the sample corpus itself never holds it.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

rl_config.invariant = 1

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "ingest" / "sample"
CATALOG = ROOT / "ingest" / "catalog.toml"
CORPUS = ROOT / "corpus"

#: Documents longer than this start each level-1 chapter on a new page, as printed manuals do.
CHAPTER_PAGE_BREAK_WORDS = 2500

PAGE_WIDTH, PAGE_HEIGHT = LETTER
MARGIN = inch
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN

FACTS_COMMENT = re.compile(r"^<!--\s*facts:.*-->$")
PAGEBREAK_COMMENT = re.compile(r"^<!--\s*pagebreak\s*-->$")
HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
CHECKLIST = re.compile(r"^- \[ \]\s+(.*)$")
BULLET = re.compile(r"^(\s*)- (.*)$")
NUMBERED = re.compile(r"^(\d+)\.\s+(.*)$")
TABLE_CAPTION = re.compile(r"^Table:\s*(.*)$")
TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


class SourceError(ValueError):
    """A sample source uses something the builder cannot render."""


@dataclass
class Block:
    kind: str
    text: str = ""
    level: int = 0
    label: str = ""
    rows: list[list[str]] = field(default_factory=list)


def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle(
        "body", fontName="Helvetica", fontSize=11, leading=15, spaceAfter=7, alignment=TA_LEFT,
        hyphenationLang="en_US", embeddedHyphenation=1, uriWasteReduce=0.3,
    )
    return {
        "body": body,
        "title": ParagraphStyle("title", parent=body, fontName="Helvetica-Bold", fontSize=22, leading=27,
                                spaceAfter=10, hyphenationLang=""),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=11, leading=15, spaceAfter=3,
                                   textColor=colors.HexColor("#333333")),
        "h1": ParagraphStyle("h1", parent=body, fontName="Helvetica-Bold", fontSize=17, leading=21,
                             spaceBefore=8, spaceAfter=10, textColor=colors.HexColor("#12355b"),
                             hyphenationLang=""),
        "h2": ParagraphStyle("h2", parent=body, fontName="Helvetica-Bold", fontSize=13.5, leading=17,
                             spaceBefore=10, spaceAfter=6, textColor=colors.HexColor("#12355b"),
                             hyphenationLang=""),
        "h3": ParagraphStyle("h3", parent=body, fontName="Helvetica-Bold", fontSize=11.5, leading=15,
                             spaceBefore=6, spaceAfter=4, hyphenationLang=""),
        "bullet": ParagraphStyle("bullet", parent=body, leftIndent=18, bulletIndent=6, spaceAfter=3),
        "bullet2": ParagraphStyle("bullet2", parent=body, leftIndent=36, bulletIndent=24, spaceAfter=3),
        "check": ParagraphStyle("check", parent=body, leftIndent=20, bulletIndent=6, spaceAfter=3,
                                bulletFontName="ZapfDingbats", bulletFontSize=10),
        "note": ParagraphStyle("note", parent=body, fontSize=10.5, leading=14, spaceAfter=0),
        "caption": ParagraphStyle("caption", parent=body, fontName="Helvetica-Bold", fontSize=10,
                                  leading=13, spaceBefore=4, spaceAfter=4, hyphenationLang=""),
        "cell": ParagraphStyle("cell", parent=body, fontSize=9.5, leading=12, spaceAfter=0),
        "cellhead": ParagraphStyle("cellhead", parent=body, fontName="Helvetica-Bold", fontSize=9.5,
                                   leading=12, spaceAfter=0, hyphenationLang=""),
        "notice": ParagraphStyle("notice", parent=body, fontSize=9.5, leading=12.5, spaceAfter=0,
                                 hyphenationLang=""),
    }


STYLES = _styles()


def inline(text: str) -> str:
    """Markdown inline emphasis to reportlab's paragraph markup, with XML escaped first."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def parse(source: str, name: str = "<source>") -> list[Block]:
    """Parse the Markdown subset described in `ingest/sample/README.md` into blocks."""
    lines = source.splitlines()
    blocks: list[Block] = []
    i = 0

    def starts_block(line: str) -> bool:
        stripped = line.strip()
        return (
            not stripped
            or bool(HEADING.match(line) or BULLET.match(line) or NUMBERED.match(line))
            or stripped.startswith(("|", ">", "<!--"))
            or bool(TABLE_CAPTION.match(stripped))
        )

    while i < len(lines):
        line = lines[i].rstrip()
        stripped = line.strip()
        if not stripped or FACTS_COMMENT.match(stripped):
            i += 1
            continue
        if PAGEBREAK_COMMENT.match(stripped):
            blocks.append(Block("pagebreak"))
            i += 1
            continue
        if stripped.startswith("<!--") or re.search(r"<[a-zA-Z/][^>]*>", stripped):
            raise SourceError(f"{name}:{i + 1}: HTML is not part of the source format: {stripped[:60]}")
        if m := HEADING.match(line):
            blocks.append(Block("heading", m.group(2).strip(), level=len(m.group(1))))
            i += 1
            continue
        caption = ""
        if m := TABLE_CAPTION.match(stripped):
            caption = m.group(1).strip()
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            if i >= len(lines) or not lines[i].strip().startswith("|"):
                raise SourceError(f"{name}:{i}: 'Table:' caption not followed by a pipe table")
            stripped = lines[i].strip()
        if stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                if not TABLE_RULE.match(lines[i].strip()):
                    rows.append(_split_row(lines[i]))
                i += 1
            width = max(len(r) for r in rows)
            rows = [r + [""] * (width - len(r)) for r in rows]
            blocks.append(Block("table", caption, rows=rows))
            continue
        if stripped.startswith(">"):
            parts = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                parts.append(lines[i].strip()[1:].strip())
                i += 1
            blocks.append(Block("note", " ".join(p for p in parts if p)))
            continue
        item = CHECKLIST.match(stripped)
        bullet = BULLET.match(line)
        numbered = NUMBERED.match(stripped)
        if item or bullet or numbered:
            if item:
                kind, text, level, label = "check", item.group(1), 1, ""
            elif bullet:
                indent = len(bullet.group(1).replace("\t", "    "))
                kind, text, level, label = "bullet", bullet.group(2), 2 if indent >= 2 else 1, ""
            else:
                kind, text, level, label = "numbered", numbered.group(2), 1, numbered.group(1)
            i += 1
            while i < len(lines) and lines[i].strip() and not starts_block(lines[i]):
                text += " " + lines[i].strip()
                i += 1
            blocks.append(Block(kind, text.strip(), level=level, label=label))
            continue
        parts = [stripped]
        i += 1
        while i < len(lines) and not starts_block(lines[i]):
            parts.append(lines[i].strip())
            i += 1
        blocks.append(Block("paragraph", " ".join(parts)))
    return blocks


def _column_widths(rows: list[list[str]]) -> list[float]:
    """Share the body width by each column's longest cell, within sane bounds."""
    columns = len(rows[0])
    weights = []
    for c in range(columns):
        longest = max(len(r[c]) for r in rows)
        weights.append(min(max(longest, 8), 60))
    total = sum(weights)
    return [BODY_WIDTH * w / total for w in weights]


def _table(block: Block) -> list:
    data = [[Paragraph(inline(c), STYLES["cellhead"]) for c in block.rows[0]]]
    data += [[Paragraph(inline(c), STYLES["cell"]) for c in row] for row in block.rows[1:]]
    table = Table(data, colWidths=_column_widths(block.rows), repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#8a9bb0")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    flow = [Spacer(1, 4)]
    if block.text:
        flow.append(KeepTogether([Paragraph(inline(block.text), STYLES["caption"]), table]))
    else:
        flow.append(table)
    flow.append(Spacer(1, 8))
    return flow


def _boxed(paragraph: Paragraph, background: str) -> Table:
    box = Table([[paragraph]], colWidths=[BODY_WIDTH], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#12355b")),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(background)),
        ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ("RIGHTPADDING", (0, 0), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 6),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
    ]))
    return box


def flowables(blocks: list[Block], chapter_breaks: bool) -> list:
    story: list = []
    for n, block in enumerate(blocks):
        if block.kind == "pagebreak":
            story.append(PageBreak())
        elif block.kind == "heading":
            if block.level == 1 and chapter_breaks and n > 0:
                story.append(PageBreak())
            else:
                story.append(CondPageBreak(1.3 * inch))
            story.append(Paragraph(inline(block.text), STYLES[f"h{block.level}"]))
        elif block.kind == "paragraph":
            story.append(Paragraph(inline(block.text), STYLES["body"]))
        elif block.kind == "check":
            story.append(Paragraph(inline(block.text), STYLES["check"], bulletText="o"))
        elif block.kind == "bullet":
            level2 = block.level == 2
            story.append(Paragraph(inline(block.text), STYLES["bullet2" if level2 else "bullet"],
                                   bulletText="\u2013" if level2 else "\u2022"))
        elif block.kind == "numbered":
            story.append(Paragraph(inline(block.text), STYLES["bullet"], bulletText=f"{block.label}."))
        elif block.kind == "note":
            story += [Spacer(1, 3), _boxed(Paragraph(inline(block.text), STYLES["note"]), "#f1f5f9"),
                      Spacer(1, 9)]
        elif block.kind == "table":
            story += _table(block)
    return story


@dataclass
class Document:
    slug: str
    title: str
    publisher: str
    edition: str
    kind: str
    source: Path
    output: Path
    scan: bool = False


def load_documents(catalog: Path = CATALOG) -> list[Document]:
    entries = tomllib.loads(catalog.read_text(encoding="utf-8"))["documents"]
    return [
        Document(e["slug"], e["title"], e["publisher"], e["edition"], e["kind"],
                 SOURCES / f"{e['slug']}.md", CORPUS / e["file"], bool(e.get("scan", False)))
        for e in entries
        if e.get("sample", False)
    ]


def _fit(canvas, text: str, font: str, size: float, width: float) -> str:
    if canvas.stringWidth(text, font, size) <= width:
        return text
    while text and canvas.stringWidth(text + "\u2026", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "\u2026"


def _decorate(doc: Document):
    def on_page(canvas, template) -> None:
        canvas.saveState()
        canvas.setStrokeColor(colors.HexColor("#8a9bb0"))
        canvas.setLineWidth(0.5)
        top = PAGE_HEIGHT - 0.62 * inch
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.HexColor("#444444"))
        half = BODY_WIDTH / 2 - 6
        canvas.drawString(MARGIN, top, _fit(canvas, doc.title, "Helvetica", 8, half))
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top, _fit(canvas, doc.publisher, "Helvetica", 8, half))
        canvas.line(MARGIN, top - 4, PAGE_WIDTH - MARGIN, top - 4)
        bottom = 0.55 * inch
        canvas.line(MARGIN, bottom + 11, PAGE_WIDTH - MARGIN, bottom + 11)
        canvas.drawString(MARGIN, bottom, f"Sample edition ({doc.edition}) for wbl-assistant")
        canvas.drawRightString(PAGE_WIDTH - MARGIN, bottom, f"Page {template.page}")
        canvas.restoreState()

    return on_page


def _title_block(doc: Document) -> list:
    notice = (
        f"<b>Sample edition.</b> This document was written for the wbl-assistant project from public "
        f"information, in its own words. It is not the official publication: consult {inline(doc.publisher)} "
        f"for the official <i>{inline(doc.title)}</i> and its current edition."
    )
    return [
        Paragraph(inline(doc.title), STYLES["title"]),
        Paragraph(inline(doc.publisher), STYLES["subtitle"]),
        Paragraph(f"Edition: {inline(doc.edition)}", STYLES["subtitle"]),
        Spacer(1, 8),
        _boxed(Paragraph(notice, STYLES["notice"]), "#fff7e0"),
        Spacer(1, 14),
    ]


def _check_characters(text: str, name: str) -> None:
    """Helvetica's encoding covers Latin-1 plus typographic punctuation; anything else prints as a box."""
    allowed = set("\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026\u20ac")
    bad = sorted({ch for ch in text if ord(ch) > 0xFF and ch not in allowed})
    if bad:
        raise SourceError(f"{name}: characters the PDF fonts cannot show: {' '.join(bad)}")


def render(doc: Document, source: str | None = None) -> bytes:
    """The PDF bytes of one document (from `source` when given, else from its source file)."""
    source = doc.source.read_text(encoding="utf-8") if source is None else source
    _check_characters(source, doc.source.name)
    blocks = parse(source, doc.source.name)
    words = sum(len(b.text.split()) + sum(len(c.split()) for r in b.rows for c in r) for b in blocks)
    buffer = io.BytesIO()
    template = BaseDocTemplate(
        buffer, pagesize=LETTER, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
        bottomMargin=MARGIN, title=doc.title, author=doc.publisher,
        subject=f"{doc.kind}; edition {doc.edition}; sample edition for wbl-assistant",
        creator="wbl-assistant ingest/build_sample.py", invariant=1,
    )
    frame = Frame(MARGIN, MARGIN, BODY_WIDTH, PAGE_HEIGHT - 2 * MARGIN, id="body")
    template.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=_decorate(doc))])
    template.build(_title_block(doc) + flowables(blocks, words > CHAPTER_PAGE_BREAK_WORDS))
    return scan(buffer.getvalue(), doc.slug) if doc.scan else buffer.getvalue()


#: Resolution of the sample scan, and its skew in degrees (alternating in direction from page to page).
SCAN_DPI = 150
SCAN_SKEW = 0.5
SCAN_SPECKS = 300


def scan(pdf: bytes, seed: str, dpi: int = SCAN_DPI, skew: float = SCAN_SKEW, specks: int = SCAN_SPECKS) -> bytes:
    """The PDF as a scanner would return it: each page a grayscale image, slightly rotated and specked, with no
    text layer. Deterministic: the specks come from a generator seeded by `seed`."""
    import random

    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    source = pdfium.PdfDocument(pdf)
    buffer = io.BytesIO()
    out = canvas.Canvas(buffer, pagesize=LETTER, invariant=1)
    specks_at = random.Random(seed)
    try:
        for number in range(len(source)):
            width, height = source[number].get_size()
            image = source[number].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            angle = skew if number % 2 == 0 else -skew
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
            draw = ImageDraw.Draw(image)
            for _ in range(specks):
                x, y = specks_at.randrange(image.width), specks_at.randrange(image.height)
                radius = specks_at.choice((0, 0, 0, 1))
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=specks_at.randrange(60, 160))
            out.setPageSize((width, height))
            out.drawImage(ImageReader(image), 0, 0, width, height)
            out.showPage()
    finally:
        source.close()
    out.save()
    return buffer.getvalue()


def edition_source(base: str, edits: dict, name: str = "<edition>") -> str:
    """The source of another edition: `base` with the edits of an edition file applied, in this order:
    `replace` ({old, new}: every occurrence, each must occur), `remove` (heading lines: the section up to the
    next heading of the same or a higher level) and `add` ({before: a heading line, text}: inserted there)."""
    text = base
    for edit in edits.get("replace", []):
        if edit["old"] not in text:
            raise SourceError(f"{name}: the text to replace is not in the source: {edit['old'][:60]!r}")
        text = text.replace(edit["old"], edit["new"])
    lines = text.splitlines()
    for heading in edits.get("remove", []):
        start = _heading_line(lines, heading, name)
        level = len(HEADING.match(heading).group(1))
        end = next((n for n in range(start + 1, len(lines))
                    if (m := HEADING.match(lines[n])) and len(m.group(1)) <= level), len(lines))
        del lines[start:end]
    for added in edits.get("add", []):
        at = _heading_line(lines, added["before"], name)
        lines[at:at] = [*added["text"].strip("\n").splitlines(), ""]
    return "\n".join(lines) + "\n"


def _heading_line(lines: list[str], heading: str, name: str) -> int:
    if not HEADING.match(heading) or heading not in lines:
        raise SourceError(f"{name}: no heading line {heading!r} in the source")
    return lines.index(heading)


def render_edition(edition_file: Path, output: Path, catalog: Path = CATALOG) -> Path:
    """Render the edition an edition file describes into `output` (with the file's edition name)."""
    edits = tomllib.loads(edition_file.read_text(encoding="utf-8"))
    doc = next((d for d in load_documents(catalog) if d.slug == edits["slug"]), None)
    if doc is None:
        raise SourceError(f"{edition_file.name}: no sample document {edits['slug']!r} in the catalog")
    source = edition_source(doc.source.read_text(encoding="utf-8"), edits, edition_file.name)
    doc = Document(doc.slug, doc.title, doc.publisher, edits["edition"], doc.kind, doc.source, output, doc.scan)
    output.write_bytes(render(doc, source))
    return output


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed PDF is out of date")
    parser.add_argument("--only", action="append", metavar="SLUG", help="build only this document")
    parser.add_argument("--edition", type=Path, metavar="FILE", help="render the edition this file describes")
    parser.add_argument("--out", type=Path, metavar="PDF", help="where --edition writes its PDF")
    args = parser.parse_args(argv)
    if args.edition:
        if not args.out:
            parser.error("--edition needs --out")
        try:
            render_edition(args.edition, args.out)
        except SourceError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"{args.edition.name} -> {args.out}")
        return 0

    documents = load_documents()
    if args.only:
        unknown = set(args.only) - {d.slug for d in documents}
        if unknown:
            print(f"unknown slug(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        documents = [d for d in documents if d.slug in args.only]

    stale, total_pages = [], 0
    for doc in documents:
        if not doc.source.exists():
            print(f"{doc.slug}: missing source {doc.source.relative_to(ROOT)}", file=sys.stderr)
            stale.append(doc.slug)
            continue
        try:
            pdf = render(doc)
        except SourceError as error:
            print(f"{doc.slug}: {error}", file=sys.stderr)
            stale.append(doc.slug)
            continue
        pages = page_count(pdf)
        total_pages += pages
        if args.check:
            if not doc.output.exists() or doc.output.read_bytes() != pdf:
                print(f"{doc.slug}: {doc.output.relative_to(ROOT)} is out of date with its source")
                stale.append(doc.slug)
        else:
            doc.output.parent.mkdir(parents=True, exist_ok=True)
            doc.output.write_bytes(pdf)
            print(f"{doc.slug}: {pages} pages -> {doc.output.relative_to(ROOT)}")
    if args.check and stale:
        print("run: python ingest/build_sample.py", file=sys.stderr)
    print(f"{len(documents)} documents, {total_pages} pages", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
