"""Editions of a document and what changed between them.

Re-ingesting an updated manual is routine, and the first thing people ask after it is "what changed?". When
an ingest replaces a document's file, `record_edition` compares the previous edition's text (read back from its
chunks, which stay in the index for the grace period) with the new one's and builds a *change report*:

- sections are aligned by heading path, then an unmatched section is paired with the most similar one left
  (its heading and its content, rapidfuzz), so a renamed section is "changed", not "removed" plus "added";
- within two aligned sections, sentences are aligned with difflib over their normalized text; in a run that
  differs, an old sentence is paired with its rewrite by similarity (a monotone alignment), the rest being
  added or removed; a sentence that only moved elsewhere is not a change;
- the facts a changed sentence states differently (numbers, dates, hours, ages, money) are called out.

The report is stored as a blob (replicas of a Chroma server read it too), named in the document's manifest
entry (`changes`), and written to `data/changes/<doc_id>/<old>→<new>.{json,md}`. The previous edition's
text (not its vectors) is kept as a blob too, named in `history` (newest first, at most `WBL_EDITIONS_KEPT`),
so a report can be rebuilt (`rebuild_reports`). The chat answers "what changed?" questions from the report
(change_answers.py), citing the old edition's page and the new one's; evals flag items whose gold pages or key
facts a report touches (`items_to_review`).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process

from .config import Settings
from .store import IndexStore, Manifest
from .text import canonical, normalize

if TYPE_CHECKING:
    from .chunking import Chunk
    from .evaluation.dataset import EvalItem

logger = logging.getLogger(__name__)

REPORT_FORMAT = 1
#: Two sentences in a run that differs are one sentence rewritten when at least this similar (0-1).
PAIR_SIMILARITY = 0.6
#: An unmatched section is the same section renamed when its content is at least this similar...
RENAMED_CONTENT = 0.6
#: ... or when its heading is this similar and its content at least SHARED_CONTENT.
SIMILAR_HEADING = 0.8
SHARED_CONTENT = 0.3
#: A run of differing sentences larger than this (old × new) is not paired sentence by sentence.
MAX_PAIRING_CELLS = 250_000
#: Change reports kept decoded by the chat (a report never changes under its name, except by `rebuild_reports`).
REPORT_CACHE = 32
SAFE_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


# -- an edition's text -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """A sentence (list item, table row) of one edition, with its page and the chunk it was quoted from."""

    text: str
    page: int
    chunk_id: str = ""


@dataclass
class Section:
    path: str
    lines: list[Line] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return self.path.rsplit(" > ", 1)[-1]


@dataclass
class EditionText:
    """The text of one edition, section by section, in document order: what a report compares."""

    sections: list[Section] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        data = [{"path": s.path, "lines": [[ln.text, ln.page, ln.chunk_id] for ln in s.lines]}
                for s in self.sections]
        return zlib.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> EditionText:
        return cls([Section(s["path"], [Line(t, int(p), c) for t, p, c in s["lines"]])
                    for s in json.loads(zlib.decompress(data))])


def _assemble(rows: Iterable[tuple[int, str, str, list[tuple[str, int]]]]) -> EditionText:
    """(chunk index, chunk id, section, [(sentence, page)]) of one version into its text. A chunk repeats the
    last sentence of the chunk before it (the overlap): that copy is skipped."""
    text = EditionText()
    for _, chunk_id, section, sentences in sorted(rows):
        if not text.sections or text.sections[-1].path != section:
            text.sections.append(Section(section))
        lines = text.sections[-1].lines
        for n, (sentence, page) in enumerate(sentences):
            if n == 0 and lines and lines[-1].text == sentence:
                continue
            lines.append(Line(sentence, page, chunk_id))
    return text


def text_from_chunks(chunks: Iterable[Chunk]) -> EditionText:
    """The text of a version being written (its chunks in memory)."""
    return _assemble((c.index, c.chunk_id, c.section, [(s.text, s.page) for s in c.sentences]) for c in chunks)


def text_from_records(records: Iterable[tuple[str, str, dict, Any]]) -> EditionText:
    """The text of a stored version, from its chunk records (`IndexStore.records`)."""
    return _assemble((int(meta["index"]), record_id, meta.get("section", ""),
                      [(t, int(p)) for t, p, _ in json.loads(meta.get("sentences", "[]"))])
                     for record_id, _, meta, _ in records)


# -- facts: numbers, dates, hours, ages ----------------------------------------------------------------------

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_FACT = re.compile(
    r"(?P<money>\$\s?\d[\d,]*(?:\.\d+)?(?:\s*(?:million|billion|thousand))?)"
    rf"|(?P<date>\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b(?:{_MONTHS})\.?\s+\d{{4}}\b)"
    r"|(?P<time>\b\d{1,2}(?::\d{2})?\s?[ap]m\b)"
    r"|(?P<age>\b\d{1,2} year old\b|\b(?:age|aged|ages)\s+\d{1,2}\b)"
    r"|(?P<amount>\b\d+(?:\.\d+)?)\s*-?\s*(?P<unit>hours?|minutes?|days?|weeks?|months?|years?|percent|%|"
    r"credits?)(?![\w-])"
    r"|(?P<year>\b(?:19|20)\d{2}\b)"
    r"|(?P<number>\b\d+(?:\.\d+)?\b)", re.IGNORECASE)
_UNIT_KIND = {"%": "percent", "percent": "percent"}


@dataclass(frozen=True)
class Fact:
    """A fact stated differently by two editions: `old` and `new` as written (None: not stated there)."""

    kind: str
    old: str | None
    new: str | None

    def shown(self) -> str:
        return f"{self.old or '(none)'} → {self.new or '(none)'}"


def facts_of(text: str) -> list[tuple[str, str, str]]:
    """(kind, value, as written) of each fact a sentence states; kind is hours, days, ..., age, date, time,
    money, percent, year or number. Numbers in words count ("sixty hours" is 60 hours)."""
    out = []
    for match in _FACT.finditer(canonical(text)):
        kind = match.lastgroup
        shown = match.group(0).strip()
        if kind == "unit":
            unit = match.group("unit").lower()
            kind = _UNIT_KIND.get(unit, unit.rstrip("s") + "s")
            value = match.group("amount")
        else:
            value = re.sub(r"[^0-9a-z.$]", "", shown.lower())
        out.append((kind, value, shown))
    return out


def moved_facts(old: str, new: str) -> list[Fact]:
    """The facts two versions of a sentence state differently: an old value and its new value paired by kind
    ("60 hours" → "80 hours"), a value stated by one of them only unpaired."""
    old_facts, new_facts = facts_of(old), facts_of(new)
    old_count = Counter((k, v) for k, v, _ in old_facts)
    new_count = Counter((k, v) for k, v, _ in new_facts)
    gone = _only_in(old_facts, new_count)
    came = _only_in(new_facts, old_count)
    out = []
    for kind, _, shown in gone:
        partner = next((f for f in came if f[0] == kind), None)
        if partner is not None:
            came.remove(partner)
        out.append(Fact(kind, shown, partner[2] if partner else None))
    return out + [Fact(kind, None, shown) for kind, _, shown in came]


def _only_in(facts: list[tuple[str, str, str]], other: Counter) -> list[tuple[str, str, str]]:
    left = Counter(other)
    out = []
    for fact in facts:
        key = fact[:2]
        if left[key]:
            left[key] -= 1
        else:
            out.append(fact)
    return out


# -- the report --------------------------------------------------------------------------------------------


@dataclass
class Change:
    """One sentence added or removed, or an old sentence and its rewrite ("changed")."""

    kind: str
    old: Line | None
    new: Line | None
    facts: list[Fact] = field(default_factory=list)


@dataclass
class Passage:
    """A run of consecutive changes in one section. `status` is the section's: same, renamed, added, removed."""

    kind: str
    old_section: str
    new_section: str
    status: str
    changes: list[Change]

    @property
    def section(self) -> str:
        return self.new_section or self.old_section


