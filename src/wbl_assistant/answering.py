"""From retrieved chunks to a cited answer: the answer types and the extractive answerer.

The extractive answerer quotes sentences of the top chunks, each cited with an [n] marker that maps to
(title, edition, page): nothing appears in the answer that is not in a cited chunk. It reads the question's
form (questions.py): a list question gets the list or table block that answers it, whole and in order; a
quantity question opens with the sentence stating a quantity in the asked unit; a yes/no question with the
sentence holding the verdict; and a sentence about another subject than the question's (16- and
17-year-olds, when asked about 15) does not open an answer. In a FAQ, the answer follows its question:
the document's own question is never quoted, the sentences after it are favoured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .grounding import cited_text
from .questions import (
    LIST,
    OTHER,
    QUANTITY,
    YES_NO,
    QuestionShape,
    answers_quantity,
    conflicting_subject,
    holds_verdict,
    quantities,
    states_bound,
)
from .retrieval import IndexSnapshot, Retrieval, RetrievedChunk, SentenceRecord
from .text import BARE_LABEL, LABEL, terms
from .vocabulary import Concept

if TYPE_CHECKING:
    from .gate import Evidence

#: A question's concepts as (every known way of writing it, weight).
Concepts = list[tuple[tuple[tuple[str, ...], ...], float]]


@dataclass
class Citation:
    n: int
    doc_id: str
    title: str
    edition: str
    page: int
    chunk_id: str
    quote: str
    publisher: str = ""
    section: str = ""
    chunk_ids: list[str] = field(default_factory=list)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    retrieved: list[dict[str, Any]]
    timings_ms: dict[str, float]
    backend: str
    query: str = ""
    evidence: dict[str, float] = field(default_factory=dict)
    guard: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["guard"] is None:
            data.pop("guard")
        return data


@dataclass(frozen=True)
class QuestionPart:
    """One of several questions asked at once, each of which the answer must address."""

    text: str
    shape: QuestionShape
    vector: np.ndarray
    concepts: Concepts


@dataclass
class AnswerContext:
    """Everything an answer backend gets: the question, the standalone query, and the evidence."""

    question: str
    query: str
    history: list[dict[str, str]]
    retrieval: Retrieval
    sentences: dict[str, tuple[SentenceRecord, ...]]
    evidence: Evidence
    shape: QuestionShape = field(default_factory=lambda: QuestionShape(OTHER))
    parts: list[QuestionPart] = field(default_factory=list)
    started: float = 0.0
    retrieve_ms: float = 0.0
    abstain: bool = False


@dataclass
class Composed:
    """An answer backend's output: the cited sentences as shown ("text [n]"), and the citations they use."""

    pieces: list[str]
    citations: list[Citation]
    guard: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return " ".join(self.pieces)

    def stream(self) -> Iterator[str]:
        """The answer as it would be spoken, one cited sentence at a time ("".join gives `text`)."""
        for n, piece in enumerate(self.pieces):
            yield piece if n == 0 else " " + piece


@dataclass
class Candidate:
    """A quotable sentence of a retrieved chunk, scored for this question.

    relevance: how well it answers (similarity, the question's concepts it holds, its chunk's rank); in a
    FAQ, an answer inherits the relevance of the document's question it answers. opener: relevance
    adjusted for the question's form (a quantity in the asked unit, a verdict, the question's subject).
    coverage: the IDF-weighted share of the question's concepts it holds."""

    record: SentenceRecord
    chunk: RetrievedChunk
    relevance: float
    opener: float
    coverage: float
    terms: set[str]


def concept_weights(retrieval: Retrieval) -> Concepts:
    """Each concept of the question with its known forms and weight (the IDF of its rarest known form)."""
    return concept_weights_of(retrieval.snapshot, retrieval.concepts)


