"""Render corpus C (`evals/corpus-c/sources/<slug>.md`) into `evals/corpus-c/corpus/<slug>.pdf`.

Corpus C is a third evaluation corpus, in registers that neither the sample corpus nor corpus B has. It reuses
corpus B's builder (styles, boxes, tables, the Markdown parser of `ingest/build_sample.py`) and adds one layout
per register (catalog field `layout`):

    policy      a district board policy: header box (district, number, section), numbered sections with
                lettered subsections in serif type, legal references and the "Adopted:" line in small type
    handbook    a student/parent handbook chapter: chapter banner, numbered sections, tables, callouts
    form        a template with labelled fields: section bars, label/blank rows, check boxes, signature lines
    transcript  a webinar transcript: one row per speaker turn, the speaker label in a left column
    newsletter  a newsletter issue: masthead, articles flowing in two columns, pull quotes
    email       a printed email thread: monospace, wrapped at a fixed width, quoted replies as "> " lines
    glossary    term-definition entries under letter headings, in two columns
    calendar    a month-by-month planning table on landscape pages
    minutes     meeting minutes: a meeting block, attendance, motions in boxes, an action-item table
    factsheet   a one-page fact sheet whose first table becomes a grid of numeric callouts
    letter      a letter on letterhead, then a detachable permission form below a cut line
    myths       a myths-vs-facts sheet: each myth and its fact side by side

Multi-page documents carry a running header and footer with "Page N of M". Output is deterministic (the same
sources give the same bytes), which `--check` relies on.

    python evals/corpus-c/build.py                 # rebuild every PDF
    python evals/corpus-c/build.py --only wbl-glossary
    python evals/corpus-c/build.py --check         # exit 1 when a committed PDF is out of date
    python evals/corpus-c/build.py --check-golden  # every key fact of evals/golden-c.jsonl on a gold page

`--check-golden` reads each committed PDF with pypdf, drops the running header and footer, joins words hyphenated
across a line break, folds case and whitespace, and requires every key fact of every answerable item of
`evals/golden-c.jsonl` (one of its alternatives, as whole words) on a gold page of the item's first gold document.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _load_corpus_b():
    """Corpus B's builder, imported from its file (it also puts ingest/ on sys.path for build_sample)."""
    name = "corpus_b_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "evals" / "corpus-b" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


B = _load_corpus_b()

from reportlab.lib import colors  # noqa: E402
from reportlab.lib.enums import TA_CENTER, TA_RIGHT  # noqa: E402
from reportlab.lib.pagesizes import LETTER, landscape  # noqa: E402
from reportlab.lib.styles import ParagraphStyle  # noqa: E402
from reportlab.lib.units import inch  # noqa: E402
from reportlab.platypus import (  # noqa: E402
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    FrameBreak,
    NextPageTemplate,
    PageBreak,
    PageTemplate,
    Paragraph,
    Preformatted,
    Spacer,
    Table,
    TableStyle,
)

from build_sample import Block, SourceError, inline, parse  # noqa: E402

SOURCES = HERE / "sources"
GOLDEN = ROOT / "evals" / "golden-c.jsonl"
CATALOG = HERE / "catalog.toml"
CORPUS = HERE / "corpus"

LAYOUTS = ("policy", "handbook", "form", "transcript", "newsletter", "email", "glossary", "calendar", "minutes",
           "factsheet", "letter", "myths")
TWO_COLUMN = ("newsletter", "glossary")

MARGIN = B.MARGIN
GUTTER = B.GUTTER
NAVY, TEAL, RULE, PALE, CALLOUT = B.NAVY, B.TEAL, B.RULE, B.PALE, B.CALLOUT
MAROON = colors.HexColor("#7a2e2e")
PALE_RED = colors.HexColor("#fbecec")
PALE_GREEN = colors.HexColor("#eaf5ec")
GREEN = colors.HexColor("#2f6b3a")

SANS, SERIF = B.SANS, B.SERIF
TURN = re.compile(r"^(?:\[(?P<time>\d{1,2}:\d{2}(?::\d{2})?)\]\s*)?\*\*(?P<who>[^*]+?):\*\*\s+(?P<text>.+)$", re.S)
FACT = re.compile(r"^\*\*Fact:\*\*\s*(?P<text>.+)$", re.S)
BLANK = re.compile(r"^_{3,}$")
SMALL_PREFIXES = ("Legal Ref.", "Cross Ref.", "Adopted:", "Revised:", "Reviewed:")
EMAIL_WIDTH = 84


def _style(name: str, parent: ParagraphStyle, **kw) -> ParagraphStyle:
    return ParagraphStyle(name, parent=parent, **kw)