@dataclass
class EditionInfo:
    """One edition as a report names it. `label` is the edition's name, told apart from the other's."""

    version: str
    edition: str
    label: str
    sha256: str = ""
    ingested_at: float = 0.0
    pages: int = 0


@dataclass
class ChangeReport:
    doc_id: str
    title: str
    old: EditionInfo
    new: EditionInfo
    passages: list[Passage]
    created: float = 0.0
    moved: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Passages changed, added, removed; facts called out; whole sections added and removed."""
        kinds = Counter(p.kind for p in self.passages)
        return {"changed": kinds["changed"], "added": kinds["added"], "removed": kinds["removed"],
                "facts": sum(len(c.facts) for p in self.passages for c in p.changes),
                "sections_added": sum(1 for p in self.passages if p.status == "added"),
                "sections_removed": sum(1 for p in self.passages if p.status == "removed")}

    @property
    def changes(self) -> list[tuple[Passage, Change]]:
        return [(p, c) for p in self.passages for c in p.changes]

    def summary(self) -> str:
        """One line for the ingest summary."""
        c = self.counts
        return (f"{self.old.label} → {self.new.label}: {c['changed']} passages changed, {c['added']} added, "
                f"{c['removed']} removed; {c['facts']} facts moved")

    def to_json(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "doc_id": self.doc_id, "title": self.title, "old": asdict(self.old),
                "new": asdict(self.new), "created": self.created, "moved": self.moved, "counts": self.counts,
                "passages": [asdict(p) for p in self.passages]}

    def to_bytes(self) -> bytes:
        return zlib.compress(json.dumps(self.to_json(), ensure_ascii=False).encode("utf-8"), 6)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangeReport:
        def line(value: dict | None) -> Line | None:
            return Line(**value) if value else None

        passages = [Passage(p["kind"], p["old_section"], p["new_section"], p["status"],
                            [Change(c["kind"], line(c["old"]), line(c["new"]), [Fact(**f) for f in c["facts"]])
                             for c in p["changes"]])
                    for p in data["passages"]]
        return cls(data["doc_id"], data["title"], EditionInfo(**data["old"]), EditionInfo(**data["new"]), passages,
                   data.get("created", 0.0), data.get("moved", 0))

    @classmethod
    def from_bytes(cls, data: bytes) -> ChangeReport:
        return cls.from_json(json.loads(zlib.decompress(data)))


def compare(old: EditionText, new: EditionText, ignore: tuple[str, str] = ("", "")) -> tuple[list[Passage], int]:
    """The passages that differ between two editions, in the new edition's order (a removed section where it
    stood), and how many sentences only moved. A sentence that differs only by `ignore` (the old and the new
    edition's names, as a title page prints them) is no change."""
    pairs = _pair_sections(old.sections, new.sections)
    placed: list[tuple[tuple[float, int], Passage]] = []
    anchor = -1.0
    for i, section in enumerate(old.sections):
        if i in pairs:
            anchor = pairs[i] + 0.0
            continue
        placed.append(((anchor + 0.5, i), Passage("removed", section.path, "", "removed",
                                                  [_one_sided("removed", ln) for ln in section.lines])))
    matched_new = {j: i for i, j in pairs.items()}
    for j, section in enumerate(new.sections):
        if j not in matched_new:
            placed.append(((j, 0), Passage("added", "", section.path, "added",
                                           [_one_sided("added", ln) for ln in section.lines])))
            continue
        before = old.sections[matched_new[j]]
        status = "same" if before.path == section.path else "renamed"
        for n, changes in enumerate(_diff_lines(before.lines, section.lines, ignore)):
            placed.append(((j, n), Passage(_kind(changes), before.path, section.path, status, changes)))
    passages = [p for _, p in sorted(placed, key=lambda item: item[0]) if p.changes]
    return _without_moves(passages)


def _key(text: str) -> str:
    return normalize(text)


def _one_sided(kind: str, line: Line) -> Change:
    facts = [Fact(k, shown, None) if kind == "removed" else Fact(k, None, shown) for k, _, shown in facts_of(line.text)]
    return Change(kind, line if kind == "removed" else None, line if kind == "added" else None, facts)


def _kind(changes: list[Change]) -> str:
    kinds = {c.kind for c in changes}
    return kinds.pop() if len(kinds) == 1 else "changed"


def _content(section: Section) -> str:
    return " ".join(_key(ln.text) for ln in section.lines)


def _pair_sections(old: list[Section], new: list[Section]) -> dict[int, int]:
    """old index → new index: the same heading path first (in order), then the most similar section left."""
    pairs: dict[int, int] = {}
    by_path: dict[str, list[int]] = {}
    for j, section in enumerate(new):
        by_path.setdefault(section.path, []).append(j)
    for i, section in enumerate(old):
        if by_path.get(section.path):
            pairs[i] = by_path[section.path].pop(0)
    left_old = [i for i in range(len(old)) if i not in pairs]
    left_new = [j for j in range(len(new)) if j not in set(pairs.values())]
    candidates = []
    for i in left_old:
        for j in left_new:
            heading = fuzz.token_set_ratio(_key(old[i].heading), _key(new[j].heading)) / 100
            content = fuzz.ratio(_content(old[i]), _content(new[j])) / 100
            if content >= RENAMED_CONTENT or (heading >= SIMILAR_HEADING and content >= SHARED_CONTENT):
                candidates.append((heading + content, i, j))
    taken: set[int] = set()
    for _, i, j in sorted(candidates, reverse=True):
        if i not in pairs and j not in taken:
            pairs[i] = j
            taken.add(j)
    return pairs


def _strip(text: str, name: str) -> str:
    return _key(text.replace(name, "")) if name else _key(text)


def _diff_lines(old: list[Line], new: list[Line], ignore: tuple[str, str]) -> list[list[Change]]:
    """The runs of changes between two versions of a section's sentences."""
    matcher = difflib.SequenceMatcher(None, [_key(ln.text) for ln in old], [_key(ln.text) for ln in new],
                                      autojunk=False)
    runs = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        changes = [c for c in _pair_lines(old[i1:i2], new[j1:j2], ignore)
                   if not (c.kind == "changed" and _strip(c.old.text, ignore[0]) == _strip(c.new.text, ignore[1]))]
        if changes:
            runs.append(changes)
    return runs


def _pair_lines(old: list[Line], new: list[Line], ignore: tuple[str, str] = ("", "")) -> list[Change]:
    """A monotone alignment of a run's old and new sentences that maximizes the similarity of the pairs it
    makes (each at least PAIR_SIMILARITY): pairs are rewrites, the others removed or added. Two sentences that
    differ only by the editions' names (`ignore`) are a pair."""
    n, m = len(old), len(new)
    if not n or not m or n * m > MAX_PAIRING_CELLS:
        return [_one_sided("removed", ln) for ln in old] + [_one_sided("added", ln) for ln in new]
    similarity = (process.cdist([_key(ln.text) for ln in old], [_key(ln.text) for ln in new],
                                scorer=fuzz.ratio) / 100).tolist()
    if any(ignore):
        same: dict[str, list[int]] = {}
        for j, line in enumerate(new):
            same.setdefault(_strip(line.text, ignore[1]), []).append(j)
        for i, line in enumerate(old):
            for j in same.get(_strip(line.text, ignore[0]), []):
                similarity[i][j] = 1.0
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            value = max(best[i + 1][j], best[i][j + 1])
            if similarity[i][j] >= PAIR_SIMILARITY:
                value = max(value, similarity[i][j] + best[i + 1][j + 1])
            best[i][j] = value
    out: list[Change] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and similarity[i][j] >= PAIR_SIMILARITY \
                and best[i][j] == similarity[i][j] + best[i + 1][j + 1]:
            out.append(Change("changed", old[i], new[j], moved_facts(old[i].text, new[j].text)))
            i, j = i + 1, j + 1
        elif i < n and (j == m or best[i][j] == best[i + 1][j]):
            out.append(_one_sided("removed", old[i]))
            i += 1
        else:
            out.append(_one_sided("added", new[j]))
            j += 1
    return out


def _without_moves(passages: list[Passage]) -> tuple[list[Passage], int]:
    """Drop sentences removed in one place and added, unchanged, in another: they moved, they did not change."""
    removed = Counter(_key(c.old.text) for p in passages for c in p.changes if c.kind == "removed")
    added = Counter(_key(c.new.text) for p in passages for c in p.changes if c.kind == "added")
    moved = removed & added
    if not moved:
        return passages, 0
    left_removed, left_added = Counter(moved), Counter(moved)
    out = []
    for passage in passages:
        kept = []
        for change in passage.changes:
            if change.kind == "removed" and left_removed[_key(change.old.text)]:
                left_removed[_key(change.old.text)] -= 1
            elif change.kind == "added" and left_added[_key(change.new.text)]:
                left_added[_key(change.new.text)] -= 1
            else:
                kept.append(change)
        if kept:
            passage.changes = kept
            passage.kind = _kind(kept) if passage.status not in ("added", "removed") else passage.kind
            out.append(passage)
    return out, sum(moved.values())


# -- editions in the manifest --------------------------------------------------------------------------------


def edition_labels(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str]:
    """Names for two editions (manifest entries or history items) that tell them apart: the catalog's edition
    (else the day it was ingested), with the ingest day, or else the file's hash, when both have one name."""
    def base(entry: dict[str, Any]) -> str:
        return entry.get("edition") or f"ingested {_day(entry.get('ingested_at', 0.0))}"

    old_label, new_label = base(old), base(new)
    if old_label != new_label:
        return old_label, new_label
    old_day, new_day = _day(old.get("ingested_at", 0.0)), _day(new.get("ingested_at", 0.0))
    if old_day != new_day and not old_label.startswith("ingested "):
        return f"{old_label} (ingested {old_day})", f"{new_label} (ingested {new_day})"
    return f"{old_label} ({old.get('sha256', '')[:8]})", f"{new_label} ({new.get('sha256', '')[:8]})"


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at)) if at else "unknown"