def concept_weights_of(snapshot: IndexSnapshot, concepts: list[Concept]) -> Concepts:
    out = []
    for concept in concepts:
        known = [f for f in concept.forms if all(snapshot.knows(t) for t in f)]
        if known:
            out.append((tuple(known), max(snapshot.idf(t) for f in known for t in f)))
    return out


def concept_coverage(concepts: Concepts, found: set[str]) -> float:
    total = sum(w for _, w in concepts) or 1.0
    return sum(w for forms, w in concepts if any(all(t in found for t in f) for f in forms)) / total


def _locally_weighted(concepts: Concepts, retrieval: Retrieval,
                      sentences: dict[str, tuple[SentenceRecord, ...]]) -> Concepts:
    """Concept weights for choosing among the retrieved sentences: a concept most of them hold (the topic the
    passages share) tells little about which one answers, so its corpus weight is scaled by its rarity among
    them (an IDF over the retrieved sentences)."""
    records = [set(terms(r.text)) for chunk in retrieval.chunks for r in sentences.get(chunk.chunk_id, ())]
    if not records:
        return concepts
    out = []
    for forms, weight in concepts:
        holding = sum(1 for found in records if any(all(t in found for t in f) for f in forms))
        out.append((forms, weight * math.log((len(records) + 1) / (holding + 0.5))))
    return out


def is_question(text: str) -> bool:
    stripped = text.strip()
    return stripped.endswith("?") or stripped[:2].lower() == "q:"


#: A sentence about the document itself ("This chapter describes ...") tells where an answer is, not what.
_SELF_REFERENCE = re.compile(
    r"^\W*(this|these|the following|below|here)\b[^.]{0,60}\b(chapter|section|guide|document|page|sample|"
    r"edition|part|table|list|module|handout|sheet|summary|overview|faq|flyer|resource|piece)s?\b", re.IGNORECASE)
#: An answer in a FAQ scores as its question does, less this; each further answer sentence a little less.
FAQ_MARGIN = 0.05
FAQ_DECAY = 0.03


#: A phrase the question quotes ('authentic working conditions') is asked about word for word: a sentence
#: holding it, in order, scores this much more. The quotes must stand at word edges (not "kid's ... school's").
_QUOTED = re.compile(r"(?:^|(?<=[\s(]))[\"“'‘]([^\"“”'‘’]{3,80}?)[\"”'’](?=[\s.,;:?!)]|$)")
QUOTED_BONUS = 0.15


def quoted_phrases(question: str) -> list[tuple[str, ...]]:
    """The terms of each phrase of two to eight terms that the question puts in quotes."""
    found = (tuple(terms(m.group(1))) for m in _QUOTED.finditer(question))
    return [phrase for phrase in found if 2 <= len(phrase) <= 8]


def holds_phrase(words: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(words[i:i + n]) == phrase for i in range(len(words) - n + 1))


#: A follow-up asks for what the last answer did not say: a sentence whose terms are mostly that answer's
#: ("School week: max 18 hrs" after "no more than 18 hours in a school week") scores this much less.
REPEAT_SHARE = 0.7
REPEAT_PENALTY = 0.15


def last_answer_terms(history: list[dict[str, str]] | None) -> set[str]:
    """The terms of the conversation's last answer (none without one)."""
    for turn in reversed(history or []):
        if turn.get("role") == "assistant":
            return set(terms(turn.get("content", "")))
    return set()


