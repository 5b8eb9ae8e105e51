"""The chat page (Gradio): streamed cited answers, a sources panel with the cited PDF page, feedback, and an
admin tab (upload a PDF and re-ingest) that exists only when WBL_ADMIN_PASSWORD is set.

Everything shown that comes from a document or a user is escaped first: a PDF or a question holding HTML
or script is displayed as text, never run.
"""

from __future__ import annotations

import hmac
import html
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from PIL import Image, ImageDraw

from .answering import Answer
from .assistant import Assistant, QuestionError
from .config import Settings
from .ingestion import STATUSES, IngestError, IngestReport, ingest
from .ocr import page_quote_boxes

EXAMPLE_QUESTIONS = [
    "How many hours does a career development experience require?",
    "Does the Child Labor Law of 2024 apply to a 15-year-old in a school work-based learning program?",
    "What are the stages of the work-based learning continuum?",
    "Who can coordinate work-based learning in a CTE program?",
]
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
CSS = """
.wbl-sources blockquote {margin: .3rem 0 .8rem 0; padding-left: .6rem; border-left: 3px solid #c9a227;}
.wbl-sources .src {margin-bottom: .4rem;}
.wbl-refusal {color: #7a4b00;}
"""


def escape_text(text: str) -> str:
    """Text safe for the Markdown chat bubble: HTML escaped, Markdown syntax neutralized."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))


def answer_markdown(text: str) -> str:
    return escape_text(text)


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


@lru_cache(maxsize=64)
def _render_page(path: str, mtime: float, page: int, quote: str, ocr_dir: str = "", sha256: str = "") -> Image.Image:
    """The page with the quote shaded; on a scanned page (no text layer) from the OCR words cached in `ocr_dir`
    for the file with hash `sha256`."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        if not 1 <= page <= len(pdf):
            raise ValueError(f"page {page} is not in this PDF")
        pdf_page = pdf[page - 1]
        scale = 1.6
        image = pdf_page.render(scale=scale).to_pil().convert("RGB")
        if ocr_dir and not pdf_page.get_textpage().count_chars():
            _shade(image, page_quote_boxes(Path(ocr_dir), sha256, page, quote, scale))
        else:
            _highlight(pdf_page, image, quote, scale)
        return image
    finally:
        pdf.close()


def _highlight(pdf_page, image: Image.Image, quote: str, scale: float) -> None:
    """Shade the lines of the quoted passage, found by its first words, on the rendered page."""
    words = quote.split()
    if len(words) < 3:
        return
    textpage = pdf_page.get_textpage()
    height = pdf_page.get_height()
    for length in (8, 5, 3):
        found = textpage.search(" ".join(words[:length]), match_case=False).get_next()
        if found:
            break
    else:
        return
    start = found[0]
    count = min(len(quote), textpage.count_chars() - start)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for index in range(textpage.count_rects(start, count)):
        left, bottom, right, top = textpage.get_rect(index)
        draw.rectangle([left * scale - 2, (height - top) * scale - 2, right * scale + 2,
                        (height - bottom) * scale + 2], fill=(255, 214, 0, 90))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _shade(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> None:
    """Shade rectangles (left, top, right, bottom, in image pixels) as _highlight does."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for left, top, right, bottom in boxes:
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(255, 214, 0, 90))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def page_image(settings: Settings, assistant: Assistant, answer: Answer | None, choice: str | None):
    """The cited page of the selected source, rendered from the PDF in the corpus folder."""
    if answer is None or not choice or answer.abstained:
        return None, ""
    citation = next((c for c in answer.citations if str(c.n) == str(choice)), None)
    if citation is None:
        return None, ""
    documents = assistant.reader.generation.documents if assistant.reader.generation else {}
    entry = documents.get(citation.doc_id, {})
    file = entry.get("file", "")
    path = (settings.corpus_dir / file).resolve()
    if not file or path.parent != settings.corpus_dir.resolve() or not path.is_file():
        return None, f"The PDF of {citation.title} is no longer in the corpus folder."
    try:
        ocr_dir = str(settings.ocr_cache_dir) if entry.get("ocr_pages") else ""
        image = _render_page(str(path), path.stat().st_mtime, citation.page, citation.quote, ocr_dir,
                             entry.get("sha256", ""))
    except Exception as error:  # a PDF replaced since ingest, or one pdfium cannot render
        return None, f"Cannot show page {citation.page} of {citation.title}: {error}"
    return image, f"[{citation.n}] {citation.title}, page {citation.page} (cited passage highlighted)"


class FeedbackLog:
    """Appends one JSON line per vote to the feedback file in the data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, turn: Turn, history: list[dict[str, str]], vote: str, comment: str = "") -> dict[str, Any]:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "question": turn.question, "history": history, "answer": turn.answer.answer,
            "abstained": turn.answer.abstained,
            "citations": [{"n": c.n, "doc_id": c.doc_id, "page": c.page, "chunk_id": c.chunk_id}
                          for c in turn.answer.citations],
            "vote": vote, "comment": comment.strip()[:2000],
        }
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry


