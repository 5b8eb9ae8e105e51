"""The CI gate: the held-out test split of every suite dataset, through the real assistant, on its own corpus;
every metric at or above its threshold. Also the suite's reports and the comparison of two runs."""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import ROOT
from wbl_assistant.evaluation.compare import compare_runs
from wbl_assistant.evaluation.dataset import load_dataset
from wbl_assistant.evaluation.metrics import correct
from wbl_assistant.evaluation.suite import load_suite, run_suite

SUITE = ROOT / "evals" / "suite.toml"
GOLDEN = ROOT / "evals" / "golden.jsonl"
THRESHOLDS = ROOT / "evals" / "thresholds.toml"


@pytest.fixture(scope="module")
def test_split_run(sample_index, tmp_path_factory):
    out = tmp_path_factory.mktemp("suite-test-split")
    return out, run_suite(sample_index, SUITE, out, split="test")


def test_golden_set_follows_the_schema_and_the_plan():
    items = load_dataset(GOLDEN)
    tags = [tag for item in items for tag in item.tags]
    assert len(items) >= 80
    assert sum(not item.answerable for item in items) >= 15
    assert sum(1 for item in items if item.history) >= 8
    assert tags.count("paraphrase") >= 15
    assert {item.split for item in items} == {"dev", "test"}
    catalog = tomllib.loads((ROOT / "ingest" / "catalog.toml").read_text())["documents"]
    slugs = {entry["slug"] for entry in catalog}
    assert {doc for item in items for doc in item.gold_docs} <= slugs


def test_every_test_split_metric_meets_its_threshold(test_split_run):
    _, summaries = test_split_run
    thresholds = tomllib.loads(THRESHOLDS.read_text())
    assert set(thresholds) == {entry.name for entry in load_suite(SUITE)}
    failures = []
    for name, limits in thresholds.items():
        summary = summaries[name]
        assert summary["split"] == "test" and set(summary["by_split"]) == {"test"}
        for key, floor in limits["min"].items():
            if summary.get(key) is None or summary[key] < floor:
                failures.append(f"{name}: {key} = {summary.get(key)} < {floor}")
        for key, ceiling in limits["max"].items():
            if summary.get(key) is None or summary[key] > ceiling:
                failures.append(f"{name}: {key} = {summary.get(key)} > {ceiling}")
    assert not failures, "\n".join(failures)


def test_suite_reports_each_corpus_and_split(test_split_run):
    out, summaries = test_split_run
    for name in summaries:
        for file in ("results.jsonl", "summary.json", "report.md", "report.html", "retrieval.png"):
            assert (out / name / file).stat().st_size > 0
        rows = [json.loads(line) for line in (out / name / "results.jsonl").read_text().splitlines()]
        assert rows and {row["split"] for row in rows} == {"test"}
    index = (out / "index.html").read_text()
    assert all(f"{name} · test" in index for name in ("golden", "golden-b", "golden-c"))
    assert "<script" not in index
    assert summaries["golden-b"]["documents"] == 12 and summaries["golden"]["documents"] == 27


def test_compare_shows_deltas_and_flipped_items(test_split_run, tmp_path):
    out, _ = test_split_run
    changed = tmp_path / "changed"
    names = list(json.loads((out / "suite.json").read_text()))
    for name in names:
        (changed / name).mkdir(parents=True)
        rows = [json.loads(line) for line in (out / name / "results.jsonl").read_text().splitlines()]
        flipped = next(row for row in rows if row["answerable"] and correct(row))
        flipped["abstained"], flipped["metrics"]["abstained"] = True, True
        (changed / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = json.loads((out / name / "summary.json").read_text())
        summary["false_refusal_rate"] += 0.25
        (changed / name / "summary.json").write_text(json.dumps(summary))
    (changed / "suite.json").write_text((out / "suite.json").read_text())
    result = compare_runs(out, changed, tmp_path / "compare")
    assert set(result) == set(names) >= {"golden", "golden-b", "golden-c"}
    for pair in result.values():
        assert pair["fixed"] == [] and len(pair["broken"]) == 1
        delta = next(m for m in pair["metrics"] if m["metric"] == "false_refusal_rate" and m["scope"] == "all")
        assert delta["delta"] == pytest.approx(0.25)
    page = (tmp_path / "compare" / "compare.html").read_text()
    assert "class='down'" in page and "Now wrong (right in A): 1" in page


def test_cli_eval_on_another_corpus_and_compare(test_split_run, sample_index, tmp_path):
    import os
    import subprocess
    import sys

    dataset = tmp_path / "two.jsonl"
    items = [json.loads(line) for line in (ROOT / "evals" / "golden-b.jsonl").read_text().splitlines()]
    dataset.write_text("".join(json.dumps(item) + "\n" for item in items[:2]))
    env = {**os.environ, "WBL_DATA_DIR": str(sample_index.data_dir), "WBL_CORPUS_DIR": str(sample_index.corpus_dir),
           "WBL_CATALOG": str(sample_index.catalog_path), "COLUMNS": "200"}
    cli = [sys.executable, "-m", "wbl_assistant.cli", "eval"]
    run = subprocess.run([*cli, "--dataset", str(dataset), "--corpus", str(ROOT / "evals" / "corpus-b" / "corpus"),
                          "--catalog", str(ROOT / "evals" / "corpus-b" / "catalog.toml"), "--out", str(tmp_path / "a")],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["items"] == 2 and summary["documents"] == 12
    compare = subprocess.run([*cli, "--compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out",
                              str(tmp_path / "c")], env=env, capture_output=True, text=True, cwd=ROOT)
    assert compare.returncode == 0, compare.stderr
    assert "0 items now right, 0 now wrong" in compare.stderr and (tmp_path / "c" / "compare.html").exists()
    bad = subprocess.run([*cli, "--compare", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "d")],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "not an eval run folder" in bad.stderr and "Traceback" not in bad.stderr