def score_sentences(retrieval: Retrieval, sentences: dict[str, tuple[SentenceRecord, ...]],
                    shape: QuestionShape, said: set[str] | None = None) -> list[Candidate]:
    """Every quotable sentence of the retrieved chunks, scored (see `Candidate`). A document's own
    questions (a sentence, or the heading a chunk sits under) are never candidates: the sentences after
    them are. `said`: the terms of the last answer, which a follow-up's answer should not repeat."""
    concepts = _locally_weighted(concept_weights(retrieval), retrieval, sentences)
    phrases = quoted_phrases(retrieval.query)
    asked_terms = {t for concept in retrieval.concepts for form in concept.forms for t in form}
    seen: set[str] = set()
    out = []
    for chunk in retrieval.chunks:
        title_terms = set(terms(chunk.metadata.get("title", "")))
        heading = retrieval.snapshot.heading(chunk.chunk_id) if retrieval.snapshot is not None else None
        records = sentences.get(chunk.chunk_id, ())
        asked, answered = None, 0
        for record in ([heading] if heading is not None and is_question(heading.text) else []) + list(records):
            similarity = float(retrieval.similarity(record.vector))
            words = terms(record.text)
            sentence_terms = set(words)
            coverage = concept_coverage(concepts, sentence_terms)
            novelty = len(sentence_terms - asked_terms - title_terms) / (len(sentence_terms) or 1)
            relevance = similarity + 0.35 * coverage + 0.1 * novelty + 0.08 / chunk.rank
            if any(holds_phrase(words, phrase) for phrase in phrases):
                relevance += QUOTED_BONUS
            if said and sentence_terms and len(sentence_terms & said) >= REPEAT_SHARE * len(sentence_terms):
                relevance -= REPEAT_PENALTY
            if _SELF_REFERENCE.search(record.text):
                relevance -= 0.12
            if is_question(record.text):
                asked, answered = relevance, 0
                continue
            if asked is not None:
                relevance = max(relevance, asked - FAQ_MARGIN - FAQ_DECAY * answered)
                answered += 1
            key = record.text.strip().lower()
            if key in seen or len(record.text.split()) < 4 or not _reads_as_statement(record):
                continue
            seen.add(key)
            if sentence_terms and len(sentence_terms & title_terms) / len(sentence_terms) > 0.5:
                relevance -= 0.2
            out.append(Candidate(record, chunk, relevance, relevance + _opening_bonus(shape, record.text),
                                 coverage, sentence_terms))
    return out


def _part_score(part: QuestionPart, candidate: Candidate) -> float:
    """How well a sentence answers one part of a question of several parts."""
    similarity = float(candidate.record.vector @ part.vector)
    return similarity + 0.35 * concept_coverage(part.concepts, candidate.terms) + _opening_bonus(
        part.shape, candidate.record.text)


def _opening_bonus(shape: QuestionShape, text: str) -> float:
    """How much better (or worse) a sentence opens the answer than its relevance alone says."""
    bonus = 0.0
    if shape.kind == QUANTITY:
        bonus += 0.12 if answers_quantity(text, shape.unit, shape.counted) else -0.08
    elif shape.kind == YES_NO and holds_verdict(text):
        bonus += 0.04
    if conflicting_subject(shape, text):
        bonus -= 0.2
    elif shape.kind in (YES_NO, QUANTITY) and states_bound(shape, text):
        bonus += 0.08
    return bonus


def _reads_as_statement(record: SentenceRecord) -> bool:
    """Prose must end like a sentence; list items and table rows need not (a caption or heading is no answer),
    but a memo's or an e-mail's header row ("TO:; District contacts") says who wrote to whom, not what."""
    if record.unit == "row":
        return not _HEADER_ROW.match(record.text)
    return record.unit == "item" or record.text.rstrip()[-1:] in ".!?:;)\"”'"


_HEADER_ROW = re.compile(r"^\W*(to|from|cc|bcc|date|sent|re|subject|attn|memo)\s*:", re.IGNORECASE)


#: What a sentence from a document the answer does not cite yet must beat: an answer that draws on one
#: source is easier to check, and a second source is added for what it says, not for repeating the first.
OTHER_SOURCE_PENALTY = 0.1