STYLES = {
    "small-serif": _style("small-serif", SERIF["body"], fontSize=9.5, leading=12, spaceAfter=3),
    "policy-head": _style("policy-head", SANS["body"], fontName="Helvetica-Bold", fontSize=9.5, leading=12,
                          spaceAfter=0, hyphenationLang=""),
    "policy-value": _style("policy-value", SANS["body"], fontSize=9.5, leading=12, spaceAfter=0),
    "chapter-label": _style("chapter-label", SANS["body"], fontName="Helvetica-Bold", fontSize=10, leading=12,
                            textColor=colors.HexColor("#dce6ef"), spaceAfter=1, hyphenationLang=""),
    "section-bar": _style("section-bar", SANS["body"], fontName="Helvetica-Bold", fontSize=10.5, leading=13,
                          textColor=colors.white, spaceAfter=0, hyphenationLang=""),
    "field-label": _style("field-label", SANS["body"], fontName="Helvetica-Bold", fontSize=9, leading=11,
                          spaceAfter=0, hyphenationLang=""),
    "field-value": _style("field-value", SANS["body"], fontName="Helvetica-Oblique", fontSize=9.5, leading=11.5,
                          spaceAfter=0, textColor=colors.HexColor("#1d3a8a")),
    "form-check": _style("form-check", SANS["body"], fontSize=9.5, leading=12.5, leftIndent=24, bulletIndent=2,
                         spaceAfter=2, bulletFontName="Courier-Bold", bulletFontSize=10),
    "form-body": _style("form-body", SANS["body"], fontSize=9.5, leading=12.5, spaceAfter=4),
    "form-numbered": _style("form-numbered", SANS["body"], fontSize=9.5, leading=12.5, leftIndent=18,
                            bulletIndent=2, spaceAfter=2),
    "speaker": _style("speaker", SANS["body"], fontName="Helvetica-Bold", fontSize=8.5, leading=10.5,
                      spaceAfter=0, textColor=NAVY, hyphenationLang=""),
    "timestamp": _style("timestamp", SANS["body"], fontName="Courier", fontSize=7.5, leading=9, spaceAfter=1,
                        textColor=colors.HexColor("#666666"), hyphenationLang=""),
    "turn": _style("turn", SANS["body"], fontSize=10, leading=13.5, spaceAfter=0),
    "stage": _style("stage", SANS["body"], fontName="Helvetica-Oblique", fontSize=9.5, leading=12.5,
                    textColor=colors.HexColor("#444444"), spaceBefore=2, spaceAfter=6),
    "masthead": _style("masthead", SANS["body"], fontName="Times-Bold", fontSize=30, leading=33,
                       textColor=NAVY, spaceAfter=0, hyphenationLang=""),
    "masthead-sub": _style("masthead-sub", SANS["body"], fontName="Helvetica", fontSize=9.5, leading=12,
                           textColor=colors.HexColor("#333333"), spaceAfter=0, hyphenationLang=""),
    "news-h2": _style("news-h2", SERIF["body"], fontName="Times-Bold", fontSize=15, leading=18, spaceBefore=8,
                      spaceAfter=3, textColor=NAVY, hyphenationLang=""),
    "news-body": _style("news-body", SERIF["body"], fontSize=10.5, leading=13.5, spaceAfter=5,
                        hyphenationLang="en_US", embeddedHyphenation=1, uriWasteReduce=0.3),
    "pull-quote": _style("pull-quote", SERIF["body"], fontName="Times-Italic", fontSize=12, leading=15,
                         textColor=TEAL, spaceAfter=0, hyphenationLang=""),
    "mono": _style("mono", SANS["body"], fontName="Courier", fontSize=9, leading=11.2, spaceAfter=0),
    "mono-bold": _style("mono-bold", SANS["body"], fontName="Courier-Bold", fontSize=9, leading=11.2, spaceAfter=0),
    "letter-head": _style("letter-head", SANS["body"], fontName="Helvetica-Bold", fontSize=13, leading=16,
                          textColor=NAVY, spaceAfter=0, hyphenationLang=""),
    "letter-sub": _style("letter-sub", SANS["body"], fontSize=8.5, leading=11, spaceAfter=0,
                         textColor=colors.HexColor("#444444"), hyphenationLang=""),
    "letter-body": _style("letter-body", SERIF["body"], fontSize=11, leading=14.5, spaceAfter=8),
    "glossary-letter": _style("glossary-letter", SANS["body"], fontName="Helvetica-Bold", fontSize=16, leading=19,
                              textColor=TEAL, spaceBefore=6, spaceAfter=3, hyphenationLang=""),
    "glossary-entry": _style("glossary-entry", SANS["body"], fontSize=9.5, leading=12.5, leftIndent=10,
                             firstLineIndent=-10, spaceAfter=5, hyphenationLang="en_US", embeddedHyphenation=1,
                             uriWasteReduce=0.3),
    "callout-number": _style("callout-number", SANS["body"], fontName="Helvetica-Bold", fontSize=21, leading=24,
                             textColor=TEAL, alignment=TA_CENTER, spaceAfter=2, hyphenationLang=""),
    "callout-label": _style("callout-label", SANS["body"], fontSize=8.5, leading=10.5, alignment=TA_CENTER,
                            spaceAfter=0),
    "myth-label": _style("myth-label", SANS["body"], fontName="Helvetica-Bold", fontSize=8.5, leading=10,
                         textColor=MAROON, spaceAfter=2, hyphenationLang=""),
    "fact-label": _style("fact-label", SANS["body"], fontName="Helvetica-Bold", fontSize=8.5, leading=10,
                         textColor=GREEN, spaceAfter=2, hyphenationLang=""),
    "myth-text": _style("myth-text", SANS["body"], fontName="Helvetica-Bold", fontSize=10, leading=13,
                        spaceAfter=0),
    "fact-text": _style("fact-text", SANS["body"], fontSize=9.5, leading=12.5, spaceAfter=3),
    "minutes-title": _style("minutes-title", SANS["body"], fontName="Helvetica-Bold", fontSize=16, leading=20,
                            alignment=TA_CENTER, spaceAfter=2, hyphenationLang=""),
    "right-small": _style("right-small", SANS["body"], fontSize=8.5, leading=11, alignment=TA_RIGHT, spaceAfter=0),
}


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

    @property
    def pagesize(self):
        return landscape(LETTER) if self.layout == "calendar" else LETTER


