"""Structure-aware chunking: chunks stay inside one section, lists and tables stay whole where they fit.

Each chunk also carries its sentences (prose sentences, list items, table rows rendered with their column
headers), the units the extractive answerer quotes and cites.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .extraction import Block
from .text import split_sentences


@dataclass(frozen=True)
class Sentence:
    text: str
    page: int
    kind: str = "sentence"


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    index: int
    text: str
    section: str
    page: int
    page_end: int
    sentences: list[Sentence] = field(default_factory=list)


@dataclass
class _Unit:
    """A piece that should not be split if it fits: a paragraph, a list with its lead-in, a table.

    `head` (a list's lead-in, a table's caption and header row) is repeated when the unit must be split;
    each part is one line of the chunk text with the sentences it holds.
    """

    kind: str
    head: list[str]
    head_sentences: list[Sentence]
    parts: list[tuple[str, list[Sentence]]]

    @property
    def lines(self) -> list[str]:
        return self.head + [line for line, _ in self.parts]

    @property
    def sentences(self) -> list[Sentence]:
        return self.head_sentences + [s for _, group in self.parts for s in group]

    @property
    def size(self) -> int:
        return sum(len(line) + 1 for line in self.lines)

    @property
    def pages(self) -> tuple[int, int]:
        found = [s.page for s in self.sentences]
        return min(found), max(found)


def chunk_blocks(blocks: list[Block], doc_id: str, version: str, chunk_size: int, overlap: int) -> list[Chunk]:
    """Chunks of one document. `version` (the file's hash) makes chunk IDs stable for the same content."""
    chunks: list[Chunk] = []
    for section, units in _sections(blocks):
        for lines, sentences in _pack(units, chunk_size, overlap):
            index = len(chunks)
            pages = [s.page for s in sentences]
            chunks.append(Chunk(
                chunk_id=f"{doc_id}:{version[:12]}:{index:04d}", doc_id=doc_id, index=index,
                text="\n".join(lines), section=section, page=min(pages), page_end=max(pages),
                sentences=sentences,
            ))
    return chunks


def _sections(blocks: list[Block]) -> list[tuple[str, list[_Unit]]]:
    sections: list[tuple[str, list[_Unit]]] = []
    path: list[tuple[int, str]] = []
    units: list[_Unit] = []
    front_matter = ""

    def flush() -> None:
        if units:
            sections.append((" > ".join(title for _, title in path) or front_matter, units.copy()))
            units.clear()

    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "heading":
            flush()
            if block.level == 0:
                front_matter = block.text
            else:
                path[:] = [(level, title) for level, title in path if level < block.level]
                path.append((block.level, block.text))
            i += 1
        elif block.kind == "row":
            rows = []
            while i < len(blocks) and blocks[i].kind == "row":
                rows.append(blocks[i])
                i += 1
            caption = units.pop() if units and _is_caption(units[-1]) else None
            units.append(_table_unit(rows, caption))
        elif block.kind == "item" or (block.kind == "paragraph" and block.text.endswith(":")
                                      and i + 1 < len(blocks) and blocks[i + 1].kind == "item"):
            lead = None
            if block.kind == "paragraph":
                lead = block
                i += 1
            items = []
            while i < len(blocks) and blocks[i].kind == "item":
                items.append(blocks[i])
                i += 1
            units.append(_Unit(
                "list",
                [lead.text] if lead else [],
                _block_sentences(lead, "sentence") if lead else [],
                [(f"- {item.text}", _block_sentences(item, "item")) for item in items],
            ))
        else:
            units.append(_Unit("paragraph", [], [], [(block.text, _block_sentences(block, "sentence"))]))
            i += 1
    flush()
    return sections


def _is_caption(unit: _Unit) -> bool:
    lines = unit.lines
    return unit.kind == "paragraph" and len(lines) == 1 and len(lines[0]) < 120 and not lines[0].endswith(".")


def _block_sentences(block: Block, kind: str) -> list[Sentence]:
    out = []
    offset = 0
    for text in split_sentences(block.text):
        found = block.text.find(text[:20], offset)
        offset = found if found >= 0 else offset
        out.append(Sentence(text, block.page_at(offset), kind))
    return out


#: A table cell of at least this many words is prose (a transcript's turn, a fact box), not a value: its
#: sentences are quoted one by one, each after its row's labels.
PROSE_CELL_WORDS = 25
#: A first row is a header only if every cell reads as a column name: short, not a sentence.
HEADER_CELL_WORDS = 8


def _is_header(cells: list[str]) -> bool:
    return len(cells) > 1 and all(len(c.split()) <= HEADER_CELL_WORDS and not c.endswith((".", "?", "!"))
                                  for c in cells)


def _row_sentences(cells: list[str], header: list[str] | None, page: int) -> list[Sentence]:
    """A row as quotable units: one unit "header: value; ..." when its cells are values; when a cell is prose,
    each of its sentences, the first one led by the row's other cells (a speaker, a month, a label)."""
    labelled = [(h, c) for h, c in zip(header, cells, strict=True)] if header else [("", c) for c in cells]
    prose = [n for n, (_, c) in enumerate(labelled) if len(c.split()) >= PROSE_CELL_WORDS]
    if not prose:
        text = "; ".join(f"{h}: {c}" if h else c.rstrip(".") for h, c in labelled if c)
        return [Sentence(text.rstrip(".") + ".", page, "row")]
    labels = "; ".join(f"{h}: {c}" if h else c for n, (h, c) in enumerate(labelled) if c and n not in prose)
    out = []
    for n in prose:
        name, cell = labelled[n]
        lead = "; ".join(x for x in (labels, name) if x)
        for k, text in enumerate(split_sentences(cell)):
            if k == 0 and lead:
                text = f"{lead.rstrip(':')}: {text}"
            out.append(Sentence(text, page, "sentence"))
        labels = ""
    return out


def _table_unit(rows: list[Block], caption: _Unit | None) -> _Unit:
    header_cells = [c.strip() for c in rows[0].text.split("|")]
    header = header_cells if _is_header(header_cells) and len(rows) > 1 else None
    head = (caption.lines if caption else []) + ([rows[0].text] if header else [])
    head_sentences = caption.sentences if caption else []
    parts = []
    for row in rows[1:] if header else rows:
        cells = [c.strip() for c in row.text.split("|")]
        fits = header is not None and len(cells) == len(header) and len(cells) > 1
        parts.append((row.text, _row_sentences(cells, header if fits else None, row.page)))
    if len(parts) == 1 and not header and not caption:
        return _Unit("paragraph", [], [], parts)
    return _Unit("table", head, head_sentences, parts)


def _pack(units: list[_Unit], size: int, overlap: int):
    """Greedy packing of a section's units into chunks; oversized units are split at their seams."""
    pieces: list[_Unit] = []
    for unit in units:
        pieces.extend(_split_unit(unit, size) if unit.size > size else [unit])
    current: list[_Unit] = []
    carried: Sentence | None = None

    def emit():
        lines = ([carried.text] if carried else []) + [line for unit in current for line in unit.lines]
        sentences = ([carried] if carried else []) + [s for unit in current for s in unit.sentences]
        return lines, sentences

    for piece in pieces:
        if current and sum(u.size for u in current) + piece.size > size:
            yield emit()
            last = current[-1]
            tail = last.sentences[-1] if last.kind == "paragraph" and last.sentences else None
            carried = tail if tail is not None and len(tail.text) <= overlap else None
            current = []
        current.append(piece)
    if current:
        yield emit()


def _split_unit(unit: _Unit, size: int) -> list[_Unit]:
    """Split at sentence (paragraph), item (list) or row (table) seams, repeating the unit's head."""
    if unit.kind == "paragraph":
        sentences = [part for _, group in unit.parts for s in group for part in _split_long(s, size)]
        parts = [(s.text, [s]) for s in sentences]
        joiner = " "
    else:
        parts = unit.parts
        joiner = None
    budget = max(size - sum(len(h) + 1 for h in unit.head), size // 2)
    out: list[_Unit] = []
    group: list[tuple[str, list[Sentence]]] = []
    for part in parts:
        if group and sum(len(line) + 1 for line, _ in group) + len(part[0]) > budget:
            out.append(_piece(unit, group, joiner, first=not out))
            group = []
        group.append(part)
    if group:
        out.append(_piece(unit, group, joiner, first=not out))
    return out


def _piece(unit: _Unit, group: list[tuple[str, list[Sentence]]], joiner: str | None, first: bool) -> _Unit:
    if joiner is not None:
        group = [(joiner.join(line for line, _ in group), [s for _, g in group for s in g])]
    return _Unit(unit.kind, unit.head, unit.head_sentences if first else [], group)


def _split_long(sentence: Sentence, size: int) -> list[Sentence]:
    """A sentence longer than a chunk (a run-on table or list without punctuation) is cut by LangChain."""
    if len(sentence.text) <= size:
        return [sentence]
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=0,
                                              separators=["; ", ", ", " ", ""], keep_separator="end")
    return [Sentence(text, sentence.page, sentence.kind) for text in splitter.split_text(sentence.text)]
