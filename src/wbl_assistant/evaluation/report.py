"""Eval reports: report.md and report.html (with matplotlib plots), from an `EvalRun`."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from .metrics import ANSWER_KEYS, LATENCY_KEYS, RETRIEVAL_KEYS, correct

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1300px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;
text-align:left;font-size:14px}th{background:#eef}img{max-width:100%;margin:.5rem 0;display:block}
.up{color:#1a7f37}.down{color:#b42318}"""


#: Why the report lists items to review.
REVIEW_NOTE = ("A new edition of their gold document changed one of their gold pages or a passage holding one of "
               "their key facts: check what they expect, then set their `edition` to the current edition.")


def html_page(title: str, body: str) -> str:
    """A standalone HTML page (no scripts, no external resources); `body` must already be escaped."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def rows_table(headers: list[str], rows: list[list[Any]]) -> tuple[str, str]:
    """The same table as Markdown and as HTML (every cell escaped)."""
    md = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    md += ["| " + " | ".join(fmt(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return "\n".join(md), f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _figures(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    naive = summary.get("naive") or {}
    figures: dict[str, bytes] = {}

    def save(name: str, figure) -> None:
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        plt.close(figure)
        figures[name] = buffer.getvalue()

    keys = [k for k in RETRIEVAL_KEYS if summary.get(k) is not None]
    figure, axis = plt.subplots(figsize=(8, 3.6))
    positions = range(len(keys))
    axis.bar([p - 0.2 for p in positions], [summary[k] for k in keys], width=0.4, label="wbl-assistant")
    if naive:
        axis.bar([p + 0.2 for p in positions], [naive.get(k) or 0 for k in keys], width=0.4, label="naive baseline")
    axis.set_xticks(list(positions), keys, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_title("Retrieval")
    axis.legend()
    save("retrieval.png", figure)

    keys = [k for k in ANSWER_KEYS if summary.get(k) is not None]
    figure, axis = plt.subplots(figsize=(8, 3.6))
    axis.bar(keys, [summary[k] for k in keys], color="#3a7d44")
    axis.set_ylim(min(0, *[summary[k] for k in keys]), 1.05)
    axis.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    axis.set_title("Answers, citations and refusals")
    save("answers.png", figure)

    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.hist([r["metrics"]["latency_ms"] for r in rows], bins=30, color="#555")
    axis.set_xlabel("ms per question (total)")
    axis.set_title("Latency")
    save("latency.png", figure)

    tags = summary.get("by_tag", {})
    figure, axis = plt.subplots(figsize=(8, 0.35 * max(len(tags), 4) + 1))
    names = list(tags)
    axis.barh(names, [tags[t]["crag"] or 0 for t in names], color="#7a5195")
    axis.set_xlim(-1, 1)
    axis.set_xlabel("CRAG-style score by tag (+1 correct, 0 abstained, -1 wrong)")
    save("tags.png", figure)
    return figures


def write_reports(summary: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """report.md and report.html (and the plots) of one eval run, in `out`."""
    naive = summary.get("naive") or {}
    figures = _figures(summary, rows)
    for name, data in figures.items():
        (out / name).write_bytes(data)

    splits = summary.get("by_split", {})
    headers = ["metric", "all items", *[f"{s} split" for s in splits], "naive baseline"]
    metric_rows = [[k, summary.get(k), *[part.get(k) for part in splits.values()],
                    naive.get(k) if k in RETRIEVAL_KEYS else None]
                   for k in RETRIEVAL_KEYS + ANSWER_KEYS + LATENCY_KEYS]
    metrics_md, metrics_html = rows_table(headers, metric_rows)
    tag_rows = [[t, v["items"], v["key_fact_recall"], v["doc_hit@5"], v["abstained"], v["crag"]]
                for t, v in summary.get("by_tag", {}).items()]
    tags_md, tags_html = rows_table(["tag", "items", "key-fact recall", "doc hit@5", "abstained", "crag"],
                                     tag_rows)
    miss_rows = []
    for row in rows:
        if correct(row):
            continue
        expected = ("a refusal" if not row["answerable"] else
                    f"docs {', '.join(row.get('gold_docs', []))}; facts "
                    + "; ".join(" / ".join(alts) for alts in row.get("key_facts", [])))
        got = "abstained" if row["abstained"] else row["answer"]
        retrieved = ", ".join(dict.fromkeys(r["doc_id"] for r in row["retrieved"][:5]))
        miss_rows.append([row["id"], row.get("split", ""), row["question"], expected, got[:400], retrieved])
    miss_md, miss_html = rows_table(["id", "split", "question", "expected", "got", "top retrieved docs"],
                                    miss_rows)
    review = summary.get("items_to_review") or []
    review_md, review_html = rows_table(["id", "question", "document", "editions", "why"],
                                        [[r["id"], r["question"], r["doc_id"], r["editions"], r["why"]]
                                         for r in review])
    guard = summary.get("guard")
    guard_md = guard_html = ""
    if guard:
        guard_md, guard_html = rows_table(["guard", "value"], [[k, v] for k, v in guard.items()])

    head = (f"Dataset {summary['dataset']} (split: {summary.get('split', 'all')}): {summary['items']} items "
            f"({summary['answerable']} answerable, {summary['unanswerable']} out of scope); "
            f"{summary.get('documents', '?')} documents; backend {summary['backend']}.")
    if naive:
        head += (f" Naive baseline: PyPDFLoader, RecursiveCharacterTextSplitter 1000/200, Chroma, the same "
                 f"embeddings, top-{naive.get('top_k')} ({naive.get('chunks')} chunks).")
    markdown = [f"# Eval report\n\n{head}\n", "## Metrics\n", metrics_md, "",
                "![retrieval](retrieval.png)\n\n![answers](answers.png)\n\n![latency](latency.png)\n",
                "## By tag\n", tags_md, "", "![tags](tags.png)\n"]
    if guard_md:
        markdown += ["## Citation guard\n", guard_md, ""]
    markdown += [f"## Missed items ({len(miss_rows)})\n", miss_md if miss_rows else "None.", ""]
    if review:
        markdown += [f"## Items to review ({len(review)})\n", REVIEW_NOTE + "\n", review_md, ""]
    (out / "report.md").write_text("\n".join(markdown), encoding="utf-8")

    images = "".join(f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
                     f'{base64.b64encode(data).decode()}">' for name, data in figures.items())
    body = (f"<p>{html.escape(head)}</p><h2>Metrics</h2>{metrics_html}{images}<h2>By tag</h2>{tags_html}"
            + (f"<h2>Citation guard</h2>{guard_html}" if guard_html else "")
            + f"<h2>Missed items ({len(miss_rows)})</h2>" + (miss_html if miss_rows else "<p>None.</p>")
            + (f"<h2>Items to review ({len(review)})</h2><p>{html.escape(REVIEW_NOTE)}</p>{review_html}"
               if review else ""))
    page = html_page("Eval report", body)
    (out / "report.html").write_text(page, encoding="utf-8")
    return [out / "report.md", out / "report.html", *[out / name for name in figures]]
