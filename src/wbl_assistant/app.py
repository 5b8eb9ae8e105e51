"""The chat page (Gradio): streamed cited answers, a sources panel with the cited PDF page, feedback, and an
Admin tab (upload a PDF, re-ingest) that exists only when WBL_ADMIN_PASSWORD is set.

`build_layout` places the components and wires them to the handlers of `ChatPage`; the work behind the
handlers lives in the library (assistant, pages, feedback, corpus). Everything shown that comes from a
document or a user is escaped first: a PDF or a question holding HTML or script is displayed as text.
Admin handlers are not part of the page's public API, failed passwords cost increasing waits, and an
unexpected error shows the user an id while the details go to the log.
"""

from __future__ import annotations

import hmac
import html
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .answering import Answer
from .assistant import Assistant, QuestionError
from .config import Settings
from .corpus import CorpusManager, UploadRefused
from .editions import replaced_edition_note, report_markdown
from .feedback import FeedbackError, FeedbackLog
from .ingestion import STATUSES, IngestError, IngestReport
from .pages import PageError, render_page

logger = logging.getLogger(__name__)

EXAMPLE_QUESTIONS = [
    "How many hours does a career development experience require?",
    "Does the Child Labor Law of 2024 apply to a 15-year-old in a school work-based learning program?",
    "What are the stages of the work-based learning continuum?",
    "Who can coordinate work-based learning in a CTE program?",
]
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
CSS = """
.wbl-sources blockquote {margin: .3rem 0 .8rem 0; padding-left: .6rem; border-left: 3px solid #c9a227;}
.wbl-sources .src {margin-bottom: .4rem;}
.wbl-refusal {color: #7a4b00;}
"""
#: With the Admin tab off, the page accepts no uploads at all: Gradio's upload route refuses anything bigger.
NO_UPLOADS = 1
#: Gradio's cache of uploads and rendered pages: checked every 10 minutes, files older than an hour deleted.
CACHE_CLEANUP = (600, 3600)


def escape_text(text: str) -> str:
    """Text safe for a Markdown component: HTML escaped, Markdown syntax neutralized."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


def sources_html(answer: Answer | None) -> str:
    if answer is None:
        return "<div class='wbl-sources'><p>Sources of the selected answer appear here.</p></div>"
    if answer.abstained or not answer.citations:
        return ("<div class='wbl-sources wbl-refusal'><p><b>No sources:</b> the documents don't cover this "
                "question.</p></div>")
    parts = ["<div class='wbl-sources'>"]
    for c in answer.citations:
        edition = f", {html.escape(c.edition)}" if c.edition else ""
        parts.append(f"<div class='src'><b>[{c.n}]</b> {html.escape(c.title)}{edition}, page {c.page}"
                     f"<blockquote>{html.escape(c.quote)}</blockquote></div>")
    parts.append("</div>")
    return "".join(parts)


def source_choices(answer: Answer | None) -> list[tuple[str, str]]:
    if answer is None or answer.abstained:
        return []
    return [(f"[{c.n}] {c.title[:60]}, p. {c.page}", str(c.n)) for c in answer.citations]


def ingest_summary(report: IngestReport) -> str:
    counts = " · ".join(f"{s}: {report.count(s)}" for s in STATUSES)
    lines = [f"**Ingest finished** in {report.seconds:.1f} s — {counts} · chunks: {report.chunks}"]
    lines += [f"- failed {escape_text(r.file or r.doc_id)}: {escape_text(r.reason)}" for r in report.failed]
    lines += [f"- warning {escape_text(r.file)}: {escape_text(r.warning)}" for r in report.warnings]
    lines += [f"- changes in {escape_text(r.file)}: {escape_text(r.changes.summary())}"
              for r in report.results if r.changes]
    return "\n".join(lines)


def change_reports(report: IngestReport) -> str:
    """The change report of each document the ingest replaced with a new edition (document text escaped)."""
    return "".join(f"\n\n{report_markdown(r.changes, escape_text)}" for r in report.results if r.changes)


@dataclass
class Turn:
    question: str
    answer: Answer


def history_of(turns: list[Turn]) -> list[dict[str, str]]:
    out = []
    for turn in turns:
        out += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer.answer}]
    return out


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class AdminGate:
    """The admin password check. After `free` failures from one client (or `global_limit` from all in
    ten minutes) every attempt must wait, twice as long after each failure, up to `max_wait` seconds.
    Every failure and lockout is logged with the client's address."""

    password: str
    free: int = 3
    base_wait: float = 5.0
    max_wait: float = 900.0
    global_limit: int = 30
    clock: Any = time.monotonic
    _clients: dict[str, _Failures] = field(default_factory=dict)
    _recent: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, password: str | None, client: str) -> str | None:
        """None when the password is right and the client may try; else the refusal to show."""
        now = self.clock()
        with self._lock:
            self._recent = [t for t in self._recent if now - t < 600]
            state = self._clients.setdefault(client, _Failures())
            if state.locked_until > now:
                return f"too many wrong passwords: try again in {math.ceil(state.locked_until - now)} s"
            if len(self._recent) >= self.global_limit:
                logger.warning("admin login locked for everyone: %d failures in 10 minutes", len(self._recent))
                return "too many wrong passwords on this site: try again in a few minutes"
            if self.password and hmac.compare_digest((password or "").encode(), self.password.encode()):
                state.count = 0
                return None
            state.count += 1
            self._recent.append(now)
            logger.warning("wrong admin password from %s (failure %d)", client, state.count)
            if state.count >= self.free:
                wait = min(self.max_wait, self.base_wait * 2 ** (state.count - self.free))
                state.locked_until = now + wait
                logger.warning("admin login locked for %s for %.0f s", client, wait)
            return "wrong or missing admin password"


