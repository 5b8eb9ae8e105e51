"""Answer-quality metrics as small pure functions: no index, no model, hand-checkable.

Retrieval metrics take the ranked retrieved items; answer metrics take the answer text, its citations and
the dataset item's expectations. Aggregation (means, rates, percentiles) lives here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from ..grounding import SUPPORT_THRESHOLD, sentence_support
from ..text import normalize

MARKER = re.compile(r"\[(\d+)\]")


def unique_in_order(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def hit_at_k(ranked: Sequence[bool], k: int) -> float:
    """1.0 when a relevant item is among the first k, else 0.0. `ranked[i]`: is item i relevant."""
    return 1.0 if any(ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[bool]) -> float:
    for position, relevant in enumerate(ranked, start=1):
        if relevant:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranked: Sequence[bool], k: int = 10, relevant_total: int | None = None) -> float:
    """Binary-relevance nDCG@k. The ideal ranking puts min(k, relevant_total) relevant items first."""
    dcg = sum(1.0 / math.log2(i + 2) for i, relevant in enumerate(ranked[:k]) if relevant)
    ideal_count = min(k, relevant_total if relevant_total is not None else sum(ranked))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(ideal_count))
    return dcg / ideal if ideal else 0.0


def doc_relevance(retrieved_docs: Sequence[str], gold_docs: Iterable[str]) -> list[bool]:
    """Relevance by document, over the distinct documents in retrieval order."""
    gold = set(gold_docs)
    return [doc in gold for doc in unique_in_order(retrieved_docs)]


def page_relevance(retrieved: Sequence[tuple[str, int, int]], gold_docs: Iterable[str],
                   gold_pages: Iterable[int]) -> list[bool]:
    """Relevance by page: a retrieved (doc, first page, last page) of a gold document that spans a gold page."""
    gold, pages = set(gold_docs), set(gold_pages)
    return [doc in gold and any(first <= p <= last for p in pages) for doc, first, last in retrieved]


def fact_present(normalized_answer: str, alternatives: Sequence[str]) -> bool:
    """A key fact is present when any alternative appears, as whole words, in the normalized answer."""
    padded = f" {normalized_answer} "
    return any(f" {normalize(alt)} " in padded for alt in alternatives if normalize(alt))


def key_fact_recall(answer: str, key_facts: Sequence[Sequence[str]]) -> float:
    if not key_facts:
        return 1.0
    normalized = normalize(answer)
    return sum(fact_present(normalized, alts) for alts in key_facts) / len(key_facts)


def all_facts(answer: str, key_facts: Sequence[Sequence[str]]) -> float:
    return 1.0 if key_fact_recall(answer, key_facts) == 1.0 else 0.0


def citation_validity(answer: str, citation_numbers: Iterable[int]) -> float:
    """Share of [n] markers that point to a listed citation; an answer with no marker scores 0."""
    markers = [int(n) for n in MARKER.findall(answer)]
    if not markers:
        return 0.0
    listed = set(citation_numbers)
    return sum(n in listed for n in markers) / len(markers)


def source_precision(cited_docs: Iterable[str], gold_docs: Iterable[str]) -> float:
    cited, gold = set(cited_docs), set(gold_docs)
    return len(cited & gold) / len(cited) if cited else 0.0


def source_recall(cited_docs: Iterable[str], gold_docs: Iterable[str]) -> float:
    cited, gold = set(cited_docs), set(gold_docs)
    return len(cited & gold) / len(gold) if gold else 1.0


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """Split an answer into its sentences with the markers each one carries ("text [1] more [2]")."""
    out = []
    for piece in re.split(r"(?<=\])\s+(?!\[)", answer.strip()):
        markers = [int(n) for n in MARKER.findall(piece)]
        text = MARKER.sub("", piece).strip()
        if text:
            out.append((text, markers))
    return out


def citation_support(answer: str, chunk_text_by_number: dict[int, str],
                     threshold: float = SUPPORT_THRESHOLD) -> float:
    """Share of the answer's sentences supported by a chunk they cite (see `grounding.sentence_support`)."""
    sentences = cited_sentences(answer)
    if not sentences:
        return 0.0
    supported = 0
    for text, markers in sentences:
        sources = [chunk_text_by_number[n] for n in markers if n in chunk_text_by_number]
        if sources and max(sentence_support(text, s) for s in sources) >= threshold:
            supported += 1
    return supported / len(sentences)


def crag_score(answerable: bool, abstained: bool, correct: bool) -> int:
    """CRAG-style: +1 a correct answer (or a refusal when the documents don't answer), 0 an abstention on
    an answerable question, -1 a wrong answer (or an answer where the documents don't answer)."""
    if not answerable:
        return 1 if abstained else -1
    if abstained:
        return 0
    return 1 if correct else -1


def rate(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
