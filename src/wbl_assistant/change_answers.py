"""Answering "what changed?" in the chat: from the change report (editions.py) of the document a question
names, or of the best-ranked one that has a report, the changed passages, old and new sentence side by side,
each cited. It lives on the answering side so that ingestion (which writes the reports) never imports the
answer path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .answering import AnswerContext, Citation, Composed
from .editions import Change, ChangeReport, Line, Passage, latest_report
from .grounding import cited_text
from .store import IndexStore
from .text import terms

_WORDS = r"(?:[\w'’-]+\s+){0,8}?"
_CHANGE_QUESTION = re.compile(
    r"\bwhat(?:'s|’s|s| is| has| have| was| were)?\s+(?:been\s+)?(?:changed|new|different|updated|revised)\b"
    r"|\bwhat\s+(?:are\s+|were\s+)?(?:the\s+)?(?:main\s+|key\s+|latest\s+|recent\s+)?"
    r"(?:changes|differences|updates|revisions)\b"
    rf"|\b(?:did|has|have|had)\s+{_WORDS}change[ds]?\b"
    rf"|\b(?:was|were|has|have|had)\s+{_WORDS}(?:been\s+)?(?:updated|revised|amended|changed)\b"
    r"|\b(?:any|recent|latest)\s+(?:changes|updates|revisions)\b"
    rf"|\b(?:changes?|differences?|differ|different)\s+{_WORDS}(?:editions?|versions?)\b"
    rf"|\b(?:editions?|versions?)\s+{_WORDS}(?:changes?|changed|differ|differences?|different)\b"
    r"|\bsince\s+the\s+(?:last|previous|prior|earlier|old|older)\s+(?:edition|version|update|one)\b"
    r"|\b(?:compared?|comparison)\s+(?:to|with)\s+the\s+(?:last|previous|prior|earlier|old|older)\b"
    r"|\bthe\s+(?:previous|prior|earlier|old|older|last)\s+(?:edition|version)\b",
    re.IGNORECASE)
#: "When was it updated?" asks for a date, which the document's own text gives.
_WHEN = re.compile(r"^\W*when\b", re.IGNORECASE)
#: Words of a change question that say "what changed", not what about.
_CHANGE_WORDS = frozenset(terms(
    "change changed changes new newest latest recent edition editions version versions update updated updates "
    "revised revision revisions amended modified differ difference differences different previous prior earlier "
    "old older last since compared comparison current now anything something main key document documents "
    "manual guide handbook toolkit publication file pdf rule rules"))
_AUXILIARY = re.compile(r"^\s*(did|has|have|had|was|were|is|are|does|do)\b", re.IGNORECASE)


def is_change_question(question: str) -> bool:
    """Whether a question asks what changed between editions ("what changed in ...", "what's new in ...",
    "did ... change", "differences between the editions", "since the last edition", ...)."""
    return bool(_CHANGE_QUESTION.search(question)) and not _WHEN.match(question)


def change_answer(context: AnswerContext, store: IndexStore, budget_words: int) -> Composed | None:
    """The answer to a "what changed?" question from the change report of the document it names (or, naming
    none, of the highest-ranked retrieved one that has a report): the changed passages, old and new sentence
    side by side, each cited (the old edition's page, the new one's). None, for the ordinary pipeline to
    answer, when the question is not about changes, no such document has a report, or (naming no document)
    its report does not touch what the question is about."""
    if not is_change_question(context.question):
        return None
    snapshot = context.retrieval.snapshot
    documents = snapshot.documents
    concepts = snapshot.lexicon.concepts(terms(context.query))
    named = _named_document(concepts, documents)
    asked = snapshot.lexicon.concepts(terms(context.question))
    candidates = [named] if named is not None else list(dict.fromkeys(c.doc_id for c in context.retrieval.ranking))
    for doc_id in candidates:
        entry = documents.get(doc_id, {})
        report = latest_report(store, entry)
        if report is None:
            continue
        title_terms = set(terms(entry.get("title", "")))
        topic = [c for c in asked if not any(t in _CHANGE_WORDS or t in title_terms for t in c.asked)
                 and not any(set(form) <= title_terms for form in c.forms)]
        chosen = _relevant(report, topic, snapshot.idf)
        if chosen or not topic:
            return _compose(report, entry, chosen or _overview(report), bool(topic), budget_words,
                            context.question)
        if named is not None:
            return _nothing_on_topic(report)
    return None


def _named_document(concepts: list, documents: dict[str, dict[str, Any]]) -> str | None:
    """The document a question names by its title (or an alias of its words: "CDE toolkit"), if any: the one
    whose title the question covers best, then with the most words ("... Toolkit Companion Piece" over
    "... Toolkit")."""
    best, best_score = None, (0.0, 0)
    for doc_id, entry in documents.items():
        title = set(terms(entry.get("title", "")))
        if not title:
            continue
        covered: set[str] = set()
        for concept in concepts:
            form = next((f for f in concept.forms if set(f) <= title), None)
            if form:
                covered |= set(form)
        score = (len(covered) / len(title), len(covered))
        if score[0] >= 0.6 and (score[1] >= 2 or score[0] == 1.0) and score > best_score:
            best, best_score = doc_id, score
    return best


def _change_terms(passage: Passage, change: Change) -> set[str]:
    text = " ".join(ln.text for ln in (change.old, change.new) if ln) + " " + passage.section
    return set(terms(text))


def _relevant(report: ChangeReport, topic: list, idf: Callable[[str], float]) -> list[tuple[Passage, Change]]:
    """The changes about the question's topic, the most relevant first (by the rarity of the words they share)."""
    if not topic:
        return []
    scored = []
    for passage, change in report.changes:
        found = _change_terms(passage, change)
        score = sum(idf(c.forms[0][0]) for c in topic if any(set(f) <= found for f in c.forms))
        if score > 0:
            scored.append((score, passage, change))
    if not scored:
        return []
    top = max(s for s, _, _ in scored)
    return [(p, c) for s, p, c in sorted(scored, key=lambda item: -item[0]) if s >= top / 2]