def _client(request: gr.Request | None) -> str:
    return getattr(getattr(request, "client", None), "host", None) or "unknown"


class ChatPage:
    """The page's event handlers. State travels in Gradio's per-session `gr.State` (the list of turns)."""

    def __init__(self, settings: Settings, assistant: Assistant) -> None:
        self.settings = settings
        self.assistant = assistant
        self.feedback = FeedbackLog(settings.feedback_path)
        self.corpus = CorpusManager(settings)
        self.gate = AdminGate(settings.admin_password)

    def respond(self, message: str, chat: list, turns: list[Turn]):
        message = (message or "").strip()
        if not message:
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        chat = [*chat, {"role": "user", "content": escape_text(message)}, {"role": "assistant", "content": ""}]
        yield chat, turns, "", gr.update(), gr.update(), gr.update(), ""
        answer = None
        try:
            text = ""
            for event in self.assistant.stream(message, history_of(turns)):
                if isinstance(event, Answer):
                    answer = event
                else:
                    text += event
                    chat[-1] = {"role": "assistant", "content": escape_text(text)}
                    yield chat, turns, "", gr.update(), gr.update(), gr.update(), ""
        except QuestionError as error:
            chat[-1] = {"role": "assistant", "content": escape_text(f"I can't take that question: {error}.")}
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        except Exception:  # the page must stay usable: a short message with an id, the details in the log
            error_id = secrets.token_hex(4)
            logger.exception("answering failed [error %s]", error_id)
            chat[-1] = {"role": "assistant", "content": escape_text(
                f"Something went wrong on our side (error {error_id}). Please try again in a moment.")}
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        chat[-1] = {"role": "assistant", "content": escape_text(answer.answer)}
        turns = [*turns, Turn(message, answer)]
        choices = source_choices(answer)
        first = choices[0][1] if choices else None
        image, caption = self.page_image(answer, first)
        yield chat, turns, "", sources_html(answer), gr.update(choices=choices, value=first), image, caption

    def page_image(self, answer: Answer | None, choice: str | None):
        """The cited page of the selected source, rendered from the PDF in the corpus folder."""
        if answer is None or not choice or answer.abstained:
            return None, ""
        citation = next((c for c in answer.citations if str(c.n) == str(choice)), None)
        if citation is None:
            return None, ""
        title = escape_text(citation.title)
        try:
            snapshot = self.assistant.reader.snapshot()
        except Exception:  # the index went away under the page: say so, keep the answer
            logger.exception("cannot read the index to show a page")
            return None, f"Cannot show page {citation.page} of {title} now."
        if not snapshot.has(citation.chunk_id):  # a replaced edition's page ("what changed?"): its PDF is gone
            return None, replaced_edition_note(citation, escape_text)
        entry = snapshot.documents.get(citation.doc_id, {})
        file = entry.get("file", "")
        corpus = self.settings.corpus_dir.resolve()
        path = (corpus / file).resolve()
        if not file or path.parent != corpus or not path.is_file():
            return None, f"The PDF of {title} is no longer in the corpus folder."
        ocr_words = (self.settings.ocr_cache_dir, entry.get("sha256", "")) if entry.get("ocr_pages") else None
        try:
            image = render_page(path, citation.page, citation.quote, self.settings.render_max_px, ocr_words)
        except PageError as error:
            return None, f"Cannot show page {citation.page} of {title}: {escape_text(str(error))}"
        return image, f"\\[{citation.n}\\] {title}, page {citation.page} (cited passage highlighted)"

    def show_page(self, choice: str | None, turns: list[Turn]):
        return self.page_image(turns[-1].answer if turns else None, choice)

    def _record(self, turn: Turn, history: list[Turn], vote: str, comment: str = "") -> None:
        citations = [{"n": c.n, "doc_id": c.doc_id, "page": c.page, "chunk_id": c.chunk_id}
                     for c in turn.answer.citations]
        self.feedback.record(turn.question, turn.answer.answer, turn.answer.abstained, citations,
                             history_of(history), vote, comment)

    def vote(self, kind: str, comment: str, turns: list[Turn]):
        if not turns:
            return "Ask a question first; then rate its answer.", comment
        try:
            self._record(turns[-1], turns[:-1], kind, comment or "")
        except FeedbackError as error:
            return escape_text(f"Your vote could not be recorded: {error}."), comment
        return f"Thanks — your vote ({'helpful' if kind == 'up' else 'not helpful'}) was recorded.", ""

    def vote_up(self, comment: str, turns: list[Turn]):
        return self.vote("up", comment, turns)

    def vote_down(self, comment: str, turns: list[Turn]):
        return self.vote("down", comment, turns)

    def liked(self, data: gr.LikeData, turns: list[Turn]):
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        number = int(index) // 2
        if not 0 <= number < len(turns):
            return ""
        try:
            self._record(turns[number], turns[:number], "up" if data.liked else "down")
        except FeedbackError as error:
            return escape_text(f"Your feedback could not be recorded: {error}.")
        return "Thanks — your feedback was recorded."

    @staticmethod
    def example(data: gr.SelectData) -> str:
        value = data.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    def admin_upload(self, password: str | None, file: str | None, request: gr.Request = None) -> str:
        refusal = self.gate.check(password, _client(request))
        try:
            if refusal:
                return f"**Refused:** {escape_text(refusal)}. Nothing was uploaded."
            if not file:
                return "Choose a PDF to upload first."
            try:
                change = self.corpus.add_pdf(Path(file))
            except UploadRefused as error:
                return f"**Refused:** {escape_text(str(error))}. Nothing was uploaded."
            except IngestError as error:
                return f"**Not uploaded:** {escape_text(str(error))}. The corpus is unchanged."
            logger.info("admin %s %s %s", _client(request), "replaced" if change.replaced else "added", change.name)
            if change.restored:
                note = (f"The new {escape_text(change.name)} could not be ingested; the previous edition was put "
                        "back.\n\n")
            else:
                note = f"{'Replaced' if change.replaced else 'Added'} {escape_text(change.name)} in the corpus.\n\n"
            return note + ingest_summary(change.report) + change_reports(change.report)
        finally:
            if file:
                Path(file).unlink(missing_ok=True)

    def admin_reingest(self, password: str | None, request: gr.Request = None) -> str:
        refusal = self.gate.check(password, _client(request))
        if refusal:
            return f"**Refused:** {escape_text(refusal)}."
        try:
            report = self.corpus.reingest()
        except IngestError as error:
            return f"**Ingest failed:** {escape_text(str(error))}"
        return ingest_summary(report) + change_reports(report)


