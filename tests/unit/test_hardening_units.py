"""The pure parts of the hardening: the admin gate's backoff (fake clock), settings ranges and masking,
the forgiving feedback reader, upload names, and the route guard in front of Gradio."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import fields

import pytest

from wbl_assistant.app import AdminGate, RouteGuard, escape_text
from wbl_assistant.config import ADMIN_PASSWORD_MIN, ConfigError, Settings
from wbl_assistant.corpus import check_upload, safe_upload_name
from wbl_assistant.feedback import read_feedback

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gate_lets_the_right_password_in_and_counts_wrong_ones_per_client():
    clock = Clock()
    gate = AdminGate(PASSWORD, clock=clock)
    assert gate.check(PASSWORD, "a") is None
    assert gate.check("nope", "a") == "wrong or missing admin password"
    assert gate.check(None, "a") == "wrong or missing admin password"
    assert gate.check(PASSWORD, "b") is None, "another client is not affected"
    assert gate.check(PASSWORD, "a") is None, "two failures are free"


def test_gate_waits_double_after_each_failure_past_the_free_ones(caplog):
    clock = Clock()
    gate = AdminGate(PASSWORD, free=3, base_wait=5, max_wait=60, clock=clock)
    caplog.set_level(logging.WARNING, logger="wbl_assistant.app")
    for _ in range(3):
        gate.check("nope", "a")
    assert "try again in 5 s" in gate.check(PASSWORD, "a"), "locked: even the right password waits"
    waits = []
    for _ in range(5):
        clock.now += 61
        gate.check("nope", "a")
        waits.append(int(re.search(r"try again in (\d+) s", gate.check(PASSWORD, "a")).group(1)))
    assert waits == [10, 20, 40, 60, 60]
    assert "wrong admin password from a" in caplog.text and "admin login locked for a" in caplog.text
    clock.now += 61
    assert gate.check(PASSWORD, "a") is None
    gate.check("nope", "a")
    assert gate.check(PASSWORD, "a") is None, "a success resets the count"


def test_gate_locks_everyone_after_many_failures_from_many_clients(caplog):
    clock = Clock()
    gate = AdminGate(PASSWORD, global_limit=10, clock=clock)
    caplog.set_level(logging.WARNING, logger="wbl_assistant.app")
    for n in range(10):
        gate.check("nope", f"client{n}")
    assert "on this site" in gate.check(PASSWORD, "fresh")
    assert "locked for everyone" in caplog.text
    clock.now += 601
    assert gate.check(PASSWORD, "fresh") is None


def test_gate_without_a_password_refuses_everything():
    gate = AdminGate("", clock=Clock())
    assert gate.check("", "a") and gate.check(None, "a")


def test_sixty_guesses_cannot_be_made_in_two_seconds():
    clock = Clock()
    gate = AdminGate(PASSWORD, clock=clock)
    tried = 0
    for n in range(60):
        clock.now += 2 / 60
        if "try again" not in (gate.check(f"guess{n}", "a") or ""):
            tried += 1
    assert tried <= 3


@pytest.mark.parametrize("variable,value", [
    ("WBL_UPLOAD_MAX_MB", "-5"), ("WBL_UPLOAD_MAX_MB", "0"), ("WBL_EMBED_BATCH_SIZE", "0"),
    ("WBL_TOP_K", "0"), ("WBL_TOP_K", "51"), ("WBL_CHROMA_PORT", "70000"), ("WBL_RENDER_MAX_PX", "10"),
    ("WBL_PDF_MEMORY_MB", "1"), ("WBL_PDF_SECONDS", "0"), ("WBL_INGEST_WAIT", "-1"), ("WBL_RETIRE_GRACE", "-3"),
    ("WBL_LLM_TIMEOUT", "0"), ("WBL_CHUNK_SIZE", "10"),
])
def test_numeric_settings_out_of_range_are_refused_by_name(variable, value):
    with pytest.raises(ConfigError, match=rf"{variable}={value}.*out of range"):
        Settings.from_env({variable: value})


def test_every_numeric_setting_has_a_range_and_its_default_is_inside():
    settings = Settings()
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and f.name != "chunk_overlap":
            assert f.metadata["low"] is not None, f"{f.metadata['env']} has no range"
            assert f.metadata["low"] <= value <= f.metadata["high"]


def test_a_short_admin_password_is_refused_with_the_minimum():
    with pytest.raises(ConfigError, match=f"at least {ADMIN_PASSWORD_MIN} characters"):
        Settings.from_env({"WBL_ADMIN_PASSWORD": "x" * (ADMIN_PASSWORD_MIN - 1)})
    assert Settings.from_env({"WBL_ADMIN_PASSWORD": "x" * ADMIN_PASSWORD_MIN}).admin_password


def test_repr_masks_secrets_and_shows_the_rest():
    settings = Settings(admin_password=PASSWORD, openai_api_key="sk-abc123")
    text = repr(settings)
    assert PASSWORD not in text and "sk-abc123" not in text
    assert "admin_password=***" in text and "openai_api_key=***" in text and "top_k=6" in text
    assert "openai_api_key=''" in repr(Settings()), "an empty secret shows as empty"
    assert PASSWORD not in str({"settings": settings})


def test_feedback_reader_skips_torn_and_corrupt_lines_and_says_which(tmp_path):
    path = tmp_path / "feedback.jsonl"
    good = json.dumps({"question": "q", "vote": "down"})
    path.write_bytes("\n".join([good, "[1, 2]", "{not json", good, "\xff\xfe", "", "[" * 100_000,
                                good, '{"torn": "li']).encode("utf-8", errors="surrogateescape"))
    feedback = read_feedback(path)
    assert len(feedback.entries) == 3
    assert feedback.skipped_lines == [2, 3, 5, 7, 9]


def test_feedback_reader_on_a_missing_file_is_a_clear_error(tmp_path):
    from wbl_assistant.feedback import FeedbackError

    with pytest.raises(FeedbackError, match="cannot read"):
        read_feedback(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("name,expected", [
    ("manual.pdf", "manual.pdf"), ("../../etc/passwd", "passwd.pdf"), ("..\\..\\boot.ini", "boot.pdf"),
    ("/abs/path/x.PDF", "x.pdf"), ("a b;rm -rf.pdf", "a-b-rm--rf.pdf"), ("...", "document.pdf"),
    (".hidden.pdf", "hidden.pdf"), ("x" * 300 + ".pdf", "x" * 100 + ".pdf"), ("évaluation.pdf", "valuation.pdf"),
])
def test_upload_names_cannot_leave_the_corpus_folder(name, expected):
    assert safe_upload_name(name) == expected


def test_uploads_are_checked_by_content_and_size(tmp_path):
    empty, text, pdf = tmp_path / "e.pdf", tmp_path / "t.pdf", tmp_path / "p.pdf"
    empty.write_bytes(b"")
    text.write_text("meeting notes")
    pdf.write_bytes(b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024))
    assert "empty" in check_upload(empty, 1)
    assert "not a PDF" in check_upload(text, 1)
    assert "limit is 1 MB" in check_upload(pdf, 1)
    assert check_upload(pdf, 3) is None


def test_escaped_text_renders_as_plain_text_in_markdown():
    import markdown_it

    hostile = "<img src=x onerror=alert(1)> **b** [l](javascript:x) `c` # h _i_ ![i](x)"
    rendered = markdown_it.MarkdownIt().render(escape_text(hostile))
    for tag in ("<img", "<strong>", "<a ", "<code>", "<h1>", "<em>"):
        assert tag not in rendered


def run_guard(guard: RouteGuard, method: str, path: str) -> int:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(guard({"type": "http", "method": method, "path": path}, receive, send))
    return sent[0]["status"]


async def ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize("path,status", [
    ("/gradio_api/call/respond", 200), ("/gradio_api/call/admin_upload", 404),
    ("/gradio_api/call/v2/admin_upload", 404),
    ("/gradio_api/api/admin_reingest/", 404), ("/gradio_api/run/anything", 404), ("/gradio_api/queue/join", 200),
    ("/gradio_api/upload", 403), ("/gradio_api/upload/", 403), ("/gradio_api/process_recording", 403),
])
def test_route_guard_without_admin(path, status):
    assert run_guard(RouteGuard(ok_app, frozenset({"respond"}), uploads=False), "POST", path) == status


def test_route_guard_with_admin_allows_uploads_but_not_private_names():
    guard = RouteGuard(ok_app, frozenset({"respond"}), uploads=True)
    assert run_guard(guard, "POST", "/gradio_api/upload") == 200
    assert run_guard(guard, "POST", "/gradio_api/call/admin_upload") == 404
    assert run_guard(guard, "GET", "/gradio_api/info") == 200