@dataclass
class Turn:
    question: str
    answer: Answer


def history_of(turns: list[Turn]) -> list[dict[str, str]]:
    out = []
    for turn in turns:
        out += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer.answer}]
    return out


def safe_upload_name(name: str) -> str:
    """A file name that can only land directly in the corpus folder: no path, no odd characters."""
    base = Path(name.replace("\\", "/")).name
    stem = SAFE_NAME.sub("-", Path(base).stem).strip(".-_")[:100]
    return f"{stem or 'document'}.pdf"


def check_upload(path: Path, max_mb: int) -> str | None:
    """Why an uploaded file is refused, or None. PDFs only, by content; within the size limit."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if size > max_mb * 1024 * 1024:
        return f"the file is {size / 1e6:.1f} MB; the limit is {max_mb} MB"
    with path.open("rb") as handle:
        if b"%PDF-" not in handle.read(1024):
            return "the file is not a PDF (checked by its content, not its name)"
    return None


def ingest_summary(report: IngestReport) -> str:
    counts = " · ".join(f"{s}: {report.count(s)}" for s in STATUSES)
    lines = [f"**Ingest finished** in {report.seconds:.1f} s — {counts} · chunks: {report.chunks}"]
    lines += [f"- failed `{escape_text(r.file or r.doc_id)}`: {escape_text(r.reason)}" for r in report.failed]
    lines += [f"- warning `{escape_text(r.file)}`: {escape_text(r.warning)}" for r in report.warnings]
    return "\n".join(lines)


class Admin:
    """Upload-and-reingest, guarded by WBL_ADMIN_PASSWORD (there is no default password)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    def authorized(self, password: str | None) -> bool:
        expected = self.settings.admin_password
        return bool(expected) and hmac.compare_digest((password or "").encode(), expected.encode())

    def upload(self, password: str | None, file: str | None) -> str:
        if not self.authorized(password):
            return "**Refused:** wrong or missing admin password. Nothing was uploaded."
        if not file:
            return "Choose a PDF to upload first."
        source = Path(file)
        reason = check_upload(source, self.settings.upload_max_mb)
        if reason:
            return f"**Refused:** {escape_text(reason)}. Nothing was uploaded."
        name = safe_upload_name(source.name)
        corpus = self.settings.corpus_dir.resolve()
        target = (corpus / name).resolve()
        if target.parent != corpus:
            return "**Refused:** that file name cannot be used."
        with self._lock:
            corpus.mkdir(parents=True, exist_ok=True)
            temporary = corpus / f".upload-{os.getpid()}-{name}.part"
            temporary.write_bytes(source.read_bytes())
            replaced = target.exists()
            os.replace(temporary, target)
            note = f"{'Replaced' if replaced else 'Added'} `{escape_text(name)}` in the corpus folder.\n\n"
            return note + self._ingest()

    def reingest(self, password: str | None) -> str:
        if not self.authorized(password):
            return "**Refused:** wrong or missing admin password."
        with self._lock:
            return self._ingest()

    def _ingest(self) -> str:
        try:
            return ingest_summary(ingest(self.settings))
        except IngestError as error:
            return f"**Ingest failed:** {escape_text(str(error))}"