def build_layout(settings: Settings, page: ChatPage) -> gr.Blocks:
    """The components, and which handler each event calls."""
    with gr.Blocks(title="WBL Assistant", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as app:
        turns = gr.State([])
        gr.Markdown("## Illinois Work-Based Learning Assistant\nAnswers come only from the guidance documents, "
                    "with the page they come from. When the documents don't say, the assistant says so.")
        with gr.Tab("Chat"), gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat", height=520, elem_id="chat",
                    examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                    placeholder="Ask about work-based learning in Illinois: CDE hours, the WBL continuum, "
                                "endorsements, internships, child labor rules for students, ...",
                    feedback_options=("Like", "Dislike"),
                )
                with gr.Row():
                    question = gr.Textbox(placeholder="Type a question and press Enter", show_label=False,
                                          scale=5, elem_id="question", max_length=2000)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                with gr.Row():
                    comment = gr.Textbox(placeholder="Optional comment on the last answer", show_label=False,
                                         scale=4, elem_id="comment", max_length=2000)
                    up = gr.Button("Helpful", scale=1, elem_id="vote-up")
                    down = gr.Button("Not helpful", scale=1, elem_id="vote-down")
                thanks = gr.Markdown(elem_id="feedback-status")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="sources")
                source_pick = gr.Radio(label="Show the cited page", choices=[], elem_id="source-pick")
                caption = gr.Markdown(elem_id="page-caption")
                image = gr.Image(label="Cited page", type="pil", interactive=False, elem_id="page-image",
                                 height=600)
        if settings.admin_password:
            with gr.Tab("Admin"):
                gr.Markdown("Upload a new edition or a new document (PDF), then re-ingest. "
                            f"PDFs only, up to {settings.upload_max_mb} MB.")
                password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
                upload = gr.File(label="PDF", file_types=[".pdf"], type="filepath", elem_id="admin-file")
                with gr.Row():
                    upload_button = gr.Button("Upload and re-ingest", variant="primary", elem_id="admin-upload")
                    reingest_button = gr.Button("Re-ingest the corpus folder", elem_id="admin-reingest")
                admin_status = gr.Markdown(elem_id="admin-status")
                private = {"api_visibility": "private", "concurrency_limit": 1, "concurrency_id": "admin"}
                upload_button.click(page.admin_upload, [password, upload], admin_status, **private)
                reingest_button.click(page.admin_reingest, [password], admin_status, **private)

        outputs = [chatbot, turns, question, sources, source_pick, image, caption]
        question.submit(page.respond, [question, chatbot, turns], outputs)
        send.click(page.respond, [question, chatbot, turns], outputs)
        chatbot.example_select(page.example, None, question).then(page.respond, [question, chatbot, turns], outputs)
        source_pick.change(page.show_page, [source_pick, turns], [image, caption])
        up.click(page.vote_up, [comment, turns], [thanks, comment])
        down.click(page.vote_down, [comment, turns], [thanks, comment])
        chatbot.like(page.liked, [turns], thanks)
    app.queue(default_concurrency_limit=4, api_open=False)
    return app


