"""The CI gate: the golden set through the real assistant; every metric at or above its threshold."""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import ROOT
from wbl_assistant.assistant import Assistant
from wbl_assistant.evaluation.dataset import load_dataset
from wbl_assistant.evaluation.runner import run_eval

GOLDEN = ROOT / "evals" / "golden.jsonl"
THRESHOLDS = ROOT / "evals" / "thresholds.toml"


@pytest.fixture(scope="module")
def golden_run(sample_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("golden-eval")
    return run_eval(Assistant(sample_index), GOLDEN, out, compare_naive=True)


def test_golden_set_follows_the_schema_and_the_plan():
    items = load_dataset(GOLDEN)
    tags = [tag for item in items for tag in item.tags]
    assert len(items) >= 80
    assert sum(not item.answerable for item in items) >= 15
    assert sum(1 for item in items if item.history) >= 8
    assert tags.count("paraphrase") >= 15
    catalog = tomllib.loads((ROOT / "ingest" / "catalog.toml").read_text())["documents"]
    slugs = {entry["slug"] for entry in catalog}
    assert {doc for item in items for doc in item.gold_docs} <= slugs


def test_every_metric_meets_its_threshold(golden_run):
    thresholds = tomllib.loads(THRESHOLDS.read_text())
    summary = golden_run.summary
    failures = []
    for key, floor in thresholds["min"].items():
        if summary.get(key) is None or summary[key] < floor:
            failures.append(f"{key} = {summary.get(key)} < {floor}")
    for key, ceiling in thresholds["max"].items():
        if summary.get(key) is None or summary[key] > ceiling:
            failures.append(f"{key} = {summary.get(key)} > {ceiling}")
    assert not failures, "\n".join(failures)


def test_report_files_and_the_naive_baseline(golden_run):
    out = golden_run.out_dir
    for name in ("results.jsonl", "summary.json", "report.md", "report.html", "retrieval.png", "latency.png"):
        assert (out / name).stat().st_size > 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(load_dataset(GOLDEN))
    assert {"id", "question", "answer", "abstained", "citations", "metrics"} <= set(rows[0])
    naive = golden_run.summary["naive"]
    assert naive["top_k"] == 4 and naive["doc_hit@1"] is not None
    html = (out / "report.html").read_text()
    assert "naive baseline" in html and "<script" not in html