def build_app(settings: Settings, assistant: Assistant | None = None) -> gr.Blocks:
    assistant = assistant or Assistant(settings)
    feedback = FeedbackLog(settings.feedback_path)
    admin = Admin(settings)

    def respond(message: str, chat: list, turns: list[Turn]):
        message = (message or "").strip()
        if not message:
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        chat = [*chat, {"role": "user", "content": escape_text(message)}, {"role": "assistant", "content": ""}]
        yield chat, turns, "", gr.update(), gr.update(), gr.update(), ""
        answer = None
        try:
            text = ""
            for event in assistant.stream(message, history_of(turns)):
                if isinstance(event, Answer):
                    answer = event
                else:
                    text += event
                    chat[-1] = {"role": "assistant", "content": answer_markdown(text)}
                    yield chat, turns, "", gr.update(), gr.update(), gr.update(), ""
        except QuestionError as error:
            chat[-1] = {"role": "assistant", "content": escape_text(f"I can't take that question: {error}.")}
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        except Exception as error:  # the page must stay usable: say what went wrong, keep the chat
            chat[-1] = {"role": "assistant", "content": escape_text(f"Something went wrong: {error}")}
            yield chat, turns, "", sources_html(None), gr.update(), None, ""
            return
        chat[-1] = {"role": "assistant", "content": answer_markdown(answer.answer)}
        turns = [*turns, Turn(message, answer)]
        choices = source_choices(answer)
        first = choices[0][1] if choices else None
        image, caption = page_image(settings, assistant, answer, first)
        yield (chat, turns, "", sources_html(answer), gr.update(choices=choices, value=first), image, caption)

    def show_page(choice: str | None, turns: list[Turn]):
        return page_image(settings, assistant, turns[-1].answer if turns else None, choice)

    def vote(kind: str, comment: str, turns: list[Turn]):
        if not turns:
            return "Ask a question first; then rate its answer.", comment
        entry = feedback.record(turns[-1], history_of(turns[:-1]), kind, comment)
        return f"Thanks — your vote ({'helpful' if entry['vote'] == 'up' else 'not helpful'}) was recorded.", ""

    def liked(data: gr.LikeData, turns: list[Turn]):
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        number = int(index) // 2
        if not 0 <= number < len(turns):
            return ""
        feedback.record(turns[number], history_of(turns[:number]), "up" if data.liked else "down")
        return "Thanks — your feedback was recorded."

    def example(data: gr.SelectData):
        value = data.value
        return value.get("text", "") if isinstance(value, dict) else str(value)

    with gr.Blocks(title="WBL Assistant", analytics_enabled=False) as app:
        turns_state = gr.State([])
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
                                         scale=4, elem_id="comment")
                    up = gr.Button("Helpful", scale=1, elem_id="vote-up")
                    down = gr.Button("Not helpful", scale=1, elem_id="vote-down")
                thanks = gr.Markdown(elem_id="feedback-status")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="sources")
                source_pick = gr.Radio(label="Show the cited page", choices=[], elem_id="source-pick")
                caption = gr.Markdown(elem_id="page-caption")
                page = gr.Image(label="Cited page", type="pil", interactive=False, elem_id="page-image",
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
                upload_button.click(admin.upload, [password, upload], admin_status)
                reingest_button.click(admin.reingest, [password], admin_status)

        outputs = [chatbot, turns_state, question, sources, source_pick, page, caption]
        question.submit(respond, [question, chatbot, turns_state], outputs)
        send.click(respond, [question, chatbot, turns_state], outputs)
        chatbot.example_select(example, None, question).then(respond, [question, chatbot, turns_state], outputs)
        source_pick.change(show_page, [source_pick, turns_state], [page, caption])
        up.click(lambda c, t: vote("up", c, t), [comment, turns_state], [thanks, comment])
        down.click(lambda c, t: vote("down", c, t), [comment, turns_state], [thanks, comment])
        chatbot.like(liked, [turns_state], thanks)
    app.queue(default_concurrency_limit=4)
    return app


def launch(settings: Settings, host: str, port: int, assistant: Assistant | None = None,
           block: bool = True) -> gr.Blocks:
    app = build_app(settings, assistant)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True,
               max_file_size=f"{settings.upload_max_mb}mb", css=CSS, footer_links=[],
               allowed_paths=[], show_error=False)
    return app
