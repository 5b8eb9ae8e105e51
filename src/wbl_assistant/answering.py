"""From retrieved chunks to a cited answer: the abstention gate and the extractive answerer.

The gate reads only retrieval evidence (how close the best passages are to the question, and how much of
the question's vocabulary the top chunks cover) and decides whether the documents answer the question.
The extractive answerer then quotes sentences of the top chunks, each cited with an [n] marker that maps
to (title, edition, page): nothing appears in the answer that is not in a cited chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .grounding import cited_text
from .retrieval import Retrieval, RetrievedChunk, SentenceRecord
from .text import terms


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


@dataclass
class Evidence:
    """What the gate reads. best_sentence: cosine of the closest sentence; coverage: IDF-weighted share of
    the question's terms found in the top chunks; unknown: IDF-weighted share the corpus never uses."""

    best_sentence: float
    top_chunk: float
    coverage: float
    unknown: float

    @property
    def score(self) -> float:
        return 0.55 * self.best_sentence + 0.45 * self.coverage - 0.3 * self.unknown

    def as_dict(self) -> dict[str, float]:
        return {"best_sentence": round(self.best_sentence, 4), "top_chunk": round(self.top_chunk, 4),
                "coverage": round(self.coverage, 4), "unknown": round(self.unknown, 4),
                "score": round(self.score, 4)}


@dataclass
class AnswerContext:
    """Everything an answer backend gets: the question, the standalone query, and the evidence."""

    question: str
    query: str
    history: list[dict[str, str]]
    retrieval: Retrieval
    sentences: dict[str, tuple[SentenceRecord, ...]]
    evidence: Evidence
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


def measure_evidence(retrieval: Retrieval, sentences: dict[str, tuple[SentenceRecord, ...]], top: int = 3) -> Evidence:
    vectors = [s.vector for records in sentences.values() for s in records]
    best_sentence = float(np.max(np.stack(vectors) @ retrieval.query_vector)) if vectors else 0.0
    top_chunk = max((c.dense for c in retrieval.chunks), default=0.0)
    weights = retrieval.term_weights
    total = sum(weights.values())
    if not total:
        return Evidence(best_sentence, top_chunk, 0.0, 0.0)
    snapshot = retrieval.snapshot
    found: set[str] = set()
    for chunk in retrieval.chunks[:top]:
        found |= snapshot.terms_of(chunk.chunk_id)
    coverage = sum(w for t, w in weights.items() if t in found) / total
    unknown = sum(w for t, w in weights.items() if not snapshot.knows(t)) / total
    return Evidence(best_sentence, top_chunk, coverage, unknown)


@dataclass
class _Candidate:
    record: SentenceRecord
    chunk: RetrievedChunk
    relevance: float
    terms: set[str]


def _candidates(context: AnswerContext) -> list[_Candidate]:
    weights = context.retrieval.term_weights
    total = sum(weights.values()) or 1.0
    seen: set[str] = set()
    out = []
    for chunk in context.retrieval.chunks:
        title_terms = set(terms(chunk.metadata.get("title", "")))
        for record in context.sentences.get(chunk.chunk_id, []):
            key = record.text.strip().lower()
            if key in seen or len(record.text.split()) < 4 or not _reads_as_statement(record):
                continue
            seen.add(key)
            sentence_terms = set(terms(record.text))
            lexical = sum(w for t, w in weights.items() if t in sentence_terms) / total
            relevance = float(record.vector @ context.retrieval.query_vector) + 0.35 * lexical
            relevance += 0.08 / chunk.rank
            if record.text.rstrip().endswith("?"):
                relevance -= 0.15
            if sentence_terms and len(sentence_terms & title_terms) / len(sentence_terms) > 0.5:
                relevance -= 0.2
            out.append(_Candidate(record, chunk, relevance, sentence_terms))
    return out


def _reads_as_statement(record: SentenceRecord) -> bool:
    """Prose must end like a sentence; list items and table rows need not (a caption or heading is no answer)."""
    return record.unit in ("item", "row") or record.text.rstrip()[-1:] in ".!?:;)\"”'"


def select_sentences(context: AnswerContext, budget_words: int) -> list[_Candidate]:
    """Sentences that answer the question: relevant, covering the question's terms, not repeating."""
    candidates = sorted(_candidates(context), key=lambda c: -c.relevance)
    if not candidates:
        return []
    chosen = [candidates[0]]
    words = len(candidates[0].record.text.split())
    floor = candidates[0].relevance * 0.8
    weights = context.retrieval.term_weights
    covered = set(candidates[0].terms)
    while words < budget_words:
        best, best_value = None, -1e9
        for candidate in candidates:
            if candidate in chosen or candidate.relevance < floor:
                continue
            redundancy = max(float(candidate.record.vector @ c.record.vector) for c in chosen)
            if redundancy > 0.9:
                continue
            new_terms = sum(w for t, w in weights.items() if t in candidate.terms and t not in covered)
            value = candidate.relevance - 0.45 * redundancy + 0.1 * min(new_terms, 3.0)
            if value > best_value:
                best, best_value = candidate, value
        if best is None:
            break
        length = len(best.record.text.split())
        if words + length > budget_words * 1.25 and len(chosen) >= 1:
            break
        chosen.append(best)
        covered |= best.terms
        words += length
    return _reading_order(chosen)


def _reading_order(chosen: list[_Candidate]) -> list[_Candidate]:
    """The best sentence first; the rest grouped by chunk, in the order the document gives them."""
    first, rest = chosen[0], chosen[1:]
    rest.sort(key=lambda c: (c.chunk.chunk_id != first.chunk.chunk_id, c.chunk.rank, c.record.position))
    return [first, *rest]


def cite(pieces: list[tuple[str, RetrievedChunk, int]]) -> Composed:
    """Number the sources by first use, one per (document, page); each piece gets its marker."""
    numbers: dict[tuple[str, int], Citation] = {}
    shown = []
    for text, chunk, page in pieces:
        key = (chunk.doc_id, page)
        if key not in numbers:
            meta = chunk.metadata
            numbers[key] = Citation(len(numbers) + 1, chunk.doc_id, meta["title"], meta["edition"], page,
                                    chunk.chunk_id, text, meta.get("publisher", ""), meta.get("section", ""))
        elif text not in numbers[key].quote:
            numbers[key].quote += " " + text
        shown.append(cited_text(text, [numbers[key].n]))
    return Composed(shown, list(numbers.values()))


def extractive_answer(context: AnswerContext, budget_words: int) -> Composed:
    chosen = select_sentences(context, budget_words)
    return cite([(c.record.text, c.chunk, c.record.page) for c in chosen])
