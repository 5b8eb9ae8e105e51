"""A small chaos run (benchmarks/chaos.py has the full one): concurrent chat sessions through gradio_client
while a re-ingest of a changed document and a second, competing ingest run. No timing is asserted."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from chaos import run_chaos

DOCS = ["hosa-competition", "cde-toolkit", "isbe-wbl-manual", "imbi-micro-internship", "stamp-connecting-the-dots",
        "pwr-act-ccpe-guide", "wbl-quality-criteria"]


def check(result) -> None:
    print(result.summary())
    assert result.requests and not result.errors, [r.error for r in result.errors]
    assert result.tracebacks == []
    assert result.cross_talk == []
    assert result.consistency == []
    assert any(r.during_ingest for r in result.requests), "no request overlapped the ingest"
    assert any("exit 0" in line for line in result.ingests)


@pytest.mark.slow
def test_chat_sessions_during_a_reingest_and_a_competing_ingest_embedded(tmp_path):
    check(run_chaos("embedded", sessions=6, questions=2, workdir=tmp_path, docs=DOCS))


@pytest.mark.slow
@pytest.mark.server
def test_chat_sessions_during_a_reingest_and_a_competing_ingest_on_a_server(tmp_path):
    check(run_chaos("server", sessions=6, questions=2, workdir=tmp_path, docs=DOCS))
