"""`eval --compare RUN_A RUN_B`: what a change did, side by side: metric deltas per run and split, and the
items that flipped from right to wrong and back.

A run is a folder `eval` wrote (summary.json, results.jsonl); a suite run (`eval --suite`) holds several,
and two suite runs are compared run by run.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from .metrics import METRIC_KEYS, correct
from .report import fmt, html_page, rows_table

#: Metrics where a lower value is the better one.
LOWER_IS_BETTER = {"false_refusal_rate", "latency_p50_ms", "latency_p95_ms"}


class CompareError(ValueError):
    """The folders are not eval runs, or not runs of the same kind."""


def _load(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise CompareError(f"{folder} is not an eval run folder ({error})") from None
    return summary, rows


def _runs(folder: Path) -> dict[str, Path]:
    """The eval runs in a folder: its suite's runs, or the folder itself."""
    suite = folder / "suite.json"
    if suite.exists():
        try:
            names = list(json.loads(suite.read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise CompareError(f"{suite} is not valid JSON ({error.msg})") from None
        return {name: folder / name for name in names}
    return {"run": folder}


def compare_pair(a: tuple[dict, list], b: tuple[dict, list]) -> dict[str, Any]:
    """Metric deltas (overall and per split) and flipped items of two runs of one dataset."""
    (summary_a, rows_a), (summary_b, rows_b) = a, b
    scopes = ["all", *[s for s in summary_b.get("by_split", {}) if s in summary_a.get("by_split", {})]]
    metrics = []
    for key in METRIC_KEYS:
        for scope in scopes:
            value_a = summary_a.get(key) if scope == "all" else summary_a["by_split"][scope].get(key)
            value_b = summary_b.get(key) if scope == "all" else summary_b["by_split"][scope].get(key)
            delta = value_b - value_a if value_a is not None and value_b is not None else None
            metrics.append({"metric": key, "scope": scope, "a": value_a, "b": value_b, "delta": delta})
    by_id = {row["id"]: row for row in rows_a}
    fixed, broken = [], []
    for row in rows_b:
        before = by_id.get(row["id"])
        if before is None or correct(before) == correct(row):
            continue
        entry = {"id": row["id"], "split": row.get("split", ""), "question": row["question"],
                 "a": "abstained" if before["abstained"] else before["answer"],
                 "b": "abstained" if row["abstained"] else row["answer"]}
        (fixed if correct(row) else broken).append(entry)
    only = sorted(set(by_id) ^ {row["id"] for row in rows_b})
    return {"scopes": scopes, "metrics": metrics, "fixed": fixed, "broken": broken, "unmatched_ids": only}


def compare_runs(folder_a: Path, folder_b: Path, out_dir: Path) -> dict[str, Any]:
    """Compare two runs (or two suite runs, run by run); write compare.json, compare.md and compare.html."""
    runs_a, runs_b = _runs(folder_a), _runs(folder_b)
    common = [name for name in runs_b if name in runs_a]
    if not common:
        raise CompareError(f"{folder_a} and {folder_b} hold no run of the same name")
    result = {name: compare_pair(_load(runs_a[name]), _load(runs_b[name])) for name in common}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    markdown = [f"# Comparison\n\nA: {folder_a}\n\nB: {folder_b}\n"]
    body = [f"<p>A: {html.escape(str(folder_a))}<br>B: {html.escape(str(folder_b))}</p>"]
    for name, pair in result.items():
        table_md, table_html = _delta_table(pair)
        markdown += [f"## {name}\n", table_md, ""]
        body += [f"<h2>{html.escape(name)}</h2>", table_html]
        for title, entries in (("Now right (wrong in A)", pair["fixed"]), ("Now wrong (right in A)", pair["broken"])):
            rows = [[e["id"], e["split"], e["question"], e["a"][:300], e["b"][:300]] for e in entries]
            flips_md, flips_html = rows_table(["id", "split", "question", "A", "B"], rows)
            markdown += [f"### {title}: {len(entries)}\n", flips_md if rows else "None.", ""]
            body += [f"<h3>{title}: {len(entries)}</h3>", flips_html if rows else "<p>None.</p>"]
    (out_dir / "compare.md").write_text("\n".join(markdown), encoding="utf-8")
    (out_dir / "compare.html").write_text(html_page("Comparison of two eval runs", "".join(body)), encoding="utf-8")
    return result


def _delta_table(pair: dict[str, Any]) -> tuple[str, str]:
    """Rows: metrics; columns: each scope's A → B and delta. The HTML colours better and worse."""
    scopes = pair["scopes"]
    headers = ["metric", *[f"{scope}: A → B (Δ)" for scope in scopes]]
    cells: dict[str, dict[str, dict]] = {}
    for entry in pair["metrics"]:
        cells.setdefault(entry["metric"], {})[entry["scope"]] = entry
    md_rows, html_rows = [], []
    for metric, by_scope in cells.items():
        md_row, html_row = [metric], [f"<td>{html.escape(metric)}</td>"]
        for scope in scopes:
            entry = by_scope[scope]
            delta = entry["delta"]
            shown = f"{fmt(entry['a'])} → {fmt(entry['b'])}" + (f" ({delta:+.3f})" if delta else "")
            md_row.append(shown)
            better = delta and (delta < 0 if metric in LOWER_IS_BETTER else delta > 0)
            css = "" if not delta else (" class='up'" if better else " class='down'")
            html_row.append(f"<td{css}>{html.escape(shown)}</td>")
        md_rows.append(md_row)
        html_rows.append("<tr>" + "".join(html_row) + "</tr>")
    table_md, _ = rows_table(headers, md_rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return table_md, f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(html_rows)}</tbody></table>"