def _overview(report: ChangeReport) -> list[tuple[Passage, Change]]:
    """The changes to show first when the question asks what changed at all: taken in turn from facts that
    moved, sections added, sections removed and the other changes, one per passage before a second one."""
    groups: list[list[tuple[Passage, Change]]] = [[], [], [], []]
    for passage in report.passages:
        ranked = sorted(passage.changes, key=lambda c: -len(c.facts))
        first, rest = ranked[0], ranked[1:]
        group = (1 if passage.status == "added" else 2 if passage.status == "removed"
                 else 0 if first.kind == "changed" and first.facts else 3)
        groups[group].append((passage, first))
        groups[3] += [(passage, change) for change in rest]
    out = []
    while any(groups):
        for group in groups:
            if group:
                out.append(group.pop(0))
    return out


class _Sources:
    """Citations numbered by first use, one per (edition, page); the old edition's are labelled so."""

    def __init__(self, report: ChangeReport, entry: dict[str, Any], new_label: str) -> None:
        self.report, self.entry, self.new_label = report, entry, new_label
        self.citations: dict[tuple[str, int], Citation] = {}

    def cite(self, side: str, line: Line, section: str) -> int:
        key = (side, line.page)
        citation = self.citations.get(key)
        if citation is None:
            old = side == "old"
            title = self.report.title + (" (old edition)" if old else "")
            citation = Citation(len(self.citations) + 1, self.report.doc_id, title,
                                self.report.old.label if old else self.new_label, line.page, line.chunk_id,
                                line.text, self.entry.get("publisher", ""), section, [line.chunk_id])
            self.citations[key] = citation
        elif line.text not in citation.quote:
            citation.quote += " " + line.text
        if line.chunk_id not in citation.chunk_ids:
            citation.chunk_ids.append(line.chunk_id)
        return citation.n


def _compose(report: ChangeReport, entry: dict[str, Any], chosen: list[tuple[Passage, Change]], on_topic: bool,
             budget_words: int, question: str) -> Composed:
    # the catalog may have renamed the current edition since the report was made: its name is the current one
    retitled = entry.get("version") == report.new.version and entry.get("edition") not in ("", report.new.edition)
    new_label = entry["edition"] if retitled else report.new.label
    old_label, counts = report.old.label, report.counts
    sources = _Sources(report, entry, new_label)
    if on_topic:
        opening = ("Yes. " if _AUXILIARY.match(question) else "") + (
            f"The {new_label} edition of {report.title} changed this from the {old_label} edition:")
    else:
        opening = (f"The {new_label} edition of {report.title} replaced the {old_label} edition: "
                   f"{counts['changed']} passages changed, {counts['added']} added and {counts['removed']} removed. "
                   "The main changes:")
    pieces, words = [opening], 0
    order = {id(change): n for n, (_, change) in enumerate(report.changes)}
    picked = []
    for passage, change in chosen:
        size = sum(len(ln.text.split()) for ln in (change.old, change.new) if ln)
        if picked and words + size > budget_words * 2:
            break
        picked.append((passage, change))
        words += size
    for passage, change in sorted(picked, key=lambda item: order[id(item[1])]):
        pieces.append(_change_piece(passage, change, sources, old_label, new_label))
    rest = len(report.changes) - len(picked)
    if rest > 0:
        pieces.append(f"\n\n{'Other changes' if on_topic else 'And'}: {rest} more in the full change report.")
    return Composed(pieces, list(sources.citations.values()))


def _change_piece(passage: Passage, change: Change, sources: _Sources, old_label: str, new_label: str) -> str:
    section = passage.section
    where = f"In “{section}”" if section else "At the start"
    if change.kind == "changed":
        old = cited_text(f"the {old_label} edition said “{change.old.text}”",
                         [sources.cite("old", change.old, passage.old_section)])
        new = cited_text(f"the {new_label} edition says “{change.new.text}”",
                         [sources.cite("new", change.new, passage.new_section)])
        facts = "; ".join(f.shown() for f in change.facts)
        return f"\n\n{where}, {old}; {new}" + (f" ({facts})." if facts else ".")
    if change.kind == "added":
        label = "new section" if passage.status == "added" else "added"
        return "\n\n" + cited_text(f"{where} ({label}, {new_label} edition): “{change.new.text}”",
                                   [sources.cite("new", change.new, passage.new_section)])
    label = "section removed" if passage.status == "removed" else "removed"
    return "\n\n" + cited_text(f"{where} ({label}; it was in the {old_label} edition): “{change.old.text}”",
                               [sources.cite("old", change.old, passage.old_section)])


def _nothing_on_topic(report: ChangeReport) -> Composed:
    counts = report.counts
    return Composed([f"The change report between the {report.old.label} and {report.new.label} editions of "
                     f"{report.title} shows no change about this ({counts['changed']} passages changed, "
                     f"{counts['added']} added and {counts['removed']} removed, none on this subject)."], [])


def replaced_edition_note(citation: Citation, escape: Callable[[str], str]) -> str:
    """What the chat page shows instead of a page of an edition the corpus no longer holds (its file was
    replaced by the new edition's)."""
    return (f"\\[{citation.n}\\] {escape(citation.title)}, {escape(citation.edition)} edition, page "
            f"{citation.page}: that edition was replaced, so its PDF is no longer in the corpus and the page "
            "cannot be shown. The quoted passage is under Sources.")