class RouteGuard:
    """ASGI middleware in front of Gradio's routes.

    - The named routes (`/gradio_api/call/NAME`, `/api/NAME`, `/run/NAME`) answer only the page's public
      events: Gradio still resolves a private event (the admin handlers) by its name there, so any other name
      gets a 404 (and an unknown one no traceback in the log).
      The page itself calls events through `/gradio_api/queue/join` with their index, as any client can, so
      the admin handlers are never unreachable: the password gate (with its backoff) is what guards them.
    - With the Admin tab off, the page takes no files at all: the upload routes answer 403 and nothing is kept.
    """

    NAMED = re.compile(r"^/gradio_api/(?:call/v2|call|api|run)/([^/]+)/?$")
    UPLOADS = ("/gradio_api/upload", "/gradio_api/process_recording")

    def __init__(self, app: Any, public_names: frozenset[str] = frozenset(), uploads: bool = False) -> None:
        self.app = app
        self.public_names = public_names
        self.uploads = uploads

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = scope.get("path", "")
            named = self.NAMED.match(path)
            if named and named.group(1) not in self.public_names:
                await _plain(send, 404, "Not found")
                return
            if not self.uploads and path.rstrip("/") in self.UPLOADS:
                await _plain(send, 403, "This page does not accept uploads.")
                return
        await self.app(scope, receive, send)


async def _plain(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def public_api_names(app: gr.Blocks) -> frozenset[str]:
    """The names of the events that are part of the page's public API."""
    return frozenset(fn.api_name for fn in app.fns.values()
                     if isinstance(fn.api_name, str) and fn.api_visibility == "public")


def build_app(settings: Settings, assistant: Assistant | None = None) -> gr.Blocks:
    return build_layout(settings, ChatPage(settings, assistant or Assistant(settings)))


def limit_model_threads(threads: int) -> None:
    """Let the embedding model use `threads` threads per question. The page answers several questions at once
    (Gradio's workers); with torch's default of one thread per core each question's threads spin for cores the
    others hold, and on 2 busy cores one question embedding took 10x longer (320 ms instead of 31 ms)."""
    import torch

    torch.set_num_threads(threads)


def launch(settings: Settings, host: str, port: int, assistant: Assistant | None = None,
           block: bool = True) -> gr.Blocks:
    app = build_app(settings, assistant)
    from starlette.middleware import Middleware

    limit_model_threads(settings.page_torch_threads)
    max_upload = f"{settings.upload_max_mb}mb" if settings.admin_password else NO_UPLOADS
    guard = Middleware(RouteGuard, public_names=public_api_names(app), uploads=bool(settings.admin_password))
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True,
               max_file_size=max_upload, css=CSS, footer_links=[], allowed_paths=[], show_error=False,
               app_kwargs={"middleware": [guard]})
    return app