def load_documents(catalog: Path = CATALOG) -> list[Document]:
    entries = tomllib.loads(catalog.read_text(encoding="utf-8"))["documents"]
    documents = []
    for e in entries:
        if e.get("layout") not in LAYOUTS:
            raise SourceError(f"{e['slug']}: unknown layout {e.get('layout')!r} (one of {', '.join(LAYOUTS)})")
        documents.append(Document(e["slug"], e["title"], e["publisher"], e["edition"], e["kind"], e["layout"],
                                  SOURCES / f"{e['slug']}.md", CORPUS / e["file"]))
    return documents


# ---------------------------------------------------------------------------------------------- small pieces


class CutLine(Flowable):
    """A dashed 'detach here' line across the frame, with a label in the middle."""

    def __init__(self, width: float, label: str = "detach and return the form below"):
        super().__init__()
        self.width, self.label, self.height = width, label, 14

    def wrap(self, available_width, available_height):
        self.width = available_width
        return available_width, self.height

    def draw(self):
        canvas = self.canv
        canvas.saveState()
        canvas.setDash(4, 3)
        canvas.setStrokeColor(colors.HexColor("#555555"))
        canvas.line(0, 7, self.width, 7)
        canvas.setDash()
        canvas.setFont("Helvetica", 7.5)
        text_width = canvas.stringWidth(self.label, "Helvetica", 7.5)
        x = (self.width - text_width) / 2
        canvas.setFillColor(colors.white)
        canvas.rect(x - 4, 2, text_width + 8, 10, stroke=0, fill=1)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(x, 4.5, self.label)
        canvas.restoreState()


def _notice(width: float) -> list:
    return [B._box([Paragraph(B.NOTICE, SANS["notice"])], width, CALLOUT, border=RULE), Spacer(1, 8)]


def _bar(text: str, width: float, color=NAVY) -> Table:
    bar = Table([[Paragraph(inline(text), STYLES["section-bar"])]], colWidths=[width], hAlign="LEFT")
    bar.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), color), ("LEFTPADDING", (0, 0), (-1, -1), 6),
                             ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 4)]))
    return bar


def _generic(block: Block, layout: str, width: float) -> list:
    """One block the way corpus B renders it in a plain single-frame layout."""
    return B._body_flowables([block], layout, width)


def _key_value(block: Block, width: float, label_width: float) -> Table:
    data = [[Paragraph(inline(r[0]), STYLES["policy-head"]), Paragraph(inline(" ".join(r[1:])),
                                                                       STYLES["policy-value"])]
            for r in block.rows]
    table = Table(data, colWidths=[label_width, width - label_width], hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 4),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 2)]))
    return table


# ---------------------------------------------------------------------------------------------- layouts