def select_sentences(context: AnswerContext, budget_words: int, candidates: list[Candidate],
                     cited_only_after: int | None = None) -> list[Candidate]:
    """Sentences that answer the question: the most direct one first, then the best one for each part of a
    question of several parts, then relevant ones covering the question's terms, not repeating. Past
    `cited_only_after` words, only documents already cited are drawn on."""
    if not candidates:
        return []
    opener = max(candidates, key=lambda c: c.opener)
    chosen = [opener, *_continuation(opener, candidates)]
    for part in context.parts:
        best = max(candidates, key=lambda c: _part_score(part, c))
        if best not in chosen:
            chosen.append(best)
    words = sum(len(c.record.text.split()) for c in chosen)
    floor = max(c.relevance for c in candidates) * RELEVANCE_FLOOR
    concepts = concept_weights(context.retrieval)
    covered = set().union(*(c.terms for c in chosen))
    stated = set().union(*(quantities(c.record.text) for c in chosen))
    sources = {c.chunk.doc_id for c in chosen}
    while words < budget_words:
        best, best_value = None, -1e9
        already = concept_coverage(concepts, covered)
        for candidate in candidates:
            if candidate in chosen or candidate.relevance < floor:
                continue
            if cited_only_after is not None and words >= cited_only_after and candidate.chunk.doc_id not in sources:
                continue
            redundancy = max(float(candidate.record.vector @ c.record.vector) for c in chosen)
            # Rows alike but for their numbers ("School week: max 18 hrs", "Non-school week: max 40 hrs") are
            # sibling facts, not repeats: only a sentence adding no quantity is skipped as a near-copy.
            if redundancy > 0.9 and not quantities(candidate.record.text) - stated:
                continue
            gain = concept_coverage(concepts, covered | candidate.terms) - already
            value = candidate.relevance - 0.45 * redundancy + 0.25 * gain
            if candidate.chunk.doc_id not in sources:
                value -= OTHER_SOURCE_PENALTY
            if value > best_value:
                best, best_value = candidate, value
        if best is None:
            break
        length = len(best.record.text.split())
        if words + length > budget_words * 1.25:
            break
        chosen.append(best)
        covered |= best.terms
        stated |= quantities(best.record.text)
        sources.add(best.chunk.doc_id)
        words += length
    return _reading_order(chosen)


def _continuation(opener: Candidate, candidates: list[Candidate]) -> list[Candidate]:
    """The sentence that carries on the opener's paragraph: what a passage says first, it develops next."""
    for candidate in candidates:
        record = candidate.record
        if (candidate.chunk.chunk_id == opener.chunk.chunk_id and record.position == opener.record.position + 1
                and record.paragraph == opener.record.paragraph and record.unit == opener.record.unit):
            return [candidate]
    return []


def _reading_order(chosen: list[Candidate]) -> list[Candidate]:
    """The opening sentence first; the rest grouped by chunk, in the order the document gives them."""
    first, rest = chosen[0], chosen[1:]
    rest.sort(key=lambda c: (c.chunk.chunk_id != first.chunk.chunk_id, c.chunk.rank, c.record.position))
    return [first, *rest]


#: Sentences under this share of the best one's relevance are not added to an answer.
RELEVANCE_FLOOR = 0.70


@dataclass
class _Block:
    """A list or a table in a chunk: its lead-in sentence (if any) and its items or rows, in order."""

    chunk: RetrievedChunk
    lead: SentenceRecord | None
    items: list[SentenceRecord]
    score: float = 0.0


def _blocks(context: AnswerContext) -> list[_Block]:
    blocks = []
    for chunk in context.retrieval.chunks:
        records = context.sentences.get(chunk.chunk_id, ())
        n = 0
        while n < len(records):
            if records[n].unit not in ("item", "row") or not _reads_as_statement(records[n]):
                n += 1
                continue
            start = n
            while n < len(records) and records[n].unit == records[start].unit and _reads_as_statement(records[n]):
                n += 1
            lead = records[start - 1] if start and records[start - 1].text.rstrip().endswith(":") else None
            if n - start >= 2:
                blocks.append(_Block(chunk, lead, list(records[start:n])))
    return blocks