def _info(entry: dict[str, Any], label: str) -> EditionInfo:
    return EditionInfo(entry["version"], entry.get("edition", ""), label, entry.get("sha256", ""),
                       float(entry.get("ingested_at", 0.0)), int(entry.get("pages", 0)))


def report_files(settings: Settings, report: ChangeReport) -> tuple[Path, Path]:
    """Where a report's JSON and Markdown go: `data/changes/<doc_id>/<old>→<new>.json` and `.md`."""
    markdown = settings.data_dir / report_path(report)
    return markdown.with_suffix(".json"), markdown


def report_path(report: ChangeReport) -> Path:
    """The report's Markdown file relative to the data dir."""
    return Path("changes", _safe(report.doc_id), f"{_safe(report.old.label)}→{_safe(report.new.label)}.md")


def _safe(label: str) -> str:
    return SAFE_LABEL.sub("-", label).strip("-.")[:80] or "edition"


def write_files(settings: Settings, report: ChangeReport) -> tuple[Path, Path]:
    """The report as JSON (to rebuild or process) and Markdown (to read), beside the index."""
    json_path, md_path = report_files(settings, report)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(report_markdown(report), encoding="utf-8")
    return json_path, md_path


def build_report(doc_id: str, title: str, old: EditionInfo, new: EditionInfo, old_text: EditionText,
                 new_text: EditionText) -> ChangeReport:
    """Compare two editions' texts; a line that differs only by the editions' names is no change."""
    passages, moved = compare(old_text, new_text, (old.edition, new.edition))
    return ChangeReport(doc_id, title, old, new, passages, time.time(), moved)


