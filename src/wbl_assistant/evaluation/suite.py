"""Eval suites: several datasets, each asked of its own corpus, run in one go (`eval --suite`).

A corpus other than the configured one gets an index of its own (under the data dir, with its own collection
prefix), ingested incrementally before its dataset runs; the served index is never touched. `evals/suite.toml`
names the project's two: the golden set on the sample corpus and golden-b on corpus B.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from .metrics import METRIC_KEYS
from .report import html_page, rows_table


class SuiteError(ValueError):
    """The suite file cannot be used; the message says why."""


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    dataset: Path
    corpus: Path
    catalog: Path


def load_suite(path: Path) -> list[SuiteEntry]:
    """The suite's runs; paths in the file are relative to the file's folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SuiteError(f"cannot read the suite {path}: {error}") from None
    entries = []
    for n, raw in enumerate(data.get("runs", []), start=1):
        missing = [key for key in ("name", "dataset", "corpus", "catalog") if not raw.get(key)]
        if missing:
            raise SuiteError(f"{path}: run {n} lacks {', '.join(missing)}")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", raw["name"]):
            raise SuiteError(f"{path}: run name {raw['name']!r} must be letters, digits, '.', '_' or '-'")
        base = path.parent
        entries.append(SuiteEntry(raw["name"], base / raw["dataset"], base / raw["corpus"], base / raw["catalog"]))
    if not entries:
        raise SuiteError(f"{path} lists no [[runs]]")
    return entries


def corpus_settings(settings: Settings, corpus: Path, catalog: Path) -> Settings:
    """Settings whose index is the given corpus's own: a data dir and a collection prefix of its own."""
    if corpus.resolve() == settings.corpus_dir.resolve() and catalog.resolve() == settings.catalog_path.resolve():
        return settings
    key = re.sub(r"[^a-z0-9]+", "-", corpus.resolve().name.lower()).strip("-") or "corpus"
    key += "-" + hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    return settings.with_changes(corpus_dir=corpus, catalog_path=catalog,
                                 data_dir=settings.data_dir / "eval-indexes" / key,
                                 collection_prefix=f"{settings.collection_prefix}_eval_{key.replace('-', '_')}")


def suite_tables(summaries: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """One table: a row per metric, a column per (run, split)."""
    columns = [(name, split) for name, summary in summaries.items()
               for split in ["all", *summary.get("by_split", {})]]
    headers = ["metric", *[f"{name} · {split}" for name, split in columns]]
    rows = []
    for key in ["items", *METRIC_KEYS]:
        row: list[Any] = [key]
        for name, split in columns:
            summary = summaries[name]
            part = summary if split == "all" else summary["by_split"][split]
            row.append(part.get(key))
        rows.append(row)
    return rows_table(headers, rows)


def run_suite(settings: Settings, suite: Path, out_dir: Path, *, split: str | None = None,
              backend: str | None = None, on_stage: Callable[[str], None] | None = None,
              on_item: Callable[[int, int], None] | None = None) -> dict[str, dict[str, Any]]:
    """Ingest each corpus (incrementally) and run its dataset; write each run and an index page."""
    from ..assistant import Assistant
    from ..backends import make_backend
    from ..ingestion import ingest
    from .runner import run_eval

    summaries: dict[str, dict[str, Any]] = {}
    for entry in load_suite(suite):
        run_settings = corpus_settings(settings, entry.corpus, entry.catalog)
        if on_stage:
            on_stage(f"{entry.name}: ingesting {entry.corpus}")
        report = ingest(run_settings)
        if report.failed:
            raise SuiteError(f"{entry.name}: {len(report.failed)} document(s) of {entry.corpus} failed to ingest: "
                             + "; ".join(f"{r.file}: {r.reason}" for r in report.failed[:3]))
        if on_stage:
            on_stage(f"{entry.name}: asking {entry.dataset}")
        assistant = Assistant(run_settings, backend=make_backend(run_settings, backend))
        run = run_eval(assistant, entry.dataset, out_dir / entry.name, split=split, on_item=on_item)
        summaries[entry.name] = {k: v for k, v in run.summary.items() if k != "by_tag"}
    (out_dir / "suite.json").write_text(json.dumps(summaries, indent=2, ensure_ascii=False), encoding="utf-8")
    table_md, table_html = suite_tables(summaries)
    links = "".join(f'<li><a href="{name}/report.html">{name}</a>: {summaries[name]["dataset"]}</li>'
                    for name in summaries)
    (out_dir / "index.md").write_text(f"# Eval suite\n\n{table_md}\n", encoding="utf-8")
    (out_dir / "index.html").write_text(
        html_page("Eval suite", f"<p>Test split: held out, never tuned on.</p>{table_html}<ul>{links}</ul>"),
        encoding="utf-8")
    return summaries
