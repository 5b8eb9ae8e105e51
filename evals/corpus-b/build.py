"""Render corpus B (`evals/corpus-b/sources/<slug>.md`) into `evals/corpus-b/corpus/<slug>.pdf`.

Corpus B is a second evaluation corpus, written in the registers real guidance comes in, so each document gets
the layout of its kind (catalog field `layout`):

    statute     numbered sections with lettered and numbered subsections, serif type, notes in italics
    faq         question headings in bold (### headings) or bold "Q:" paragraphs
    handout     a one-page sheet: title banner, short sections, a callout box
    two-column  a flyer whose text flows in two real columns (two Frames side by side)
    checklist   mostly tables (a check-box column, requirement, who, when, notes) with a grid
    memo        a TO/FROM/DATE/RE block, then numbered sections
    slides      presenter slides: each level-2 heading and its bullets in a framed box

Multi-page documents carry a running header and footer with "Page N of M". Output is deterministic (the same
sources give the same bytes), which `--check` relies on.

    python evals/corpus-b/build.py                 # rebuild every PDF
    python evals/corpus-b/build.py --only work-permit-faq
    python evals/corpus-b/build.py --check         # exit 1 when a committed PDF is out of date
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    FrameBreak,
    KeepTogether,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

rl_config.invariant = 1

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "ingest"))

from build_sample import Block, SourceError, inline, parse  # noqa: E402

SOURCES = HERE / "sources"
CATALOG = HERE / "catalog.toml"
CORPUS = HERE / "corpus"

LAYOUTS = ("statute", "faq", "handout", "two-column", "checklist", "memo", "slides")

PAGE_WIDTH, PAGE_HEIGHT = LETTER
MARGIN = 0.9 * inch
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN
GUTTER = 0.3 * inch
COLUMN_WIDTH = (BODY_WIDTH - GUTTER) / 2

NAVY = colors.HexColor("#1d3557")
TEAL = colors.HexColor("#2a6f73")
RULE = colors.HexColor("#7d8da1")
PALE = colors.HexColor("#eef3f7")
CALLOUT = colors.HexColor("#fff4d6")

SUBSECTION = re.compile(r"^\((?P<label>[a-z]|\d{1,2})\)\s+(?P<text>.+)$", re.S)
QUESTION = re.compile(r"^\*\*Q:\s*(?P<text>.+?)\*\*$", re.S)
ANSWER = re.compile(r"^A:\s+(?P<text>.+)$", re.S)
CHECKBOX = "[ ]"

NOTICE = (
    "<b>Evaluation document, not an official publication.</b> Written for the wbl-assistant project as an "
    "evaluation document, in our own words, from public information. It does not speak for ISBE, IDOL, the "
    "U.S. Department of Labor or any other body; check the current official sources before relying on it."
)


def _styles(serif: bool) -> dict[str, ParagraphStyle]:
    regular, bold, italic = ("Times-Roman", "Times-Bold", "Times-Italic") if serif else (
        "Helvetica", "Helvetica-Bold", "Helvetica-Oblique")
    body = ParagraphStyle("body", fontName=regular, fontSize=11 if serif else 10.5, leading=14.5 if serif else 14,
                          spaceAfter=6, alignment=TA_LEFT)
    head = {"hyphenationLang": ""}
    return {
        "body": body,
        "hyphenated": ParagraphStyle("hyphenated", parent=body, hyphenationLang="en_US", embeddedHyphenation=1,
                                     uriWasteReduce=0.3),
        "title": ParagraphStyle("title", parent=body, fontName=bold, fontSize=19, leading=23, spaceAfter=6,
                                textColor=NAVY, **head),
        "statute-title": ParagraphStyle("statute-title", parent=body, fontName=bold, fontSize=16, leading=20,
                                        alignment=TA_CENTER, spaceAfter=6, **head),
        "banner-title": ParagraphStyle("banner-title", parent=body, fontName=bold, fontSize=18, leading=22,
                                       textColor=colors.white, spaceAfter=2, **head),
        "banner-sub": ParagraphStyle("banner-sub", parent=body, fontSize=9.5, leading=12, spaceAfter=0,
                                     textColor=colors.white, **head),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=9.5, leading=12.5, spaceAfter=2,
                                   textColor=colors.HexColor("#333333"), **head),
        "notice": ParagraphStyle("notice", parent=body, fontName="Helvetica", fontSize=8.5, leading=11,
                                 spaceAfter=0, **head),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=13 if not serif else 12, leading=16,
                             spaceBefore=9, spaceAfter=5, textColor=NAVY if not serif else colors.black, **head),
        "h3": ParagraphStyle("h3", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceBefore=6,
                             spaceAfter=3, **head),
        "column-h2": ParagraphStyle("column-h2", parent=body, fontName=bold, fontSize=12.5, leading=15,
                                    spaceBefore=7, spaceAfter=3, textColor=TEAL, **head),
        "question": ParagraphStyle("question", parent=body, fontName=bold, fontSize=11.5, leading=15,
                                   spaceBefore=7, spaceAfter=3, textColor=NAVY, **head),
        "q-line": ParagraphStyle("q-line", parent=body, fontName=bold, spaceBefore=7, spaceAfter=3),
        "bullet": ParagraphStyle("bullet", parent=body, leftIndent=16, bulletIndent=4, spaceAfter=3),
        "check": ParagraphStyle("check", parent=body, leftIndent=18, bulletIndent=4, spaceAfter=3,
                                bulletFontName="ZapfDingbats", bulletFontSize=10),
        "sub-letter": ParagraphStyle("sub-letter", parent=body, leftIndent=26, bulletIndent=6, spaceAfter=5),
        "sub-number": ParagraphStyle("sub-number", parent=body, leftIndent=48, bulletIndent=26, spaceAfter=4),
        "annotation": ParagraphStyle("annotation", parent=body, fontName=italic, fontSize=10, leading=13,
                                     leftIndent=26, spaceAfter=7, textColor=colors.HexColor("#333333")),
        "callout": ParagraphStyle("callout", parent=body, fontSize=10, leading=13.5, spaceAfter=0),
        "cell": ParagraphStyle("cell", parent=body, fontName="Helvetica", fontSize=9, leading=11.5, spaceAfter=0),
        "cellhead": ParagraphStyle("cellhead", parent=body, fontName="Helvetica-Bold", fontSize=9, leading=11.5,
                                   spaceAfter=0, textColor=colors.white, **head),
        "caption": ParagraphStyle("caption", parent=body, fontName="Helvetica-Bold", fontSize=10, leading=13,
                                  spaceBefore=6, spaceAfter=3, **head),
        "memo-label": ParagraphStyle("memo-label", parent=body, fontName="Helvetica-Bold", spaceAfter=0, **head),
        "memo-value": ParagraphStyle("memo-value", parent=body, spaceAfter=0),
        "slide-title": ParagraphStyle("slide-title", parent=body, fontName="Helvetica-Bold", fontSize=13,
                                      leading=16, textColor=colors.white, spaceAfter=0, **head),
        "slide-bullet": ParagraphStyle("slide-bullet", parent=body, fontSize=11, leading=15, leftIndent=18,
                                       bulletIndent=6, spaceAfter=2),
        "slide-label": ParagraphStyle("slide-label", parent=body, fontSize=8, leading=10, spaceAfter=0,
                                      textColor=colors.HexColor("#555555"), **head),
    }


SANS = _styles(serif=False)
SERIF = _styles(serif=True)


@dataclass
class Document:
    slug: str
    title: str
    publisher: str
    edition: str
    kind: str
    layout: str
    source: Path
    output: Path


def load_documents(catalog: Path = CATALOG) -> list[Document]:
    entries = tomllib.loads(catalog.read_text(encoding="utf-8"))["documents"]
    documents = []
    for e in entries:
        if e.get("layout") not in LAYOUTS:
            raise SourceError(f"{e['slug']}: unknown layout {e.get('layout')!r} (one of {', '.join(LAYOUTS)})")
        documents.append(Document(e["slug"], e["title"], e["publisher"], e["edition"], e["kind"], e["layout"],
                                  SOURCES / f"{e['slug']}.md", CORPUS / e["file"]))
    return documents


def _check_characters(text: str, name: str) -> None:
    """The standard PDF fonts cover Latin-1 plus typographic punctuation; anything else prints as a box."""
    allowed = set("\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026")
    bad = sorted({ch for ch in text if ord(ch) > 0xFF and ch not in allowed})
    if bad:
        raise SourceError(f"{name}: characters the PDF fonts cannot show: {' '.join(bad)}")


# ---------------------------------------------------------------------------------------------- flowables


def _box(flowables: list, width: float, background, border=NAVY, border_width: float = 0.8,
         padding: float = 7) -> Table:
    box = Table([[flowables]], colWidths=[width], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), border_width, border),
        ("BACKGROUND", (0, 0), (-1, -1), background),
        ("LEFTPADDING", (0, 0), (-1, -1), padding),
        ("RIGHTPADDING", (0, 0), (-1, -1), padding),
        ("TOPPADDING", (0, 0), (-1, -1), padding - 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), padding),
    ]))
    return box


def _cell(text: str, style: ParagraphStyle) -> Paragraph:
    if text.strip() == CHECKBOX:  # an empty box, typed as printed checklists often do
        return Paragraph('<font name="Courier-Bold" size="11">[&nbsp;&nbsp;]</font>', style)
    return Paragraph(inline(text), style)


def _table(block: Block, width: float, layout: str) -> list:
    rows = block.rows
    columns = len(rows[0])
    if layout == "checklist" and columns == 5:
        shares = [0.09, 0.33, 0.17, 0.17, 0.24]
    else:
        longest = [min(max(max(len(r[c]) for r in rows), 6), 50) for c in range(columns)]
        shares = [n / sum(longest) for n in longest]
    data = [[_cell(c, SANS["cellhead"]) for c in rows[0]]]
    data += [[_cell(c, SANS["cell"]) for c in row] for row in rows[1:]]
    table = Table(data, colWidths=[width * s for s in shares], repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, RULE),
        ("BACKGROUND", (0, 0), (-1, 0), NAVY),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, PALE]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
    ]))
    flow: list = [Spacer(1, 3)]
    if block.text:
        flow += [CondPageBreak(1.3 * inch), Paragraph(inline(block.text), SANS["caption"])]
    flow.append(table)
    flow.append(Spacer(1, 8))
    return flow


def _memo_header(block: Block) -> list:
    data = [[Paragraph(inline(row[0]), SANS["memo-label"]), Paragraph(inline(row[1]), SANS["memo-value"])]
            for row in block.rows]
    table = Table(data, colWidths=[0.9 * inch, BODY_WIDTH - 0.9 * inch], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, -1), (-1, -1), 1.2, NAVY),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ]))
    return [table, Spacer(1, 10)]


def _paragraph(text: str, styles: dict[str, ParagraphStyle], layout: str, style: str = "body") -> Paragraph:
    if layout == "statute":
        if m := SUBSECTION.match(text):
            kind = "sub-number" if m["label"].isdigit() else "sub-letter"
            return Paragraph(inline(m["text"]), styles[kind], bulletText=f"({m['label']})")
        if text.startswith("*") and text.endswith("*"):
            return Paragraph(inline(text.strip("*")), styles["annotation"])
    if layout == "faq":
        if m := QUESTION.match(text):
            return Paragraph("Q: " + inline(m["text"]), styles["q-line"])
        if m := ANSWER.match(text):
            return Paragraph("<b>A:</b> " + inline(m["text"]), styles["body"])
    return Paragraph(inline(text), styles[style])


def _body_flowables(blocks: list[Block], layout: str, width: float) -> list:
    """Everything except the title block, for the single-frame layouts and the flyer columns."""
    styles = SERIF if layout == "statute" else SANS
    text_style = "hyphenated" if layout == "two-column" else "body"
    story: list = []
    for n, block in enumerate(blocks):
        if block.kind == "pagebreak":
            story.append(PageBreak())
        elif block.kind == "heading":
            if layout == "faq" and block.level == 3:
                style = "question"
            elif layout == "two-column":
                style = "column-h2"
            else:
                style = "h2" if block.level <= 2 else "h3"
            story += [CondPageBreak(1.1 * inch), Paragraph(inline(block.text), styles[style])]
        elif block.kind == "paragraph":
            story.append(_paragraph(block.text, styles, layout, text_style))
        elif block.kind == "check":
            story.append(Paragraph(inline(block.text), styles["check"], bulletText="o"))
        elif block.kind == "bullet":
            story.append(Paragraph(inline(block.text), styles["bullet"], bulletText="\u2022"))
        elif block.kind == "numbered":
            story.append(Paragraph(inline(block.text), styles["bullet"], bulletText=f"{block.label}."))
        elif block.kind == "note":
            story += [Spacer(1, 4), _box([Paragraph(inline(block.text), SANS["callout"])], width, CALLOUT,
                                          border=TEAL, border_width=1.6, padding=8), Spacer(1, 8)]
        elif block.kind == "table":
            if layout == "memo" and n == 0:
                story += _memo_header(block)
            else:
                story += _table(block, width, layout)
    return story


def _slides(blocks: list[Block]) -> list:
    """Each level-2 heading and the blocks under it become one framed slide."""
    story: list = []
    slides: list[tuple[str, list]] = []
    for block in blocks:
        if block.kind == "heading":
            slides.append((block.text, []))
        elif slides:
            slides[-1][1].append(block)
        elif block.kind == "paragraph":
            story.append(Paragraph(inline(block.text), SANS["body"]))
    for number, (title, content) in enumerate(slides, start=1):
        head = Table([[Paragraph(inline(title), SANS["slide-title"])]], colWidths=[BODY_WIDTH - 16])
        head.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), TEAL), ("LEFTPADDING", (0, 0), (-1, -1), 8),
                                  ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        inner: list = [Paragraph(f"Slide {number}", SANS["slide-label"]), Spacer(1, 3), head, Spacer(1, 6)]
        for block in content:
            if block.kind == "bullet":
                inner.append(Paragraph(inline(block.text), SANS["slide-bullet"], bulletText="\u25aa"))
            elif block.kind in ("paragraph", "numbered"):
                inner.append(Paragraph(inline(block.text), SANS["body"]))
            else:
                raise SourceError(f"slides: a {block.kind} cannot go on a slide")
        story += [KeepTogether(_box(inner, BODY_WIDTH, colors.white, border=RULE, border_width=1.2)),
                  Spacer(1, 12)]
    return story


# ---------------------------------------------------------------------------------------------- pages


def _fit(canvas, text: str, font: str, size: float, width: float) -> str:
    if canvas.stringWidth(text, font, size) <= width:
        return text
    while text and canvas.stringWidth(text + "\u2026", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "\u2026"


def _decorate(doc: Document, total: int):
    serif = doc.layout == "statute"
    font = "Times-Roman" if serif else "Helvetica"

    def on_page(canvas, template) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.setFillColor(colors.HexColor("#444444"))
        bottom = 0.5 * inch
        if total > 1:
            top = PAGE_HEIGHT - 0.55 * inch
            canvas.setFont(font, 8)
            half = BODY_WIDTH / 2 - 6
            canvas.drawString(MARGIN, top, _fit(canvas, doc.title, font, 8, half))
            canvas.drawRightString(PAGE_WIDTH - MARGIN, top, "wbl-assistant evaluation corpus")
            canvas.line(MARGIN, top - 4, PAGE_WIDTH - MARGIN, top - 4)
            canvas.line(MARGIN, bottom + 11, PAGE_WIDTH - MARGIN, bottom + 11)
            canvas.drawString(MARGIN, bottom, f"Evaluation document, not an official publication ({doc.edition})")
            canvas.drawRightString(PAGE_WIDTH - MARGIN, bottom, f"Page {template.page} of {total}")
        else:
            canvas.setFont(font, 7.5)
            canvas.drawString(MARGIN, bottom, "wbl-assistant evaluation corpus \u2013 not an official publication")
        canvas.restoreState()

    return on_page


def _title_block(doc: Document) -> list:
    notice = Paragraph(NOTICE, SANS["notice"])
    if doc.layout == "statute":
        return [
            Paragraph(inline(doc.title), SERIF["statute-title"]),
            Paragraph(f"{inline(doc.publisher)} \u2013 {inline(doc.edition)}",
                      ParagraphStyle("c", parent=SERIF["subtitle"], alignment=TA_CENTER)),
            Spacer(1, 6), _box([notice], BODY_WIDTH, CALLOUT, border=RULE), Spacer(1, 10),
        ]
    if doc.layout in ("handout", "two-column", "slides"):
        width = BODY_WIDTH
        banner = _box([Paragraph(inline(doc.title), SANS["banner-title"]),
                       Paragraph(f"{inline(doc.publisher)} \u2013 {inline(doc.edition)}", SANS["banner-sub"])],
                      width, NAVY, border=NAVY, padding=10)
        return [banner, Spacer(1, 6), _box([notice], width, CALLOUT, border=RULE), Spacer(1, 8)]
    return [
        Paragraph(inline(doc.title), SANS["title"]),
        Paragraph(inline(doc.publisher), SANS["subtitle"]),
        Paragraph(f"Edition: {inline(doc.edition)}", SANS["subtitle"]),
        Spacer(1, 6), _box([notice], BODY_WIDTH, CALLOUT, border=RULE), Spacer(1, 10),
    ]


def _build(doc: Document, blocks: list[Block], total: int) -> bytes:
    buffer = io.BytesIO()
    template = BaseDocTemplate(
        buffer, pagesize=LETTER, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN, bottomMargin=MARGIN,
        title=doc.title, author=doc.publisher, subject=f"{doc.kind}; {doc.edition}; evaluation document",
        creator="wbl-assistant evals/corpus-b/build.py", invariant=1,
    )
    on_page = _decorate(doc, total)
    height = PAGE_HEIGHT - 2 * MARGIN
    if doc.layout == "two-column":
        title = _title_block(doc)
        banner_height = sum(f.wrap(BODY_WIDTH, height)[1] for f in title) + 4
        column_height = height - banner_height
        first = [Frame(MARGIN, MARGIN + column_height, BODY_WIDTH, banner_height, id="banner", leftPadding=0,
                       rightPadding=0, topPadding=0, bottomPadding=0),
                 Frame(MARGIN, MARGIN, COLUMN_WIDTH, column_height, id="left1"),
                 Frame(MARGIN + COLUMN_WIDTH + GUTTER, MARGIN, COLUMN_WIDTH, column_height, id="right1")]
        later = [Frame(MARGIN, MARGIN, COLUMN_WIDTH, height, id="left"),
                 Frame(MARGIN + COLUMN_WIDTH + GUTTER, MARGIN, COLUMN_WIDTH, height, id="right")]
        template.addPageTemplates([PageTemplate(id="first", frames=first, onPage=on_page),
                                   PageTemplate(id="later", frames=later, onPage=on_page)])
        story = [NextPageTemplate("later"), *title, FrameBreak(),
                 *_body_flowables(blocks, doc.layout, COLUMN_WIDTH)]
    else:
        frame = Frame(MARGIN, MARGIN, BODY_WIDTH, height, id="body")
        template.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=on_page)])
        body = _slides(blocks) if doc.layout == "slides" else _body_flowables(blocks, doc.layout, BODY_WIDTH)
        story = _title_block(doc) + body
    template.build(story)
    return buffer.getvalue()


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def render(doc: Document) -> bytes:
    """The PDF bytes of one document: laid out once to count its pages, then again with 'Page N of M'."""
    source = doc.source.read_text(encoding="utf-8")
    _check_characters(source, doc.source.name)
    blocks = parse(source, doc.source.name)
    total = page_count(_build(doc, blocks, 0))
    return _build(doc, blocks, total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed PDF is out of date")
    parser.add_argument("--only", action="append", metavar="SLUG", help="build only this document")
    args = parser.parse_args(argv)

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
            print(f"{doc.slug}: {pages} pages ({doc.layout}) -> {doc.output.relative_to(ROOT)}")
    if args.check and stale:
        print("run: python evals/corpus-b/build.py", file=sys.stderr)
    print(f"{len(documents)} documents, {total_pages} pages", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
