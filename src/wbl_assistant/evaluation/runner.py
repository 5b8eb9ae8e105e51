"""`wbl-assistant eval`: every dataset item through the same `Assistant.ask` the CLI uses, then metrics.

Writes DIR/results.jsonl (each item merged with its `ask --json` object and its metrics), DIR/summary.json
(overall, by split and by tag, and the items to review after a document's update), DIR/report.md and
DIR/report.html.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assistant import Assistant
from ..editions import items_to_review
from . import metrics as m
from .dataset import SPLITS, load_dataset
from .report import write_reports


@dataclass
class EvalRun:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    out_dir: Path
    files: list[Path] = field(default_factory=list)


def summarize_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of all rows, with the same metrics for each split the rows come from."""
    summary = m.summarize(rows)
    splits = {row.get("split", "") for row in rows} - {""}
    if splits:
        summary["by_split"] = {}
        for split in (s for s in SPLITS if s in splits):
            part = m.summarize([row for row in rows if row.get("split") == split])
            summary["by_split"][split] = {k: v for k, v in part.items() if k != "by_tag"}
    return summary


def run_eval(assistant: Assistant, dataset: Path, out_dir: Path, *, compare_naive: bool = False,
             split: str | None = None, on_item: Callable[[int, int], None] | None = None) -> EvalRun:
    """Evaluate every item of `dataset` (or of one split of it); write the results and reports into `out_dir`."""
    items = [item for item in load_dataset(dataset) if split in (None, item.split)]
    assistant.warm_up()
    rows: list[dict[str, Any]] = []
    for n, item in enumerate(items, start=1):
        answer = assistant.ask(item.question, item.history or None).to_json()
        snapshot = assistant.reader.snapshot()
        row = {**item.raw, **answer, "question": item.question, "answerable": item.answerable}
        row["metrics"] = m.item_metrics(item, answer, snapshot.chunk_text)
        rows.append(row)
        if on_item:
            on_item(n, len(items))
    summary = summarize_run(rows)
    summary["backend"] = assistant.backend.name
    summary["dataset"] = str(dataset)
    summary["split"] = split or "all"
    summary["documents"] = len(assistant.reader.snapshot().documents)
    summary["items_to_review"] = items_to_review(items, assistant.reader.snapshot().manifest, assistant.reader.store)
    if compare_naive:
        from .baseline import evaluate_naive

        summary["naive"] = evaluate_naive(assistant.settings, items)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    files = [results, out_dir / "summary.json", *write_reports(summary, rows, out_dir)]
    return EvalRun(summary, rows, out_dir, files)
