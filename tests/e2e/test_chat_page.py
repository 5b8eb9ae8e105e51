"""The chat page in a real browser: Debian chromium driven by Playwright, against a real app and index."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import copy_sample, free_port
from wbl_assistant.config import Settings
from wbl_assistant.ingestion import ingest

pytestmark = pytest.mark.browser

DOCS = ["imbi-micro-internship", "hosa-competition", "wbl-quality-criteria", "isbe-wbl-manual"]


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("chat-page")
    (root / "corpus").mkdir()
    settings = Settings(data_dir=root / "data", corpus_dir=root / "corpus", catalog_path=root / "catalog.toml",
                        admin_password="correct horse battery staple")
    copy_sample(settings, DOCS)
    assert not ingest(settings).failed
    return settings


@pytest.fixture(scope="module")
def base_url(app_settings):
    from wbl_assistant.app import launch

    port = free_port()
    app = launch(app_settings, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture
def page(browser, base_url, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base_url, wait_until="load")
    page.wait_for_selector("#question textarea")
    yield page
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    context.close()


def ask(page, question: str, answers_before: int) -> str:
    page.fill("#question textarea", question)
    page.click("#ask")
    return wait_for_answer(page, answers_before)


def wait_for_answer(page, answers_before: int) -> str:
    """Wait until the (answers_before + 1)-th bot message is complete, and return its text."""
    page.wait_for_function(
        """n => { const bots = document.querySelectorAll('#chat [data-testid="bot"]');
                  return bots.length > n && !document.querySelector('#chat .generating, #chat .pending'); }""",
        arg=answers_before, timeout=60_000)
    page.wait_for_function("() => !document.querySelector('#sources .pending')")
    page.wait_for_timeout(500)
    return page.locator('#chat [data-testid="bot"]').nth(answers_before).inner_text()


def test_empty_chat_offers_example_questions_and_one_click_asks_it(page, tmp_path):
    examples = page.locator("#chat button.example")
    examples.first.wait_for()  # the examples render after the page's first paint: wait for them, not a set time
    assert examples.count() >= 3
    page.screenshot(path=str(tmp_path / "empty-chat.png"))
    examples.first.click()
    answer = wait_for_answer(page, 0)
    assert "[1]" in answer


def test_cited_answer_sources_and_the_cited_page(page, tmp_path):
    answer = ask(page, "How long was the IMBI micro-internship, and how many students took part?", 0)
    assert "[1]" in answer and "30 hours" in answer
    # The sources panel follows the streamed answer in its own update: wait for it, not for a fixed time.
    page.wait_for_function("() => document.querySelector('#sources').innerText.includes('[1]')", timeout=30_000)
    sources = page.inner_text("#sources")
    assert "[1]" in sources and "Micro-Internship" in sources and "page" in sources
    page.wait_for_selector("#page-image img")
    assert "[1]" in page.inner_text("#page-caption")
    page.screenshot(path=str(tmp_path / "answer-with-source.png"), full_page=True)

    options = page.locator("#source-pick label")
    if options.count() > 1:
        options.nth(1).click()
        page.wait_for_function("() => document.querySelector('#page-caption').innerText.includes('[2]')")
    else:
        options.first.click()
    caption = page.inner_text("#page-caption")
    assert "page" in caption and "highlighted" in caption
    assert page.locator("#page-image img").count() == 1
    page.screenshot(path=str(tmp_path / "opened-source.png"), full_page=True)


def test_follow_up_keeps_the_subject(page, tmp_path):
    ask(page, "What is the Illinois Math Badging Initiative?", 0)
    follow_up = ask(page, "Which schools piloted it?", 1)
    assert "Charleston" in follow_up
    page.screenshot(path=str(tmp_path / "follow-up.png"), full_page=True)


def test_vote_with_comment_is_appended_to_the_feedback_file(page, app_settings, tmp_path):
    before = app_settings.feedback_path.read_text().splitlines() if app_settings.feedback_path.exists() else []
    ask(page, "What is the registration deadline for the HOSA State Leadership Conference?", 0)
    page.fill("#comment textarea", "Wanted the fee too")
    page.click("#vote-down")
    page.wait_for_function("() => document.querySelector('#feedback-status').innerText.includes('recorded')")
    lines = app_settings.feedback_path.read_text().splitlines()
    assert len(lines) == len(before) + 1
    entry = json.loads(lines[-1])
    assert entry["vote"] == "down" and entry["comment"] == "Wanted the fee too"
    assert entry["question"].startswith("What is the registration deadline")
    assert entry["answer"] and entry["citations"] and entry["time"]
    page.screenshot(path=str(tmp_path / "feedback.png"), full_page=True)


def test_out_of_scope_question_gets_a_refusal(page, tmp_path):
    answer = ask(page, "What is the best recipe for chocolate chip cookies?", 0)
    assert "don't cover this" in answer
    assert "No sources" in page.inner_text("#sources")
    page.screenshot(path=str(tmp_path / "refusal.png"), full_page=True)


def test_html_in_a_question_is_shown_as_text_not_run(page, tmp_path):
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script> What does HOSA stand for?'
    ask(page, payload, 0)
    assert page.dialogs == []
    assert page.locator("#chat img[src='x']").count() == 0
    assert page.locator("#chat script").count() == 0
    assert "<img src=x" in page.locator('#chat [data-testid="user"]').first.inner_text()
    page.screenshot(path=str(tmp_path / "escaped.png"), full_page=True)


def test_admin_upload_is_refused_without_the_password(page, app_settings, tmp_path):
    before = sorted(p.name for p in app_settings.corpus_dir.iterdir())
    upload = tmp_path / "new-edition.pdf"
    shutil.copy(app_settings.corpus_dir / "hosa-competition.pdf", upload)
    page.get_by_role("tab", name="Admin").click()
    page.set_input_files("#admin-file input[type=file]", str(upload))
    page.wait_for_timeout(1000)
    page.click("#admin-upload")
    page.wait_for_function("() => document.querySelector('#admin-status').innerText.includes('Refused')")
    page.fill("#admin-password input", "wrong password")
    page.click("#admin-upload")
    page.wait_for_timeout(1000)
    assert "Refused" in page.inner_text("#admin-status")
    assert sorted(p.name for p in app_settings.corpus_dir.iterdir()) == before
    page.screenshot(path=str(tmp_path / "admin-refused.png"), full_page=True)


def test_admin_upload_with_the_password_replaces_the_edition_and_keeps_no_copy(page, app_settings, make_pdf,
                                                                                tmp_path):
    from gradio.utils import get_upload_folder

    token = f"T{time.time_ns()}"
    upload = make_pdf(f"# HOSA 2026\n\nThe State Leadership Conference registration code is {token}.\n",
                      tmp_path / "hosa-competition.pdf", title="HOSA Competitive Events Guide")
    data = upload.read_bytes()
    page.get_by_role("tab", name="Admin").click()
    page.fill("#admin-password input", app_settings.admin_password)
    page.set_input_files("#admin-file input[type=file]", str(upload))
    page.wait_for_timeout(1000)
    page.click("#admin-upload")
    page.wait_for_function("() => /Replaced|Refused|Not uploaded/.test(document.querySelector('#admin-status')"
                           ".innerText)", timeout=180_000)
    status = page.inner_text("#admin-status")
    page.screenshot(path=str(tmp_path / "admin-replaced.png"), full_page=True)
    assert "Replaced hosa-competition.pdf" in status, status
    assert (app_settings.corpus_dir / "hosa-competition.pdf").read_bytes() == data
    assert not list((app_settings.data_dir / "replaced").glob("*.pdf")), "the previous edition was not cleaned up"
    cache = Path(get_upload_folder())
    kept = [p for p in cache.rglob("*.pdf") if p.stat().st_size == len(data) and p.read_bytes() == data]
    assert kept == [], "the uploaded file stayed in Gradio's cache"
    page.get_by_role("tab", name="Chat").click()
    answer = ask(page, "What is the State Leadership Conference registration code?", 0)
    assert token in answer
