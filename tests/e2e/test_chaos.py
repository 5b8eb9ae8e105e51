"""A small chaos run (benchmarks/chaos.py has the full one): concurrent chat sessions through gradio_client
while a re-ingest of a changed document and a second, competing ingest run. No timing is asserted."""

from __future__ import annotations

import sys
import time

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


def test_the_collector_sees_a_traceback_logged_by_the_web_server(sample_index):
    """The chaos runs count the web server's own errors: a route failing inside the real page is caught."""
    import contextlib
    import urllib.error
    import urllib.request

    from chaos import TracebackCollector, free_port, watch_page_logs

    from wbl_assistant.app import launch

    collector = TracebackCollector()
    port = free_port()
    with contextlib.ExitStack() as stack:
        app = launch(sample_index, "127.0.0.1", port, block=False)
        stack.callback(app.close)
        watch_page_logs(collector, stack)

        def fail() -> None:
            raise RuntimeError("injected failure")

        app.app.add_api_route("/injected-failure", fail)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/injected-failure", timeout=30)
        assert error.value.code == 500
        # The client has its 500 before the server logs the exception: wait for the record, not a set time.
        deadline = time.monotonic() + 30
        while not collector.records and time.monotonic() < deadline:
            time.sleep(0.05)
    assert any("injected failure" in record for record in collector.records), collector.records
