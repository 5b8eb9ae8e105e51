"""Answer-quality metrics as small pure functions: no index, no model, hand-checkable.

Retrieval metrics take the ranked retrieved items; answer metrics take the answer text, its citations and
the dataset item's expectations. The per-item metrics of one answered item, the aggregation over items
(means, rates, percentiles) and the one list of metric names live here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..grounding import SUPPORT_THRESHOLD, markers_in, sentence_support, split_cited
from ..text import normalize

RETRIEVAL_DEPTHS = (1, 3, 5)
RETRIEVAL_KEYS = ([f"doc_hit@{k}" for k in RETRIEVAL_DEPTHS] + ["doc_mrr", "doc_ndcg@10"]
                  + [f"page_hit@{k}" for k in RETRIEVAL_DEPTHS] + ["page_mrr"])
ANSWER_KEYS = ["key_fact_recall", "all_facts", "citation_validity", "source_precision", "source_recall",
               "citation_support", "refusal_rate", "false_refusal_rate", "crag"]
LATENCY_KEYS = ["latency_p50_ms", "latency_p95_ms"]
#: Answer metrics that are means of per-item values (the others are rates over items).
PER_ITEM_ANSWER_KEYS = [k for k in ANSWER_KEYS if k not in ("refusal_rate", "false_refusal_rate", "crag")]
#: Every metric of a summary, in report order.
METRIC_KEYS = RETRIEVAL_KEYS + ANSWER_KEYS + LATENCY_KEYS


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
    markers = markers_in(answer)
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


def citation_support(answer: str, chunk_text_by_number: dict[int, str],
                     threshold: float = SUPPORT_THRESHOLD) -> float:
    """Share of the answer's sentences supported by a chunk they cite (see `grounding.sentence_support`)."""
    sentences = split_cited(answer)
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
    """The q-th percentile (0..100), linear interpolation; None when there are no values."""
    items = list(values)
    return float(np.percentile(items, q)) if items else None


def retrieval_metrics(docs: Sequence[str], pages: Sequence[tuple[str, int, int]], gold_docs: Sequence[str],
                      gold_pages: Sequence[int]) -> dict[str, float]:
    """Hit@k, MRR and nDCG@10 by document; Hit@k and MRR by page where the item gives gold pages.

    `docs`: the retrieved chunks' documents in rank order; `pages`: their (doc, first page, last page)."""
    relevant = doc_relevance(docs, gold_docs)
    out = {f"doc_hit@{k}": hit_at_k(relevant, k) for k in RETRIEVAL_DEPTHS}
    out["doc_mrr"] = reciprocal_rank(relevant)
    out["doc_ndcg@10"] = ndcg_at_k(relevant, 10, relevant_total=len(set(gold_docs)))
    if gold_pages:
        on_page = page_relevance(pages, gold_docs, gold_pages)
        out.update({f"page_hit@{k}": hit_at_k(on_page, k) for k in RETRIEVAL_DEPTHS})
        out["page_mrr"] = reciprocal_rank(on_page)
    return out


def item_metrics(item: Any, answer: dict[str, Any], chunk_text: Callable[[str], str]) -> dict[str, Any]:
    """Every per-item metric of one answered (or abstained) item: `answer` is its `ask --json` object."""
    abstained = bool(answer["abstained"])
    text = "" if abstained else answer["answer"]
    out: dict[str, Any] = {"abstained": abstained, "latency_ms": answer["timings_ms"]["total"]}
    citations = answer.get("citations", [])
    if item.answerable:
        retrieved = answer["retrieved"]
        out.update(retrieval_metrics([r["doc_id"] for r in retrieved],
                                     [(r["doc_id"], r["page"], r.get("page_end", r["page"])) for r in retrieved],
                                     item.gold_docs, item.gold_pages))
        out["key_fact_recall"] = key_fact_recall(text, item.key_facts) if not abstained else 0.0
        out["all_facts"] = all_facts(text, item.key_facts) if not abstained else 0.0
        if not abstained:
            cited = [c["doc_id"] for c in citations]
            out["source_precision"] = source_precision(cited, item.gold_docs)
            out["source_recall"] = source_recall(cited, item.gold_docs)
    if not abstained:
        out["citation_validity"] = citation_validity(text, [c["n"] for c in citations])
        out["citation_support"] = citation_support(text, {
            c["n"]: " ".join(chunk_text(cid) for cid in c.get("chunk_ids") or [c["chunk_id"]]) for c in citations})
    correct = item.answerable and not abstained and out.get("all_facts", 0.0) == 1.0
    out["crag"] = crag_score(item.answerable, abstained, correct)
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-item metrics (`row["metrics"]`); each mean is over the items where that metric applies."""
    per_item = [r["metrics"] for r in rows]
    summary: dict[str, Any] = {"items": len(rows),
                               "answerable": sum(1 for r in rows if r["answerable"]),
                               "unanswerable": sum(1 for r in rows if not r["answerable"])}
    for key in RETRIEVAL_KEYS + PER_ITEM_ANSWER_KEYS:
        summary[key] = mean(x[key] for x in per_item if key in x)
    summary["refusal_rate"] = rate(r["metrics"]["abstained"] for r in rows if not r["answerable"])
    summary["false_refusal_rate"] = rate(r["metrics"]["abstained"] for r in rows if r["answerable"])
    summary["crag"] = mean(x["crag"] for x in per_item)
    latencies = [x["latency_ms"] for x in per_item]
    summary["latency_p50_ms"] = percentile(latencies, 50)
    summary["latency_p95_ms"] = percentile(latencies, 95)
    guards = [r.get("guard") for r in rows if r.get("guard")]
    if guards:
        summary["guard"] = {
            "answers": len(guards),
            "sentences_kept": sum(g.get("kept", 0) for g in guards),
            "sentences_dropped": sum(g.get("dropped", 0) for g in guards),
            "fallbacks": sum(1 for g in guards if g.get("fallback")),
        }
    tags: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        for tag in row.get("tags") or ["(untagged)"]:
            tags.setdefault(tag, []).append(row)
    summary["by_tag"] = {
        tag: {"items": len(group),
              "key_fact_recall": mean(r["metrics"]["key_fact_recall"] for r in group
                                      if "key_fact_recall" in r["metrics"]),
              "doc_hit@5": mean(r["metrics"]["doc_hit@5"] for r in group if "doc_hit@5" in r["metrics"]),
              "abstained": rate(r["metrics"]["abstained"] for r in group),
              "crag": mean(r["metrics"]["crag"] for r in group)}
        for tag, group in sorted(tags.items())
    }
    return summary


def correct(row: dict[str, Any]) -> bool:
    """An item the assistant got right: a refusal where the documents don't answer; else an answer with
    every key fact and a gold document in the top 5."""
    metrics = row["metrics"]
    if not row["answerable"]:
        return bool(metrics["abstained"])
    return (not metrics["abstained"] and metrics.get("all_facts", 0.0) == 1.0
            and metrics.get("doc_hit@5", 0.0) == 1.0)