def _policy(blocks: list[Block], width: float) -> list:
    story: list = []
    for n, block in enumerate(blocks):
        if n == 0 and block.kind == "table":
            box = _key_value(block, width - 2, 1.5 * inch)
            box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 1, NAVY), ("LINEBELOW", (0, 0), (-1, -2), 0.4, RULE),
                                     ("BACKGROUND", (0, 0), (0, -1), PALE)]))
            story += [box, Spacer(1, 10)]
        elif block.kind == "paragraph" and block.text.startswith(SMALL_PREFIXES):
            story.append(Paragraph(inline(block.text), STYLES["small-serif"]))
        else:
            story += _generic(block, "statute", width)
    return story


def _field_table(block: Block, width: float) -> list:
    """Form rows: even columns are labels, odd columns are fields (blank '___' or a filled-in value)."""
    columns = max(len(r) for r in block.rows)
    signature = "signature" in block.text.lower()
    labels = [c for c in range(columns) if c % 2 == 0]
    label_share = 0.22 if columns == 2 else 0.2
    field_share = (1 - label_share * len(labels)) / max(1, columns - len(labels))
    widths = [width * (label_share if c % 2 == 0 else field_share) for c in range(columns)]
    data, style = [], [("VALIGN", (0, 0), (-1, -1), "BOTTOM"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
                       ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                       ("TOPPADDING", (0, 0), (-1, -1), 12 if signature else 5),
                       ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    for r, row in enumerate(block.rows):
        cells = []
        for c in range(columns):
            text = row[c] if c < len(row) else ""
            if c % 2 == 0:
                cells.append(Paragraph(inline(text), STYLES["field-label"]) if text else "")
            else:
                cells.append("" if BLANK.match(text.strip() or "___") else Paragraph(inline(text),
                                                                                   STYLES["field-value"]))
                if (row[c - 1] if c - 1 < len(row) else ""):
                    style.append(("LINEBELOW", (c, r), (c, r), 0.6, colors.black))
        data.append(cells)
    table = Table(data, colWidths=widths, hAlign="LEFT")
    table.setStyle(TableStyle(style))
    flow: list = [Spacer(1, 2)]
    if block.text:
        flow.append(Paragraph(inline(block.text), SANS["caption"]))
    return [*flow, table, Spacer(1, 6)]


def _form_block(block: Block, width: float) -> list:
    if block.kind == "heading":
        if block.level <= 2:
            return [CondPageBreak(1.2 * inch), Spacer(1, 6), _bar(block.text, width), Spacer(1, 4)]
        return [Paragraph(inline(block.text), SANS["h3"])]
    if block.kind == "table":
        return _field_table(block, width)
    if block.kind == "check":
        return [Paragraph(inline(block.text), STYLES["form-check"], bulletText="[ ]")]
    if block.kind == "numbered":
        return [Paragraph(inline(block.text), STYLES["form-numbered"], bulletText=f"{block.label}.")]
    if block.kind == "bullet":
        return [Paragraph(inline(block.text), STYLES["form-numbered"], bulletText="\u2022")]
    if block.kind == "paragraph":
        return [Paragraph(inline(block.text), STYLES["form-body"])]
    return _generic(block, "form", width)


def _form(blocks: list[Block], width: float) -> list:
    story: list = []
    for block in blocks:
        story += _form_block(block, width)
    return story


def _transcript(blocks: list[Block], width: float) -> list:
    story: list = []
    label_width = 1.55 * inch
    for block in blocks:
        turn = TURN.match(block.text) if block.kind == "paragraph" else None
        if turn:
            label = [Paragraph(inline(turn["who"]) + ":", STYLES["speaker"])]
            if turn["time"]:
                label.insert(0, Paragraph(f"[{turn['time']}]", STYLES["timestamp"]))
            row = Table([[label, Paragraph(inline(turn["text"]), STYLES["turn"])]],
                        colWidths=[label_width, width - label_width], hAlign="LEFT")
            row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 2),
                                     ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
                                     ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#c9d2dc"))]))
            story.append(row)
        elif block.kind == "paragraph" and block.text.startswith("*") and block.text.endswith("*"):
            story.append(Paragraph(inline(block.text), STYLES["stage"]))
        elif block.kind == "heading":
            story += [CondPageBreak(1.1 * inch), Spacer(1, 4), _bar(block.text, width, TEAL), Spacer(1, 4)]
        else:
            story += _generic(block, "transcript", width)
    return story


def _columns(blocks: list[Block], layout: str, width: float) -> list:
    """Newsletter articles or glossary entries, flowing through two columns."""
    story: list = []
    for block in blocks:
        if block.kind == "pagebreak":
            story.append(PageBreak())
        elif block.kind == "heading":
            if layout == "glossary":
                story += [CondPageBreak(0.9 * inch), Paragraph(inline(block.text), STYLES["glossary-letter"]),
                          Table([[""]], colWidths=[width], rowHeights=[2],
                                style=[("LINEABOVE", (0, 0), (-1, 0), 1, TEAL)])]
            else:
                style = STYLES["news-h2"] if block.level <= 2 else SERIF["h3"]
                story += [CondPageBreak(1.0 * inch), Paragraph(inline(block.text), style)]
        elif block.kind == "paragraph":
            style = STYLES["glossary-entry"] if layout == "glossary" else STYLES["news-body"]
            story.append(Paragraph(inline(block.text), style))
        elif block.kind == "note":
            if layout == "newsletter":
                quote = Table([[Paragraph(inline(block.text), STYLES["pull-quote"])]], colWidths=[width],
                              hAlign="LEFT")
                quote.setStyle(TableStyle([("LINEABOVE", (0, 0), (-1, 0), 1.5, TEAL),
                                           ("LINEBELOW", (0, 0), (-1, -1), 1.5, TEAL),
                                           ("TOPPADDING", (0, 0), (-1, -1), 6),
                                           ("BOTTOMPADDING", (0, 0), (-1, -1), 7)]))
                story += [Spacer(1, 4), quote, Spacer(1, 8)]
            else:
                story += _generic(block, layout, width)
        elif block.kind in ("bullet", "numbered", "check"):
            style = _style("col-bullet", STYLES["news-body"] if layout == "newsletter" else STYLES["glossary-entry"],
                           leftIndent=14, bulletIndent=3, firstLineIndent=0, spaceAfter=3)
            bullet = f"{block.label}." if block.kind == "numbered" else "\u2022"
            story.append(Paragraph(inline(block.text), style, bulletText=bullet))
        elif block.kind == "table":
            story += B._table(block, width, layout)
    return story


def _plain(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*", lambda m: m.group(1) or m.group(2), text)


def _wrap(text: str, width: int, prefix: str = "") -> list[str]:
    return [prefix + line for line in textwrap.wrap(_plain(text), width=width - len(prefix),
                                                     break_long_words=False, break_on_hyphens=False)] or [prefix]


def _email(blocks: list[Block], width: float) -> list:
    """A thread printed as plain text. Table = message header; '>' note = quoted reply; '--' = signature."""
    story: list = []
    first = True
    for block in blocks:
        if block.kind == "table":
            if not first:
                story += [Spacer(1, 6), Table([[""]], colWidths=[width], rowHeights=[3],
                                              style=[("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.black)])]
            first = False
            lines = [f"{row[0]:<9}{_plain(' '.join(row[1:]))}" for row in block.rows]
            story += [Preformatted("\n".join(lines), STYLES["mono-bold"]), Spacer(1, 8)]
        elif block.kind == "heading":
            story += [CondPageBreak(1.0 * inch), Paragraph(inline(block.text), SANS["h2"])]
        elif block.kind == "note":
            story += [Preformatted("\n".join(_wrap(block.text, EMAIL_WIDTH, "> ")), STYLES["mono"]),
                      Preformatted(">", STYLES["mono"])]
        elif block.kind == "paragraph" and block.text.startswith("-- "):
            lines = ["--"] + [part.strip() for part in block.text[3:].split(" | ")]
            story += [Preformatted("\n".join(lines), STYLES["mono"]), Spacer(1, 9)]
        elif block.kind in ("paragraph", "bullet", "numbered"):
            if block.kind == "paragraph":
                lines = _wrap(block.text, EMAIL_WIDTH)
            else:
                marker = "- " if block.kind == "bullet" else f"{block.label}. "
                lines = _wrap(block.text, EMAIL_WIDTH, marker)
                lines = lines[:1] + ["  " + line[len(marker):] if line.startswith(marker) else line
                                     for line in lines[1:]]
            story += [Preformatted("\n".join(lines), STYLES["mono"]), Spacer(1, 0 if block.kind != "paragraph"
                                                                              else 9)]
        elif block.kind == "pagebreak":
            story.append(PageBreak())
    return story


def _minutes(blocks: list[Block], width: float) -> list:
    story: list = []
    for n, block in enumerate(blocks):
        if n == 0 and block.kind == "table":
            story += [_key_value(block, width, 1.2 * inch), Spacer(1, 4),
                      Table([[""]], colWidths=[width], rowHeights=[4],
                            style=[("LINEABOVE", (0, 0), (-1, 0), 1.2, NAVY)])]
        elif block.kind == "paragraph" and block.text.startswith("**Motion"):
            story += [Spacer(1, 2), B._box([Paragraph(inline(block.text), SANS["callout"])], width, PALE,
                                           border=RULE, border_width=0.6, padding=6), Spacer(1, 6)]
        else:
            story += _generic(block, "minutes", width)
    return story


def _callouts(block: Block, width: float) -> list:
    cells = [[Paragraph(inline(row[0]), STYLES["callout-number"]),
              Paragraph(inline(" ".join(row[1:])), STYLES["callout-label"])] for row in block.rows[1:]]
    per_row = 3
    grid = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
    grid[-1] += [""] * (per_row - len(grid[-1]))
    table = Table(grid, colWidths=[width / per_row] * per_row, hAlign="LEFT")
    style = [("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 7),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 8), ("LEFTPADDING", (0, 0), (-1, -1), 6),
             ("RIGHTPADDING", (0, 0), (-1, -1), 6)]
    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            if cell:
                style += [("BOX", (c, r), (c, r), 0.8, TEAL), ("BACKGROUND", (c, r), (c, r), PALE)]
    table.setStyle(TableStyle(style))
    flow: list = []
    if block.text:
        flow.append(Paragraph(inline(block.text), SANS["caption"]))
    return [*flow, table, Spacer(1, 8)]


def _factsheet(blocks: list[Block], width: float) -> list:
    story: list = []
    first_table = True
    for block in blocks:
        if block.kind == "table" and first_table:
            story += _callouts(block, width)
            first_table = False
        else:
            story += _generic(block, "handout", width)
    return story


def _letter(blocks: list[Block], width: float) -> list:
    story: list = []
    in_form = False
    for block in blocks:
        if block.kind == "heading" and block.level == 1:
            in_form = True
            story += [CondPageBreak(3 * inch), Spacer(1, 10), CutLine(width), Spacer(1, 8),
                      Paragraph(inline(block.text), SANS["title"])]
        elif in_form:
            story += _form_block(block, width)
        elif block.kind == "paragraph":
            story.append(Paragraph(inline(block.text), STYLES["letter-body"]))
        else:
            story += _generic(block, "letter", width)
    return story


def _myths(blocks: list[Block], width: float) -> list:
    story: list = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "heading" and block.text.lower().startswith("myth"):
            number = re.match(r"^myth\s*(\d*)", block.text, flags=re.I).group(1)
            myth = re.sub(r"^myth\s*\d*\s*[:.]\s*", "", block.text, flags=re.I)
            facts: list = []
            i += 1
            while i < len(blocks) and blocks[i].kind != "heading":
                b = blocks[i]
                if m := FACT.match(b.text):
                    facts.append(Paragraph(inline(m["text"]), STYLES["fact-text"]))
                elif b.kind == "bullet":
                    facts.append(Paragraph(inline(b.text), _style("fb", STYLES["fact-text"], leftIndent=12,
                                                                  bulletIndent=2), bulletText="\u2022"))
                else:
                    facts.append(Paragraph(inline(b.text), STYLES["fact-text"]))
                i += 1
            left = [Paragraph(f"MYTH {number}".strip(), STYLES["myth-label"]),
                    Paragraph(inline(myth), STYLES["myth-text"])]
            right = [Paragraph(f"FACT {number}".strip(), STYLES["fact-label"]), *facts]
            pair = Table([[left, right]], colWidths=[width * 0.36, width * 0.64], hAlign="LEFT")
            pair.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                      ("BACKGROUND", (0, 0), (0, 0), PALE_RED),
                                      ("BACKGROUND", (1, 0), (1, 0), PALE_GREEN),
                                      ("BOX", (0, 0), (-1, -1), 0.6, RULE),
                                      ("LEFTPADDING", (0, 0), (-1, -1), 7), ("RIGHTPADDING", (0, 0), (-1, -1), 7),
                                      ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
            story += [pair, Spacer(1, 7)]
            continue
        story += _generic(block, "handout", width)
        i += 1
    return story


BODIES = {
    "policy": _policy,
    "handbook": lambda blocks, width: B._body_flowables(blocks, "handbook", width),
    "form": _form,
    "transcript": _transcript,
    "email": _email,
    "calendar": lambda blocks, width: B._body_flowables(blocks, "calendar", width),
    "minutes": _minutes,
    "factsheet": _factsheet,
    "letter": _letter,
    "myths": _myths,
}


# ---------------------------------------------------------------------------------------------- title blocks


def _title_block(doc: Document, width: float) -> list:
    pub = f"{inline(doc.publisher)} \u2013 {inline(doc.edition)}"
    if doc.layout == "policy":
        return [Paragraph(inline(doc.title), SERIF["statute-title"]),
                Paragraph(pub, _style("c", SERIF["subtitle"], alignment=TA_CENTER)), Spacer(1, 6),
                *_notice(width)]
    if doc.layout == "handbook":
        head, _, rest = doc.title.partition(":")
        banner = B._box([Paragraph(inline(head), STYLES["chapter-label"]),
                         Paragraph(inline(rest.strip() or head), SANS["banner-title"]),
                         Paragraph(pub, SANS["banner-sub"])], width, NAVY, border=NAVY, padding=10)
        return [banner, Spacer(1, 6), *_notice(width)]
    if doc.layout in ("factsheet", "myths", "glossary"):
        banner = B._box([Paragraph(inline(doc.title), SANS["banner-title"]), Paragraph(pub, SANS["banner-sub"])],
                        width, TEAL if doc.layout != "myths" else NAVY, border=NAVY, padding=10)
        return [banner, Spacer(1, 6), *_notice(width)]
    if doc.layout == "newsletter":
        name, _, rest = doc.title.partition(":")
        rule = Table([[""]], colWidths=[width], rowHeights=[4], style=[("LINEABOVE", (0, 0), (-1, 0), 2.5, NAVY)])
        return [Paragraph(inline(name), STYLES["masthead"]), Paragraph(inline(rest.strip()), STYLES["masthead-sub"]),
                Paragraph(pub, STYLES["masthead-sub"]), Spacer(1, 3), rule, *_notice(width)]
    if doc.layout == "letter":
        head = Table([[[Paragraph(inline(doc.title), STYLES["letter-head"]), Paragraph(pub, STYLES["letter-sub"])]]],
                     colWidths=[width], hAlign="LEFT")
        head.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 1.5, NAVY), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                                  ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        return [head, Spacer(1, 8), *_notice(width)]
    if doc.layout == "minutes":
        return [Paragraph(inline(doc.title), STYLES["minutes-title"]),
                Paragraph(pub, _style("c2", SANS["subtitle"], alignment=TA_CENTER)), Spacer(1, 6), *_notice(width)]
    return [Paragraph(inline(doc.title), SANS["title"]), Paragraph(inline(doc.publisher), SANS["subtitle"]),
            Paragraph(f"Edition: {inline(doc.edition)}", SANS["subtitle"]), Spacer(1, 6), *_notice(width)]


# ---------------------------------------------------------------------------------------------- pages


def _decorate(doc: Document, total: int):
    serif = doc.layout in ("policy", "newsletter", "letter")
    font = "Times-Roman" if serif else "Helvetica"
    page_width, _page_height = doc.pagesize
    body_width = page_width - 2 * MARGIN

    def on_page(canvas, template) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.setFillColor(colors.HexColor("#444444"))
        bottom = 0.5 * inch
        if total > 1:
            top = doc.pagesize[1] - 0.55 * inch
            canvas.setFont(font, 8)
            canvas.drawString(MARGIN, top, B._fit(canvas, doc.title, font, 8, body_width / 2 - 6))
            canvas.drawRightString(page_width - MARGIN, top, "wbl-assistant evaluation corpus")
            canvas.line(MARGIN, top - 4, page_width - MARGIN, top - 4)
            canvas.line(MARGIN, bottom + 11, page_width - MARGIN, bottom + 11)
            canvas.drawString(MARGIN, bottom, f"Evaluation document, not an official publication ({doc.edition})")
            canvas.drawRightString(page_width - MARGIN, bottom, f"Page {template.page} of {total}")
        else:
            canvas.setFont(font, 7.5)
            canvas.drawString(MARGIN, bottom, "wbl-assistant evaluation corpus \u2013 not an official publication")
        canvas.restoreState()

    return on_page


def _build(doc: Document, blocks: list[Block], total: int) -> bytes:
    buffer = io.BytesIO()
    page_width, page_height = doc.pagesize
    body_width, height = page_width - 2 * MARGIN, page_height - 2 * MARGIN
    template = BaseDocTemplate(
        buffer, pagesize=doc.pagesize, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
        bottomMargin=MARGIN, title=doc.title, author=doc.publisher,
        subject=f"{doc.kind}; {doc.edition}; evaluation document",
        creator="wbl-assistant evals/corpus-c/build.py", invariant=1,
    )
    on_page = _decorate(doc, total)
    title = _title_block(doc, body_width)
    if doc.layout in TWO_COLUMN:
        column = (body_width - GUTTER) / 2
        head_height = sum(f.wrap(body_width, height)[1] for f in title) + 4
        below = height - head_height
        first = [Frame(MARGIN, MARGIN + below, body_width, head_height, id="head", leftPadding=0, rightPadding=0,
                       topPadding=0, bottomPadding=0),
                 Frame(MARGIN, MARGIN, column, below, id="left1"),
                 Frame(MARGIN + column + GUTTER, MARGIN, column, below, id="right1")]
        later = [Frame(MARGIN, MARGIN, column, height, id="left"),
                 Frame(MARGIN + column + GUTTER, MARGIN, column, height, id="right")]
        template.addPageTemplates([PageTemplate(id="first", frames=first, onPage=on_page),
                                   PageTemplate(id="later", frames=later, onPage=on_page)])
        story = [NextPageTemplate("later"), *title, FrameBreak(), *_columns(blocks, doc.layout, column)]
    else:
        frame = Frame(MARGIN, MARGIN, body_width, height, id="body")
        template.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=on_page)])
        story = title + BODIES[doc.layout](blocks, body_width)
    template.build(story)
    return buffer.getvalue()


def render(doc: Document) -> bytes:
    """The PDF bytes of one document: laid out once to count its pages, then again with 'Page N of M'."""
    source = doc.source.read_text(encoding="utf-8")
    B._check_characters(source, doc.source.name)
    blocks = parse(source, doc.source.name)
    total = B.page_count(_build(doc, blocks, 0))
    return _build(doc, blocks, total)


# ---------------------------------------------------------------------------------------------- golden check


def page_texts(pdf: Path) -> list[str]:
    """Folded text of each page as pypdf extracts it, without the running header and footer lines."""
    from pypdf import PdfReader

    texts = []
    for page in PdfReader(pdf).pages:
        lines = (page.extract_text() or "").splitlines()
        if len(lines) >= 4 and lines[1].strip() == "wbl-assistant evaluation corpus" and lines[3].startswith("Page "):
            lines = lines[4:]
        lines = [line for line in lines if "evaluation corpus \u2013 not an official publication" not in line]
        texts.append(fold("\n".join(lines)))
    return texts


def fold(text: str) -> str:
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"(\w)-\n\s*(\w)", lambda m: f"{m[1]}\u0000{m[2]}", text)  # mark line-break hyphens
    return re.sub(r"\s+", " ", text).strip().lower()


def fact_on(text: str, alternatives: list[str]) -> bool:
    """One alternative, as whole words, either with the line-break hyphen dropped or kept."""
    variants = (text.replace("\u0000", ""), text.replace("\u0000", "-"))
    for alt in alternatives:
        pattern = r"(?<!\w)" + re.escape(fold(alt)) + r"(?!\w)"
        if any(re.search(pattern, v) for v in variants):
            return True
    return False


def check_golden(path: Path = GOLDEN) -> int:
    import json

    files = {d.slug: d.output for d in load_documents()}
    cache: dict[str, list[str]] = {}
    failures, answerable = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if not item["answerable"]:
            if item["gold_docs"] or item["key_facts"] or item.get("gold_pages"):
                failures.append(f"{item['id']}: unanswerable item with gold docs, pages or facts")
            continue
        answerable += 1
        unknown = [d for d in item["gold_docs"] if d not in files]
        if unknown or not item["gold_docs"] or not item.get("gold_pages"):
            failures.append(f"{item['id']}: unknown gold docs {unknown} or no gold docs/pages")
            continue
        first = item["gold_docs"][0]
        texts = cache.setdefault(first, page_texts(files[first]))
        bad_pages = [p for p in item["gold_pages"] if not 1 <= p <= len(texts)]
        if bad_pages:
            failures.append(f"{item['id']}: gold pages {bad_pages} not in {first} ({len(texts)} pages)")
            continue
        gold = [texts[p - 1] for p in item["gold_pages"]]
        for alternatives in item["key_facts"]:
            if not any(fact_on(t, alternatives) for t in gold):
                failures.append(f"{item['id']}: {alternatives} not on {first} pages {item['gold_pages']}")
    for failure in failures:
        print(failure)
    print(f"{path.name}: {answerable} answerable items checked, {len(failures)} failures")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed PDF is out of date")
    parser.add_argument("--only", action="append", metavar="SLUG", help="build only this document")
    parser.add_argument("--check-golden", action="store_true",
                        help="check that every key fact of evals/golden-c.jsonl is on a gold page")
    args = parser.parse_args(argv)
    if args.check_golden:
        return check_golden()

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
        pages = B.page_count(pdf)
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
        print("run: python evals/corpus-c/build.py", file=sys.stderr)
    print(f"{len(documents)} documents, {total_pages} pages", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