def record_edition(store: IndexStore, settings: Settings, doc_id: str, previous: dict[str, Any] | None,
                   entry: dict[str, Any], chunks: list[Chunk]) -> tuple[dict[str, Any], ChangeReport | None]:
    """Called by ingest once a document's new version is written: when its file changed, keep the previous
    edition's text, build the change report (blobs and files) and return the manifest entry's `history` and
    `changes` with the report; otherwise carry them over. Bounded by `WBL_EDITIONS_KEPT`."""
    if previous is None:
        return {}, None
    history = list(previous.get("history", []))
    changes = list(previous.get("changes", []))
    report = None
    if previous.get("sha256") != entry["sha256"]:
        old_text = text_from_records(store.records(where={"version": previous["version"]}))
        if old_text.sections:
            text_blob = f"edition-text:{doc_id}:{previous['version']}"
            store.save_blob(text_blob, old_text.to_bytes())
            history = [item for item in history if item["version"] != previous["version"]]
            history.insert(0, {key: previous.get(key) for key in ("version", "edition", "title", "sha256",
                                                                   "ingested_at", "pages")}
                           | {"text_blob": text_blob})
            old_label, new_label = edition_labels(previous, entry)
            report = build_report(doc_id, entry.get("title", doc_id), _info(previous, old_label),
                                  _info(entry, new_label), old_text, text_from_chunks(chunks))
            report_blob = f"change-report:{doc_id}:{previous['version']}:{entry['version']}"
            store.save_blob(report_blob, report.to_bytes())
            write_files(settings, report)
            changes.insert(0, {"from": previous["version"], "to": entry["version"], "from_edition": old_label,
                               "to_edition": new_label, "report_blob": report_blob, "at": report.created,
                               "counts": report.counts})
        else:
            logger.warning("the previous edition of %s is no longer in the index: no change report", doc_id)
    elif changes and changes[0]["to"] == previous["version"]:
        changes[0] = _rebased(store, settings, doc_id, entry, chunks, changes[0], history)
    history = history[:settings.editions_kept]
    kept = {item["version"] for item in history}
    changes = [change for change in changes if change["from"] in kept]
    return ({"history": history, "changes": changes} if history else {}), report


