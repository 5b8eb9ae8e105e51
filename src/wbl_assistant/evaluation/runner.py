"""`wbl-assistant eval`: every dataset item through the same `Assistant.ask` the CLI uses, then metrics.

Writes DIR/results.jsonl (each item merged with its `ask --json` object and its metrics), DIR/summary.json,
DIR/report.md and DIR/report.html.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answering import Answer
from ..assistant import Assistant
from . import metrics as m
from .dataset import EvalItem, load_dataset

RETRIEVAL_DEPTHS = (1, 3, 5)


@dataclass
class EvalRun:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    baseline: dict[str, Any] | None = None
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)


def retrieval_metrics(retrieved: list[dict[str, Any]], item: EvalItem) -> dict[str, float]:
    """Hit@k, MRR and nDCG@10 by document, and by page where the item gives gold pages."""
    docs = m.doc_relevance([r["doc_id"] for r in retrieved], item.gold_docs)
    out = {f"doc_hit@{k}": m.hit_at_k(docs, k) for k in RETRIEVAL_DEPTHS}
    out["doc_mrr"] = m.reciprocal_rank(docs)
    out["doc_ndcg@10"] = m.ndcg_at_k(docs, 10, relevant_total=len(set(item.gold_docs)))
    if item.gold_pages:
        pages = m.page_relevance([(r["doc_id"], r["page"], r.get("page_end", r["page"])) for r in retrieved],
                                 item.gold_docs, item.gold_pages)
        out.update({f"page_hit@{k}": m.hit_at_k(pages, k) for k in RETRIEVAL_DEPTHS})
        out["page_mrr"] = m.reciprocal_rank(pages)
    return out


def item_metrics(item: EvalItem, answer: dict[str, Any], chunk_text: Callable[[str], str]) -> dict[str, Any]:
    """Every per-item metric of one answered (or abstained) item."""
    abstained = bool(answer["abstained"])
    text = "" if abstained else answer["answer"]
    out: dict[str, Any] = {"abstained": abstained, "latency_ms": answer["timings_ms"]["total"]}
    citations = answer.get("citations", [])
    if item.answerable:
        out.update(retrieval_metrics(answer["retrieved"], item))
        out["key_fact_recall"] = m.key_fact_recall(text, item.key_facts) if not abstained else 0.0
        out["all_facts"] = m.all_facts(text, item.key_facts) if not abstained else 0.0
        if not abstained:
            cited = [c["doc_id"] for c in citations]
            out["source_precision"] = m.source_precision(cited, item.gold_docs)
            out["source_recall"] = m.source_recall(cited, item.gold_docs)
    if not abstained:
        out["citation_validity"] = m.citation_validity(text, [c["n"] for c in citations])
        out["citation_support"] = m.citation_support(text, {c["n"]: chunk_text(c["chunk_id"]) for c in citations})
    correct = item.answerable and not abstained and out.get("all_facts", 0.0) == 1.0
    out["crag"] = m.crag_score(item.answerable, abstained, correct)
    return out


SUMMARY_KEYS = (
    [f"doc_hit@{k}" for k in RETRIEVAL_DEPTHS] + ["doc_mrr", "doc_ndcg@10"]
    + [f"page_hit@{k}" for k in RETRIEVAL_DEPTHS] + ["page_mrr"]
    + ["key_fact_recall", "all_facts", "citation_validity", "source_precision", "source_recall",
       "citation_support"]
)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-item metrics; each mean is over the items where that metric applies."""
    per_item = [r["metrics"] for r in rows]
    summary: dict[str, Any] = {"items": len(rows),
                               "answerable": sum(1 for r in rows if r["answerable"]),
                               "unanswerable": sum(1 for r in rows if not r["answerable"])}
    for key in SUMMARY_KEYS:
        summary[key] = m.mean(x[key] for x in per_item if key in x)
    summary["refusal_rate"] = m.rate(r["metrics"]["abstained"] for r in rows if not r["answerable"])
    summary["false_refusal_rate"] = m.rate(r["metrics"]["abstained"] for r in rows if r["answerable"])
    summary["crag"] = m.mean(x["crag"] for x in per_item)
    latencies = [x["latency_ms"] for x in per_item]
    summary["latency_p50_ms"] = m.percentile(latencies, 50)
    summary["latency_p95_ms"] = m.percentile(latencies, 95)
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
              "key_fact_recall": m.mean(r["metrics"]["key_fact_recall"] for r in group
                                        if "key_fact_recall" in r["metrics"]),
              "doc_hit@5": m.mean(r["metrics"]["doc_hit@5"] for r in group if "doc_hit@5" in r["metrics"]),
              "abstained": m.rate(r["metrics"]["abstained"] for r in group),
              "crag": m.mean(r["metrics"]["crag"] for r in group)}
        for tag, group in sorted(tags.items())
    }
    return summary


def missed(row: dict[str, Any]) -> bool:
    metrics = row["metrics"]
    if not row["answerable"]:
        return not metrics["abstained"]
    return metrics["abstained"] or metrics.get("all_facts", 0.0) < 1.0 or metrics.get("doc_hit@5", 0.0) < 1.0


def run_eval(assistant: Assistant, dataset: Path, out_dir: Path, *, compare_naive: bool = False,
             on_item: Callable[[int, int], None] | None = None) -> EvalRun:
    """Evaluate every item of `dataset`; write the results and reports into `out_dir`."""
    from .report import write_reports

    items = load_dataset(dataset)
    assistant.warm_up()
    reader = assistant.reader
    rows: list[dict[str, Any]] = []
    for n, item in enumerate(items, start=1):
        answer: Answer = assistant.ask(item.question, item.history or None)
        data = answer.to_json()
        row = {**item.raw, **data, "question": item.question, "answerable": item.answerable}
        row["metrics"] = item_metrics(item, data, lambda cid: reader.texts[reader.index_of[cid]])
        rows.append(row)
        if on_item:
            on_item(n, len(items))
    summary = summarize(rows)
    summary["backend"] = assistant.backend.name
    summary["dataset"] = str(dataset)
    baseline = None
    if compare_naive:
        from .baseline import evaluate_naive

        baseline = evaluate_naive(assistant.settings, items)
        summary["naive"] = baseline
    run = EvalRun(summary, rows, baseline, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    run.files = [results, out_dir / "summary.json", *write_reports(run)]
    return run