def _best_block(context: AnswerContext, candidates: list[Candidate]) -> _Block | None:
    """The list or table that answers a list question, when one is as relevant as the best sentence."""
    blocks = _blocks(context)
    if not blocks or not candidates:
        return None
    retrieval = context.retrieval
    concepts = concept_weights(retrieval)
    for block in blocks:
        lead_terms = set(terms(block.chunk.metadata.get("section", "")))
        lead_similarity = 0.0
        if block.lead is not None:
            lead_terms |= set(terms(block.lead.text))
            lead_similarity = float(retrieval.similarity(block.lead.vector))
        item_similarity = max(float(retrieval.similarity(item.vector)) for item in block.items)
        block.score = (max(lead_similarity, item_similarity) + 0.35 * concept_coverage(concepts, lead_terms)
                       + 0.08 / block.chunk.rank)
    best = max(blocks, key=lambda b: b.score)
    top = max(c.relevance for c in candidates)
    return best if best.score >= top - 0.05 else None


_DANGLING = re.compile(r"(:|;\s*(or|and)|,\s*(or|and)|\b(or|and))$")
#: At most this many list items or continuation lines follow a lead-in that a chosen sentence ends with.
MAX_FOLLOWERS = 15


_LABEL = re.compile(rf"^{LABEL}\s")


def _label_kind(text: str) -> str:
    """The enumeration style a list item starts with: "digit", "roman", "letter" or "" (a bullet)."""
    match = _LABEL.match(text.strip())
    if not match:
        return ""
    label = match.group(1)
    return "digit" if label.isdigit() else "roman" if set(label) <= set("ivx") and len(label) > 1 else "letter"


def _with_followers(context: AnswerContext, records: list[tuple[SentenceRecord, RetrievedChunk]]
                    ) -> list[tuple[SentenceRecord, RetrievedChunk]]:
    """A sentence that leads into a list ("... must:") or breaks off ("...; or") is never quoted alone:
    the items and lines that complete it follow it, in order, up to the end of that list."""
    out: list[tuple[SentenceRecord, RetrievedChunk]] = []
    seen: set[tuple[str, int]] = set()
    for record, chunk in records:
        run = [record]
        if _DANGLING.search(record.text.rstrip()):
            previous, kind = record, None
            for follower in context.sentences.get(chunk.chunk_id, ())[record.position + 1:][:MAX_FOLLOWERS]:
                continues = _DANGLING.search(previous.text.rstrip()) or follower.unit in ("item", "row")
                kind = _label_kind(follower.text) if kind is None else kind
                if not continues or (follower.unit == "item" and _label_kind(follower.text) != kind):
                    break
                run.append(follower)
                previous = follower
        for item in run:
            if (chunk.chunk_id, item.position) not in seen:
                seen.add((chunk.chunk_id, item.position))
                out.append((item, chunk))
    return out


#: A sentence that opens by pointing back ("This ...", "It ...", "However, ...") leans on the one before it.
_ANAPHOR = re.compile(r"^\W*(this|that|these|those|it|its|they|their|such|however|but|yet|still|also|even so|"
                      r"in that case|otherwise)\b", re.IGNORECASE)