def _rebased(store: IndexStore, settings: Settings, doc_id: str, entry: dict[str, Any], chunks: list[Chunk],
             change: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The same file read again (`ingest --rebuild`, a new pipeline) is a new version with new chunks: the last
    report is made again against them, so that its citations of the current edition stay live."""
    kept = next((item for item in history if item["version"] == change["from"]), None)
    old_text = _kept_text(store, kept)
    if old_text is None:
        return {**change, "to": entry["version"]}
    report = build_report(doc_id, entry.get("title", doc_id), _info(kept, change["from_edition"]),
                          _info(entry, change["to_edition"]), old_text, text_from_chunks(chunks))
    report.created = change["at"]
    report_blob = f"change-report:{doc_id}:{change['from']}:{entry['version']}"
    store.save_blob(report_blob, report.to_bytes())
    write_files(settings, report)
    return {**change, "to": entry["version"], "report_blob": report_blob, "counts": report.counts}


def rebuild_reports(settings: Settings, doc_id: str | None = None,
                    store: IndexStore | None = None) -> list[ChangeReport]:
    """Recompute the change reports of one document (or all) from the edition texts the manifest keeps, and
    store and write them again (after the alignment improved, or when `data/changes` was lost)."""
    store = store or IndexStore(settings)
    out = []
    with store.writer_lock(settings.ingest_wait):
        manifest = store.active()
        documents = manifest.documents if manifest else {}
        for current_id, entry in documents.items():
            if doc_id not in (None, current_id):
                continue
            kept = {item["version"]: item for item in entry.get("history", [])}
            for change in entry.get("changes", []):
                old_text = _kept_text(store, kept.get(change["from"]))
                if change["to"] == entry["version"]:
                    new_entry = entry
                    new_text = text_from_records(store.records(where={"version": entry["version"]}))
                else:
                    new_entry = kept.get(change["to"])
                    new_text = _kept_text(store, new_entry)
                if old_text is None or new_text is None or new_entry is None:
                    logger.warning("cannot rebuild %s %s: an edition's text is missing", current_id,
                                   change["report_blob"])
                    continue
                report = build_report(current_id, entry.get("title", current_id),
                                      _info(kept[change["from"]], change["from_edition"]),
                                      _info(new_entry, change["to_edition"]), old_text, new_text)
                report.created = change["at"]
                store.save_blob(change["report_blob"], report.to_bytes())
                _forget(change["report_blob"])
                write_files(settings, report)
                out.append(report)
    return out


def _kept_text(store: IndexStore, item: dict[str, Any] | None) -> EditionText | None:
    data = store.load_blob(item["text_blob"]) if item and item.get("text_blob") else None
    return EditionText.from_bytes(data) if data is not None else None


_reports: OrderedDict[tuple[str, ...], ChangeReport] = OrderedDict()
_reports_lock = threading.Lock()


def load_report(store: IndexStore, blob: str) -> ChangeReport | None:
    """A stored change report (None when its blob is missing), kept decoded for the next question."""
    key = (str(store.settings.data_dir), store.settings.chroma_host, store.prefix, blob)
    with _reports_lock:
        if key in _reports:
            _reports.move_to_end(key)
            return _reports[key]
    data = store.load_blob(blob)
    if data is None:
        return None
    report = ChangeReport.from_bytes(data)
    with _reports_lock:
        _reports[key] = report
        while len(_reports) > REPORT_CACHE:
            _reports.popitem(last=False)
    return report


def _forget(blob: str) -> None:
    with _reports_lock:
        for key in [k for k in _reports if k[-1] == blob]:
            del _reports[key]


def latest_report(store: IndexStore, entry: dict[str, Any]) -> ChangeReport | None:
    """The report of a document's last update, or None when it has none."""
    changes = entry.get("changes", [])
    return load_report(store, changes[0]["report_blob"]) if changes else None


# -- the report as Markdown ----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: ChangeReport, escape: Callable[[str], str] = _cell) -> str:
    """The report for people: counts, the facts that moved, changed passages side by side, added and removed
    ones. `escape` is applied to every text from the documents (the chat page passes its own)."""
    old, new, counts = report.old, report.new, report.counts
    out = [f"## Changes in {escape(report.title)}: {escape(old.label)} → {escape(new.label)}", "",
           f"From the {escape(old.label)} edition ({old.pages} pages, ingested {_day(old.ingested_at)}) to the "
           f"{escape(new.label)} edition ({new.pages} pages, ingested {_day(new.ingested_at)}): "
           f"{counts['changed']} passages changed, {counts['added']} added, {counts['removed']} removed; "
           f"{counts['facts']} facts moved.", ""]
    facts = [(p, c, f) for p, c in report.changes for f in c.facts]
    if facts:
        out += ["### Facts that moved", "", "| Section | Before | After |", "|---|---|---|"]
        for passage, change, fact in facts:
            before = f"{escape(fact.old)} (p. {change.old.page})" if fact.old and change.old else "—"
            after = f"{escape(fact.new)} (p. {change.new.page})" if fact.new and change.new else "—"
            out.append(f"| {escape(passage.section)} | {before} | {after} |")
        out.append("")
    for kind, heading in (("changed", "Changed passages"), ("added", "Added passages"),
                          ("removed", "Removed passages")):
        passages = [p for p in report.passages if p.kind == kind]
        if not passages:
            continue
        out += [f"### {heading}", ""]
        for n, passage in enumerate(passages):
            if n == 0 or passages[n - 1].section != passage.section:
                note = {"added": " (new section)", "removed": " (section removed)",
                        "renamed": f" (was: {escape(passage.old_section)})"}.get(passage.status, "")
                out += [f"#### {escape(passage.section)}{note}", ""]
                if kind == "changed":
                    out += [f"| {escape(old.label)} | {escape(new.label)} |", "|---|---|"]
            if kind == "changed":
                out += [f"| {_side(c.old, escape)} | {_side(c.new, escape)} |" for c in passage.changes]
            else:
                out += [f"- p. {(c.new or c.old).page}: {escape((c.new or c.old).text)}" for c in passage.changes]
            if n == len(passages) - 1 or passages[n + 1].section != passage.section:
                out.append("")
    if not report.passages:
        out += ["No passage changed.", ""]
    return "\n".join(out)


def _side(line: Line | None, escape: Callable[[str], str]) -> str:
    return f"p. {line.page}: {escape(line.text)}" if line else "—"


# -- evals: items whose expectations a new edition may have changed ------------------------------------------


def items_to_review(items: list[EvalItem], manifest: Manifest, store: IndexStore) -> list[dict[str, Any]]:
    """Eval items whose gold document changed since the edition they were written against (`edition`; without
    one, the last update), where a change touches a gold page (old or new page numbers) or a passage holding
    one of their key facts: their expectations may be out of date."""
    out = []
    for item in items:
        for doc_id in item.gold_docs:
            entry = manifest.documents.get(doc_id)
            if not entry or not entry.get("changes"):
                continue
            reasons, labels = [], []
            since = _changes_since(entry, item.edition)
            if since is None:
                reasons.append(f"written against the {item.edition} edition, which is no longer kept")
            for change in since or []:
                report = load_report(store, change["report_blob"])
                if report is None:
                    continue
                found = _touches(report, item)
                if found:
                    reasons += found
                    labels.append(f"{change['from_edition']} → {change['to_edition']}")
            if reasons:
                out.append({"id": item.id, "question": item.question, "doc_id": doc_id,
                            "edition": item.edition, "editions": "; ".join(labels) or entry.get("edition", ""),
                            "why": "; ".join(dict.fromkeys(reasons))})
    return out


def _changes_since(entry: dict[str, Any], edition: str) -> list[dict[str, Any]] | None:
    """The updates of a document after `edition` (oldest first); without an edition, its last update; None
    when that edition is not one the manifest knows."""
    changes = entry.get("changes", [])
    if not edition:
        return changes[:1]
    if edition == entry.get("edition"):
        return []
    kept = {item["version"]: item.get("edition", "") for item in entry.get("history", [])}
    for n, change in enumerate(changes):
        if edition == change["to_edition"]:
            return list(reversed(changes[:n]))
        if edition in (change["from_edition"], kept.get(change["from"], "")):
            return list(reversed(changes[:n + 1]))
    return None


def _touches(report: ChangeReport, item: EvalItem) -> list[str]:
    reasons = []
    pages = set(item.gold_pages)
    for passage, change in report.changes:
        hit = sorted(pages & {ln.page for ln in (change.old, change.new) if ln})
        if hit:
            reasons.append(f"gold page {', '.join(map(str, hit))} changed ({passage.section})")
        if change.old is not None:
            said = f" {normalize(change.old.text)} "
            for alternatives in item.key_facts:
                fact = next((a for a in alternatives if normalize(a) and f" {normalize(a)} " in said), None)
                if fact:
                    reasons.append(f"key fact “{fact}” was in a {change.kind} passage")
    return reasons