def _cohesive(context: AnswerContext, records: list[tuple[SentenceRecord, RetrievedChunk]],
              budget_words: int) -> list[tuple[SentenceRecord, RetrievedChunk]]:
    """Keep sentences that lean on each other together: a chosen sentence that points back gets the sentence
    it points to before it; a chosen sentence that the next one qualifies ("This has not been confirmed")
    gets that one after it; both within the word budget."""
    words = sum(len(r.text.split()) for r, _ in records)
    keys = {(c.chunk_id, r.position) for r, c in records}
    out: list[tuple[SentenceRecord, RetrievedChunk]] = []
    for record, chunk in records:
        siblings = context.sentences.get(chunk.chunk_id, ())
        before = siblings[record.position - 1] if record.position > 0 else None
        if (_ANAPHOR.search(record.text) and before is not None and (chunk.chunk_id, before.position) not in keys
                and not is_question(before.text) and words + len(before.text.split()) <= budget_words * 1.25):
            out.append((before, chunk))
            keys.add((chunk.chunk_id, before.position))
            words += len(before.text.split())
        out.append((record, chunk))
        after = siblings[record.position + 1] if record.position + 1 < len(siblings) else None
        if (after is not None and _ANAPHOR.search(after.text) and (chunk.chunk_id, after.position) not in keys
                and after.unit == record.unit and words + len(after.text.split()) <= budget_words * 1.25):
            out.append((after, chunk))
            keys.add((chunk.chunk_id, after.position))
            words += len(after.text.split())
    return out


#: A list question answered in sentences (no list or table in the passages answers it) gets this much of
#: the word budget: its members are often spread over several sentences of the documents it already cites.
LIST_BUDGET = 1.5


def extractive_answer(context: AnswerContext, budget_words: int) -> Composed:
    candidates = score_sentences(context.retrieval, context.sentences, context.shape,
                                 last_answer_terms(context.history))
    if context.shape.kind == LIST:
        block = _best_block(context, candidates)
        if block is not None:
            records = ([block.lead] if block.lead else []) + block.items
            kept, words = [], 0
            for record in records:
                words += len(record.text.split())
                if kept and words > budget_words * 2:
                    break
                kept.append(record)
            return cite(_with_labels([(r, block.chunk) for r in kept]))
    base = budget_words
    if context.shape.kind == LIST:  # a list answered in sentences needs room for its members, from its sources
        budget_words = int(budget_words * LIST_BUDGET)
    chosen = select_sentences(context, budget_words, candidates, base if budget_words > base else None)
    pieces = _with_followers(context, _cohesive(context, [(c.record, c.chunk) for c in chosen], budget_words))
    return cite(_with_labels(pieces))


def _with_labels(pieces: list[tuple[SentenceRecord, RetrievedChunk]]) -> list[tuple[str, RetrievedChunk, int]]:
    """The quotable text of each piece: a list item's bare number ("2.", a unit of its own) is joined to the
    item it numbers ("2. A curriculum ..."), and left out where that item is not quoted."""
    out: list[tuple[str, RetrievedChunk, int]] = []
    for n, (record, chunk) in enumerate(pieces):
        if BARE_LABEL.match(record.text):
            continue
        previous = pieces[n - 1] if n else None
        label = ""
        if previous is not None and BARE_LABEL.match(previous[0].text) and previous[1].chunk_id == chunk.chunk_id \
                and previous[0].position == record.position - 1:
            label = previous[0].text.strip() + " "
        out.append((label + record.text, chunk, record.page))
    return out


def cite(pieces: list[tuple[str, RetrievedChunk, int]]) -> Composed:
    """Number the sources by first use, one per (document, page); each piece gets its marker. A citation
    lists every chunk it quotes (several chunks can share a page)."""
    numbers: dict[tuple[str, int], Citation] = {}
    shown = []
    for text, chunk, page in pieces:
        key = (chunk.doc_id, page)
        if key not in numbers:
            meta = chunk.metadata
            numbers[key] = Citation(len(numbers) + 1, chunk.doc_id, meta["title"], meta["edition"], page,
                                    chunk.chunk_id, text, meta.get("publisher", ""), meta.get("section", ""),
                                    [chunk.chunk_id])
        elif text not in numbers[key].quote:
            numbers[key].quote += " " + text
        if chunk.chunk_id not in numbers[key].chunk_ids:
            numbers[key].chunk_ids.append(chunk.chunk_id)
        shown.append(cited_text(text, [numbers[key].n]))
    return Composed(shown, list(numbers.values()))
